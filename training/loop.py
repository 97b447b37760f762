"""The one training loop every system uses: resume, time budget, CSV log, progress, validation, saving, DDP.

A trainer builds its models and optimisers, hands them to a `Run`, and writes only what is its own: how one step
trains and how it validates.

    run = Run(cfg, name="trivae-vae")                  # run folder, seed, device, process group under torchrun
    model = Model(config).to(run.device)
    optimizer = torch.optim.Adam(model.parameters())
    trained = run.wrap(model)                          # DistributedDataParallel under torchrun, else the model itself
    run.resume(model=model, optimizer=optimizer)       # anything with state_dict(); the last saved step after a kill
    def step(step: int) -> dict:                       # one optimisation step; its losses (tensors, floats, text)
        index = run.shard(batch_indices(n, cfg.batch_size, step, cfg.seed))   # this process's part of the batch
        ...
    run.train(cfg.steps, step, validate=lambda step: {"validation_loss": ...}, log_every=25, eval_every=200)
    run.save_checkpoint(model, "trivae-vae", data={...}, half=True)          # process 0 only; the card's provenance

Batches must be a pure function of the step (`training.common.batch_indices`): a resumed run then sees exactly
the batches it would have seen, and a run resumed with another number of processes shards the same global batch.
Under `torchrun --nproc_per_node=N` every process computes its shard, DDP averages the gradients in backward (so
a step equals one process's step on the whole batch, when the loss is a mean and the shards are equal), and only
process 0 writes the log, the resumable state and the checkpoints.

`--max-minutes` is a budget for this command: a resumed run gets it afresh, while the card's wall time adds up every
session of the run.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist

from models import registry
from models.runtime import autocast, pick_device
from training.common import CSVLog, RunState, output_root, progress, seed_everything, training_card

Losses = dict[str, "torch.Tensor | float"]


def _start_process_group(device: torch.device) -> tuple[int, int]:
    """(rank, world size): from torchrun's environment, else a single process. gloo on CPUs, NCCL on GPUs."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world_size


class Run:
    """One training run: its folder (`runs/<name>`, resumable state `last.pt`, `log.csv`), device, processes, clock."""

    def __init__(self, cfg, name: str):
        self.cfg, self.name = cfg, name
        self.run_dir = Path(cfg.run_dir or f"runs/{name}{'-dry-run' if cfg.dry_run else ''}")
        device = pick_device(cfg.device)
        if device.type == "cuda" and "LOCAL_RANK" in os.environ:
            device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
            torch.cuda.set_device(device)
        self.device = device
        self.rank, self.world_size = _start_process_group(device)
        seed_everything(cfg.seed)  # the same on every process: identical initial weights, identical batches
        self.state: RunState | None = None
        self.start_step = self.steps_done = self.total_steps = 0
        self.clock_start = time.monotonic()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        """The forward passes' precision context (`--precision`)."""
        return autocast(self.cfg.precision, self.device)

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """The module to train with: under several processes, DDP over it (gradients averaged in backward)."""
        if self.world_size == 1:
            return module
        return torch.nn.parallel.DistributedDataParallel(module, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def shard(self, indices: torch.Tensor) -> torch.Tensor:
        """This process's contiguous part of the global batch `indices` (all of it in a single process)."""
        if self.world_size == 1:
            return indices
        if len(indices) % self.world_size:
            raise ValueError(f"a batch of {len(indices)} does not split evenly over {self.world_size} processes; pick a batch size divisible by it")
        return indices.chunk(self.world_size)[self.rank]

    def resume(self, **stateful) -> int:
        """Register what the resumable state holds (the unwrapped modules, optimisers, anything with state_dict) and
        restore it after an interruption. Returns the step to continue from (0 for a new run)."""
        self.state = RunState(self.run_dir, **stateful)
        self.start_step = self.steps_done = self.state.restore()
        self.clock_start = time.monotonic()  # --max-minutes counts training, after data loading and cached banks
        return self.start_step

    def elapsed(self) -> float:
        return self.state.elapsed() if self.state else 0.0

    def train(self, total_steps: int, step: Callable[[int], Losses], *, validate: Callable[[int], dict[str, float]] | None = None,
              log_every: int = 25, eval_every: int = 200, save_every: int = 200, stop_before: Callable[[int], bool] | None = None,
              after_validation: Callable[[dict], None] | None = None) -> int:
        """Run `step(0-based step)` until `total_steps` or `--max-minutes`; log every `log_every` steps, at validations and
        at the end, validate every `eval_every` steps and at the end (process 0), save the resumable state every
        `save_every` steps and at the end. `run.total_steps` may be lowered while training (a schedule fitted to the
        time left); `stop_before(step)`, when true on any process, ends the run before that step (a schedule that
        follows a time budget of its own). `after_validation(metrics)` runs on every process with process 0's validation
        numbers (say, a learning-rate schedule on a validation score). Returns the number of steps done.

        A run cut by `--max-minutes` is not validated at the cut: that would make an interrupted run keep other
        weights than an uninterrupted one. A keep-the-best trainer scores its final weights after `train` returns
        (training/trivae.py)."""
        if self.state is None:
            raise RuntimeError("call run.resume(model=..., optimizer=...) before run.train(...)")
        log = CSVLog(self.run_dir / "log.csv", resume_step=self.start_step) if self.is_main else None
        budget = self.cfg.max_minutes * 60
        self.total_steps = total_steps
        bar = progress(self.start_step, total_steps, self.name) if self.is_main else None
        index = self.start_step
        while index < self.total_steps:
            if stop_before is not None and self.agree(stop_before(index)):
                self._save_state(index)
                break
            losses = step(index)
            index = done = self.steps_done = index + 1
            if bar is not None:
                bar.total = self.total_steps
                bar.update(1)
            validating = validate is not None and (done % eval_every == 0 or done == self.total_steps)
            row = self._mean_over_processes(losses) if done % log_every == 0 or done == self.total_steps or validating else {}
            if validating:
                metrics = {}
                if self.is_main:  # process 0 alone: its random stream must not run ahead of the others'
                    with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else [], enabled=self.world_size > 1):
                        metrics = validate(done)
                metrics = self._from_main(metrics)
                row.update(metrics)
                if after_validation is not None:  # every process: a schedule driven by validation stays the same on all
                    after_validation(metrics)
            if row and log is not None:
                log.write(step=done, **row)
            stop = self.agree(bool(budget) and time.monotonic() - self.clock_start > budget) and done < self.total_steps
            if done % save_every == 0 or done == self.total_steps or stop:
                self._save_state(done)
            if stop:
                if self.is_main:
                    print(f"stopped at step {done}/{self.total_steps}: --max-minutes {self.cfg.max_minutes} reached; rerun the same command to continue", file=sys.stderr)
                break
        if bar is not None:
            bar.close()
        return self.steps_done

    def agree(self, value, smallest: bool = False):
        """`value` (a flag or a number) made the same on every process: the largest over them (`smallest`: the
        smallest), so that decisions from clocks (stop now, the learning rate of a time-budgeted schedule) agree."""
        if self.world_size == 1:
            return value
        number = torch.tensor([-float(value) if smallest else float(value)], dtype=torch.float64, device=self.device)  # NCCL reduces CUDA tensors only
        dist.all_reduce(number, op=dist.ReduceOp.MAX)
        return type(value)(-number.item() if smallest else number.item())

    def finished(self, total_steps: int) -> bool:
        return self.steps_done >= total_steps

    def save_checkpoint(self, module: torch.nn.Module, name: str, *, data: dict, half: bool = False, extra_files: dict | None = None, **card) -> Path | None:
        """Write `module` through the registry with its card (process 0 only; the others return None). A dry run
        left at the default checkpoint root writes into its run folder, never over a trained checkpoint."""
        if not self.is_main:
            return None
        card = training_card(self.cfg, slug=name.split("-")[0], steps=self.steps_done, wall_time_s=self.elapsed(), data=data,
                             processes=self.world_size, **card)
        files = {"log.csv": self.run_dir / "log.csv", **(extra_files or {})}
        return registry.save(module.cpu(), name, root=output_root(self.cfg, self.run_dir), card=card, half=half,
                             extra_files={key: path for key, path in files.items() if Path(path).exists()})

    def close(self) -> None:
        """Leave the process group (torchrun waits for every process)."""
        if self.world_size > 1 and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()

    def _save_state(self, done: int) -> None:
        if self.is_main:
            self.state.save(done)
        if self.world_size > 1:
            dist.barrier()  # nobody runs ahead of a save it might need after a crash

    def _from_main(self, value):
        """Process 0's `value` on every process (picklable)."""
        if self.world_size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def _mean_over_processes(self, losses: Losses) -> dict:
        """The step's numbers as floats, averaged over the processes; text (say, a phase name) passes through."""
        values = {key: float(value.detach()) if torch.is_tensor(value) else value for key, value in losses.items()}
        numbers = [key for key, value in values.items() if isinstance(value, (int, float))]
        if self.world_size == 1 or not numbers:
            return values
        stacked = torch.tensor([float(values[key]) for key in numbers], dtype=torch.float64, device=self.device)
        dist.all_reduce(stacked)
        return {**values, **dict(zip(numbers, (stacked / self.world_size).tolist()))}

