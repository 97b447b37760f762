"""EndoVAE: a convolutional VAE for endoscopy frames, as in the paper and the course report, plus its variants.

Diamantis, Gatoula & Iakovidis, "EndoVAE: Generating Endoscopic Images with a Variational Autoencoder", IEEE IVMSP
Workshop 2022; the course report of ../shared/specs/pixelda-endovae.md part B (§B3 layer table, §B4 loss):

- encoder: six 3×3 convolutions + ReLU with w·(1, 2, 2, 4, 8, 16) channels (w = 16: 16-32-32-64-128-256) and stride 2
  at the 3rd, 4th and 6th, so 96 px → a 12×12×256 map; flatten (36,864) → FC 256 + ReLU → μ, log σ² ∈ R⁶;
- decoder: FC 6 → 36,864 + ReLU, reshape to 12×12×256, then the figure's seven layers, transposed (stride 2) and
  ordinary convolutions with 256, 128, 64, 64, 32, 32, 3 filters, the last with a sigmoid (§B3 "figure" reading);
- `latent_channels > 0` replaces the flat bottleneck by a convolutional one, μ, log σ² ∈ R^(c × S/8 × S/8) from 1×1
  convolutions (no 9.4 M-parameter FC): the better variant's "latent large enough to keep detail", and, being
  fully convolutional, the normal-mucosa model that is trained on patches and applied to whole frames.

Fixes of the report (spec §B10): reconstruction uses z = μ (the report sampled z, so its PSNR/SSIM were noisy);
the decoder returns logits, so BCE (the paper's loss) is computed stably; preprocessing is part of the model
(`prepare_image`: the report's direct resize, or a centre crop that does not distort). Images are RGB in [0, 1].
Thresholds chosen on validation images (the anomaly model) travel with the weights as buffers, and so does the
table of the typical error at each position of a frame (`position_error`) when the map is position-normalised; the
map's other settings (colour channels, σ, field-of-view erosion) are in the config.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from models.registry import register


@dataclass(frozen=True)
class EndoVAEConfig:
    image_size: int = 96  # the paper's 96 px (the normal-mucosa model: its training patch size)
    width: int = 16  # channels of the first convolution; the paper: 16 (… 256 at 12×12)
    latent_dim: int = 6  # flat latent (the paper: 6); used when latent_channels == 0
    hidden_dim: int = 256  # FC 36,864 → 256 before the μ / log σ² heads (flat latent only)
    latent_channels: int = 0  # > 0: a convolutional latent of c × (S/8)² instead of the flat one
    preprocess: str = "resize"  # resize: the report's direct resize of the whole frame; crop: centre square crop, then resize
    crop_fraction: float = 1.0  # crop: side of the centre square as a fraction of the frame's shorter side
    frame_size: int = 0  # anomaly model: whole frames are analysed at this size (0: image_size)
    anomaly_sigma: float = 2.0  # Gaussian smoothing (px) of the squared-error map
    patch_stride: int = 16  # patch scores: mean error over image_size² patches at this stride
    field_of_view_erosion: int = 0  # > 0: error maps are zero outside the frame's lit field of view, eroded by this many px
    anomaly_channels: str = "rgb"  # colour channels whose squared error makes the anomaly map: rgb (summed) or b (blue only)
    position_normalised: bool = False  # divide each pixel's error by the typical error at its position (buffer position_error)


class Encoder(nn.Sequential):
    """(B, 3, S, S) → (B, 16w, S/8, S/8): the paper's six convolutions, stride 2 at the 3rd, 4th and 6th."""

    def __init__(self, width: int):
        channels = [width, 2 * width, 2 * width, 4 * width, 8 * width, 16 * width]
        strides = [1, 1, 2, 2, 1, 2]
        layers, previous = [], 3
        for out, stride in zip(channels, strides):
            layers += [nn.Conv2d(previous, out, 3, stride, 1), nn.ReLU(inplace=True)]
            previous = out
        super().__init__(*layers)


class Decoder(nn.Sequential):
    """(B, 16w, S/8, S/8) → logits (B, 3, S, S): ConvT(16w, s2), Conv(8w), ConvT(4w, s2), Conv(4w), ConvT(2w, s2),
    Conv(2w), Conv(3); ReLU between, no activation at the end (the sigmoid is applied by `decode`)."""

    def __init__(self, width: int):
        w = width
        up = lambda a, b: nn.ConvTranspose2d(a, b, 3, 2, 1, output_padding=1)  # noqa: E731  doubles the size exactly
        conv = lambda a, b: nn.Conv2d(a, b, 3, 1, 1)  # noqa: E731
        super().__init__(
            up(16 * w, 16 * w), nn.ReLU(inplace=True), conv(16 * w, 8 * w), nn.ReLU(inplace=True),
            up(8 * w, 4 * w), nn.ReLU(inplace=True), conv(4 * w, 4 * w), nn.ReLU(inplace=True),
            up(4 * w, 2 * w), nn.ReLU(inplace=True), conv(2 * w, 2 * w), nn.ReLU(inplace=True),
            conv(2 * w, 3),
        )


@register("endovae", EndoVAEConfig)
class EndoVAE(nn.Module):
    """x (B, 3, S, S) in [0, 1] → (logits of x̂, μ, log σ²). `reconstruct` gives the deterministic x̂ (z = μ)."""

    def __init__(self, config: EndoVAEConfig):
        super().__init__()
        if config.image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8 (three stride-2 stages), not {config.image_size}")
        self.config = config
        w = config.width
        self.deep_size = config.image_size // 8  # 12 at 96 px
        deep_channels = 16 * w
        self.encoder = Encoder(w)
        if config.latent_channels:
            self.to_moments = nn.Conv2d(deep_channels, 2 * config.latent_channels, 1)  # μ and log σ² per position
            self.from_latent = nn.Sequential(nn.Conv2d(config.latent_channels, deep_channels, 1), nn.ReLU(inplace=True))
        else:
            flat = deep_channels * self.deep_size**2  # 36,864 in the paper
            self.to_hidden = nn.Sequential(nn.Flatten(), nn.Linear(flat, config.hidden_dim), nn.ReLU(inplace=True))
            self.fc_mu = nn.Linear(config.hidden_dim, config.latent_dim)
            self.fc_logvar = nn.Linear(config.hidden_dim, config.latent_dim)
            self.from_latent = nn.Sequential(nn.Linear(config.latent_dim, flat), nn.ReLU(inplace=True))
        self.decoder = Decoder(w)
        # Anomaly thresholds chosen on validation images (the normal-mucosa model; see training.endovae.calibrate).
        self.register_buffer("pixel_threshold", torch.tensor(float("nan")))  # on the smoothed error map
        self.register_buffer("patch_threshold", torch.tensor(float("nan")))  # on a patch's mean error
        if config.position_normalised:  # the typical error of polyp-free training pixels at each position of a frame
            side = config.frame_size or config.image_size
            self.register_buffer("position_error", torch.ones(1, 1, side, side))

    @property
    def spatial(self) -> bool:
        return self.config.latent_channels > 0

    def latent_shape(self, size: int | None = None) -> tuple[int, ...]:
        """Shape of one z: (latent_dim,) or (c, S/8, S/8) for an input of `size` px (default: the training size)."""
        if not self.spatial:
            return (self.config.latent_dim,)
        side = (size or self.config.image_size) // 8
        return (self.config.latent_channels, side, side)

    def example_input(self, batch_size: int) -> torch.Tensor:
        return torch.rand(batch_size, 3, self.config.image_size, self.config.image_size)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)  # (B, 16w, S/8, S/8)
        if self.spatial:
            mu, logvar = self.to_moments(h).chunk(2, dim=1)  # (B, c, S/8, S/8) each
            return mu, logvar
        h = self.to_hidden(h)  # (B, hidden)
        return self.fc_mu(h), self.fc_logvar(h)  # (B, latent) each

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        h = self.from_latent(z)
        if not self.spatial:
            h = h.view(-1, 16 * self.config.width, self.deep_size, self.deep_size)  # (B, 16w, S/8, S/8)
        return self.decoder(h)  # (B, 3, S, S)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decode_logits(z))  # (B, 3, S, S) in [0, 1]

    def forward(self, x: torch.Tensor, sample: bool | None = None):
        """`sample` draws z ~ q(z|x) (default: while training); otherwise z = μ."""
        mu, logvar = self.encode(x)
        sample = self.training if sample is None else sample
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
        return self.decode_logits(z), mu, logvar

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic reconstruction (z = μ), (B, 3, S, S) in [0, 1]; S any multiple of 8 for a spatial latent."""
        return torch.sigmoid(self(x, sample=False)[0])


# ---- preprocessing (training, evaluation and the demo share it) ----


def centre_square(image: Image.Image, fraction: float = 1.0) -> Image.Image:
    """The centre square of side `fraction` × the shorter side (no distortion)."""
    width, height = image.size
    side = max(1, int(round(min(width, height) * fraction)))
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side))


def prepare_image(image: Image.Image, config: EndoVAEConfig, size: int | None = None) -> np.ndarray:
    """Any RGB frame → float32 (S, S, 3) in [0, 1], as the model was trained: the report's direct resize of the
    whole frame (distorts a non-square frame), or a centre square crop then resize. Pillow's bicubic resize
    antialiases when it shrinks; a crop that already has the target size is not resampled."""
    size = size or config.image_size
    image = image.convert("RGB")
    if config.preprocess == "crop":
        image = centre_square(image, config.crop_fraction)
    elif config.preprocess != "resize":
        raise ValueError(f"preprocess must be 'resize' or 'crop', not {config.preprocess!r}")
    if image.size != (size, size):
        image = image.resize((size, size), Image.BICUBIC)
    return np.asarray(image, dtype=np.float32) / 255.0


def prepare_mask(mask: Image.Image, config: EndoVAEConfig, size: int | None = None) -> np.ndarray:
    """The polyp mask through the same geometry as its image (nearest neighbour), as bool (S, S)."""
    size = size or config.image_size
    mask = mask.convert("L")
    if config.preprocess == "crop":
        mask = centre_square(mask, config.crop_fraction)
    if mask.size != (size, size):
        mask = mask.resize((size, size), Image.NEAREST)
    return np.asarray(mask) > 127


def to_batch(images: np.ndarray) -> torch.Tensor:
    """(S, S, 3) or (N, S, S, 3) floats or uint8 → (N, 3, S, S) float32 in [0, 1]."""
    array = np.asarray(images)
    if array.ndim == 3:
        array = array[None]
    tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2)
    return tensor.float().div(255) if tensor.dtype == torch.uint8 else tensor.float()


# ---- metrics and anomaly maps ----


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB with data range 1: 10·log10(1 / MSE) over all pixels and channels. (B, 3, H, W) → (B,)"""
    mse = (x.float() - y.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


POLYP_PATCH_SHARE = 0.5  # a patch counts as "polyp" when at least this share of it is polyp, "polyp-free" when none
SSIM_SETTINGS = {"gaussian_kernel": True, "sigma": 1.5, "kernel_size": 11, "k1": 0.01, "k2": 0.03, "data_range": 1.0}
SSIM_NOTE = ("SSIM: torchmetrics' structural_similarity_index_measure, Gaussian window 11×11 with σ = 1.5, K1 = 0.01, "
             "K2 = 0.03, data range 1, on the RGB channels (averaged), valid region (no padding)")


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM (Wang et al. 2004) with the settings of SSIM_NOTE. (B, 3, H, W) → (B,)"""
    from torchmetrics.functional.image import structural_similarity_index_measure

    return structural_similarity_index_measure(x.float(), y.float(), reduction="none", **SSIM_SETTINGS)


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, 1, H, W) maps with reflect padding; sigma ≤ 0 returns the input."""
    if sigma <= 0:
        return maps
    radius = max(1, int(round(3 * sigma)))
    coordinates = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    kernel = torch.exp(-(coordinates**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    padded = F.pad(maps, (radius, radius, radius, radius), mode="reflect")
    blurred = F.conv2d(padded, kernel.view(1, 1, 1, -1))
    return F.conv2d(blurred, kernel.view(1, 1, -1, 1))


ANOMALY_CHANNELS = {"rgb": [0, 1, 2], "b": [2]}
POSITION_FLOOR = 1e-4  # the smallest typical error a pixel's error is divided by


def pixel_error(model: EndoVAE, images: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """The unsmoothed anomaly score of every pixel, (B, 1, H, W): the squared error summed over the config's colour
    channels (all three, or the blue one), divided by the typical error at that position of the frame (the
    `position_error` buffer: mean error of polyp-free training pixels there) when the config asks for it, so that the
    map marks what is unusual for that place rather than the frame's always-hard places (its rim, its vignetting)."""
    try:
        channels = ANOMALY_CHANNELS[model.config.anomaly_channels]
    except KeyError:
        raise ValueError(f"anomaly_channels must be one of {sorted(ANOMALY_CHANNELS)}, not {model.config.anomaly_channels!r}") from None
    error = (images - reconstruction)[:, channels].pow(2).sum(1, keepdim=True)
    if model.config.position_normalised:
        typical = model.position_error.float()
        if typical.shape[-2:] != error.shape[-2:]:
            typical = F.interpolate(typical, size=error.shape[-2:], mode="bilinear", align_corners=False)
        error = error / typical.clamp_min(POSITION_FLOOR)
    return error


def describe_map(config: EndoVAEConfig) -> str:
    """The anomaly map of a config in words (the tab and the cards)."""
    channels = "blue-channel squared error" if config.anomaly_channels == "b" else "squared error summed over R, G, B"
    position = " ÷ the typical error at that position (polyp-free training pixels)" if config.position_normalised else ""
    erosion = f", inside the lit field of view eroded by {config.field_of_view_erosion} px" if config.field_of_view_erosion else ""
    return f"{channels}{position}, Gaussian-smoothed (σ {config.anomaly_sigma:g} px){erosion}"


def finish_map(model: EndoVAE, images: torch.Tensor, error: torch.Tensor, sigma: float) -> torch.Tensor:
    """Pixel scores (B, 1, H, W) → the anomaly map: Gaussian-smoothed (σ px), zero outside the eroded field of view
    when the config asks for it."""
    error = gaussian_blur(error, sigma)
    if model.config.field_of_view_erosion:
        error = error * field_of_view(images, model.config.field_of_view_erosion)
    return error


@torch.no_grad()
def anomaly_map(model: EndoVAE, images: torch.Tensor, sigma: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole frames (B, 3, H, W), H and W multiples of 8, → (reconstruction, anomaly map (B, 1, H, W)): the squared
    error of the config's colour channels (`pixel_error`, position-normalised when configured), Gaussian-smoothed
    (σ in pixels, default the config's), inside the eroded field of view when the config asks for it. A fully
    convolutional model trained on polyp-free patches is applied to the whole frame. The evaluation, the trainer's
    calibration and the demo's anomaly panel all call this one function."""
    reconstruction = model.reconstruct(images)
    sigma = model.config.anomaly_sigma if sigma is None else sigma
    return reconstruction, finish_map(model, images, pixel_error(model, images, reconstruction), sigma)


@torch.no_grad()
def position_error_table(model: EndoVAE, frames: torch.Tensor, masks: torch.Tensor, erosion: int = 10, sigma: float = 4.0,
                         batch_size: int = 32, min_share: float = 0.01) -> torch.Tensor:
    """The typical error at each position of a frame, (1, 1, H, W), from polyp-free training frames' pixels only:
    the mean squared error of the config's channels over the pixels that are lit (field of view eroded by `erosion`)
    and not polyp, Gaussian-smoothed (σ px, numerator and count alike); positions lit in under `min_share` of the
    frames take the mean over all such pixels. Uses no polyp location beyond leaving polyp pixels out."""
    plain = with_map_settings(model, position_normalised=False)
    total = count = None
    for start in range(0, len(frames), batch_size):
        x = frames[start : start + batch_size].float().div(255)
        error = pixel_error(plain, x, plain.reconstruct(x))
        keep = field_of_view(x, erosion) * (~masks[start : start + batch_size, None]).float()
        batch_total, batch_count = (error * keep).sum(0, keepdim=True), keep.sum(0, keepdim=True)
        total = batch_total if total is None else total + batch_total
        count = batch_count if count is None else count + batch_count
    overall = total.sum() / count.sum().clamp_min(1)
    smoothed_total, smoothed_count = gaussian_blur(total, sigma), gaussian_blur(count, sigma)
    table = smoothed_total / smoothed_count.clamp_min(1e-6)
    return torch.where(smoothed_count >= min_share * len(frames), table, overall)


def with_map_settings(model: EndoVAE, **changes) -> EndoVAE:
    """The same weights with other anomaly-map settings (σ, erosion, channels, position normalisation); a model
    that gains position normalisation starts with a flat table (all ones) until `position_error` is filled."""
    config = dataclasses.replace(model.config, **changes)
    rebuilt = EndoVAE(config).to(model.pixel_threshold.device)
    state = {key: value for key, value in model.state_dict().items() if key != "position_error" or config.position_normalised}
    missing, unexpected = rebuilt.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"position_error"}:
        raise RuntimeError(f"weights do not fit: missing {missing}, unexpected {unexpected}")
    return rebuilt.train(model.training)


def field_of_view(images: torch.Tensor, erosion: int, level: float = 0.1) -> torch.Tensor:
    """(B, 3, H, W) → float mask (B, 1, H, W) of the lit field of view: pixels brighter than `level` in some channel,
    eroded by `erosion` px, which drops the black corners, the edge between them and the mucosa, and thin overlay text
    (their reconstruction errors are not about polyps)."""
    lit = (images.max(1, keepdim=True).values > level).float()
    return -F.max_pool2d(-lit, 2 * erosion + 1, 1, erosion)


def patch_scores(maps: torch.Tensor, size: int, stride: int) -> torch.Tensor:
    """Mean of an error map over every size × size patch at `stride`: (B, 1, H, W) → (B, rows, cols)."""
    pooled = F.avg_pool2d(maps, size, stride)  # (B, 1, rows, cols)
    return pooled[:, 0]


@torch.no_grad()
def error_maps(model: EndoVAE, frames: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Anomaly maps (N, H, W) of uint8 frames (N, 3, H, W) (`anomaly_map` with the config's settings)."""
    maps = [anomaly_map(model, frames[i : i + batch_size].float().div(255))[1][:, 0]
            for i in range(0, len(frames), batch_size)]
    return torch.cat(maps)


def pixel_auroc(maps: torch.Tensor, masks: torch.Tensor) -> float:
    from sklearn.metrics import roc_auc_score

    labels = masks.flatten().numpy()
    if labels.all() or not labels.any():
        return float("nan")
    return float(roc_auc_score(labels, maps.flatten().numpy()))


def patch_labels(masks: torch.Tensor, size: int, stride: int) -> torch.Tensor:
    """Per patch: 1 polyp (≥ POLYP_PATCH_SHARE polyp pixels), 0 polyp-free (none), -1 in between (left out)."""
    share = F.avg_pool2d(masks.float()[:, None], size, stride)[:, 0]
    return torch.where(share >= POLYP_PATCH_SHARE, 1, torch.where(share == 0, 0, -1))


def best_dice_threshold(maps: torch.Tensor, masks: torch.Tensor, candidates: int = 200) -> tuple[float, float]:
    """The threshold on the error maps with the best pooled Dice against the masks: (threshold, Dice)."""
    scores, labels = maps.flatten().numpy().astype(np.float64), masks.flatten().numpy()
    thresholds = np.unique(np.quantile(scores, np.linspace(0.5, 0.999, candidates)))
    positives, negatives = np.sort(scores[labels]), np.sort(scores[~labels])
    true_positives = len(positives) - np.searchsorted(positives, thresholds, side="right")
    false_positives = len(negatives) - np.searchsorted(negatives, thresholds, side="right")
    dice = 2 * true_positives / np.maximum(true_positives + false_positives + len(positives), 1)
    best = int(np.argmax(dice))
    return float(thresholds[best]), float(dice[best])


def best_youden_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The threshold with the largest TPR − FPR (Youden's J) for labels 1 vs 0: (threshold, J)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(labels, scores)
    best = int(np.argmax(tpr - fpr))
    return float(thresholds[best]), float(tpr[best] - fpr[best])
