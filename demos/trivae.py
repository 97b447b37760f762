"""Brain-tumour residual maps: a VAE / Tri-VAE trained on tumour-free MRI slices "heals" a tumour, so |x − x̂|
thresholded is a tumour mask (Wijanarko et al., Tri-VAE, CVPR 2024 Workshops; the course report of
../shared/specs/trivae-advgan.md part A, retrained on the LGG FLAIR slices here).

Run alone: `python -m demos.trivae`.
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

from demos import cards, examples, serving
from demos.uploads import UploadError, read_image
from models import registry
from models.trivae import TriVAE, anomaly_maps, brain_mask, dice, prepare_slice
from nndl_data import DatasetMissing, dataset_dir
from nndl_data.trivae import (BASELINE_FILE, BRATS_SLICES, LGG, VolumeError, add_noise, axial_slice, foreground_fraction, lgg_patients, read_volume,
                                  simplex_noise_report, split_patients)

TITLE = "Brain-tumour residual maps (VAE / Tri-VAE)"
MODELS = {
    "Simple VAE (report §1-2)": "trivae-vae",
    "Tri-VAE, coarse noise": "trivae-trivae-coarse",
    "Tri-VAE, simplex noise (bonus)": "trivae-trivae-simplex",
    "Denoising VAE, coarse noise (ablation)": "trivae-vae-coarse",
}
CHECKPOINTS = ["trivae-vae", "trivae-trivae-coarse", "trivae-trivae-simplex"]
ASSETS = examples.assets("trivae")  # a few test slices in the data root's layout, for a Space (no data root)
REPORT_DICE = {"trivae-vae": 0.2859, "trivae-trivae-coarse": 0.4791, "trivae-trivae-simplex": 0.5081}
CITATION = (
    "Data: LGG FLAIR slices (Buda et al., *Computers in Biology and Medicine* 2019; Mazurowski et al. 2017; TCGA-LGG), "
    "BraTS 2021 slices (Baid et al. 2021), IXI (CC BY-SA 3.0). Research/education use; not a medical device."
)


def _tumour_pixels(mask_path: Path) -> int:
    with Image.open(mask_path) as mask:
        return int(np.count_nonzero(np.asarray(mask)))


@functools.cache
def example_slices(lgg_tumours: int = 4, brats: int = 2) -> list[tuple[str, str]]:
    """(image path, mask path) in the data root: the largest-tumour slice of each of the first `lgg_tumours` LGG test
    patients (the training split, seed 0), largest tumour first (the tab opens on the clearest case), the first
    `brats` BraTS 2021 slices, and the tumour-free slice of the first test patient with the most head in it.
    Whatever part of the data is missing is left out."""
    slices, healthy = [], []
    with contextlib.suppress(DatasetMissing):
        root = dataset_dir(LGG)
        for patient in split_patients(lgg_patients(), seed=0)["test"]:
            pairs = [(p, p.with_name(p.stem + "_mask.png")) for p in sorted((root / patient).glob("*.png")) if not p.stem.endswith("_mask")]
            pairs = [pair for pair in pairs if pair[1].exists()]
            areas = [_tumour_pixels(mask) for _, mask in pairs]
            tumour_free = [pair for pair, area in zip(pairs, areas) if area == 0]
            if not healthy and tumour_free:
                healthy = [max(tumour_free, key=lambda pair: foreground_fraction(np.asarray(Image.open(pair[0]).convert("L"))))]
            if len(slices) < lgg_tumours and max(areas, default=0) > 0:
                slices.append((max(areas), pairs[int(np.argmax(areas))]))
            if len(slices) == lgg_tumours:
                break
        slices = [pair for _, pair in sorted(slices, key=lambda item: -item[0])]
    with contextlib.suppress(DatasetMissing):
        folder = dataset_dir(BRATS_SLICES)
        slices += [(p, folder / "masks" / p.name) for p in sorted((folder / "images").glob("*.png")) if (folder / "masks" / p.name).exists()][:brats]
    pairs = [(str(image), str(mask)) for image, mask in slices + healthy] or shipped_slices()
    examples.shown([path for pair in pairs for path in pair])
    return pairs


def shipped_slices() -> list[tuple[str, str]]:
    """Without the data root: the slices shipped in demos/assets/trivae (the ones the data root gives, in its layout),
    in the same order: LGG tumour slices, largest tumour first, the BraTS 2021 slices, the tumour-free LGG slice."""
    lgg = [(p, p.with_name(p.stem + "_mask.png")) for p in sorted((ASSETS / LGG).glob("*/*.png")) if not p.stem.endswith("_mask")]
    areas = [_tumour_pixels(mask) for _, mask in lgg]
    tumours = [pair for area, pair in sorted(zip(areas, lgg), key=lambda item: -item[0]) if area > 0]
    brats = [(p, ASSETS / BRATS_SLICES / "masks" / p.name) for p in sorted((ASSETS / BRATS_SLICES / "images").glob("*.png"))]
    healthy = [pair for area, pair in zip(areas, lgg) if area == 0]
    return [(str(image), str(mask)) for image, mask in tumours + brats + healthy]


@serving.load_once
def load_model(name: str = "trivae-trivae-coarse") -> TriVAE:
    """Shared by all requests: the residual maps and the noise playground only read it."""
    return registry.load(name)


def is_volume(path: str | Path) -> bool:
    name = str(path).lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


@functools.lru_cache(maxsize=4)
def _volume(path: str, modified: float) -> np.ndarray:
    return read_volume(path)  # decompressing a volume takes ~0.5 s: once per upload, not once per slider move


def _raw_slice(path: str | Path, slice_index: int | None) -> tuple[np.ndarray, int]:
    """A PNG/JPG (through read_image) or one axial slice of a NIfTI volume → (2-D array, number of slices)."""
    if is_volume(path):
        volume = _volume(str(path), Path(path).stat().st_mtime if Path(path).exists() else 0.0)
        index = volume.shape[2] // 2 if slice_index is None else int(slice_index)
        return axial_slice(volume, index), volume.shape[2]
    return np.asarray(read_image(path, mode="L")), 1


def read_slice(path, mask_path=None, slice_index: int | None = None, size: int = 128) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Upload(s) → (prepared image (size, size) in [0, 1], ground truth bool or None, number of slices).
    Raises UploadError / VolumeError with a message for the user."""
    raw, slices = _raw_slice(path, slice_index)
    truth = None
    if mask_path:
        truth, _ = _raw_slice(mask_path, slice_index)
        if truth.shape != raw.shape:
            raise UploadError(f"The mask is {truth.shape[1]}×{truth.shape[0]} but the image is {raw.shape[1]}×{raw.shape[0]}; they must match.")
    if raw.max() <= raw.min():
        raise UploadError("The slice is blank (a single value everywhere); pick another slice or image.")
    image, truth = prepare_slice(raw, truth, size)
    return image, truth, slices


@dataclass
class Analysis:
    image: np.ndarray  # (S, S) in [0, 1], what the model saw
    reconstruction: np.ndarray
    residual: np.ndarray  # |x − x̂| inside the brain mask, median-filtered when filter_size > 1
    brain: np.ndarray  # bool
    prediction: np.ndarray  # bool, residual > threshold
    truth: np.ndarray | None
    dice: float | None
    threshold: float


@torch.inference_mode()
def analyse(model: TriVAE, image: np.ndarray, truth: np.ndarray | None, threshold: float, filter_size: int) -> Analysis:
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]  # (1, 1, S, S)
    maps = anomaly_maps(model, x, filter_size=int(filter_size))
    residual = maps["residual_filtered"][0, 0].numpy()
    brain = maps["brain_mask"][0, 0].numpy()
    prediction = (residual > threshold) & brain
    return Analysis(image, maps["reconstruction"][0, 0].numpy(), residual, brain, prediction, truth,
                    dice(prediction, truth) if truth is not None else None, float(threshold))


def heat_map(residual: np.ndarray, top: float = 0.5) -> np.ndarray:
    return (colormaps["inferno"](np.clip(residual / top, 0, 1))[..., :3] * 255).astype(np.uint8)


def overlay(image: np.ndarray, prediction: np.ndarray, truth: np.ndarray | None = None) -> np.ndarray:
    """Gray slice with the predicted mask in red and the ground truth outline-free in green (yellow = both)."""
    rgb = np.repeat(image[..., None], 3, axis=2) * 0.75
    rgb[prediction, 0] = 1.0
    if truth is not None:
        rgb[truth, 1] = np.maximum(rgb[truth, 1], 0.8)
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def gray(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


@torch.inference_mode()
def noise_playground(model: TriVAE, image: np.ndarray, kind: str, sigma: float, grid: int, frequency_exponent: float,
                     seed: int, report_style: bool) -> dict[str, np.ndarray]:
    """The synthetic anomaly the Tri-VAE learns to remove: noised slice, the noise, the model's 'healed' output."""
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    generator = torch.Generator().manual_seed(int(seed))
    size = x.shape[-1]
    if report_style:  # the report: noise everywhere, clamp to [-1, 1]; simplex = the same min–max mask every time
        if kind == "simplex":
            noise = simplex_noise_report(size, frequency=2.0**frequency_exponent * 256 / size)[None, None]
        else:
            lattice = torch.randn(1, 1, int(grid), int(grid), generator=generator) * sigma
            noise = torch.nn.functional.interpolate(lattice, size=(size, size), mode="bilinear", align_corners=False)
        noised = (x + noise).clamp(-1, 1)
    else:
        options = {"grid": int(grid)} if kind == "coarse" else {"frequency": 2.0**frequency_exponent}
        noised, noise = add_noise(x, kind, sigma=sigma, foreground=brain_mask(x, erosion=0), generator=generator, **options)
    healed = model.reconstruct(noised.clamp(0, 1))
    return {
        "noised": gray(noised[0, 0].numpy()),
        "noise": heat_map(noise[0, 0].abs().numpy(), top=max(float(noise.abs().max()), 1e-6)),
        "healed": gray(healed[0, 0].numpy()),
        "residual": heat_map((noised.clamp(0, 1) - healed).abs()[0, 0].numpy()),
    }


def default_threshold(model: TriVAE, filter_size: int) -> float:
    return float(model.threshold_filtered if int(filter_size) > 1 else model.threshold)


def results_table() -> str:
    """The report's Dice beside ours for every trained model (from the cards)."""
    header = ("model", "report: mean Dice, BraTS T2 (thr 0.1)", "ours: BraTS21 mean Dice @ val thr", "BraTS21 ⌈Dice⌉",
              "ours: LGG test mean Dice @ val thr", "LGG ⌈Dice⌉", "LGG AUROC / AUPRC")
    rows = []
    for label, name in MODELS.items():
        if not registry.available(name):
            continue
        metrics = registry.load_card(name).get("metrics", {})
        kind = f"median{load_model(name).config.median_filter_size}"
        brats, lgg = metrics.get("brats21", {}).get(kind, {}), metrics.get("lgg_test", {}).get(kind, {})
        pair = f"{lgg['auroc']:.3f} / {lgg['auprc']:.3f}" if lgg else None
        rows.append((label, REPORT_DICE.get(name), brats.get("mean_slice_dice"), brats.get("best_dice"),
                     lgg.get("mean_slice_dice"), lgg.get("best_dice"), pair))
    if BASELINE_FILE.exists():  # written by `python -m evaluation.trivae --baseline`
        import json

        baseline = json.loads(BASELINE_FILE.read_text())
        brats, lgg = baseline["brats21"]["median5"], baseline["lgg_test"]["median5"]
        rows.append(("*No model: FLAIR intensity*", None, brats["mean_slice_dice"], brats["best_dice"], lgg["mean_slice_dice"],
                     lgg["best_dice"], f"{lgg['auroc']:.3f} / {lgg['auprc']:.3f}"))
    return cards.comparison_table(rows, headers=header, percent=False) + (
        "\n\nOurs: median-filtered residual inside the brain mask, threshold chosen on tumour-free validation slices "
        "(99th percentile); ⌈Dice⌉ = best pooled Dice over thresholds (an upper bound). The report used raw residuals, "
        "no brain mask and a fixed 0.1, on BraTS 2020 T2 middle slices, so the columns are not the same protocol."
    )


# ---- thin adapters (the only place with gr.Error) ----


def _model(label: str) -> TriVAE:
    return serving.chosen_model(MODELS, label, load_model)


def _read(path, mask_path, slice_index, size: int = 128):
    if not path:
        raise gr.Error("Upload a slice (PNG/JPG) or a NIfTI volume (.nii / .nii.gz), or pick an example.")
    try:
        return read_slice(path, mask_path or None, None if slice_index is None or slice_index < 0 else int(slice_index), size)
    except (UploadError, VolumeError) as error:
        raise gr.Error(str(error)) from error


def _analyse(path, mask_path, slice_index, model_label, threshold, filter_size):
    model = _model(model_label)
    image, truth, _ = _read(path, mask_path, slice_index, model.config.image_size)
    result = analyse(model, image, truth, float(threshold), int(filter_size))
    share = 100 * result.prediction.sum() / max(result.brain.sum(), 1)
    text = f"**Dice {result.dice:.3f}** against the ground truth. " if result.dice is not None else "No ground truth for this input. "
    text += f"Threshold {result.threshold:.3f}; {share:.1f} % of the brain mask flagged."
    truth_image = gray(truth.astype(np.float32)) if truth is not None else None
    return (gray(result.image), gray(result.reconstruction), heat_map(result.residual),
            overlay(result.image, result.prediction, truth), truth_image, text)


def _load_file(path):
    """A new upload: show the slice slider for volumes (at the middle slice), hide it for 2-D images."""
    if path and is_volume(path):
        try:
            depth = _raw_slice(path, 0)[1]
        except VolumeError as error:
            raise gr.Error(str(error)) from error
        return gr.update(visible=True, minimum=0, maximum=depth - 1, value=depth // 2, step=1)
    return gr.update(visible=False, value=-1)


def _pick_example(event: gr.SelectData):
    image, mask = example_slices()[event.index]
    return image, mask, gr.update(visible=False, value=-1)


def _threshold_for(model_label, filter_size):
    return default_threshold(_model(model_label), filter_size)


def _noise(path, slice_index, model_label, kind, sigma, grid, frequency_exponent, seed, report_style):
    model = _model(model_label)
    image, _, _ = _read(path, None, slice_index, model.config.image_size)
    out = noise_playground(model, image, kind, float(sigma), int(grid), float(frequency_exponent), int(seed), bool(report_style))
    return out["noised"], out["noise"], out["healed"], out["residual"]


def _summary(model_label):
    name = MODELS[model_label]
    return cards.card_summary(name), cards.plot_curves(name, {"training loss": ["loss", "l1", "auxiliary_l1", "ssim"], "validation": ["validation_l1"]})


def api_examples() -> dict[str, list[tuple]]:
    """Three different requests per public endpoint (benchmarks/load.py, tests/test_load.py): the first example slices."""
    slices = example_slices()[:3]
    return {"/trivae": [(image, mask, -1, "Tri-VAE, coarse noise", 0.1, 5) for image, mask in slices]} if len(slices) == 3 else {}


def _first_model() -> str:
    available = [label for label, name in MODELS.items() if registry.available(name)] or list(MODELS)[:3]
    return available[min(1, len(available) - 1)]


def _opened():
    """The tab's first view, made when it is opened: the first example analysed with the first model at its
    validation-chosen threshold, the results table, the card and the training curves."""
    first = _first_model()
    filter_size = load_model(MODELS[first]).config.median_filter_size
    threshold = default_threshold(load_model(MODELS[first]), filter_size)
    panels = [None] * 5 + [""]
    if example_slices():
        image, mask = example_slices()[0]
        panels = list(_analyse(image, mask, -1, first, threshold, filter_size))
    return (threshold, filter_size, *panels, results_table(), *_summary(first))


def build() -> serving.OnOpen:
    first = _first_model()
    gr.Markdown(f"## {TITLE}\nA VAE trained only on tumour-free slices reconstructs a *healthy* version of the input; "
                "the residual |x − x̂| inside the brain, median-filtered and thresholded, marks the tumour. " + CITATION)
    with gr.Row():
        with gr.Column(scale=1):
            first_image, first_mask = example_slices()[0] if example_slices() else (None, None)
            gallery = gr.Gallery(value=[(image, Path(image).stem) for image, _ in example_slices()], label="Test slices (LGG test patients, BraTS 2021)",
                                 columns=4, height=220, allow_preview=False)
            if not example_slices():
                gr.Markdown(f"*{examples.NO_DATA_NOTE}*")
            elif Path(first_image).is_relative_to(ASSETS):
                gr.Markdown(f"*{examples.SHIPPED_NOTE}*")
            upload = gr.File(label="Slice (PNG / JPG) or NIfTI volume (.nii / .nii.gz)", value=first_image, elem_id="trivae-upload")
            mask_upload = gr.File(label="Ground-truth mask (optional; PNG, or a NIfTI segmentation for a volume)", value=first_mask)
            slice_index = gr.Slider(-1, 1, value=-1, step=1, label="Axial slice", visible=False)
            model = gr.Dropdown(list(MODELS), value=first, label="Model")
            threshold = gr.Slider(0, 1, value=0.1, step=0.001,
                                  label="Residual threshold (starts at the validation-chosen value; the report used 0.1)")
            filter_size = gr.Slider(1, 7, value=5, step=2, label="Median filter size (1 = none)")
            run = gr.Button("Detect", variant="primary")
        with gr.Column(scale=2):
            with gr.Row():
                shown = gr.Image(label="Input (normalised, cropped)", height=220)
                reconstruction = gr.Image(label="Reconstruction x̂ (z = μ)", height=220)
                residual = gr.Image(label="Residual |x − x̂| (inferno, 0–0.5)", height=220)
            with gr.Row():
                overlaid = gr.Image(label="Prediction (red) and ground truth (green)", height=220)
                truth = gr.Image(label="Ground truth", height=220)
            verdict = gr.Markdown()
    with gr.Accordion("Noise playground: the synthetic anomalies the Tri-VAE learns to remove", open=False):
        with gr.Row():
            kind = gr.Radio(["coarse", "simplex"], value="coarse", label="Noise")
            sigma = gr.Slider(0.0, 0.6, value=0.2, step=0.01, label="σ (coarse: of the lattice; simplex: of the pattern)")
            grid = gr.Slider(4, 64, value=16, step=1, label="Coarse grid (report 16×16)")
            frequency = gr.Slider(-8, -3, value=-6, step=0.5, label="Simplex base frequency, log2 (report −6 at 256 px)")
            seed = gr.Number(value=0, precision=0, label="Seed")
            report_style = gr.Checkbox(value=False, label="The report's noise (whole image, [0,1] simplex at full strength, one mask for every seed)")
        noise_button = gr.Button("Make noise")
        with gr.Row():
            noised = gr.Image(label="Noised slice", height=200)
            noise_map = gr.Image(label="|noise|", height=200)
            healed = gr.Image(label="Model output (healed)", height=200)
            healed_residual = gr.Image(label="|noised − output|", height=200)
    with gr.Accordion("Report vs ours, training card and curves", open=True):
        results = gr.Markdown()
        summary = gr.Markdown()
        curves = gr.Plot(label="training curves (step cumulative over continued runs)")

    inputs = [upload, mask_upload, slice_index, model, threshold, filter_size]
    outputs = [shown, reconstruction, residual, overlaid, truth, verdict]
    analyse_event = serving.model_event("trivae")  # the tab's queue; private: /trivae is the public way in
    gallery.select(_pick_example, None, [upload, mask_upload, slice_index], **serving.internal_event()).then(_analyse, inputs, outputs, **analyse_event)
    # A new image makes the previous ground truth meaningless: clear it (upload a matching mask after the image).
    upload.upload(_load_file, upload, slice_index, **analyse_event).then(
        lambda: None, None, mask_upload, **serving.internal_event()).then(_analyse, inputs, outputs, **analyse_event)
    mask_upload.upload(_analyse, inputs, outputs, **analyse_event)
    run.click(_analyse, inputs, outputs, **serving.model_event("trivae", "trivae"))
    slice_index.release(_analyse, inputs, outputs, **analyse_event)
    threshold.release(_analyse, inputs, outputs, **analyse_event)
    filter_size.release(_threshold_for, [model, filter_size], threshold, **serving.internal_event()).then(_analyse, inputs, outputs, **analyse_event)
    model.change(_threshold_for, [model, filter_size], threshold, **serving.internal_event()).then(
        _analyse, inputs, outputs, **analyse_event).then(_summary, model, [summary, curves], **serving.internal_event())
    noise_button.click(_noise, [upload, slice_index, model, kind, sigma, grid, frequency, seed, report_style],
                       [noised, noise_map, healed, healed_residual], **serving.model_event("trivae", "trivae_noise"))
    return serving.OnOpen(_opened, [threshold, filter_size, *outputs, results, summary, curves])


if __name__ == "__main__":
    import sys

    serving.run_alone(sys.modules[__name__])
