"""What the training scripts share: dataclass config → CLI, seeding, batches as a function of the step, resumable
state, CSV log, progress bar, `--init-from`, cards.

A training script builds its models on a `training.loop.Run`, which uses the state, log, progress bar and card
helpers below; the script itself needs only the config, `batch_indices` and `initialise_from`:

    cfg = parse_config(TrainConfig, PRESETS)           # --help lists every field
    run = Run(cfg, "pixelda")                           # see training/loop.py

Batches come from `batch_indices(n, batch_size, step, seed)`, a pure function of the step, so a resumed run
sees exactly the batches it would have seen without the interruption.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import json
import os
import random
import subprocess
import sys
import time
import typing
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from models import registry
from models.registry import REPO_ROOT
from models.runtime import hardware


@dataclasses.dataclass
class BaseTrainConfig:
    """Fields every training script has. Subclasses add their own (all with defaults)."""

    data_root: str | None = None  # default: $NNDL_DATA_ROOT, else ../shared/data, else ./data
    run_dir: str = ""  # resumable state and log; default runs/<slug>
    checkpoint_root: str = "checkpoints"
    seed: int = 0
    dry_run: bool = False  # a few steps on tiny generated data: checks the code path, not the model
    device: str = "auto"  # auto = cuda when available, else cpu
    max_minutes: float = 0.0  # stop (saving state and weights) after this much wall time; 0 = no limit
    init_from: str = ""  # start a fresh run from this checkpoint's weights (fine-tuning; the card records the parent)
    precision: str = "auto"  # bf16 | fp32 | auto: bf16 autocast where the hardware runs it fast (CUDA, CPUs with AMX or AVX512-BF16)


def parse_config(config_class: type, presets: dict[str, typing.Any] | None = None, argv: list[str] | None = None):
    """Build an argparse CLI from the dataclass: defaults < `--preset NAME` < explicit flags."""
    presets = presets or {}
    parser = argparse.ArgumentParser(description=(sys.modules[config_class.__module__].__doc__ or "").strip().splitlines()[0])
    if presets:
        parser.add_argument("--preset", choices=sorted(presets), help="named settings; explicit flags override them")
    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(config_class):
        flag = "--" + field.name.replace("_", "-")
        kind = hints[field.name]
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=f"(default {default})")
        elif typing.get_origin(kind) is tuple:
            item = typing.get_args(kind)[0]
            parser.add_argument(flag, type=item, nargs="+", default=None, help=f"(default {default})")
        else:
            scalar = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
            parser.add_argument(flag, type=scalar, default=None, help=f"(default {default})")
    args = vars(parser.parse_args(argv))
    base = presets[args.pop("preset")] if args.get("preset") else config_class()
    args.pop("preset", None)
    explicit = {key: tuple(value) if isinstance(value, list) else value for key, value in args.items() if value is not None}
    return dataclasses.replace(base, **explicit)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@functools.lru_cache(maxsize=4)
def _epoch_permutation(num_items: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(num_items, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def batch_indices(num_items: int, batch_size: int, step: int, seed: int) -> torch.Tensor:
    """Indices of the batch at `step`: shuffled without replacement per epoch, a pure function of the step."""
    per_epoch = max(num_items // batch_size, 1)
    epoch, position = divmod(step, per_epoch)
    permutation = _epoch_permutation(num_items, seed, epoch)
    return permutation[position * batch_size : (position + 1) * batch_size]


class RunState:
    """Everything needed to continue a run after `kill -9`: module/optimizer states, step, wall time, RNGs."""

    def __init__(self, run_dir: str | Path, **stateful):
        self.path = Path(run_dir) / "last.pt"
        self.stateful = stateful
        self.wall_time_s = 0.0
        self._started = time.monotonic()

    def restore(self) -> int:
        if not self.path.exists():
            return 0
        # Our own file, written by save() below; weights_only keeps it to tensors and plain containers.
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        for key, obj in self.stateful.items():
            obj.load_state_dict(state["objects"][key])
        torch.set_rng_state(state["torch_rng"])
        self.wall_time_s = state["wall_time_s"]
        self._started = time.monotonic()
        print(f"resumed from {self.path} at step {state['step']}", file=sys.stderr)
        return state["step"]

    def elapsed(self) -> float:
        return self.wall_time_s + time.monotonic() - self._started

    def save(self, step: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "step": step,
            "wall_time_s": self.elapsed(),
            "torch_rng": torch.get_rng_state(),
            "objects": {key: obj.state_dict() for key, obj in self.stateful.items()},
        }
        temporary = self.path.with_suffix(".tmp")
        torch.save(state, temporary)
        os.replace(temporary, self.path)  # atomic: a kill mid-write leaves the previous state


class CSVLog:
    """Append-only CSV of training metrics. On resume, rows after the restored step are dropped."""

    def __init__(self, path: str | Path, resume_step: int = 0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rows = []
        if self.path.exists() and resume_step > 0:
            with open(self.path, newline="") as handle:
                rows = [row for row in csv.DictReader(handle) if int(row["step"]) <= resume_step]
        self.fields: list[str] = list(rows[0].keys()) if rows else []
        with open(self.path, "w", newline="") as handle:
            if rows:
                writer = csv.DictWriter(handle, fieldnames=self.fields)
                writer.writeheader()
                writer.writerows(rows)

    def write(self, **values) -> None:
        values = {key: (f"{value:.6g}" if isinstance(value, float) else value) for key, value in values.items()}
        new_fields = [key for key in values if key not in self.fields]
        if new_fields:  # a new column (e.g. a second training phase): rewrite the file with the wider header
            rows = []
            if self.fields:
                with open(self.path, newline="") as handle:
                    rows = list(csv.DictReader(handle))
            self.fields += new_fields
            with open(self.path, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=self.fields)
                writer.writeheader()
                writer.writerows(rows)
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=self.fields).writerow(values)


def progress(start: int, total: int, description: str):
    return tqdm(range(start, total), initial=start, total=total, desc=description, dynamic_ncols=True, mininterval=2.0)


def git_commit() -> str | None:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit if len(commit) == 40 else None  # a copied tree without .git (the GPU machine) has none


def initialise_from(cfg, module: torch.nn.Module, start: int, run_dir: str | Path, device: torch.device | str = "cpu") -> dict | None:
    """With `--init-from NAME`: copy NAME's weights into `module` and return the parent's provenance for the card
    (`initialised_from`, chained through its parents). Both happen at the run's first start only: the provenance
    is kept in the run folder, because a continued run usually saves under its parent's name, and after its first
    save (say at --max-minutes) the checkpoint NAME is the run itself; a resumed run keeps its own weights."""
    if not cfg.init_from:
        return None
    record = Path(run_dir) / "parent.json"
    if start > 0 and record.exists():
        return json.loads(record.read_text())
    parent_card = registry.load_card(cfg.init_from, root=cfg.checkpoint_root)
    if start == 0:
        # A grown module (say, a generator given a context pathway) may have keys its parent lacks, under the prefixes
        # it declares as `grown_prefixes`; those start as it initialised them. Anything else must match exactly.
        missing, unexpected = module.load_state_dict(registry.load(cfg.init_from, root=cfg.checkpoint_root, device=device).state_dict(), strict=False)
        grown = getattr(module, "grown_prefixes", ())
        if unexpected or any(not key.startswith(grown) for key in missing):
            raise ValueError(f"{cfg.init_from} does not fit this model: missing {missing}, unexpected {unexpected}")
    parent = {key: parent_card.get(key) for key in ("steps", "epochs_trained", "wall_time_s", "hardware", "train_config", "initialised_from")}
    parent["checkpoint"] = cfg.init_from
    record.parent.mkdir(parents=True, exist_ok=True)
    temporary = record.with_suffix(f".{os.getpid()}.tmp")  # every process under torchrun writes the same record
    temporary.write_text(json.dumps(parent, indent=1))
    os.replace(temporary, record)
    return parent


def output_root(cfg, run_dir: str | Path) -> Path:
    """Where a run saves its checkpoints: `--checkpoint-root`, except that a dry run left at the default writes into
    its run folder, so `--dry-run` never replaces a trained checkpoint (it still reads parents from the default)."""
    default = next(field.default for field in dataclasses.fields(BaseTrainConfig) if field.name == "checkpoint_root")
    return Path(run_dir) / "checkpoints" if cfg.dry_run and cfg.checkpoint_root == default else Path(cfg.checkpoint_root)


def training_card(cfg, *, slug: str, steps: int, wall_time_s: float, data: dict, **extra) -> dict:
    """The part of a card that describes how the weights were made; the evaluation command adds `metrics`."""
    return {
        "system": slug,
        "data": data,
        "train_config": dataclasses.asdict(cfg),
        "seed": cfg.seed,
        "steps": steps,
        "wall_time_s": round(wall_time_s, 1),
        "hardware": hardware(),
        "torch": torch.__version__,
        "git_commit": git_commit(),
        "command": "python -m training." + slug + " " + " ".join(sys.argv[1:]),
        **extra,
    }


class BestWeights:
    """The weights with the best validation score so far (`lower_is_better` for a loss); part of the resumable state,
    so a run stopped and resumed keeps the same best as one that never stopped."""

    def __init__(self, lower_is_better: bool = True):
        self.lower_is_better = lower_is_better
        self.score, self.weights, self.step = (float("inf") if lower_is_better else float("-inf")), None, 0

    def better(self, score: float) -> bool:
        return score < self.score if self.lower_is_better else score > self.score

    def offer(self, score: float, model: torch.nn.Module, step: int) -> None:
        if self.better(score):
            self.score, self.step = score, step
            self.weights = {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}

    def state_dict(self) -> dict:
        return {"score": torch.tensor(self.score), "step": torch.tensor(self.step), "weights": self.weights or {}}

    def load_state_dict(self, state: dict) -> None:
        self.score = float(state["score"] if "score" in state else state["loss"])  # runs saved before the rename
        self.step, self.weights = int(state["step"]), state["weights"] or None

