"""Class-conditional diffusion on CIFAR-10: a real DDPM with classifier-free guidance, streamed as it denoises, beside
the course report's "diffusion" (a one-step 8,323-parameter denoiser at σ = 0.05) and its wrong-label control
(../shared/specs/vae-diffusion.md §3, §6.2, §6.3, §7).

Run alone: `python -m demos.diffusion`.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from PIL import Image

from demos import cards, examples, serving
from demos.kit import About, Metric, metrics_table
from demos.maf import rendered, tile, to_uint8
from demos.uploads import UploadError, image_upload, read_image
from models import registry
from models.diffusion import (CIFAR10_CLASSES, ClassConditionalDDPM, ReportDenoiser, add_noise, alphas_cumprod, ddim_frames, psnr,
                              report_equivalent_step, report_sigma, sdedit, snr, to_signed, to_unit)
from nndl_data import DatasetMissing
from nndl_data.attacks import load_cifar

TITLE = "Class-conditional diffusion (CIFAR-10)"
DDPM, REPORT, JUDGE = "diffusion-ddpm", "diffusion-report", "attacks-resnet20-standard"
CHECKPOINTS = [DDPM, REPORT, JUDGE]  # the judge is the attacks lab's
SHIPPED = examples.assets("attacks")  # the first CIFAR-10 test image of each class, shipped by the attacks lab
SCALE = 3  # display enlargement of 32 px images
HEADLINE = [
    Metric("class consistency, guidance 3, 50 DDIM steps (judge: ResNet-20)", DDPM, "class_consistency_g3_50steps", report="– (nothing generated)"),
    Metric("class consistency, no guidance (s = 0)", DDPM, "class_consistency_vs_guidance.0", report="–"),
    Metric("KID vs real test images, guidance 3", DDPM, "kid_g3_50steps", report="–", percent=False, lower_is_better=True),
    Metric("report denoiser PSNR at its σ = 0.05 (dB)", REPORT, "psnr_t5", report="not measured", percent=False),
    Metric("identity (do nothing) PSNR at σ = 0.05 (dB)", REPORT, "identity_psnr_t5", report="not measured", percent=False),
]
ABOUT = About(
    citation="Ho, Jain & Abbeel, *Denoising Diffusion Probabilistic Models*, NeurIPS 2020; Song, Meng & Ermon, *DDIM*, ICLR 2021; "
             "Nichol & Dhariwal, *Improved DDPM* (cosine schedule), ICML 2021; Ho & Salimans, *Classifier-Free Diffusion Guidance*, 2022; "
             "Meng et al., *SDEdit*, ICLR 2022. U-Net and schedulers from Hugging Face `diffusers`; the sampling loop with guidance is ours.",
    dataset="CIFAR-10 (Krizhevsky, *Learning Multiple Layers of Features from Tiny Images*, 2009): 15,000 training images here, "
            "research and education use. The judge is the attacks lab's ResNet-20 (85 % on the clean test set).",
)


@serving.load_once
def load_model(name: str):
    """Shared by all requests: sampling and denoising only read the models (DDIM schedulers are made per request)."""
    return registry.load(name)


def _load(name: str):
    try:
        return load_model(name)
    except registry.CheckpointError as error:
        raise gr.Error(str(error)) from error


# ------------------------------------------------------------------------------------------------ examples
@serving.load_once
def example_source() -> tuple[torch.Tensor, torch.Tensor, bool]:
    """(uint8 images (10, 3, 32, 32), labels, shipped): the first test image of each class, from the data root or,
    without one (a Space), the attacks lab's shipped copies (shipped True)."""
    try:
        images, labels, _ = load_cifar("cifar10", "test", limit_per_class=1)
        return images, labels, False
    except DatasetMissing:
        images, labels, _ = load_cifar("cifar10", "test", SHIPPED, limit_per_class=1)
        return images, labels, True


@serving.load_once
def example_images() -> tuple[list[Path], torch.Tensor, torch.Tensor]:
    """(PNG paths, uint8 images (10, 3, 32, 32), labels) of `example_source()`."""
    images, labels, _ = example_source()
    paths = examples.write_pngs("diffusion", {f"cifar10-{CIFAR10_CLASSES[int(label)]}": image.permute(1, 2, 0).numpy() for image, label in zip(images, labels)})
    return paths, images, labels


def read_32(path) -> tuple[torch.Tensor, int | None]:
    """An image file → ([−1, 1] (1, 3, 32, 32), its class when it is one of the examples)."""
    image = read_image(path).resize((32, 32), Image.Resampling.BICUBIC)
    known = {p.name: int(label) for p, label in zip(example_images()[0], example_images()[2])}
    array = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None]
    return to_signed(array), known.get(Path(str(path)).name)


def show(images_signed: torch.Tensor, columns: int = 4) -> np.ndarray:
    return tile(to_uint8(to_unit(images_signed)), columns=columns, scale=SCALE)


# ------------------------------------------------------------------------------------------------ pure functions
@torch.no_grad()
def judge_probabilities(judge, images_signed: torch.Tensor) -> torch.Tensor:
    return judge(to_unit(images_signed)).softmax(1)


def generation_frames(model: ClassConditionalDDPM, judge, class_index: int, guidance: float, steps: int, seed: int, count: int, updates: int = 10):
    """Yields (x_t grid, x̂0 grid, text) about `updates` times while sampling, then the final grid and the judge's reading."""
    labels = torch.full((count,), class_index, dtype=torch.long)
    generator = torch.Generator().manual_seed(seed)
    every = max(1, steps // updates)
    start = time.perf_counter()
    columns = min(count, 4) if count <= 4 else 4 if count <= 8 else 8
    for frame in ddim_frames(model, labels, guidance=guidance, steps=steps, generator=generator, precision="auto"):
        if frame.index % every == 0 or frame.index == frame.total:
            text = f"step {frame.index}/{frame.total} (t = {frame.t}), {time.perf_counter() - start:.1f} s"
            if frame.index == frame.total:
                probabilities = judge_probabilities(judge, frame.x.clamp(-1, 1))
                chosen = probabilities[:, class_index]
                judged = probabilities.argmax(1)
                hits = int((judged == class_index).sum())
                readings = ", ".join(f"{p:.2f}" + ("" if j == class_index else f" ({CIFAR10_CLASSES[j]})") for p, j in zip(chosen.tolist(), judged.tolist()))
                text = (f"**{count} samples of '{CIFAR10_CLASSES[class_index]}'** in {time.perf_counter() - start:.1f} s ({steps} DDIM steps, guidance {guidance:g}, "
                        f"seed {seed}). The judge (ResNet-20) calls **{hits}/{count}** of them '{CIFAR10_CLASSES[class_index]}'; its confidence for that "
                        f"class per sample (its own pick in brackets when different): {readings}.")
            yield show(frame.x.clamp(-1, 1), columns), show(frame.x0, columns), text


def noise_schedule_text(mode: str, report_t: int, ddpm_t: int, schedule: str) -> str:
    shown = "linear" if schedule == "linear" else "cosine"
    if mode == "report":
        sigma = report_sigma(report_t)
        abar = alphas_cumprod(schedule)
        equivalent = report_equivalent_step(sigma, abar) if sigma > 0 else 0
        return (f"The report's t = {report_t}: titled **'Noise Level {report_t / 10:g}'**, the true σ is **{sigma:.2f}** (≈ {sigma * 127.5:.1f} grey levels of 255), "
                f"clipped to [−1, 1], the signal not scaled down. Equivalent DDPM step ({shown} schedule): ≈ **{equivalent}** of 1000.")
    abar = float(alphas_cumprod(schedule)[ddpm_t])
    return (f"DDPM step t = {ddpm_t} ({shown} schedule): x_t = √ᾱ·x0 + √(1 − ᾱ)·ε with **ᾱ_t = {abar:.4g}**, √ᾱ = {abar ** 0.5:.3f}, "
            f"**SNR = {abar / (1 - abar):.3g}** ({10 * np.log10(abar / (1 - abar)):.1f} dB); no clipping. The report's largest σ = 0.1 is step ≈ "
            f"{report_equivalent_step(0.1, alphas_cumprod(schedule))}.")


def forward_noise(image_signed: torch.Tensor, mode: str, report_t: int, ddpm_t: int, schedule: str, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    if mode == "report":
        return add_noise(image_signed, report_t, generator=generator)
    abar = alphas_cumprod(schedule)[ddpm_t]
    noise = torch.randn(image_signed.shape, generator=generator)
    return abar.sqrt() * image_signed + (1 - abar).sqrt() * noise


def schedule_figure(ddpm_t: int, report_t: int):
    figure = cards.new_figure((6.4, 2.8))
    left, right = figure.subplots(1, 2)
    steps = np.arange(1000)
    for schedule, style in (("squaredcos_cap_v2", "-"), ("linear", "--")):
        abar = alphas_cumprod(schedule).numpy()
        label = "cosine" if schedule != "linear" else "linear"
        left.plot(steps, abar, style, label=label)
        right.semilogy(steps, snr(torch.from_numpy(abar)).numpy(), style, label=label)
    for axis in (left, right):
        axis.axvspan(0, report_equivalent_step(0.1, alphas_cumprod("linear")), color="tab:red", alpha=0.2, label="report's range (linear)")
        axis.axvline(ddpm_t, color="k", lw=0.8)
        axis.set_xlabel("DDPM step t")
    left.set_title("ᾱ_t")
    right.set_title("SNR = ᾱ/(1 − ᾱ)")
    left.legend(fontsize=7)
    return figure


@torch.no_grad()
def report_denoise(model: ReportDenoiser, image_signed: torch.Tensor, label: int, t: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
    """(noisy, output with `label`, outputs with every label (10, 3, 32, 32), numbers) at the report's step t."""
    noisy = add_noise(image_signed, t, generator=torch.Generator().manual_seed(seed))
    every = model(noisy.expand(10, -1, -1, -1), torch.arange(10))
    output = every[label : label + 1]
    numbers = {"identity_psnr": psnr(noisy, image_signed).item(), "model_psnr": psnr(output, image_signed).item(),
               "identity_mse": (noisy - image_signed).pow(2).mean().item(), "model_mse": (output - image_signed).pow(2).mean().item(),
               "largest_change_between_labels": (every - output).abs().max().item(), "mean_change_between_labels": (every - output).abs().mean().item()}
    return noisy, output, every, numbers


# ------------------------------------------------------------------------------------------------ metrics panel
def _metrics(name: str) -> dict:
    with contextlib.suppress(registry.CheckpointError, OSError, ValueError):
        return registry.load_card(name).get("metrics", {})
    return {}


def metrics_figure():
    """Class consistency vs guidance and vs steps, and the one-step PSNR chart, from the cards."""
    ddpm, report = _metrics(DDPM), _metrics(REPORT)
    chart = ddpm.get("one_step_chart") or report.get("one_step_chart")
    if not ddpm and not chart:
        return None
    figure = cards.new_figure((9.6, 3.0))
    first, second, third = figure.subplots(1, 3)
    if "class_consistency_vs_guidance" in ddpm:
        guidance = ddpm["class_consistency_vs_guidance"]
        first.plot([float(k) for k in guidance], [100 * v for v in guidance.values()], "o-", label="ours (DDPM)")
        first.axhline(50, color="tab:green", ls="--", lw=0.8, label="target 50 %")
        first.axhline(10, color="gray", ls=":", lw=0.8, label="chance")
        first.axhline(100 * ddpm.get("judge_accuracy_real", 0.85), color="tab:purple", ls=":", lw=0.8, label="judge on real")
        first.set_xlabel("guidance scale s")
        first.set_ylabel("class consistency (%)")
        first.legend(fontsize=7)
        steps = ddpm.get("class_consistency_vs_steps_at_guidance_3", {})
        second.semilogx([int(k) for k in steps], [100 * v for v in steps.values()], "o-")
        second.set_xlabel("DDIM steps (guidance 3)")
        second.set_ylabel("class consistency (%)")
        for axis in (first, second):
            axis.set_ylim(0, 100)
    if chart:
        for key, label in (("identity", "identity (noisy input)"), ("report", "report's denoiser"), ("ddpm", "DDPM one-step x̂0")):
            values = chart.get(key)
            if values and all(v is not None for v in values):
                third.semilogx(chart["sigma"], values, "o-", ms=3, label=label)
        third.axvspan(0.02, 0.1, color="tab:red", alpha=0.15, label="report's σ range")
        third.set_xlabel("noise σ (x0 + σε)")
        third.set_ylabel("PSNR of x̂0 (dB)")
        third.set_title("the chart the report promised", fontsize=9)
        third.legend(fontsize=7)
    return figure


def report_table() -> str:
    metrics = _metrics(REPORT)
    if "levels" not in metrics:
        return "*The report denoiser's card has no metrics yet: `python -m evaluation.diffusion`.*"
    lines = ["| report t (title) | true σ | identity MSE | model MSE | identity PSNR | model PSNR |", "|---|---|---|---|---|---|"]
    for t, row in metrics["levels"].items():
        identity = "∞" if row["identity_psnr"] is None else f"{row['identity_psnr']:.2f} dB"
        lines.append(f"| {t} ('Noise Level {int(t) / 10:g}') | {row['sigma']:.2f} | {row['identity_mse']:.5f} | {row['mse']:.5f} | {identity} | {row['psnr']:.2f} dB |")
    wrong = metrics.get("wrong_label_t5", {})
    if wrong:
        lines.append(f"\nWrong-label test at t = 5 ({metrics['test_images']:,} test images): a permuted label changes the MSE by "
                     f"**{wrong['permuted']['delta_mse']:+.2g}** and the output by {wrong['permuted']['mean_abs_output_change']:.4f} on average "
                     f"(one grey level is 0.0078); the largest change from any constant label is {wrong['largest_mean_abs_output_change']:.4f}.")
    return "\n".join(lines)


def headline() -> str:
    ours = HEADLINE[0].ours()
    return f"class consistency {100 * ours:.0f} % at guidance 3 (report: nothing generated)" if ours is not None else "ready"


def api_examples() -> dict[str, list[tuple]]:
    """Cheap requests (benchmarks/load.py, tests/test_load.py): one sample with 5 DDIM steps; the report's denoiser."""
    paths = example_images()[0]
    found = {"/diffusion": [(CIFAR10_CLASSES[c], 3.0, 5, seed, 1) for c, seed in ((3, 0), (0, 1), (8, 2))]}
    if len(paths) >= 3:
        found["/diffusion_report"] = [(str(paths[i]), CIFAR10_CLASSES[(i + 1) % 10], 5, 0) for i in range(3)]
    return found


# ---- thin adapters (the only place with gr.Error) ----
def _class(name: str) -> int:
    if name not in CIFAR10_CLASSES:
        raise gr.Error(f"Unknown class {name!r}; pick one of {', '.join(CIFAR10_CLASSES)}.")
    return CIFAR10_CLASSES.index(name)


def _check(guidance, steps, count=1):
    if not 0 <= float(guidance) <= 7:
        raise gr.Error("Guidance scale must be between 0 and 7.")
    if not 5 <= int(steps) <= 100:
        raise gr.Error("DDIM steps must be between 5 and 100.")
    if not 1 <= int(count) <= 16:
        raise gr.Error("Batch size must be between 1 and 16.")


def _image(path):
    try:
        return read_32(path)
    except UploadError as error:
        raise gr.Error(str(error)) from error


def _generate(class_name, guidance, steps, seed, count):
    _check(guidance, steps, count)
    model, judge = _load(DDPM), _load(JUDGE)
    yield from generation_frames(model, judge, _class(class_name), float(guidance), int(steps), int(seed), int(count))


def _forward(path, mode, report_t, ddpm_t, schedule, seed):
    image, _ = _image(path)
    mode = "report" if mode.startswith("report") else "ddpm"
    schedule = "linear" if schedule == "linear" else "squaredcos_cap_v2"
    noisy = forward_noise(image, mode, int(report_t), int(ddpm_t), schedule, int(seed))
    shown = noisy.clamp(-1, 1)
    return show(torch.cat([image, shown]), 2), noise_schedule_text(mode, int(report_t), int(ddpm_t), schedule), rendered(schedule_figure(int(ddpm_t), int(report_t)))


def _report(path, label_name, t, seed):
    image, true_class = _image(path)
    if not 0 <= int(t) <= 10:
        raise gr.Error("The report's t runs from 0 to 10 (σ = 0.01·t).")
    label = _class(label_name)
    noisy, output, every, n = report_denoise(_load(REPORT), image, label, int(t), int(seed))
    truth = f"true class **{CIFAR10_CLASSES[true_class]}**" if true_class is not None else "an upload (true class unknown)"
    text = (f"{truth}, label fed: **{label_name}**, t = {int(t)} (true σ = {report_sigma(int(t)):.2f}). Identity: MSE {n['identity_mse']:.5f}, "
            f"PSNR {n['identity_psnr']:.2f} dB. Report's denoiser: MSE {n['model_mse']:.5f}, PSNR {n['model_psnr']:.2f} dB. "
            f"Changing the label to any other class moves an output pixel by at most **{n['largest_change_between_labels']:.4f}** "
            f"(mean {n['mean_change_between_labels']:.5f}; one grey level is 0.0078). The one-hot planes are constant, so to the first convolution they are a per-class bias.")
    return show(torch.cat([image, noisy.clamp(-1, 1), output]), 3), show(every, 5), text


def _sdedit(path, target_name, t_star, guidance, steps, seed):
    _check(guidance, steps)
    if not 50 <= int(t_star) <= 950:
        raise gr.Error("t* must be between 50 and 950.")
    image, true_class = _image(path)
    target = _class(target_name)
    model, judge = _load(DDPM), _load(JUDGE)
    frames = sdedit(model, image, torch.tensor([target]), int(t_star), guidance=float(guidance), steps=int(steps),
                    generator=torch.Generator().manual_seed(int(seed)), precision="auto")
    every = max(1, int(steps) // 10)
    for frame in frames:
        if frame.index % every == 0 or frame.index == frame.total:
            text = f"step {frame.index}/{frame.total} (t = {frame.t})"
            if frame.index == frame.total:
                p = judge_probabilities(judge, torch.cat([image, frame.x.clamp(-1, 1)]))
                source = f"; p({CIFAR10_CLASSES[true_class]}) {p[0, true_class]:.2f} → {p[1, true_class]:.2f}" if true_class is not None else ""
                text = (f"Noised to t* = {int(t_star)}, denoised as **{target_name}** in {frame.total} DDIM steps. Judge: p({target_name}) "
                        f"{p[0, target]:.2f} → **{p[1, target]:.2f}**{source}.")
            yield show(torch.cat([image, frame.x.clamp(-1, 1), frame.x0]), 3), text


def _opened():
    paths = example_images()[0]
    table = metrics_table(HEADLINE) + "\n\n" + report_table()
    figure = metrics_figure()
    summary = cards.card_summary(DDPM) + "\n\n" + cards.card_summary(REPORT)
    curves = cards.plot_curves(DDPM, {"DDPM ε-MSE": ["loss", "validation_eps_mse_ema"]})
    first = str(paths[3]) if len(paths) > 3 else None
    return [str(p) for p in paths], first, first, first, table, figure, summary, curves


def build() -> serving.OnOpen:
    gr.Markdown(f"## {TITLE}\nThe course report called a one-step denoiser at σ = 0.05 'diffusion' and generated nothing. Here a real "
                "class-conditional DDPM (ε-prediction, cosine schedule, classifier-free guidance, EMA weights, DDIM sampling) makes "
                "CIFAR-10 images from noise, judged by an independent classifier, beside the report's denoiser and its wrong-label control.\n\n"
                + ABOUT.markdown())
    example_images()  # register the example files before launch (allowed_paths)
    if example_source()[2]:
        gr.Markdown(f"*{examples.SHIPPED_NOTE}*")
    with gr.Tab("Generate"):
        with gr.Row():
            class_name = gr.Dropdown(list(CIFAR10_CLASSES), value="cat", label="Class (cat and airplane were the report's)")
            guidance = gr.Slider(0, 7, value=3, step=0.5, label="Guidance scale s (0 unconditional, 1 conditional)")
            steps = gr.Slider(5, 100, value=25, step=1, label="DDIM steps")
            seed = gr.Number(value=0, precision=0, label="Seed")
            count = gr.Slider(1, 16, value=8, step=1, label="Batch")
        generate = gr.Button("Generate", variant="primary")
        with gr.Row():
            x_t = gr.Image(label="x_t (the reverse process)", height=300)
            x0 = gr.Image(label="predicted x̂0 at that step", height=300)
        generated_text = gr.Markdown()
    with gr.Tab("Forward noise"):
        with gr.Row():
            with gr.Column(scale=1):
                gallery = gr.Gallery(label="CIFAR-10 test images (click one)", columns=5, height=180, allow_preview=False)
                forward_image = image_upload(label="Image (resized to 32 px)", height=160)
                mode = gr.Radio(["report: σ = 0.01·t, clipped", "DDPM: q(x_t | x0)"], value="report: σ = 0.01·t, clipped", label="Forward process")
                report_t = gr.Slider(0, 10, value=5, step=1, label="report t (σ = 0.01·t)")
                ddpm_t = gr.Slider(0, 999, value=250, step=1, label="DDPM step t")
                schedule = gr.Radio(["cosine", "linear"], value="cosine", label="DDPM schedule")
                noise_seed = gr.Number(value=0, precision=0, label="Noise seed")
            with gr.Column(scale=2):
                forward_view = gr.Image(label="clean | noisy", height=200)
                forward_text = gr.Markdown()
                schedule_plot = gr.Image(label="ᾱ_t and SNR; the report's range shaded", height=260)
    with gr.Tab("Report's denoiser"):
        with gr.Row():
            with gr.Column(scale=1):
                report_image = image_upload(label="Image (pick one in 'Forward noise' or upload)", height=160)
                label_name = gr.Dropdown(list(CIFAR10_CLASSES), value="airplane", label="Label fed to the network (try a wrong one)")
                report_step = gr.Slider(0, 10, value=5, step=1, label="report t (trained at 5)")
                report_seed = gr.Number(value=0, precision=0, label="Noise seed")
                report_button = gr.Button("Denoise", variant="primary")
            with gr.Column(scale=2):
                report_view = gr.Image(label="clean | noisy | denoised", height=200)
                every_label = gr.Image(label="the output with each of the 10 labels", height=200)
                report_text = gr.Markdown()
    with gr.Tab("SDEdit class swap"):
        with gr.Row():
            with gr.Column(scale=1):
                sdedit_image = image_upload(label="Image (pick one in 'Forward noise' or upload)", height=160)
                target = gr.Dropdown(list(CIFAR10_CLASSES), value="airplane", label="Denoise as")
                t_star = gr.Slider(50, 950, value=500, step=50, label="t* (how far to noise)")
                sdedit_guidance = gr.Slider(0, 7, value=3, step=0.5, label="Guidance scale")
                sdedit_steps = gr.Slider(5, 100, value=50, step=1, label="DDIM steps (of the full chain)")
                sdedit_seed = gr.Number(value=0, precision=0, label="Seed")
                sdedit_button = gr.Button("Swap", variant="primary")
            with gr.Column(scale=2):
                sdedit_view = gr.Image(label="input | x_t | predicted x̂0", height=200)
                sdedit_text = gr.Markdown()
    with gr.Accordion("Metrics: the report vs ours, the one-step chart, training", open=True):
        table = gr.Markdown()
        figure = gr.Plot(label="class consistency and the one-step x̂0 chart")
        summary = gr.Markdown()
        curves = gr.Plot(label="DDPM training curve")

    generate.click(_generate, [class_name, guidance, steps, seed, count], [x_t, x0, generated_text], **serving.model_event("diffusion", "diffusion"))
    forward_inputs = [forward_image, mode, report_t, ddpm_t, schedule, noise_seed]
    forward_outputs = [forward_view, forward_text, schedule_plot]
    for control in (mode, report_t, ddpm_t, schedule, noise_seed):
        control.change(_forward, forward_inputs, forward_outputs, **serving.model_event("diffusion"))
    forward_image.change(_forward, forward_inputs, forward_outputs, **serving.model_event("diffusion"))

    def pick(event: gr.SelectData):
        path = str(example_images()[0][event.index])
        return path, path, path

    gallery.select(pick, None, [forward_image, report_image, sdedit_image], **serving.internal_event())
    report_button.click(_report, [report_image, label_name, report_step, report_seed], [report_view, every_label, report_text],
                        **serving.model_event("diffusion", "diffusion_report"))
    sdedit_button.click(_sdedit, [sdedit_image, target, t_star, sdedit_guidance, sdedit_steps, sdedit_seed], [sdedit_view, sdedit_text],
                        **serving.model_event("diffusion"))
    return serving.OnOpen(_opened, [gallery, forward_image, report_image, sdedit_image, table, figure, summary, curves])


if __name__ == "__main__":
    import sys

    serving.run_alone(sys.modules[__name__])
