"""The Flowers-102 2 × 2: CNN / ViT × pretrained / from scratch (spec attacks-captioning §1.5, §1.6, §1.8).

- CNN, pretrained: the ImageNet EfficientNet-Lite0 (offline weights, models.imagenet) with a new 102-way head trained
  on Flowers (the committed one: head solved by logistic regression, then the whole network fine-tuned with BatchNorm
  frozen), the attacks lab's `attacks-efficientnet-lite0` module with 102 classes; 64 px inputs are upsampled inside
  to `input_size` (192 px in the committed checkpoint), a scale its ImageNet features work at.
- CNN, from scratch: the attacks lab's CIFAR ResNet-20 (`attacks-resnet`), 102 classes, at the native 64 px. Not the
  EfficientNet with random weights: a depthwise-separable net trained from random weights on 1,000 images needs long
  schedules to be a fair baseline, and two EfficientNets (7 MB each in fp16) plus two ViTs would not fit the system's
  25 MB of checkpoints. The comparison "what does ImageNet pretraining give a CNN" is then against the best small
  CNN we can train from scratch on the same CPU time, not against a crippled copy of the pretrained one.
- ViT, from scratch, and ViT pretrained by us on CIFAR-10 then fine-tuned: `flowers-vit` below, a small ViT
  (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words") from timm with 8 × 8 px patches on 64 px images:
  8 × 8 = 64 tokens + CLS, the report's 14 × 14 grid of 16 px patches scaled to a 64 px image. No ImageNet ViT
  weights can be installed here, so "pretrained" means pretrained by us on CIFAR-10 (upsampled to 64 px), which keeps
  pretrained vs scratch within one architecture, as the report did with ViT-B/16.

Every model takes [0, 1] RGB (B, 3, 64, 64) and normalises inside (what torchattacks and pytorch-grad-cam expect).
`vit_attention_rollout` (Abnar & Zuidema 2020) and `vit_cam_reshape` (the token → grid reshape Grad-CAM needs) are
the ViT explanations.
"""

from __future__ import annotations

from dataclasses import dataclass

import timm
import torch
from torch import nn

from models.attacks import CifarEfficientNet, CifarResNet, EfficientNetConfig, Normalize, ResNetConfig
from models.registry import register

NUM_CLASSES = 102
IMAGE_SIZE = 64
FLOWERS_MEAN = (0.470, 0.400, 0.320)  # the official training split of the 64 px copy
FLOWERS_STD = (0.288, 0.243, 0.271)


@dataclass(frozen=True)
class FlowersViTConfig:
    image_size: int = IMAGE_SIZE
    patch_size: int = 8  # 64 / 8 = an 8 × 8 token grid
    embed_dim: int = 192  # ViT-Tiny's width
    depth: int = 6  # half of ViT-Tiny's 12 blocks: ~2.7 M parameters (5.5 MB in fp16)
    num_heads: int = 3
    mlp_ratio: float = 4.0
    drop_path: float = 0.1
    num_classes: int = NUM_CLASSES
    mean: tuple[float, float, float] = FLOWERS_MEAN
    std: tuple[float, float, float] = FLOWERS_STD


@register("flowers-vit", FlowersViTConfig)
class FlowersViT(nn.Module):
    """[0, 1] RGB (B, 3, S, S) → logits (B, num_classes); a timm VisionTransformer with a CLS token."""

    def __init__(self, config: FlowersViTConfig):
        super().__init__()
        self.config = config
        self.normalize = Normalize(config.mean, config.std)
        self.network = timm.models.vision_transformer.VisionTransformer(
            img_size=config.image_size, patch_size=config.patch_size, embed_dim=config.embed_dim, depth=config.depth,
            num_heads=config.num_heads, mlp_ratio=config.mlp_ratio, drop_path_rate=config.drop_path, num_classes=config.num_classes)

    def example_input(self, batch: int) -> torch.Tensor:
        return torch.rand(batch, 3, self.config.image_size, self.config.image_size)

    @property
    def grid(self) -> int:
        return self.config.image_size // self.config.patch_size

    def features(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.network.forward_features(self.normalize(images))  # (B, 1 + g², D)
        return self.network.forward_head(tokens, pre_logits=True)  # (B, D): the CLS token

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network.head(self.features(images))  # (B, num_classes)

    def cam_target_layer(self) -> nn.Module:
        """Grad-CAM explains the last block's input norm (its output still has one token per patch; the final norm's
        CLS-only gradient would leave the patch tokens without signal)."""
        return self.network.blocks[-1].norm1

    def cam_reshape(self, tokens: torch.Tensor) -> torch.Tensor:
        return vit_cam_reshape(tokens, self.grid)


def vit_cam_reshape(tokens: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, 1 + g², D) tokens → (B, D, g, g): drop CLS, lay the patch tokens out on their grid (pytorch-grad-cam's
    `reshape_transform`)."""
    patches = tokens[:, 1:, :]  # (B, g², D)
    return patches.reshape(tokens.shape[0], grid, grid, tokens.shape[2]).permute(0, 3, 1, 2)  # (B, D, g, g)


@torch.no_grad()
def vit_attention_maps(model: FlowersViT, images: torch.Tensor) -> list[torch.Tensor]:
    """Each block's attention probabilities (B, heads, 1 + g², 1 + g²), recomputed from its qkv projection (timm's
    fused attention does not return them). The forward pass itself is timm's own."""
    network = model.network
    x = network.norm_pre(network.patch_drop(network._pos_embed(network.patch_embed(model.normalize(images)))))  # (B, T, D)
    maps = []
    for block in network.blocks:
        attention = block.attn
        batch, tokens, dim = x.shape
        qkv = attention.qkv(block.norm1(x)).reshape(batch, tokens, 3, attention.num_heads, dim // attention.num_heads).permute(2, 0, 3, 1, 4)
        query, key = attention.q_norm(qkv[0]), attention.k_norm(qkv[1])  # (B, heads, T, d)
        maps.append((query * attention.scale @ key.transpose(-2, -1)).softmax(-1))  # (B, heads, T, T)
        x = block(x)
    return maps


def attention_rollout(maps: list[torch.Tensor], discard_ratio: float = 0.0) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020): heads averaged, the residual path added (0.5·A + 0.5·I), rows
    renormalised, multiplied through the layers; returns the CLS token's attention to each patch, (B, g²), max 1."""
    batch, _, tokens, _ = maps[0].shape
    eye = torch.eye(tokens, device=maps[0].device).expand(batch, tokens, tokens)
    rollout = eye
    for attention in maps:
        fused = attention.mean(1)  # (B, T, T)
        if discard_ratio > 0:  # drop the weakest links (not from CLS), as Gildenblat's vit-explain does
            flat = fused[:, 1:, 1:].reshape(batch, -1)
            threshold = flat.quantile(discard_ratio, dim=1, keepdim=True)
            fused = fused.clone()
            fused[:, 1:, 1:] = torch.where(flat < threshold, 0, flat).view(batch, tokens - 1, tokens - 1)
        fused = 0.5 * fused + 0.5 * eye
        fused = fused / fused.sum(-1, keepdim=True)
        rollout = fused @ rollout
    mask = rollout[:, 0, 1:]  # (B, g²)
    return mask / mask.amax(1, keepdim=True).clamp_min(1e-12)


def vit_attention_rollout(model: FlowersViT, images: torch.Tensor, discard_ratio: float = 0.0) -> torch.Tensor:
    """(B, g, g) rollout map of the CLS token over the patches, in [0, 1]."""
    mask = attention_rollout(vit_attention_maps(model, images), discard_ratio)
    return mask.view(-1, model.grid, model.grid)


def pretrained_cnn(input_size: int = 128, imagenet: bool = True) -> CifarEfficientNet:
    """The ImageNet EfficientNet-Lite0 with a fresh 102-way head (`imagenet=False`: the same network, random weights)."""
    config = EfficientNetConfig(num_classes=NUM_CLASSES, input_size=input_size)
    return CifarEfficientNet.from_imagenet(config) if imagenet else CifarEfficientNet(config)


def scratch_cnn(depth: int = 20, widths: tuple[int, int, int] = (16, 32, 64)) -> CifarResNet:
    """He et al.'s CIFAR ResNet (ResNet-20 by default) for 64 px Flowers, random weights."""
    return CifarResNet(ResNetConfig(depth=depth, widths=widths, num_classes=NUM_CLASSES, mean=FLOWERS_MEAN, std=FLOWERS_STD))


def is_vit(model: nn.Module) -> bool:
    return isinstance(model, FlowersViT)
