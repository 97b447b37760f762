"""Measure the MAF anomaly detectors on the MVTec AD test split and write the metrics into the checkpoints' cards.

    python -m evaluation.maf                                   # every trained maf-* checkpoint
    python -m evaluation.maf --checkpoints maf-features-capsule --no-write

Per checkpoint, on every test image of its category (the category is read from the card): the image score (pixel
MAF: NLL in bits/dim at the dequantisation midpoint, the report's S(x) = −log p(x); feature flow: the maximum of
the blurred per-position NLL map), image AUROC overall and per defect type (that type against the good test
images; scikit-learn), accuracy / TPR / FPR / precision / F1 at the threshold chosen on held-out good training
images (stored in the checkpoint), and, where the category has masks, pixel AUROC pooled over all test pixels at
256 px (the pixel MAF's per-pixel −log p contributions, spec §1.8.9, upsampled). `image_auroc_every_third` (test
images 0, 3, 6, …) is what the checkpoint tests re-measure. The scores, ROC curve and histograms go into
`scores.json` beside the weights, for the demo.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score, roc_curve

from models import registry
from models.maf import PixelMAF
from nndl_data.maf import Sample, has_masks, list_samples, load_images, load_masks

DEFAULT_CHECKPOINTS = ("maf-pixel-capsule", "maf-features-capsule", "maf-pixel-bottle", "maf-features-bottle")
REPORT = {"image_auroc_text": 0.78, "image_auroc_figure": 0.67, "sampling_seconds_per_image": 1675.0, "training_seconds": 1782.0}
MASK_SIZE = 256


def category_of(name: str, card: dict) -> str:
    folder = (card.get("data") or {}).get("folder", "")
    return folder.split("/", 1)[1] if folder.startswith("mvtec/") else name.rsplit("-", 1)[-1]


@torch.no_grad()
def score_samples(model, samples: list[Sample], root=None, batch: int = 8, with_maps: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Image scores (N,) and anomaly maps at 256 px (N, 256, 256) (None without `with_maps`)."""
    scores, maps = [], []
    for start in range(0, len(samples), batch):
        chunk = samples[start : start + batch]
        images = load_images(chunk, model.config.image_size).float() / 255
        if isinstance(model, PixelMAF):
            scores.append(model(images))
            if with_maps:
                maps.append(F.interpolate(model.pixel_map(images)[:, None], size=MASK_SIZE, mode="bilinear", align_corners=False)[:, 0])
        else:
            anomaly = model.anomaly_map(images)
            scores.append(model.image_score(anomaly))
            if with_maps:
                maps.append(F.interpolate(anomaly[:, None], size=MASK_SIZE, mode="bilinear", align_corners=False)[:, 0])
    return torch.cat(scores).numpy().astype(np.float64), (torch.cat(maps).numpy() if with_maps else None)


def image_metrics(scores: np.ndarray, defects: list[str], threshold: float) -> dict:
    labels = np.array([d != "good" for d in defects])
    good = ~labels
    per_defect = {}
    for defect in sorted(set(defects) - {"good"}):
        chosen = good | (np.array(defects) == defect)
        per_defect[defect] = round(float(roc_auc_score(labels[chosen], scores[chosen])), 4)
    predicted = scores > threshold
    true_positive, false_positive = int((predicted & labels).sum()), int((predicted & good).sum())
    precision = true_positive / max(1, predicted.sum())
    recall = true_positive / max(1, labels.sum())
    return {
        "image_auroc": round(float(roc_auc_score(labels, scores)), 4),
        "image_auroc_per_defect": per_defect,
        "threshold": round(float(threshold), 5),
        "at_threshold": {"accuracy": round(float((predicted == labels).mean()), 4), "tpr": round(recall, 4),
                         "fpr": round(false_positive / max(1, good.sum()), 4), "precision": round(float(precision), 4),
                         "f1": round(float(2 * precision * recall / max(1e-12, precision + recall)), 4)},
        "test_images": {"good": int(good.sum()), "defective": int(labels.sum())},
    }


def evaluate(name: str, root=None, write: bool = True) -> dict:
    model = registry.load(name)
    card = registry.load_card(name)
    category = category_of(name, card)
    samples = list_samples(category, "test", root)
    defects = [s.defect for s in samples]
    masked = has_masks(samples)
    scores, maps = score_samples(model, samples, root, with_maps=masked)
    threshold = float(model.threshold)
    metrics = image_metrics(scores, defects, threshold)
    metrics["category"] = category
    every_third = list(range(0, len(samples), 3))
    metrics["image_auroc_every_third"] = round(float(roc_auc_score([defects[i] != "good" for i in every_third], scores[every_third])), 4)
    if masked:
        truth = load_masks(samples, MASK_SIZE).numpy()
        metrics["pixel_auroc"] = round(float(roc_auc_score(truth.ravel(), maps.ravel())), 4)
    false_positive_rate, true_positive_rate, _ = roc_curve([d != "good" for d in defects], scores)
    validation_scores = card.get("threshold", {}).get("validation_scores", [])
    results = {
        "checkpoint": name, "category": category, "score": "bits/dim" if isinstance(model, PixelMAF) else "max of the blurred NLL map",
        "names": [s.name for s in samples], "defects": defects, "scores": [round(float(v), 5) for v in scores],
        "validation_scores": validation_scores, "threshold": threshold,
        "roc": {"fpr": [round(float(v), 4) for v in false_positive_rate], "tpr": [round(float(v), 4) for v in true_positive_rate]},
        "metrics": metrics,
    }
    if write:
        registry.update_card(name, metrics=metrics, report=REPORT, evaluation_command=f"python -m evaluation.maf --checkpoints {name}")
        path = registry.checkpoint_dir(name) / "scores.json"
        path.write_text(json.dumps(results) + "\n")
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--checkpoints", nargs="+", default=None, help=f"(default: those of {list(DEFAULT_CHECKPOINTS)} that exist)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--no-write", action="store_true", help="print only; leave the cards as they are")
    args = parser.parse_args(argv)
    names = args.checkpoints or [name for name in DEFAULT_CHECKPOINTS if registry.available(name)]
    if not names:
        sys.exit("no maf-* checkpoints; train one with `python -m training.maf`")
    for name in names:
        metrics = evaluate(name, args.data_root, write=not args.no_write)["metrics"]
        print(name, json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()
