"""Flow sampling and likelihood anomaly maps: the course report's Masked Autoregressive Flow on MVTec AD capsule
(Papamakarios et al., NeurIPS 2017; ../shared/specs/maf-cyclegan.md part 1), sampled exactly in a fraction of a
second, and a flow on pretrained features (DifferNet / CFlow-AD / FastFlow idea) whose per-position likelihood
localises defects.

Run alone: `python -m demos.maf`.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from matplotlib import colormaps, ticker
from PIL import Image

from demos import cards, examples, serving
from demos.kit import About
from demos.uploads import UploadError, read_image
from models import registry
from models.maf import FeatureFlow, PixelMAF
from nndl_data import DatasetMissing
from nndl_data.maf import CITATION, LICENCE, Sample, list_samples, load_image

TITLE = "Flow sampling (MAF)"
CATEGORIES = {"capsule": ("maf-pixel-capsule", "maf-features-capsule"), "bottle": ("maf-pixel-bottle", "maf-features-bottle")}
CHECKPOINTS = list(CATEGORIES["capsule"])
ASSETS = Path(__file__).resolve().parent / "assets" / "maf"
REPORT_AUROC = "0.78 (text) / 0.67 (figure caption)"
REPORT_SECONDS_PER_SAMPLE = 1675.0
ABOUT = About(
    citation="Papamakarios, Pavlakou & Murray, *Masked Autoregressive Flow for Density Estimation*, NeurIPS 2017; "
             "Germain et al., *MADE*, ICML 2015; feature flow after Rudolph et al. (DifferNet, WACV 2021), Gudovskiy et al. "
             "(CFLOW-AD, WACV 2022), Yu et al. (FastFlow, 2021) on ImageNet EfficientNet-Lite0 features.",
    dataset=f"{CITATION}. {LICENCE}: the images and masks shown here may not be used commercially.",
)


@serving.load_once
def load_model(name: str) -> PixelMAF | FeatureFlow:
    """Shared by all requests: sampling and scoring only read the model."""
    return registry.load(name)


def categories() -> list[str]:
    return [category for category, names in CATEGORIES.items() if all(registry.available(name) for name in names)] or ["capsule"]


@serving.load_once
def results(name: str) -> dict | None:
    """The evaluation's test scores, ROC and metrics (`scores.json` beside the weights), or None."""
    with contextlib.suppress(registry.CheckpointError, OSError, ValueError):
        return json.loads((registry.checkpoint_dir(name) / "scores.json").read_text())
    return None


# ------------------------------------------------------------------------------------------------ examples
@serving.load_once
def example_samples(category: str = "capsule", per_type: int = 2) -> list[Sample]:
    """The first `per_type` test images of each type (good first) from the data root; without it, the
    capsule images shipped in demos/assets/maf (first of each type)."""
    try:
        samples = list_samples(category, "test")
    except (DatasetMissing, FileNotFoundError):
        if category != "capsule":
            return []
        samples, per_type = list_samples("capsule", "test", ASSETS), 1
    chosen, counts = [], {}
    for sample in samples:
        if counts.get(sample.defect, 0) < per_type:
            chosen.append(sample)
            counts[sample.defect] = counts.get(sample.defect, 0) + 1
    examples.shown([s.path for s in chosen] + [s.mask_path for s in chosen if s.mask_path is not None])
    return chosen


@serving.load_once
def training_images(category: str, count: int = 8, size: int = 32) -> np.ndarray | None:
    """The first `count` good training images as the pixel MAF sees them (luma, `size` px), (count, size, size)."""
    with contextlib.suppress(DatasetMissing, FileNotFoundError):
        samples = list_samples(category, "train")[:count]
        images = torch.stack([load_image(s.path, size) for s in samples]).float()
        return (images * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1).round().numpy().astype(np.uint8)
    return None


# -------------------------------------------------------------------------------------------------- sampling
@dataclass
class Samples:
    grid: np.ndarray  # uint8 (H, W) or (H, W, 3)
    seconds_per_sample: float
    naive_seconds_per_sample: float | None = None
    max_difference: float | None = None  # between the fast and the naive sampler's images


def tile(images: np.ndarray, columns: int = 4, scale: int = 4) -> np.ndarray:
    """(N, S, S) or (N, S, S, 3) uint8 → one grid, each image enlarged `scale`× (nearest), 2 px gaps."""
    images = np.repeat(np.repeat(images, scale, axis=1), scale, axis=2)
    count, size = len(images), images.shape[1]
    rows = -(-count // columns)
    columns = min(columns, count)
    grid = np.full((rows * (size + 2) - 2, columns * (size + 2) - 2) + images.shape[3:], 255, np.uint8)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        grid[row * (size + 2) : row * (size + 2) + size, column * (size + 2) : column * (size + 2) + size] = image
    return grid


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, S, S) in [0, 1] → (N, S, S) or (N, S, S, 3) uint8."""
    array = (images.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return array[:, 0] if array.shape[1] == 1 else array.transpose(0, 2, 3, 1)


@torch.inference_mode()
def sample_grid(model: PixelMAF, count: int, temperature: float, seed: int, naive: bool = False, progress=None) -> Samples:
    """`count` exact samples, z ~ N(0, T²I), the i-th from seed + i (so each is the same at any count); timed."""
    images, naive_images, seconds, naive_seconds = [], [], 0.0, 0.0
    for index in range(int(count)):
        if progress is not None:
            progress((index, int(count)), desc="sampling")
        generator = torch.Generator().manual_seed(int(seed) + index)
        start = time.perf_counter()
        images.append(model.sample(1, float(temperature), generator))
        seconds += time.perf_counter() - start
        if naive:
            generator = torch.Generator().manual_seed(int(seed) + index)
            start = time.perf_counter()
            naive_images.append(model.sample(1, float(temperature), generator, naive=True))
            naive_seconds += time.perf_counter() - start
    fast = torch.cat(images)
    difference = float((fast - torch.cat(naive_images)).abs().max()) if naive else None
    return Samples(tile(to_uint8(fast)), seconds / count, naive_seconds / count if naive else None, difference)


# --------------------------------------------------------------------------------------------------- anomaly
@dataclass
class Scored:
    image: np.ndarray  # uint8 (S, S, 3), S = the feature flow's input size
    pixel_bits_per_dim: float
    pixel_threshold: float
    pixel_map: np.ndarray  # (32, 32) bits per pixel
    feature_score: float
    feature_threshold: float
    feature_map: np.ndarray  # (S, S)

    @property
    def pixel_anomalous(self) -> bool:
        return self.pixel_bits_per_dim > self.pixel_threshold

    @property
    def feature_anomalous(self) -> bool:
        return self.feature_score > self.feature_threshold


@torch.inference_mode()
def score_image(pixel_model: PixelMAF, feature_model: FeatureFlow, image: Image.Image) -> Scored:
    """Both detectors on one RGB image (any size; resized as in training)."""
    small = load_image(image, pixel_model.config.image_size).float()[None] / 255
    large = load_image(image, feature_model.config.image_size).float()[None] / 255
    feature_map = feature_model.anomaly_map(large)
    return Scored(
        image=(large[0].permute(1, 2, 0) * 255).round().byte().numpy(),
        pixel_bits_per_dim=float(pixel_model(small)[0]), pixel_threshold=float(pixel_model.threshold),
        pixel_map=pixel_model.pixel_map(small)[0].numpy(),
        feature_score=float(feature_model.image_score(feature_map)[0]), feature_threshold=float(feature_model.threshold),
        feature_map=feature_map[0].numpy(),
    )


@dataclass
class Latent:
    z_image: np.ndarray  # uint8 (S, S): z = f(x) at each pixel's position, −3…3 mapped to black…white
    z: np.ndarray  # (D,)
    round_trip_error: float  # max |f⁻¹(f(x)) − x| in the flow's (logit) space


@torch.inference_mode()
def inspect_latent(model: PixelMAF, image: Image.Image) -> Latent:
    """z = f(x) of the dequantised (midpoint), logit-transformed image, and the exact round trip f⁻¹(f(x)):
    a flow loses nothing, so its reconstruction error cannot score anomalies (the report's theory question 4)."""
    small = load_image(image, model.config.image_size).float()[None] / 255
    s, _ = model.dequantize_and_logit(model.to_lattice(small), None)
    z, _ = model.flow(s)
    error = float((model.flow.inverse(z) - s).abs().max())
    in_data_order = z.flip(-1) if (len(model.flow.blocks) - 1) % 2 else z  # z comes out in the last block's order
    size, channels = model.config.image_size, model.config.channels
    grid = in_data_order.view(channels, size, size).mean(0)
    return Latent(((grid.clamp(-3, 3) + 3) / 6 * 255).round().byte().numpy(), z[0].numpy(), error)


def latent_histogram(z: np.ndarray):
    """The latent's histogram against the N(0, 1) density it is trained to follow."""
    figure = cards.new_figure((4.2, 2.8))
    axis = figure.subplots()
    axis.hist(z, bins=60, density=True, color="tab:blue", alpha=0.6, label="z = f(x)")
    grid = np.linspace(-4, 4, 200)
    axis.plot(grid, np.exp(-grid**2 / 2) / np.sqrt(2 * np.pi), color="black", label="N(0, 1)")
    axis.set_xlim(-5, 5)
    axis.legend(fontsize=7)
    axis.set_title(f"mean {z.mean():.2f}, std {z.std():.2f}", fontsize=10)
    return figure


def heat_overlay(image: np.ndarray, heat: np.ndarray, low: float, high: float, alpha: float = 0.5) -> np.ndarray:
    """The map (resized to the image) in jet, blended over the image where it is above `low`."""
    if heat.shape != image.shape[:2]:
        heat = np.asarray(Image.fromarray(heat.astype(np.float32), mode="F").resize(image.shape[1::-1], Image.Resampling.BILINEAR))
    level = np.clip((heat - low) / max(high - low, 1e-6), 0, 1)
    colour = colormaps["jet"](level)[..., :3] * 255
    weight = alpha * (level > 0)[..., None]
    return (image * (1 - weight) + colour * weight).round().astype(np.uint8)


def mask_image(mask_path: str | Path | None, size: int) -> np.ndarray | None:
    if not mask_path:
        return None
    with Image.open(mask_path) as mask:
        return (np.asarray(mask.convert("L").resize((size, size), Image.Resampling.NEAREST)) > 127).astype(np.uint8) * 255


def histogram_figure(result: dict | None, score: float | None, threshold: float, title: str):
    """Good (green) vs defective (red) test scores, the validation threshold, and this image's score."""
    figure = cards.new_figure((4.6, 3.0))
    axis = figure.subplots()
    if result is not None:
        scores, defects = np.array(result["scores"]), np.array(result["defects"])
        low = min(scores.min(), score if score is not None else np.inf)
        high = max(scores.max(), score if score is not None else -np.inf)
        logarithmic = low > 0 and high / low > 20  # a squeezed capsule scores 50,000 bits/dim, good ones ≈ 2
        bins = np.geomspace(low, high, 40) if logarithmic else np.linspace(low, high, 30)
        if logarithmic:  # plain tick labels, no minor ticks: mathtext labels and log minor ticks were half the drawing time
            axis.set_xscale("log")
            axis.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0) if high / low < 100 else (1.0,)))
            axis.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
            axis.minorticks_off()
        axis.hist(scores[defects == "good"], bins=bins, histtype="stepfilled", color="tab:green", alpha=0.6, label="good (test)")
        axis.hist(scores[defects != "good"], bins=bins, histtype="stepfilled", color="tab:red", alpha=0.5, label="defective (test)")
    axis.axvline(threshold, color="black", linestyle="--", linewidth=1, label="threshold (validation)")
    if score is not None:
        axis.axvline(score, color="tab:blue", linewidth=2.5, label="this image")
    axis.set_title(title, fontsize=10)
    axis.set_ylabel("images")
    axis.legend(fontsize=7)
    return figure


def rendered(figure, dpi: int = 100) -> np.ndarray:
    """A figure as an RGB image (uint8): the scoring endpoint answers with images only, byte-identical for identical requests."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    figure.set_dpi(dpi)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def roc_figure(named: dict[str, dict | None]):
    """ROC curves of the detectors, each with its AUROC and its operating point at the validation threshold."""
    figure = cards.new_figure((4.2, 3.6))
    axis = figure.subplots()
    for label, result in named.items():
        if result is None:
            continue
        metrics = result["metrics"]
        line, = axis.plot(result["roc"]["fpr"], result["roc"]["tpr"], label=f"{label} (AUROC {metrics['image_auroc']:.3f})")
        point = metrics["at_threshold"]
        axis.plot([point["fpr"]], [point["tpr"]], "o", color=line.get_color())
    axis.plot([0, 1], [0, 1], color="gray", linestyle=":", linewidth=1)
    axis.set_xlabel("false-positive rate")
    axis.set_ylabel("true-positive rate")
    axis.set_title("Test ROC (dots: validation threshold)", fontsize=10)
    axis.legend(fontsize=7, loc="lower right")
    return figure


def results_table(category: str) -> str:
    """Image AUROC overall and per defect type for both detectors, pixel AUROC, beside the report's numbers."""
    pixel, feature = (results(name) for name in CATEGORIES[category])
    if pixel is None and feature is None:
        return "*Not evaluated yet: `python -m evaluation.maf`.*"
    metric = lambda result, *keys: None if result is None else _dig(result["metrics"], keys)  # noqa: E731
    rows = [("image AUROC, all defects", REPORT_AUROC if category == "capsule" else "–", metric(pixel, "image_auroc"), metric(feature, "image_auroc"))]
    defects = sorted(set((pixel or feature)["metrics"]["image_auroc_per_defect"]))
    rows += [(f"  {defect}", "–", metric(pixel, "image_auroc_per_defect", defect), metric(feature, "image_auroc_per_defect", defect)) for defect in defects]
    rows.append(("pixel AUROC (masks)", "–", metric(pixel, "pixel_auroc"), metric(feature, "pixel_auroc")))
    rows.append(("accuracy at the validation threshold", "–", metric(pixel, "at_threshold", "accuracy"), metric(feature, "at_threshold", "accuracy")))
    table = cards.comparison_table(rows, headers=("metric", "report (pixel MAF, 128 px)", "ours: pixel MAF", "ours: feature flow"), percent=False)
    counts = (pixel or feature)["metrics"]["test_images"]
    return table + (f"\n\nMVTec AD {category} test split: {counts['good']} good, {counts['defective']} defective images. "
                    "Thresholds: 95th percentile of held-out good training images' scores, never the test set. "
                    "The report's two AUROCs disagree (text 0.78, figure 0.67); ours are measured by `python -m evaluation.maf`.")


def _dig(value, keys):
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def headline() -> str:
    """The overview's line: capsule image AUROC of both detectors, from the cards."""
    parts = []
    for label, name in (("pixel MAF", CATEGORIES["capsule"][0]), ("feature flow", CATEGORIES["capsule"][1])):
        with contextlib.suppress(registry.CheckpointError, OSError, KeyError):
            parts.append(f"{label} {registry.load_card(name)['metrics']['image_auroc']:.3f}")
    return "capsule image AUROC " + ", ".join(parts) + f" (report {REPORT_AUROC})" if parts else "ready"


def api_examples() -> dict[str, list[tuple]]:
    """Three different requests per public endpoint (benchmarks/load.py, tests/test_load.py): the first three
    defective capsule examples; three seeds of a four-sample grid."""
    defective = [s for s in example_samples("capsule") if s.is_anomalous][:3]
    found = {"/maf_sample": [("capsule", 4, 0.8, seed, False) for seed in range(3)]}
    if len(defective) == 3:
        found["/maf"] = [("capsule", str(s.path), str(s.mask_path) if s.mask_path else None) for s in defective]
    return found


# ---- thin adapters (the only place with gr.Error) ----
def _models(category: str) -> tuple[PixelMAF, FeatureFlow]:
    if category not in CATEGORIES:
        raise gr.Error(f"Unknown category {category!r}; pick one of {', '.join(CATEGORIES)}.")
    try:
        return tuple(load_model(name) for name in CATEGORIES[category])
    except registry.CheckpointError as error:
        raise gr.Error(str(error)) from error


def _sample(category, count, temperature, seed, naive, progress=gr.Progress()):
    if not 1 <= int(count) <= 16:
        raise gr.Error("Number of samples must be between 1 and 16.")
    if not 0 <= float(temperature) <= 1.5:
        raise gr.Error("Temperature must be between 0 and 1.5.")
    model = _models(category)[0]
    result = sample_grid(model, int(count), float(temperature), int(seed), bool(naive), progress)
    dims = model.dim
    text = (f"**{result.seconds_per_sample:.3f} s per exact sample** (degree-ordered incremental inversion, {model.config.blocks} blocks × "
            f"D = {dims:,}, one CPU thread) vs the report's **{REPORT_SECONDS_PER_SAMPLE:,.0f} s** per 128 px sample (D = 49,152, naive).")
    if result.naive_seconds_per_sample is not None:
        text += (f" The naive sampler (D full MADE passes per block) took {result.naive_seconds_per_sample:.3f} s per sample here, "
                 f"{result.naive_seconds_per_sample / max(result.seconds_per_sample, 1e-9):.0f}× slower, for the same images "
                 f"(largest pixel difference {result.max_difference:.1e}).")
    real = training_images(category, 8, model.config.image_size)
    return result.grid, (tile(real) if real is not None else None), text


def _analyse(category, path, mask_path):
    if not path:
        raise gr.Error("Upload a photo or pick a test image from the gallery.")
    try:
        image = read_image(path)
    except UploadError as error:
        raise gr.Error(str(error)) from error
    pixel_model, feature_model = _models(category)
    scored = score_image(pixel_model, feature_model, image)
    size = scored.image.shape[0]
    feature_heat = heat_overlay(scored.image, scored.feature_map, low=0.0, high=max(2 * scored.feature_threshold, 1e-3))
    pixel_low = float(np.percentile(scored.pixel_map, 50))
    pixel_heat = heat_overlay(scored.image, scored.pixel_map, low=pixel_low, high=float(scored.pixel_map.max()))
    verdict = lambda flag: "**defective**" if flag else "**good**"  # noqa: E731
    text = (f"Feature flow: score {scored.feature_score:.3f} (threshold {scored.feature_threshold:.3f}) → {verdict(scored.feature_anomalous)}. "
            f"Pixel MAF: {scored.pixel_bits_per_dim:.4f} bits/dim, S(x) = −log p(x) (threshold {scored.pixel_threshold:.4f}) → "
            f"{verdict(scored.pixel_anomalous)}.")
    pixel_name, feature_name = CATEGORIES[category]
    figures = (rendered(histogram_figure(results(feature_name), scored.feature_score, scored.feature_threshold, "feature flow score")),
               rendered(histogram_figure(results(pixel_name), scored.pixel_bits_per_dim, scored.pixel_threshold, "pixel MAF bits/dim (report's Fig 1.4)")))
    truth = mask_image(mask_path, size) if mask_path else None
    return scored.image, feature_heat, pixel_heat, truth, text, *figures


def _inspect(category, path):
    if not path:
        raise gr.Error("Upload a photo or pick a test image from the gallery.")
    try:
        image = read_image(path)
    except UploadError as error:
        raise gr.Error(str(error)) from error
    latent = inspect_latent(_models(category)[0], image)
    text = (f"Round trip: max |f⁻¹(f(x)) − x| = **{latent.round_trip_error:.1e}** in logit space: the flow is invertible, so "
            "a 'reconstruction error' is ≈ 0 for any image, defective or not, and only the likelihood can score it.")
    return np.asarray(Image.fromarray(latent.z_image).resize((256, 256), Image.Resampling.NEAREST)), rendered(latent_histogram(latent.z)), text


def _gallery(category):
    samples = example_samples(category)
    items = [(str(s.path), s.name) for s in samples]
    note = "" if samples else f"*{examples.NO_DATA_NOTE}*"
    return gr.update(value=items, selected_index=None), note


def _pick(category, event: gr.SelectData):
    sample = example_samples(category)[event.index]
    return str(sample.path), str(sample.mask_path) if sample.mask_path else None


def _category_panels(category):
    pixel_name, feature_name = CATEGORIES[category]
    curves = cards.plot_curves(pixel_name, {"pixel MAF (bits/dim)": ["train_bits_per_dim", "validation_bits_per_dim"]})
    feature_curves = cards.plot_curves(feature_name, {"feature flow (NLL per channel, nats)": ["train_nll", "validation_nll"]})
    summary = cards.card_summary(pixel_name) + "\n\n" + cards.card_summary(feature_name)
    return results_table(category), roc_figure({"pixel MAF": results(pixel_name), "feature flow": results(feature_name)}), summary, curves, feature_curves


def _opened():
    """The tab's first view: capsule's gallery, the first defective example analysed, tables and curves."""
    category = "capsule"
    gallery_update, note = _gallery(category)
    samples = example_samples(category)
    first = next((s for s in samples if s.is_anomalous), samples[0] if samples else None)
    analysed = [None] * 4 + [""] + [None, None]
    path = mask = None
    if first is not None:
        path, mask = str(first.path), str(first.mask_path) if first.mask_path else None
        analysed = list(_analyse(category, path, mask))
    return (gallery_update, note, path, mask, *analysed, *_category_panels(category))


def build() -> serving.OnOpen:
    gr.Markdown(f"## {TITLE}\nA Masked Autoregressive Flow learns the density of good capsule images; −log p(x) is the "
                "anomaly score (the course report), and its exact samples take a fraction of a second instead of the report's "
                "28 minutes. A second flow on pretrained features scores every position, which localises defects.\n\n" + ABOUT.markdown())
    for name in categories():  # the example files are registered now, so the app may serve them (allowed_paths at launch)
        example_samples(name)
    category = gr.Radio(categories(), value="capsule", label="MVTec AD category")
    with gr.Tab("Anomaly detection"):
        with gr.Row():
            with gr.Column(scale=1):
                gallery = gr.Gallery(label="Test images, grouped by type (click one)", columns=4, height=260, allow_preview=False)
                note = gr.Markdown()
                upload = gr.File(label="Or upload a photo (PNG / JPG)", file_types=["image"], elem_id="maf-upload")
                mask_file = gr.File(label="Ground-truth mask (optional)", file_types=["image"])
                run = gr.Button("Score", variant="primary")
            with gr.Column(scale=2):
                with gr.Row():
                    shown = gr.Image(label="Input (256 px)", height=230)
                    feature_heat = gr.Image(label="Feature-flow anomaly map", height=230)
                    pixel_heat = gr.Image(label="Pixel MAF −log p per pixel (32 px)", height=230)
                    truth = gr.Image(label="Ground-truth mask", height=230)
                verdict = gr.Markdown()
                with gr.Row():
                    feature_histogram = gr.Image(label="Feature flow: where this image falls", height=300)
                    pixel_histogram = gr.Image(label="Pixel MAF: where this image falls", height=300)
        with gr.Accordion("Latent inspector: z = f(x) and the exact round trip", open=False):
            inspect_button = gr.Button("Inspect the latent of this image")
            with gr.Row():
                latent_image = gr.Image(label="z at each pixel (−3 black … 3 white)", height=230)
                latent_plot = gr.Image(label="z against N(0, 1)", height=230)
            latent_text = gr.Markdown()
    with gr.Tab("Sampling"):
        with gr.Row():
            count = gr.Slider(1, 16, value=8, step=1, label="Number of samples")
            temperature = gr.Slider(0.0, 1.2, value=0.8, step=0.05, label="Temperature T (z ~ N(0, T²I))")
            seed = gr.Number(value=0, precision=0, label="Seed")
            naive = gr.Checkbox(value=False, label="Also run the naive sampler (D passes per block) and compare")
        sample_button = gr.Button("Sample", variant="primary")
        with gr.Row():
            samples = gr.Image(label="Exact MAF samples (32 px luma, enlarged)", height=300)
            real = gr.Image(label="Real good training images, as the model sees them", height=300)
        timing = gr.Markdown()
    with gr.Accordion("Report vs ours, ROC, training cards and curves", open=True):
        with gr.Row():
            table = gr.Markdown()
            roc = gr.Plot(label="ROC")
        summary = gr.Markdown()
        with gr.Row():
            curves = gr.Plot(label="pixel MAF training curves")
            feature_curves = gr.Plot(label="feature flow training curves")

    analyse_inputs, analyse_outputs = [category, upload, mask_file], [shown, feature_heat, pixel_heat, truth, verdict, feature_histogram, pixel_histogram]
    analyse_event = serving.model_event("maf")
    gallery.select(_pick, category, [upload, mask_file], **serving.internal_event()).then(_analyse, analyse_inputs, analyse_outputs, **analyse_event)
    upload.upload(lambda: None, None, mask_file, **serving.internal_event()).then(_analyse, analyse_inputs, analyse_outputs, **analyse_event)
    mask_file.upload(_analyse, analyse_inputs, analyse_outputs, **analyse_event)
    run.click(_analyse, analyse_inputs, analyse_outputs, **serving.model_event("maf", "maf"))
    inspect_button.click(_inspect, [category, upload], [latent_image, latent_plot, latent_text], **analyse_event)
    sample_button.click(_sample, [category, count, temperature, seed, naive], [samples, real, timing], **serving.model_event("maf", "maf_sample"))
    panels = [table, roc, summary, curves, feature_curves]
    category.change(_gallery, category, [gallery, note], **serving.internal_event()).then(_category_panels, category, panels, **serving.internal_event())
    return serving.OnOpen(_opened, [gallery, note, upload, mask_file, *analyse_outputs, *panels])


if __name__ == "__main__":
    import sys

    serving.run_alone(sys.modules[__name__])
