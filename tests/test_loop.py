"""training.loop.Run under torchrun: 2 gloo processes follow 1 process, and a run resumes across a change of N."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from models import registry

ROOT = Path(__file__).resolve().parent.parent
TORCHRUN = Path(sys.executable).with_name("torchrun")
pytestmark = pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this Python")


def launch(processes: int, *arguments: str) -> None:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [str(TORCHRUN), "--standalone", f"--nproc_per_node={processes}", *arguments]
    result = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "last.pt", weights_only=True)["objects"]["model"]


def test_two_processes_follow_one_process_on_the_same_global_batch(tmp_path):
    launch(1, "tests/ddp_least_squares.py", str(tmp_path / "one"), "6")
    launch(2, "tests/ddp_least_squares.py", str(tmp_path / "two"), "6")
    one, two = weights(tmp_path / "one"), weights(tmp_path / "two")
    for key in one:  # SGD with momentum, 6 steps: only the all-reduce's float rounding may differ
        torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=1e-6, msg=key)
    assert not torch.equal(one["weight"], torch.nn.Linear(5, 1).weight)  # it trained
    losses = [line.split(",") for line in (tmp_path / "two" / "log.csv").read_text().splitlines()[1:]]
    assert [int(row[0]) for row in losses] == list(range(1, 7))  # one log, written by process 0 only


def test_a_run_resumes_with_another_number_of_processes(tmp_path):
    launch(2, "tests/ddp_least_squares.py", str(tmp_path / "changed"), "4")  # 4 steps on 2 processes …
    launch(1, "tests/ddp_least_squares.py", str(tmp_path / "changed"), "6")  # … then 2 more on 1
    launch(1, "tests/ddp_least_squares.py", str(tmp_path / "one"), "6")
    torch.testing.assert_close(weights(tmp_path / "changed")["weight"], weights(tmp_path / "one")["weight"], rtol=1e-5, atol=1e-6)


def test_a_system_trains_under_torchrun_and_only_process_zero_writes(tmp_path):
    """The Tri-VAE trainer's dry run on 2 gloo processes: one checkpoint, its card says 2 processes, one log."""
    launch(2, "-m", "training.trivae", "--model", "vae", "--dry-run", "--run-dir", str(tmp_path / "run"),
           "--checkpoint-root", str(tmp_path / "checkpoints"))
    card = json.loads((tmp_path / "checkpoints" / "trivae-vae" / "card.json").read_text())
    assert card["processes"] == 2 and card["steps"] == 4 and card["finished"]
    registry.load("trivae-vae", root=tmp_path / "checkpoints")  # loads strictly: the unwrapped module was saved
    assert not any(path.name.startswith("last.pt.") for path in (tmp_path / "run").iterdir())
    shutil.rmtree(tmp_path / "run")
