"""Lay out every committed checkpoint as one Hugging Face model repository, then upload it.

    python -m scripts.publish --repo <user>/<repo>              # lay out in runs/hub-<repo>/, then upload
    python -m scripts.publish --repo <user>/<repo> --no-upload  # only lay out, to inspect

The layout is the one the app downloads from with `NNDL_HUB_REPO=<user>/<repo>`: a folder `<checkpoint name>/`
per checkpoint (config.json, model.safetensors, card.json, log.csv and whatever else it holds), a `.gitattributes`
storing the binaries with LFS, and a model card `README.md` whose YAML metadata the Hub reads (licence, tags,
datasets, `model-index` with the measured metrics) and whose body gives, per checkpoint, the training command,
steps, wall time and hardware, the metrics from its card, and the course report's numbers beside ours.
Uploading needs a token (`huggingface-cli login` or `HF_TOKEN`) and network; without them it says so and leaves the
folder in place.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import yaml

from demos import overview
from demos.kit import format_value
from models import registry

LFS_PATTERNS = ("*.safetensors", "*.pt", "*.bin", "*.png", "*.jpg", "*.nii", "*.nii.gz")
DATASETS = {  # system → (what it was trained on, licence of the data), for the card's body
    "pixelda": ("MNIST → MNIST-M", "MNIST (CC BY-SA 3.0); MNIST-M (research use)"),
    "cyclegan": ("apple2orange, summer2winter_yosemite (CycleGAN release)", "ImageNet / Flickr images, research use"),
    "attacks": ("CIFAR-10", "CIFAR-10 (Krizhevsky 2009), research use"),
    "trivae": ("LGG FLAIR (TCGA-LGG), BraTS 2021", "research and education use; not a medical device"),
    "maf": ("MVTec AD capsule, bottle", "CC BY-NC-SA 4.0 (non-commercial)"),
    "captioning": ("Flickr8k with Persian captions", "Flickr8k terms (research use)"),
    "endovae": ("Kvasir-SEG polyp frames (Jha et al. 2020)", "Kvasir-SEG: research and education use, cite the paper; not a medical device"),
}


def checkpoint_names(root: Path) -> list[str]:
    return sorted(folder.name for folder in root.iterdir() if (folder / "model.safetensors").exists())


def flat_metrics(metrics: dict, prefix: str = "") -> dict[str, float]:
    """Numeric card metrics as dotted keys (lists and text are left to card.json)."""
    flat = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat.update(flat_metrics(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[prefix + key] = value
    return flat


def front_matter(names: list[str], cards: dict[str, dict]) -> dict:
    results = []
    for slug, metrics in overview.HEADLINES.items():
        for metric in metrics:
            value = metric.ours()
            if value is None or metric.checkpoint not in names:
                continue
            results.append({"task": {"type": "other", "name": overview.SYSTEMS[slug][0]},
                            "dataset": {"type": slug, "name": DATASETS.get(slug, (slug,))[0]},
                            "metrics": [{"type": metric.key, "name": f"{metric.checkpoint}: {metric.label}", "value": round(float(value), 4)}]})
    return {
        "license": "other",
        "license_name": "mit-code-research-data",
        "license_link": "LICENSE",
        "library_name": "pytorch",
        "tags": ["nndl-studio", "safetensors", *sorted({cards[name].get("system", name.split("-")[0]) for name in names})],
        "model-index": [{"name": "nndl-studio", "results": results}],
    }


def checkpoint_section(name: str, card: dict) -> str:
    slug = card.get("system", name.split("-")[0])
    data, licence = DATASETS.get(slug, ("see card.json", "see card.json"))
    lines = [f"### `{name}`", "",
             f"- system: {overview.SYSTEMS.get(slug, (slug,))[0]}; data: {data} ({licence})",
             f"- trained with `{card.get('command', '?')}`: {card.get('steps', '?')} steps, "
             f"{card.get('wall_time_s', 0) / 3600:.2f} h on {card.get('hardware', '?')}",
             f"- measured by `{card.get('evaluation_command', 'not evaluated yet')}`"]
    headline = [metric for metric in overview.HEADLINES.get(slug, []) if metric.checkpoint == name]
    if headline:
        lines += ["", "| metric | course report | ours |", "|---|---|---|"]
        lines += [f"| {metric.label} | {format_value(metric.report, metric.percent)} | {format_value(metric.ours(), metric.percent)} |" for metric in headline]
    numbers = flat_metrics(card.get("metrics", {}))
    if numbers:
        shown = ", ".join(f"{key} {value:.4g}" for key, value in list(numbers.items())[:12])
        lines += ["", f"All metrics are in `{name}/card.json`; the first: {shown}."]
    return "\n".join(lines)


def lay_out(root: Path, out: Path, repo: str) -> Path:
    """Copy every checkpoint under `root` into `out` with the model card and `.gitattributes`."""
    names = checkpoint_names(root)
    if not names:
        raise SystemExit(f"no checkpoints under {root}")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    cards = {}
    for name in names:
        shutil.copytree(root / name, out / name)
        cards[name] = json.loads((root / name / "card.json").read_text()) if (root / name / "card.json").exists() else {}
    body = [
        f"# NNDL Studio checkpoints ({repo})", "",
        "The trained weights behind the NNDL Studio demo suite: one folder per checkpoint, as the app's "
        f"`NNDL_HUB_REPO={repo}` expects. Each holds `config.json` (architecture, config, sha256), "
        "`model.safetensors`, `card.json` (data, split, seed, steps, hardware, metrics measured on held-out data "
        "by the project's evaluation command) and `log.csv` (training curves). The code is MIT; the weights inherit "
        "the research-use terms of their training data (below; MVTec AD is non-commercial).", "",
        "## Checkpoints", "",
    ]
    body += [checkpoint_section(name, cards[name]) + "\n" for name in names]
    text = "---\n" + yaml.safe_dump(front_matter(names, cards), sort_keys=False, allow_unicode=True) + "---\n\n" + "\n".join(body)
    (out / "README.md").write_text(text, encoding="utf-8")
    (out / ".gitattributes").write_text("".join(f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in LFS_PATTERNS))
    return out


def upload(out: Path, repo: str) -> None:
    if not registry._hub_reachable():
        raise SystemExit(f"The Hugging Face Hub is unreachable (no network?): nothing was uploaded. The repository is laid out in {out}/ for inspection.")
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        api.create_repo(repo, repo_type="model", exist_ok=True)
        api.upload_folder(repo_id=repo, folder_path=out, repo_type="model", commit_message="NNDL Studio checkpoints")
    except Exception as error:  # authentication, permissions, network: one sentence for the user
        raise SystemExit(f"Uploading to {repo} failed ({error}). Log in with `huggingface-cli login` or set HF_TOKEN; the laid-out folder is {out}/.") from error
    print(f"uploaded {out}/ to https://huggingface.co/{repo}")


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--repo", required=True, help="<user>/<repo> on the Hugging Face Hub")
    parser.add_argument("--checkpoints", default=str(registry.checkpoint_root()), help="the checkpoint root to publish")
    parser.add_argument("--out", default="", help="where to lay it out (default runs/hub-<repo name>)")
    parser.add_argument("--no-upload", action="store_true", help="only lay out the folder")
    args = parser.parse_args(argv)
    out = lay_out(Path(args.checkpoints), Path(args.out or f"runs/hub-{args.repo.split('/')[-1]}"), args.repo)
    print(f"laid out {len(checkpoint_names(out))} checkpoints in {out}/", file=sys.stderr)
    if not args.no_upload:
        upload(out, args.repo)
    return out


if __name__ == "__main__":
    main()
