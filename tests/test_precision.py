"""`--precision`: bf16 autocast where the hardware runs it fast, wired into every trainer."""

import importlib
import warnings

import pytest
import torch

from models import runtime
from models.runtime import use_bf16
from training.common import parse_config


@pytest.mark.parametrize(
    ("precision", "device", "bf16_units", "expected"),
    [
        ("auto", "cuda", "", True),
        ("auto", "cpu", "AMX", True),
        ("auto", "cpu", "AVX512-BF16", True),
        ("auto", "cpu", "", False),  # without native bf16 a CPU emulates it: slower than fp32
        ("bf16", "cpu", "", True),
        ("fp32", "cuda", "AMX", False),
    ],
)
def test_auto_picks_bf16_only_where_it_pays(precision, device, bf16_units, expected, monkeypatch):
    monkeypatch.setattr(runtime, "cpu_bf16_units", lambda: bf16_units)
    assert use_bf16(precision, torch.device(device)) is expected


def test_bf16_asked_for_on_a_cpu_without_native_bf16_warns_but_obeys(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_bf16_units", lambda: "")
    with pytest.warns(UserWarning, match="emulated"):
        assert use_bf16("bf16", torch.device("cpu")) is True
    monkeypatch.setattr(runtime, "cpu_bf16_units", lambda: "AVX512-BF16")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert use_bf16("bf16", torch.device("cpu")) is True


def test_unknown_precision_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="auto, bf16 or fp32"):
        use_bf16("fp16", torch.device("cpu"))


def test_autocast_runs_convolutions_in_bf16_and_fp32_stays_fp32():
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.rand(1, 3, 8, 8)
    with runtime.autocast("bf16", torch.device("cpu")):
        assert conv(x).dtype == torch.bfloat16
    with runtime.autocast("fp32", torch.device("cpu")):
        assert conv(x).dtype == torch.float32


TRAINERS = {  # slug: extra flags for a short dry run
    "pixelda": ["--baseline-steps", "2", "--steps", "2"],
    "cyclegan": [],
    "attacks": ["--model", "advgan"],
    "trivae": [],
}


def _dry_run_state(slug: str, precision: str, tmp_path) -> dict[str, torch.Tensor]:
    module = importlib.import_module(f"training.{slug}")
    run_dir = tmp_path / f"{slug}-{precision}"
    argv = ["--dry-run", "--device", "cpu", "--precision", precision, "--run-dir", str(run_dir),
            "--checkpoint-root", str(tmp_path / "checkpoints"), *TRAINERS[slug]]
    module.main(parse_config(module.TrainConfig, module.PRESETS, argv))
    state = torch.load(run_dir / "last.pt", weights_only=True)["objects"]
    return {f"{name}.{key}": value for name, obj in state.items() if isinstance(obj, dict)
            for key, value in obj.items() if isinstance(value, torch.Tensor) and value.is_floating_point()}


@pytest.mark.parametrize("slug", sorted(TRAINERS))
def test_every_trainer_honours_the_flag(slug, tmp_path):
    """bf16 changes what a dry run computes (so the flag reaches the forward passes), and it still trains:
    every weight stays finite and fp32 (autocast touches activations only)."""
    fp32, bf16 = _dry_run_state(slug, "fp32", tmp_path), _dry_run_state(slug, "bf16", tmp_path)
    assert fp32.keys() == bf16.keys()
    assert all(value.dtype == torch.float32 and torch.isfinite(value).all() for value in bf16.values())
    assert any(not torch.equal(fp32[key], bf16[key]) for key in fp32), f"--precision bf16 did not change training.{slug}"
