"""VAE latent explorer: the course report's MNIST VAE with a 2-D latent, and the variants its theory answers describe.

Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014; Higgins et al., "β-VAE", ICLR 2017; the course
report of ../shared/specs/vae-diffusion.md §1 (its demo features: §7, 1–8).

The latent plane is a rendered scatter of the 10,000 test images' μ (precomputed by `python -m evaluation.vae`,
`test_latents.npz` beside each checkpoint). Clicking it decodes the clicked z: Gradio's image `select` event gives
the clicked pixel, which maps back to z through the plot's fixed axes box (a `gr.Plot` has no click coordinates in
Gradio 6.31); two sliders set z exactly. Run alone: `python -m demos.vae`.
"""

from __future__ import annotations

import contextlib
import functools
import re
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from PIL import Image, ImageDraw
from scipy import ndimage
from scipy.stats import norm

from demos import cards, examples, serving
from demos.kit import About, Metric
from demos.uploads import UploadError, image_upload, read_image
from models import registry
from models.endovae import psnr, ssim
from models.vae import VAE
from nndl_data import DatasetMissing
from nndl_data.digits import load_mnist

TITLE = "VAE latent explorer (MNIST)"
MODELS = {
    "Report's VAE: MSE-sum + KL, β 1": "vae-report",
    "BCE + KL, β 1 (Bernoulli likelihood)": "vae-bce",
    "BCE, β 4": "vae-bce-beta4",
    "BCE, plain autoencoder (β 0)": "vae-bce-ae",
    "MSE, β 4": "vae-mse-beta4",
    "MSE, plain autoencoder (β 0)": "vae-mse-ae",
}
CHECKPOINTS = ["vae-report", "vae-bce", "vae-bce-ae", "vae-bce-beta4"]  # the tab needs these; the MSE β 0 / β 4 pair is shown when trained
COMPARISON = (("vae-mse-ae", "vae-report", "vae-mse-beta4"), ("vae-bce-ae", "vae-bce", "vae-bce-beta4"))  # rows: loss; columns: β 0, 1, 4
SHIPPED = examples.assets("pixelda")  # the first MNIST test digit of each class, shipped by the PixelDA tab for a Space
PER_DIGIT = 2  # examples: the first two test images of each digit
SCALE = 7  # a 28 px digit shown at 196 px
PLANE_SIZE = (5.6, 5.0)  # inches at 100 dpi: 560 × 500 px
AXES_BOX = (50, 40, 420, 420)  # the axes in pixels: left, bottom, width, height (square, so z is isotropic)
DIGIT_COLOURS = colormaps["tab10"]

HEADLINE = [
    Metric("test ELBO (nats/image), report's VAE", "vae-report", "test.elbo", report="none: no test numbers", percent=False),
    Metric("test ELBO, BCE VAE", "vae-bce", "test.elbo", report="–", percent=False),
    Metric("Bernoulli ELBO, report's VAE (common scale)", "vae-report", "test.bernoulli_elbo", report="–", percent=False),
    Metric("Bernoulli ELBO, BCE VAE", "vae-bce", "test.bernoulli_elbo", report="–", percent=False),
    Metric("test SSIM (z = μ), report's VAE", "vae-report", "test.ssim", report="– (qualitative 2×5 grid)", percent=False),
    Metric("test SSIM, BCE VAE", "vae-bce", "test.ssim", report="–", percent=False),
]
ABOUT = About(
    citation="Kingma & Welling, *Auto-Encoding Variational Bayes*, ICLR 2014; Higgins et al., *β-VAE*, ICLR 2017. "
             "The report's architecture: two stride-2 convolutions, FC 128, a 2-D latent (844,549 parameters).",
    dataset="MNIST (LeCun, Cortes & Burges; LeCun et al. 1998), usually distributed under CC BY-SA 3.0: trained on the 60,000 "
            "training images, measured on the 10,000 test images.",
)


@serving.load_once
def load_model(name: str) -> VAE:
    """Shared by all requests: every function here only reads the model (no hooks, no mode changes)."""
    return registry.load(name)


# ------------------------------------------------------------------------------------------------ data


@dataclass(frozen=True)
class Latents:
    mu: np.ndarray  # (N, 2) float32: the test set's μ
    labels: np.ndarray  # (N,) digits
    logvar: np.ndarray | None  # (N, 2), None for a plain autoencoder


@serving.load_once
def test_latents(name: str) -> Latents | None:
    """The evaluation's test-set μ for checkpoint `name`, or None before `python -m evaluation.vae` has run."""
    with contextlib.suppress(registry.CheckpointError, OSError, ValueError, KeyError):
        with np.load(registry.checkpoint_dir(name) / "test_latents.npz", allow_pickle=False) as stored:
            return Latents(stored["mu"].astype(np.float32), stored["labels"].astype(np.int64),
                           stored["logvar"].astype(np.float32) if "logvar" in stored else None)
    return None


@dataclass(frozen=True)
class Example:
    path: str
    index: int  # in the MNIST test split
    digit: int

    @property
    def label(self) -> str:
        return f"test #{self.index}: a {self.digit}"


@functools.cache
def example_digits() -> list[Example]:
    """The first PER_DIGIT test images of each digit from the data root (written as PNGs to the user cache); without
    it (a Space), the first test image of each digit that the PixelDA tab ships (demos/assets/pixelda, labels.txt):
    the same MNIST test files, not a second copy."""
    with contextlib.suppress(DatasetMissing):
        images, labels = load_mnist("test")
        chosen = sorted(i for digit in range(10) for i in (labels == digit).nonzero().flatten()[:PER_DIGIT].tolist())
        stems = {f"test-{i:05d}-digit-{int(labels[i])}": images[i].numpy() for i in chosen}
        paths = examples.write_pngs("vae", stems)
        return [Example(str(path), i, int(labels[i])) for path, i in zip(paths, chosen)]
    labels_file = SHIPPED / "labels.txt"
    if not labels_file.exists():
        return []
    found = []
    for line in labels_file.read_text().splitlines():
        if line.strip():
            name, digit = line.split()
            found.append(Example(str(SHIPPED / name), int(re.search(r"(\d+)", name).group(1)), int(digit)))
    found.sort(key=lambda example: example.index)
    examples.shown([e.path for e in found])
    return found


def shipped_only() -> bool:
    """True when the examples are the few shipped with the app (no data root)."""
    chosen = example_digits()
    return bool(chosen) and Path(chosen[0].path).parent == SHIPPED


def read_digit(path: str | Path) -> np.ndarray:
    """An MNIST-style PNG (white on black, 28 px) → float32 (28, 28) in [0, 1]."""
    with Image.open(path) as image:
        return np.asarray(image.convert("L"), dtype=np.float32) / 255


# ------------------------------------------------------------------------------------------------ the plane


@dataclass(frozen=True)
class Plane:
    """A rendered latent plane: the image and the map between its pixels and z (axes box, limits)."""

    image: np.ndarray  # uint8 (H, W, 3)
    limit: float  # the axes show z ∈ [−limit, limit]²

    def to_pixel(self, z) -> tuple[float, float]:
        left, bottom, width, height = AXES_BOX
        x = left + (float(z[0]) + self.limit) / (2 * self.limit) * width
        y = self.image.shape[0] - bottom - (float(z[1]) + self.limit) / (2 * self.limit) * height
        return x, y

    def to_latent(self, x: float, y: float) -> tuple[float, float]:
        """The z under image pixel (x, y) (x right, y down), clipped to the axes."""
        left, bottom, width, height = AXES_BOX
        z1 = (x - left) / width * 2 * self.limit - self.limit
        z2 = (self.image.shape[0] - bottom - y) / height * 2 * self.limit - self.limit
        return float(np.clip(z1, -self.limit, self.limit)), float(np.clip(z2, -self.limit, self.limit))


def plane_limit(latents: Latents | None) -> float:
    """Half-width of the square view: the 99.5th percentile of |μ|, padded, at least 3 (N(0, I)'s ±3σ)."""
    if latents is None:
        return 4.0
    return float(max(3.0, np.ceil(np.quantile(np.abs(latents.mu), 0.995) * 1.15)))


def scatter_axes(axis, latents: Latents, limit: float, size: float = 2.5) -> None:
    """The μ of the test set coloured by digit, with the prior's 1σ and 2σ circles."""
    order = np.random.default_rng(0).permutation(len(latents.mu))  # no digit drawn entirely on top of the others
    axis.scatter(latents.mu[order, 0], latents.mu[order, 1], c=DIGIT_COLOURS(latents.labels[order] / 9.999)[:, :3], s=size, alpha=0.5,
                 linewidths=0, rasterized=True)
    angle = np.linspace(0, 2 * np.pi, 200)
    for radius in (1, 2):
        axis.plot(radius * np.cos(angle), radius * np.sin(angle), color="black", linewidth=0.6, linestyle=":" if radius == 2 else "-")
    axis.set_xlim(-limit, limit)
    axis.set_ylim(-limit, limit)
    axis.set_aspect("equal")


def render_figure(figure: Figure) -> np.ndarray:
    """A figure as an RGB uint8 array (drawn outside pyplot: thread-safe)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


@serving.load_once
def base_plane(name: str) -> Plane:
    """The plane of checkpoint `name` with its test-set μ (rendered once per model; ~0.2 s)."""
    latents = test_latents(name)
    limit = plane_limit(latents)
    figure = Figure(figsize=PLANE_SIZE, dpi=100)
    width, height = PLANE_SIZE[0] * 100, PLANE_SIZE[1] * 100
    left, bottom, box_width, box_height = AXES_BOX
    axis = figure.add_axes((left / width, bottom / height, box_width / width, box_height / height))
    if latents is not None:
        scatter_axes(axis, latents, limit)
        for digit in range(10):
            axis.scatter([], [], color=DIGIT_COLOURS(digit / 9.999), s=25, label=str(digit))
        axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False, handletextpad=0.1, title="digit")
    else:
        axis.set_xlim(-limit, limit)
        axis.set_ylim(-limit, limit)
        axis.text(0, 0, "test latents not measured yet:\npython -m evaluation.vae", ha="center", va="center", fontsize=9)
    axis.set_xlabel("z₁", labelpad=1)
    axis.set_ylabel("z₂", labelpad=1)
    axis.tick_params(labelsize=7)
    return Plane(render_figure(figure), limit)


def draw(plane: Plane, points=(), path=None, ellipses=(), rectangle=None, colour=(0, 0, 0)) -> np.ndarray:
    """A copy of the plane with markers: `points` (z's, circled crosses), a `path` (polyline of z's), `ellipses`
    ((μ, (σ₁, σ₂)) axis-aligned), a `rectangle` ((z_min, z_max) corners)."""
    image = Image.fromarray(plane.image)
    pen = ImageDraw.Draw(image)
    if rectangle is not None:
        (x0, y0), (x1, y1) = plane.to_pixel(rectangle[0]), plane.to_pixel(rectangle[1])
        pen.rectangle((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), outline=colour, width=2)
    for centre, sigma in ellipses:
        for k, width in ((1, 2), (2, 1)):
            (x0, y0) = plane.to_pixel((centre[0] - k * sigma[0], centre[1] + k * sigma[1]))
            (x1, y1) = plane.to_pixel((centre[0] + k * sigma[0], centre[1] - k * sigma[1]))
            pen.ellipse((x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)), outline=colour, width=width)
    if path is not None and len(path) > 1:
        pixels = [plane.to_pixel(z) for z in path]
        pen.line(pixels, fill=colour, width=2)
        for x, y in pixels:
            pen.ellipse((x - 2.5, y - 2.5, x + 2.5, y + 2.5), fill=colour)
    radius = 6 if len(points) <= 2 else 3
    for z in points:
        x, y = plane.to_pixel(z)
        pen.ellipse((x - radius, y - radius, x + radius, y + radius), outline=colour, width=2)
        if radius > 3:
            pen.line((x - radius - 4, y, x + radius + 4, y), fill=colour, width=1)
            pen.line((x, y - radius - 4, x, y + radius + 4), fill=colour, width=1)
    return np.asarray(image)


# ------------------------------------------------------------------------------------------------ pure model functions


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 1, 28, 28) in [0, 1] → uint8 (N, 28, 28)."""
    return (images[:, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def enlarge(image: np.ndarray, scale: int = SCALE) -> np.ndarray:
    array = image if image.dtype == np.uint8 else (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    return np.repeat(np.repeat(array, scale, axis=0), scale, axis=1)


def tile(images: np.ndarray, columns: int, gap: int = 2) -> np.ndarray:
    """uint8 (N, S, S) → one grid image, `columns` per row, gaps in mid-grey."""
    count, size = len(images), images.shape[1]
    rows = -(-count // columns)
    grid = np.full((rows * (size + gap) - gap, columns * (size + gap) - gap), 96, np.uint8)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        grid[row * (size + gap) : row * (size + gap) + size, column * (size + gap) : column * (size + gap) + size] = image
    return grid


@torch.inference_mode()
def decode(model: VAE, z) -> np.ndarray:
    """z's (N, 2) → uint8 digits (N, 28, 28)."""
    return to_uint8(model.decode(torch.as_tensor(np.asarray(z, dtype=np.float32)).view(-1, model.config.latent_dim)))


def nearest_test_digit(latents: Latents | None, z) -> tuple[int, int, float] | None:
    """(test index, digit, distance) of the test μ closest to z."""
    if latents is None:
        return None
    distances = np.hypot(latents.mu[:, 0] - z[0], latents.mu[:, 1] - z[1])
    index = int(np.argmin(distances))
    return index, int(latents.labels[index]), float(distances[index])


def manifold_z(count: int, span: float, spacing: str) -> np.ndarray:
    """The (count², 2) grid of z, row by row from the top (z₂ high) and left (z₁ low): evenly spaced over
    [−span, span]², or at the N(0, span²) quantiles Φ⁻¹(linspace(0.05, 0.95))·span (the Kingma & Welling figure)."""
    if spacing == "quantiles":
        axis = norm.ppf(np.linspace(0.05, 0.95, count)) * span
    else:
        axis = np.linspace(-span, span, count)
    z1, z2 = np.meshgrid(axis, axis[::-1])
    return np.stack([z1.ravel(), z2.ravel()], 1).astype(np.float32)


def manifold(model: VAE, count: int, span: float, spacing: str = "linear") -> np.ndarray:
    """The decoded grid (count × count digits) as one image."""
    return tile(decode(model, manifold_z(count, span, spacing)), columns=count, gap=0)


@torch.inference_mode()
def encode(model: VAE, digit: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """float (28, 28) in [0, 1] → (μ (2,), σ (2,) or None for a plain autoencoder)."""
    mu, logvar = model.encode(torch.from_numpy(np.ascontiguousarray(digit, dtype=np.float32))[None, None])
    return mu[0].numpy(), None if logvar is None else torch.exp(0.5 * logvar[0]).numpy()


@dataclass
class Interpolation:
    strip: np.ndarray  # uint8: first input, decoded steps, second input
    crossfade: np.ndarray  # uint8: the pixel-space blend at the same t, for comparison
    path: np.ndarray  # (steps, 2) z's


def interpolate(model: VAE, first: np.ndarray, second: np.ndarray, steps: int = 10) -> Interpolation:
    """Decoded (1 − t)·μ₁ + t·μ₂ for t from 0 to 1, beside the pixel cross-fade (1 − t)·x₁ + t·x₂."""
    (mu_a, _), (mu_b, _) = encode(model, first), encode(model, second)
    t = np.linspace(0, 1, steps, dtype=np.float32)[:, None]
    path = (1 - t) * mu_a + t * mu_b
    as_uint8 = lambda image: (np.clip(image, 0, 1) * 255).round().astype(np.uint8)  # noqa: E731
    strip = np.concatenate([as_uint8(first)[None], decode(model, path), as_uint8(second)[None]])
    blend = np.stack([as_uint8((1 - s) * first + s * second) for s in t[:, 0]])
    return Interpolation(tile(strip, len(strip)), tile(blend, len(blend)), path)


def digit_from_drawing(array: np.ndarray) -> np.ndarray | None:
    """A drawing or photo of one digit → MNIST style: white on black, the digit scaled to fit 20 × 20 (aspect kept)
    and placed by its centre of mass at the centre of 28 × 28 (LeCun et al.'s preprocessing). float32 (28, 28) in
    [0, 1], or None when nothing is drawn. Ink is dark strokes on a light or transparent background, or light
    strokes on a dark one (whichever is the minority)."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 4:
        alpha = array[..., 3].astype(np.float32) / 255
        ink = alpha * (1 - array[..., :3].astype(np.float32).mean(-1) / 255)  # dark, opaque strokes
        if alpha.min() > 0.99:  # an opaque image: judge by brightness below
            array = array[..., :3]
    if array.ndim == 2 or array.shape[-1] == 3:
        gray = (array if array.ndim == 2 else array.astype(np.float32).mean(-1)).astype(np.float32) / 255
        ink = 1 - gray if np.median(gray) > 0.5 else gray  # the background is the majority
    ink = np.clip(ink - np.median(ink), 0, 1)  # no background haze
    if ink.max() < 0.1:
        return None
    ink = ink / ink.max()
    rows, columns = np.nonzero(ink > 0.1)
    crop = ink[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    scale = 20 / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    small = np.asarray(Image.fromarray((crop * 255).astype(np.uint8)).resize(size, Image.Resampling.LANCZOS), dtype=np.float32) / 255
    canvas = np.zeros((28, 28), np.float32)
    top, left = (28 - small.shape[0]) // 2, (28 - small.shape[1]) // 2
    canvas[top : top + small.shape[0], left : left + small.shape[1]] = small
    centre = ndimage.center_of_mass(canvas)
    canvas = ndimage.shift(canvas, (13.5 - centre[0], 13.5 - centre[1]), order=1, mode="constant")
    return np.clip(canvas, 0, 1)


@dataclass
class Encoded:
    digit: np.ndarray  # float (28, 28): the input as the model sees it
    mu: np.ndarray  # (2,)
    sigma: np.ndarray | None  # (2,)
    reconstruction: np.ndarray  # uint8 (28, 28), z = μ
    samples: np.ndarray  # uint8 (K, 28, 28): decoded z = μ + σ·ε (empty for a plain autoencoder)
    sample_z: np.ndarray  # (K, 2)
    squared_error: float  # Σ over pixels, z = μ
    psnr: float
    ssim: float


def encode_digit(model: VAE, digit: np.ndarray, seed: int = 0, count: int = 8) -> Encoded:
    """μ, σ, the deterministic reconstruction and `count` stochastic ones (its own generator), with their scores."""
    mu, sigma = encode(model, digit)
    reconstruction = decode(model, mu)[0]
    sample_z = np.zeros((0, 2), np.float32)
    if sigma is not None:
        noise = torch.randn(count, 2, generator=torch.Generator().manual_seed(int(seed))).numpy()
        sample_z = mu + sigma * noise
    samples = decode(model, sample_z) if len(sample_z) else np.zeros((0, 28, 28), np.uint8)
    x = torch.from_numpy(digit)[None, None]
    x_hat = torch.from_numpy(reconstruction.astype(np.float32) / 255)[None, None]
    return Encoded(digit, mu, sigma, reconstruction, samples, sample_z, float((x_hat - x).pow(2).sum()), float(psnr(x_hat, x)), float(ssim(x_hat, x)))


def prior_samples(model: VAE, count: int, temperature: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(grid of decoded z ~ N(0, T²I), the z's); the i-th sample is the same at any count (one generator, one draw)."""
    z = torch.randn(64, 2, generator=torch.Generator().manual_seed(int(seed))).numpy()[: int(count)] * float(temperature)
    return tile(decode(model, z), columns=min(8, int(count))), z


@torch.inference_mode()
def report_figure(model: VAE, digits: np.ndarray, seed: int) -> np.ndarray:
    """The report's Fig. (2 × 5 originals vs reconstructions) with its eval-mode sampling as a third row:
    originals, z = μ (ours), one sampled z = μ + σ·ε per digit (the report's, seeded)."""
    x = torch.from_numpy(digits.astype(np.float32))[:, None]
    mu, logvar = model.encode(x)
    rows = [to_uint8(x), to_uint8(model.decode(mu))]
    if logvar is not None:
        noise = torch.randn(mu.shape, generator=torch.Generator().manual_seed(int(seed)))
        rows.append(to_uint8(model.decode(mu + noise * torch.exp(0.5 * logvar))))
    return tile(np.concatenate(rows), columns=len(digits))


@serving.load_once
def comparison_image() -> np.ndarray:
    """The test-set μ of the six variants side by side: rows MSE / BCE, columns β 0 (plain AE), 1, 4; each panel on
    its own scale, with N(0, I)'s 1σ and 2σ circles."""
    figure = Figure(figsize=(10.5, 7.0), dpi=90, layout="tight")
    axes = figure.subplots(2, 3)
    for row, names in enumerate(COMPARISON):
        for column, name in enumerate(names):
            axis = axes[row, column]
            latents = test_latents(name)
            title = f"{'MSE' if row == 0 else 'BCE'}, " + ("plain AE (β 0)" if column == 0 else f"β {1 if column == 1 else 4}")
            if name == "vae-report":
                title += ": the report"
            if latents is None:
                axis.set_title(title + " (not measured)", fontsize=9)
                continue
            scatter_axes(axis, latents, plane_limit(latents), size=1.5)
            kl = _card_value(name, "test.kl")
            axis.set_title(title + (f", KL {kl:.1f} nats" if kl is not None else ""), fontsize=9)
            axis.tick_params(labelsize=7)
    return render_figure(figure)


# ------------------------------------------------------------------------------------------------ cards


def _card_value(name: str, key: str):
    with contextlib.suppress(registry.CheckpointError, OSError, ValueError):
        value = registry.load_card(name).get("metrics", {})
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value
    return None


def results_markdown() -> str:
    """Every variant's test metrics from its card (the report gave none)."""
    lines = ["| model | ELBO (nats) | Bernoulli ELBO | KL (nats) | Σ(x̂ − x)² per image | BCE per image | PSNR (dB) | SSIM | 5-NN digit acc. from μ |",
             "|---|---|---|---|---|---|---|---|---|",
             "| the report (MSE + KL, β 1) | – | – | – | – | – | – | – | – |"]
    number = lambda value, digits=2: "–" if value is None else f"{value:.{digits}f}"  # noqa: E731
    for label in models_here():
        test = _card_value(MODELS[label], "test") or {}
        lines.append(f"| ours: {label} | {number(test.get('elbo'))} | {number(test.get('bernoulli_elbo'))} | {number(test.get('kl'))} | "
                     f"{number(test.get('squared_error_per_image'))} | {number(test.get('bce_per_image'))} | {number(test.get('psnr'))} | "
                     f"{number(test.get('ssim'), 3)} | {number(test.get('knn5_digit_accuracy'), 3)} |")
    return ("\n".join(lines) + "\n\nAll on the 10,000 MNIST test images, measured by `python -m evaluation.vae`; the report trained on "
            "the training images and stated no number at all. Reconstructions use z = μ. The ELBO is each model's own (β = 1): "
            "N(x̂, ½I) for the MSE models, whose −log density is the report's MSE-sum + 392·log π, Bernoulli for the BCE models; "
            "the Bernoulli ELBO puts every model on one scale. Plain autoencoders have no posterior, so no KL or ELBO.")


# ------------------------------------------------------------------------------------------------ thin adapters


def models_here() -> list[str]:
    """The dropdown's labels: every variant whose checkpoint is here."""
    return [label for label, name in MODELS.items() if name in CHECKPOINTS or registry.available(name)]


def _model(label: str) -> VAE:
    return serving.chosen_model(MODELS, label, load_model)


def _name(label: str) -> str:
    return MODELS.get(label, "vae-report")


def _decode(label, z1, z2):
    """The point z: the plane with it marked, the decoded digit, and what is near it."""
    model, name = _model(label), _name(label)
    z = (float(z1), float(z2))
    plane = base_plane(name)
    digit = decode(model, z)[0]
    text = f"z = ({z[0]:.2f}, {z[1]:.2f}); |z| = {np.hypot(*z):.2f}"
    near = nearest_test_digit(test_latents(name), z)
    if near is not None:
        text += f"; nearest test μ: a **{near[1]}** (test #{near[0]}, {near[2]:.2f} away)"
    return draw(plane, points=[z]), enlarge(digit), text


def _click(label, event: gr.SelectData):
    """A click on the plane → z under the pointer (slider values), then decoded."""
    x, y = event.index
    z1, z2 = base_plane(_name(label)).to_latent(float(x), float(y))
    return round(z1, 2), round(z2, 2), *_decode(label, z1, z2)


def _limits(label):
    """The sliders' range follows the model's plane (a plain autoencoder's latent is far wider than N(0, I))."""
    limit = base_plane(_name(label)).limit
    return gr.update(minimum=-limit, maximum=limit, value=0.0), gr.update(minimum=-limit, maximum=limit, value=0.0), gr.update(maximum=limit)


def _manifold(label, count, span, spacing):
    if not 2 <= int(count) <= 30:
        raise gr.Error("The grid size must be between 2 and 30.")
    if not 0 < float(span) <= 100:
        raise gr.Error("The range must be positive.")
    spacing = "quantiles" if str(spacing).startswith("Gaussian") else "linear"
    model, name = _model(label), _name(label)
    grid = manifold(model, int(count), float(span), spacing)
    corners = manifold_z(int(count), float(span), spacing)
    rectangle = (corners.min(0), corners.max(0))
    return enlarge(grid, 2 if int(count) > 12 else 3), draw(base_plane(name), rectangle=rectangle)


def _example(label_of_example: str) -> Example:
    for example in example_digits():
        if example.label == label_of_example:
            return example
    raise gr.Error("Pick a test digit from the list.")


def _interpolate(label, first, second, steps):
    if not 2 <= int(steps) <= 16:
        raise gr.Error("Steps must be between 2 and 16.")
    a, b = _example(first), _example(second)
    model, name = _model(label), _name(label)
    result = interpolate(model, read_digit(a.path), read_digit(b.path), int(steps))
    return enlarge(result.strip, 4), enlarge(result.crossfade, 4), draw(base_plane(name), points=[result.path[0], result.path[-1]], path=result.path)


def _encode(label, digit: np.ndarray | None, seed):
    if digit is None:
        raise gr.Error("Draw a digit first (or pick a test digit, or upload a picture of one).")
    model, name = _model(label), _name(label)
    result = encode_digit(model, digit, int(seed))
    sigma_text = (f"σ = ({result.sigma[0]:.3f}, {result.sigma[1]:.3f}); ellipses: 1σ (thick) and 2σ of q(z|x)"
                  if result.sigma is not None else "plain autoencoder: a point, no σ")
    text = (f"μ = ({result.mu[0]:.2f}, {result.mu[1]:.2f}), {sigma_text}. Reconstruction (z = μ): Σ(x̂ − x)² = {result.squared_error:.1f}, "
            f"PSNR {result.psnr:.2f} dB, SSIM {result.ssim:.3f}.")
    near = nearest_test_digit(test_latents(name), result.mu)
    if near is not None:
        text += f" Nearest test μ: a **{near[1]}**."
    ellipses = [(result.mu, result.sigma)] if result.sigma is not None else []
    plane = draw(base_plane(name), points=[result.mu], ellipses=ellipses)
    if len(result.sample_z):
        plane = draw(Plane(plane, base_plane(name).limit), points=result.sample_z, colour=(90, 90, 90))
    samples = enlarge(tile(result.samples, 8), 4) if len(result.samples) else None
    return plane, enlarge((result.digit * 255).round().astype(np.uint8)), enlarge(result.reconstruction), samples, text


def _encode_drawing(label, drawing, seed):
    composite = drawing.get("composite") if isinstance(drawing, dict) else drawing
    digit = digit_from_drawing(composite) if composite is not None else None
    return _encode(label, digit, seed)


def _encode_example(label, example_label, seed):
    return _encode(label, read_digit(_example(example_label).path), seed)


def _encode_upload(label, path, seed):
    if not path:
        raise gr.Error("Upload a picture of one digit (PNG, JPEG, …).")
    try:
        image = read_image(path, mode="L")
    except UploadError as error:
        raise gr.Error(str(error)) from error
    return _encode(label, digit_from_drawing(np.asarray(image)), seed)


def _sample(label, count, temperature, seed):
    if not 1 <= int(count) <= 64:
        raise gr.Error("Number of samples must be between 1 and 64.")
    if not 0 <= float(temperature) <= 3:
        raise gr.Error("Temperature must be between 0 and 3.")
    grid, z = prior_samples(_model(label), int(count), float(temperature), int(seed))
    return enlarge(grid, 4), draw(base_plane(_name(label)), points=z, colour=(90, 90, 90))


def _report_figure(label, seed):
    chosen = example_digits()
    if not chosen:
        raise gr.Error(examples.NO_DATA_NOTE)
    picks = np.random.default_rng(int(seed)).choice(len(chosen), size=min(5, len(chosen)), replace=False)
    digits = np.stack([read_digit(chosen[i].path) for i in picks])
    return enlarge(report_figure(_model(label), digits, int(seed)), 4)


def _opened():
    label = next(iter(MODELS))
    names = [e.label for e in example_digits()]
    interpolated = _interpolate(label, names[0], names[3], 10) if len(names) > 3 else (None, None, None)
    encoded = _encode_example(label, names[0], 0) if names else (None,) * 4 + ("",)
    curves = cards.plot_curves("vae-report", {"report's VAE: loss per image": ["loss", "reconstruction"], "KL (nats per image)": ["kl"]})
    summary = "\n\n".join(cards.card_summary(name) for name in ("vae-report", "vae-bce"))
    return (*_decode(label, 0.0, 0.0), *_manifold(label, 15, 3.0, "linear"), *interpolated, *encoded, *_sample(label, 16, 1.0, 0),
            _report_figure(label, 0), comparison_image(), results_markdown(), summary, curves)


def api_examples() -> dict[str, list[tuple]]:
    """Three different cheap requests per public endpoint (benchmarks/load.py, tests/test_load.py): one decoded point
    (≈ 1 ms of compute), 16 prior samples, a 10 × 10 manifold."""
    label = next(iter(MODELS))
    return {
        "/vae_decode": [(label, 0.0, 0.0), (label, 1.0, -0.5), (label, -1.5, 1.2)],
        "/vae_sample": [(label, 16, 1.0, seed) for seed in range(3)],
        "/vae_manifold": [(label, 10, span, "evenly spaced") for span in (1.0, 2.0, 3.0)],
    }


def build() -> serving.OnOpen:
    chosen = example_digits()
    names = [e.label for e in chosen]
    first_label = next(iter(MODELS))
    gr.Markdown(f"## {TITLE}\nThe course report's VAE with a **2-D latent**, so the whole latent space is one plane: every test "
                "digit's μ, coloured by digit. Click anywhere on it to decode that z. The report chose the 2-D latent and never "
                "looked at it; its variants here (BCE vs MSE, β 0 = a plain autoencoder, β 4) show its theory answers. "
                + ABOUT.markdown())
    model = gr.Dropdown(models_here(), value=first_label, label="Model")
    with gr.Tab("Latent plane"):
        with gr.Row():
            with gr.Column(scale=3):
                plane = gr.Image(label="Test-set μ (click a point to decode it); circles: N(0, I)'s 1σ and 2σ", interactive=False,
                                 height=520, elem_id="vae-plane", buttons=[])
            with gr.Column(scale=2):
                z1 = gr.Slider(-4, 4, value=0.0, step=0.01, label="z₁")
                z2 = gr.Slider(-4, 4, value=0.0, step=0.01, label="z₂")
                digit = gr.Image(label="Decoded z", height=220, interactive=False)
                where = gr.Markdown()
    with gr.Tab("Manifold grid"):
        with gr.Row():
            count = gr.Slider(2, 30, value=15, step=1, label="Grid size N (N × N digits)")
            span = gr.Slider(0.25, 4, value=3.0, step=0.25, label="Range: z ∈ [−r, r]² (quantiles: r scales Φ⁻¹)")
            spacing = gr.Radio(["evenly spaced", "Gaussian quantiles Φ⁻¹(0.05 … 0.95)"], value="evenly spaced", label="Spacing")
        manifold_button = gr.Button("Decode the grid")
        with gr.Row():
            grid = gr.Image(label="Decoded grid (rows: z₂ from high to low; columns: z₁ from low to high)", height=520, interactive=False)
            grid_plane = gr.Image(label="The grid's extent on the plane", height=520, interactive=False)
    with gr.Tab("Interpolation"):
        with gr.Row():
            first = gr.Dropdown(names, value=names[0] if names else None, label="From test digit")
            second = gr.Dropdown(names, value=names[3] if len(names) > 3 else None, label="To test digit")
            steps = gr.Slider(2, 16, value=10, step=1, label="Steps")
        interpolate_button = gr.Button("Interpolate between the two μ")
        strip = gr.Image(label="Input, decoded (1 − t)·μ₁ + t·μ₂, input", interactive=False)
        crossfade = gr.Image(label="Pixel-space cross-fade (1 − t)·x₁ + t·x₂, for comparison", interactive=False)
        path_plane = gr.Image(label="The path on the plane", height=520, interactive=False)
    with gr.Tab("Draw or pick a digit"):
        with gr.Row():
            with gr.Column(scale=2):
                sketch = gr.Sketchpad(label="Pick the brush (✎) in the toolbar, then draw one digit, big", canvas_size=(280, 280), height=380,
                                      brush=gr.Brush(colors=["#000000"], color_mode="fixed", default_size=18), elem_id="vae-sketch")
                encode_button = gr.Button("Encode my drawing", variant="primary")
                example = gr.Dropdown(names, value=names[0] if names else None, label="… or a test digit")
                if not names:
                    gr.Markdown(f"*{examples.NO_DATA_NOTE}*")
                elif shipped_only():
                    gr.Markdown(f"*{examples.SHIPPED_NOTE}*")
                upload = image_upload(label="… or upload a picture of one digit", sources=["upload"], height=140, elem_id="vae-upload")
                seed = gr.Number(value=0, precision=0, label="Seed of the stochastic reconstructions")
            with gr.Column(scale=3):
                encoded_plane = gr.Image(label="μ (black cross) with its 1σ and 2σ ellipses, and eight z = μ + σ·ε (grey dots)", height=520, interactive=False)
        with gr.Row():
            model_input = gr.Image(label="As the model sees it (MNIST-style 28 px)", height=200, interactive=False)
            reconstruction = gr.Image(label="Reconstruction, z = μ", height=200, interactive=False)
            stochastic = gr.Image(label="Eight reconstructions from z = μ + σ·ε", height=200, interactive=False)
        encoded_text = gr.Markdown()
    with gr.Tab("Prior samples"):
        with gr.Row():
            sample_count = gr.Slider(1, 64, value=16, step=1, label="Number of samples")
            temperature = gr.Slider(0, 2, value=1.0, step=0.05, label="Temperature T (z ~ N(0, T²I))")
            sample_seed = gr.Number(value=0, precision=0, label="Seed")
        sample_button = gr.Button("Sample", variant="primary")
        with gr.Row():
            samples = gr.Image(label="Decoded samples", height=420, interactive=False)
            samples_plane = gr.Image(label="Where they fall on the plane", height=420, interactive=False)
    with gr.Tab("The report's figure"):
        gr.Markdown("The report's 2 × 5 figure (originals, reconstructions) with a third row: its reconstructions sampled z even "
                    "in eval mode, so they changed from run to run; ours use z = μ.")
        with gr.Row():
            report_seed = gr.Number(value=0, precision=0, label="Batch (seed)")
            report_button = gr.Button("New batch")
        report_grid = gr.Image(label="Rows: test digits; z = μ (ours); one sampled z (the report)", interactive=False)
    with gr.Accordion("AE vs VAE vs β: the latent scatter of every variant, metrics, cards and curves", open=True):
        comparison = gr.Image(label="Test-set μ: rows MSE / BCE, columns β 0 (plain AE), 1, 4 (each on its own scale)", interactive=False)
        results = gr.Markdown()
        summary = gr.Markdown()
        curves = gr.Plot(label="Training curves, report's VAE")

    event = serving.model_event("vae")
    decode_outputs = [plane, digit, where]
    for slider in (z1, z2):
        slider.input(_decode, [model, z1, z2], decode_outputs, trigger_mode="always_last", show_progress="hidden", **event)
    decode_button_api = serving.model_event("vae", "vae_decode")
    plane.select(_click, model, [z1, z2, *decode_outputs], show_progress="hidden", **event)
    model.change(_limits, model, [z1, z2, span], **serving.internal_event()).then(_decode, [model, z1, z2], decode_outputs, **decode_button_api)
    manifold_inputs, manifold_outputs = [model, count, span, spacing], [grid, grid_plane]
    manifold_button.click(_manifold, manifold_inputs, manifold_outputs, **serving.model_event("vae", "vae_manifold"))
    for control in (count, span):
        control.release(_manifold, manifold_inputs, manifold_outputs, **event)
    spacing.input(_manifold, manifold_inputs, manifold_outputs, **event)
    interpolate_outputs = [strip, crossfade, path_plane]
    interpolate_button.click(_interpolate, [model, first, second, steps], interpolate_outputs, **serving.model_event("vae", "vae_interpolate"))
    encode_outputs = [encoded_plane, model_input, reconstruction, stochastic, encoded_text]
    encode_button.click(_encode_drawing, [model, sketch, seed], encode_outputs, **serving.model_event("vae", "vae_encode"))
    example.input(_encode_example, [model, example, seed], encode_outputs, **serving.model_event("vae", "vae_encode_example"))
    upload.upload(_encode_upload, [model, upload, seed], encode_outputs, **serving.model_event("vae", "vae_encode_upload"))
    sample_button.click(_sample, [model, sample_count, temperature, sample_seed], [samples, samples_plane], **serving.model_event("vae", "vae_sample"))
    temperature.release(_sample, [model, sample_count, temperature, sample_seed], [samples, samples_plane], **event)
    report_button.click(lambda seed: int(seed) + 1, report_seed, report_seed, **serving.internal_event()).then(
        _report_figure, [model, report_seed], report_grid, **serving.model_event("vae", "vae_report_figure"))
    outputs = [*decode_outputs, *manifold_outputs, *interpolate_outputs, *encode_outputs, samples, samples_plane, report_grid,
               comparison, results, summary, curves]
    return serving.OnOpen(_opened, outputs)


if __name__ == "__main__":
    import sys

    serving.run_alone(sys.modules[__name__])
