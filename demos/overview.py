"""The first tab: what each system is, which course report it comes from, and whether it is ready here."""

from __future__ import annotations

import gradio as gr

TITLE = "Overview"

# slug → (tab title, course report spec, one line on what it shows)
SYSTEMS = {
    "pixelda": ("MNIST → MNIST-M (PixelDA)", "pixelda-endovae", "GAN pixel-level domain adaptation; source-only vs adapted classifier"),
    "cyclegan": ("Apple ↔ Orange, Summer ↔ Winter (CycleGAN)", "maf-cyclegan", "unpaired image translation with cycle and identity views"),
    "attacks": ("Adversarial attacks", "attacks-captioning, trivae-advgan", "FGSM, PGD, CW, DeepFool, AdvGAN and Grad-CAM on CIFAR-10 and ImageNet models"),
    "trivae": ("Brain-tumour residual maps (VAE / Tri-VAE)", "trivae-advgan", "anomaly maps from VAEs trained on tumour-free MRI"),
    "maf": ("Flow sampling (MAF)", "maf-cyclegan", "normalizing-flow sampling and likelihood anomaly scores"),
    "captioning": ("Persian captions", "attacks-captioning", "Show-Attend-Tell with hazm tokenisation and attention maps"),
    "endovae": ("Endoscopy VAE", "pixelda-endovae", "EndoVAE on Kvasir-SEG polyps"),
    "vae": ("VAE (MNIST / CIFAR-10)", "vae-diffusion", "variational autoencoders"),
    "diffusion": ("Class-conditional diffusion", "vae-diffusion", "DDPM sampling on MNIST / CIFAR-10"),
    "flowers": ("Flowers-102 transfer", "attacks-captioning", "pretrained vs from-scratch models and transfer attacks"),
}


def build(status: dict[str, str]) -> None:
    """`status` maps slug → 'ready', 'not trained: <command>' or 'not built yet'."""
    lines = [
        "# NNDL Studio",
        "Generative and adversarial systems from the *Neural Networks and Deep Learning* course reports, "
        "retrained by this project's own training package and measured by its own evaluation commands. "
        "Every tab shows the report's numbers beside ours.",
        "",
        "| tab | what it shows | course report | status and measured numbers |",
        "|---|---|---|---|",
    ]
    for slug, (title, report, description) in SYSTEMS.items():
        lines.append(f"| {title} | {description} | `{report}` | {status.get(slug, 'not built yet')} |")
    gr.Markdown("\n".join(lines))
