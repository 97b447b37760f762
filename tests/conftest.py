"""Shared fixtures. Tests run on the CPU, offline, with small thread counts (CI has 2 cores)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def checkpoint_root(tmp_path, monkeypatch):
    """An empty checkpoint folder that the registry uses instead of checkpoints/."""
    root = tmp_path / "checkpoints"
    root.mkdir()
    monkeypatch.setenv("NNDL_CHECKPOINTS", str(root))
    return root
