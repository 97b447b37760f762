"""The committed diffusion checkpoints, re-measured: the numbers in their cards must hold on a small fixed batch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from evaluation import diffusion as evaluation
from models import registry
from models.diffusion import add_noise, to_signed
from nndl_data import DatasetMissing
from nndl_data.diffusion import load_split

pytestmark = pytest.mark.checkpoint


def _card(name: str, key: str) -> dict:
    if not registry.available(name):
        pytest.skip(f"{name} not trained here (python -m training.diffusion)")
    metrics = registry.load_card(name).get("metrics", {})
    if key not in metrics:
        pytest.skip(f"{name} has no measured {key}; run python -m evaluation.diffusion")
    return metrics


def test_ddpm_class_consistency_on_the_fixed_batch_matches_the_card():
    """20 samples (2 per class, seed 0), guidance 3, 10 DDIM steps, judged by the attacks lab's ResNet-20: the same
    share as the evaluation measured (bf16 kernels are deterministic for fixed shapes; one sample of slack)."""
    metrics = _card(evaluation.DDPM, "fixed_batch")
    measured = evaluation.fixed_batch_consistency(registry.load(evaluation.DDPM), registry.load(evaluation.JUDGE))
    assert measured == pytest.approx(metrics["fixed_batch"]["class_consistency"], abs=1 / evaluation.FIXED_BATCH["samples"] + 1e-6)
    assert measured > 0.1  # better than chance, or the DDPM has not learnt the classes at all


def test_report_denoiser_mse_at_t5_matches_the_card_and_the_label_barely_matters():
    metrics = _card(evaluation.REPORT, "levels")
    try:
        images, labels = load_split("test")
    except DatasetMissing as error:
        pytest.skip(str(error))
    model = registry.load(evaluation.REPORT)
    x0 = to_signed(images[::10])
    noisy = add_noise(x0, 5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        output = model(noisy, labels[::10])
        shuffled = model(noisy, labels[::10].roll(1))
    assert F.mse_loss(output, x0).item() == pytest.approx(metrics["levels"]["5"]["mse"], rel=0.05)
    assert F.mse_loss(noisy, x0).item() == pytest.approx(metrics["levels"]["5"]["identity_mse"], rel=0.05)
    assert abs(F.mse_loss(shuffled, x0).item() - F.mse_loss(output, x0).item()) < 0.1 * F.mse_loss(output, x0).item()
