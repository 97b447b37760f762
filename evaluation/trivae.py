"""Measure the brain-tumour residual maps and write the metrics into the checkpoints' cards.

    python -m evaluation.trivae                      # every trained trivae-* checkpoint, both test sets
    python -m evaluation.trivae --checkpoints trivae-trivae-coarse --limit 20 --no-write

Test sets (plus `lgg_test_first32`, the first 32 LGG test slices, which the checkpoint tests re-measure): the tumour slices of the LGG test patients (the seeded patient split of training) and the 40 BraTS 2021
slices. Per model and post-processing (raw residual, median-filtered residual), all inside the brain mask:
pixel AUROC and AUPRC (pooled over the set); Dice at the threshold chosen on healthy validation residuals (stored
in the checkpoint), pooled and as the mean of per-slice Dice like the report; the best achievable pooled Dice over
thresholds (⌈Dice⌉) and the best mean per-slice Dice, with their thresholds; and the report's protocol
(mean per-slice Dice at the fixed threshold 0.1 on the raw residual).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from models import registry
from models.trivae import anomaly_maps, dice
from nndl_data.trivae import BASELINE_FILE, Slices, load_brats_slices, load_lgg_splits

REPORT_DICE = {"trivae-vae": 0.2859, "trivae-trivae-coarse": 0.4791, "trivae-trivae-simplex": 0.5081}
DEFAULT_CHECKPOINTS = ("trivae-vae", "trivae-vae-coarse", "trivae-trivae-coarse", "trivae-trivae-simplex")
REPORT_THRESHOLD = 0.1


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (scikit-learn's `roc_auc_score`, ties counted half); NaN for a set of one class."""
    scores, labels = np.asarray(scores, np.float64).ravel(), np.asarray(labels, bool).ravel()
    return float(roc_auc_score(labels, scores)) if 0 < labels.sum() < len(labels) else float("nan")


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the precision–recall curve, Σ (R_n − R_{n−1}) P_n over distinct thresholds (scikit-learn's
    `average_precision_score`); NaN for a set without positives."""
    scores, labels = np.asarray(scores, np.float64).ravel(), np.asarray(labels, bool).ravel()
    return float(average_precision_score(labels, scores)) if labels.any() else float("nan")


def dice_curve(scores: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Pooled Dice of (scores > t) for every t, from sorted scores (one pass, no per-threshold masks)."""
    scores, labels = np.asarray(scores, np.float64).ravel(), np.asarray(labels, bool).ravel()
    positive_scores, negative_scores = np.sort(scores[labels]), np.sort(scores[~labels])
    true_positives = len(positive_scores) - np.searchsorted(positive_scores, thresholds, side="right")
    false_positives = len(negative_scores) - np.searchsorted(negative_scores, thresholds, side="right")
    denominator = true_positives + false_positives + len(positive_scores)
    return np.where(denominator > 0, 2 * true_positives / np.maximum(denominator, 1), 1.0)


def mean_slice_dice(maps: np.ndarray, truths: np.ndarray, masks: np.ndarray, threshold: float) -> float:
    """The report's metric: the mean over slices of Dice((map > t) inside the brain, truth)."""
    return float(np.mean([dice((m > threshold) & b, t) for m, t, b in zip(maps, truths, masks)]))


def measure(maps: np.ndarray, truths: np.ndarray, masks: np.ndarray, threshold: float) -> dict[str, float]:
    """Every metric for one residual kind; maps/truths/masks (N, S, S), the validation-chosen `threshold`."""
    scores, labels = maps[masks], truths[masks]
    candidates = np.unique(np.quantile(scores, np.linspace(0.5, 0.9999, 400)))
    pooled = dice_curve(scores, labels, candidates)
    best = int(np.argmax(pooled))
    slice_grid = candidates[:: max(len(candidates) // 40, 1)]
    per_slice = [mean_slice_dice(maps, truths, masks, t) for t in slice_grid]
    best_slice = int(np.argmax(per_slice))
    prediction = (maps > threshold) & masks
    return {
        "auroc": auroc(scores, labels),
        "auprc": average_precision(scores, labels),
        "threshold": float(threshold),
        "dice": dice(prediction, truths & masks),  # pooled over the set, at the validation-chosen threshold
        "mean_slice_dice": mean_slice_dice(maps, truths, masks, threshold),
        "best_dice": float(pooled[best]),
        "best_threshold": float(candidates[best]),
        "best_mean_slice_dice": float(per_slice[best_slice]),
        "best_mean_slice_threshold": float(slice_grid[best_slice]),
        "tumour_outside_brain_mask": float(1 - (truths & masks).sum() / max(truths.sum(), 1)),
    }


@torch.no_grad()
def residual_maps(model, slices: Slices, device: str = "cpu", batch_size: int = 64) -> dict[str, np.ndarray]:
    parts = {"residual": [], "residual_filtered": [], "brain_mask": []}
    images = slices.floats()
    for start in range(0, len(images), batch_size):
        maps = anomaly_maps(model, images[start : start + batch_size].to(device))
        for key in parts:
            parts[key].append(maps[key][:, 0].cpu().numpy())
    return {key: np.concatenate(value) for key, value in parts.items()}


def evaluate(model, slices: Slices, device: str = "cpu") -> dict:
    """Metrics of one model on one test set: {'raw': {...}, 'median<k>': {...}, 'report_protocol_mean_slice_dice', 'slices'}."""
    maps = residual_maps(model, slices, device)
    truths, masks = slices.masks.numpy(), maps["brain_mask"]
    size = model.config.median_filter_size
    return {
        "slices": len(slices),
        "raw": measure(maps["residual"], truths, masks, float(model.threshold)),
        f"median{size}": measure(maps["residual_filtered"], truths, masks, float(model.threshold_filtered)),
        # The report: raw |x − x̂| > 0.1 everywhere (no brain mask, no filter), mean per-slice Dice.
        "report_protocol_mean_slice_dice": mean_slice_dice(maps["residual"], truths, np.ones_like(masks), REPORT_THRESHOLD),
    }


def intensity_baseline(data_root=None, size: int = 128, split_seed: int = 0, percentile: float = 99.0, filter_size: int = 5, erosion: int = 6,
                       sets: dict[str, Slices] | None = None) -> dict:
    """No model at all: the normalised FLAIR intensity itself as the anomaly map (tumours are hyperintense), with the
    threshold chosen the same way on healthy validation slices. The bar every residual map has to clear."""
    from models.trivae import brain_mask, median_filter

    def maps_of(slices: Slices) -> dict[str, np.ndarray]:
        images = slices.floats()
        mask = brain_mask(images, erosion=erosion)
        raw = images * mask
        return {"residual": raw[:, 0].numpy(), "residual_filtered": (median_filter(raw, filter_size) * mask)[:, 0].numpy(), "brain_mask": mask[:, 0].numpy()}

    validation = maps_of(load_lgg_splits(data_root, size, split_seed)["validation"])
    inside = validation["brain_mask"]
    thresholds = {key: float(np.percentile(validation[key][inside], percentile)) for key in ("residual", "residual_filtered")}
    results = {}
    for name, slices in (sets or test_sets(data_root, size, 0, split_seed)).items():
        maps, truths = maps_of(slices), slices.masks.numpy()
        results[name] = {
            "slices": len(slices),
            "raw": measure(maps["residual"], truths, maps["brain_mask"], thresholds["residual"]),
            f"median{filter_size}": measure(maps["residual_filtered"], truths, maps["brain_mask"], thresholds["residual_filtered"]),
        }
    return results


def test_sets(data_root=None, size: int = 128, limit: int = 0, split_seed: int = 0) -> dict[str, Slices]:
    sets = {"lgg_test": load_lgg_splits(data_root, size, split_seed)["test"], "brats21": load_brats_slices(data_root, size)}
    if limit:
        sets = {name: s.subset(torch.arange(min(limit, len(s)))) for name, s in sets.items()}
    return sets


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--checkpoints", nargs="+", default=None, help="default: every trained one of " + ", ".join(DEFAULT_CHECKPOINTS))
    parser.add_argument("--checkpoint-root", default=None)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--limit", type=int, default=0, help="only the first N slices of each test set (0 = all)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--baseline", action="store_true", help="only the no-model intensity baseline (CPU, a few seconds)")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True, help="write the metrics into the cards")
    args = parser.parse_args(argv)
    if args.baseline:
        results = intensity_baseline(args.data_root)
        print(json.dumps(results, indent=1))
        if args.write and not args.limit:  # the tab shows it beside the models
            BASELINE_FILE.write_text(json.dumps({"command": "python -m evaluation.trivae --baseline", **results}, indent=1) + "\n")
        return results
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    names = args.checkpoints or [name for name in DEFAULT_CHECKPOINTS if registry.available(name, args.checkpoint_root)]
    if not names:
        sys.exit("No trivae checkpoints found; train one with `python -m training.trivae`.")
    results, cache = {}, {}
    for name in names:
        model = registry.load(name, root=args.checkpoint_root, device=device)
        size = model.config.image_size
        split_seed = registry.load_card(name, args.checkpoint_root).get("train_config", {}).get("split_seed", 0)
        if (size, split_seed) not in cache:
            cache[size, split_seed] = test_sets(args.data_root, size, args.limit, split_seed)
        metrics = {set_name: evaluate(model, slices, device) for set_name, slices in cache[size, split_seed].items()}
        # A small fixed slice of the LGG test set, re-measured by tests/test_trivae_checkpoints.py in seconds.
        lgg = cache[size, split_seed]["lgg_test"]
        metrics["lgg_test_first32"] = evaluate(model, lgg.subset(torch.arange(min(32, len(lgg)))), device)
        metrics["report_mean_dice_brats_t2"] = REPORT_DICE.get(name)
        results[name] = metrics
        command = "python -m evaluation.trivae " + " ".join(sys.argv[1:] if argv is None else argv)
        if args.write and not args.limit:
            registry.update_card(name, root=args.checkpoint_root, metrics=metrics, evaluation_command=command.strip())
        for set_name in ("lgg_test", "brats21"):
            raw, filtered = metrics[set_name]["raw"], metrics[set_name][f"median{model.config.median_filter_size}"]
            print(f"{name:24s} {set_name:9s} AUROC {raw['auroc']:.3f} AUPRC {raw['auprc']:.3f}/{filtered['auprc']:.3f} "
                  f"Dice@val {raw['dice']:.3f}/{filtered['dice']:.3f} meanDice@val {raw['mean_slice_dice']:.3f}/{filtered['mean_slice_dice']:.3f} "
                  f"⌈Dice⌉ {raw['best_dice']:.3f}/{filtered['best_dice']:.3f} report@0.1 {metrics[set_name]['report_protocol_mean_slice_dice']:.3f}")
    print(json.dumps({name: {s: m[s]["raw"]["dice"] for s in ("lgg_test", "brats21")} for name, m in results.items()}))
    return results


if __name__ == "__main__":
    main()
