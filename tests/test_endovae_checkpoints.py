"""The committed EndoVAE checkpoints, re-measured on the first 16 Kvasir-SEG test frames: their cards must hold."""

from __future__ import annotations

import functools

import pytest

from evaluation import endovae as evaluation
from models import registry
from nndl_data import DatasetMissing
from nndl_data.endovae import load_split

pytestmark = pytest.mark.checkpoint
PSNR_TOLERANCE = 0.05  # dB; the cards were measured on this CPU, in fp32, from the same fp16 weights
TOLERANCE = 0.005  # SSIM, AUROC, AUPRC


@functools.cache
def _first_test_frames():
    try:
        test = load_split("test")
    except DatasetMissing as error:
        pytest.skip(str(error))
    return test.subset(range(min(evaluation.FIRST, len(test))))


def _measured(name: str) -> dict:
    if not registry.available(name):
        pytest.skip(f"{name} not trained here")
    metrics = registry.load_card(name).get("metrics", {})
    if "test_first16" not in metrics:
        pytest.skip(f"{name} has no measured metrics; run python -m evaluation.endovae")
    return metrics


@pytest.mark.parametrize("name", evaluation.RECONSTRUCTION)
def test_reconstruction_psnr_and_ssim_hold(name):
    card = _measured(name)["test_first16"]
    measured = evaluation.reconstruction_metrics(registry.load(name), _first_test_frames())
    assert measured["psnr"]["images"] == card["psnr"]["images"]
    assert measured["psnr"]["mean"] == pytest.approx(card["psnr"]["mean"], abs=PSNR_TOLERANCE)
    assert measured["ssim"]["mean"] == pytest.approx(card["ssim"]["mean"], abs=TOLERANCE)


def test_anomaly_auroc_holds():
    card = _measured("endovae-normal")["test_first16"]
    measured = evaluation.anomaly_metrics(registry.load("endovae-normal"), _first_test_frames(), with_curves=False)
    for metric in ("pixel_auroc", "pixel_auprc", "patch_auroc", "dice"):
        assert measured[metric] == pytest.approx(card[metric], abs=TOLERANCE), metric
    model = registry.load("endovae-normal")
    assert float(model.pixel_threshold) == pytest.approx(registry.load_card("endovae-normal")["thresholds"]["pixel_threshold"], rel=1e-3)
    settings = _measured("endovae-normal").get("map")
    if settings:  # the card was measured with the map the checkpoint carries
        assert settings == {"channels": model.config.anomaly_channels, "position_normalised": model.config.position_normalised,
                            "sigma": model.config.anomaly_sigma, "field_of_view_erosion": model.config.field_of_view_erosion}


def test_the_better_variant_beats_the_report_model_on_test():
    """The issue's comparison, from the cards (whole test split)."""
    if not all(registry.available(name) and "metrics" in registry.load_card(name) for name in evaluation.RECONSTRUCTION):
        pytest.skip("needs both reconstruction models with measured metrics")
    report, better = (registry.load_card(name)["metrics"]["test"] for name in evaluation.RECONSTRUCTION)
    assert better["psnr"]["mean"] > report["psnr"]["mean"] and better["ssim"]["mean"] > report["ssim"]["mean"]
