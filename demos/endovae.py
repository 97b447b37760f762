"""Endoscopy VAE tab: EndoVAE generates and reconstructs Kvasir-SEG polyp frames; a VAE of normal mucosa maps polyps.

Diamantis, Gatoula & Iakovidis, "EndoVAE: Generating Endoscopic Images with a Variational Autoencoder", IEEE IVMSP
2022; the course report of ../shared/specs/pixelda-endovae.md part B. Kvasir-SEG: Jha et al., MMM 2020.

Run alone: `python -m demos.endovae`.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image
from scipy import ndimage

from demos import cards, examples, serving
from demos.kit import About, Metric, metrics_table
from demos.uploads import UploadError, image_upload, read_image
from models import registry
from models.endovae import EndoVAE, anomaly_map, describe_map, patch_scores, prepare_image, prepare_mask, psnr, ssim, to_batch
from nndl_data import DatasetMissing
from nndl_data.endovae import image_paths

TITLE = "Endoscopy VAE (EndoVAE)"
MODELS = {
    "Report / paper EndoVAE (96 px resize, latent 6)": "endovae-report",
    "Better variant (centre crop, 8×12×12 latent)": "endovae-better",
}
ANOMALY = "endovae-normal"
CHECKPOINTS = ["endovae-report", "endovae-better", "endovae-normal"]
ASSETS = Path(__file__).resolve().parent / "assets" / "endovae"
EXAMPLE_COUNT = 6
DISPLAY = 192  # 96/128 px images shown enlarged

HEADLINE = [
    Metric("PSNR on test, report's model (dB)", "endovae-report", "test.psnr.mean", report="28.33 (on frames it trained on)", percent=False),
    Metric("PSNR on train, report's model (dB)", "endovae-report", "train.psnr.mean", report="28.33", percent=False),
    Metric("SSIM on test, report's model", "endovae-report", "test.ssim.mean", report="0.793 (trained-on frames)", percent=False),
    Metric("PSNR on test, better variant (dB)", "endovae-better", "test.psnr.mean", report="–", percent=False),
    Metric("SSIM on test, better variant", "endovae-better", "test.ssim.mean", report="–", percent=False),
    Metric("polyp pixel AUROC, normal-mucosa model", ANOMALY, "test.pixel_auroc", report="not measured", percent=False),
    Metric("polyp pixel AUPRC", ANOMALY, "test.pixel_auprc", report="not measured", percent=False),
    Metric("polyp vs polyp-free patch AUROC", ANOMALY, "test.patch_auroc", report="not measured", percent=False),
    Metric("Dice at the validation threshold", ANOMALY, "test.dice", report="not measured", percent=False),
    Metric("pixel AUROC of no model (centre prior)", ANOMALY, "test.no_model_centre_prior.pixel_auroc", report="–", percent=False),
]
ABOUT = About(
    citation="Diamantis, Gatoula & Iakovidis, *EndoVAE: Generating Endoscopic Images with a Variational Autoencoder*, "
             "IEEE IVMSP Workshop 2022 (the architecture, 96 px, 6-d latent); Kingma & Welling, *Auto-Encoding Variational Bayes*, ICLR 2014.",
    dataset="Kvasir-SEG: Jha, Smedsrud, Riegler, Halvorsen, de Lange, Johansen & Johansen, *Kvasir-SEG: A Segmented Polyp "
            "Dataset*, MultiMedia Modeling 2020 (Simula; free for research and educational use, cite the paper; 128 px copy, "
            "700 / 200 / 100 train / valid / test frames). The Kvasir v1 *normal* classes the report trained on are not "
            "available here. Research and education only; not a medical device.",
)


@serving.load_once
def load_model(name: str) -> EndoVAE:
    """Shared by all requests: every function here only reads the model (z = μ, no hooks, no mode changes)."""
    return registry.load(name)


@functools.cache
def example_frames(count: int = EXAMPLE_COUNT) -> list[tuple[str, str]]:
    """(frame, mask) paths: the first `count` test frames of the data root, else the copies in demos/assets/endovae."""
    pairs = []
    with contextlib.suppress(DatasetMissing):
        pairs = [(str(image), str(mask)) for image, mask in image_paths("test")[:count]]
    if not pairs:
        pairs = [(str(image), str(ASSETS / f"{image.stem}_mask.png")) for image in sorted(ASSETS.glob("*.jpg"))][:count]
    examples.shown([path for pair in pairs for path in pair])
    return pairs


# ---- pure functions ----


def to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def enlarge(image: np.ndarray, size: int = DISPLAY) -> np.ndarray:
    array = to_uint8(image) if image.dtype != np.uint8 else image
    return np.asarray(Image.fromarray(array).resize((size, size), Image.NEAREST))


def heat(values: np.ndarray, top: float) -> np.ndarray:
    """Values in [0, top] as an inferno heat map, uint8 RGB."""
    return to_uint8(colormaps["inferno"](np.clip(values / max(top, 1e-8), 0, 1))[..., :3])


def grid(images: torch.Tensor, columns: int) -> np.ndarray:
    """(N, 3, S, S) in [0, 1] → one uint8 image, `columns` per row, 2 px gaps."""
    count, _, size, _ = images.shape
    rows = -(-count // columns)
    canvas = np.full((rows * (size + 2) - 2, columns * (size + 2) - 2, 3), 255, np.uint8)
    for index, image in enumerate(images.permute(0, 2, 3, 1).numpy()):
        row, column = divmod(index, columns)
        canvas[row * (size + 2) : row * (size + 2) + size, column * (size + 2) : column * (size + 2) + size] = to_uint8(image)
    return canvas


@torch.inference_mode()
def generate(model: EndoVAE, temperature: float, seed: int, count: int = 9) -> np.ndarray:
    """A grid of decoded z ~ N(0, T²I) (the report's Fig. 2.5 is T = 1, nine images); its own generator, so two
    requests never share a random stream."""
    generator = torch.Generator().manual_seed(int(seed))
    z = torch.randn(count, *model.latent_shape(), generator=generator) * float(temperature)
    return grid(model.decode(z), columns=3)


@torch.inference_mode()
def decode_values(model: EndoVAE, values) -> np.ndarray:
    """The six sliders' z (a flat 6-d model) → one decoded image."""
    z = torch.tensor([float(v) for v in values], dtype=torch.float32)[None]  # (1, 6)
    return to_uint8(model.decode(z)[0].permute(1, 2, 0).numpy())


@torch.inference_mode()
def traversal(model: EndoVAE, values, span: float = 3.0, steps: int = 7) -> np.ndarray:
    """One row per latent dimension: that dimension swept over [−span, span], the others at `values`."""
    base = torch.tensor([float(v) for v in values], dtype=torch.float32)
    sweep = torch.linspace(-span, span, steps)
    z = base.repeat(len(base) * steps, 1)  # (dims·steps, dims)
    for dimension in range(len(base)):
        z[dimension * steps : (dimension + 1) * steps, dimension] = sweep
    return grid(model.decode(z), columns=steps)


@torch.inference_mode()
def interpolate(model: EndoVAE, first: Image.Image, second: Image.Image, steps: int = 8) -> np.ndarray:
    """Decoded (1 − t)·μ(first) + t·μ(second) for t from 0 to 1, between the two inputs as the model sees them."""
    x = torch.cat([to_batch(prepare_image(image, model.config)) for image in (first, second)])
    mu, _ = model.encode(x)
    t = torch.linspace(0, 1, steps).view(-1, *([1] * (mu.dim() - 1)))
    path = model.decode((1 - t) * mu[:1] + t * mu[1:])
    return grid(torch.cat([x[:1], path, x[1:]]), columns=steps + 2)


@dataclass
class Reconstruction:
    original: np.ndarray  # (S, S, 3) in [0, 1], what the model saw
    reconstruction: np.ndarray
    error: np.ndarray  # (S, S): root of the squared error summed over channels
    psnr: float
    ssim: float


@torch.inference_mode()
def reconstruct(model: EndoVAE, image: Image.Image) -> Reconstruction:
    """Any frame → the model's preprocessing, x̂ with z = μ, the error map and PSNR / SSIM (data range 1)."""
    x = to_batch(prepare_image(image, model.config))  # (1, 3, S, S)
    x_hat = model.reconstruct(x)
    error = (x - x_hat).pow(2).sum(1).sqrt()[0]  # (S, S)
    return Reconstruction(x[0].permute(1, 2, 0).numpy(), x_hat[0].permute(1, 2, 0).numpy(), error.numpy(),
                          float(psnr(x_hat, x)), float(ssim(x_hat, x)))


@dataclass
class Anomaly:
    frame: np.ndarray  # (S, S, 3) in [0, 1]
    reconstruction: np.ndarray
    error: np.ndarray  # (S, S): the anomaly map (models.endovae.anomaly_map, the evaluation's map)
    prediction: np.ndarray  # bool: error > the validation pixel threshold
    mask: np.ndarray | None
    max_patch_score: float
    polyp_found: bool  # the highest patch score is above the validation patch threshold
    dice: float | None


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    total = prediction.sum() + truth.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(prediction, truth).sum() / total)


@torch.inference_mode()
def detect(model: EndoVAE, image: Image.Image, mask: Image.Image | None = None) -> Anomaly:
    """The normal-mucosa model over a whole frame (its frame size): error map, thresholded map, patch verdict."""
    size = model.config.frame_size or model.config.image_size
    x = to_batch(prepare_image(image, model.config, size))
    reconstruction, error = anomaly_map(model, x)  # the evaluation's map, with the settings chosen on valid
    scores = patch_scores(error, model.config.image_size, model.config.patch_stride)
    error = error[0, 0].numpy()
    prediction = error > float(model.pixel_threshold)
    truth = prepare_mask(mask, model.config, size) if mask is not None else None
    top = float(scores.max())
    return Anomaly(x[0].permute(1, 2, 0).numpy(), reconstruction[0].permute(1, 2, 0).numpy(), error, prediction, truth, top,
                   top > float(model.patch_threshold), dice(prediction, truth) if truth is not None else None)


def overlay(anomaly: Anomaly, top: float) -> np.ndarray:
    """The frame with the error heat map blended in, the thresholded region outlined in cyan and the true polyp
    outlined in green."""
    blended = 0.55 * to_uint8(anomaly.frame).astype(float) + 0.45 * heat(anomaly.error, top).astype(float)
    out = blended.astype(np.uint8)
    edge = anomaly.prediction & ~ndimage.binary_erosion(anomaly.prediction)
    out[edge] = (0, 255, 255)
    if anomaly.mask is not None:
        outline = anomaly.mask & ~ndimage.binary_erosion(anomaly.mask, iterations=1)
        out[outline] = (0, 255, 0)
    return out


def histogram_figure(metrics: dict, threshold: float, score: float | None):
    """Test patch scores of polyp vs polyp-free patches (from the card), the validation threshold, this frame."""
    figure = cards.new_figure((5.2, 3.0))
    axis = figure.subplots()
    histogram = metrics.get("patch_histogram")
    if histogram:
        edges = np.asarray(histogram["edges"])
        for key, colour in (("polyp_free", "tab:blue"), ("polyp", "tab:red")):
            counts = np.asarray(histogram[key], float)
            axis.stairs(counts / max(counts.sum(), 1), edges, fill=True, alpha=0.45, color=colour, label=key.replace("_", "-") + " test patches")
    axis.axvline(threshold, color="black", linestyle="--", label="threshold (valid split)")
    if score is not None:
        axis.axvline(score, color="tab:green", linewidth=2.5, label="this frame's highest patch")
    axis.set_xlabel("mean anomaly score of a patch")
    axis.set_ylabel("share of patches")
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=7)
    return figure


def roc_figure(metrics: dict, anomaly: Anomaly | None = None):
    """The pixel ROC over all test frames (from the card) and, when its mask is known, this frame's."""
    figure = cards.new_figure((3.6, 3.0))
    axis = figure.subplots()
    roc = metrics.get("roc")
    if roc:
        axis.plot(roc["fpr"], roc["tpr"], label=f"test pixels, AUROC {metrics.get('pixel_auroc', float('nan')):.3f}")
    if anomaly is not None and anomaly.mask is not None and anomaly.mask.any() and not anomaly.mask.all():
        from sklearn.metrics import roc_auc_score, roc_curve

        fpr, tpr, _ = roc_curve(anomaly.mask.ravel(), anomaly.error.ravel())
        axis.plot(fpr, tpr, label=f"this frame, AUROC {roc_auc_score(anomaly.mask.ravel(), anomaly.error.ravel()):.3f}")
    axis.plot([0, 1], [0, 1], color="gray", linestyle=":")
    axis.set_xlabel("false-positive rate")
    axis.set_ylabel("true-positive rate")
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=7, loc="lower right")
    return figure


def preprocessing(image: Image.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The upload as it is, the report's direct resize to 96 px, and the better variant's centre crop."""
    from models.endovae import EndoVAEConfig

    report = prepare_image(image, EndoVAEConfig(preprocess="resize"))
    better = prepare_image(image, EndoVAEConfig(preprocess="crop", crop_fraction=0.75))
    original = np.asarray(image.convert("RGB"))
    return original, enlarge(report), enlarge(better)


def card_metrics(name: str) -> dict:
    with contextlib.suppress(registry.CheckpointError, OSError, ValueError):
        return registry.load_card(name).get("metrics", {})
    return {}


def results_markdown() -> str:
    report, better = card_metrics("endovae-report"), card_metrics("endovae-better")

    def row(label, metrics, split):
        part = metrics.get(split, {})
        if not part:
            return f"| {label} | {split} | – | – |"
        return (f"| {label} | {split} | {part['psnr']['mean']:.2f} ± {part['psnr']['sd']:.2f} | "
                f"{part['ssim']['mean']:.3f} ± {part['ssim']['sd']:.3f} |")

    lines = ["| model | frames | PSNR (dB), mean ± sd | SSIM, mean ± sd |", "|---|---|---|---|",
             "| report: normal + polyp model | 50 polyp frames it trained on | 28.33 | 0.793 |",
             "| report: normal-only model | 50 polyp frames | 17.56 | 0.455 |"]
    for label, metrics in (("ours: report's EndoVAE (latent 6)", report), ("ours: better variant", better)):
        lines += [row(label, metrics, "train"), row(label, metrics, "test")]
    return ("\n".join(lines) + "\n\n" + metrics_table(HEADLINE) +
            "\n\nPSNR: data range 1, per frame, then averaged. " + (report or better).get("ssim_settings", "") +
            ". Reconstructions use z = μ (the report sampled z). The report's model and ours are not trained on the same frames "
            "(it had Kvasir v1 normal + polyp frames and no split; ours: the 700 Kvasir-SEG train frames), and the better "
            "variant sees a centre crop (fewer black corners) where the report's model sees the whole frame resized.")


# ---- thin adapters (the only place with gr.Error) ----


def _model(label: str) -> EndoVAE:
    name = MODELS.get(label, label)
    try:
        return load_model(name)
    except registry.CheckpointError as error:
        raise gr.Error(str(error)) from error


def _image(path) -> Image.Image:
    if not path:
        raise gr.Error("Upload an endoscopy frame (any size; PNG, JPEG, WebP, BMP, TIFF) or pick a test frame.")
    try:
        return read_image(path)
    except UploadError as error:
        raise gr.Error(str(error)) from error


def _mask(path, image: Image.Image) -> Image.Image | None:
    if not path:
        return None
    try:
        mask = read_image(path, mode="L")
    except UploadError as error:
        raise gr.Error(f"The mask: {error}") from error
    if mask.size != image.size:
        raise gr.Error(f"The mask is {mask.size[0]}×{mask.size[1]} but the frame is {image.size[0]}×{image.size[1]}; they must match.")
    return mask


def _reconstruct(path, model_label):
    result = reconstruct(_model(model_label), _image(path))
    top = max(float(np.quantile(result.error, 0.99)), 0.05)
    text = (f"**PSNR {result.psnr:.2f} dB, SSIM {result.ssim:.3f}** (z = μ, data range 1). "
            f"Error map: √Σ(x − x̂)² over the colour channels, inferno from 0 to {top:.2f}.")
    return enlarge(result.original), enlarge(result.reconstruction), enlarge(heat(result.error, top)), text


def _detect(path, mask_path):
    image = _image(path)
    model = _model(ANOMALY)
    result = detect(model, image, _mask(mask_path, image))
    metrics = card_metrics(ANOMALY).get("test", {})
    threshold = float(model.patch_threshold)
    verdict = ("**Polyp-like region found**" if result.polyp_found else "**Nothing above the threshold**") + (
        f": highest patch score {result.max_patch_score:.4f} against {threshold:.4f} (chosen on the valid split); "
        f"{100 * result.prediction.mean():.1f} % of the pixels above the pixel threshold {float(model.pixel_threshold):.4f}.")
    verdict += f" Dice against the polyp mask: **{result.dice:.3f}**." if result.dice is not None else " No mask for this frame."
    verdict += f" Map: {describe_map(model.config)}."
    top = max(2 * float(model.pixel_threshold), 1e-3)
    return (enlarge(overlay(result, top)), enlarge(heat(result.error, top)), enlarge(result.reconstruction), verdict,
            histogram_figure(metrics, threshold, result.max_patch_score), roc_figure(metrics, result))


def _preprocessing(path):
    return preprocessing(_image(path))


def _analyse(path, mask_path, model_label):
    return (*_reconstruct(path, model_label), *_detect(path, mask_path), *_preprocessing(path))


def _generate(model_label, temperature, seed):
    return enlarge(generate(_model(model_label), float(temperature), int(seed)), 3 * DISPLAY)


def _decode(*values):
    return enlarge(decode_values(_model("endovae-report"), values))


def _traverse(*values):
    return traversal(_model("endovae-report"), values)


def _interpolate(model_label, first, second):
    frames = dict(example_frames())
    names = {Path(image).stem: image for image in frames}
    if first not in names or second not in names:
        raise gr.Error("Pick two test frames.")
    model = _model(model_label)
    return interpolate(model, _image(names[first]), _image(names[second]))


def _pick_example(event: gr.SelectData):
    image, mask = example_frames()[event.index]
    return image, mask


def _clear_mask():
    return None


def _opened():
    frames = example_frames()
    first_model = next(iter(MODELS))
    panels = [None] * 3 + [""] + [None] * 3 + [""] + [None] * 2 + [None] * 3
    if frames:
        panels = list(_analyse(frames[0][0], frames[0][1], first_model))
    curves = cards.plot_curves("endovae-report", {"training loss (per frame)": ["loss", "reconstruction"], "KL (nats)": ["kl"],
                                                   "validation PSNR (dB)": ["validation_psnr"]})
    return (*panels, _generate(first_model, 1.0, 0), _decode(*[0.0] * 6), _traverse(*[0.0] * 6), results_markdown(),
            cards.card_summary("endovae-report") + "\n\n" + cards.card_summary("endovae-better") + "\n\n" + cards.card_summary(ANOMALY), curves)


def build() -> serving.OnOpen:
    frames = example_frames()
    names = [Path(image).stem for image, _ in frames]
    gr.Markdown(f"## {TITLE}\nA convolutional VAE with the paper's 6-number latent generates and reconstructs polyp frames; "
                "a VAE of *normal mucosa*, trained only on polyp-free patches of training frames, fails to reconstruct polyps, "
                "so its error marks them. " + ABOUT.markdown())
    with gr.Row():
        with gr.Column(scale=1):
            gallery = gr.Gallery(value=[(image, Path(image).stem) for image, _ in frames], label="Kvasir-SEG test frames",
                                 columns=3, height=220, allow_preview=False)
            if not frames:
                gr.Markdown(f"*{examples.NO_DATA_NOTE}*")
            upload = image_upload(label="Endoscopy frame (any size)", sources=["upload", "clipboard"], height=220,
                                  value=frames[0][0] if frames else None, elem_id="endovae-upload")
            mask = image_upload(label="Polyp mask (optional; filled when you pick a test frame)", sources=["upload"], height=120,
                                value=frames[0][1] if frames else None, elem_id="endovae-mask")
            model = gr.Dropdown(list(MODELS), value=next(iter(MODELS)), label="Reconstruction model")
            run = gr.Button("Reconstruct and detect", variant="primary")
        with gr.Column(scale=2):
            with gr.Tabs():
                with gr.Tab("Reconstruct"):
                    with gr.Row():
                        original = gr.Image(label="Input as the model sees it", height=DISPLAY)
                        reconstruction = gr.Image(label="Reconstruction (z = μ)", height=DISPLAY)
                        error = gr.Image(label="Error heat map", height=DISPLAY)
                    scores = gr.Markdown()
                with gr.Tab("Anomaly (normal-mucosa model)"):
                    with gr.Row():
                        overlaid = gr.Image(label="Error over the frame (cyan: above threshold, green: true polyp)", height=DISPLAY)
                        anomaly_error = gr.Image(label="Anomaly map (error unusual for its place)", height=DISPLAY)
                        anomaly_reconstruction = gr.Image(label="Normal-mucosa reconstruction", height=DISPLAY)
                    verdict = gr.Markdown()
                    with gr.Row():
                        histogram = gr.Plot(label="Patch scores: polyp vs polyp-free (test)")
                        roc = gr.Plot(label="ROC")
                with gr.Tab("Preprocessing"):
                    gr.Markdown("The report resizes the whole frame to 96×96 (a non-square frame is distorted; the black "
                                "corners and overlays stay in); the better variant takes the centre square (¾ of the shorter side) instead.")
                    with gr.Row():
                        before = gr.Image(label="Upload as it is", height=DISPLAY)
                        report_view = gr.Image(label="Report: direct resize to 96 px", height=DISPLAY)
                        crop_view = gr.Image(label="Better: centre crop, 96 px", height=DISPLAY)
    with gr.Accordion("Generate: samples, latent sliders, traversal, interpolation", open=True):
        with gr.Row():
            with gr.Column(scale=1):
                generate_model = gr.Dropdown(list(MODELS), value=next(iter(MODELS)), label="Model")
                temperature = gr.Slider(0, 2, value=1.0, step=0.05, label="Temperature T (z ~ N(0, T²I))")
                seed = gr.Number(value=0, precision=0, label="Seed")
                sample = gr.Button("Sample 9")
            samples = gr.Image(label="Decoded samples", height=3 * DISPLAY // 2 + 100, scale=2)
        gr.Markdown("**The report model's six latent numbers** (decoded as you move them) and a traversal: row *i* sweeps z*i* from −3 to 3.")
        with gr.Row():
            with gr.Column(scale=1):
                sliders = [gr.Slider(-3, 3, value=0.0, step=0.1, label=f"z{index + 1}") for index in range(6)]
            decoded = gr.Image(label="Decoded z", height=DISPLAY, scale=1)
            traversed = gr.Image(label="Traversal (rows: z1 … z6)", height=2 * DISPLAY, scale=2)
        with gr.Row():
            first = gr.Dropdown(names, value=names[0] if names else None, label="From test frame")
            second = gr.Dropdown(names, value=names[1] if len(names) > 1 else None, label="To test frame")
            interpolate_button = gr.Button("Interpolate μ")
        interpolation = gr.Image(label="Input, 8 decoded steps between the two μ, input")
    with gr.Accordion("Report vs ours, cards and training curves", open=True):
        results = gr.Markdown()
        summary = gr.Markdown()
        curves = gr.Plot(label="training curves, report's model")

    reconstruct_outputs = [original, reconstruction, error, scores]
    detect_outputs = [overlaid, anomaly_error, anomaly_reconstruction, verdict, histogram, roc]
    preprocessing_outputs = [before, report_view, crop_view]
    everything = reconstruct_outputs + detect_outputs + preprocessing_outputs
    event = serving.model_event("endovae")
    gallery.select(_pick_example, None, [upload, mask], **serving.internal_event()).then(_analyse, [upload, mask, model], everything, **event)
    upload.upload(_clear_mask, None, mask, **serving.internal_event()).then(_analyse, [upload, mask, model], everything, **event)
    mask.upload(_detect, [upload, mask], detect_outputs, **event)
    run.click(_reconstruct, [upload, model], reconstruct_outputs, **serving.model_event("endovae", "endovae")).then(
        _detect, [upload, mask], detect_outputs, **serving.model_event("endovae", "endovae_anomaly")).then(
        _preprocessing, upload, preprocessing_outputs, **serving.model_event("endovae", "endovae_preprocessing"))
    model.change(_reconstruct, [upload, model], reconstruct_outputs, **event)
    sample.click(_generate, [generate_model, temperature, seed], samples, **serving.model_event("endovae", "endovae_generate"))
    temperature.release(_generate, [generate_model, temperature, seed], samples, **event)
    generate_model.change(_generate, [generate_model, temperature, seed], samples, **event)
    for slider in sliders:
        slider.change(_decode, sliders, decoded, trigger_mode="always_last", show_progress="hidden", **event)
        slider.release(_traverse, sliders, traversed, **event)
    interpolate_button.click(_interpolate, [generate_model, first, second], interpolation, **serving.model_event("endovae", "endovae_interpolate"))
    return serving.OnOpen(_opened, [*everything, samples, decoded, traversed, results, summary, curves])


if __name__ == "__main__":
    import sys

    serving.run_alone(sys.modules[__name__])
