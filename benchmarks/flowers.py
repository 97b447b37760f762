"""Latency of the Flowers-102 tab on this CPU, through the tab's own functions (one 64 px test image).

    python -m benchmarks.flowers             # p50 of 10 runs each
    python -m benchmarks.flowers --runs 20

Target (issue 24): FGSM on one 64 px image p50 ≤ 100 ms for each model. Also measured: PGD-10, Grad-CAM, attention
rollout (ViTs) and the whole tab request (attack + explanations + the transfer to the other trained models). One
intra-op thread, as the app sets per request. Latency does not depend on the weights: a model not trained yet is
replaced by the same architecture freshly initialised (and said so).
"""

from __future__ import annotations

import argparse

import torch
from PIL import Image

from benchmarks.timing import latencies
from demos import attacks as lab
from demos import flowers as demo
from demos import serving
from models import registry
from models.flowers import FlowersViT, FlowersViTConfig, is_vit, pretrained_cnn, scratch_cnn
from training.flowers import PRESETS

TARGET_FGSM_S = 0.1
STAND_INS = {"flowers-cnn-pretrained": lambda: pretrained_cnn(PRESETS["cnn-pretrained"].input_size, imagenet=False), "flowers-cnn-scratch": scratch_cnn,
             "flowers-vit-scratch": lambda: FlowersViT(FlowersViTConfig()), "flowers-vit-cifar10": lambda: FlowersViT(FlowersViTConfig())}


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    serving.configure_process()
    path, label = demo.example_images()[0]
    x = demo.to_input(Image.open(path).convert("RGB"))
    fgsm, pgd = lab.AttackSettings(attack="FGSM", epsilon=4), lab.AttackSettings(attack="PGD (L∞)", epsilon=4, alpha=1, steps=10)
    results = {}
    for name, _ in demo.MODELS.values():
        stand_in = not registry.available(name)
        model = STAND_INS[name]().eval() if stand_in else demo.load_model(name)
        cases = {
            "FGSM": lambda: demo.attack(model, x, label, fgsm),
            "PGD-10": lambda: demo.attack(model, x, label, pgd),
            "Grad-CAM": lambda: demo.explain(model, x, "Grad-CAM"),
        }
        if is_vit(model):
            cases["attention rollout"] = lambda: demo.explain(model, x, demo.EXPLANATIONS[1])
        results[name] = {case: latencies(function, args.runs)["p50"] for case, function in cases.items()}
        results[name]["stand_in"] = stand_in
    if registry.available("flowers-cnn-pretrained"):
        label_text = next(iter(demo.MODELS))
        results["whole request, PGD-10 + Grad-CAM + transfer"] = {"tab": latencies(lambda: demo._run(label_text, str(path), "PGD (L∞)", 4, 1, 10, "Grad-CAM"), 3)["p50"]}
    print(f"Flowers-102 tab latency, p50 of {args.runs} runs, one thread, 64 px test image")
    print("| model | case | ms | target ms |\n|---|---|---|---|")
    for name, cases in results.items():
        note = " (untrained stand-in)" if cases.pop("stand_in", False) else ""
        for case, seconds in cases.items():
            target = TARGET_FGSM_S if case == "FGSM" else None
            flag = "" if target is None else (" ✓" if seconds <= target else " ✗")
            print(f"| {name}{note} | {case} | {seconds * 1000:.0f} | {'–' if target is None else f'{target * 1000:.0f}'}{flag} |")
    return results


if __name__ == "__main__":
    torch.set_grad_enabled(True)
    main()
