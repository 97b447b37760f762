"""CIFAR classifiers to attack, and AdvGAN, for the adversarial attacks lab.

- `attacks-resnet`: the CIFAR ResNet of He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016,
  §4.2): a 3×3 stem, three stages of n basic blocks with 16/32/64 channels, global average pool, linear head;
  depth 6n + 2, so ResNet-20 is n = 3 (≈0.27 M parameters). Shortcuts are 1×1 conv + BN where the shape
  changes (option B). The AdvGAN report's target (92.12 % there).
- `attacks-resnet18`: the attacks report's CIFAR ResNet-18: torchvision's resnet18 with a 3×3 stride-1 stem and
  no max-pool (spec attacks-captioning §1.2, 11.2 M parameters at 100 classes).
- `attacks-advgan-generator` / `attacks-advgan-discriminator`: AdvGAN (Xiao et al., "Generating Adversarial
  Examples with Adversarial Networks", IJCAI 2018) in the layout of the widely used AdvGAN_pytorch code, since
  the report does not give its networks (spec trivae-advgan §B3). The generator's tanh output is scaled by ε, so
  its perturbation is bounded in L∞ by construction. `context_size` adds a global context pathway (FiLM on the
  residual blocks; `GlobalContext`), which the committed generator has. Two more ways to grow a trained generator,
  both starting as the identity: `target_features` conditions it on the target's own features of the image (as
  AdvGAN++ does), `refine_blocks` makes it deeper.

Every classifier takes [0, 1] RGB and normalises inside, which torchattacks and pytorch-grad-cam expect. The
report's own accuracies were wrecked by attacking normalised tensors, so the classifiers refuse inputs outside
[0, 1] with a message that says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import timm
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from models.imagenet import IMAGENET_MEAN, IMAGENET_STD, imagenet_classifier
from models.registry import register

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)  # the AdvGAN report's training-set statistics (spec §B1)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)  # spec attacks-captioning §1.1
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
RANGE_TOLERANCE = 1e-4  # float rounding of x + δ then clamp never leaves [0, 1] by more than this


class Normalize(nn.Module):
    """[0, 1] RGB → (x − mean) / std, refusing anything outside [0, 1] (e.g. already-normalised tensors)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))
        self.check_range = True  # the GPU trainer turns it off: the check synchronises with the device

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.check_range:
            low, high = torch.aminmax(images.detach())
            if low < -RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
                raise ValueError(
                    f"The classifier takes RGB images in [0, 1] and normalises them itself; got values in "
                    f"[{float(low):.3f}, {float(high):.3f}]. Pass images before Normalize() (e.g. ToTensor() output), "
                    "and attack in pixel space."
                )
        return (images - self.mean) / self.std


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


@dataclass(frozen=True)
class ResNetConfig:
    depth: int = 20  # 6n + 2: 20, 32, 44, 56, 110
    widths: tuple[int, int, int] = (16, 32, 64)
    num_classes: int = 10
    mean: tuple[float, float, float] = CIFAR10_MEAN
    std: tuple[float, float, float] = CIFAR10_STD


@register("attacks-resnet", ResNetConfig)
class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet (ResNet-20 by default): [0, 1] RGB (B, 3, 32, 32) → logits (B, num_classes)."""

    def __init__(self, config: ResNetConfig):
        super().__init__()
        if (config.depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2 (20, 32, 44, 56, 110), not {config.depth}")
        self.config = config
        blocks_per_stage = (config.depth - 2) // 6
        self.normalize = Normalize(config.mean, config.std)
        self.stem = nn.Sequential(nn.Conv2d(3, config.widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(config.widths[0]), nn.ReLU(inplace=True))
        stages, channels = [], config.widths[0]
        for index, width in enumerate(config.widths):
            blocks = []
            for block in range(blocks_per_stage):
                blocks.append(BasicBlock(channels, width, stride=2 if index > 0 and block == 0 else 1))
                channels = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(channels, config.num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def cam_target_layer(self) -> nn.Module:
        """The last residual block: the layer Grad-CAM explains (8×8 maps)."""
        return self.stages[-1][-1]

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The pooled features the head reads: (B, 64) for ResNet-20."""
        x = self.stem(self.normalize(images))  # (B, 16, 32, 32)
        x = self.stages(x)  # (B, 64, 8, 8)
        return x.mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))  # (B, num_classes)


@dataclass(frozen=True)
class ResNet18Config:
    num_classes: int = 100  # the report trains it on CIFAR-100
    mean: tuple[float, float, float] = CIFAR100_MEAN
    std: tuple[float, float, float] = CIFAR100_STD


@register("attacks-resnet18", ResNet18Config)
class CifarResNet18(nn.Module):
    """The report's ResNet-18 for 32×32 inputs: 3×3 stride-1 stem, no max-pool, stages at 32/16/8/4 px."""

    def __init__(self, config: ResNet18Config):
        super().__init__()
        self.config = config
        self.normalize = Normalize(config.mean, config.std)
        network = torchvision.models.resnet18(weights=None, num_classes=config.num_classes)
        network.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        network.maxpool = nn.Identity()
        self.network = network

    def cam_target_layer(self) -> nn.Module:
        return self.network.layer4[-1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(self.normalize(images))  # (B, num_classes)


@dataclass(frozen=True)
class EfficientNetConfig:
    num_classes: int = 10
    input_size: int = 128  # CIFAR's 32 px upsampled; ImageNet features want ImageNet scales (linear probe: 66 / 71 / 75 % at 96 / 128 / 160 px)


@register("attacks-efficientnet-lite0", EfficientNetConfig)
class CifarEfficientNet(nn.Module):
    """ImageNet EfficientNet-Lite0 fine-tuned on CIFAR: [0, 1] RGB (B, 3, 32, 32) → logits. The distillation teacher.

    The 15,000-image CIFAR-10 subset holds a ResNet-20 trained on labels alone at ~83 % test accuracy; fine-tuned
    from ImageNet this network reached 85.0 % in 4 epochs (15 min on the CPU) and 87.7 % after 8.6 more, and the
    ResNet-20 learns its soft labels (`training.attacks --distill-from`; docs/attacks.md has what that gained).
    """

    def __init__(self, config: EfficientNetConfig):
        super().__init__()
        self.config = config
        self.normalize = Normalize(IMAGENET_MEAN, IMAGENET_STD)  # the TF-Lite preprocessing its weights expect
        self.network = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=config.num_classes)

    @classmethod
    def from_imagenet(cls, config: EfficientNetConfig) -> "CifarEfficientNet":
        """ImageNet weights everywhere but the new classifier head (offline, from models.imagenet)."""
        model = cls(config)
        # timm initialises a fresh classifier with uniform(±1/√classes), ±0.32 at 10 classes: the large first logits
        # tore the pretrained features apart (held-out accuracy 77 % vs 87 % after 2 epochs). PyTorch's default
        # Linear init (±1/√1280) leaves them intact.
        model.network.reset_classifier(config.num_classes)
        backbone = {key: value for key, value in imagenet_classifier().network.state_dict().items() if not key.startswith("classifier.")}
        missing, unexpected = model.network.load_state_dict(backbone, strict=False)
        if unexpected or sorted(missing) != ["classifier.bias", "classifier.weight"]:
            raise RuntimeError(f"ImageNet backbone did not fit: missing {missing}, unexpected {unexpected}")
        return model

    def cam_target_layer(self) -> nn.Module:
        return self.network.conv_head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.normalize(images)  # range check first; normalising and bilinear resizing commute
        x = F.interpolate(x, size=self.config.input_size, mode="bilinear", align_corners=False)
        return self.network(x)  # (B, num_classes)


@dataclass(frozen=True)
class AdvGANGeneratorConfig:
    epsilon: float = 8 / 255  # L∞ bound of the perturbation, in [0, 1] pixel units
    residual_blocks: int = 4
    channels: tuple[int, int, int] = (8, 16, 32)
    full_resolution: bool = False  # True: padded stride-1 convolutions throughout (no 6×6 bottleneck)
    # > 0: a strided context encoder (32 → 4 px) whose pooled embedding of this size scales and shifts every residual
    # block (FiLM). The full-resolution layers see ~29 px each but cannot tell a truck from a ship; see GlobalContext.
    context_size: int = 0
    # > 0: the target's pooled features of the clean image (64 for ResNet-20) also scale and shift every residual
    # block, as AdvGAN++ (Jandial et al. 2019) feeds G the target's features: G is told what the target sees instead
    # of learning it. Each attack then needs one forward pass of the target (no gradient): `attack(x, target=...)`.
    target_features: int = 0
    # extra full-resolution residual blocks after the modulated ones, each gated by a scalar that starts at zero
    refine_blocks: int = 0


class GlobalContext(nn.Module):
    """Image → per-block FiLM (scale, shift) for the residual blocks.

    Why: the untargeted generator collapsed into one near-universal perturbation ("make it a truck"), which cannot
    attack the class it aims at; steering each image elsewhere needs to know roughly what the image is. The output
    layer starts at zero, so the modulation is the identity and a generator grown from a trained parent
    (`--init-from`) starts as exactly that parent."""

    def __init__(self, channels: int, blocks: int, size: int):
        super().__init__()
        self.blocks, self.channels = blocks, channels
        conv = lambda cin, cout: [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.InstanceNorm2d(cout, affine=True), nn.ReLU(inplace=True)]  # noqa: E731
        self.encoder = nn.Sequential(*conv(3, size // 4), *conv(size // 4, size // 2), *conv(size // 2, size),  # 32 → 16 → 8 → 4
                                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(size, size), nn.ReLU(inplace=True))
        self.film = nn.Linear(size, 2 * blocks * channels)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.film(self.encoder(x)).view(-1, self.blocks, 2, self.channels, 1, 1)  # (B, blocks, scale|shift, C, 1, 1)


class InstanceResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.InstanceNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor, film: torch.Tensor | None = None) -> torch.Tensor:
        body = self.body(x)
        if film is not None:  # (B, 2, C, 1, 1)
            body = body * (1 + film[:, 0]) + film[:, 1]
        return x + body


class GatedResidualBlock(InstanceResidualBlock):
    """x + g·body(x) with g = 0 at first (ReZero, Bachlechner et al. 2020), so a deeper generator grown from a
    trained parent starts as that parent."""

    def __init__(self, channels: int):
        super().__init__(channels)
        self.gate = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, film: torch.Tensor | None = None) -> torch.Tensor:
        return x + self.gate * self.body(x)


@register("attacks-advgan-generator", AdvGANGeneratorConfig)
class AdvGANGenerator(nn.Module):
    """G(x): [0, 1] image (B, 3, 32, 32) → perturbation δ with |δ| < ε; `attack(x)` = clamp(x + δ, 0, 1)."""

    # Keys a parent checkpoint without these pathways lacks (training.common.initialise_from): they start as the
    # identity, so the grown generator starts as its parent.
    grown_prefixes = ("context.", "target_film.", "refine.")

    def __init__(self, config: AdvGANGeneratorConfig):
        super().__init__()
        self.config = config
        c1, c2, c3 = config.channels
        if config.full_resolution:  # every layer at 32×32: per-pixel, image-specific perturbations
            conv = lambda cin, cout: [nn.Conv2d(cin, cout, 3, padding=1), nn.InstanceNorm2d(cout), nn.ReLU(inplace=True)]  # noqa: E731
            self.encoder = nn.Sequential(*conv(3, c1), *conv(c1, c2), *conv(c2, c3))
            self.decoder = nn.Sequential(*conv(c3, c2), *conv(c2, c1), nn.Conv2d(c1, 3, 3, padding=1))
        else:  # the AdvGAN_pytorch layout
            self.encoder = nn.Sequential(
                nn.Conv2d(3, c1, 3, stride=1, bias=True), nn.InstanceNorm2d(c1), nn.ReLU(inplace=True),  # 32 → 30
                nn.Conv2d(c1, c2, 3, stride=2, bias=True), nn.InstanceNorm2d(c2), nn.ReLU(inplace=True),  # 30 → 14
                nn.Conv2d(c2, c3, 3, stride=2, bias=True), nn.InstanceNorm2d(c3), nn.ReLU(inplace=True),  # 14 → 6
            )
            self.decoder = nn.Sequential(
                nn.ConvTranspose2d(c3, c2, 3, stride=2, bias=False), nn.InstanceNorm2d(c2), nn.ReLU(inplace=True),  # 6 → 13
                nn.ConvTranspose2d(c2, c1, 3, stride=2, bias=False), nn.InstanceNorm2d(c1), nn.ReLU(inplace=True),  # 13 → 27
                nn.ConvTranspose2d(c1, 3, 6, stride=1, bias=False),  # 27 → 32
            )
        self.bottleneck = nn.ModuleList(InstanceResidualBlock(c3) for _ in range(config.residual_blocks))
        self.context = GlobalContext(c3, config.residual_blocks, config.context_size) if config.context_size else None
        self.target_film = nn.Linear(config.target_features, 2 * config.residual_blocks * c3) if config.target_features else None
        if self.target_film is not None:
            nn.init.zeros_(self.target_film.weight)
            nn.init.zeros_(self.target_film.bias)
        self.refine = nn.ModuleList(GatedResidualBlock(c3) for _ in range(config.refine_blocks))

    def forward(self, images: torch.Tensor, target_features: torch.Tensor | None = None) -> torch.Tensor:
        scaled = images * 2 - 1
        x = self.encoder(scaled)  # (B, c3, 6, 6), or (B, c3, 32, 32) at full resolution
        film = self.context(scaled) if self.context is not None else None  # (B, blocks, 2, c3, 1, 1)
        if self.target_film is not None:
            if target_features is None:
                raise ValueError("This generator is conditioned on the target's features: call attack(images, target=model).")
            told = self.target_film(target_features).view(-1, self.config.residual_blocks, 2, x.shape[1], 1, 1)
            film = told if film is None else film + told
        for index, block in enumerate(self.bottleneck):
            x = block(x, None if film is None else film[:, index])
        for block in self.refine:
            x = block(x)
        x = self.decoder(x)  # (B, 3, 32, 32)
        return self.config.epsilon * torch.tanh(x)  # (B, 3, 32, 32) perturbation in (−ε, ε)

    def attack(self, images: torch.Tensor, epsilon: float | None = None, target: nn.Module | None = None) -> torch.Tensor:
        """Adversarial images; `epsilon` rescales the trained budget (the demo's slider). `target`: the model G was
        trained against, needed only by a generator conditioned on its features (`target_features`)."""
        features = None
        if self.target_film is not None:
            if not hasattr(target, "features"):
                raise ValueError("This AdvGAN generator is conditioned on its target's features: pass the target ResNet (attack(images, target=model)).")
            with torch.no_grad():
                features = target.features(images)
        perturbation = self(images, features)
        if epsilon is not None:
            perturbation = perturbation * (epsilon / self.config.epsilon)
        return (images + perturbation).clamp(0, 1)


@dataclass(frozen=True)
class AdvGANDiscriminatorConfig:
    channels: tuple[int, int, int] = (8, 16, 32)


@register("attacks-advgan-discriminator", AdvGANDiscriminatorConfig)
class AdvGANDiscriminator(nn.Module):
    """D(x): [0, 1] image → patch logits (B, 1, 2, 2) (LSGAN: 1 = real, 0 = adversarial)."""

    def __init__(self, config: AdvGANDiscriminatorConfig):
        super().__init__()
        self.config = config
        c1, c2, c3 = config.channels
        self.network = nn.Sequential(
            nn.Conv2d(3, c1, 4, stride=2), nn.LeakyReLU(0.2, inplace=True),  # 32 → 15
            nn.Conv2d(c1, c2, 4, stride=2), nn.InstanceNorm2d(c2), nn.LeakyReLU(0.2, inplace=True),  # 15 → 6
            nn.Conv2d(c2, c3, 4, stride=2), nn.InstanceNorm2d(c3), nn.LeakyReLU(0.2, inplace=True),  # 6 → 2
            nn.Conv2d(c3, 1, 1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images * 2 - 1)  # (B, 1, 2, 2)


def set_range_check(model: nn.Module, enabled: bool) -> nn.Module:
    for module in model.modules():
        if isinstance(module, Normalize):
            module.check_range = enabled
    return model
