"""Latency of the attacks tab on this CPU, through the tab's own functions (one image, as a user runs it).

    python -m benchmarks.attacks             # median of 5 runs each
    python -m benchmarks.attacks --runs 10

Targets (issue 4): FGSM on a CIFAR image ≤ 50 ms, PGD-10 ≤ 300 ms, Grad-CAM ≤ 300 ms, PGD-10 on a 224 px photo
with EfficientNet-Lite0 ≤ 3 s. The app sets one intra-op thread per request once at start
(demos/serving.configure_process), so this does too. Latency does not depend on the weights, so a missing checkpoint is replaced by a
freshly initialised ResNet-20 (and said so).
"""

from __future__ import annotations

import argparse

from PIL import Image

from benchmarks.timing import latencies
from demos import attacks as demo
from demos import serving
from models import registry
from models.attacks import CifarResNet, ResNetConfig

TARGETS_S = {"FGSM, CIFAR-10 ResNet-20": 0.05, "PGD-10, CIFAR-10 ResNet-20": 0.3, "Grad-CAM, CIFAR-10 ResNet-20": 0.3,
             "AdvGAN, CIFAR-10 ResNet-20": None, "PGD-10, 224 px photo, EfficientNet-Lite0": 3.0, "Grad-CAM, 224 px photo, EfficientNet-Lite0": None}


def _median_seconds(function, runs: int) -> float:
    return latencies(function, runs)["p50"]


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    serving.configure_process()
    name = "attacks-resnet20-standard"
    if registry.available(name):
        cifar_model, note = demo.load_model(name), f"weights: {name}"
    else:
        cifar_model, note = CifarResNet(ResNetConfig()).eval(), f"{name} missing: a freshly initialised ResNet-20 (same cost)"
    generator = demo.load_model(demo.ADVGAN) if registry.available(demo.ADVGAN) else None
    pictures = {path.stem: path for path in demo.example_images()}
    photo = Image.open(pictures["photo-chelsea"]).convert("RGB")
    cifar_image = Image.open(pictures["cifar10-cat"]).convert("RGB") if "cifar10-cat" in pictures else photo  # same cost
    imagenet = demo.load_model("imagenet")
    fgsm, pgd, advgan = (demo.AttackSettings(attack=attack, steps=10) for attack in ("FGSM", "PGD (L∞)", "AdvGAN"))
    cases = {
        "FGSM, CIFAR-10 ResNet-20": lambda: demo.attack_image(name, cifar_model, cifar_image, fgsm),
        "PGD-10, CIFAR-10 ResNet-20": lambda: demo.attack_image(name, cifar_model, cifar_image, pgd),
        "Grad-CAM, CIFAR-10 ResNet-20": lambda: demo.grad_cam(name, cifar_model, demo.to_tensor(cifar_image, 32), "Grad-CAM"),
        "PGD-10, 224 px photo, EfficientNet-Lite0": lambda: demo.attack_image("imagenet", imagenet, photo, pgd),
        "Grad-CAM, 224 px photo, EfficientNet-Lite0": lambda: demo.grad_cam("imagenet", imagenet, demo.to_tensor(photo, 224), "Grad-CAM"),
    }
    if generator is not None:
        cases["AdvGAN, CIFAR-10 ResNet-20"] = lambda: demo.attack_image(name, cifar_model, cifar_image, advgan, generator)
    results = {case: _median_seconds(function, args.runs) for case, function in cases.items()}
    print(f"attacks tab latency, median of {args.runs} runs, one thread ({note}); "
          "the attack timings include the model's clean and final forward passes")
    print(f"| case | ms | target ms |\n|---|---|---|")
    for case, seconds in results.items():
        target = TARGETS_S.get(case)
        flag = "" if target is None else (" ✓" if seconds <= target else " ✗")
        print(f"| {case} | {seconds * 1000:.0f} | {'–' if target is None else f'{target * 1000:.0f}'}{flag} |")
    return results


if __name__ == "__main__":
    main()
