"""Train PixelDA (MNIST → MNIST-M): first the source-only baseline classifier, then G, D and the task classifier.

    python -m training.pixelda                    # CPU preset: ~1 h on 2 cores
    python -m training.pixelda --preset report    # the report's 30 epochs at batch 64 (GPU)
    python -m training.pixelda --preset paper     # the official 250k D+G step pairs at batch 32 (GPU, long)
    python -m training.pixelda --dry-run          # a few steps on tiny generated data

Losses follow the official D-step / G-step (spec §A5.3): D and the task classifier T minimise
    domain_loss_weight · [BCE(D(G(x_s, z)), 0) + BCE(D(x_t), 1)] + CE(T(x_s), y) + CE(T(G(x_s, z)), y),
G minimises
    style_transfer_loss_weight · BCE(D(G(x_s, z)), 1) + task_loss_in_g_weight · [CE(T(x_s), y) + CE(T(G(x_s, z)), y)]
with the README's weights (the report's α = 0.011, β = 0.01 are the last two). No content-similarity loss: its
official weight for MNIST-M is 0. MNIST-M labels are never used for training; the accuracy on a held-out slice of
the MNIST-M *test* split is logged for the curves only (no model selection: the final weights are the last step).
Writes checkpoints `pixelda-source-only`, `pixelda-adapted` (classifiers) and `pixelda-generator`; then run
`python -m evaluation.pixelda` to measure them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from models.pixelda import (
    PixelDAClassifier,
    PixelDAClassifierConfig,
    PixelDADiscriminator,
    PixelDADiscriminatorConfig,
    PixelDAGenerator,
    PixelDAGeneratorConfig,
)
from nndl_data.digits import load_mnist, load_mnist_m, mnist_to_rgb32
from training.common import BaseTrainConfig, batch_indices, parse_config
from training.loop import Run

SLUG = "pixelda"


@dataclass
class TrainConfig(BaseTrainConfig):
    """Defaults = the `cpu` preset: half-width generator and discriminator, ~1 h on 2 CPU cores."""

    precision: str = "fp32"  # bf16 autocast (--precision auto/bf16) is wired in but its effect on this system's accuracy is unmeasured
    baseline_steps: int = 1500  # source-only classifier steps (batch_size each)
    steps: int = 3000  # PixelDA steps; one step = one D(+T) update and one G update
    batch_size: int = 32
    generator_filters: int = 32  # official: 64
    residual_blocks: int = 4  # official: 6
    discriminator_filters: int = 32  # official: 64
    learning_rate: float = 1e-3
    beta1: float = 0.5
    weight_decay: float = 1e-5  # the official L2 on every weight
    grad_clip: float = 5.0
    lr_decay: float = 0.95  # staircase decay ×0.95 ...
    lr_decay_steps: int = 10_000  # ... every 20k official global steps = 10k of our D+G step pairs
    domain_loss_weight: float = 0.135603587834
    style_transfer_loss_weight: float = 0.0113173311334  # the report's α
    task_loss_in_g_weight: float = 0.0100959947002  # the report's β
    mnist_m_train_limit: int = 0  # 0 = every MNIST-M train image in the data root (15,000 here, 59,001 in the release)
    log_every: int = 25
    eval_every: int = 250
    save_every: int = 250


FULL_SIZE = dict(generator_filters=64, residual_blocks=6, discriminator_filters=64)  # the official architecture
PRESETS = {
    "cpu": TrainConfig(),
    # The report: 30 epochs of 48k MNIST images at batch 64 ≈ 22.5k steps; baseline 10 epochs.
    "report": TrainConfig(baseline_steps=9_400, steps=22_500, batch_size=64, **FULL_SIZE),
    # The official README: 16M training examples at batch 32 = 500k global steps = 250k D+G pairs.
    "paper": TrainConfig(baseline_steps=20_000, steps=250_000, batch_size=32, **FULL_SIZE),
}


def _tiny_config(cfg: TrainConfig) -> TrainConfig:
    """--dry-run: tiny models on generated data; 3 + 3 steps unless --baseline-steps / --steps say otherwise."""
    default = TrainConfig()
    return dataclasses.replace(
        cfg,
        baseline_steps=3 if cfg.baseline_steps == default.baseline_steps else cfg.baseline_steps,
        steps=3 if cfg.steps == default.steps else cfg.steps,
        batch_size=8, generator_filters=8, residual_blocks=1, discriminator_filters=8, log_every=1, eval_every=2, save_every=2,
    )


def _load_data(cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """uint8 tensors; MNIST stays 28×28 gray and is tiled/resized per batch."""
    if cfg.dry_run:
        generator = torch.Generator().manual_seed(cfg.seed)
        fake = lambda *shape: torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)  # noqa: E731
        labels = lambda n: torch.randint(0, 10, (n,), generator=generator)  # noqa: E731
        return {
            "mnist_train": fake(32, 28, 28), "mnist_train_labels": labels(32),
            "mnist_test": fake(16, 28, 28), "mnist_test_labels": labels(16),
            "mnist_m_train": fake(32, 3, 32, 32), "mnist_m_eval": fake(16, 3, 32, 32), "mnist_m_eval_labels": labels(16),
        }
    mnist_train, mnist_train_labels = load_mnist("train", cfg.data_root)
    mnist_test, mnist_test_labels = load_mnist("test", cfg.data_root)
    mnist_m_train, _ = load_mnist_m("train", cfg.data_root, limit=cfg.mnist_m_train_limit or None)  # labels unused
    mnist_m_eval, mnist_m_eval_labels = load_mnist_m("test", cfg.data_root, limit=1000)  # curves only
    return {
        "mnist_train": mnist_train, "mnist_train_labels": mnist_train_labels,
        "mnist_test": mnist_test[:1000], "mnist_test_labels": mnist_test_labels[:1000],
        "mnist_m_train": mnist_m_train, "mnist_m_eval": mnist_m_eval, "mnist_m_eval_labels": mnist_m_eval_labels,
    }


@torch.no_grad()
def accuracy(classifier: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy of `classifier` on float images in [0, 1]."""
    was_training = classifier.training
    classifier.eval()
    device = next(classifier.parameters()).device
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = classifier(images[start : start + batch_size].to(device))
        correct += (logits.argmax(1).cpu() == labels[start : start + batch_size]).sum().item()
    classifier.train(was_training)
    return correct / len(images)


def _set_learning_rate(optimizers, cfg: TrainConfig, pixelda_step: int) -> None:
    rate = cfg.learning_rate * cfg.lr_decay ** (pixelda_step // cfg.lr_decay_steps)
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = rate


def main(cfg: TrainConfig) -> dict[str, Path]:
    if cfg.dry_run:
        cfg = _tiny_config(cfg)
    run = Run(cfg, SLUG)
    device = run.device
    data = _load_data(cfg)
    as_float = lambda images: images.float().div(255)  # noqa: E731  uint8 (B, 3, 32, 32) → [0, 1]
    eval_sets = {
        "mnist": (mnist_to_rgb32(data["mnist_test"]), data["mnist_test_labels"]),
        "mnist_m": (data["mnist_m_eval"].float().div(255), data["mnist_m_eval_labels"]),
    }
    train_data = {key: data[key].to(device) for key in ("mnist_train", "mnist_train_labels", "mnist_m_train")}  # uint8: small

    classifier_config = PixelDAClassifierConfig(**({"conv_channels": (4, 8), "hidden": 16} if cfg.dry_run else {}))
    baseline = PixelDAClassifier(classifier_config).to(device)
    classifier = PixelDAClassifier(classifier_config).to(device)
    generator = PixelDAGenerator(PixelDAGeneratorConfig(filters=cfg.generator_filters, residual_blocks=cfg.residual_blocks)).to(device)
    discriminator = PixelDADiscriminator(PixelDADiscriminatorConfig(filters=cfg.discriminator_filters)).to(device)
    # Under torchrun each trained module averages its gradients over the processes; the G step reads D and T unwrapped
    # (their gradients from it are discarded: the D step zeroes them first).
    trained_baseline, trained_classifier = run.wrap(baseline), run.wrap(classifier)
    trained_generator, trained_discriminator = run.wrap(generator), run.wrap(discriminator)
    adam = dict(lr=cfg.learning_rate, betas=(cfg.beta1, 0.999), weight_decay=cfg.weight_decay)
    baseline_optimizer = torch.optim.Adam(baseline.parameters(), **adam)
    d_optimizer = torch.optim.Adam([*discriminator.parameters(), *classifier.parameters()], **adam)
    g_optimizer = torch.optim.Adam(generator.parameters(), **adam)
    run.resume(
        baseline=baseline, classifier=classifier, generator=generator, discriminator=discriminator,
        baseline_optimizer=baseline_optimizer, d_optimizer=d_optimizer, g_optimizer=g_optimizer,
    )
    total = cfg.baseline_steps + cfg.steps
    num_source, num_target = len(data["mnist_train"]), len(data["mnist_m_train"])

    def step(step: int) -> dict:
        batch = batch_indices(num_source, cfg.batch_size, step, cfg.seed)
        source_index = run.shard(batch)
        x_source = mnist_to_rgb32(train_data["mnist_train"][source_index])  # (B, 3, 32, 32), this process's part
        y_source = train_data["mnist_train_labels"][source_index]
        if step < cfg.baseline_steps:  # phase 1: source-only classifier, plain CE on logits
            with run.autocast():
                logits = trained_baseline(x_source).float()
            loss = F.cross_entropy(logits, y_source)
            baseline_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            baseline_optimizer.step()
            return {"phase": "baseline", "baseline_loss": loss}
        # phase 2: PixelDA
        _set_learning_rate([d_optimizer, g_optimizer], cfg, step - cfg.baseline_steps)
        x_target = as_float(train_data["mnist_m_train"][run.shard(batch_indices(num_target, cfg.batch_size, step, cfg.seed + 1))])
        noise = run.shard(generator.sample_noise(len(batch)))  # drawn for the whole batch, as G itself would draw it
        with run.autocast():
            fake = trained_generator(x_source, noise).float()  # (B, 3, 32, 32)
            real_logits, fake_logits = trained_discriminator(x_target).float(), trained_discriminator(fake.detach()).float()
            source_logits, transferred_logits = trained_classifier(x_source).float(), trained_classifier(fake.detach()).float()
        domain_loss = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)) + \
            F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
        source_task_loss = F.cross_entropy(source_logits, y_source)
        transferred_task_loss = F.cross_entropy(transferred_logits, y_source)
        d_loss = cfg.domain_loss_weight * domain_loss + source_task_loss + transferred_task_loss
        d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        torch.nn.utils.clip_grad_norm_([*discriminator.parameters(), *classifier.parameters()], cfg.grad_clip)
        d_optimizer.step()

        with run.autocast():
            g_logits, g_class_logits = discriminator(fake).float(), classifier(fake).float()
        style_loss = F.binary_cross_entropy_with_logits(g_logits, torch.ones_like(g_logits))
        g_task_loss = F.cross_entropy(g_class_logits, y_source)  # CE(T(x_s)) has no gradient in G
        g_loss = cfg.style_transfer_loss_weight * style_loss + cfg.task_loss_in_g_weight * g_task_loss
        g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        torch.nn.utils.clip_grad_norm_(generator.parameters(), cfg.grad_clip)
        g_optimizer.step()
        return {
            "phase": "pixelda", "d_loss": d_loss, "domain_loss": domain_loss, "g_style_loss": style_loss,
            "source_task_loss": source_task_loss, "transferred_task_loss": transferred_task_loss,
            "d_real": torch.sigmoid(real_logits).mean(), "d_fake": torch.sigmoid(fake_logits).mean(),
        }

    def validate(done: int) -> dict:
        model = baseline if done <= cfg.baseline_steps else classifier
        return {f"acc_{name}": accuracy(model, *pair) for name, pair in eval_sets.items()}

    run.train(total, step, validate=validate, log_every=cfg.log_every, eval_every=cfg.eval_every, save_every=cfg.save_every)
    run.close()
    return _write_checkpoints(cfg, run, baseline, classifier, generator)


def _write_checkpoints(cfg: TrainConfig, run: Run, baseline, classifier, generator) -> dict[str, Path]:
    data = {
        "source": "MNIST train (torchvision layout), tiled to RGB and resized to 32×32",
        "target": "MNIST-M train images, labels unused (DANN release layout)",
        "data_root": str(cfg.data_root or "$NNDL_DATA_ROOT or ../shared/data"),
        "generated_dry_run_data": cfg.dry_run,
    }
    finished = run.finished(cfg.baseline_steps + cfg.steps)
    roles = {
        "pixelda-source-only": (baseline, "source-only baseline classifier (MNIST only)", False),
        "pixelda-adapted": (classifier, "task classifier trained on MNIST + G(MNIST)", False),
        "pixelda-generator": (generator, "generator G(MNIST digit, z) → MNIST-M style", True),
    }
    return {name: run.save_checkpoint(module, name, data=data, half=half, finished=finished, role=role)
            for name, (module, role, half) in roles.items()}


if __name__ == "__main__":
    main(parse_config(TrainConfig, PRESETS))
