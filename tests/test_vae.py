"""MNIST VAE (vae): the loss terms on hand-checked cases, the report's architecture, dry-run training with an exact
resume, the evaluation, and the tab's pure functions on tiny models (plane ↔ z, manifold, interpolation, drawings,
seeded samples, bad uploads, concurrent requests)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from evaluation import vae as evaluation
from models import registry
from models.vae import (GAUSSIAN_CONSTANT, VAE, VAEConfig, cross_entropy, kl_divergence, negative_log_likelihood, reconstruction_loss,
                        squared_error)
from training import vae as training
from tests.concurrency import answers_together
from tests.training_runs import dry_run

TINY = VAEConfig(width=4, hidden_dim=16)
TINY_AE = VAEConfig(width=4, hidden_dim=16, variational=False, likelihood="bernoulli")


# ---- the loss terms, by hand ----


def test_kl_on_a_hand_checked_case():
    mu = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(4.0)], [0.0, 0.0]])
    # ½(μ² + σ² − 1 − log σ²) per dimension: ½(1 + 1 − 1 − 0) = 0.5 and ½(0 + 4 − 1 − log 4) = 0.80685
    torch.testing.assert_close(kl_divergence(mu, logvar), torch.tensor([0.5 + 0.5 * (3 - math.log(4)), 0.0]))
    torch.testing.assert_close(kl_divergence(mu, None), torch.zeros(2))  # a plain autoencoder has no posterior
    reference = torch.distributions.kl_divergence(torch.distributions.Normal(mu, torch.exp(0.5 * logvar)), torch.distributions.Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(kl_divergence(mu, logvar), reference)


def test_reconstruction_terms_on_a_hand_checked_case():
    x = torch.zeros(1, 1, 28, 28)
    x[..., :14, :] = 1.0  # half the pixels on
    logits = torch.zeros_like(x)  # x̂ = 0.5 everywhere
    torch.testing.assert_close(squared_error(logits, x), torch.tensor([784 * 0.25]))  # 196
    torch.testing.assert_close(cross_entropy(logits, x), torch.tensor([784 * math.log(2)]))
    torch.testing.assert_close(reconstruction_loss(logits, x, "mse"), torch.tensor([196.0]))
    assert reconstruction_loss(logits, x, "bce") == pytest.approx(543.427, abs=1e-3)
    with pytest.raises(ValueError, match="mse"):
        reconstruction_loss(logits, x, "l1")


def test_the_likelihoods_are_the_gaussian_with_half_variance_and_the_bernoulli():
    """MSE-sum is −log N(x; x̂, ½I) minus 392·log π, so the report's loss is −ELBO up to a constant."""
    assert GAUSSIAN_CONSTANT == pytest.approx(392 * math.log(math.pi))
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 1, 28, 28, generator=generator)
    x = (torch.rand(3, 1, 28, 28, generator=generator) > 0.5).float()
    gaussian = -torch.distributions.Normal(torch.sigmoid(logits), math.sqrt(0.5)).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(negative_log_likelihood(logits, x, "gaussian"), gaussian)
    bernoulli = -torch.distributions.Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(negative_log_likelihood(logits, x, "bernoulli"), bernoulli)


# ---- the model ----


def test_the_report_architecture_has_its_shapes_and_844549_parameters():
    model = VAE(VAEConfig())
    encoder = sum(p.numel() for module in (model.encoder, model.fc_mu, model.fc_logvar) for p in module.parameters())
    decoder = sum(p.numel() for module in (model.from_latent, model.decoder) for p in module.parameters())
    assert (encoder, decoder) == (420_868, 423_681)  # spec §1.4
    x = model.example_input(3)
    logits, mu, logvar = model(x)
    assert logits.shape == x.shape and mu.shape == logvar.shape == (3, 2)
    plain = VAE(VAEConfig(variational=False))
    assert plain.fc_logvar is None and sum(p.numel() for p in plain.parameters()) == 844_549 - 258
    with pytest.raises(ValueError, match="likelihood"):
        VAE(VAEConfig(likelihood="laplace"))


@pytest.mark.parametrize("config", [TINY, TINY_AE], ids=["vae", "ae"])
def test_reconstruction_is_deterministic_training_samples_and_gradients_reach_everything(config):
    torch.manual_seed(0)
    model = VAE(config)
    x = model.example_input(4)
    model.eval()
    torch.testing.assert_close(model.reconstruct(x), model.reconstruct(x), rtol=0, atol=0)  # z = μ (the report sampled)
    model.train()
    first, second = model(x)[0], model(x)[0]
    assert torch.equal(first, second) != config.variational  # training draws z = μ + σ·ε; a plain AE never samples
    for loss in ("mse", "bce"):
        model.zero_grad()
        logits, mu, logvar = model(x)
        (reconstruction_loss(logits, x, loss) + kl_divergence(mu, logvar)).sum().backward()
        missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
        assert not missing, (loss, missing)


# ---- training and evaluation ----


def _train(tmp_path, run: str, preset: str = "report", **overrides):
    return dry_run(training, tmp_path, run, preset, **overrides)


def test_dry_run_then_resume_after_interruption_gives_the_same_weights(tmp_path):
    whole = _train(tmp_path, "whole")
    card = json.loads((whole / "card.json").read_text())
    assert card["steps"] == 4 and card["finished"] and card["train_config"]["loss"] == "mse" and (whole / "log.csv").exists()
    _train(tmp_path, "parts", max_minutes=1e-9)  # stops after its first step, keeping state
    assert torch.load(tmp_path / "parts" / "last.pt", weights_only=True)["step"] == 1
    parts = _train(tmp_path, "parts")
    first, second = registry.load("vae-report", root=whole.parent), registry.load("vae-report", root=parts.parent)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    log = (tmp_path / "parts" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,loss,reconstruction,kl") and [int(row.split(",")[0]) for row in log[1:]] == [1, 2, 3, 4]


def test_presets_name_their_checkpoints_and_the_plain_autoencoder_has_no_posterior(tmp_path):
    assert {"report", "bce", "bce-ae", "bce-beta4", "mse-ae", "mse-beta4", "better", "cpu"} <= set(training.PRESETS)
    report = training.PRESETS["report"]
    assert (report.loss, report.kl_weight, report.latent_dim, report.batch_size, report.learning_rate, report.epochs) == ("mse", 1.0, 2, 128, 1e-3, 10)
    directory = _train(tmp_path, "ae", "bce-ae")
    model = registry.load("vae-bce-ae", root=directory.parent)
    assert directory.name == "vae-bce-ae" and not model.config.variational and model.config.likelihood == "bernoulli"
    images = training.generated_digits(12, seed=1)
    metrics, latents = evaluation.evaluate(model, 0.0, (images, torch.arange(12) % 10), None)
    assert "elbo" not in metrics["test"] and "kl" not in metrics["test"] and "logvar" not in latents
    assert latents["mu"].shape == (12, 2) and latents["mu"].dtype == np.float16


def test_evaluation_computes_the_elbo_it_describes():
    torch.manual_seed(0)
    model = VAE(VAEConfig(width=4, hidden_dim=16, likelihood="bernoulli")).eval()
    images = training.generated_digits(10, seed=2)
    labels = torch.arange(10)
    metrics, latents = evaluation.evaluate(model, 4.0, (images, labels), (training.generated_digits(30, seed=3), torch.arange(30) % 10))
    test = metrics["test"]
    x = evaluation.as_images(images)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        generator = torch.Generator().manual_seed(0)
        nll, kl = torch.zeros(10, dtype=torch.float64), kl_divergence(mu, logvar)
        first_draw = None
        for draw in range(evaluation.ELBO_SAMPLES):
            logits = model.decode_logits(mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=generator))
            nll += cross_entropy(logits, x).double()
            first_draw = logits if first_draw is None else first_draw
        x_hat = model.reconstruct(x)
    assert test["elbo"] == pytest.approx(float((-(nll / evaluation.ELBO_SAMPLES) - kl.double()).mean()), rel=1e-6)
    assert test["bernoulli_elbo"] == pytest.approx(test["elbo"], rel=1e-6)  # a Bernoulli model: the same number
    assert test["kl"] == pytest.approx(float(kl.mean()), rel=1e-5) and sum(test["kl_per_dimension"]) == pytest.approx(test["kl"], rel=1e-5)
    assert test["report_objective"] == pytest.approx(float((cross_entropy(first_draw, x) + 4.0 * kl).mean()), rel=1e-5)  # β from training
    assert test["squared_error_per_image"] == pytest.approx(float((x_hat - x).pow(2).sum() / 10), rel=1e-5)
    assert test["squared_error_per_pixel"] == pytest.approx(test["squared_error_per_image"] / 784)
    assert 0 <= test["knn5_digit_accuracy"] <= 1 and test["images"] == 10 and metrics["test_first500"]["images"] == 10
    np.testing.assert_allclose(latents["mu"], mu.numpy(), atol=2e-3)
    assert latents["labels"].tolist() == list(range(10)) and latents["logvar"].shape == (10, 2)


# ---- the tab's pure functions (tiny models injected) ----


@pytest.fixture
def demo(monkeypatch):
    import demos.vae as demo_module

    torch.manual_seed(0)
    models = {name: VAE(TINY_AE if name.endswith("-ae") else TINY).eval() for name in demo_module.CHECKPOINTS}
    rng = np.random.default_rng(0)
    latents = demo_module.Latents(rng.normal(size=(500, 2)).astype(np.float32), rng.integers(0, 10, 500), None)
    monkeypatch.setattr(demo_module, "load_model", lambda name: models[name])
    monkeypatch.setattr(demo_module, "test_latents", lambda name: latents)
    for cached in (demo_module.base_plane, demo_module.comparison_image):
        cached.cache_clear()
    yield demo_module
    for cached in (demo_module.base_plane, demo_module.comparison_image):
        cached.cache_clear()


LABEL = "Report's VAE: MSE-sum + KL, β 1"


def test_the_plane_maps_pixels_to_z_and_back(demo):
    plane = demo.base_plane("vae-report")
    assert plane.image.shape == (500, 560, 3) and plane.limit == 4.0
    for z in [(0.0, 0.0), (1.5, -2.0), (-3.9, 3.9)]:
        x, y = plane.to_pixel(z)
        assert plane.to_latent(x, y) == pytest.approx(z, abs=1e-9)
    left, bottom, width, height = demo.AXES_BOX
    assert plane.to_latent(left, 500 - bottom - height) == pytest.approx((-4.0, 4.0))  # top-left corner of the axes
    assert plane.to_latent(0, 0) == (-4.0, 4.0)  # outside the axes: clipped
    marked = demo.draw(plane, points=[(0.0, 0.0)])
    x, y = (round(v) for v in plane.to_pixel((0.0, 0.0)))
    assert (marked[y, x - 8] == 0).all() and not np.array_equal(marked, plane.image)  # the cross's arm is drawn at z

    class Click:
        index = [round(plane.to_pixel((1.0, -0.5))[0]), round(plane.to_pixel((1.0, -0.5))[1])]

    z1, z2, image, digit, text = demo._click(LABEL, Click())
    assert (z1, z2) == pytest.approx((1.0, -0.5), abs=0.02) and digit.shape == (196, 196) and "nearest test μ" in text


def test_manifold_grid_layout_and_quantiles(demo):
    z = demo.manifold_z(3, 2.0, "linear")
    assert z[0].tolist() == [-2.0, 2.0] and z[2].tolist() == [2.0, 2.0] and z[-1].tolist() == [2.0, -2.0]  # rows from the top
    quantiles = demo.manifold_z(3, 1.0, "quantiles")
    assert quantiles[0, 0] == pytest.approx(-1.6449, abs=1e-4) and quantiles[4].tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    model = demo.load_model("vae-report")
    assert demo.manifold(model, 5, 3.0).shape == (140, 140)
    grid, plane = demo._manifold(LABEL, 15, 3.0, "Gaussian quantiles Φ⁻¹(0.05 … 0.95)")
    assert grid.shape == (15 * 28 * 2, 15 * 28 * 2) and plane.shape == (500, 560, 3)


def test_interpolation_starts_and_ends_at_the_two_encodings(demo):
    model = demo.load_model("vae-report")
    first, second = np.zeros((28, 28), np.float32), np.zeros((28, 28), np.float32)
    first[6:22, 12:16], second[8:20, 6:22] = 1.0, 1.0
    result = demo.interpolate(model, first, second, steps=6)
    np.testing.assert_allclose(result.path[0], demo.encode(model, first)[0], atol=1e-6)
    np.testing.assert_allclose(result.path[-1], demo.encode(model, second)[0], atol=1e-6)
    assert result.strip.shape == (28, 8 * 30 - 2) and result.crossfade.shape == (28, 6 * 30 - 2)
    names = [e.label for e in demo.example_digits()]
    strip, crossfade, plane = demo._interpolate(LABEL, names[0], names[1], 10)
    assert strip.shape == (112, 4 * (12 * 30 - 2))


def test_drawings_become_mnist_style_digits():
    import demos.vae as demo_module

    assert demo_module.digit_from_drawing(np.zeros((280, 280, 4), np.uint8)) is None  # nothing drawn
    stroke = np.zeros((280, 280, 4), np.uint8)  # black ink on a transparent canvas, off-centre
    stroke[30:150, 20:60, 3] = 255
    digit = demo_module.digit_from_drawing(stroke)
    assert digit.shape == (28, 28) and digit.dtype == np.float32 and 0 <= digit.min() and digit.max() <= 1
    rows, columns = np.nonzero(digit > 0.5)
    assert rows.max() - rows.min() + 1 <= 21 and rows.max() - rows.min() + 1 >= 18  # fits 20 px, aspect kept
    from scipy import ndimage

    assert ndimage.center_of_mass(digit) == pytest.approx((13.5, 13.5), abs=0.3)  # centred by its mass, as MNIST
    white_paper = np.full((280, 280, 3), 255, np.uint8)
    white_paper[30:150, 20:60] = 0
    np.testing.assert_allclose(demo_module.digit_from_drawing(white_paper), digit, atol=1e-6)
    blackboard = np.zeros((200, 200), np.uint8)
    blackboard[30:150, 20:60] = 255
    assert demo_module.digit_from_drawing(blackboard).sum() == pytest.approx(digit.sum(), rel=0.05)


def test_encoding_sampling_and_the_report_figure_are_seeded_per_request(demo):
    model = demo.load_model("vae-report")
    digit = demo.read_digit(demo.example_digits()[0].path)
    first, again, other = (demo.encode_digit(model, digit, seed) for seed in (3, 3, 4))
    np.testing.assert_array_equal(first.samples, again.samples)
    assert not np.array_equal(first.sample_z, other.sample_z) and first.samples.shape == (8, 28, 28)
    assert first.sigma.shape == (2,) and (first.sigma > 0).all() and -1 <= first.ssim <= 1
    plain = demo.encode_digit(demo.load_model("vae-bce-ae"), digit)
    assert plain.sigma is None and len(plain.samples) == 0
    grid, z = demo.prior_samples(model, 16, 1.0, 5)
    _, fewer = demo.prior_samples(model, 4, 1.0, 5)
    np.testing.assert_array_equal(fewer, z[:4])  # the i-th sample does not depend on the count
    cold, _ = demo.prior_samples(model, 4, 0.0, 5)  # T = 0: every sample is the decoded origin
    assert np.array_equal(cold[:, :28], cold[:, 30:58]) and grid.shape == (2 * 30 - 2, 8 * 30 - 2)
    panels = demo._encode_example(LABEL, demo.example_digits()[0].label, 0)
    assert panels[0].shape == (500, 560, 3) and panels[3] is not None and "σ = (" in panels[4]
    assert "no σ" in demo._encode_example("BCE, plain autoencoder (β 0)", demo.example_digits()[0].label, 0)[4]
    assert demo._report_figure(LABEL, 0).shape == (4 * (3 * 30 - 2), 4 * (5 * 30 - 2))
    assert demo.comparison_image().ndim == 3 and "the report" in demo.results_markdown()


def test_examples_fall_back_to_the_test_digits_the_pixelda_tab_ships(monkeypatch, tmp_path):
    import demos.vae as demo_module

    monkeypatch.setenv("NNDL_DATA_ROOT", str(tmp_path))  # a data root without MNIST
    demo_module.example_digits.cache_clear()
    try:
        found = demo_module.example_digits()
        assert demo_module.shipped_only()
    finally:
        demo_module.example_digits.cache_clear()
    assert sorted(e.digit for e in found) == list(range(10)) and [e.index for e in found] == sorted(e.index for e in found)
    assert all(Path(e.path).parent == demo_module.SHIPPED and Image.open(e.path).size == (28, 28) for e in found)
    zero = next(e for e in found if e.digit == 0)
    assert zero.index == 3 and zero.label == "test #3: a 0"  # MNIST test image 3 is the first 0


def test_bad_inputs_answer_with_messages(demo, tmp_path):
    import gradio as gr

    from tests.bad_uploads import MUST_ACCEPT, MUST_REFUSE, bad_image_files

    files = bad_image_files(tmp_path / "bad")
    for case in MUST_REFUSE:
        with pytest.raises(gr.Error):
            demo._encode_upload(LABEL, str(files[case]), 0)
    for case in MUST_ACCEPT:
        demo._encode_upload(LABEL, str(files[case]), 0)
    with pytest.raises(gr.Error, match="Draw"):
        demo._encode_drawing(LABEL, {"composite": np.zeros((50, 50, 4), np.uint8)}, 0)
    with pytest.raises(gr.Error, match="Upload"):
        demo._encode_upload(LABEL, None, 0)
    with pytest.raises(gr.Error, match="test digit"):
        demo._interpolate(LABEL, "nope", "nothing", 5)
    with pytest.raises(gr.Error, match="Unknown model"):
        demo._decode("a model that does not exist", 0, 0)
    with pytest.raises(gr.Error, match="between"):
        demo._sample(LABEL, 1000, 1.0, 0)
    with pytest.raises(gr.Error, match="between"):
        demo._manifold(LABEL, 500, 3.0, "evenly spaced")


def test_identical_concurrent_requests_get_identical_answers(demo):
    def request():
        return demo._decode(LABEL, 0.7, -0.3), demo._sample(LABEL, 8, 1.0, 7)

    expected = request()
    for decoded, sampled in answers_together(request):
        for got, want in zip(decoded + sampled, expected[0] + expected[1]):
            assert got == want if isinstance(want, str) else np.array_equal(got, want)
