"""Simple VAE and Tri-VAE for unsupervised brain-tumour segmentation from reconstruction residuals.

Wijanarko, Calista, Chen & Chen, "Tri-VAE: Triplet Variational Autoencoder for Unsupervised Anomaly Detection in
Brain Tumor MRI", CVPR 2024 Workshops (VAND). Architecture as the course report builds it
(../shared/specs/trivae-advgan.md §A2, §A5):

- ConvBlock = conv3×3 + GroupNorm(8) + SiLU; encoder levels of two ConvBlocks with channels w·(1, 2, 4, 8, 16, 32)
  (the report: w = 16, 256 px) and AvgPool2d(2) between levels;
- a flattened bottleneck → μ, log σ² (latent 128 for the VAE, 256 for the Tri-VAE) → FC back to the deepest map;
- the report's bottleneck skip (the deepest encoder map concatenated to the decoded z; `bottleneck_skip`);
- ConvTranspose(k2, s2) up-sampling, a 1×1 auxiliary output at 1/8 resolution (the report's 32×32 head at 256 px)
  and a linear 1×1 full-resolution output;
- Tri-VAE only: gated cross-skip (GCS) modules on the top three levels, out = α·tanh(e⊙d)⊙e + β·e with 1×1
  reductions to C/4 (the report's code, not its prose).

Fixes of the report's bugs (spec §A12): the decoder convs after a GCS take C + C/4 channels (the printed code cannot
run); z = μ at inference (the report sampled z in eval mode, so its Dice varied run to run); residuals clamp x̂ to
[0, 1]. The thresholds chosen on healthy validation residuals travel with the weights as buffers.

Inputs are one-channel slices in [0, 1], (B, 1, S, S); `prepare_slice` turns any 2-D array into one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage
from skimage.filters import threshold_otsu
from torch import nn

from models.registry import register


@dataclass(frozen=True)
class TriVAEConfig:
    image_size: int = 128
    base_channels: int = 8  # the report: 16 (channels 16…512); 8 keeps the 128 px model CPU-trainable and small
    latent_dim: int = 256
    gated_skips: bool = True  # the three GCS modules (Tri-VAE); False = the report's simple VAE
    bottleneck_skip: bool = True  # the report's concat of the deepest encoder map around the latent (spec §A12.1)
    groups: int = 8
    reduction_ratio: int = 4
    median_filter_size: int = 5  # post-processing whose threshold is stored in `threshold_filtered`
    brain_erosion: int = 6  # pixels removed from the edge of the head mask (LGG keeps skull and scalp: their edges)


class ConvBlock(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, groups: int = 8):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, 1, 1),
            nn.GroupNorm(min(groups, out_channels), out_channels),
            nn.SiLU(),
        )


class GatedCrossSkip(nn.Module):
    """The report's FeatureInteractionModule: α·tanh(e⊙d)⊙e + β·e on 1×1-reduced encoder/decoder features."""

    def __init__(self, encoder_channels: int, decoder_channels: int, reduction_ratio: int = 4):
        super().__init__()
        reduced = max(encoder_channels // reduction_ratio, 1)
        self.reduce_encoder = nn.Conv2d(encoder_channels, reduced, 1)
        self.reduce_decoder = nn.Conv2d(decoder_channels, reduced, 1)
        self.alpha = nn.Parameter(torch.ones(1))
        self.beta = nn.Parameter(torch.ones(1))
        self.out_channels = reduced

    def gate(self, encoder: torch.Tensor, decoder: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.reduce_encoder(encoder)  # (B, C/4, H, W)
        d = self.reduce_decoder(decoder)  # (B, C/4, H, W)
        return torch.tanh(e * d), e

    def forward(self, encoder: torch.Tensor, decoder: torch.Tensor) -> torch.Tensor:
        g, e = self.gate(encoder, decoder)
        return self.alpha * g * e + self.beta * e  # (B, C/4, H, W)


@register("trivae-tri-vae", TriVAEConfig)
class TriVAE(nn.Module):
    """x (B, 1, S, S) in [0, 1] → (x̂, auxiliary x̂ at S/8, μ, log σ²). `gated_skips` selects Tri-VAE vs simple VAE."""

    def __init__(self, config: TriVAEConfig):
        super().__init__()
        self.config = config
        w, g = config.base_channels, config.groups
        channels = [w * 2**level for level in range(6)]  # 16-32-64-128-256-512 in the report
        self.encoder = nn.ModuleList()
        previous = 1
        for c in channels:
            self.encoder.append(nn.Sequential(ConvBlock(previous, c, g), ConvBlock(c, c, g)))
            previous = c
        self.deep_size = config.image_size // 32  # five AvgPool2d(2): 256 → 8, 128 → 4
        flat = channels[5] * self.deep_size**2
        self.fc_mu = nn.Linear(flat, config.latent_dim)
        self.fc_logvar = nn.Linear(flat, config.latent_dim)
        self.fc_decode = nn.Linear(config.latent_dim, flat)
        top = channels[5] * (2 if config.bottleneck_skip else 1)
        self.up6 = nn.ConvTranspose2d(top, channels[4], 2, 2)
        self.dec5 = nn.Sequential(ConvBlock(channels[4], channels[4], g), ConvBlock(channels[4], channels[4], g))
        self.up5 = nn.ConvTranspose2d(channels[4], channels[3], 2, 2)
        self.dec4 = nn.Sequential(ConvBlock(channels[3], channels[3], g), ConvBlock(channels[3], channels[3], g))
        self.auxiliary_head = nn.Sequential(
            ConvBlock(channels[3], channels[3], g), ConvBlock(channels[3], channels[3], g), nn.Conv2d(channels[3], 1, 1)
        )
        self.up4 = nn.ConvTranspose2d(channels[3], channels[2], 2, 2)
        self.gates = nn.ModuleList()
        self.decoder = nn.ModuleList()  # levels 3, 2, 1 (64², 128², 256² in the report)
        self.upsamplers = nn.ModuleList()
        for level in (2, 1, 0):
            c = channels[level]
            extra = 0
            if config.gated_skips:
                gate = GatedCrossSkip(c, c, config.reduction_ratio)
                self.gates.append(gate)
                extra = gate.out_channels  # the fix: C + C/4 in-channels (80/40/20 in the report)
            self.decoder.append(nn.Sequential(ConvBlock(c + extra, c, g), ConvBlock(c, c, g)))
            self.upsamplers.append(nn.ConvTranspose2d(c, channels[level - 1], 2, 2) if level > 0 else nn.Conv2d(c, 1, 1))
        self.register_buffer("threshold", torch.tensor(0.1))  # raw residual threshold (the report's fixed 0.1 until calibrated)
        self.register_buffer("threshold_filtered", torch.tensor(0.1))  # after the median filter

    def example_input(self, batch_size: int) -> torch.Tensor:
        return torch.rand(batch_size, 1, self.config.image_size, self.config.image_size)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        h = x
        for level, block in enumerate(self.encoder):
            h = block(h if level == 0 else F.avg_pool2d(h, 2))
            skips.append(h)  # level 5: (B, 32w, S/32, S/32)
        return h, skips

    def forward(self, x: torch.Tensor, sample: bool | None = None):
        """`sample` draws z ~ q(z|x) (default: while training); otherwise z = μ (the report sampled at test time too)."""
        deep, skips = self.encode(x)  # (B, 32w, S/32, S/32)
        mu = self.fc_mu(deep.flatten(1))  # (B, latent)
        logvar = self.fc_logvar(deep.flatten(1))  # (B, latent)
        sample = self.training if sample is None else sample
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        h = self.fc_decode(z).view_as(deep)  # (B, 32w, S/32, S/32), no activation (as the report)
        if self.config.bottleneck_skip:
            h = torch.cat([h, deep], dim=1)  # (B, 64w, S/32, S/32)
        h = self.dec5(self.up6(h))  # (B, 16w, S/16, S/16)
        h = self.dec4(self.up5(h))  # (B, 8w, S/8, S/8)
        auxiliary = self.auxiliary_head(h)  # (B, 1, S/8, S/8)
        h = self.up4(h)  # (B, 4w, S/4, S/4)
        for index, (block, up) in enumerate(zip(self.decoder, self.upsamplers)):
            skip = skips[2 - index]
            if self.config.gated_skips:
                h = torch.cat([self.gates[index](skip, h), h], dim=1)  # (B, C + C/4, H, W)
            h = up(block(h))
        return h, auxiliary, mu, logvar  # h: (B, 1, S, S), linear

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic reconstruction (z = μ) clamped to the image range."""
        return self(x, sample=False)[0].clamp(0, 1)


@dataclass(frozen=True)
class SimpleVAEConfig(TriVAEConfig):
    latent_dim: int = 128
    gated_skips: bool = False


@register("trivae-simple-vae", SimpleVAEConfig)
class SimpleVAE(TriVAE):
    """The report's simple VAE (§A2): latent 128, no GCS skips; same loss code path as the Tri-VAE module."""


# ---- preprocessing and anomaly maps (shared by training, evaluation and the demo) ----


def head_mask(array: np.ndarray) -> np.ndarray:
    """bool mask of the head (or skull-stripped brain): Otsu foreground, largest component, holes filled."""
    a = np.asarray(array, dtype=np.float32)
    if a.size == 0 or float(a.max()) <= float(a.min()):
        return np.zeros(a.shape, bool)
    foreground = a > threshold_otsu(a)
    labels, count = ndimage.label(foreground)
    if count > 1:
        sizes = ndimage.sum(foreground, labels, range(1, count + 1))
        foreground = labels == (1 + int(np.argmax(sizes)))
    return ndimage.binary_fill_holes(foreground)


def normalise_intensity(array: np.ndarray, median_level: float = 0.35, mask: np.ndarray | None = None) -> np.ndarray:
    """Any 2-D slice → float32 in [0, 1]: shift to 0, scale the median of the head to `median_level`, clip.

    One rule for every dataset (LGG PNGs with skull, skull-stripped BraTS PNGs or NIfTI, IXI), instead of the
    report's per-slice min–max: the median head voxel is normal tissue in all of them, so tissue lands at the
    same grey level whether or not a bright skull or tumour is in the slice (spec §A12.12, the domain gap).
    """
    a = np.asarray(array, dtype=np.float32)
    if a.size == 0:
        return a
    a = np.nan_to_num(a - np.nanmin(a))
    mask = head_mask(a) if mask is None else mask
    if not mask.any():
        return np.zeros_like(a) if a.max() <= 0 else a / a.max()
    scale = float(np.median(a[mask])) / median_level
    return np.clip(a / max(scale, 1e-6), 0, 1)


def foreground_box(mask: np.ndarray, margin: float = 0.04) -> tuple[int, int, int, int]:
    """Square (top, left, size, size) around a bool mask, with a margin; may reach outside the image (zero padding)."""
    rows, cols = np.nonzero(mask)
    height, width = mask.shape
    if rows.size == 0:
        return 0, 0, height, width
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    size = int(max(bottom - top, right - left) * (1 + 2 * margin)) + 1
    center_row, center_col = (top + bottom) // 2, (left + right) // 2
    return center_row - size // 2, center_col - size // 2, size, size


def _crop(array: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    top, left, height, width = box
    out = np.zeros((height, width), dtype=array.dtype)
    src_top, src_left = max(top, 0), max(left, 0)
    src_bottom, src_right = min(top + height, array.shape[0]), min(left + width, array.shape[1])
    out[src_top - top : src_bottom - top, src_left - left : src_right - left] = array[src_top:src_bottom, src_left:src_right]
    return out


def prepare_slice(image, mask=None, size: int = 128, crop: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """A 2-D slice (any dtype/range) and optional tumour mask → (float32 (size, size) in [0, 1], bool mask or None).

    Intensity normalised (`normalise_intensity`), cropped to a square around the head/brain (so skull-stripped
    BraTS brains and LGG heads fill the frame alike), resized (image: bilinear with antialiasing; mask: nearest
    after binarising, which fixes the report's uint8 overflow of BraTS labels 2 and 4).
    """
    head = head_mask(image)
    image = normalise_intensity(image, mask=head)
    if mask is not None:
        mask = np.asarray(mask) > 0
    if crop:
        box = foreground_box(head)
        image = _crop(image, box)
        mask = _crop(mask, box) if mask is not None else None
    # Pillow's bilinear resize widens its kernel when shrinking, i.e. it antialiases like skimage's resize.
    resized = np.asarray(Image.fromarray(image.astype(np.float32), mode="F").resize((size, size), Image.BILINEAR))
    resized = np.clip(resized, 0, 1).astype(np.float32)
    if mask is not None:
        mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((size, size), Image.NEAREST)) > 127
    return resized, mask


def brain_mask(images: torch.Tensor, level: float = 0.08, erosion: int = 3) -> torch.Tensor:
    """(B, 1, H, W) in [0, 1] → bool foreground mask: above `level`, holes filled, largest component, eroded."""
    masks = []
    for image in images[:, 0].detach().cpu().numpy():
        foreground = ndimage.binary_fill_holes(ndimage.binary_opening(image > level, iterations=1))
        labels, count = ndimage.label(foreground)
        if count > 1:
            sizes = ndimage.sum(foreground, labels, range(1, count + 1))
            foreground = labels == (1 + int(np.argmax(sizes)))
        if erosion:
            foreground = ndimage.binary_erosion(foreground, iterations=erosion)
        masks.append(foreground)
    return torch.from_numpy(np.stack(masks)[:, None]).to(images.device)


def median_filter(maps: torch.Tensor, size: int) -> torch.Tensor:
    """k×k median of (B, 1, H, W) maps with reflect padding; size ≤ 1 returns the input."""
    if size <= 1:
        return maps
    pad = size // 2
    padded = F.pad(maps, (pad, pad, pad, pad), mode="reflect")
    patches = F.unfold(padded, size)  # (B, k², H·W)
    return patches.median(dim=1).values.view_as(maps)


@torch.no_grad()
def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    """2|A∩B| / (|A| + |B|) of two bool masks; 1.0 when both are empty (nothing to find, nothing found). The one
    definition (evaluation and the tab): torchmetrics' `dice_score` scores an empty pair NaN and wants class-indexed
    tensors."""
    prediction, truth = np.asarray(prediction, bool), np.asarray(truth, bool)
    total = prediction.sum() + truth.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(prediction, truth).sum() / total)


def anomaly_maps(model: TriVAE, images: torch.Tensor, filter_size: int | None = None) -> dict[str, torch.Tensor]:
    """Reconstruction, brain mask and residual maps (raw and median-filtered) for (B, 1, S, S) slices in [0, 1].

    Residuals are |x − clamp(x̂, 0, 1)| set to 0 outside the (eroded) foreground mask.
    """
    size = model.config.median_filter_size if filter_size is None else filter_size
    reconstruction = model.reconstruct(images)  # (B, 1, S, S)
    mask = brain_mask(images, erosion=model.config.brain_erosion)
    residual = (images - reconstruction).abs() * mask
    return {
        "reconstruction": reconstruction,
        "brain_mask": mask,
        "residual": residual,
        "residual_filtered": median_filter(residual, size) * mask,
    }
