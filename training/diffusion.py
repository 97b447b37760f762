"""Train the CIFAR-10 diffusion models: the report's one-step denoiser and the class-conditional DDPM.

    python -m training.diffusion --preset cpu --max-minutes 60   # the DDPM sized for one CPU core (docs/diffusion.md); rerun to continue
    python -m training.diffusion --preset report                 # the report's denoiser: σ = 0.05, x0-MSE, Adam 1e-3, batch 64, 5 epochs
    python -m training.diffusion --preset gpu                    # a larger DDPM (64/128/128 channels, attention at 16 px) for a GPU
    python -m training.diffusion --dry-run                       # a few steps on generated data

DDPM (spec §6.3): t ~ U{0 … T−1}, ε ~ N(0, I), x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε, loss ‖ε − ε_θ(x_t, t, y)‖² (mean),
with y replaced by the null class with probability `label_dropout` (classifier-free guidance). Random horizontal
flips; Adam with a linear warm-up, gradient clipping, bf16 autocast on CPUs that run it natively. An EMA of the
weights (decay min(`ema_decay`, (1 + n)/(10 + n)) after n updates) is part of the resumable state and is what the
checkpoint `diffusion-ddpm` holds. Every per-sample random draw (flip, t, ε, dropped label) comes from a generator
seeded by (seed, step), so a run resumed after a kill continues exactly as one that never stopped.

The report's denoiser (§3.5, §6.2): x̃ = clip(x0 + 0.05ε, −1, 1), loss MSE(f(x̃, y), x0), Adam 1e-3, batch 64,
5 epochs (of the 15,000 training images here: 1,170 steps), no flips; writes `diffusion-report`.
Both validate on a fixed, class-balanced slice of the test split; `python -m evaluation.diffusion` measures them.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from models.diffusion import NULL_CLASS, ClassConditionalDDPM, DDPMConfig, ReportDenoiser, ReportDenoiserConfig, add_noise, to_signed
from nndl_data.diffusion import balanced_subset, generated, load_split
from training.common import BaseTrainConfig, batch_indices, initialise_from, parse_config
from training.loop import Run

SLUG = "diffusion"


@dataclass
class TrainConfig(BaseTrainConfig):
    model: str = "ddpm"  # ddpm | report
    name: str = ""  # checkpoint name; default diffusion-<model>
    # the DDPM's U-Net (models.diffusion.DDPMConfig)
    channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 2
    attention: tuple[bool, ...] = (False, False, False)
    norm_groups: int = 32
    dropout: float = 0.0
    schedule: str = "squaredcos_cap_v2"  # squaredcos_cap_v2 (cosine) | linear
    label_dropout: float = 0.1  # p of training a sample with the null class
    ema_decay: float = 0.999
    warmup_steps: int = 200
    grad_clip: float = 1.0
    flip: bool = True
    # the report's denoiser
    sigma: float = 0.05  # its fixed t = 5
    epochs: int = 0  # > 0: steps = epochs × (training images // batch size), the report's 5 epochs
    # both
    steps: int = 30000
    batch_size: int = 64
    learning_rate: float = 5e-4
    validation_images: int = 200  # a fixed, class-balanced slice of the test split
    log_every: int = 25
    eval_every: int = 250
    save_every: int = 100


PRESETS = {
    # The DDPM for one CPU core (docs/diffusion.md has the measurements behind it): 1.54 M parameters, no attention
    # (self-attention tripled a step here), batch 64, bf16, ~1.1 s a step. Runs for hours in pieces: rerun to continue.
    "cpu": TrainConfig(),
    # The report's denoiser exactly: σ = 0.05 (its t = 5), x0-MSE, Adam 1e-3, batch 64, 5 epochs, no flips, no clipping of gradients.
    "report": TrainConfig(model="report", learning_rate=1e-3, batch_size=64, epochs=5, flip=False, grad_clip=0.0, warmup_steps=0,
                          eval_every=200, save_every=200),
    # A GPU-sized DDPM (spec §6.3's demo-size variant): 64/128/128, attention at 16 px, dropout 0.1, batch 128, Ho et al.'s lr.
    "gpu": TrainConfig(channels=(64, 128, 128), attention=(False, True, False), dropout=0.1, batch_size=128, learning_rate=2e-4,
                       warmup_steps=2000, ema_decay=0.9999, steps=100_000, eval_every=2000, save_every=1000),
}


def checkpoint_name(cfg: TrainConfig) -> str:
    return cfg.name or f"{SLUG}-{cfg.model}"


def resolve(cfg: TrainConfig) -> TrainConfig:
    if cfg.model not in ("ddpm", "report"):
        raise SystemExit(f"--model must be ddpm or report, not {cfg.model!r}")
    if cfg.dry_run:
        cfg = dataclasses.replace(cfg, channels=(8, 16, 16), layers_per_block=1, norm_groups=4, steps=4, epochs=0, batch_size=8,
                                  validation_images=20, log_every=1, eval_every=2, save_every=2, warmup_steps=2)
    return cfg


def ddpm_config(cfg: TrainConfig) -> DDPMConfig:
    return DDPMConfig(channels=tuple(cfg.channels), layers_per_block=cfg.layers_per_block, attention=tuple(cfg.attention),
                      norm_groups=cfg.norm_groups, dropout=cfg.dropout, schedule=cfg.schedule)


def load_data(cfg: TrainConfig) -> dict:
    """uint8 training images and labels, and the fixed validation slice of the test split."""
    if cfg.dry_run:
        images, labels = generated(48, seed=cfg.seed)
        return {"train": (images, labels), "valid": generated(cfg.validation_images, seed=cfg.seed + 1)}
    train = load_split("train", cfg.data_root)
    test_images, test_labels = load_split("test", cfg.data_root)
    keep = balanced_subset(test_labels, cfg.validation_images // 10, seed=1)
    return {"train": train, "valid": (test_images[keep], test_labels[keep])}


def step_generator(cfg: TrainConfig, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(cfg.seed * 1_000_003 + step + 1)


class EMA(torch.nn.Module):
    """An exponential moving average of a module's parameters (buffers copied), with the usual warm-up of the decay."""

    def __init__(self, module: torch.nn.Module, decay: float):
        super().__init__()
        self.module = copy.deepcopy(module).eval().requires_grad_(False)
        self.decay = decay
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        self.updates += 1
        n = int(self.updates)
        decay = min(self.decay, (1 + n) / (10 + n))
        for average, current in zip(self.module.parameters(), module.parameters()):
            average.lerp_(current.detach(), 1 - decay)
        for average, current in zip(self.module.buffers(), module.buffers()):
            average.copy_(current)


@torch.no_grad()
def ddpm_validation_loss(model: ClassConditionalDDPM, images: torch.Tensor, labels: torch.Tensor, device, autocast) -> float:
    """ε-MSE on fixed images, steps spread evenly over 0 … T−1 and fixed noise: comparable across the run."""
    generator = torch.Generator().manual_seed(1234)
    x0 = to_signed(images).to(device)
    t = (torch.arange(len(x0)) * model.config.train_timesteps // len(x0)).to(device)
    noise = torch.randn(x0.shape, generator=generator).to(device)
    total = 0.0
    for start in range(0, len(x0), 100):
        part = slice(start, start + 100)
        with autocast():
            eps = model(model.q_sample(x0[part], t[part], noise[part]), t[part], labels[part].to(device)).float()
        total += F.mse_loss(eps, noise[part], reduction="sum").item()
    return total / noise.numel()


def train_ddpm(cfg: TrainConfig, run: Run, data: dict) -> Path:
    images, labels = data["train"]
    model = ClassConditionalDDPM(ddpm_config(cfg)).to(run.device).train()
    ema = EMA(model, cfg.ema_decay)
    trained = run.wrap(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    start = run.resume(model=model, ema=ema, optimizer=optimizer)
    parent = initialise_from(cfg, model, start, run.run_dir, run.device)  # --init-from diffusion-ddpm: continue from committed (EMA) weights
    if parent is not None and start == 0:
        ema.module.load_state_dict(model.state_dict())
    print(f"DDPM: {sum(p.numel() for p in model.parameters()):,} parameters, {len(images):,} training images", flush=True)

    def step(index: int) -> dict:
        generator = step_generator(cfg, index)
        batch = batch_indices(len(images), cfg.batch_size, index, cfg.seed)
        n = len(batch)
        flips = torch.rand(n, generator=generator) < 0.5
        t = torch.randint(0, model.config.train_timesteps, (n,), generator=generator)
        noise = torch.randn((n, 3, model.config.image_size, model.config.image_size), generator=generator)
        dropped = torch.rand(n, generator=generator) < cfg.label_dropout
        mine = run.shard(torch.arange(n))
        x0 = to_signed(images[batch[mine]])
        if cfg.flip:
            x0 = torch.where(flips[mine].view(-1, 1, 1, 1), x0.flip(-1), x0)
        y = torch.where(dropped[mine], torch.full_like(labels[batch[mine]], NULL_CLASS), labels[batch[mine]])
        x0, t_, noise_, y = x0.to(run.device), t[mine].to(run.device), noise[mine].to(run.device), y.to(run.device)
        for group in optimizer.param_groups:
            group["lr"] = cfg.learning_rate * min(1.0, (index + 1) / max(cfg.warmup_steps, 1))
        with run.autocast():
            eps = trained(model.q_sample(x0, t_, noise_), t_, y).float()
        loss = F.mse_loss(eps, noise_)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip) if cfg.grad_clip > 0 else torch.tensor(0.0)
        optimizer.step()
        ema.update(model)
        return {"loss": loss, "grad_norm": norm}

    valid_images, valid_labels = data["valid"]

    def validate(done: int) -> dict:
        return {"validation_eps_mse_ema": ddpm_validation_loss(ema.module, valid_images, valid_labels, run.device, run.autocast)}

    run.train(cfg.steps, step, validate=validate, log_every=cfg.log_every, eval_every=cfg.eval_every, save_every=cfg.save_every)
    run.close()
    data_card = {"dataset": "CIFAR-10 (../shared/data/cifar10: 1,500 training images per class)", "train_images": len(images),
                 "validation": f"{len(valid_images)} test images (class-balanced, seed 1)", "generated_dry_run_data": cfg.dry_run}
    return run.save_checkpoint(ema.module, checkpoint_name(cfg), data=data_card, half=True, finished=run.finished(cfg.steps),
                               weights="EMA", ema_updates=int(ema.updates), initialised_from=parent, parameters=sum(p.numel() for p in model.parameters()))


@torch.no_grad()
def report_validation(model: ReportDenoiser, images: torch.Tensor, labels: torch.Tensor, sigma: float) -> dict:
    x0 = to_signed(images)
    noisy = add_noise(x0, sigma / 0.01, generator=torch.Generator().manual_seed(1234))
    return {"validation_mse": F.mse_loss(model(noisy, labels), x0).item(), "identity_mse": F.mse_loss(noisy, x0).item()}


def train_report(cfg: TrainConfig, run: Run, data: dict) -> Path:
    images, labels = data["train"]
    steps = cfg.epochs * max(len(images) // cfg.batch_size, 1) if cfg.epochs else cfg.steps
    model = ReportDenoiser(ReportDenoiserConfig()).to(run.device).train()
    trained = run.wrap(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    run.resume(model=model, optimizer=optimizer)

    def step(index: int) -> dict:
        generator = step_generator(cfg, index)
        batch = batch_indices(len(images), cfg.batch_size, index, cfg.seed)
        noise = torch.randn((len(batch), 3, 32, 32), generator=generator)
        mine = run.shard(torch.arange(len(batch)))
        x0 = to_signed(images[batch[mine]])
        noisy = torch.clip(x0 + noise[mine] * cfg.sigma, -1, 1)  # add_noise(x0, t=5), the report's only level
        loss = F.mse_loss(trained(noisy.to(run.device), labels[batch[mine]].to(run.device)).float(), x0.to(run.device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss}

    valid_images, valid_labels = data["valid"]
    run.train(steps, step, validate=lambda done: report_validation(model, valid_images, valid_labels, cfg.sigma),
              log_every=cfg.log_every, eval_every=cfg.eval_every, save_every=cfg.save_every)
    run.close()
    data_card = {"dataset": "CIFAR-10 (../shared/data/cifar10: 1,500 training images per class)", "train_images": len(images),
                 "validation": f"{len(valid_images)} test images (class-balanced, seed 1)", "generated_dry_run_data": cfg.dry_run,
                 "noise": f"report add_noise at t = 5: sigma {cfg.sigma}, clipped"}
    return run.save_checkpoint(model, checkpoint_name(cfg), data=data_card, half=False, finished=run.finished(steps),
                               epochs_trained=run.steps_done / max(len(images) // cfg.batch_size, 1))


def main(cfg: TrainConfig) -> Path:
    cfg = resolve(cfg)
    run = Run(cfg, checkpoint_name(cfg))
    data = load_data(cfg)
    return train_ddpm(cfg, run, data) if cfg.model == "ddpm" else train_report(cfg, run, data)


if __name__ == "__main__":
    torch.set_num_threads(int(__import__("os").environ.get("OMP_NUM_THREADS", "1")))
    main(parse_config(TrainConfig, PRESETS))
