"""PixelDA models and training: shapes, gradients, dry-run, exact resume after an interruption or kill -9."""

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from models import registry
from models.pixelda import (
    PixelDAClassifier,
    PixelDAClassifierConfig,
    PixelDADiscriminator,
    PixelDADiscriminatorConfig,
    PixelDAGenerator,
    PixelDAGeneratorConfig,
)
from training import pixelda as train_pixelda
from models.registry import read_log

REPO_ROOT = Path(__file__).resolve().parent.parent
TINY = {
    "generator": lambda: PixelDAGenerator(PixelDAGeneratorConfig(filters=8, residual_blocks=1)),
    "discriminator": lambda: PixelDADiscriminator(PixelDADiscriminatorConfig(filters=8)),
    "classifier": lambda: PixelDAClassifier(PixelDAClassifierConfig(conv_channels=(4, 8), hidden=16)),
}


@pytest.mark.parametrize("part", sorted(TINY))
def test_shapes_and_gradients_reach_every_parameter(part):
    torch.manual_seed(0)
    model = TINY[part]()
    images = torch.rand(4, 3, 32, 32)
    output = model(images)
    expected = {"generator": (4, 3, 32, 32), "discriminator": (4,), "classifier": (4, 10)}[part]
    assert output.shape == expected and torch.isfinite(output).all()
    output.float().pow(2).mean().backward()
    missing = [name for name, parameter in model.named_parameters() if parameter.grad is None or not parameter.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches {missing}"


def test_generator_output_is_an_image_and_depends_on_the_noise():
    generator = TINY["generator"]().eval()
    digit = torch.rand(1, 3, 32, 32).expand(2, -1, -1, -1)
    noise = generator.sample_noise(2, torch.Generator().manual_seed(0))
    output = generator(digit, noise)
    assert output.min() >= 0 and output.max() <= 1
    assert not torch.allclose(output[0], output[1]), "two noise vectors gave the same image"
    assert noise.min() >= -1 and noise.max() <= 1


def _config(tmp_path: Path, name: str, **overrides) -> train_pixelda.TrainConfig:
    return dataclasses.replace(
        train_pixelda.TrainConfig(dry_run=True, run_dir=str(tmp_path / name / "run"), checkpoint_root=str(tmp_path / name / "checkpoints")),
        **overrides,
    )


def test_dry_run_writes_loadable_checkpoints_with_cards(tmp_path):
    written = train_pixelda.main(_config(tmp_path, "dry"))
    assert set(written) == {"pixelda-source-only", "pixelda-adapted", "pixelda-generator"}
    for name in written:
        model = registry.load(name, root=tmp_path / "dry" / "checkpoints")
        card = registry.load_card(name, root=tmp_path / "dry" / "checkpoints")
        assert card["steps"] == 6 and card["finished"] and card["data"]["generated_dry_run_data"]
        assert model is not None
    log = read_log(tmp_path / "dry" / "checkpoints" / "pixelda-adapted" / "log.csv")
    assert list(log["step"]) == [1, 2, 3, 4, 5, 6]


def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(tmp_path):
    train_pixelda.main(_config(tmp_path, "straight", baseline_steps=3, steps=5))
    train_pixelda.main(_config(tmp_path, "resumed", baseline_steps=3, steps=2))  # "interrupted" after 5 of 8 steps
    train_pixelda.main(_config(tmp_path, "resumed", baseline_steps=3, steps=5))  # same run dir: continues at 5
    for name in ("pixelda-adapted", "pixelda-generator"):
        straight = registry.load(name, root=tmp_path / "straight" / "checkpoints").state_dict()
        resumed = registry.load(name, root=tmp_path / "resumed" / "checkpoints").state_dict()
        for key in straight:
            torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=0, msg=f"{name}.{key} differs")
    log = read_log(tmp_path / "resumed" / "run" / "log.csv")
    assert list(log["step"]) == list(range(1, 9)), "log rows lost or duplicated across the resume"


def test_kill_9_then_the_same_command_continues(tmp_path):
    command = [
        sys.executable, "-m", "training.pixelda", "--dry-run", "--baseline-steps", "4", "--steps", "400",
        "--run-dir", str(tmp_path / "run"), "--checkpoint-root", str(tmp_path / "checkpoints"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "run" / "last.pt"
    deadline = time.monotonic() + 120
    while not (state.exists() and len(read_log(tmp_path / "run" / "log.csv").get("step", [])) >= 20) and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert state.exists(), "no state saved before the kill"
    saved_step = torch.load(state, weights_only=True)["step"]
    assert 0 < saved_step < 404
    rerun = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"resumed from {state} at step {saved_step}" in rerun.stderr
    steps = list(read_log(tmp_path / "run" / "log.csv")["step"])
    assert steps == list(range(1, 405)), "the resumed log must continue exactly after the saved step"
    assert registry.load_card("pixelda-adapted", root=tmp_path / "checkpoints")["steps"] == 404


def test_cli_help_and_presets():
    result = subprocess.run([sys.executable, "-m", "training.pixelda", "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--preset" in result.stdout and "--data-root" in result.stdout
    report = train_pixelda.PRESETS["report"]
    assert (report.batch_size, report.style_transfer_loss_weight, report.task_loss_in_g_weight) == (64, 0.0113173311334, 0.0100959947002)
