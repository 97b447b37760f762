"""CIFAR-10 "diffusion": the course report's one-step class-conditioned denoiser, and a real class-conditional DDPM.

Spec: ../shared/specs/vae-diffusion.md §3 (the report), §6.2 (its faithful baseline), §6.3 (the DDPM).

- `ReportDenoiser` (`diffusion-report`): the report's 8,323-parameter "UNet" exactly (conv3 13→64 + ReLU + max-pool,
  transposed conv 64→3 k2 s2 + tanh), with the crash of §3.7.1 fixed: the one-hot label planes are expanded to
  the image's height *and* width (`.expand(-1, -1, H, W)`) before the concatenation, and the constructor's
  `num_classes` is used (§3.7.6). It predicts the clean image x0 from `add_noise(x0, t)`, the report's forward
  "process": x0 + 0.01·t·ε clipped to [−1, 1] (the "Noise Level t/10" titles overstate σ ten times, §3.3).
- `ClassConditionalDDPM` (`diffusion-ddpm`): `diffusers.UNet2DModel` (ResBlocks with GroupNorm + SiLU, sinusoidal
  time embedding → MLP, skip connections) with `num_class_embeds = 11`: classes 0–9 and the null class 10 for
  classifier-free guidance, whose embedding is added to the time embedding. ε-prediction on a cosine
  (`squaredcos_cap_v2`) or linear β schedule with T = 1000 (`diffusers.DDPMScheduler` holds ᾱ_t).
- `ddim_frames`: our sampling loop: classifier-free guidance ε̂ = ε(x, ∅) + s·(ε(x, y) − ε(x, ∅)) (both in one
  batch), `diffusers.DDIMScheduler` for the update (η = 0 by default, x̂0 clipped to [−1, 1]), yielding x_t and the
  predicted x̂0 after every step so a tab can stream the reverse process. `start_step` begins part-way (SDEdit).

Tensors in these modules are on the report's [−1, 1] scale (`to_signed` / `to_unit` convert from/to [0, 1] RGB);
x_t of a diffusion is not an image, so the usual [0, 1]-in convention does not fit here.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from models.registry import register

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
NULL_CLASS = 10  # the unconditional token of classifier-free guidance


_IMPORT_LOCK = threading.Lock()


@functools.cache
def _diffusers():
    """(UNet2DModel, DDPMScheduler, DDIMScheduler), imported on first use (the app starts faster without them) and
    under a lock: `diffusers`' lazy top-level module fails ("cannot import name") when request threads import
    through it at the same time, so the classes come from their own modules, one thread at a time."""
    with _IMPORT_LOCK:
        from diffusers.models.unets.unet_2d import UNet2DModel
        from diffusers.schedulers.scheduling_ddim import DDIMScheduler
        from diffusers.schedulers.scheduling_ddpm import DDPMScheduler

        return UNet2DModel, DDPMScheduler, DDIMScheduler


def to_signed(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] (or uint8) images → [−1, 1], the report's `Normalize((0.5,), (0.5,))`."""
    images = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    return images * 2 - 1


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """[−1, 1] → [0, 1], clamped (the faithful display: `value_range=(-1, 1)`, not per-grid min/max, §3.7.9)."""
    return ((images.float() + 1) / 2).clamp(0, 1)


# ---------------------------------------------------------------------------------------------------------------
# The report's denoiser
# ---------------------------------------------------------------------------------------------------------------


def report_sigma(t: float, noise_strength: float = 0.1) -> float:
    """The report's noise std at its "step" t: noise_strength · t / 10 = 0.01·t (its titles say t/10)."""
    return noise_strength * t / 10


def add_noise(images: torch.Tensor, t: float, noise_strength: float = 0.1, generator: torch.Generator | None = None) -> torch.Tensor:
    """The report's `add_noise` (§3.3): x0 + 0.01·t·ε, clipped to [−1, 1]; `generator` for reproducible noise."""
    noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return torch.clip(images + noise * report_sigma(t, noise_strength), -1, 1)


@dataclass(frozen=True)
class ReportDenoiserConfig:
    num_classes: int = 10
    width: int = 64


@register("diffusion-report", ReportDenoiserConfig)
class ReportDenoiser(nn.Module):
    """The report's "UNet" (§3.4): (noisy x in [−1, 1], integer labels) → x̂0 in [−1, 1]. 8,323 parameters."""

    def __init__(self, config: ReportDenoiserConfig):
        super().__init__()
        self.config = config
        self.encoder = nn.Sequential(nn.Conv2d(3 + config.num_classes, config.width, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2))
        self.decoder = nn.Sequential(nn.ConvTranspose2d(config.width, 3, kernel_size=2, stride=2), nn.Tanh())

    def condition_planes(self, labels: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """One-hot labels as constant planes (B, classes, H, W): the report's `.repeat(1, 1, W)` crashed (§3.7.1)."""
        one_hot = F.one_hot(labels.long(), self.config.num_classes).float()
        return one_hot[:, :, None, None].expand(-1, -1, height, width)

    def forward(self, noisy: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        planes = self.condition_planes(labels, noisy.shape[-2], noisy.shape[-1]).to(noisy.dtype)
        return self.decoder(self.encoder(torch.cat((noisy, planes), dim=1)))

    def example_input(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.rand(batch_size, 3, 32, 32) * 2 - 1, torch.arange(batch_size) % self.config.num_classes


# ---------------------------------------------------------------------------------------------------------------
# The class-conditional DDPM
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DDPMConfig:
    image_size: int = 32
    channels: tuple[int, ...] = (32, 64, 64)  # one U-Net level per entry: 32 → 16 → 8 px
    layers_per_block: int = 2
    attention: tuple[bool, ...] = (False, False, False)  # self-attention at that level (costly on a CPU: docs/diffusion.md);
    # the middle block at the lowest resolution always has one (diffusers' default)
    attention_head_dim: int = 32
    norm_groups: int = 32
    dropout: float = 0.0
    num_classes: int = 10  # the embedding has num_classes + 1 rows: the last is the null class
    schedule: str = "squaredcos_cap_v2"  # squaredcos_cap_v2 (cosine, Nichol & Dhariwal) | linear (Ho et al., β 1e-4 → 0.02)
    train_timesteps: int = 1000


def scheduler_config(config: DDPMConfig) -> dict:
    return {"num_train_timesteps": config.train_timesteps, "beta_schedule": config.schedule, "beta_start": 1e-4, "beta_end": 0.02}


def alphas_cumprod(schedule: str = "squaredcos_cap_v2", train_timesteps: int = 1000) -> torch.Tensor:
    """ᾱ_t for t = 0 … T−1, from diffusers' DDPMScheduler (float64 → float32 there); a fresh copy each call."""
    return _alphas_cumprod(schedule, train_timesteps).clone()


@functools.lru_cache(maxsize=8)
def _alphas_cumprod(schedule: str, train_timesteps: int) -> torch.Tensor:
    DDPMScheduler = _diffusers()[1]
    return DDPMScheduler(num_train_timesteps=train_timesteps, beta_schedule=schedule, beta_start=1e-4, beta_end=0.02).alphas_cumprod.clone()


@register("diffusion-ddpm", DDPMConfig)
class ClassConditionalDDPM(nn.Module):
    """ε_θ(x_t, t, y): (x_t (B, 3, S, S), t (B,) integer steps, y (B,) in 0 … num_classes with num_classes = null)."""

    def __init__(self, config: DDPMConfig):
        super().__init__()
        UNet2DModel = _diffusers()[0]
        if not (len(config.channels) == len(config.attention)):
            raise ValueError("channels and attention need one entry per U-Net level")
        self.config = config
        down = tuple("AttnDownBlock2D" if attend else "DownBlock2D" for attend in config.attention)
        up = tuple("AttnUpBlock2D" if attend else "UpBlock2D" for attend in reversed(config.attention))
        self.unet = UNet2DModel(sample_size=config.image_size, in_channels=3, out_channels=3, block_out_channels=tuple(config.channels),
                                layers_per_block=config.layers_per_block, down_block_types=down, up_block_types=up,
                                attention_head_dim=min(config.attention_head_dim, min(config.channels)), norm_num_groups=config.norm_groups, dropout=config.dropout,
                                num_class_embeds=config.num_classes + 1)
        self.register_buffer("alphas_cumprod", alphas_cumprod(config.schedule, config.train_timesteps), persistent=False)

    @property
    def null_class(self) -> int:
        return self.config.num_classes

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, device=x_t.device).long().expand(x_t.shape[0]) if torch.as_tensor(t).dim() == 0 else t.to(x_t.device)
        return self.unet(x_t, t, class_labels=labels.to(x_t.device).long()).sample

    def example_input(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return torch.randn(batch_size, 3, self.config.image_size, self.config.image_size), torch.arange(batch_size) * 97 % self.config.train_timesteps, torch.arange(batch_size) % (self.config.num_classes + 1)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε (no clipping), the closed form of q(x_t | x0)."""
        abar = self.alphas_cumprod.to(x0.device)[t.long()].view(-1, 1, 1, 1)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x̂0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t."""
        abar = self.alphas_cumprod.to(x_t.device)[t.long()].view(-1, 1, 1, 1)
        return (x_t - (1 - abar).sqrt() * eps) / abar.sqrt()

    def guided_eps(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, guidance: float) -> torch.Tensor:
        """ε̂ = ε(x, ∅) + s·(ε(x, y) − ε(x, ∅)); s = 0 runs only the unconditional pass, s = 1 only the conditional."""
        if guidance == 0:
            return self(x_t, t, torch.full_like(labels, self.null_class))
        if guidance == 1:
            return self(x_t, t, labels)
        both = self(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([labels, torch.full_like(labels, self.null_class)]))
        conditional, unconditional = both.chunk(2)
        return unconditional + guidance * (conditional - unconditional)


def ddim_scheduler(config: DDPMConfig, steps: int):
    """A fresh DDIM scheduler (they are stateful: one per sampling call, never shared between requests)."""
    DDIMScheduler = _diffusers()[2]
    scheduler = DDIMScheduler(**scheduler_config(config), clip_sample=True, set_alpha_to_one=False, timestep_spacing="trailing")
    scheduler.set_timesteps(steps)
    return scheduler


@dataclass
class Frame:
    """One step of the reverse process: `index` of `total`, the step t it denoised, x_{t−1} and the predicted x̂0."""

    index: int
    total: int
    t: int
    x: torch.Tensor
    x0: torch.Tensor


@torch.no_grad()
def ddim_frames(model: ClassConditionalDDPM, labels: torch.Tensor, *, guidance: float = 3.0, steps: int = 50, eta: float = 0.0,
                generator: torch.Generator | None = None, start: torch.Tensor | None = None, start_t: int | None = None,
                precision: str = "fp32") -> Iterator[Frame]:
    """Classifier-free guided DDIM from pure noise (or from `start`, an x_{t*} at step `start_t`: SDEdit). Yields a
    `Frame` after every step; the last frame's `x` is the sample in [−1, 1]. `generator` draws the initial noise and
    (η > 0) the per-step noise, so η = 0 with a fixed seed is deterministic."""
    from models.runtime import autocast

    scheduler = ddim_scheduler(model.config, steps)
    timesteps = scheduler.timesteps
    device = next(model.parameters()).device
    labels = labels.to(device).long()
    size = model.config.image_size
    if start is None:
        x = torch.randn((len(labels), 3, size, size), generator=generator, device=device)
    else:
        x = start.to(device).float()
        timesteps = timesteps[timesteps <= start_t] if start_t is not None else timesteps
    total = len(timesteps)
    for index, t in enumerate(timesteps):
        batch_t = torch.full((len(labels),), int(t), device=device, dtype=torch.long)
        with autocast(precision, device):
            eps = model.guided_eps(x, batch_t, labels, guidance).float()
        out = scheduler.step(eps, int(t), x, eta=eta, generator=generator)
        x = out.prev_sample
        yield Frame(index + 1, total, int(t), x, out.pred_original_sample.clamp(-1, 1))


def ddim_sample(model: ClassConditionalDDPM, labels: torch.Tensor, **options) -> torch.Tensor:
    """The final samples of `ddim_frames`, in [−1, 1]."""
    frame = None
    for frame in ddim_frames(model, labels, **options):
        pass
    return frame.x.clamp(-1, 1)


def sdedit(model: ClassConditionalDDPM, images: torch.Tensor, target: torch.Tensor, t_star: int, *, guidance: float = 3.0, steps: int = 50,
           generator: torch.Generator | None = None, precision: str = "fp32") -> Iterator[Frame]:
    """SDEdit (Meng et al. 2022): noise real images ([−1, 1]) to step t* by q(x_t* | x0), then run guided DDIM from
    there with the `target` class. Only the DDIM steps at or below t* run."""
    scheduler = ddim_scheduler(model.config, steps)
    below = scheduler.timesteps[scheduler.timesteps <= t_star]
    start_t = int(below[0]) if len(below) else 0
    noise = torch.randn(images.shape, generator=generator, device=images.device)
    x_t = model.q_sample(images.float(), torch.full((len(images),), start_t, dtype=torch.long), noise)
    return ddim_frames(model, target, guidance=guidance, steps=steps, generator=generator, start=x_t, start_t=start_t, precision=precision)


def snr(abar: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio ᾱ / (1 − ᾱ) of q(x_t | x0)."""
    return abar / (1 - abar)


def report_equivalent_step(sigma: float, abar: torch.Tensor) -> int:
    """The DDPM step whose noise-to-signal matches the report's σ: x_t/√ᾱ = x0 + σε means σ² = (1 − ᾱ)/ᾱ (§3.3)."""
    target = sigma * sigma
    return int(torch.argmin(((1 - abar) / abar - target).abs()))


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB for [−1, 1] images (peak-to-peak 2)."""
    mse = (prediction.float() - target.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(4.0 / mse.clamp_min(1e-12))


def cosine_alphas_cumprod_closed_form(train_timesteps: int = 1000, s: float = 0.008) -> torch.Tensor:
    """Nichol & Dhariwal's ᾱ_t = f(t)/f(0), f(t) = cos²(((t/T) + s)/(1 + s)·π/2), as diffusers discretises it
    (β_t = 1 − ᾱ(t+1)/ᾱ(t) clipped at 0.999, steps t = 0 … T−1): for the forward-process test and the viewer."""
    f = lambda step: math.cos((step / train_timesteps + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    betas = torch.tensor([min(1 - f(i + 1) / f(i), 0.999) for i in range(train_timesteps)], dtype=torch.float64)
    return torch.cumprod(1 - betas, 0).float()
