"""A trainer's dry run in a temporary folder, as the training tests of several systems make it."""

from __future__ import annotations

from pathlib import Path


def dry_run(training, tmp_path: Path, run: str, preset: str, **overrides):
    """`training.main` on `preset` with dry_run set, its run folder and checkpoint root under `tmp_path` (named by
    `run`, so several runs sit side by side); `overrides` replace preset fields. Returns what `main` returns."""
    cfg = training.PRESETS[preset]
    cfg = training.TrainConfig(**{**cfg.__dict__, "dry_run": True, "run_dir": str(tmp_path / run),
                                  "checkpoint_root": str(tmp_path / f"checkpoints-{run}"), **overrides})
    return training.main(cfg)
