"""The first tab: what each system is, which course report it comes from, and whether it is ready here."""

from __future__ import annotations

import gradio as gr

from demos.kit import Metric, headline_text

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
    "vae": ("VAE latent explorer (MNIST)", "vae-diffusion", "VAE on MNIST: the 2-D latent plane (click to decode), manifold, interpolation, drawn digits, AE vs VAE vs β"),
    "diffusion": ("Class-conditional diffusion", "vae-diffusion", "DDPM with classifier-free guidance on CIFAR-10, and the report's one-step denoiser"),
    "flowers": ("Flowers-102 transfer", "attacks-captioning", "pretrained vs from-scratch models and transfer attacks"),
}


# slug → the numbers the overview shows beside the report's, read from the cards the evaluation commands wrote
HEADLINES = {
    "pixelda": [
        Metric("MNIST-M test, source-only", "pixelda-source-only", "mnist_m_test_accuracy", report=0.62),
        Metric("adapted", "pixelda-adapted", "mnist_m_test_accuracy", report=0.96),
    ],
    "cyclegan": [
        Metric("test apples judged orange", "cyclegan-apple2orange", "orange_share_a2b", report="qualitative only"),
        Metric("KID apple→orange (untranslated 0.103)", "cyclegan-apple2orange", "kid_a2b", report="not measured", percent=False),
    ],
    "attacks": [
        Metric("ResNet-20 clean", "attacks-resnet20-standard", "clean_accuracy", report="67.1 % (ResNet-18, CIFAR-100)"),
        Metric("PGD-10 at 8/255, adversarially trained", "attacks-resnet20-adversarial", "pgd10_accuracy.8", report=0.2423),
        Metric("AdvGAN success", "attacks-advgan", "success_rate_all_images", report=0.9217),
    ],
    "trivae": [
        Metric("Tri-VAE Dice, LGG test", "trivae-trivae-coarse", "lgg_test.median5.dice", percent=False),
        Metric("BraTS test", "trivae-trivae-coarse", "brats21.median5.dice", report="0.48 (IXI → BraTS T2)", percent=False),
    ],
    "maf": [
        Metric("capsule image AUROC, pixel MAF", "maf-pixel-capsule", "image_auroc", report="0.78 (text) / 0.67 (figure)", percent=False),
        Metric("feature flow", "maf-features-capsule", "image_auroc", percent=False),
        Metric("its pixel AUROC", "maf-features-capsule", "pixel_auroc", report="not measured", percent=False),
    ],
    "captioning": [
        Metric("Persian BLEU-4, beam 3", "captioning-fa", "test.beam3.bleu4", report="0.0385 (COCO-fa, 1 ref.)", percent=False),
        Metric("English BLEU-4", "captioning-en", "test.beam3.bleu4", report="SAT paper 0.195", percent=False),
    ],
    "endovae": [
        Metric("test PSNR (dB), report's EndoVAE", "endovae-report", "test.psnr.mean", report="28.33 on trained-on frames", percent=False),
        Metric("better variant", "endovae-better", "test.psnr.mean", percent=False),
        Metric("polyp pixel AUROC", "endovae-normal", "test.pixel_auroc", report="not measured", percent=False),
    ],
    "vae": [
        Metric("MNIST test ELBO (Bernoulli, nats), report's VAE", "vae-report", "test.bernoulli_elbo", report="no number stated", percent=False),
        Metric("BCE VAE", "vae-bce", "test.bernoulli_elbo", percent=False),
        Metric("its SSIM (z = μ)", "vae-bce", "test.ssim", report="qualitative only", percent=False),
    ],
    "flowers": [
        Metric("test top-1, ImageNet-pretrained CNN", "flowers-cnn-pretrained", "test_top1", report="83.18 % (ViT-B/16 fine-tuned)"),
        Metric("ViT from scratch", "flowers-vit-scratch", "test_top1", report=0.2587),
        Metric("ViT pretrained by us on CIFAR-10", "flowers-vit-cifar10", "test_top1", report="83.18 % (ImageNet)"),
    ],
    "diffusion": [
        Metric("class consistency at guidance 3 (target 50 %)", "diffusion-ddpm", "class_consistency_g3_50steps", report="nothing generated"),
        Metric("report denoiser PSNR at σ 0.05 (identity 32 dB)", "diffusion-report", "psnr_t5", report="not measured", percent=False),
    ],
}


def status_line(slug: str, status: str) -> str:
    """A ready system's status with its headline numbers from the cards; any other status as it is."""
    if not status.startswith("ready"):
        return status
    numbers = headline_text(HEADLINES.get(slug, []))
    return f"ready: {numbers}" if numbers else status


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
        lines.append(f"| {title} | {description} | `{report}` | {status_line(slug, status.get(slug, 'not built yet'))} |")
    gr.Markdown("\n".join(lines))
