"""Measure the EndoVAE checkpoints on Kvasir-SEG and write the metrics into their cards.

    python -m evaluation.endovae                                  # every trained endovae-* checkpoint
    python -m evaluation.endovae --checkpoints endovae-better --limit 16 --no-write

Reconstruction models (endovae-report, endovae-better): PSNR (data range 1) and SSIM (models.endovae.SSIM_NOTE) of
the deterministic reconstruction (z = μ) on every test, valid and train frame, mean ± sd: the train–test gap the
report never measured (its 28.33 dB / 0.793 were on frames the model had trained on). Also the report's own
protocol, a sampled z (one draw per frame, seed 0), and the KL (nats) of q(z|x) on test: the information the
latent carries.

The normal-mucosa model (endovae-normal): error maps over whole test frames against the polyp masks. Pixel AUROC and
AUPRC (scikit-learn, pooled over all test pixels); patch AUROC of polyp patches (≥ 50 % polyp) vs polyp-free ones
(mean error over the model's patch size at its stride); Dice at the pixel threshold chosen on the valid split
(stored in the checkpoint), pooled and per frame, and the best pooled Dice on test as an upper bound (chosen on
test: not a result); the same pixel AUROC for a map with no model at all (closeness to the frame centre, where
Kvasir-SEG polyps mostly are), the bar any model has to clear; the ROC curve and patch-score histograms for the tab.
The map is `models.endovae.anomaly_map` with the settings stored in the checkpoint (colour channels, position
normalisation, σ, field-of-view erosion; chosen on valid by `python -m training.endovae --recalibrate endovae-normal`),
the same function the tab calls. The valid split's numbers are reported too (the split the settings were chosen on).

Reported beside the model's map, never instead of it: the model's map multiplied by a centre weight
exp(−r² / 2w²) (r: distance to the frame centre in px, w chosen on the valid split from CENTRE_WIDTHS). That map uses
where Kvasir-SEG's photographers put polyps, not what the model learned; it shows whether the model's map adds
anything to the centre prior.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from models import registry
from models.endovae import SSIM_NOTE, EndoVAE, best_dice_threshold, error_maps, patch_labels, patch_scores, psnr, ssim
from nndl_data.endovae import Frames, load_split

REPORT = {"psnr": 28.333465454379507, "ssim": 0.7932332754135132, "note": "normal + polyp model, 50 polyp frames it trained on"}
REPORT_NORMAL_ONLY = {"psnr": 17.55911146918379, "ssim": 0.45497000217437744, "note": "normal-only model, 50 polyp frames"}
RECONSTRUCTION = ("endovae-report", "endovae-better")
ANOMALY = ("endovae-normal",)
FIRST = 16  # the real-checkpoint tests re-measure the first 16 test frames
CENTRE_WIDTHS = (20.0, 30.0, 40.0, 60.0)  # px: widths of the centre weight of the prior-combined map, chosen on valid


def summary(values: torch.Tensor) -> dict[str, float]:
    values = values.double()
    return {"mean": float(values.mean()), "sd": float(values.std()) if len(values) > 1 else 0.0, "images": len(values)}


@torch.no_grad()
def reconstruction_metrics(model: EndoVAE, frames: Frames, batch_size: int = 50, sampled: bool = False) -> dict:
    """PSNR and SSIM (mean ± sd over frames) of the reconstructions, z = μ (or one sampled z per frame)."""
    images, _ = frames.prepared(model.config)
    psnrs, ssims, kls = [], [], []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].float().div(255)
        logits, mu, logvar = model(x, sample=sampled)
        x_hat = torch.sigmoid(logits)
        psnrs.append(psnr(x_hat, x))
        ssims.append(ssim(x_hat, x))
        kls.append(-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).flatten(1).sum(1))
    return {"psnr": summary(torch.cat(psnrs)), "ssim": summary(torch.cat(ssims)), "kl_nats": float(torch.cat(kls).mean())}


def evaluate_reconstruction(model: EndoVAE, splits: dict[str, Frames]) -> dict:
    metrics = {name: reconstruction_metrics(model, frames) for name, frames in splits.items()}
    test = splits["test"]
    metrics["test_first16"] = reconstruction_metrics(model, test.subset(range(min(FIRST, len(test)))))
    torch.manual_seed(0)  # the report's protocol: a sampled z; one draw per frame, reproducible
    metrics["test_sampled_z"] = reconstruction_metrics(model, test, sampled=True)
    metrics["train_minus_test_psnr"] = metrics["train"]["psnr"]["mean"] - metrics["test"]["psnr"]["mean"] if "train" in metrics else None
    metrics["ssim_settings"] = SSIM_NOTE
    metrics["psnr_settings"] = "10·log10(1 / MSE), data range 1, over all pixels and the 3 channels of each frame, then averaged over frames"
    metrics["report_seen_data"] = REPORT
    metrics["report_normal_only_on_polyps"] = REPORT_NORMAL_ONLY
    return metrics


def centre_prior(shape: tuple[int, int]) -> np.ndarray:
    """A map with no model: closeness to the frame centre (polyps in Kvasir-SEG are mostly central)."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    return -np.hypot(rows - (shape[0] - 1) / 2, cols - (shape[1] - 1) / 2)


def centre_weight(shape: tuple[int, int], width: float) -> torch.Tensor:
    """exp(−r² / 2·width²), r the distance (px) to the frame centre: (H, W)."""
    return torch.from_numpy(np.exp(-centre_prior(shape) ** 2 / (2 * width**2))).float()


def prior_combined(model: EndoVAE, valid: Frames, test: Frames) -> dict:
    """The model's map × a centre weight whose width is chosen on valid (best pixel AUROC): AUROC / AUPRC on test."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    size = model.config.frame_size or model.config.image_size
    by_width, measured = {}, {}
    for name, frames in (("valid", valid), ("test", test)):
        images, masks = frames.prepared(model.config, size)
        measured[name] = (error_maps(model, images), masks.flatten().numpy())
    maps, labels = measured["valid"]
    for width in CENTRE_WIDTHS:
        by_width[width] = float(roc_auc_score(labels, (maps * centre_weight(maps.shape[1:], width)).flatten().numpy()))
    width = max(by_width, key=by_width.get)
    maps, labels = measured["test"]
    combined = (maps * centre_weight(maps.shape[1:], width)).flatten().numpy()
    return {"what": "the model's map × exp(−r²/2w²), r: distance to the frame centre; uses where the dataset's polyps are, not the model",
            "width_px": width, "valid_pixel_auroc_by_width": {f"{w:g}": round(v, 4) for w, v in by_width.items()},
            "pixel_auroc": float(roc_auc_score(labels, combined)), "pixel_auprc": float(average_precision_score(labels, combined))}


def anomaly_metrics(model: EndoVAE, frames: Frames, with_curves: bool = True) -> dict:
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    size = model.config.frame_size or model.config.image_size
    images, masks = frames.prepared(model.config, size)
    maps = error_maps(model, images)  # (N, H, W)
    scores, labels = maps.flatten().numpy(), masks.flatten().numpy()
    threshold = float(model.pixel_threshold)
    prediction = maps > threshold
    intersection = (prediction & masks).flatten(1).sum(1).double()
    totals = (prediction.flatten(1).sum(1) + masks.flatten(1).sum(1)).double()
    per_frame = torch.where(totals > 0, 2 * intersection / totals.clamp_min(1), torch.ones_like(totals))
    best_threshold, best_dice = best_dice_threshold(maps, masks)
    patch = patch_scores(maps[:, None], model.config.image_size, model.config.patch_stride).flatten().numpy()
    patch_label = patch_labels(masks, model.config.image_size, model.config.patch_stride).flatten().numpy()
    keep = patch_label >= 0
    patch, patch_label = patch[keep], patch_label[keep]
    patch_threshold = float(model.patch_threshold)
    flagged = patch > patch_threshold
    prior = np.broadcast_to(centre_prior(maps.shape[1:]), maps.shape).flatten()
    result = {
        "frames": len(frames),
        "frame_size": size,
        "polyp_pixel_share": float(labels.mean()),
        "pixel_auroc": float(roc_auc_score(labels, scores)),
        "pixel_auprc": float(average_precision_score(labels, scores)),
        "pixel_threshold": threshold,
        "dice": float(2 * (prediction & masks).sum() / max(int(prediction.sum() + masks.sum()), 1)),  # pooled, validation threshold
        "mean_frame_dice": float(per_frame.mean()),
        "best_dice_on_test": best_dice,  # an upper bound: its threshold is chosen on test
        "best_threshold_on_test": best_threshold,
        "patch_auroc": float(roc_auc_score(patch_label, patch)),
        "patch_threshold": patch_threshold,
        "patch_tpr": float(flagged[patch_label == 1].mean()),
        "patch_fpr": float(flagged[patch_label == 0].mean()),
        "patches": {"polyp": int((patch_label == 1).sum()), "polyp_free": int((patch_label == 0).sum())},
        "mean_error_polyp_pixels": float(scores[labels].mean()),
        "mean_error_other_pixels": float(scores[~labels].mean()),
        "no_model_centre_prior": {"pixel_auroc": float(roc_auc_score(labels, prior)), "pixel_auprc": float(average_precision_score(labels, prior))},
    }
    if with_curves:
        fpr, tpr, _ = roc_curve(labels, scores)
        pick = np.unique(np.linspace(0, len(fpr) - 1, 101).round().astype(int))
        result["roc"] = {"fpr": [round(float(v), 4) for v in fpr[pick]], "tpr": [round(float(v), 4) for v in tpr[pick]]}
        top = float(np.quantile(patch, 0.995))
        edges = np.linspace(0, top, 41)
        result["patch_histogram"] = {
            "edges": [float(e) for e in edges],
            "polyp": np.histogram(np.clip(patch[patch_label == 1], 0, top), edges)[0].tolist(),
            "polyp_free": np.histogram(np.clip(patch[patch_label == 0], 0, top), edges)[0].tolist(),
        }
    return result


def evaluate_anomaly(model: EndoVAE, splits: dict[str, Frames]) -> dict:
    test = splits["test"]
    return {
        "test": anomaly_metrics(model, test),
        "valid": anomaly_metrics(model, splits["valid"], with_curves=False),
        "test_first16": anomaly_metrics(model, test.subset(range(min(FIRST, len(test)))), with_curves=False),
        "map": {"channels": model.config.anomaly_channels, "position_normalised": model.config.position_normalised,
                "sigma": model.config.anomaly_sigma, "field_of_view_erosion": model.config.field_of_view_erosion},
        "test_model_times_centre_weight": prior_combined(model, splits["valid"], test),
        "patch_definition": "polyp: ≥ 50 % of the patch is polyp; polyp-free: no polyp pixel; patches in between left out",
        "report": "no anomaly metric in the report",
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--checkpoints", nargs="+", default=None, help="default: every trained one of " + ", ".join(RECONSTRUCTION + ANOMALY))
    parser.add_argument("--checkpoint-root", default=None)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--limit", type=int, default=0, help="only the first N frames of each split (0 = all; nothing is written)")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True, help="write the metrics into the cards")
    args = parser.parse_args(argv)
    names = args.checkpoints or [name for name in RECONSTRUCTION + ANOMALY if registry.available(name, args.checkpoint_root)]
    if not names:
        sys.exit("No endovae checkpoints found; train one with `python -m training.endovae --preset report`.")
    splits = {name: load_split(name, args.data_root, limit=args.limit) for name in ("test", "valid", "train")}
    command = ("python -m evaluation.endovae " + " ".join(sys.argv[1:] if argv is None else argv)).strip()
    results = {}
    for name in names:
        model = registry.load(name, root=args.checkpoint_root)
        metrics = evaluate_anomaly(model, splits) if name in ANOMALY or model.config.frame_size else evaluate_reconstruction(model, splits)
        if not (name in ANOMALY or model.config.frame_size):
            print(f"{name:16s} PSNR test {metrics['test']['psnr']['mean']:.2f} ± {metrics['test']['psnr']['sd']:.2f} dB, "
                  f"train {metrics['train']['psnr']['mean']:.2f}; SSIM test {metrics['test']['ssim']['mean']:.3f} ± {metrics['test']['ssim']['sd']:.3f}, "
                  f"train {metrics['train']['ssim']['mean']:.3f}; sampled z {metrics['test_sampled_z']['psnr']['mean']:.2f} dB; KL {metrics['test']['kl_nats']:.1f} nats")
        else:
            test = metrics["test"]
            print(f"{name:16s} pixel AUROC {test['pixel_auroc']:.3f} AUPRC {test['pixel_auprc']:.3f} patch AUROC {test['patch_auroc']:.3f} "
                  f"Dice@val {test['dice']:.3f} (⌈Dice⌉ {test['best_dice_on_test']:.3f}); valid pixel AUROC {metrics['valid']['pixel_auroc']:.3f}; "
                  f"centre prior AUROC {test['no_model_centre_prior']['pixel_auroc']:.3f}; "
                  f"model × centre weight (not the model's map) {metrics['test_model_times_centre_weight']['pixel_auroc']:.3f}")
        results[name] = metrics
        if args.write and not args.limit:
            registry.update_card(name, root=args.checkpoint_root, metrics=metrics, evaluation_command=command)
    return results


if __name__ == "__main__":
    main()
