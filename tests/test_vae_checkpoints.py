"""The committed MNIST VAEs, re-measured on the first 500 test images: their cards (and test latents) must hold."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from evaluation import vae as evaluation
from models import registry
from nndl_data import DatasetMissing
from nndl_data.digits import load_mnist

pytestmark = pytest.mark.checkpoint
NATS = 0.05  # ELBO, KL, squared error per image: the cards were measured on this CPU, in fp32, from the same fp16 weights
TOLERANCE = 0.002  # SSIM; PSNR in dB


@functools.cache
def _first_test_images():
    try:
        images, labels = load_mnist("test")
    except DatasetMissing as error:
        pytest.skip(str(error))
    return images[: evaluation.FIRST], labels[: evaluation.FIRST]


def _card(name: str) -> dict:
    if not registry.available(name):
        pytest.skip(f"{name} not trained here (python -m training.vae --preset {name.removeprefix('vae-')})")
    card = registry.load_card(name)
    if f"test_first{evaluation.FIRST}" not in card.get("metrics", {}):
        pytest.skip(f"{name} has no measured metrics; run python -m evaluation.vae")
    return card


@pytest.mark.parametrize("name", evaluation.CHECKPOINTS)
def test_test_elbo_and_reconstruction_hold(name):
    card = _card(name)
    expected = card["metrics"][f"test_first{evaluation.FIRST}"]
    model = registry.load(name)
    images, labels = _first_test_images()
    measured = evaluation.measure(model, images, card["train_config"]["kl_weight"])
    assert measured["images"] == expected["images"] == evaluation.FIRST
    keys = ("elbo", "bernoulli_elbo", "kl", "squared_error_per_image") if model.config.variational else ("squared_error_per_image", "bce_per_image")
    for key in keys:
        assert measured[key] == pytest.approx(expected[key], abs=NATS), key
    assert measured["ssim"] == pytest.approx(expected["ssim"], abs=TOLERANCE)
    assert measured["psnr"] == pytest.approx(expected["psnr"], abs=TOLERANCE)
    stored = np.load(registry.checkpoint_dir(name) / "test_latents.npz")  # the tab's scatter is these weights' μ
    mu, _ = evaluation.encode_all(model, images)
    np.testing.assert_allclose(stored["mu"][: evaluation.FIRST].astype(np.float32), mu.numpy(), atol=0.02, rtol=0.01)
    assert stored["labels"][: evaluation.FIRST].tolist() == labels.tolist()


@pytest.mark.parametrize("vae, autoencoder", [("vae-bce", "vae-bce-ae"), ("vae-report", "vae-mse-ae")])
def test_the_vae_latent_is_close_to_the_prior_and_the_autoencoders_is_not(vae, autoencoder):
    """Q1 (a) of the report, measured: a β = 1 VAE's test μ spread on N(0, I)'s scale, a plain AE's far wider."""
    spread = {name: max(_card(name)["metrics"]["test"]["mu_std"]) for name in (vae, autoencoder)}
    assert spread[vae] < 2 and spread[autoencoder] > 2 * spread[vae]
