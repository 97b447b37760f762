"""The MAF tab's pure functions and adapters on tiny dry-run checkpoints (generated data), and bad uploads."""

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from models.maf import PixelMAF, PixelMAFConfig


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    """Dry-run pixel and feature checkpoints under the real names, evaluated on a generated MVTec folder."""
    import evaluation.maf as evaluation
    import training.maf as training

    base = tmp_path_factory.mktemp("maf-demo")
    root = base / "checkpoints"
    for model in ("pixel", "features"):
        training.main(training.TrainConfig(model=model, dry_run=True, run_dir=str(base / model), checkpoint_root=str(root)))
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("NNDL_CHECKPOINTS", str(root))
    for name in ("maf-pixel-capsule", "maf-features-capsule"):
        evaluation.evaluate(name, root=base / "pixel" / "fake-data")
    yield base
    monkeypatch.undo()


@pytest.fixture
def demo(tiny_checkpoints, monkeypatch):
    from demos import maf

    monkeypatch.setenv("NNDL_CHECKPOINTS", str(tiny_checkpoints / "checkpoints"))
    monkeypatch.setenv("NNDL_DATA_ROOT", str(tiny_checkpoints / "pixel" / "fake-data"))
    for cached in (maf.load_model, maf.results, maf.example_samples, maf.training_images):
        cached.cache_clear()
    yield maf
    for cached in (maf.load_model, maf.results, maf.example_samples, maf.training_images):
        cached.cache_clear()


def test_tile_grid_shapes():
    from demos.maf import tile

    grid = tile(np.zeros((5, 8, 8), np.uint8), columns=4, scale=2)
    assert grid.shape == (2 * 16 + 2, 4 * 16 + 3 * 2)
    assert tile(np.zeros((2, 8, 8, 3), np.uint8), columns=4, scale=1).shape == (8, 18, 3)


def test_sample_grid_is_seeded_timed_and_equals_the_naive_sampler():
    from demos.maf import sample_grid
    from tests.test_maf import randomise_outputs

    torch.manual_seed(0)
    model = randomise_outputs(PixelMAF(PixelMAFConfig(image_size=4, hidden=(16, 16), blocks=2)), std=0.05).eval()
    first = sample_grid(model, 3, 0.7, seed=4, naive=True)
    again = sample_grid(model, 2, 0.7, seed=4)
    assert first.grid.shape == (4 * 4, 3 * 16 + 2 * 2)
    assert np.array_equal(first.grid[:, :16], again.grid[:, :16])  # the i-th sample comes from seed + i
    assert first.seconds_per_sample > 0 and first.naive_seconds_per_sample > 0 and first.max_difference < 1e-4


def test_heat_overlay_resizes_and_leaves_low_values_alone():
    from demos.maf import heat_overlay

    image = np.full((16, 16, 3), 100, np.uint8)
    heat = np.zeros((4, 4), np.float32)
    heat[0, 0] = 5
    out = heat_overlay(image, heat, low=1, high=5)
    assert out.shape == (16, 16, 3) and np.array_equal(out[12:, 12:], image[12:, 12:]) and not np.array_equal(out[0, 0], image[0, 0])


def test_analyse_gives_every_panel_and_a_verdict(demo):
    sample = next(s for s in demo.example_samples("capsule") if s.is_anomalous)
    shown, feature_heat, pixel_heat, truth, text, *figures = demo._analyse("capsule", str(sample.path), str(sample.mask_path))
    assert shown.shape == (64, 64, 3) and feature_heat.shape == shown.shape and pixel_heat.shape == shown.shape
    assert truth.shape == (64, 64) and truth.max() == 255
    assert "Feature flow" in text and "bits/dim" in text and ("defective" in text or "good" in text)
    assert all(figure.ndim == 3 and figure.shape[2] == 3 for figure in figures)  # rendered histograms


def test_sample_adapter_and_panels(demo):
    grid, real, text = demo._sample("capsule", 2, 0.5, 1, True, progress=None)
    assert grid.ndim == 2 and real is not None and "1,675 s" in text and "naive" in text
    table, roc, summary, curves, feature_curves = demo._category_panels("capsule")
    assert "image AUROC" in table and "crack" in table and "0.78" in table
    assert "maf-pixel-capsule" in summary and curves is not None and feature_curves is not None
    opened = demo._opened()
    assert opened[2] is not None and opened[4] is not None  # an example is analysed when the tab opens
    assert "AUROC" in demo.headline()


def test_sample_adapter_refuses_out_of_range_settings(demo):
    with pytest.raises(gr.Error, match="between 1 and 16"):
        demo._sample("capsule", 40, 0.5, 0, False, progress=None)
    with pytest.raises(gr.Error, match="Temperature"):
        demo._sample("capsule", 2, 9.0, 0, False, progress=None)
    with pytest.raises(gr.Error, match="category"):
        demo._sample("carpet", 2, 0.5, 0, False, progress=None)


def test_bad_uploads_answer_with_messages(demo, tmp_path):
    from tests.bad_uploads import MUST_ACCEPT, MUST_REFUSE, bad_image_files

    files = bad_image_files(tmp_path / "bad")
    for case in MUST_REFUSE:
        with pytest.raises(gr.Error):
            demo._analyse("capsule", str(files[case]), None)
    for case in MUST_ACCEPT:
        shown, *_, text, _, _ = demo._analyse("capsule", str(files[case]), None)
        assert shown.shape == (64, 64, 3) and "bits/dim" in text
    with pytest.raises(gr.Error, match="Upload"):
        demo._analyse("capsule", None, None)
    odd = tmp_path / "wide.png"
    Image.fromarray(np.zeros((30, 90, 3), np.uint8)).save(odd)
    assert demo._analyse("capsule", str(odd), None)[0].shape == (64, 64, 3)  # any aspect ratio is resized


def test_examples_fall_back_to_the_shipped_assets(monkeypatch, tmp_path):
    from demos import maf

    monkeypatch.setenv("NNDL_DATA_ROOT", str(tmp_path))  # a data root without MVTec
    maf.example_samples.cache_clear()
    try:
        samples = maf.example_samples("capsule")
        assert [s.defect for s in samples] == ["good", "crack", "faulty_imprint", "poke", "scratch", "squeeze"]
        assert all(s.path.exists() for s in samples) and all(s.mask_path is not None for s in samples[1:])
        assert maf.example_samples("bottle") == []
        size = sum(path.stat().st_size for path in maf.ASSETS.rglob("*") if path.is_file())
        assert size < 1_000_000 and "CC BY-NC-SA 4.0" in (maf.ASSETS / "README.md").read_text()
    finally:
        maf.example_samples.cache_clear()


def test_latent_inspector_round_trip_is_exact(demo):
    from tests.test_maf import randomise_outputs

    sample = demo.example_samples("capsule")[0]
    z_image, histogram, text = demo._inspect("capsule", str(sample.path))
    assert z_image.shape == (256, 256) and histogram.ndim == 3 and "round trip" in text.lower()
    model = randomise_outputs(PixelMAF(PixelMAFConfig(image_size=8, hidden=(32, 32), blocks=3)), std=0.05).eval()
    latent = demo.inspect_latent(model, Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 20, 3), dtype=np.uint8)))
    assert latent.z.shape == (64,) and latent.round_trip_error < 1e-4 and latent.z_image.dtype == np.uint8
