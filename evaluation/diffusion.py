"""Measure the diffusion checkpoints on the CIFAR-10 test split and write the results into their cards.

    python -m evaluation.diffusion [--samples 100] [--sweep-samples 50] [--real 1000] [--what all|report|ddpm]

`diffusion-report` (the report's denoiser, spec §6.2), on all 10,000 test images:
- MSE and PSNR of its output and of the identity baseline (the noisy input itself) at the report's t ∈ {0, 2, 5,
  10} (σ = 0.01·t, clipped), the chart the report promised; per class at its t = 5;
- the wrong-label test: the same noisy images with a permuted label and with a constant label (every class in
  turn): the change of MSE and the mean absolute change of the output (is the label used at all?).
`diffusion-ddpm` (the class-conditional DDPM, EMA weights, bf16 where the CPU runs it natively):
- class consistency: the share of generated samples that the attacks lab's standard ResNet-20 (`attacks-resnet20-
  standard`, 85 % on the clean test set) assigns to the requested class, and its mean softmax confidence for that
  class, at guidance scales 0 / 1 / 3 / 5 with 50 DDIM steps (η = 0), `--samples` per setting, and at guidance 3
  with 10 / 25 / 100 steps, `--sweep-samples` per setting (class-balanced labels; the same initial noise for every
  setting), plus the judge's own accuracy on `--samples` real test images;
- KID (the CycleGAN evaluation's: unbiased polynomial MMD², 100 subsets, on pooled ImageNet EfficientNet-Lite0
  features at 224 px) between each guidance scale's samples and `--real` real test images;
- the one-step x̂0 chart: PSNR of the prediction from a single noisy image at matched noise levels, for the
  identity (the noisy image), the report's denoiser and the DDPM (true label, no guidance), on 500 test images.
  A level is a DDPM step t with σ_t = √((1 − ᾱ_t)/ᾱ_t), so x_t/√ᾱ_t = x0 + σ_t ε is the report's kind of
  corruption at σ_t (the identity and the report model see it clipped to [−1, 1], as the report's `add_noise` does;
  the DDPM sees x_t itself).
- a small fixed batch for the real-checkpoint test: 20 samples (2 per class, seed 0), guidance 3, 10 steps.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from evaluation.cyclegan import judge_outputs, kernel_inception_distance
from models import registry
from models.diffusion import (CIFAR10_CLASSES, ClassConditionalDDPM, ReportDenoiser, add_noise, alphas_cumprod, ddim_sample, psnr, report_sigma, to_signed,
                              to_unit)
from models.runtime import autocast, use_bf16
from nndl_data.diffusion import balanced_subset, load_split

COMMAND = "python -m evaluation.diffusion"
REPORT, DDPM, JUDGE = "diffusion-report", "diffusion-ddpm", "attacks-resnet20-standard"
REPORT_STEPS = (0, 2, 5, 10)  # the report's t (σ = 0.01·t)
GUIDANCE_SCALES = (0.0, 1.0, 3.0, 5.0)
SAMPLING_STEPS = (10, 25, 50, 100)  # 50 is the guidance sweep's; the others run on --sweep-samples
CHART_STEPS = (4, 8, 15, 26, 40, 57, 100, 150, 200, 300, 400, 500, 700)  # DDPM steps of the one-step chart
FIXED_BATCH = {"samples": 20, "seed": 0, "guidance": 3.0, "steps": 10}


def precision_name() -> str:
    return "bf16" if use_bf16("auto", torch.device("cpu")) else "fp32"


@torch.no_grad()
def judge(classifier, images_signed: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(judged class (N,), the judge's softmax probability of `labels` (N,)) of [−1, 1] images."""
    probabilities = torch.cat([classifier(to_unit(batch)).softmax(1) for batch in images_signed.split(250)])
    return probabilities.argmax(1), probabilities.gather(1, labels.view(-1, 1)).flatten()


def balanced_labels(count: int) -> torch.Tensor:
    return torch.arange(count) % 10


def generate(model: ClassConditionalDDPM, labels: torch.Tensor, *, guidance: float, steps: int, seed: int, batch: int = 100, precision: str = "auto") -> torch.Tensor:
    """Samples in [−1, 1]; chunk k of `batch` labels draws its noise from seed + k, so settings share their noise."""
    chunks = [ddim_sample(model, part, guidance=guidance, steps=steps, generator=torch.Generator().manual_seed(seed + k), precision=precision)
              for k, part in enumerate(labels.split(batch))]
    return torch.cat(chunks)


def fixed_batch_consistency(model: ClassConditionalDDPM, judge_model) -> float:
    """The real-checkpoint test's number: 2 samples per class, seed 0, guidance 3, 10 DDIM steps."""
    labels = balanced_labels(FIXED_BATCH["samples"])
    samples = ddim_sample(model, labels, guidance=FIXED_BATCH["guidance"], steps=FIXED_BATCH["steps"],
                          generator=torch.Generator().manual_seed(FIXED_BATCH["seed"]), precision="auto")
    return (judge(judge_model, samples, labels)[0] == labels).float().mean().item()


@torch.no_grad()
def report_metrics(model: ReportDenoiser, images: torch.Tensor, labels: torch.Tensor) -> dict:
    x0 = to_signed(images)
    metrics: dict = {"test_images": len(x0), "levels": {}}
    for t in REPORT_STEPS:
        noisy = add_noise(x0, t, generator=torch.Generator().manual_seed(t))
        out = torch.cat([model(part, lab) for part, lab in zip(noisy.split(1000), labels.split(1000))])
        metrics["levels"][str(t)] = {
            "sigma": report_sigma(t), "mse": round(F.mse_loss(out, x0).item(), 6), "identity_mse": round(F.mse_loss(noisy, x0).item(), 6),
            "psnr": round(psnr(out, x0).mean().item(), 2), "identity_psnr": round(psnr(noisy, x0).mean().item(), 2) if t else None,
        }
        if t == 5:
            noisy5, out5 = noisy, out
    per_class = {}
    for c, name in enumerate(CIFAR10_CLASSES):
        keep = labels == c
        per_class[name] = {"mse": round(F.mse_loss(out5[keep], x0[keep]).item(), 6), "identity_mse": round(F.mse_loss(noisy5[keep], x0[keep]).item(), 6)}
    metrics["per_class_t5"] = per_class
    generator = torch.Generator().manual_seed(99)
    permuted = labels[torch.randperm(len(labels), generator=generator)]

    def change(other: torch.Tensor, keep: torch.Tensor) -> dict:
        out_wrong = torch.cat([model(part, lab) for part, lab in zip(noisy5[keep].split(1000), other.split(1000))])
        right = F.mse_loss(out5[keep], x0[keep]).item()
        return {"mse": round(F.mse_loss(out_wrong, x0[keep]).item(), 6), "delta_mse": round(F.mse_loss(out_wrong, x0[keep]).item() - right, 7),
                "mean_abs_output_change": round((out_wrong - out5[keep]).abs().mean().item(), 6)}

    everything = torch.arange(len(labels))
    sample = balanced_subset(labels, 100, seed=5)  # constant labels: 1,000 test images (100 per class)
    constant = {f"all_{name}": change(torch.full((len(sample),), c, dtype=torch.long), sample) for c, name in enumerate(CIFAR10_CLASSES)}
    metrics["wrong_label_t5"] = {"permuted": change(permuted, everything), "constant_labels_on_1000": constant,
                                 "constant_label_worst": max(constant, key=lambda k: constant[k]["delta_mse"]),
                                 "largest_mean_abs_output_change": max(value["mean_abs_output_change"] for value in constant.values()),
                                 "note": "outputs and MSE are on the [-1, 1] scale; one 8-bit grey level is 2/255 = 0.0078"}
    metrics["mse_t5"], metrics["identity_mse_t5"] = metrics["levels"]["5"]["mse"], metrics["levels"]["5"]["identity_mse"]
    metrics["psnr_t5"], metrics["identity_psnr_t5"] = metrics["levels"]["5"]["psnr"], metrics["levels"]["5"]["identity_psnr"]
    return metrics


@torch.no_grad()
def one_step_chart(ddpm: ClassConditionalDDPM | None, report: ReportDenoiser | None, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """PSNR (dB, mean over images) of one-step x̂0 at each DDPM step of CHART_STEPS, for identity / report / DDPM."""
    abar = ddpm.alphas_cumprod if ddpm is not None else alphas_cumprod()
    x0 = to_signed(images)
    chart = {"t": [], "sigma": [], "identity": [], "report": [], "ddpm": []}
    for t in CHART_STEPS:
        a = abar[t].item()
        sigma = ((1 - a) / a) ** 0.5
        eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(t))
        noisy = (x0 + sigma * eps).clamp(-1, 1)
        chart["t"].append(t)
        chart["sigma"].append(round(sigma, 4))
        chart["identity"].append(round(psnr(noisy, x0).mean().item(), 2))
        chart["report"].append(round(psnr(report(noisy, labels), x0).mean().item(), 2) if report is not None else None)
        if ddpm is not None:
            x_t = a ** 0.5 * x0 + (1 - a) ** 0.5 * eps
            steps = torch.full((len(x0),), t, dtype=torch.long)
            with autocast("auto", torch.device("cpu")):
                eps_hat = torch.cat([ddpm(part, st, lab).float() for part, st, lab in zip(x_t.split(250), steps.split(250), labels.split(250))])
            chart["ddpm"].append(round(psnr(ddpm.predict_x0(x_t, steps, eps_hat).clamp(-1, 1), x0).mean().item(), 2))
        else:
            chart["ddpm"].append(None)
    chart["images"] = len(x0)
    return chart


def ddpm_metrics(model: ClassConditionalDDPM, judge_model, test_images: torch.Tensor, test_labels: torch.Tensor, *, samples: int, sweep_samples: int,
                 real: int, log) -> dict:
    from models.imagenet import imagenet_classifier

    labels = balanced_labels(samples)
    metrics: dict = {"samples_per_setting": samples, "sampler": "DDIM, eta 0, x0 clipped, trailing timesteps", "precision": precision_name(),
                     "judge": JUDGE, "kid_real_images": real, "kid_features": "ImageNet EfficientNet-Lite0 pooled (1280-d) at 224 px, 100 subsets"}
    keep = balanced_subset(test_labels, samples // 10, seed=3)
    judged, confidence = judge(judge_model, to_signed(test_images[keep]), test_labels[keep])
    metrics["judge_accuracy_real"] = round((judged == test_labels[keep]).float().mean().item(), 4)
    classifier = imagenet_classifier()
    real_keep = balanced_subset(test_labels, real // 10, seed=4)
    real_features = judge_outputs(classifier, to_unit(to_signed(test_images[real_keep])))[2]
    consistency, confidences, kid, kid_std, by_class = {}, {}, {}, {}, {}
    for guidance in GUIDANCE_SCALES:
        start = time.monotonic()
        generated = generate(model, labels, guidance=guidance, steps=50, seed=0)
        judged, confidence = judge(judge_model, generated, labels)
        key = f"{guidance:g}"
        consistency[key] = round((judged == labels).float().mean().item(), 4)
        confidences[key] = round(confidence.mean().item(), 4)
        by_class[key] = {name: round((judged[labels == c] == c).float().mean().item(), 3) for c, name in enumerate(CIFAR10_CLASSES)}
        mean, std = kernel_inception_distance(judge_outputs(classifier, to_unit(generated))[2], real_features)
        kid[key], kid_std[key] = round(mean, 5), round(std, 5)
        log(f"guidance {key}: consistency {consistency[key]}, confidence {confidences[key]}, KID {kid[key]} ± {kid_std[key]} ({time.monotonic() - start:.0f} s)")
    metrics.update(class_consistency_vs_guidance=consistency, judge_confidence_vs_guidance=confidences, kid_vs_guidance=kid,
                   kid_std_vs_guidance=kid_std, class_consistency_per_class_vs_guidance=by_class)
    by_steps = {"50": consistency["3"]}
    sweep_labels = balanced_labels(sweep_samples)
    for steps in SAMPLING_STEPS:
        if steps == 50:
            continue
        start = time.monotonic()
        generated = generate(model, sweep_labels, guidance=3.0, steps=steps, seed=0)
        by_steps[str(steps)] = round((judge(judge_model, generated, sweep_labels)[0] == sweep_labels).float().mean().item(), 4)
        log(f"guidance 3, {steps} steps: consistency {by_steps[str(steps)]} ({time.monotonic() - start:.0f} s)")
    metrics["class_consistency_vs_steps_at_guidance_3"] = {key: by_steps[key] for key in sorted(by_steps, key=int)}
    metrics["steps_sweep_samples"] = {"50": samples, **{str(steps): sweep_samples for steps in SAMPLING_STEPS if steps != 50}}
    metrics["class_consistency_g3_50steps"] = consistency["3"]
    metrics["kid_g3_50steps"] = kid["3"]
    metrics["fixed_batch"] = {**FIXED_BATCH, "class_consistency": round(fixed_batch_consistency(model, judge_model), 4)}
    return metrics


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--what", choices=["all", "report", "ddpm"], default="all")
    parser.add_argument("--samples", type=int, default=100, help="generated samples per setting (a multiple of 10)")
    parser.add_argument("--sweep-samples", type=int, default=50, help="samples per setting of the steps sweep (10, 25, 100 steps; a multiple of 10)")
    parser.add_argument("--real", type=int, default=1000, help="real test images for KID (a multiple of 10)")
    parser.add_argument("--chart-images", type=int, default=500)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--checkpoint-root", default=None)
    parser.add_argument("--no-card", action="store_true", help="print only")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(__import__("os").environ.get("OMP_NUM_THREADS", "1")))
    begin = time.monotonic()
    log = lambda text: print(f"[{time.monotonic() - begin:6.0f} s] {text}", flush=True)  # noqa: E731
    images, labels = load_split("test", args.data_root)
    report = registry.load(REPORT, root=args.checkpoint_root) if registry.available(REPORT, args.checkpoint_root) else None
    ddpm = registry.load(DDPM, root=args.checkpoint_root) if registry.available(DDPM, args.checkpoint_root) and args.what != "report" else None
    command = f"{COMMAND} --samples {args.samples} --sweep-samples {args.sweep_samples} --real {args.real} --chart-images {args.chart_images}"
    if report is not None and args.what in ("all", "report"):
        metrics = report_metrics(report, images, labels)
        log(f"{REPORT}: " + json.dumps({k: metrics[k] for k in ("mse_t5", "identity_mse_t5", "psnr_t5", "identity_psnr_t5")}) + " wrong label: " + json.dumps(metrics["wrong_label_t5"]["permuted"]))
        if not args.no_card:
            registry.update_card(REPORT, root=args.checkpoint_root, metrics=metrics, evaluation_command=command)
    keep = balanced_subset(labels, args.chart_images // 10, seed=2)
    chart = one_step_chart(ddpm, report, images[keep], labels[keep])
    log("one-step chart: " + json.dumps(chart))
    if ddpm is not None:
        judge_model = registry.load(JUDGE)  # the attacks lab's, always from the default root
        metrics = ddpm_metrics(ddpm, judge_model, images, labels, samples=args.samples, sweep_samples=args.sweep_samples, real=args.real, log=log)
        metrics["one_step_chart"] = chart
        metrics["evaluation_minutes_one_thread"] = round((time.monotonic() - begin) / 60, 1)
        log(f"{DDPM}: " + json.dumps(metrics))
        if not args.no_card:
            registry.update_card(DDPM, root=args.checkpoint_root, metrics=metrics, evaluation_command=command)
    elif report is not None and not args.no_card:
        registry.update_card(REPORT, root=args.checkpoint_root, metrics={"one_step_chart": chart})


if __name__ == "__main__":
    main()
