"""Apple ↔ Orange and Summer ↔ Winter: unpaired translation with CycleGAN (Zhu et al., ICCV 2017).

Shows, for any uploaded photo or a test example, the translation G(x), the cycle reconstruction F(G(x)), the
identity mapping F(x) (the generator *into* the input's own domain should leave it alone) and the per-pixel cycle
error |F(G(x)) − x|; a slider replays the generators from early, middle and final training, and a noise slider
probes CycleGAN's "steganography" (Chu et al. 2017: the reconstruction relies on near-invisible signals hidden in
G(x)). Source: the course report in ../shared/specs/maf-cyclegan.md, part 2.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import matplotlib
import numpy as np
import torch
from PIL import Image

from demos import cards, examples, serving
from demos.uploads import UploadError, image_upload, read_image
from models import registry
from models.cyclegan import CycleGAN, load_snapshot
from nndl_data import DatasetMissing
from nndl_data.cyclegan import DATASETS, image_files

TITLE = "Apple ↔ Orange, Summer ↔ Winter (CycleGAN)"
CHECKPOINTS = [f"cyclegan-{name}" for name in DATASETS]
ASSETS = examples.assets("cyclegan")  # two test images per domain in the data root's layout, for a Space
EXAMPLES_PER_DOMAIN = 4  # test images per domain offered as one-click examples
STAGES = ("early", "middle", "final")  # the progress slider's positions
RESOLUTIONS = (128, 256)
ERROR_MAP_MAX = 0.3  # |F(G(x)) − x| at or above this is drawn in the brightest colour
CITATION = (
    "Zhu, Park, Isola, Efros, *Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks*, "
    "ICCV 2017. Data: the CycleGAN apple2orange (ImageNet photos) and summer2winter_yosemite (Flickr) sets, "
    "research use."
)
# The course report's qualitative observations (it reports no numbers), beside our measurements.
REPORT_OBSERVATIONS = {
    "apple2orange": {
        "judge_a2b": "epoch 20: apples 'uniformly orange, with orange-peel texture'",
        "judge_b2a": "epoch 10: orange peel 'smoother and reddish'",
        "kid": "not measured (no FID/KID in the report)",
        "cycle": "cycle loss 'steadily decreasing' (no numbers)",
        "identity": "identity loss used (λ_id = 5); background kept (green leaves stay green)",
    },
    "summer2winter": {
        "kid": "not measured; foliage → snow, sky kept; dense forests only get 'a white filter'",
        "cycle": "cycle loss 'decreases steadily' (no numbers)",
        "identity": "identity loss used (λ_id = 5)",
    },
}


DIRECTIONS = ("a2b", "b2a")


def direction_choices(dataset: str) -> list[tuple[str, str]]:
    """[(label, value)], e.g. [('apple → orange', 'a2b'), ('orange → apple', 'b2a')]: the values stay the same across
    datasets, so switching the dataset only relabels the direction radio."""
    info = DATASETS[dataset]
    return [(f"{info.domain_a} → {info.domain_b}", "a2b"), (f"{info.domain_b} → {info.domain_a}", "b2a")]


def direction_label(dataset: str, direction: str) -> str:
    return dict((value, label) for label, value in direction_choices(dataset))[direction]


@serving.load_once
def load_model(dataset: str = "apple2orange", stage: str = "final") -> CycleGAN:
    """Both generators of a dataset at a training stage; early/middle come from the checkpoint's int8 snapshots.
    Shared by all requests: translation only reads it."""
    name = f"cyclegan-{dataset}"
    model = registry.load(name)
    if stage == "final":
        return model
    snapshot = registry.load_card(name).get("snapshots", {}).get(stage)
    if snapshot is None:
        raise registry.CheckpointError(f"{name} has no {stage} snapshot; retrain it with `python -m training.cyclegan --dataset {dataset}`.")
    path = registry.checkpoint_dir(name) / snapshot["file"]
    if hashlib.sha256(path.read_bytes()).hexdigest() != snapshot["sha256"]:
        raise registry.CheckpointError(f"{path} does not match the sha256 in its card (corrupt or replaced).")
    return load_snapshot(path, model.config)


@dataclass
class Translation:
    input: Image.Image  # the input as the model saw it (working size)
    translated: Image.Image  # G(x)
    reconstruction: Image.Image  # F(G(x))
    identity: Image.Image  # F(x): the generator into x's own domain
    error_map: Image.Image  # |F(G(x)) − x|, colour-mapped
    cycle_l1: float  # mean |F(G(x)) − x|, images in [0, 1]
    identity_l1: float  # mean |F(x) − x|
    change_l1: float  # mean |G(x) − x|: how much the translation changed


def working_size(width: int, height: int, resolution: int) -> tuple[int, int]:
    """(width, height) with the short side = `resolution`, the aspect ratio kept up to 2:1, sides divisible by 4."""
    aspect = min(max(width, height) / min(width, height), 2.0)
    long_side = max(4, round(resolution * aspect / 4) * 4)
    return (long_side, resolution) if width >= height else (resolution, long_side)


def prepare(image: Image.Image, resolution: int) -> Image.Image:
    """Centre-crop to at most 2:1, then resize (Lanczos) to the working size."""
    width, height = image.size
    if max(width, height) > 2 * min(width, height):
        crop_w, crop_h = (min(width, 2 * height), height) if width > height else (width, min(height, 2 * width))
        left, top = (width - crop_w) // 2, (height - crop_h) // 2
        image = image.crop((left, top, left + crop_w, top + crop_h))
    return image.resize(working_size(*image.size, resolution), Image.Resampling.LANCZOS)


def to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)[None].float().div(255)  # (1, 3, H, W)


def to_image(tensor: torch.Tensor) -> Image.Image:
    array = tensor[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()  # (H, W, 3)
    return Image.fromarray(array)


def error_map(error: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) absolute error → 'inferno' heat map, black = 0, yellow ≥ ERROR_MAP_MAX."""
    values = (error.mean(1)[0] / ERROR_MAP_MAX).clamp(0, 1).numpy()  # (H, W)
    rgb = matplotlib.colormaps["inferno"](values)[..., :3]
    return Image.fromarray((rgb * 255).round().astype(np.uint8))


@torch.inference_mode()
def translate(model: CycleGAN, image: Image.Image, direction: str, resolution: int = 128, noise: float = 0.0, seed: int = 0) -> Translation:
    """Translate an RGB image in `direction` ('a2b' or 'b2a') at `resolution` px (short side).

    `noise` > 0 adds Gaussian noise of that standard deviation to G(x) before reconstructing it (the
    steganography probe); the translation shown is the clean one.
    """
    forward, backward = model.generators(direction)
    x = to_tensor(prepare(image.convert("RGB"), resolution))  # (1, 3, H, W) in [0, 1]
    translated = forward(x)
    noisy = translated
    if noise > 0:
        generator = torch.Generator().manual_seed(seed)
        noisy = (translated + noise * torch.randn(translated.shape, generator=generator)).clamp(0, 1)
    reconstruction = backward(noisy)
    identity = backward(x)
    error = (reconstruction - x).abs()
    return Translation(
        input=to_image(x), translated=to_image(translated), reconstruction=to_image(reconstruction),
        identity=to_image(identity), error_map=error_map(error), cycle_l1=error.mean().item(),
        identity_l1=(identity - x).abs().mean().item(), change_l1=(translated - x).abs().mean().item(),
    )


def stage_label(dataset: str, stage: str) -> str:
    """'early (epoch 1.0)' etc., from the checkpoint's card."""
    try:
        card = registry.load_card(f"cyclegan-{dataset}")
    except (registry.CheckpointError, OSError):
        return stage
    epoch = card.get("epochs_trained") if stage == "final" else card.get("snapshots", {}).get(stage, {}).get("epoch")
    return f"{stage} (epoch {epoch:g})" if isinstance(epoch, (int, float)) else stage


def _share(metrics: dict, key: str) -> str:
    value = metrics.get(key)
    return "–" if value is None else f"{100 * value:.0f} %"


def _number(metrics: dict, key: str, scale: float = 1.0, digits: int = 3) -> str:
    value = metrics.get(key)
    return "–" if value is None else f"{value * scale:.{digits}f}"


def measurements_markdown(dataset: str) -> str:
    """The card's metrics beside the report's observations, as a Markdown table."""
    name = f"cyclegan-{dataset}"
    try:
        card = registry.load_card(name)
    except (registry.CheckpointError, OSError) as error:
        return f"*{error}*"
    metrics, report = card.get("metrics", {}), REPORT_OBSERVATIONS[dataset]
    info = DATASETS[dataset]
    a, b = info.domain_a, info.domain_b
    rows = []
    if "judge_a2b" in report:
        rows.append((f"test {a}s judged 'orange' after translation (EfficientNet-Lite0 top-1 of 1000 classes; among its 10 fruit classes)", report["judge_a2b"],
                     f"**{_share(metrics, 'orange_share_a2b')}**; fruit-only **{_share(metrics, 'orange_fruit_share_a2b')}** "
                     f"(untranslated {_share(metrics, 'orange_share_untranslated')}; {_share(metrics, 'orange_fruit_share_untranslated')}, real oranges {_share(metrics, 'orange_share_real_b')}; {_share(metrics, 'orange_fruit_share_real_b')}; "
                     f"fruit-only early {_share(metrics, 'early_orange_fruit_share_a2b')}, middle {_share(metrics, 'middle_orange_fruit_share_a2b')})"))
        rows.append((f"test {b}s judged 'Granny Smith' after translation (top-1; among fruit classes)", report["judge_b2a"],
                     f"**{_share(metrics, 'apple_share_b2a')}**; fruit-only **{_share(metrics, 'apple_fruit_share_b2a')}** "
                     f"(untranslated {_share(metrics, 'apple_share_untranslated')}; {_share(metrics, 'apple_fruit_share_untranslated')}, real apples {_share(metrics, 'apple_share_real_a')}; {_share(metrics, 'apple_fruit_share_real_a')})"))
    for direction, source, target in (("a2b", a, b), ("b2a", b, a)):
        if f"domain_share_{direction}" in metrics:
            accuracy = f"{_share(metrics, 'domain_judge_accuracy_a')} / {_share(metrics, 'domain_judge_accuracy_b')}"
            rows.append((f"test {source}s judged '{target}' after translation by the domain judge (a small CNN trained from scratch on the "
                         f"training splits, never saw ImageNet; test accuracy on real {a}s / {b}s {accuracy})", "–",
                         f"**{_share(metrics, f'domain_share_{direction}')}** (untranslated {_share(metrics, f'domain_share_untranslated_{direction}')}; "
                         f"early {_share(metrics, f'early_domain_share_{direction}')}, middle {_share(metrics, f'middle_domain_share_{direction}')})"))
        rows.append((f"KID×10³ {source} → {target} vs real {target}s (lower is better)", report["kid"],
                     f"**{_number(metrics, f'kid_{direction}', 1000, 1)}** ± {_number(metrics, f'kid_{direction}_std', 1000, 1)} "
                     f"(untranslated {_number(metrics, 'kid_untranslated', 1000, 1)}; early {_number(metrics, f'early_kid_{direction}', 1000, 1)}, middle {_number(metrics, f'middle_kid_{direction}', 1000, 1)})"))
    rows.append((f"cycle L1 {a} → {b} → {a} / {b} → {a} → {b} (pixels in [0, 1])", report["cycle"],
                 f"{_number(metrics, 'cycle_l1_a')} / {_number(metrics, 'cycle_l1_b')}"))
    rows.append((f"identity L1 G_BA({a}) / G_AB({b})", report["identity"], f"{_number(metrics, 'identity_l1_a')} / {_number(metrics, 'identity_l1_b')}"))
    train_config = card.get("train_config", {})
    discriminator = ("projected discriminators (heads on frozen ImageNet EfficientNet-Lite1 features) in the last run"
                     if train_config.get("discriminator") == "projected" else "70×70 PatchGAN discriminators")
    if train_config.get("domain_negatives"):
        discriminator += ", which also learned to call the other domain's real photos fake"
    rows.append(("training", "20 epochs, batch 1, 128 px, no LR decay, ConvTranspose2d upsampling (checkerboard artefacts in the sky)",
                 f"{card.get('epochs_trained', '?')} epochs, batch 1, {train_config.get('image_size', '?')} px, constant + linear LR decay, "
                 f"resize-conv upsampling (no checkerboard by construction), {discriminator}"))
    lines = ["| measure | course report | ours |", "|---|---|---|"] + [f"| {m} | {r} | {o} |" for m, r, o in rows]
    return "\n".join(lines) + f"\n\n{cards.card_summary(name)}\n\nTest split: {metrics.get('test_images_a', '?')} {a} and {metrics.get('test_images_b', '?')} {b} images."


def loss_plot(dataset: str):
    """G (adversarial), D, cycle and identity losses from the checkpoint's training log."""
    return cards.plot_curves(
        f"cyclegan-{dataset}",
        {"generators (LSGAN)": ["g_ab", "g_ba"], "discriminators": ["d_a", "d_b"], "cycle L1": ["cycle_a", "cycle_b"], "identity L1": ["identity_a", "identity_b"]},
    )


def example_rows(per_domain: int = EXAMPLES_PER_DOMAIN) -> list[list]:
    """[image path, dataset, direction] for the first test images of each domain, read from the data root
    (NNDL_DATA_ROOT or ../shared/data); a dataset that is not there falls back to the first two test images per
    domain shipped in demos/assets/cyclegan (the same layout)."""
    rows = []
    for dataset in DATASETS:
        for split, direction in (("testA", "a2b"), ("testB", "b2a")):
            try:
                files = image_files(dataset, split)[:per_domain]
            except DatasetMissing:
                try:
                    files = image_files(dataset, split, ASSETS)[:per_domain]
                except DatasetMissing:
                    continue
            rows += [[str(path), dataset, direction] for path in examples.shown(files)]
    return rows


def api_examples() -> dict[str, list[tuple]]:
    """Three different requests per public endpoint (benchmarks/load.py, tests/test_load.py): the first test photo of
    the first domain, one of the other direction, one of the other dataset."""
    rows = example_rows()
    picks = [rows[0]] if rows else []
    picks += [row for row in rows if row[2] == "b2a"][:1] + [row for row in rows if rows and row[1] != rows[0][1]][:1]
    return {"/cyclegan": [(path, dataset, direction, 128, 2, 0.0) for path, dataset, direction in picks]} if len(picks) == 3 else {}


def _translate(image, dataset, direction, resolution, progress_stage, noise):
    """Adapter: the only place that turns problems into messages for the user."""
    if image is None:
        raise gr.Error("Upload an image or pick an example below.")
    if dataset not in DATASETS:
        raise gr.Error(f"Choose a dataset: {', '.join(DATASETS)}.")
    if direction not in DIRECTIONS:
        raise gr.Error(f"Choose a direction: 'a2b' ({direction_label(dataset, 'a2b')}) or 'b2a' ({direction_label(dataset, 'b2a')}).")
    try:
        picture = read_image(image)
    except UploadError as error:
        raise gr.Error(str(error)) from error
    stage = STAGES[int(min(max(progress_stage, 0), len(STAGES) - 1))]
    try:
        model = load_model(dataset, stage)
    except registry.CheckpointError as error:
        raise gr.Error(str(error)) from error
    result = translate(model, picture, direction, int(resolution), float(noise))
    summary = (
        f"**{direction_label(dataset, direction)}**, {stage_label(dataset, stage)} generators, at {result.input.width}×{result.input.height} px. "
        f"Change |G(x) − x| = {result.change_l1:.3f}; cycle error |F(G(x)) − x| = {result.cycle_l1:.3f}"
        + (f" (with noise σ = {noise:g} on G(x))" if noise > 0 else "")
        + f"; identity |F(x) − x| = {result.identity_l1:.3f}. Error map: black 0, yellow ≥ {ERROR_MAP_MAX}."
    )
    return result.input, result.translated, result.reconstruction, result.identity, result.error_map, summary


def _dataset_changed(dataset, progress_stage):
    # Only relabel the direction: an example sets dataset and direction together, and its direction must survive.
    return gr.update(choices=direction_choices(dataset)), measurements_markdown(dataset), loss_plot(dataset), _stage_text(dataset, progress_stage)


def _stage_text(dataset, progress_stage) -> str:
    stages = [stage_label(dataset, stage) for stage in STAGES]
    current = stages[int(min(max(progress_stage, 0), len(STAGES) - 1))]
    return f"Generators: **{current}** (slider: {' · '.join(stages)})"


def build() -> serving.OnOpen:
    first = next(iter(DATASETS))
    gr.Markdown(
        f"## {TITLE}\nUnpaired image-to-image translation: two ResNet generators (G: A → B, F: B → A) trained with "
        "70×70 PatchGAN discriminators (continued against projected discriminators on frozen EfficientNet-Lite1 features where "
        "the card says so), least-squares GAN losses, cycle consistency (λ = 10) and identity (λ = 5). "
        "Upload any photo (any size or format; it is cropped to at most 2:1 and resized so its short side is 128 or "
        "256 px) or pick a test example below."
    )
    with gr.Row():
        with gr.Column(scale=1):
            # image_upload hands the raw file to read_image, so corrupt or huge uploads get its clear message.
            image = image_upload(label="input photo (any size; PNG, JPEG, WebP, BMP, TIFF, GIF)", sources=["upload", "clipboard"], height=220)
            dataset = gr.Radio(list(DATASETS), value=first, label="dataset")
            direction = gr.Radio(direction_choices(first), value="a2b", label="direction")
            resolution = gr.Radio(list(RESOLUTIONS), value=RESOLUTIONS[0], label="model resolution (short side, px)")
            progress_stage = gr.Slider(0, len(STAGES) - 1, value=len(STAGES) - 1, step=1, label="training progress (early → middle → final)")
            stage_text = gr.Markdown(_stage_text(first, len(STAGES) - 1))
            noise = gr.Slider(0, 0.2, value=0, step=0.01, label="steganography probe: noise σ added to G(x) before F")
            button = gr.Button("Translate", variant="primary")
        with gr.Column(scale=2):
            with gr.Row():
                seen = gr.Image(label="input x (as the model sees it)", interactive=False)
                translated = gr.Image(label="translation G(x)", interactive=False)
                reconstruction = gr.Image(label="cycle reconstruction F(G(x))", interactive=False)
            with gr.Row():
                identity = gr.Image(label="identity F(x) (should equal x)", interactive=False)
                errors = gr.Image(label="cycle error |F(G(x)) − x|", interactive=False)
            summary = gr.Markdown()
    rows = example_rows()
    if rows:
        picker = gr.Examples(
            rows, inputs=[image, dataset, direction], label="test-split examples (click one)", examples_per_page=16,
            example_labels=[f"{direction_label(dataset_name, way)}: {Path(path).stem}" for path, dataset_name, way in rows],
        )
        if any(Path(path).is_relative_to(ASSETS) for path, _, _ in rows):
            gr.Markdown(f"*{examples.SHIPPED_NOTE}*")
    else:
        gr.Markdown(f"*{examples.NO_DATA_NOTE}*")
    with gr.Accordion("Training and measurements", open=True):
        measurements = gr.Markdown()
        curves = gr.Plot(label="training losses (per-interval means; step cumulative over continued runs)")
        gr.Markdown(CITATION)

    inputs = [image, dataset, direction, resolution, progress_stage, noise]
    outputs = [seen, translated, reconstruction, identity, errors, summary]
    button.click(_translate, inputs, outputs, **serving.model_event("cyclegan", "cyclegan"))
    if rows:  # one click: pick and translate
        picker.load_input_event.then(_translate, inputs, outputs, **serving.model_event("cyclegan"))
    dataset.change(_dataset_changed, [dataset, progress_stage], [direction, measurements, curves, stage_text], **serving.internal_event())
    progress_stage.change(_stage_text, [dataset, progress_stage], stage_text, **serving.internal_event())
    # the shown dataset's card and curves, when the tab is first opened (the dataset radio redraws them later)
    return serving.OnOpen(lambda: (measurements_markdown(first), loss_plot(first)), [measurements, curves])


if __name__ == "__main__":
    import sys

    serving.run_alone(sys.modules[__name__])
