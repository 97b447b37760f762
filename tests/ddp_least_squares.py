"""A deterministic system for the DDP test: least squares on fixed data, trained through training.loop.Run.

    torchrun --nproc_per_node=2 tests/ddp_least_squares.py RUN_DIR STEPS

The loss is a mean over the batch and the shards are equal, so two processes must follow one process exactly (up to
float rounding in the gradient all-reduce).
"""

import sys
from dataclasses import dataclass

import torch

from training.common import BaseTrainConfig, batch_indices
from training.loop import Run


@dataclass
class Config(BaseTrainConfig):
    steps: int = 6
    batch_size: int = 8


def main(run_dir: str, steps: int) -> None:
    cfg = Config(run_dir=run_dir, steps=steps, device="cpu")
    run = Run(cfg, "ddp-least-squares")
    inputs = torch.randn(64, 5, generator=torch.Generator().manual_seed(1))
    targets = inputs @ torch.arange(1.0, 6.0) + 0.1 * torch.randn(64, generator=torch.Generator().manual_seed(2))
    model = torch.nn.Linear(5, 1)
    trained = run.wrap(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    run.resume(model=model, optimizer=optimizer)

    def step(step: int) -> dict:
        index = run.shard(batch_indices(len(inputs), cfg.batch_size, step, cfg.seed))
        loss = (trained(inputs[index]).squeeze(1) - targets[index]).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": loss}

    run.train(cfg.steps, step, log_every=1, save_every=2)
    run.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
