"""Brain-tumour residual maps (trivae): loaders in every layout, the patient split, metrics with known answers,
noise, tiny models, dry-run training with an exact resume, and the demo's pure functions and bad uploads."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from evaluation import trivae as evaluation
from models import registry
from models.trivae import SimpleVAE, SimpleVAEConfig, TriVAE, TriVAEConfig, anomaly_maps, median_filter, prepare_slice
from training import trivae as training
from nndl_data import trivae as data

TINY = dict(image_size=32, base_channels=4)


def _head(size: int, rng, tumour: bool = False, radius: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    """A bright-rimmed ellipse 'head' with texture (uint8), and a blob mask when `tumour`."""
    rows, cols = np.mgrid[0:size, 0:size] / size - 0.5
    head = (rows / radius) ** 2 + (cols / (radius * 0.85)) ** 2 < 1
    image = head * (90 + 20 * rng.standard_normal((size, size)))
    mask = np.zeros((size, size), bool)
    if tumour:
        mask = ((rows - 0.05) ** 2 + (cols + 0.05) ** 2 < 0.012) & head
        image = np.where(mask, 200, image)
    return np.clip(image, 0, 255).astype(np.uint8), mask


def _write_lgg(root, patients: int = 10, slices: int = 4, size: int = 32) -> None:
    rng = np.random.default_rng(0)
    folder = root / "brain" / "lgg_flair"
    folder.mkdir(parents=True)
    (folder / "data.csv").write_text("Patient,death01\n")
    for p in range(patients):
        name = f"TCGA_XX_{p:04d}_20000101"
        (folder / name).mkdir()
        for s in range(1, slices + 1):
            image, mask = _head(size, rng, tumour=s % 2 == 0)
            if s == 1:
                image, mask = np.zeros_like(image), np.zeros_like(mask)  # an empty slice: skipped
                image[0, 0] = 255
            Image.fromarray(image).save(folder / name / f"{name}_{s}.png")
            Image.fromarray(mask.astype(np.uint8) * 255).save(folder / name / f"{name}_{s}_mask.png")


@pytest.fixture
def lgg_root(tmp_path):
    _write_lgg(tmp_path)
    return tmp_path


# ---- loaders ----


def test_lgg_layout_loads_and_skips_empty_slices(lgg_root):
    slices = data.load_lgg(lgg_root, size=32)
    assert len(slices) == 10 * 3  # slice 1 of every patient is (almost) empty
    assert slices.images.dtype == torch.uint8 and slices.images.shape == (30, 32, 32)
    assert int(slices.has_tumour.sum()) == 20
    assert slices.names[0].endswith("_2") and slices.patients[0] == "TCGA_XX_0000_20000101"


def test_patient_split_is_disjoint_complete_and_seeded():
    patients = [f"P{i:03d}" for i in range(110)]
    split = data.split_patients(patients, seed=0)
    parts = [set(split[name]) for name in ("train", "validation", "test")]
    assert [len(part) for part in parts] == [77, 16, 17]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert set.union(*parts) == set(patients)
    assert data.split_patients(patients, seed=0) == split and data.split_patients(patients, seed=1) != split


def test_lgg_splits_follow_the_protocol(lgg_root):
    splits = data.load_lgg_splits(lgg_root, size=32, seed=0)
    patients = {name: set(part.patients) for name, part in splits.items()}
    assert not patients["train"] & (patients["validation"] | patients["test"])
    assert not patients["validation"] & patients["test"]
    assert not splits["train"].has_tumour.any() and not splits["validation"].has_tumour.any()
    assert splits["test"].has_tumour.all() and len(splits["test"]) > 0


def test_brats_slice_layout(tmp_path):
    rng = np.random.default_rng(1)
    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
    for index in range(3):
        image, mask = _head(64, rng, tumour=True)
        Image.fromarray(image).save(tmp_path / "images" / f"BraTS2021_{index:05d}_1000.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "masks" / f"BraTS2021_{index:05d}_1000.png")
    slices = data.load_brats_slices(folder=tmp_path, size=32)
    assert len(slices) == 3 and slices.masks.any() and slices.images.shape == (3, 32, 32)


def test_ixi_png_layout_walks_sorted_subfolders(tmp_path):
    rng = np.random.default_rng(2)
    for sub, name in [("b", "2.png"), ("a", "1.png"), ("a", "3.PNG")]:
        (tmp_path / sub).mkdir(exist_ok=True)
        Image.fromarray(_head(48, rng)[0]).save(tmp_path / sub / name)
    (tmp_path / "a" / "notes.txt").write_text("not a slice")
    slices = data.load_ixi_png(tmp_path, size=32)
    assert slices.names == ["1", "3", "2"] and not slices.has_tumour.any()


def _write_brats_volume(folder, case: str, rng, with_seg: bool = True, gz: bool = True) -> None:
    import nibabel

    folder.mkdir(parents=True, exist_ok=True)
    volume = np.zeros((48, 48, 9), np.float32)
    segmentation = np.zeros((48, 48, 9), np.uint8)
    for z in range(9):
        image, mask = _head(48, rng, tumour=z in (3, 4, 5))
        volume[:, :, z] = image
        segmentation[:, :, z] = np.where(mask, [1, 2, 4][z % 3], 0)  # BraTS labels 1, 2, 4: all 'whole tumour'
    suffix = ".nii.gz" if gz else ".nii"
    nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), folder / f"{case}_t2{suffix}")
    if with_seg:
        nibabel.save(nibabel.Nifti1Image(segmentation, np.eye(4)), folder / f"{case}_seg{suffix}")


def test_brats_volume_layout_middle_and_tumour_slices(tmp_path):
    rng = np.random.default_rng(3)
    _write_brats_volume(tmp_path / "BraTS20_Training_001", "BraTS20_Training_001", rng)
    _write_brats_volume(tmp_path / "BraTS20_Training_002", "BraTS20_Training_002", rng, gz=False)
    _write_brats_volume(tmp_path / "BraTS20_Training_355", "BraTS20_Training_355", rng, with_seg=False)
    with pytest.warns(UserWarning, match="355"):
        middle = data.load_brats_volumes(tmp_path, size=32, slices="middle")
    assert middle.names == ["BraTS20_Training_001_z4", "BraTS20_Training_002_z4"]
    assert middle.masks.dtype == torch.bool and middle.masks.any()  # labels 2 and 4 do not overflow
    with pytest.warns(UserWarning):
        tumour = data.load_brats_volumes(tmp_path, size=32, slices="tumour")
    assert len(tumour) == 6 and tumour.has_tumour.all()


def test_prepare_slice_binarises_and_resizes_the_mask():
    image, mask = _head(256, np.random.default_rng(4), tumour=True)
    labels = mask.astype(np.uint8) * 4  # a BraTS label: ×255 would overflow uint8 in the report
    prepared, prepared_mask = prepare_slice(image, labels, size=64)
    assert prepared.shape == (64, 64) and prepared.dtype == np.float32 and 0 <= prepared.min() <= prepared.max() <= 1
    assert prepared_mask.dtype == bool and 0 < prepared_mask.mean() < 0.2


# ---- metrics with known answers ----


def test_dice_on_hand_made_masks():
    truth = np.zeros((4, 4), bool)
    truth[0, :4] = True
    prediction = np.zeros((4, 4), bool)
    prediction[0, :2] = prediction[1, :2] = True
    assert evaluation.dice(prediction, truth) == pytest.approx(0.5)  # 2·2 / (4 + 4)
    assert evaluation.dice(truth, truth) == 1.0
    assert evaluation.dice(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0
    assert evaluation.dice(np.zeros((4, 4)), truth) == 0.0


def test_auroc_and_average_precision_known_answers():
    labels = np.array([1, 0, 1, 0], bool)
    assert evaluation.average_precision(np.array([0.9, 0.8, 0.7, 0.1]), labels) == pytest.approx((1 + 2 / 3) / 2)
    assert evaluation.auroc(np.array([0.9, 0.8, 0.7, 0.1]), labels) == pytest.approx(0.75)
    assert evaluation.auroc(np.array([1.0, 0.0, 1.0, 0.0]), labels) == 1.0
    assert evaluation.average_precision(np.array([0.5, 0.5, 0.5, 0.5]), labels) == pytest.approx(0.5)  # ties: one threshold
    assert evaluation.auroc(np.array([0.5, 0.5, 0.5, 0.5]), labels) == pytest.approx(0.5)


def test_library_metrics_give_the_numbers_of_the_hand_written_ones_they_replaced():
    """AUROC, AP (scikit-learn) and the SSIM loss (torchmetrics, border cropped) on fixed inputs, against what the
    hand-written versions gave on them before they were deleted (commit e094150): the cards' numbers stand."""
    rng = np.random.default_rng(0)
    scores = rng.random(4000).round(2)  # many ties
    labels = rng.random(4000) < 0.5 * scores
    assert evaluation.auroc(scores, labels) == pytest.approx(0.716674554135068, rel=1e-12)
    assert evaluation.average_precision(scores, labels) == pytest.approx(0.40423011143832827, rel=1e-12)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 40, 40, generator=generator)
    y = (x + 0.2 * torch.randn(3, 1, 40, 40, generator=generator)).clamp(0, 1)
    assert training.ssim(x.double(), y.double()).item() == pytest.approx(0.8148404576098632, rel=1e-12)  # the valid region, as before
    assert training.ssim(x, y).item() == pytest.approx(0.8148406147956848, abs=1e-6)  # float32: rounding only
    assert training.ssim(x, x).item() == pytest.approx(1.0)


def test_dice_curve_matches_direct_dice():
    rng = np.random.default_rng(5)
    scores, labels = rng.random(500), rng.random(500) < 0.2
    thresholds = np.array([0.1, 0.5, 0.9])
    expected = [evaluation.dice(scores > t, labels) for t in thresholds]
    np.testing.assert_allclose(evaluation.dice_curve(scores, labels, thresholds), expected)


def test_measure_on_a_perfect_map():
    truths = np.zeros((2, 8, 8), bool)
    truths[:, 2:4, 2:4] = True
    maps, masks = truths.astype(float), np.ones_like(truths)
    result = evaluation.measure(maps, truths, masks, threshold=0.5)
    assert result["auroc"] == 1.0 and result["auprc"] == 1.0 and result["dice"] == 1.0 and result["mean_slice_dice"] == 1.0
    assert result["best_dice"] == 1.0


def test_median_filter_matches_scipy_inside():
    from scipy import ndimage

    maps = torch.rand(2, 1, 16, 16)
    ours = median_filter(maps, 5)[0, 0].numpy()
    theirs = ndimage.median_filter(maps[0, 0].numpy(), size=5)
    np.testing.assert_allclose(ours[2:-2, 2:-2], theirs[2:-2, 2:-2])


# ---- noise ----


def test_noise_differs_per_sample_stays_in_the_head_and_in_range():
    images = torch.full((3, 1, 32, 32), 0.5)
    foreground = torch.zeros_like(images, dtype=torch.bool)
    foreground[..., 8:24, 8:24] = True
    for kind in ("coarse", "simplex"):
        noised, noise = data.add_noise(images, kind, sigma=0.3, foreground=foreground, generator=torch.Generator().manual_seed(0))
        assert noised.min() >= 0 and noised.max() <= 1
        assert (noise[~foreground] == 0).all()
        assert not torch.allclose(noise[0], noise[1])  # the report's simplex masks were all identical


def test_simplex_noise_is_centred_scaled_and_seeded():
    first = data.simplex_noise(2, 64, generator=torch.Generator().manual_seed(1))
    again = data.simplex_noise(2, 64, generator=torch.Generator().manual_seed(1))
    assert torch.equal(first, again)
    assert first.mean().abs() < 1e-4 and (first.std(dim=(1, 2, 3)) - 1).abs().max() < 1e-3
    report = data.simplex_noise_report(64)
    assert torch.equal(report, data.simplex_noise_report(64))  # the report's bug, kept for the demo
    assert report.min() == 0 and report.max() == 1


def test_unknown_noise_kind_is_refused():
    with pytest.raises(ValueError, match="coarse"):
        data.add_noise(torch.rand(1, 1, 32, 32), "gaussian")


# ---- models ----


@pytest.mark.parametrize("model_class, config_class", [(SimpleVAE, SimpleVAEConfig), (TriVAE, TriVAEConfig)])
def test_tiny_model_shapes_and_deterministic_inference(model_class, config_class):
    torch.manual_seed(0)
    model = model_class(config_class(**TINY))
    x = torch.rand(3, 1, 32, 32)
    output, auxiliary, mu, logvar = model(x)
    assert output.shape == x.shape and auxiliary.shape == (3, 1, 4, 4)
    assert mu.shape == logvar.shape == (3, model.config.latent_dim)
    assert torch.isfinite(output).all()
    model.eval()
    torch.testing.assert_close(model(x)[0], model(x)[0], rtol=0, atol=0)  # z = μ at test time (report bug 8)
    model.train()
    assert not torch.allclose(model(x)[0], model(x)[0])  # sampled while training


@pytest.mark.parametrize("model_name", ["vae", "trivae"])
def test_training_loss_reaches_every_parameter(model_name):
    cfg = training.resolve(training.TrainConfig(model=model_name, noise="simplex", dry_run=True))
    model = training.MODELS[model_name][0](training.model_config(cfg))
    batches = training.Batches(cfg, training.fake_slices(8, cfg.image_size, 0), torch.device("cpu"))
    parts = training.training_loss(model, cfg, batches, step=0)
    parts["loss"].backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert ("triplet" in parts) == (model_name == "trivae")


def test_tri_vae_has_the_channel_fix_and_the_report_parameter_counts():
    config = TriVAEConfig(image_size=256, base_channels=16)
    with torch.device("meta"):
        tri, simple = TriVAE(config), SimpleVAE(SimpleVAEConfig(image_size=256, base_channels=16))
    assert tri.decoder[0][0][0].in_channels == 80 and tri.decoder[2][0][0].in_channels == 20  # C + C/4
    assert sum(p.numel() for p in tri.parameters()) / 1e6 == pytest.approx(33.0, abs=0.1)
    assert sum(p.numel() for p in simple.parameters()) / 1e6 == pytest.approx(20.43, abs=0.05)


def test_triplet_loss_modes():
    anchor, positive, negative = torch.zeros(2, 3), torch.zeros(2, 3), torch.tensor([[0.0, 0, 0], [2.0, 0, 0]])
    assert training.triplet_loss(anchor, positive, negative, 1.0, "per_sample") == pytest.approx(0.5)  # (1 + 0) / 2
    assert training.triplet_loss(anchor, positive, negative, 1.0, "batch") == pytest.approx(0.0)  # relu(0 − 2 + 1)


# ---- training: dry run, resume ----


def _train(tmp_path, run: str, **overrides):
    cfg = training.TrainConfig(model="trivae", noise="coarse", dry_run=True, run_dir=str(tmp_path / run),
                               checkpoint_root=str(tmp_path / f"checkpoints-{run}"), **overrides)
    return training.main(cfg)


def test_dry_run_then_resume_after_interruption_gives_the_same_weights(tmp_path):
    whole = _train(tmp_path, "whole")
    card = json.loads((whole / "card.json").read_text())
    assert card["steps"] == 4 and card["finished"] and (whole / "log.csv").exists()
    first = registry.load("trivae-trivae-coarse", root=whole.parent)
    assert float(first.threshold) == pytest.approx(card["thresholds"]["threshold"], rel=1e-3)  # travels with the weights
    _train(tmp_path, "parts", max_minutes=1e-9)  # stops after its first step, keeping state
    state = torch.load(tmp_path / "parts" / "last.pt", weights_only=True)
    assert state["step"] == 1
    parts = _train(tmp_path, "parts")
    second = registry.load("trivae-trivae-coarse", root=parts.parent)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    steps = [int(line.split(",")[0]) for line in (tmp_path / "parts" / "log.csv").read_text().splitlines()[1:]]
    assert steps == sorted(set(steps))  # no duplicated rows after the resume


def test_evaluate_returns_every_metric_on_generated_slices():
    torch.manual_seed(0)
    model = TriVAE(TriVAEConfig(**TINY)).eval()
    slices = training.fake_slices(6, 32, 0, tumours=True)
    result = evaluation.evaluate(model, slices)
    assert result["slices"] == 6
    for kind in ("raw", "median5"):
        assert {"auroc", "auprc", "dice", "mean_slice_dice", "best_dice", "threshold"} <= set(result[kind])
        assert 0 <= result[kind]["best_dice"] <= 1
    maps = anomaly_maps(model, slices.floats())
    assert (maps["residual"][~maps["brain_mask"]] == 0).all()


# ---- NIfTI uploads ----


def test_read_volume_refuses_bad_files_with_clear_messages(tmp_path):
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(gzip.compress(b"\x00" * 100))
    text = tmp_path / "text.nii.gz"
    text.write_text("this is not a volume")
    empty = tmp_path / "empty.nii"
    empty.write_bytes(b"")
    wrong = tmp_path / "slice.png"
    Image.new("L", (8, 8)).save(wrong)
    for path, message in [(corrupt, "could not be read as a NIfTI"), (text, "could not be read as a NIfTI"),
                          (empty, "empty"), (wrong, "not a NIfTI file")]:
        with pytest.raises(data.VolumeError, match=message):
            data.read_volume(path)


def test_read_volume_accepts_2d_and_4d_volumes(tmp_path):
    import nibabel

    for shape in [(20, 24), (20, 24, 5, 2)]:
        path = tmp_path / f"v{len(shape)}.nii.gz"
        nibabel.save(nibabel.Nifti1Image(np.random.rand(*shape).astype(np.float32), np.eye(4)), path)
        volume = data.read_volume(path)
        assert volume.ndim == 3 and volume.shape[:2] == (20, 24)


# ---- demo functions (tiny models injected) ----


@pytest.fixture
def demo(monkeypatch):
    import demos.trivae as demo_module

    torch.manual_seed(0)
    models = {name: (SimpleVAE(SimpleVAEConfig(**TINY)) if name.endswith("vae") else TriVAE(TriVAEConfig(**TINY))).eval()
              for name in demo_module.MODELS.values()}
    monkeypatch.setattr(demo_module, "load_model", lambda name="trivae-trivae-coarse": models[name])
    return demo_module


@pytest.fixture
def tumour_slice(tmp_path):
    """A generated 64 px slice with a tumour, and its mask, as PNG files."""
    image, mask = _head(64, np.random.default_rng(1), tumour=True)
    Image.fromarray(image).save(tmp_path / "slice.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "slice_mask.png")
    return str(tmp_path / "slice.png"), str(tmp_path / "slice_mask.png")


def test_examples_are_test_patient_slices_from_the_data_root(tmp_path, monkeypatch):
    from demos import trivae as demo_module

    _write_lgg(tmp_path, patients=20)
    monkeypatch.setenv("NNDL_DATA_ROOT", str(tmp_path))
    demo_module.example_slices.cache_clear()
    try:
        slices = demo_module.example_slices()
    finally:
        demo_module.example_slices.cache_clear()
    test_patients = data.split_patients(data.lgg_patients(tmp_path), seed=0)["test"]
    *tumours, healthy = slices
    assert len(tumours) == len(test_patients) == 3  # one per test patient: every one has tumour slices; no BraTS here
    for image, mask in slices:
        assert Path(image).parent.name in test_patients and Path(mask).name == Path(image).stem + "_mask.png"
    areas = [np.count_nonzero(np.asarray(Image.open(mask))) for _, mask in tumours]
    assert min(areas) > 0 and areas == sorted(areas, reverse=True) and not np.asarray(Image.open(healthy[1])).any()


def test_demo_analyse_gives_every_panel_and_a_live_dice(demo, tumour_slice):
    image, mask = tumour_slice
    panels = demo._analyse(image, mask, -1, "Tri-VAE, coarse noise", 0.1, 5)
    assert panels[0].shape == (32, 32) and panels[2].shape == (32, 32, 3) and panels[3].shape == (32, 32, 3)
    assert panels[4] is not None and "Dice" in panels[5]
    prepared, truth, _ = demo.read_slice(image, mask, size=32)
    result = demo.analyse(demo.load_model("trivae-trivae-coarse"), prepared, truth, 0.05, 1)
    assert result.dice == pytest.approx(evaluation.dice(result.prediction, truth))


def test_demo_volume_slider_and_noise_playground(demo, tmp_path):
    import nibabel

    path = tmp_path / "volume.nii.gz"
    nibabel.save(nibabel.Nifti1Image(np.stack([_head(40, np.random.default_rng(z))[0] for z in range(7)], -1).astype(np.int16), np.eye(4)), path)
    update = demo._load_file(str(path))
    assert update["visible"] and update["maximum"] == 6 and update["value"] == 3
    panels = demo._analyse(str(path), None, 2, "Simple VAE (report §1-2)", 0.1, 1)
    assert panels[4] is None and "No ground truth" in panels[5]
    for report_style in (False, True):
        noised, noise, healed, residual = demo._noise(str(path), 3, "Tri-VAE, simplex noise (bonus)", "simplex", 0.2, 16, -6, 1, report_style)
        assert noised.shape == healed.shape == (32, 32) and noise.shape == residual.shape == (32, 32, 3)


def test_demo_bad_uploads_answer_with_messages(demo, tmp_path, tumour_slice):
    import gradio as gr

    from tests.bad_uploads import MUST_ACCEPT, MUST_REFUSE, bad_image_files

    files = bad_image_files(tmp_path / "bad")
    for case in MUST_REFUSE:
        with pytest.raises(gr.Error):
            demo._analyse(str(files[case]), None, -1, "Tri-VAE, coarse noise", 0.1, 5)
    for case in MUST_ACCEPT:
        demo._analyse(str(files[case]), None, -1, "Tri-VAE, coarse noise", 0.1, 5)
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(b"\x1f\x8b\x08\x00garbage")
    for path in (corrupt, files["not_an_image"].rename(tmp_path / "text.nii.gz")):
        with pytest.raises(gr.Error, match="NIfTI"):
            demo._load_file(str(path))
        with pytest.raises(gr.Error, match="NIfTI"):
            demo._analyse(str(path), None, 0, "Tri-VAE, coarse noise", 0.1, 5)
    blank = tmp_path / "blank.png"
    Image.new("L", (64, 64), 0).save(blank)
    with pytest.raises(gr.Error, match="blank"):
        demo._analyse(str(blank), None, -1, "Tri-VAE, coarse noise", 0.1, 5)
    image, _ = tumour_slice
    small_mask = tmp_path / "mask.png"
    Image.new("L", (10, 10), 0).save(small_mask)
    with pytest.raises(gr.Error, match="must match"):
        demo._analyse(image, str(small_mask), -1, "Tri-VAE, coarse noise", 0.1, 5)
    with pytest.raises(gr.Error, match="Upload"):
        demo._analyse(None, None, -1, "Tri-VAE, coarse noise", 0.1, 5)


def test_shipped_slices_are_the_data_roots_examples_in_the_same_order():
    """A Space has no data root: demos/assets/trivae holds the tab's example slices in the data root's layout, and
    the fallback lists them as the data root does (largest LGG tumour first, BraTS, the tumour-free slice)."""
    from demos import trivae as demo
    from nndl_data import DatasetMissing, data_root

    shipped = demo.shipped_slices()
    assert len(shipped) == 7 and all(Path(path).is_file() for pair in shipped for path in pair)
    try:
        root = data_root()
        demo.example_slices.cache_clear()
        from_root = demo.example_slices()
    except DatasetMissing:
        pytest.skip("no data root here")
    finally:
        demo.example_slices.cache_clear()
    relative = [tuple(str(Path(path).relative_to(demo.ASSETS)) for path in pair) for pair in shipped]
    assert relative == [tuple(str(Path(path).relative_to(root)) for path in pair) for pair in from_root]
