"""EndoVAE (endovae): the Kvasir-SEG loader on a generated layout, preprocessing, PSNR/SSIM with known answers, the
polyp-free patches, tiny models, dry-run training with an exact resume, the evaluation, and the demo's pure functions,
bad uploads and concurrent requests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from evaluation import endovae as evaluation
from models import registry
from models.endovae import (EndoVAE, EndoVAEConfig, anomaly_map, best_dice_threshold, centre_square, patch_labels, patch_scores,
                            prepare_image, prepare_mask, psnr, ssim, to_batch)
from nndl_data import DatasetMissing
from nndl_data import endovae as data
from training import endovae as training
from tests.concurrency import answers_together
from tests.training_runs import dry_run

FLAT = EndoVAEConfig(image_size=32, width=4)
SPATIAL = EndoVAEConfig(image_size=32, width=4, latent_channels=2, preprocess="crop", crop_fraction=0.75)
PATCHES = EndoVAEConfig(image_size=16, width=4, latent_channels=2, preprocess="crop", frame_size=64, patch_stride=16)


@pytest.fixture
def kvasir_root(tmp_path):
    data.write_fake_kvasir(tmp_path, {"train": 6, "valid": 3, "test": 2}, size=64)
    return tmp_path


# ---- loader and preprocessing ----


def test_loader_reads_the_kvasir_seg_layout(kvasir_root):
    train = data.load_split("train", kvasir_root)
    assert len(train) == 6 and train.images.shape == (6, 128, 128, 3) and train.images.dtype == np.uint8
    assert train.masks.dtype == bool and train.masks.shape == (6, 128, 128) and train.masks.any()
    assert train.names == sorted(train.names)
    native = data.load_split("valid", kvasir_root, size=None)
    assert native.images.shape == (3, 64, 64, 3)
    images, masks = data.load_split("test", kvasir_root, size=None).prepared(SPATIAL)
    assert images.shape == (2, 3, 32, 32) and images.dtype == torch.uint8 and masks.shape == (2, 32, 32)


def test_loader_skips_frames_without_a_mask_and_says_what_is_missing(kvasir_root, tmp_path):
    folder = kvasir_root / data.KVASIR / "train"
    next((folder / "masks").iterdir()).unlink()
    assert len(data.load_split("train", kvasir_root)) == 5
    (tmp_path / "other").mkdir()
    with pytest.raises(DatasetMissing, match="kvasir_seg"):
        data.load_split("train", tmp_path / "other")
    (kvasir_root / data.KVASIR / "extra" / "images").mkdir(parents=True)
    with pytest.raises(DatasetMissing, match="no frames"):
        data.load_split("extra", kvasir_root)


def test_resize_distorts_and_crop_does_not():
    wide = Image.fromarray(np.tile(np.linspace(0, 255, 200, dtype=np.uint8), (100, 1))[..., None].repeat(3, 2))  # 200×100
    resized = prepare_image(wide, EndoVAEConfig(preprocess="resize"))
    cropped = prepare_image(wide, EndoVAEConfig(preprocess="crop", crop_fraction=1.0))
    assert resized.shape == cropped.shape == (96, 96, 3) and resized.dtype == np.float32
    assert resized[0, 0, 0] < 0.05 and cropped[0, 0, 0] > 0.2  # the crop starts at column 50 of 200
    frame = Image.fromarray(np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8))
    exact = prepare_image(frame, EndoVAEConfig(preprocess="crop", crop_fraction=0.75))  # 96 of 128: no resampling
    np.testing.assert_array_equal((exact * 255).round().astype(np.uint8), np.asarray(frame)[16:112, 16:112])
    mask = Image.fromarray(np.pad(np.full((10, 10), 255, np.uint8), 59))
    assert prepare_mask(mask, EndoVAEConfig(preprocess="crop", crop_fraction=0.75)).sum() == 100
    assert centre_square(wide, 0.5).size == (50, 50)
    with pytest.raises(ValueError, match="resize"):
        prepare_image(wide, EndoVAEConfig(preprocess="stretch"))


# ---- metrics with known answers ----


def test_psnr_and_ssim_on_identical_and_known_distortions():
    x = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1
    assert (psnr(x, x) >= 99).all() and torch.allclose(ssim(x, x), torch.ones(2))
    shifted = x + 0.1  # MSE 0.01 exactly: 20 dB
    torch.testing.assert_close(psnr(shifted, x), torch.full((2,), 20.0), atol=1e-3, rtol=0)
    noisy = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    expected = 10 * torch.log10(1 / (noisy - x).pow(2).flatten(1).mean(1))
    torch.testing.assert_close(psnr(noisy, x), expected)
    from skimage.metrics import structural_similarity

    for distorted in (shifted.clamp(0, 1), noisy):
        for index in range(2):
            reference = structural_similarity(distorted[index].permute(1, 2, 0).numpy(), x[index].permute(1, 2, 0).numpy(), data_range=1.0,
                                              channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
            assert float(ssim(distorted, x)[index]) == pytest.approx(reference, abs=2e-3)
    assert float(ssim(noisy, x).mean()) < 0.99 and float(ssim(x * 0.5, x).mean()) < 0.9


def test_best_dice_threshold_and_patch_labels():
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[:, 4:12, 4:12] = True
    maps = masks.float() * 2 + 0.1 * torch.rand(2, 16, 16)
    threshold, dice = best_dice_threshold(maps, masks)
    assert dice == pytest.approx(1.0) and 0.1 <= threshold < 2
    labels = patch_labels(masks, 8, 8)  # each 8×8 patch is a quarter polyp: left out
    assert (labels == -1).all()
    labels = patch_labels(masks, 4, 4)
    assert labels.shape == (2, 4, 4) and (labels[:, 1:3, 1:3] == 1).all() and (labels[:, 0] == 0).all()
    assert patch_scores(maps[:, None], 4, 4).shape == (2, 4, 4)


def test_polyp_free_patches_contain_no_mask_pixel(kvasir_root):
    frames = data.load_split("train", kvasir_root, size=None)
    images, masks = frames.prepared(PATCHES, 64)
    patches, positions = data.polyp_free_patches(images, masks, size=16, stride=8)
    assert len(patches) > 0 and patches.shape[1:] == (3, 16, 16) and patches.dtype == torch.uint8
    for patch, (frame, top, left) in zip(patches, positions.tolist()):
        assert not masks[frame, top : top + 16, left : left + 16].any()
        assert torch.equal(patch, images[frame, :, top : top + 16, left : left + 16])
    expected = sum(not masks[f, t : t + 16, l : l + 16].any() for f in range(len(masks)) for t in range(0, 49, 8) for l in range(0, 49, 8))
    assert len(patches) == expected  # every polyp-free patch, not only some
    grown, _ = data.polyp_free_patches(images, masks, size=16, stride=8, margin=4)
    assert len(grown) <= len(patches)


# ---- models ----


@pytest.mark.parametrize("config", [FLAT, SPATIAL], ids=["flat", "spatial"])
def test_tiny_model_shapes_determinism_and_gradients(config):
    torch.manual_seed(0)
    model = EndoVAE(config)
    x = model.example_input(3)
    logits, mu, logvar = model(x)
    assert logits.shape == x.shape and mu.shape == logvar.shape == (3, *model.latent_shape())
    model.eval()
    torch.testing.assert_close(model.reconstruct(x), model.reconstruct(x), rtol=0, atol=0)  # z = μ (report bug B10.3)
    assert 0 <= float(model.reconstruct(x).min()) and float(model.reconstruct(x).max()) <= 1
    model.train()
    for loss in ("mse", "bce"):
        model.zero_grad()
        logits, mu, logvar = model(x)
        (training.reconstruction_loss(logits, x, loss) + training.kl_divergence(mu, logvar)).backward()
        missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all() or not p.grad.abs().sum()]
        assert not missing, (loss, missing)


def test_the_report_architecture_has_the_paper_shapes_and_size():
    with torch.device("meta"):
        model = EndoVAE(EndoVAEConfig())
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(11.1, abs=0.05)  # spec §B3
    assert model.to_hidden[1].in_features == 36_864 and model.fc_mu.out_features == 6
    filters = [m.out_channels for m in model.decoder if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert filters == [256, 128, 64, 64, 32, 32, 3]


def test_a_spatial_model_reads_frames_larger_than_its_patches():
    model = EndoVAE(PATCHES).eval()
    frames = torch.rand(2, 3, 64, 64)
    reconstruction, maps = anomaly_map(model, frames, sigma=2.0)
    assert reconstruction.shape == frames.shape and maps.shape == (2, 1, 64, 64) and (maps >= 0).all()
    with pytest.raises(ValueError, match="multiple of 8"):
        EndoVAE(EndoVAEConfig(image_size=30))


# ---- training: dry run, resume, evaluation ----


def _train(tmp_path, run: str, preset: str = "normal", **overrides):
    return dry_run(training, tmp_path, run, preset, **overrides)


def test_dry_run_then_resume_after_interruption_gives_the_same_weights(tmp_path):
    whole = _train(tmp_path, "whole")
    card = json.loads((whole / "card.json").read_text())
    assert card["steps"] == 4 and card["finished"] and (whole / "log.csv").exists()
    first = registry.load("endovae-normal", root=whole.parent)
    assert float(first.pixel_threshold) == pytest.approx(card["thresholds"]["pixel_threshold"], rel=1e-3)  # travels with the weights
    _train(tmp_path, "parts", max_minutes=1e-9)  # stops after its first step, keeping state
    assert torch.load(tmp_path / "parts" / "last.pt", weights_only=True)["step"] == 1
    parts = _train(tmp_path, "parts")
    second = registry.load("endovae-normal", root=parts.parent)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    steps = [int(line.split(",")[0]) for line in (tmp_path / "parts" / "log.csv").read_text().splitlines()[1:]]
    assert steps == sorted(set(steps))


@pytest.mark.parametrize("preset", ["report", "better"])
def test_reconstruction_presets_dry_run_and_evaluate(tmp_path, preset):
    directory = _train(tmp_path, preset, preset)
    card = json.loads((directory / "card.json").read_text())
    assert card["finished"] and "best_validation" in card
    model = registry.load(f"endovae-{preset}", root=directory.parent)
    root = tmp_path / preset / "fake-data"
    splits = {name: data.load_split(name, root) for name in ("test", "valid", "train")}
    metrics = evaluation.evaluate_reconstruction(model, splits)
    assert metrics["test"]["psnr"]["images"] == 4 and metrics["train"]["psnr"]["images"] == 12
    assert metrics["test_first16"]["psnr"]["mean"] == pytest.approx(metrics["test"]["psnr"]["mean"])
    assert 0 < metrics["test"]["ssim"]["mean"] <= 1 and metrics["report_seen_data"]["psnr"] == pytest.approx(28.33, abs=0.01)


def test_anomaly_evaluation_on_a_perfect_and_a_generated_map(kvasir_root):
    torch.manual_seed(0)
    model = EndoVAE(PATCHES).eval()
    model.pixel_threshold.fill_(0.01)
    model.patch_threshold.fill_(0.01)
    test = data.load_split("test", kvasir_root, size=64)
    metrics = evaluation.anomaly_metrics(model, test)
    assert {"pixel_auroc", "pixel_auprc", "patch_auroc", "dice", "roc", "patch_histogram", "no_model_centre_prior"} <= set(metrics)
    assert 0 <= metrics["pixel_auroc"] <= 1 and len(metrics["roc"]["fpr"]) == len(metrics["roc"]["tpr"])
    prior = evaluation.centre_prior((5, 5))
    assert prior[2, 2] == prior.max() and prior[0, 0] == prior.min()


# ---- demo functions (tiny models injected) ----


@pytest.fixture
def demo(monkeypatch):
    import demos.endovae as demo_module

    torch.manual_seed(0)
    models = {"endovae-report": EndoVAE(EndoVAEConfig(image_size=32, width=4)).eval(),
              "endovae-better": EndoVAE(SPATIAL).eval(),
              "endovae-normal": EndoVAE(PATCHES).eval()}
    models["endovae-normal"].pixel_threshold.fill_(0.05)
    models["endovae-normal"].patch_threshold.fill_(0.05)
    monkeypatch.setattr(demo_module, "load_model", lambda name: models[name])
    return demo_module


@pytest.fixture
def frame(tmp_path):
    """A generated non-square 'endoscopy frame' and its polyp mask."""
    rng = np.random.default_rng(3)
    image = np.clip(np.array([190, 100, 80]) + rng.normal(0, 12, (90, 150, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((90, 150), np.uint8)
    mask[30:60, 60:90] = 255
    Image.fromarray(image).save(tmp_path / "frame.jpg")
    Image.fromarray(mask).save(tmp_path / "frame_mask.png")
    return str(tmp_path / "frame.jpg"), str(tmp_path / "frame_mask.png")


def test_examples_fall_back_to_the_shipped_test_frames(monkeypatch, tmp_path):
    import demos.endovae as demo_module

    monkeypatch.setenv("NNDL_DATA_ROOT", str(tmp_path))  # a data root without Kvasir-SEG
    demo_module.example_frames.cache_clear()
    try:
        frames = demo_module.example_frames()
    finally:
        demo_module.example_frames.cache_clear()
    assert 3 <= len(frames) <= 6
    for image, mask in frames:
        assert Path(image).parent == demo_module.ASSETS and Path(mask).exists()
        assert Image.open(image).size == Image.open(mask).size
    assert sum(path.stat().st_size for path in demo_module.ASSETS.iterdir()) < 1_000_000
    assert "Kvasir-SEG" in (demo_module.ASSETS / "README.md").read_text()


def test_generation_is_seeded_per_request(demo):
    model = demo.load_model("endovae-report")
    first, again, other = (demo.generate(model, 1.0, seed) for seed in (3, 3, 4))
    assert first.shape == (3 * 32 + 4, 3 * 32 + 4, 3)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    cold = demo.generate(model, 0.0, 3)  # T = 0: every sample is the decoded origin
    assert np.array_equal(cold[:32, :32], cold[:32, 34:66])
    spatial = demo.generate(demo.load_model("endovae-better"), 1.0, 0)
    assert spatial.shape == first.shape
    assert demo.decode_values(model, [0.5] * 6).shape == (32, 32, 3)
    assert demo.traversal(model, [0.0] * 6, steps=5).shape == (6 * 34 - 2, 5 * 34 - 2, 3)


def test_reconstruct_any_size_and_interpolate(demo, frame):
    image = Image.open(frame[0])
    for name in ("endovae-report", "endovae-better"):
        result = demo.reconstruct(demo.load_model(name), image)
        assert result.original.shape == result.reconstruction.shape == (32, 32, 3) and result.error.shape == (32, 32)
        assert result.psnr > 0 and -1 <= result.ssim <= 1
        strip = demo.interpolate(demo.load_model(name), image, image.transpose(Image.FLIP_LEFT_RIGHT), steps=4)
        assert strip.shape == (32, 6 * 34 - 2, 3)
    panels = demo._reconstruct(frame[0], next(iter(demo.MODELS)))
    assert panels[0].shape == (demo.DISPLAY, demo.DISPLAY, 3) and "PSNR" in panels[3] and "SSIM" in panels[3]


def test_detect_with_and_without_a_mask(demo, frame):
    model = demo.load_model("endovae-normal")
    image, mask = Image.open(frame[0]), Image.open(frame[1])
    result = demo.detect(model, image, mask)
    assert result.error.shape == result.prediction.shape == result.mask.shape == (64, 64)
    assert result.dice == pytest.approx(demo.dice(result.prediction, result.mask))
    assert demo.overlay(result, 0.1).shape == (64, 64, 3)
    panels = demo._detect(frame[0], frame[1])
    assert "Dice" in panels[3] and panels[4] is not None and panels[5] is not None
    assert "No mask" in demo._detect(frame[0], None)[3]
    original, report, crop = demo._preprocessing(frame[0])
    assert original.shape == (90, 150, 3) and report.shape == crop.shape == (demo.DISPLAY, demo.DISPLAY, 3)
    everything = demo._analyse(frame[0], frame[1], next(iter(demo.MODELS)))
    assert len(everything) == 13


def test_figures_come_from_the_card_and_never_from_pyplot(demo, frame):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    metrics = {"roc": {"fpr": [0, 0.5, 1], "tpr": [0, 0.8, 1]}, "pixel_auroc": 0.8,
               "patch_histogram": {"edges": [0, 1, 2], "polyp": [1, 3], "polyp_free": [3, 1]}}
    result = demo.detect(demo.load_model("endovae-normal"), Image.open(frame[0]), Image.open(frame[1]))
    assert demo.histogram_figure(metrics, 1.0, 1.5) is not None and demo.roc_figure(metrics, result) is not None
    assert demo.histogram_figure({}, 1.0, None) is not None  # no card yet: an empty plot, not an error
    assert plt.get_fignums() == before


def test_bad_uploads_answer_with_messages(demo, tmp_path, frame):
    import gradio as gr

    from tests.bad_uploads import MUST_ACCEPT, MUST_REFUSE, bad_image_files

    files = bad_image_files(tmp_path / "bad")
    label = next(iter(demo.MODELS))
    for case in MUST_REFUSE:
        for call in (lambda path: demo._reconstruct(path, label), lambda path: demo._detect(path, None), demo._preprocessing):
            with pytest.raises(gr.Error):
                call(str(files[case]))
    for case in MUST_ACCEPT:
        demo._analyse(str(files[case]), None, label)
    with pytest.raises(gr.Error, match="must match"):
        demo._detect(frame[0], str(files["rgba"]))  # a 40×40 mask for a 150×90 frame
    with pytest.raises(gr.Error, match="mask"):
        demo._detect(frame[0], str(files["corrupt"]))
    with pytest.raises(gr.Error, match="Upload"):
        demo._reconstruct(None, label)
    with pytest.raises(gr.Error, match="two test frames"):
        demo._interpolate(label, "nope", "nothing")


def test_identical_concurrent_requests_get_identical_answers(demo, frame):
    model = demo.load_model("endovae-better")
    def request():
        return demo.generate(model, 1.0, 7), demo.reconstruct(model, Image.open(frame[0])).reconstruction

    expected = request()
    for samples, reconstruction in answers_together(request):
        np.testing.assert_array_equal(samples, expected[0])
        np.testing.assert_array_equal(reconstruction, expected[1])


def test_field_of_view_mask_drops_the_black_corners_and_their_edge():
    from models.endovae import field_of_view

    frames = torch.zeros(1, 3, 32, 32)
    frames[:, 0, 8:24, 8:24] = 0.6  # a lit square inside a black frame
    mask = field_of_view(frames, erosion=2)
    assert mask[0, 0, 16, 16] == 1 and mask[0, 0, 0, 0] == 0 and mask[0, 0, 9, 16] == 0  # 2 px inside the edge: eroded
    model = EndoVAE(EndoVAEConfig(**{**PATCHES.__dict__, "field_of_view_erosion": 2})).eval()
    _, maps = anomaly_map(model, torch.nn.functional.interpolate(frames, size=64), sigma=1.0)
    assert (maps[..., :10, :] == 0).all()


# ---- the anomaly map's colour channels and position normalisation ----


def test_pixel_error_uses_the_configured_channels_and_divides_by_the_position_table():
    from models.endovae import pixel_error, with_map_settings

    model = EndoVAE(PATCHES).eval()
    images = torch.zeros(1, 3, 64, 64)
    reconstruction = images.clone()
    reconstruction[:, 0] += 0.3  # red off by 0.3, blue off by 0.1
    reconstruction[:, 2] += 0.1
    torch.testing.assert_close(pixel_error(model, images, reconstruction), torch.full((1, 1, 64, 64), 0.09 + 0.01))
    blue = with_map_settings(model, anomaly_channels="b")
    torch.testing.assert_close(pixel_error(blue, images, reconstruction), torch.full((1, 1, 64, 64), 0.01))
    normalised = with_map_settings(blue, position_normalised=True)
    torch.testing.assert_close(normalised.position_error, torch.ones(1, 1, 64, 64))  # flat until it is filled
    table = torch.full((1, 1, 64, 64), 0.02)
    table[..., :32] = 0.005  # the left half: where errors are usually small, the same error is 4× more unusual
    normalised.position_error.copy_(table)
    error = pixel_error(normalised, images, reconstruction)
    assert error[0, 0, 10, 10] == pytest.approx(2.0) and error[0, 0, 10, 50] == pytest.approx(0.5)
    small = pixel_error(normalised, images[..., :32, :32], reconstruction[..., :32, :32])  # other frame sizes: the table is resized
    assert small.shape == (1, 1, 32, 32) and small[0, 0, 5, 5] == pytest.approx(2.0) and small[0, 0, 5, 28] == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError, match="anomaly_channels"):
        pixel_error(with_map_settings(model, anomaly_channels="hue"), images, reconstruction)


def test_position_table_is_the_typical_error_of_lit_polyp_free_pixels_only(monkeypatch):
    from models.endovae import position_error_table, with_map_settings

    monkeypatch.setattr(EndoVAE, "reconstruct", lambda self, x: torch.full_like(x, 0.5))  # every pixel reconstructed as grey
    model = with_map_settings(EndoVAE(PATCHES), anomaly_channels="b")
    frames = torch.full((4, 3, 64, 64), 0.5)
    frames[:, 2, :, 32:] = 0.7  # blue error 0.04 on the right half, 0 on the left
    frames[:, :, :4] = 0  # a black rim: not lit, left out
    masks = torch.zeros(4, 64, 64, dtype=torch.bool)
    masks[:2, 20:30, 5:15] = True
    frames[:2, 2, 20:30, 5:15] = 1.0  # a 'polyp' with a huge error in two frames, under its mask: left out
    table = position_error_table(model, (frames * 255).round().to(torch.uint8), masks, erosion=0, sigma=1.0)
    assert table.shape == (1, 1, 64, 64)
    assert table[0, 0, 25, 10] == pytest.approx(0.0, abs=1e-3)  # the polyp's error did not leak into the table
    assert table[0, 0, 30, 50] == pytest.approx(0.04, abs=2e-3) and table[0, 0, 30, 10] == pytest.approx(0.0, abs=1e-3)
    assert table[0, 0, 0, 10] == pytest.approx(float(table[0, 0, 4:, :].mean()), rel=0.2)  # never lit: the overall mean


def test_map_settings_are_chosen_on_valid_and_travel_with_the_checkpoint(tmp_path):
    directory = _train(tmp_path, "settings")
    card = json.loads((directory / "card.json").read_text())["thresholds"]
    assert len(card["validation_pixel_auroc_by_setting"]) == (len(training.CHANNELS) * len(training.POSITION_NORMALISED)
                                                              * len(training.SMOOTHING) * len(training.FIELD_OF_VIEW_EROSION))
    best = max(card["validation_pixel_auroc_by_setting"].values())
    model = registry.load("endovae-normal", root=directory.parent)
    chosen = (f"{model.config.anomaly_channels}{', per position' if model.config.position_normalised else ''}, "
              f"sigma {model.config.anomaly_sigma:g}, erosion {model.config.field_of_view_erosion}")
    assert card["validation_pixel_auroc_by_setting"][chosen] == best
    assert card["anomaly_channels"] == model.config.anomaly_channels and card["position_normalised"] == model.config.position_normalised
    recalibrated = training.main(training.TrainConfig(**{**training.PRESETS["normal"].__dict__, "dry_run": True, "run_dir": str(tmp_path / "settings"),
                                                          "checkpoint_root": str(directory.parent), "recalibrate": "endovae-normal"}))
    again = json.loads((recalibrated / "card.json").read_text())
    assert again["thresholds"]["validation_pixel_auroc_by_setting"] == card["validation_pixel_auroc_by_setting"]  # deterministic
    assert again["steps"] == 4 and again["recalibrated_with"].endswith("--recalibrate endovae-normal")  # the training record stays


def test_the_tab_shows_the_evaluations_map(demo, frame):
    """One map implementation: the anomaly panel's map is the evaluation's (`error_maps`), position table included."""
    from models.endovae import error_maps, with_map_settings

    model = with_map_settings(demo.load_model("endovae-normal"), anomaly_channels="b", position_normalised=True,
                              anomaly_sigma=3.0, field_of_view_erosion=2).eval()
    model.position_error.copy_(torch.linspace(0.01, 0.05, 64).expand(1, 1, 64, 64))
    result = demo.detect(model, Image.open(frame[0]), Image.open(frame[1]))
    frames = torch.from_numpy(np.round(result.frame * 255).astype(np.uint8)).permute(2, 0, 1)[None]
    np.testing.assert_allclose(result.error, error_maps(model, frames)[0].numpy(), rtol=1e-4, atol=1e-6)
