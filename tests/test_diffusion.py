"""Diffusion: the forward process against its closed form, DDIM determinism, classifier-free guidance, the report
denoiser's fixed conditioning, dry-run training with an exact resume, and the tab's pure functions on tiny models."""

from __future__ import annotations

import json

import pytest
import torch

from models import registry
from models.diffusion import (ClassConditionalDDPM, DDPMConfig, ReportDenoiser, ReportDenoiserConfig, add_noise, alphas_cumprod,
                              cosine_alphas_cumprod_closed_form, ddim_frames, ddim_sample, report_equivalent_step, sdedit)
from nndl_data.diffusion import balanced_subset
from training import diffusion as training
from tests.training_runs import dry_run

TINY = DDPMConfig(channels=(8, 16), attention=(False, False), layers_per_block=1, norm_groups=4)


@pytest.fixture(scope="module")
def tiny() -> ClassConditionalDDPM:
    torch.manual_seed(0)
    model = ClassConditionalDDPM(TINY).eval()
    with torch.no_grad():  # diffusers zero-initialises nothing we rely on; make the class embedding matter clearly
        model.unet.class_embedding.weight.mul_(5)
    return model


# ---- forward process ----


def test_cosine_schedule_is_the_closed_form_and_linear_ends_in_noise():
    torch.testing.assert_close(alphas_cumprod("squaredcos_cap_v2"), cosine_alphas_cumprod_closed_form(), rtol=1e-5, atol=1e-7)
    linear = alphas_cumprod("linear")
    assert linear[-1] == pytest.approx(4.0e-5, rel=0.1)  # spec §6.3: ᾱ_T ≈ 4e-5
    betas = 1 - linear[1:] / linear[:-1]
    assert betas[0] == pytest.approx(1e-4 + (0.02 - 1e-4) / 999, rel=1e-2) and betas[-1] == pytest.approx(0.02, rel=1e-3)


def test_forward_process_matches_q_xt_given_x0(tiny):
    """x_t = √ᾱ x0 + √(1 − ᾱ) ε exactly, and over many ε its mean and variance are those of q(x_t | x0)."""
    x0 = torch.rand(1, 3, 32, 32) * 2 - 1
    abar = cosine_alphas_cumprod_closed_form()
    for t in (0, 26, 500, 999):
        noise = torch.randn(1000, 3, 32, 32, generator=torch.Generator().manual_seed(t))
        x_t = tiny.q_sample(x0.expand(1000, -1, -1, -1), torch.full((1000,), t), noise)
        torch.testing.assert_close(x_t, abar[t].sqrt() * x0 + (1 - abar[t]).sqrt() * noise, rtol=1e-5, atol=1e-5)
        # the sample mean is within a few standard errors (√(1 − ᾱ)/√1000 ≤ 0.032) of √ᾱ·x0, the variance is 1 − ᾱ
        assert (x_t.mean(0) - abar[t].sqrt() * x0[0]).abs().mean().item() < 0.035
        assert x_t.var(0).mean().item() == pytest.approx(1 - abar[t].item(), rel=0.03, abs=1e-4)
        if t < 999:  # at the last step √ᾱ ≈ 0.006 amplifies float32 rounding
            torch.testing.assert_close(tiny.predict_x0(x_t[:2], torch.full((2,), t), noise[:2]), x0.expand(2, -1, -1, -1), atol=2e-3, rtol=0)


def test_report_noise_is_001_t_clipped_and_its_ddpm_equivalent_matches_the_spec():
    x0 = torch.zeros(1, 3, 32, 32)
    noisy = add_noise(x0, 5, generator=torch.Generator().manual_seed(0))
    assert noisy.std().item() == pytest.approx(0.05, rel=0.05)
    assert add_noise(torch.ones(1, 3, 8, 8), 10).max() <= 1
    assert report_equivalent_step(0.1, alphas_cumprod("linear")) in range(26, 31)  # spec §3.3 table: ≈ 28
    assert report_equivalent_step(0.05, alphas_cumprod("squaredcos_cap_v2")) in range(24, 29)  # ≈ 26


# ---- sampling and guidance ----


def test_guidance_one_is_the_conditional_prediction_and_three_extrapolates(tiny):
    x = torch.randn(4, 3, 32, 32)
    t = torch.tensor([10, 200, 500, 900])
    y = torch.tensor([3, 0, 8, 5])
    with torch.no_grad():
        conditional = tiny(x, t, y)
        unconditional = tiny(x, t, torch.full_like(y, 10))
        torch.testing.assert_close(tiny.guided_eps(x, t, y, 1.0), conditional)
        torch.testing.assert_close(tiny.guided_eps(x, t, y, 0.0), unconditional)
        torch.testing.assert_close(tiny.guided_eps(x, t, y, 3.0), unconditional + 3 * (conditional - unconditional), atol=1e-5, rtol=1e-5)
    assert (conditional - unconditional).abs().max() > 1e-3  # the label reaches the U-Net


def test_ddim_with_eta_zero_is_deterministic_for_a_seed(tiny):
    labels = torch.tensor([1, 7])
    run = lambda seed: ddim_sample(tiny, labels, guidance=3.0, steps=8, generator=torch.Generator().manual_seed(seed))  # noqa: E731
    first, again, other = run(0), run(0), run(1)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert (first - other).abs().max() > 1e-2
    assert first.min() >= -1 and first.max() <= 1


def test_frames_stream_every_step_and_sdedit_starts_at_t_star(tiny):
    frames = list(ddim_frames(tiny, torch.tensor([2]), steps=10, generator=torch.Generator().manual_seed(0)))
    assert [f.index for f in frames] == list(range(1, 11)) and frames[0].t == 999 and frames[-1].t < 100
    assert all(f.x0.abs().max() <= 1 for f in frames)
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    swapped = list(sdedit(tiny, image, torch.tensor([0]), 500, steps=10, generator=torch.Generator().manual_seed(0)))
    assert len(swapped) == 5 and swapped[0].t <= 500


# ---- the report's denoiser ----


def test_report_denoiser_has_the_report_size_fixes_the_crash_and_uses_the_label():
    model = ReportDenoiser(ReportDenoiserConfig())
    assert sum(p.numel() for p in model.parameters()) == 8323
    one_hot = torch.zeros(2, 10, 1, 1)
    with pytest.raises(RuntimeError):
        one_hot.repeat(1, 1, 32)  # the report's line as printed (§3.7.1)
    x = torch.rand(2, 3, 24, 40) * 2 - 1  # not square: both H and W must be expanded
    assert model(x, torch.tensor([0, 1])).shape == (2, 3, 24, 40)
    # the label reaches the network: the output and the gradient depend on it
    labels = torch.tensor([3, 3])
    out_cat, out_plane = model(x, labels), model(x, torch.tensor([0, 0]))
    assert (out_cat - out_plane).abs().max() > 0
    model.zero_grad()
    model(x, labels).sum().backward()
    first_layer = model.encoder[0].weight.grad  # (64, 13, 3, 3): input channels 3 … 12 are the one-hot planes
    assert first_layer[:, 3 + 3].abs().sum() > 0 and first_layer[:, 3 + 4].abs().sum() == 0


# ---- data, training, evaluation helpers ----


def test_balanced_subset_is_interleaved_seeded_and_distinct():
    labels = torch.arange(200) % 10
    chosen = balanced_subset(labels, 5, seed=1)
    assert labels[chosen[:10]].tolist() == list(range(10)) and len(set(chosen.tolist())) == 50
    assert torch.equal(chosen, balanced_subset(labels, 5, seed=1)) and not torch.equal(chosen, balanced_subset(labels, 5, seed=2))


def _train(tmp_path, run: str, preset: str = "cpu", **overrides):
    return dry_run(training, tmp_path, run, preset, **overrides)


@pytest.mark.parametrize("preset, name", [("cpu", "diffusion-ddpm"), ("report", "diffusion-report")])
def test_dry_run_then_resume_after_interruption_gives_the_same_weights(tmp_path, preset, name):
    whole = _train(tmp_path, "whole", preset)
    card = json.loads((whole / "card.json").read_text())
    assert card["steps"] == 4 and card["finished"]
    first = registry.load(name, root=whole.parent)
    _train(tmp_path, "parts", preset, max_minutes=1e-9)  # stops after its first step, keeping state
    assert torch.load(tmp_path / "parts" / "last.pt", weights_only=True)["step"] == 1
    parts = _train(tmp_path, "parts", preset)
    second = registry.load(name, root=parts.parent)
    for (key, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=key)


def test_ema_warms_up_then_follows_slowly():
    module = torch.nn.Linear(2, 2)
    ema = training.EMA(module, decay=0.999)
    start = ema.module.weight.detach().clone()
    with torch.no_grad():
        module.weight.fill_(1.0)
    ema.update(module)  # first update: decay (1 + 1)/(10 + 1)
    decay = 2 / 11
    torch.testing.assert_close(ema.module.weight, decay * start + (1 - decay) * torch.ones(2, 2))
    for _ in range(5000):
        ema.update(module)
    assert ema.module.weight.requires_grad is False and int(ema.updates) == 5001
    torch.testing.assert_close(ema.module.weight, torch.ones(2, 2), atol=1e-2, rtol=0)


# ---- the tab's pure functions ----


def test_tab_functions_on_tiny_models(tiny):
    from demos import diffusion as demo

    judge = registry.create("attacks-resnet").eval()
    frames = list(demo.generation_frames(tiny, judge, 3, 3.0, 10, 0, 2, updates=5))
    assert len(frames) == 5 and frames[-1][0].shape == frames[-1][1].shape and "judge" in frames[-1][2]
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    noisy, output, every, numbers = demo.report_denoise(ReportDenoiser(ReportDenoiserConfig()).eval(), image, 3, 5, 0)
    torch.testing.assert_close(every[3:4], output)
    assert numbers["identity_psnr"] == pytest.approx(26.0 + 6.0, abs=1.0)  # σ = 0.05 on a [−1, 1] scale: 10·log10(4/0.0025)
    for mode, t in (("report", 0), ("ddpm", 0)):
        torch.testing.assert_close(demo.forward_noise(image, mode, t, t, "squaredcos_cap_v2", 0), image, atol=0.05, rtol=0)  # DDPM t = 0: √(1 − ᾱ_0) ≈ 0.006
    assert "Noise Level 0.5" in demo.noise_schedule_text("report", 5, 0, "linear")
    assert "ᾱ_t" in demo.noise_schedule_text("ddpm", 5, 250, "squaredcos_cap_v2")
