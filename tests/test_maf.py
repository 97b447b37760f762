"""MAF: the flow's mathematics on tiny flows (autoregressive property, log-det, inverses, fast == naive sampler),
the pixel and feature models, the MVTec loader on generated folders, dry-run training with an exact resume, and
the evaluation on generated data."""

import json
import math

import numpy as np
import pytest
import torch

from models import registry
from models.maf import MADE, FeatureFlow, FeatureFlowConfig, MAFStack, PixelMAF, PixelMAFConfig, gaussian_blur, hidden_degrees, positional_encoding
from nndl_data.maf import has_masks, list_samples, load_images, load_masks, train_validation_split, write_fake_mvtec


def randomise_outputs(module: torch.nn.Module, std: float = 0.5, seed: int = 0) -> torch.nn.Module:
    """The zero-initialised output layers make every fresh block the identity; tests need non-trivial blocks."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for made in (m for m in module.modules() if isinstance(m, MADE)):
            made.output.weight.copy_(torch.randn(made.output.weight.shape, generator=generator) * std)
            made.output.bias.copy_(torch.randn(made.output.bias.shape, generator=generator) * std)
    return module


# ---- the flow's mathematics ----
@pytest.mark.parametrize("hidden,degrees,condition_dim", [((12, 12), "even", 0), ((7,), "even", 3), ((5, 9, 6), "made", 2), ((40, 40), "even", 0)])
def test_made_is_autoregressive(hidden, degrees, condition_dim):
    torch.manual_seed(0)
    dim = 7
    made = randomise_outputs(MADE(dim, hidden, condition_dim, degrees=degrees)).double()
    condition = torch.randn(1, condition_dim, dtype=torch.float64) if condition_dim else None
    x = torch.randn(1, dim, dtype=torch.float64)
    for output in (0, 1):  # μ and α
        jacobian = torch.autograd.functional.jacobian(lambda v: made(v, condition)[output], x)[0, :, 0, :]  # (D out, D in)
        assert torch.all(jacobian.triu() == 0), "∂out_i/∂x_j must be 0 for j ≥ i"
    assert torch.all(made(torch.zeros(1, dim, dtype=torch.float64), condition)[1].abs() <= made.clamp)


def test_zero_initialised_blocks_are_the_identity():
    flow = MAFStack(6, (16, 16), 3)
    x = torch.randn(4, 6)
    z, log_density = flow(x)
    torch.testing.assert_close(z, x.flip(-1) if len(flow.blocks) % 2 == 0 else x)
    torch.testing.assert_close(log_density.sum(-1), -0.5 * (x.pow(2) + math.log(2 * math.pi)).sum(-1))


@pytest.mark.parametrize("blocks", [1, 2, 3])
def test_log_determinant_matches_the_brute_force_jacobian(blocks):
    torch.manual_seed(1)
    dim = 5
    flow = randomise_outputs(MAFStack(dim, (16, 16), blocks, condition_dim=2), seed=blocks).double()
    x, condition = torch.randn(3, dim, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    z, log_density = flow(x, condition)
    for row in range(3):
        jacobian = torch.autograd.functional.jacobian(lambda v: flow(v[None], condition[row : row + 1])[0][0], x[row])
        expected = -0.5 * (z[row].pow(2) + math.log(2 * math.pi)).sum() + torch.linalg.slogdet(jacobian)[1]
        torch.testing.assert_close(log_density[row].sum(), expected)


@pytest.mark.parametrize("hidden,degrees", [((16, 16), "even"), ((3,), "even"), ((6, 11, 5), "made"), ((64, 64), "even")])
def test_inverses_recover_x_and_the_fast_sampler_equals_the_naive_one(hidden, degrees):
    torch.manual_seed(2)
    dim = 9
    flow = randomise_outputs(MAFStack(dim, hidden, 3, condition_dim=4, degrees=degrees), std=0.3).double()
    x, condition = torch.randn(5, dim, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    z, _ = flow(x, condition)
    fast, naive = flow.inverse(z, condition), flow.inverse_naive(z, condition)
    torch.testing.assert_close(fast, x, rtol=0, atol=1e-10)
    torch.testing.assert_close(naive, x, rtol=0, atol=1e-10)
    torch.testing.assert_close(fast, naive, rtol=0, atol=1e-10)


def test_degree_strategies_and_the_made_paper_pitfall():
    dim, width = 1000, 16
    even, made = hidden_degrees(dim, width, "even"), hidden_degrees(dim, width, "made")
    assert even.min() == 1 and even.max() > dim * 0.9 and torch.all(even[1:] >= even[:-1])
    assert made.max() == width  # with H ≪ D every output only sees the first H inputs
    with pytest.raises(ValueError, match="even"):
        hidden_degrees(dim, width, "random")


# ---- pixel MAF ----
def tiny_pixel(**overrides) -> PixelMAF:
    torch.manual_seed(0)
    return PixelMAF(PixelMAFConfig(**{"image_size": 4, "channels": 1, "hidden": (24, 24), "blocks": 2, **overrides})).eval()


def test_pixel_maf_bits_per_dim_and_its_pixel_map_agree():
    model = randomise_outputs(tiny_pixel(), std=0.05)
    images = torch.rand(3, 3, 4, 4)
    bits = model(images)
    assert bits.shape == (3,) and torch.isfinite(bits).all()
    pixel_map = model.pixel_map(images)  # (B, S, S) bits, summed over channels
    assert pixel_map.shape == (3, 4, 4)
    torch.testing.assert_close(pixel_map.flatten(1).sum(1), bits * model.dim, rtol=1e-5, atol=1e-4)


def test_pixel_maf_converts_rgb_to_luma_on_the_8bit_lattice_and_refuses_wrong_sizes():
    model = tiny_pixel()
    gray = torch.full((1, 3, 4, 4), 100 / 255)
    assert torch.equal(model.to_lattice(gray), torch.full((1, 1, 4, 4), 100.0))
    with pytest.raises(ValueError, match="resize"):
        model(torch.rand(1, 3, 8, 8))


def test_identity_pixel_maf_matches_the_closed_form_density():
    """A fresh (identity) flow: log p(y) = Σ log N(s_i) + Σ log|ds_i/dy_i| with s = logit(λ + (1 − 2λ)y)."""
    model = tiny_pixel(channels=3)
    images = torch.randint(0, 256, (2, 3, 4, 4)).float() / 255
    lam = model.config.logit_lambda
    y = (images * 255 + 0.5).flatten(1) / 256
    p = lam + (1 - 2 * lam) * y
    s = torch.log(p / (1 - p))
    log_py = (-0.5 * (s**2 + math.log(2 * math.pi)) + math.log(1 - 2 * lam) - torch.log(p * (1 - p))).sum(1)
    expected = (-log_py + model.dim * math.log(256)) / (model.dim * math.log(2))
    torch.testing.assert_close(model(images), expected, rtol=1e-5, atol=1e-5)


def test_pixel_maf_samples_are_seeded_in_range_and_exact():
    model = randomise_outputs(tiny_pixel(channels=3), std=0.05)
    first = model.sample(3, temperature=0.8, generator=torch.Generator().manual_seed(5))
    again = model.sample(3, temperature=0.8, generator=torch.Generator().manual_seed(5))
    naive = model.sample(3, temperature=0.8, generator=torch.Generator().manual_seed(5), naive=True)
    assert first.shape == (3, 3, 4, 4) and first.min() >= 0 and first.max() <= 1
    assert torch.equal(first, again)
    torch.testing.assert_close(first, naive, rtol=0, atol=1e-5)
    zero = model.sample(2, temperature=0.0)
    assert torch.equal(zero[0], zero[1])  # T = 0: the mode of the base, the same image


def test_training_loss_reaches_every_parameter():
    model = tiny_pixel().train()
    model(torch.rand(4, 3, 4, 4), torch.rand(4, model.dim)).mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    flow = FeatureFlow(FeatureFlowConfig(hidden=(16,), blocks=2)).train()
    flow(*flow.example_input(2)).mean().backward()
    assert all(p.grad is not None for name, p in flow.named_parameters()), [n for n, p in flow.named_parameters() if p.grad is None]


# ---- feature flow ----
def test_positional_encoding_and_blur():
    encoding = positional_encoding(4, 5, 3)
    assert encoding.shape == (20, 12) and torch.allclose(encoding[:, :6].pow(2) + encoding[:, 6:].pow(2), torch.ones(20, 6))
    assert len({tuple(row.tolist()) for row in encoding}) == 20  # every position distinct
    spike = torch.zeros(1, 21, 21)
    spike[0, 10, 10] = 1
    blurred = gaussian_blur(spike, 2.0)
    assert blurred.sum().item() == pytest.approx(1.0, abs=1e-5) and blurred[0, 10, 10] == blurred.max()


def test_feature_flow_maps_scores_and_backbone_shapes():
    torch.manual_seed(0)
    model = FeatureFlow(FeatureFlowConfig(image_size=64, hidden=(16,), blocks=2)).eval()
    features = model.features(torch.rand(2, 3, 64, 64))
    assert [tuple(f.shape) for f in features] == [(2, 40, 8, 8), (2, 112, 4, 4)]
    maps = model.anomaly_map(torch.rand(2, 3, 64, 64))
    assert maps.shape == (2, 64, 64) and torch.isfinite(maps).all()
    scores = model.image_score(maps)
    torch.testing.assert_close(scores, maps.flatten(1).max(1).values)


# ---- the MVTec loader ----
@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_loader_reads_the_mvtec_layout(tmp_path, suffix):
    write_fake_mvtec(tmp_path, "capsule", train=5, test={"good": 2, "crack": 3, "squeeze": 1}, size=40, suffix=suffix)
    train = list_samples("capsule", "train", tmp_path)
    test = list_samples("capsule", "test", tmp_path)
    assert len(train) == 5 and all(s.defect == "good" for s in train)
    assert [s.defect for s in test] == ["good"] * 2 + ["crack"] * 3 + ["squeeze"]  # good first
    assert test[2].mask_path.name == "000_mask.png" and test[0].mask_path is None and test[-1].mask_path.parent.name == "squeeze"
    images, masks = load_images(test, 16), load_masks(test, 16)
    assert images.shape == (6, 3, 16, 16) and images.dtype == torch.uint8
    assert masks.shape == (6, 16, 16) and masks[2:5].any() and not masks[:2].any() and has_masks(test)


def test_loader_without_masks_and_errors(tmp_path):
    write_fake_mvtec(tmp_path, "bottle", train=3, test={"good": 1, "broken_large": 2}, masks=False)
    test = list_samples("bottle", "test", tmp_path)
    assert not has_masks(test) and not load_masks(test, 8).any()
    with pytest.raises(ValueError, match="split"):
        list_samples("bottle", "validation", tmp_path)
    from nndl_data import DatasetMissing

    with pytest.raises(DatasetMissing, match="mvtec/carpet"):
        list_samples("carpet", "train", tmp_path)


def test_validation_split_is_seeded_disjoint_and_complete():
    train, validation = train_validation_split(219, 0.1, seed=0)
    assert len(validation) == 22 and not set(train) & set(validation) and sorted(train + validation) == list(range(219))
    assert train_validation_split(219, 0.1, seed=0) == (train, validation) != train_validation_split(219, 0.1, seed=1)


# ---- training: dry run, resume; evaluation ----
def _train(tmp_path, run: str, model: str = "pixel", **overrides):
    import training.maf as training

    cfg = training.TrainConfig(model=model, dry_run=True, run_dir=str(tmp_path / run), checkpoint_root=str(tmp_path / f"checkpoints-{run}"), **overrides)
    return training.main(cfg)


@pytest.mark.parametrize("model", ["pixel", "features"])
def test_dry_run_then_resume_after_interruption_gives_the_same_weights(tmp_path, model):
    whole = _train(tmp_path, "whole", model)
    card = json.loads((whole / "card.json").read_text())
    assert card["steps"] == 4 and card["finished"] and (whole / "log.csv").exists()
    first = registry.load(f"maf-{model}-capsule", root=whole.parent)
    assert float(first.threshold) == pytest.approx(card["threshold"]["value"], rel=1e-3)  # travels with the weights
    _train(tmp_path, "parts", model, max_minutes=1e-9)  # stops after its first step, keeping state
    assert torch.load(tmp_path / "parts" / "last.pt", weights_only=True)["step"] == 1
    parts = _train(tmp_path, "parts", model)
    second = registry.load(f"maf-{model}-capsule", root=parts.parent)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    steps = [int(line.split(",")[0]) for line in (tmp_path / "parts" / "log.csv").read_text().splitlines()[1:]]
    assert steps == sorted(set(steps))


def test_learning_rate_schedule_is_a_pure_function_of_the_step():
    import training.maf as training

    cfg = training.resolve(training.TrainConfig(steps=100, warmup_steps=10, learning_rate=1e-3, final_learning_rate_fraction=0.1))
    rates = [training.learning_rate(cfg, step) for step in range(100)]
    assert rates[9] == pytest.approx(1e-3) and rates[0] == pytest.approx(1e-4) and rates[-1] == pytest.approx(1e-4, rel=0.05)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))


def test_evaluation_measures_every_metric_on_generated_data(tmp_path, monkeypatch):
    import evaluation.maf as evaluation

    directory = _train(tmp_path, "run", "pixel")
    monkeypatch.setenv("NNDL_CHECKPOINTS", str(directory.parent))
    results = evaluation.evaluate("maf-pixel-capsule", root=tmp_path / "run" / "fake-data")
    metrics = results["metrics"]
    assert set(metrics["image_auroc_per_defect"]) == {"crack", "squeeze"}
    assert 0 <= metrics["image_auroc"] <= 1 and 0 <= metrics["pixel_auroc"] <= 1
    assert metrics["test_images"] == {"good": 3, "defective": 5}
    card = registry.load_card("maf-pixel-capsule")
    assert card["metrics"]["image_auroc"] == metrics["image_auroc"] and "evaluation.maf" in card["evaluation_command"]
    stored = json.loads((directory / "scores.json").read_text())
    assert len(stored["scores"]) == 8 and stored["roc"]["fpr"][0] == 0


def test_image_metrics_known_answer():
    import evaluation.maf as evaluation

    scores = np.array([0.1, 0.2, 0.9, 0.8, 0.15])
    metrics = evaluation.image_metrics(scores, ["good", "good", "crack", "poke", "poke"], threshold=0.5)
    assert metrics["image_auroc"] == pytest.approx(5 / 6, abs=1e-4)
    assert metrics["image_auroc_per_defect"] == {"crack": 1.0, "poke": 0.75}
    assert metrics["at_threshold"]["tpr"] == pytest.approx(2 / 3, abs=1e-4) and metrics["at_threshold"]["fpr"] == 0
