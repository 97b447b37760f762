"""CycleGAN: unpaired image-to-image translation (apple ↔ orange, summer ↔ winter).

Zhu, Park, Isola, Efros, "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks",
ICCV 2017 (arXiv:1703.10593); architectures of the official `resnet_6blocks` generator and the 70×70 PatchGAN
(spec ../shared/specs/maf-cyclegan.md §2.2):

- generator c7s1-F, d2F, d4F, R4F × blocks, u2F, uF, c7s1-3 (F = `filters`; official F = 64), instance norm
  without affine, reflection padding, tanh output;
- discriminator C64-C128-C256-C512 PatchGAN (4×4 convs, LeakyReLU 0.2, instance norm except the first layer),
  one raw score per 70×70 patch (a 14×14 map at 128 px), used with the least-squares GAN loss.

Upsampling. The report blames the checkerboard artefacts it saw in the sky on ConvTranspose2d. A stride-2
transposed 3×3 convolution overlaps unevenly (some output pixels receive 4 kernel taps, some 1, some 2), which
prints a 2-pixel grid on flat regions. We upsample by nearest-neighbour resize followed by a 3×3 convolution
(Odena, Dumoulin, Olah, "Deconvolution and Checkerboard Artifacts", Distill 2016): every output pixel gets the
same number of taps and the parameter count is unchanged. The price is compute: these two convolutions run at the
higher resolution, ~20 % more FLOPs for the whole generator. `upsampling="transposed"` keeps the faithful layer.

Every module takes images in [0, 1] RGB and works in [-1, 1] inside (the official normalisation), so
generators return [0, 1] images. Generators are fully convolutional: any height and width divisible by 4.

Snapshots. The app's training-progress slider needs the generators from early and middle training. They are
stored as int8 weights with one fp16 scale per output channel (`quantize_state` / `dequantize_state`), half the
size of fp16, so that both datasets' early, middle and final generators fit the project's checkpoint budget.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from models.registry import CheckpointError, register


def _init_normal(module: nn.Module) -> None:
    """Official init: N(0, 0.02) conv weights, zero biases."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _resize_conv(in_channels: int, out_channels: int) -> nn.Module:
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.ReflectionPad2d(1),
        nn.Conv2d(in_channels, out_channels, 3),
    )


def _transposed_conv(in_channels: int, out_channels: int) -> nn.Module:
    return nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1)


UPSAMPLING = {"resize_conv": _resize_conv, "transposed": _transposed_conv}


@dataclass(frozen=True)
class CycleGANGeneratorConfig:
    filters: int = 32  # official 64; 32 keeps a 256 px translation under 250 ms on 2 CPU cores
    residual_blocks: int = 6  # official: 6 for 128 px training, 9 for 256 px
    upsampling: str = "resize_conv"  # or "transposed" (the report's ConvTranspose2d)
    image_size: int = 128  # training resolution (the module itself takes any size divisible by 4)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)  # no ReLU after the sum (official code)


@register("cyclegan-generator", CycleGANGeneratorConfig)
class CycleGANGenerator(nn.Module):
    """One direction, e.g. G_AB: apple photo (B, 3, H, W) in [0, 1] → orange-style photo in [0, 1]."""

    def __init__(self, config: CycleGANGeneratorConfig):
        super().__init__()
        if config.upsampling not in UPSAMPLING:
            raise ValueError(f"upsampling must be one of {sorted(UPSAMPLING)}, not {config.upsampling!r}")
        self.config = config
        f = config.filters
        upsample = UPSAMPLING[config.upsampling]
        self.net = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(3, f, 7), nn.InstanceNorm2d(f), nn.ReLU(inplace=True),
            nn.Conv2d(f, 2 * f, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * f), nn.ReLU(inplace=True),
            nn.Conv2d(2 * f, 4 * f, 3, stride=2, padding=1), nn.InstanceNorm2d(4 * f), nn.ReLU(inplace=True),
            *[ResidualBlock(4 * f) for _ in range(config.residual_blocks)],
            upsample(4 * f, 2 * f), nn.InstanceNorm2d(2 * f), nn.ReLU(inplace=True),
            upsample(2 * f, f), nn.InstanceNorm2d(f), nn.ReLU(inplace=True),
            nn.ReflectionPad2d(3), nn.Conv2d(f, 3, 7), nn.Tanh(),
        )
        self.apply(_init_normal)

    def example_input(self, batch_size: int) -> torch.Tensor:
        return torch.rand(batch_size, 3, 32, 32)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _, _, height, width = images.shape  # (B, 3, H, W) in [0, 1]
        if height % 4 or width % 4:
            raise ValueError(f"height and width must be divisible by 4, got {height}×{width}")
        return (self.net(images * 2 - 1) + 1) / 2  # (B, 3, H, W) in [0, 1]


@dataclass(frozen=True)
class CycleGANDiscriminatorConfig:
    filters: int = 64
    layers: int = 3  # 3 strided layers + 2 stride-1 layers = the 70×70 receptive field


@register("cyclegan-discriminator", CycleGANDiscriminatorConfig)
class CycleGANDiscriminator(nn.Module):
    """PatchGAN: (B, 3, H, W) in [0, 1] → (B, 1, H/8 − 2, W/8 − 2) raw scores, one per 70×70 patch."""

    def __init__(self, config: CycleGANDiscriminatorConfig):
        super().__init__()
        self.config = config
        f = config.filters
        layers: list[nn.Module] = [nn.Conv2d(3, f, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        channels = f
        for index in range(1, config.layers + 1):
            out_channels = f * min(2**index, 8)
            stride = 2 if index < config.layers else 1
            layers += [nn.Conv2d(channels, out_channels, 4, stride=stride, padding=1), nn.InstanceNorm2d(out_channels), nn.LeakyReLU(0.2, inplace=True)]
            channels = out_channels
        layers.append(nn.Conv2d(channels, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)
        self.apply(_init_normal)

    def example_input(self, batch_size: int) -> torch.Tensor:
        return torch.rand(batch_size, 3, 64, 64)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images * 2 - 1)  # (B, 1, h, w) patch scores (no sigmoid: LSGAN)


@dataclass(frozen=True)
class CycleGANConfig:
    generator: CycleGANGeneratorConfig = field(default_factory=CycleGANGeneratorConfig)
    dataset: str = "apple2orange"
    domain_a: str = "apple"
    domain_b: str = "orange"


@register("cyclegan-pair", CycleGANConfig)
class CycleGAN(nn.Module):
    """Both generators of one dataset: `g_ab` (A → B, e.g. apple → orange) and `g_ba` (B → A).

    The discriminators are training-only and live in the run state, not in the checkpoint.
    """

    def __init__(self, config: CycleGANConfig):
        super().__init__()
        self.config = config
        self.g_ab = CycleGANGenerator(config.generator)
        self.g_ba = CycleGANGenerator(config.generator)

    def example_input(self, batch_size: int) -> torch.Tensor:
        return torch.rand(batch_size, 3, 32, 32)

    def generators(self, direction: str) -> tuple[CycleGANGenerator, CycleGANGenerator]:
        """(forward, backward) generators for direction 'a2b' or 'b2a'."""
        if direction not in ("a2b", "b2a"):
            raise ValueError(f"direction must be 'a2b' or 'b2a', not {direction!r}")
        return (self.g_ab, self.g_ba) if direction == "a2b" else (self.g_ba, self.g_ab)

    def forward(self, images: torch.Tensor, direction: str = "a2b") -> torch.Tensor:
        return self.generators(direction)[0](images)  # (B, 3, H, W) in [0, 1]


def quantize_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights → int8 with one fp16 scale per output channel (`<key>.scale`); 1-d tensors → fp16."""
    packed = {}
    for key, tensor in state.items():
        tensor = tensor.detach().float().cpu()
        if tensor.dim() < 2:
            packed[key] = tensor.half().contiguous()
            continue
        scale = tensor.abs().flatten(1).amax(1).clamp_min(1e-12) / 127  # (out_channels,)
        shape = (-1,) + (1,) * (tensor.dim() - 1)
        packed[key] = (tensor / scale.view(shape)).round().clamp(-127, 127).to(torch.int8).contiguous()
        packed[key + ".scale"] = scale.half().contiguous()
    return packed


def dequantize_state(packed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state = {}
    for key, tensor in packed.items():
        if key.endswith(".scale"):
            continue
        if tensor.dtype == torch.int8:
            scale = packed[key + ".scale"].float()
            state[key] = tensor.float() * scale.view((-1,) + (1,) * (tensor.dim() - 1))
        else:
            state[key] = tensor.float()
    return state


def save_snapshot(model: CycleGAN, path: str | Path, **metadata) -> Path:
    """An int8 snapshot of both generators (for the progress slider); metadata e.g. step=, epoch=."""
    path = Path(path)
    meta = {"config": json.dumps({"filters": model.config.generator.filters}), **{key: str(value) for key, value in metadata.items()}}
    save_file(quantize_state(model.state_dict()), path, metadata=meta)
    return path


def load_snapshot(path: str | Path, config: CycleGANConfig) -> CycleGAN:
    """Rebuild a CycleGAN of `config` from an int8 snapshot file (strict: the keys must match exactly)."""
    model = CycleGAN(config)
    try:
        model.load_state_dict(dequantize_state(load_file(str(path))), strict=True)
    except (RuntimeError, KeyError, OSError) as error:
        raise CheckpointError(f"snapshot {path} does not fit {config}: {error}") from error
    return model.eval()
