"""CycleGAN: models, data, training (dry run + exact resume), evaluation, the pure demo functions, bad uploads."""

import dataclasses
import csv
import json
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from demos import cyclegan as demo
from evaluation import cyclegan as evaluation
from models import registry
from models.cyclegan import (
    CycleGAN,
    CycleGANConfig,
    CycleGANDiscriminator,
    CycleGANDiscriminatorConfig,
    CycleGANGenerator,
    CycleGANGeneratorConfig,
    dequantize_state,
    load_snapshot,
    quantize_state,
    save_snapshot,
)
from tests.bad_uploads import MUST_ACCEPT, MUST_REFUSE, bad_image_files
from training import cyclegan as training
from nndl_data import DatasetMissing
from nndl_data.cyclegan import DATASETS, load_split, random_crop_flip

TINY_GENERATOR = CycleGANGeneratorConfig(filters=4, residual_blocks=1, image_size=32)


def tiny_pair(seed: int = 0, dataset: str = "apple2orange") -> CycleGAN:
    torch.manual_seed(seed)
    info = training.dataset_info(dataset)
    return CycleGAN(CycleGANConfig(generator=TINY_GENERATOR, dataset=info.name, domain_a=info.domain_a, domain_b=info.domain_b)).eval()


@pytest.mark.parametrize("upsampling", ["resize_conv", "transposed"])
def test_generator_shapes_range_and_gradients(upsampling):
    torch.manual_seed(0)
    generator = CycleGANGenerator(dataclasses.replace(TINY_GENERATOR, upsampling=upsampling))
    x = torch.rand(2, 3, 32, 48)
    y = generator(x)
    assert y.shape == x.shape and torch.isfinite(y).all() and 0 <= y.min() and y.max() <= 1
    (y - x).abs().mean().backward()
    for name, parameter in generator.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_generator_rejects_sizes_not_divisible_by_four():
    with pytest.raises(ValueError, match="divisible by 4"):
        CycleGANGenerator(TINY_GENERATOR)(torch.rand(1, 3, 30, 32))


def test_official_sizes_match_the_spec():
    """64-filter ResNet-6 with transposed convs = 7,837,699 parameters; 70×70 PatchGAN = 2,764,737, 14×14 at 128 px."""
    official = CycleGANGenerator(CycleGANGeneratorConfig(filters=64, upsampling="transposed"))
    assert sum(p.numel() for p in official.parameters()) == 7_837_699
    resize_conv = CycleGANGenerator(CycleGANGeneratorConfig(filters=64))
    assert sum(p.numel() for p in resize_conv.parameters()) == 7_837_699  # same cost, no checkerboard
    discriminator = CycleGANDiscriminator(CycleGANDiscriminatorConfig())
    assert sum(p.numel() for p in discriminator.parameters()) == 2_764_737
    scores = discriminator(torch.rand(1, 3, 128, 128))
    assert scores.shape == (1, 1, 14, 14)
    scores.mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in discriminator.parameters())


def test_pair_directions_and_registry_round_trip(checkpoint_root):
    model = tiny_pair()
    x = torch.rand(1, 3, 32, 32)
    assert model.generators("a2b") == (model.g_ab, model.g_ba)
    assert model.generators("b2a") == (model.g_ba, model.g_ab)
    with pytest.raises(ValueError, match="a2b"):
        model.generators("sideways")
    registry.save(model, "cyclegan-test", card={"note": "test"}, half=True)
    loaded = registry.load("cyclegan-test")
    assert loaded.config == model.config
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, "b2a"), model(x, "b2a"), atol=3e-3, rtol=0)


def test_int8_snapshot_is_small_and_close(tmp_path):
    model = tiny_pair()
    packed = quantize_state(model.state_dict())
    assert packed["g_ab.net.1.weight"].dtype == torch.int8
    for key, value in dequantize_state(packed).items():
        original = model.state_dict()[key].float()
        assert (value - original).abs().max() <= original.abs().max() / 127 + 1e-6, key
    path = save_snapshot(model, tmp_path / "snapshot-early.safetensors", step=3, epoch=0.5)
    restored = load_snapshot(path, model.config)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(restored(x), model(x), atol=0.03, rtol=0)
    with pytest.raises(registry.CheckpointError):
        load_snapshot(path, dataclasses.replace(model.config, generator=dataclasses.replace(TINY_GENERATOR, filters=8)))


def test_image_pool_mixes_history_and_resumes_exactly():
    pool = training.ImagePool(size=3, seed=0)
    images = [torch.full((1, 3, 2, 2), float(i)) for i in range(20)]
    first = [pool.query(image)[0, 0, 0, 0].item() for image in images[:3]]
    assert first == [0.0, 1.0, 2.0]  # filling: every fake is returned as is
    state = pool.state_dict()
    later = [pool.query(image)[0, 0, 0, 0].item() for image in images[3:]]
    assert any(value < 3 for value in later)  # older fakes come back
    twin = training.ImagePool(size=3, seed=99)
    twin.load_state_dict(state)
    assert [twin.query(image)[0, 0, 0, 0].item() for image in images[3:]] == later


def test_schedule_constant_then_linear_decay_and_fit():
    cfg = training.TrainConfig(epochs=20, decay_epochs=10)
    schedule = training.Schedule(cfg, steps_per_epoch=100)
    assert schedule.total == 2000
    assert schedule.learning_rate_factor(0) == schedule.learning_rate_factor(1000) == 1.0
    assert 0 < schedule.learning_rate_factor(1999) < 0.01
    assert schedule.learning_rate_factor(1500) == pytest.approx(1 - 500 / 1001)
    assert schedule.snapshot_steps() == {"early": 100, "middle": 1000}
    schedule.fit(done=100, steps_per_second=10, seconds_left=50)  # 600 steps fit
    assert schedule.total == 600 and schedule.fitted and schedule.snapshot_steps()["middle"] == 300
    schedule.fit(done=200, steps_per_second=1000, seconds_left=1000)  # never grows back
    assert schedule.total == 600


def _dry_config(tmp_path, name, **overrides):
    return training.TrainConfig(dry_run=True, run_dir=str(tmp_path / name), checkpoint_root=str(tmp_path / f"{name}-checkpoints"), **overrides)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # bit-exact comparisons between runs
    yield
    torch.set_num_threads(threads)


def test_dry_run_writes_checkpoint_with_snapshots_and_resume_is_exact(tmp_path, one_thread):
    straight = training.main(_dry_config(tmp_path, "straight"))
    card = json.loads((straight / "card.json").read_text())
    assert card["finished"] and card["steps"] == 10 and set(card["snapshots"]) == {"early", "middle"}
    assert (straight / "log.csv").exists() and (straight / "snapshot-middle.safetensors").exists()
    assert load_file(straight / "model.safetensors")["g_ab.net.1.weight"].dtype == torch.float16

    interrupted = training.main(_dry_config(tmp_path, "resumed", max_minutes=1e-9))  # stops after one step
    assert not json.loads((interrupted / "card.json").read_text())["finished"]
    resumed = training.main(_dry_config(tmp_path, "resumed"))
    assert json.loads((resumed / "card.json").read_text())["finished"]
    expected, actual = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0)


def test_continued_run_keeps_parent_snapshots_and_one_log(tmp_path, one_thread):
    parent = training.main(_dry_config(tmp_path, "parent"))
    parent_card = json.loads((parent / "card.json").read_text())  # read now: the child is saved under the same name
    child_config = dataclasses.replace(_dry_config(tmp_path, "child"), checkpoint_root=str(parent.parent), init_from=parent.name)
    child_config = dataclasses.replace(child_config, run_dir=str(tmp_path / "child-run"))
    child = training.main(child_config)
    card = json.loads((child / "card.json").read_text())
    assert card["initialised_from"]["checkpoint"] == parent.name
    assert card["epochs_trained"] == pytest.approx(2 * parent_card["epochs_trained"])  # the parent's epochs, then its own
    assert card["snapshots"] == parent_card["snapshots"]  # early/middle stay the parent's
    steps = [int(row["step"]) for row in csv.DictReader(open(child / "log.csv"))]
    assert steps == sorted(steps) and steps[-1] == 2 * parent_card["steps"]


def test_continued_run_keeps_the_parents_resolution_whatever_its_crops(tmp_path, one_thread):
    """A 128 px model fine-tuned on 96 px crops is still a 128 px model (evaluation and tests run it at 128)."""
    tiny = training._tiny_config(training.TrainConfig())
    generator = CycleGANGeneratorConfig(filters=tiny.filters, residual_blocks=tiny.residual_blocks, upsampling=tiny.upsampling, image_size=48)
    root = tmp_path / "checkpoints"
    registry.save(CycleGAN(CycleGANConfig(generator=generator, dataset="apple2orange", domain_a="apple", domain_b="orange")),
                  "cyclegan-apple2orange", root=root, card={})
    child = training.main(dataclasses.replace(_dry_config(tmp_path, "child"), checkpoint_root=str(root), init_from="cyclegan-apple2orange"))
    assert json.loads((child / "card.json").read_text())["train_config"]["image_size"] == 32  # the dry run's crops
    assert registry.load("cyclegan-apple2orange", root=root).config.generator.image_size == 48


def test_continued_run_interrupted_after_saving_under_the_parents_name_still_names_its_parent(tmp_path, one_thread):
    parent = training.main(_dry_config(tmp_path, "parent"))
    parent_card = json.loads((parent / "card.json").read_text())
    child_config = dataclasses.replace(_dry_config(tmp_path, "child"), checkpoint_root=str(parent.parent), init_from=parent.name)
    training.main(dataclasses.replace(child_config, max_minutes=1e-9))  # stops after one step, overwriting the parent
    card = json.loads((training.main(child_config) / "card.json").read_text())
    assert card["initialised_from"]["steps"] == parent_card["steps"]
    assert card["epochs_trained"] == pytest.approx(2 * parent_card["epochs_trained"])
    steps = [int(row["step"]) for row in csv.DictReader(open(parent.parent / parent.name / "log.csv"))]
    assert steps == sorted(steps) and steps[-1] == 2 * parent_card["steps"]


def test_two_processes_under_torchrun_train_like_one_on_the_same_global_batch(tmp_path):
    """Both generators and both discriminators under DDP (2 gloo processes, a batch of 2 split 1 + 1, no history pool,
    which is per process): the first step's losses equal one process's, so the two halves are the whole batch's crops
    and flips. Gradient averaging is tests/test_loop.py's; after the first update Adam turns the rounding noise of
    the zero gradients of biases before an instance norm into full steps, so later losses drift (docs/gpu.md). One
    checkpoint, written by process 0."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed beside this Python")
    root = Path(__file__).resolve().parent.parent
    logs = {}
    for processes in (1, 2):
        command = [str(torchrun), "--standalone", f"--nproc_per_node={processes}", "-m", "training.cyclegan", "--dry-run", "--batch-size", "2",
                   "--pool-size", "0", "--precision", "fp32", "--run-dir", str(tmp_path / f"run{processes}"), "--checkpoint-root", str(tmp_path / f"checkpoints{processes}")]
        result = subprocess.run(command, cwd=root, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}, capture_output=True, text=True, timeout=240)
        assert result.returncode == 0, result.stderr[-3000:]
        logs[processes] = list(csv.DictReader(open(tmp_path / f"run{processes}" / "log.csv")))
    assert [row["step"] for row in logs[2]] == ["1", "2", "3", "4"]
    for key in ("g_ab", "g_ba", "cycle_a", "cycle_b", "identity_a", "identity_b", "d_a", "d_b"):
        assert float(logs[2][0][key]) == pytest.approx(float(logs[1][0][key]), rel=1e-5), key
    card = json.loads((tmp_path / "checkpoints2" / "cyclegan-apple2orange" / "card.json").read_text())
    assert card["processes"] == 2 and card["finished"]


def _write_layout(root, dataset="apple2orange", folder="cyclegan/apple2orange", count=3, size=40):
    rng = np.random.default_rng(0)
    for split in ("trainA", "trainB", "testA", "testB"):
        directory = root / folder / split
        directory.mkdir(parents=True)
        for index in range(count):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(directory / f"n{index:03d}.jpg")
    return root


def test_loader_reads_the_published_layout(tmp_path):
    root = _write_layout(tmp_path)
    images = load_split("apple2orange", "testB", root, size=32)
    assert images.shape == (3, 3, 32, 32) and images.dtype == torch.uint8
    crops = random_crop_flip(images, 24, torch.Generator().manual_seed(1))
    again = random_crop_flip(images, 24, torch.Generator().manual_seed(1))
    assert crops.shape == (3, 3, 24, 24) and torch.equal(crops, again) and crops.max() <= 1
    with pytest.raises(DatasetMissing, match="summer2winter_yosemite"):
        load_split("summer2winter", "testA", root)


def test_kid_is_zero_for_one_distribution_and_positive_for_another():
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(200, 16, generator=generator), torch.randn(200, 16, generator=generator)
    same, _ = evaluation.kernel_inception_distance(x, y, subsets=20, subset_size=100)
    shifted, _ = evaluation.kernel_inception_distance(x, y + 1.0, subsets=20, subset_size=100)
    assert abs(same) < 0.05 and shifted > 0.5
    assert evaluation.share_in(torch.tensor([950, 950, 1, 948]), (950,)) == 0.5


def test_kid_from_torchmetrics_gives_the_numbers_of_the_hand_written_one():
    """Against what the hand-written KID gave on the same features before it was deleted (commit e094150), whose
    numbers the committed cards hold: equal to float32 rounding (it summed in float32)."""
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(300, 32, generator=generator), torch.randn(250, 32, generator=generator) * 1.1 + 0.2
    mean, std = evaluation.kernel_inception_distance(x, y)
    assert (mean, std) == pytest.approx((0.1252029985189438, 0.03162987530231476), rel=1e-6)
    mean, std = evaluation.kernel_inception_distance(x, y, subsets=20, subset_size=400)  # subsets shrink to the smaller set
    assert (mean, std) == pytest.approx((0.12421741336584091, 0.00541763287037611), rel=1e-6)


def test_evaluation_fills_the_card(tmp_path, checkpoint_root):
    data_root = _write_layout(tmp_path / "data", count=4, size=32)
    registry.save(tiny_pair(), "cyclegan-apple2orange", card={"snapshots": {}}, half=True)
    evaluation.main(["--dataset", "apple2orange", "--data-root", str(data_root)])
    metrics = registry.load_card("cyclegan-apple2orange")["metrics"]
    for key in ("cycle_l1_a", "identity_l1_b", "kid_a2b", "kid_untranslated", "orange_share_a2b", "apple_share_b2a", "orange_share_untranslated"):
        assert key in metrics, key
    assert metrics["test_images_a"] == 4 and 0 <= metrics["orange_share_a2b"] <= 1


def test_translate_keeps_the_aspect_ratio_and_any_mode():
    model = tiny_pair()
    for mode, size in (("RGB", (300, 200)), ("RGBA", (90, 160)), ("L", (1000, 100))):
        image = Image.new(mode, size, 128 if mode == "L" else (10, 200, 30, 255)[: len(mode)])
        result = demo.translate(model, image, "a2b", resolution=128)
        width, height = result.input.size
        assert min(width, height) == 128 and width % 4 == 0 and height % 4 == 0
        assert (width > height) == (size[0] > size[1])
        for picture in (result.translated, result.reconstruction, result.identity, result.error_map):
            assert picture.size == result.input.size and picture.mode == "RGB"
        assert 0 <= result.cycle_l1 <= 1 and 0 <= result.identity_l1 <= 1
    assert demo.working_size(500, 300, 128) == (212, 128)
    assert demo.working_size(100, 1000, 256) == (256, 512)  # capped at 2:1 (the centre is cropped first)
    noisy = demo.translate(model, Image.new("RGB", (64, 64), (200, 30, 30)), "b2a", noise=0.1)
    assert noisy.translated.size == (128, 128)


@pytest.fixture
def tiny_demo(monkeypatch):
    models = {dataset: tiny_pair(dataset=dataset) for dataset in ("apple2orange", "summer2winter")}
    monkeypatch.setattr(demo, "load_model", lambda dataset="apple2orange", stage="final": models[dataset])
    monkeypatch.setattr(demo, "stage_label", lambda dataset, stage: stage)


def test_adapter_answers_bad_uploads_with_messages(tmp_path, tiny_demo):
    files = bad_image_files(tmp_path)
    for case in MUST_REFUSE:
        with pytest.raises(gr.Error) as error:
            demo._translate(str(files[case]), "apple2orange", "a2b", 128, 2, 0.0)
        assert len(str(error.value)) > 10, case
    for case in MUST_ACCEPT:
        outputs = demo._translate(str(files[case]), "summer2winter", "b2a", 128, 0, 0.0)
        assert outputs[1].size == outputs[0].size, case
    with pytest.raises(gr.Error, match="Upload an image"):
        demo._translate(None, "apple2orange", "a2b", 128, 2, 0.0)
    with pytest.raises(gr.Error, match="direction"):
        demo._translate(str(files["rgba"]), "apple2orange", "sideways", 128, 2, 0.0)


def test_examples_cover_both_datasets_and_directions(tmp_path, monkeypatch):
    for dataset, info in DATASETS.items():
        _write_layout(tmp_path, dataset=dataset, folder=info.folder, count=5, size=128)
    monkeypatch.setenv("NNDL_DATA_ROOT", str(tmp_path))
    rows = demo.example_rows()
    assert len(rows) == 4 * demo.EXAMPLES_PER_DOMAIN
    assert {(dataset, direction) for _, dataset, direction in rows} == {
        ("apple2orange", "a2b"), ("apple2orange", "b2a"), ("summer2winter", "a2b"), ("summer2winter", "b2a"),
    }
    assert demo.direction_label("summer2winter", "b2a") == "winter → summer"
    for path, _, _ in rows:
        with Image.open(path) as image:
            assert image.size == (128, 128)
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("NNDL_DATA_ROOT", str(tmp_path / "empty"))
    shipped = demo.example_rows()  # no data here (as on a Space): the test images shipped in demos/assets/cyclegan
    assert len(shipped) == 4 * 2 and all(Path(path).is_relative_to(demo.ASSETS) and Path(path).is_file() for path, _, _ in shipped)
    assert {(dataset, direction) for _, dataset, direction in shipped} == {(d, w) for d in DATASETS for w in ("a2b", "b2a")}
    assert len(demo.api_examples()["/cyclegan"]) == 3


def test_tab_builds_and_shows_card_metrics_beside_the_report(checkpoint_root):
    for dataset in ("apple2orange", "summer2winter"):
        registry.save(tiny_pair(dataset=dataset), f"cyclegan-{dataset}", card={"steps": 5, "epochs_trained": 1.0, "snapshots": {}}, half=True)
    registry.update_card("cyclegan-apple2orange", metrics={"orange_share_a2b": 0.75, "orange_share_untranslated": 0.01, "kid_a2b": 0.0123})
    table = demo.measurements_markdown("apple2orange")
    assert "**75 %**" in table and "untranslated 1 %" in table and "12.3" in table and "uniformly orange" in table
    assert "foliage" in demo.measurements_markdown("summer2winter")
    with gr.Blocks() as blocks:
        demo.build()
    assert any(getattr(block, "api_name", None) == "cyclegan" for block in blocks.fns.values())
