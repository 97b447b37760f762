"""PixelDA: unsupervised pixel-level domain adaptation with a GAN (MNIST → MNIST-M).

Bousmalis, Silberman, Dohan, Erhan, Krishnan, "Unsupervised Pixel-Level Domain Adaptation with Generative
Adversarial Networks", CVPR 2017 (arXiv:1612.05424). Architectures follow the official TensorFlow code
(`pixelda_model.py`, `pixelda_task_towers.py`; spec ../shared/specs/pixelda-endovae.md §A4.2):

- generator: 10-d U(-1, 1) noise → FC → one 32×32 channel, concatenated to the image; conv3×3-64 + ReLU,
  residual blocks [conv-BN-ReLU, conv-BN, + skip], conv1×1 → 3, tanh;
- discriminator: 64s1 → 128s2 → 256s2 → 512s2 convs, LeakyReLU 0.2, BN except the first, dropout and Gaussian
  activation noise after every layer, FC → one logit (used with BCE-with-logits);
- task classifier ("mnist" tower of the DANN paper): conv5×5-32, pool, conv5×5-48, pool, FC100, FC100, FC10
  logits. The report's baseline fed softmax outputs to CrossEntropyLoss (its loss floor of 1.46); ours outputs
  logits. Deviation: one classifier shared by source and transferred images, as in the report (the official code
  gives each stream a private first conv).

Every module takes images in [0, 1] RGB and maps them to [-1, 1] inside, as the official pipeline does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.registry import register


def _init_normal(module: nn.Module) -> None:
    """Official init: N(0, 0.02) weights for convs and linear layers, zero biases."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


@dataclass(frozen=True)
class PixelDAGeneratorConfig:
    image_size: int = 32
    noise_dims: int = 10
    filters: int = 64
    residual_blocks: int = 6


class ResidualBlock(nn.Module):
    def __init__(self, filters: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(filters, filters, 3, padding=1, bias=False),
            nn.BatchNorm2d(filters, momentum=0.1, eps=1e-3),
            nn.ReLU(inplace=True),
            nn.Conv2d(filters, filters, 3, padding=1, bias=False),
            nn.BatchNorm2d(filters, momentum=0.1, eps=1e-3),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)  # no activation after the sum (official resnet_stack)


@register("pixelda-generator", PixelDAGeneratorConfig)
class PixelDAGenerator(nn.Module):
    """G(x_s, z): an MNIST digit (tiled RGB, 32×32, [0, 1]) and noise z → an MNIST-M-style image in [0, 1]."""

    def __init__(self, config: PixelDAGeneratorConfig):
        super().__init__()
        self.config = config
        size = config.image_size
        self.project_noise = nn.Sequential(
            nn.Linear(config.noise_dims, size * size, bias=False),
            nn.BatchNorm1d(size * size, momentum=0.1, eps=1e-3),
            nn.ReLU(inplace=True),
        )
        self.stem = nn.Sequential(nn.Conv2d(4, config.filters, 3, padding=1), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*[ResidualBlock(config.filters) for _ in range(config.residual_blocks)])
        self.to_rgb = nn.Conv2d(config.filters, 3, 1)
        self.apply(_init_normal)

    def example_input(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.rand(batch_size, 3, self.config.image_size, self.config.image_size), self.sample_noise(batch_size)

    def sample_noise(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = self.to_rgb.weight.device
        noise = torch.rand(batch_size, self.config.noise_dims, generator=generator, device="cpu" if generator else device)
        return (noise * 2 - 1).to(device)  # (B, noise_dims) ~ U(-1, 1)

    def forward(self, images: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        batch, _, height, width = images.shape  # (B, 3, 32, 32) in [0, 1]
        if noise is None:
            noise = self.sample_noise(batch)
        noise_channel = self.project_noise(noise).view(batch, 1, height, width)  # (B, 1, 32, 32)
        x = torch.cat([images * 2 - 1, noise_channel], dim=1)  # (B, 4, 32, 32)
        x = self.blocks(self.stem(x))  # (B, filters, 32, 32)
        return (torch.tanh(self.to_rgb(x)) + 1) / 2  # (B, 3, 32, 32) in [0, 1]


@dataclass(frozen=True)
class PixelDADiscriminatorConfig:
    image_size: int = 32
    filters: int = 64
    dropout: float = 0.1  # official keep_prob 0.9
    noise_std: float = 0.2  # Gaussian noise added to every layer's activations while training
    projection_size: int = 4  # downsample until the feature map is this small


class NoisyDropout(nn.Module):
    def __init__(self, dropout: float, noise_std: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.noise_std = noise_std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(x)
        return x + self.noise_std * torch.randn_like(x) if self.training else x


@register("pixelda-discriminator", PixelDADiscriminatorConfig)
class PixelDADiscriminator(nn.Module):
    """D(x): one logit, high for real MNIST-M images."""

    def __init__(self, config: PixelDADiscriminatorConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = [
            nn.Conv2d(3, config.filters, 3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            NoisyDropout(config.dropout, config.noise_std),
        ]
        channels, size = config.filters, config.image_size
        while size > config.projection_size:
            layers += [
                nn.Conv2d(channels, channels * 2, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(channels * 2, momentum=0.1, eps=1e-3),
                nn.LeakyReLU(0.2, inplace=True),
                NoisyDropout(config.dropout, config.noise_std),
            ]
            channels, size = channels * 2, size // 2
        self.features = nn.Sequential(*layers)
        self.logit = nn.Linear(channels * size * size, 1)
        self.apply(_init_normal)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.features(images * 2 - 1)  # (B, 512, 4, 4)
        return self.logit(features.flatten(1)).squeeze(1)  # (B,)


@dataclass(frozen=True)
class PixelDAClassifierConfig:
    image_size: int = 32
    num_classes: int = 10
    conv_channels: tuple[int, int] = (32, 48)
    hidden: int = 100


@register("pixelda-classifier", PixelDAClassifierConfig)
class PixelDAClassifier(nn.Module):
    """T(x): digit logits for a 32×32 RGB image in [0, 1] (MNIST tiled to RGB, MNIST-M or G's output)."""

    def __init__(self, config: PixelDAClassifierConfig):
        super().__init__()
        self.config = config
        first, second = config.conv_channels
        self.features = nn.Sequential(
            nn.Conv2d(3, first, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(first, second, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        flat = second * (config.image_size // 4) ** 2
        self.head = nn.Sequential(
            nn.Linear(flat, config.hidden),
            nn.ReLU(inplace=True),
            nn.Linear(config.hidden, config.hidden),
            nn.ReLU(inplace=True),
            nn.Linear(config.hidden, config.num_classes),
        )
        self.apply(_init_normal)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.features(images * 2 - 1)  # (B, 48, 8, 8)
        return self.head(features.flatten(1))  # (B, num_classes) logits
