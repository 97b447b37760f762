"""Train the report's simple VAE or the Tri-VAE on tumour-free brain MRI slices (LGG FLAIR, split by patient).

    python -m training.trivae --model trivae --noise coarse     # CPU preset, 128 px: about an hour on 2 cores
    python -m training.trivae --model trivae --noise simplex
    python -m training.trivae --model vae                       # the report's simple VAE (no noise)
    python -m training.trivae --preset report --model trivae    # the report's 256 px, 16…512-channel model (GPU)
    python -m training.trivae --dry-run                         # a few steps on tiny generated slices

Losses (spec §A3, §A6; every weight configurable, the report's are all 1):
- VAE: L1(x̂, x) + L1(aux, ↓x) + KL + (1 − SSIM(x̂, x)); with `--noise` the input is noised and the targets stay
  clean (a denoising VAE, an ablation the report did not run);
- Tri-VAE: anchor a, positive p (two healthy slices) and negative n = a third healthy slice plus noise:
  L1(aux, ↓·) on a, p, n (target: clean n) + L1(x̂_n, n) + KL(a) + KL(p) + triplet(μ_a, μ_p, μ_n; margin 1,
  squared L2) + (1 − SSIM(x̂_n, n)).
Fixes (spec §A12): SSIM always with data_range 1; a per-triplet hinge (`--triplet-mode batch` is the report's);
noise differs per sample, stays inside the head and is clamped to [0, 1]; the best weights by a validation loss on
tumour-free slices of validation patients are restored at the end (the report early-stopped on the training loss
and reloaded the wrong file). Then the residual thresholds are chosen on those validation slices (the
`threshold_percentile` of residuals inside the brain mask, raw and median-filtered) and stored in the checkpoint.
Writes `trivae-<model>[-<noise>]`; `python -m evaluation.trivae` measures it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.functional.image import structural_similarity_index_measure

from models.runtime import autocast
from models.trivae import SimpleVAE, SimpleVAEConfig, TriVAE, TriVAEConfig, anomaly_maps, brain_mask
from nndl_data.trivae import LGG, Slices, add_noise, lgg_patients, load_lgg_splits, split_patients
from training.common import BaseTrainConfig, BestWeights, batch_indices, initialise_from, parse_config
from training.loop import Run

SLUG = "trivae"


@dataclass
class TrainConfig(BaseTrainConfig):
    precision: str = "fp32"  # bf16 autocast (--precision auto/bf16) is wired in but its effect on this system's Dice is unmeasured
    model: str = "trivae"  # vae | trivae
    noise: str = ""  # none | coarse | simplex; default: none for the VAE, coarse for the Tri-VAE
    name: str = ""  # checkpoint name; default trivae-<model>[-<noise>]
    image_size: int = 128
    base_channels: int = 8
    latent_dim: int = 0  # 0 = the report's: 128 (VAE), 256 (Tri-VAE)
    bottleneck_skip: bool = True
    steps: int = 1200  # ≈ 15 epochs of triplets; about an hour on 2 CPU cores
    batch_size: int = 16
    learning_rate: float = 0.0  # 0 = the report's: 1e-4 (VAE), 3e-4 (Tri-VAE); Adam, no schedule
    l1_weight: float = 1.0
    auxiliary_weight: float = 1.0
    kl_weight: float = 1.0
    triplet_weight: float = 1.0
    ssim_weight: float = 1.0
    margin: float = 1.0
    triplet_mode: str = "per_sample"  # per_sample | batch (the report's hinge on batch means)
    negative_from_anchor: bool = False  # True: the negative is the noised anchor (an aligned, harder triplet)
    noise_sigma: float = 0.2  # coarse: σ of the 16×16 lattice (the report); simplex: σ of the whole pattern
    noise_grid: int = 16
    simplex_frequency: float = 2**-6  # cycles per pixel at 256 px (the report's)
    flip: bool = True  # random left-right flips (the report used no augmentation)
    split_seed: int = 0
    threshold_percentile: float = 99.0
    median_filter_size: int = 5
    log_every: int = 25
    eval_every: int = 200
    save_every: int = 200


PRESETS = {
    "cpu": TrainConfig(),
    # The report: 256 px, channels 16…512 (20.4 M / 33.0 M parameters); 20 epochs of ≈1,250 slices at batch 16.
    "report": TrainConfig(image_size=256, base_channels=16, steps=1600, batch_size=16),
}

MODELS = {"vae": (SimpleVAE, SimpleVAEConfig), "trivae": (TriVAE, TriVAEConfig)}


def checkpoint_name(cfg: TrainConfig) -> str:
    return cfg.name or f"{SLUG}-{cfg.model}" + ("" if cfg.noise == "none" else f"-{cfg.noise}")


def resolve(cfg: TrainConfig) -> TrainConfig:
    if cfg.model not in MODELS:
        raise SystemExit(f"--model must be one of {sorted(MODELS)}, not {cfg.model!r}")
    noise = cfg.noise or ("none" if cfg.model == "vae" else "coarse")
    if noise not in ("none", "coarse", "simplex"):
        raise SystemExit(f"--noise must be none, coarse or simplex, not {noise!r}")
    if cfg.model == "trivae" and noise == "none":
        raise SystemExit("the Tri-VAE needs noised negatives: --noise coarse or simplex")
    if cfg.triplet_mode not in ("per_sample", "batch"):
        raise SystemExit("--triplet-mode must be per_sample or batch")
    learning_rate = cfg.learning_rate or (1e-4 if cfg.model == "vae" else 3e-4)
    cfg = dataclasses.replace(cfg, noise=noise, learning_rate=learning_rate)
    if cfg.dry_run:
        cfg = dataclasses.replace(cfg, image_size=32, base_channels=4, steps=4, batch_size=4, log_every=1, eval_every=2, save_every=2)
    return cfg


def model_config(cfg: TrainConfig):
    _, config_class = MODELS[cfg.model]
    values = dict(image_size=cfg.image_size, base_channels=cfg.base_channels, bottleneck_skip=cfg.bottleneck_skip,
                  median_filter_size=cfg.median_filter_size)
    if cfg.latent_dim:
        values["latent_dim"] = cfg.latent_dim
    return config_class(**values)


def fake_slices(count: int, size: int, seed: int, tumours: bool = False) -> Slices:
    """Generated ellipse 'heads' with texture (and a bright blob as 'tumour'): the dry-run data."""
    generator = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size] / size - 0.5
    images, masks = [], []
    for _ in range(count):
        a, b = generator.uniform(0.3, 0.45, 2)
        head = (rows / a) ** 2 + (cols / b) ** 2 < 1
        image = head * (0.35 + 0.05 * generator.standard_normal((size, size)))
        mask = np.zeros((size, size), bool)
        if tumours:
            cy, cx = generator.uniform(-0.15, 0.15, 2)
            mask = ((rows - cy) ** 2 + (cols - cx) ** 2 < 0.01) & head
            image = np.where(mask, 0.8, image)
        images.append(np.clip(image, 0, 1))
        masks.append(mask)
    return Slices(torch.from_numpy((np.stack(images) * 255).astype(np.uint8)), torch.from_numpy(np.stack(masks)),
                  [f"fake_{i}" for i in range(count)], [f"fake_patient_{i % 5}" for i in range(count)])


def load_data(cfg: TrainConfig) -> dict[str, Slices]:
    if cfg.dry_run:
        return {"train": fake_slices(12, cfg.image_size, cfg.seed), "validation": fake_slices(6, cfg.image_size, cfg.seed + 1)}
    return load_lgg_splits(cfg.data_root, cfg.image_size, cfg.split_seed)


def ssim(x: torch.Tensor, y: torch.Tensor, sigma: float = 1.5, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004; torchmetrics) with a Gaussian window (11 px for σ = 1.5), K1 = 0.01, K2 = 0.03,
    for (B, 1, H, W); data_range always explicit. Averaged over the pixels whose window lies inside the image (a valid
    convolution, as pytorch_msssim): torchmetrics reflect-pads the image and averages over every pixel, so its
    border is cropped here. The same loss as the earlier hand-written one to float rounding (tests/test_trivae.py)."""
    _, full = structural_similarity_index_measure(x, y, gaussian_kernel=True, sigma=sigma, data_range=data_range, k1=0.01, k2=0.03,
                                                  return_full_image=True)  # (B, 1, H, W)
    border = int(3.5 * sigma + 0.5)  # torchmetrics' Gaussian window is 2·border + 1 wide
    return full[..., border:-border, border:-border].mean()


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) ‖ N(0, I)) summed over the latent, averaged over the batch (the report's KLD)."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / mu.shape[0]


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float, mode: str) -> torch.Tensor:
    positive_distance = (anchor - positive).pow(2).sum(1)  # (B,) squared L2
    negative_distance = (anchor - negative).pow(2).sum(1)
    if mode == "batch":  # the report: one hinge on the batch means
        return F.relu(positive_distance.mean() - negative_distance.mean() + margin)
    return F.relu(positive_distance - negative_distance + margin).mean()


class Batches:
    """Deterministic batches (a pure function of the step, so a resumed run sees the same data and noise)."""

    def __init__(self, cfg: TrainConfig, train: Slices, device: torch.device, shard=lambda batch: batch):
        self.cfg, self.device, self.shard = cfg, device, shard  # shard: this process's part of a batch (Run.shard)
        self.images = train.images.to(self.device)  # uint8 (N, S, S)
        self.foreground = brain_mask(train.floats(), erosion=0).to(self.device)  # (N, 1, S, S), where noise may go

    def take(self, step: int, stream: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = batch_indices(len(self.images), self.cfg.batch_size, step, self.cfg.seed * 7 + stream)
        flip = torch.rand(len(index), generator=torch.Generator().manual_seed(step * 3 + stream)) < 0.5  # drawn for the whole batch
        index, flip = self.shard(index).to(self.device), self.shard(flip).to(self.device)  # this process's part
        images, foreground = self.images[index].float().div(255).unsqueeze(1), self.foreground[index]
        if self.cfg.flip:
            images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
            foreground = torch.where(flip.view(-1, 1, 1, 1), foreground.flip(-1), foreground)
        return images, foreground  # (B, 1, S, S) in [0, 1], bool

    def noised(self, images: torch.Tensor, foreground: torch.Tensor, seed: int) -> torch.Tensor:
        options = {"grid": self.cfg.noise_grid} if self.cfg.noise == "coarse" else {"frequency": self.cfg.simplex_frequency}
        generator = torch.Generator().manual_seed(seed)
        return add_noise(images, self.cfg.noise, sigma=self.cfg.noise_sigma, foreground=foreground, generator=generator, **options)[0]


def training_loss(model, cfg: TrainConfig, batches: Batches, step: int) -> dict[str, torch.Tensor]:
    deep_size = getattr(model, "module", model).deep_size  # the model itself, also when DDP wraps it
    down = lambda t: F.interpolate(t, size=deep_size * 4, mode="bilinear", align_corners=False)  # noqa: E731  S/8
    noise_seed = cfg.seed * 1_000_003 + step
    if cfg.model == "vae":
        clean, foreground = batches.take(step, 0)
        inputs = clean if cfg.noise == "none" else batches.noised(clean, foreground, noise_seed)
        with autocast(cfg.precision, batches.device):
            output, auxiliary, mu, logvar = (t.float() for t in model(inputs))
        parts = {
            "l1": F.l1_loss(output, clean), "auxiliary_l1": F.l1_loss(auxiliary, down(clean)),
            "kl": kl_divergence(mu, logvar), "ssim": 1 - ssim(output, clean),
        }
    else:
        anchor, anchor_foreground = batches.take(step, 0)
        positive, _ = batches.take(step, 1)
        negative_clean, negative_foreground = (anchor, anchor_foreground) if cfg.negative_from_anchor else batches.take(step, 2)
        negative = batches.noised(negative_clean, negative_foreground, noise_seed)
        batch = anchor.shape[0]
        with autocast(cfg.precision, batches.device):  # one pass; GroupNorm is per sample
            output, auxiliary, mu, logvar = (t.float() for t in model(torch.cat([anchor, positive, negative])))
        targets = torch.cat([anchor, positive, negative_clean])
        parts = {
            "auxiliary_l1": 3 * F.l1_loss(auxiliary, down(targets)),  # the sum of the three L1 terms
            "l1": F.l1_loss(output[2 * batch :], negative_clean),
            "kl": kl_divergence(mu[:batch], logvar[:batch]) + kl_divergence(mu[batch : 2 * batch], logvar[batch : 2 * batch]),
            "triplet": triplet_loss(mu[:batch], mu[batch : 2 * batch], mu[2 * batch :], cfg.margin, cfg.triplet_mode),
            "ssim": 1 - ssim(output[2 * batch :], negative_clean),
        }
    weights = {"l1": cfg.l1_weight, "auxiliary_l1": cfg.auxiliary_weight, "kl": cfg.kl_weight, "triplet": cfg.triplet_weight, "ssim": cfg.ssim_weight}
    parts["loss"] = sum(weights[key] * value for key, value in parts.items())
    return parts


@torch.no_grad()
def validation_loss(model, cfg: TrainConfig, validation: tuple[torch.Tensor, torch.Tensor]) -> float:
    """L1 of the full-resolution output against clean validation slices; noised inputs (fixed noise) when the
    model was trained as a denoiser, clean inputs for the report's VAE."""
    clean, noised = validation
    was_training = model.training
    model.eval()
    total = 0.0
    for start in range(0, len(clean), 64):
        inputs = (clean if cfg.noise == "none" else noised)[start : start + 64]
        total += F.l1_loss(model(inputs)[0], clean[start : start + 64], reduction="sum").item()
    model.train(was_training)
    return total / clean.numel()


@torch.no_grad()
def calibrate_thresholds(model, images: torch.Tensor, percentile: float) -> dict[str, float]:
    """Store the `percentile` of healthy validation residuals inside the brain mask as the model's thresholds."""
    raw, filtered = [], []
    for start in range(0, len(images), 64):
        maps = anomaly_maps(model, images[start : start + 64])
        inside = maps["brain_mask"]
        raw.append(maps["residual"][inside].cpu())
        filtered.append(maps["residual_filtered"][inside].cpu())
    values = {"threshold": float(np.percentile(torch.cat(raw).numpy(), percentile)),
              "threshold_filtered": float(np.percentile(torch.cat(filtered).numpy(), percentile))}
    model.threshold.fill_(values["threshold"])
    model.threshold_filtered.fill_(values["threshold_filtered"])
    return values


def main(cfg: TrainConfig) -> Path:
    cfg = resolve(cfg)
    name = checkpoint_name(cfg)
    run = Run(cfg, name)
    data = load_data(cfg)
    model_class, _ = MODELS[cfg.model]
    model = model_class(model_config(cfg)).to(run.device).train()
    trained = run.wrap(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    best = BestWeights()
    start = run.resume(model=model, optimizer=optimizer, best=best)
    parent = initialise_from(cfg, model, start, run.run_dir, run.device)  # the report trained 10 + 10 epochs, and the simplex model from the coarse one
    batches = Batches(cfg, data["train"], run.device, run.shard)
    validation_clean = data["validation"].floats().to(run.device)
    validation_foreground = brain_mask(validation_clean, erosion=0)
    validation = (validation_clean, validation_clean if cfg.noise == "none" else batches.noised(validation_clean, validation_foreground, 12345))

    def step(step: int) -> dict:
        parts = training_loss(trained, cfg, batches, step)
        optimizer.zero_grad(set_to_none=True)
        parts["loss"].backward()
        optimizer.step()
        return parts

    def validate(done: int) -> dict:
        loss = validation_loss(model, cfg, validation)
        best.offer(loss, model, done)
        return {"validation_l1": loss}

    steps_done = run.train(cfg.steps, step, validate=validate, log_every=cfg.log_every, eval_every=cfg.eval_every, save_every=cfg.save_every)
    run.close()
    if best.weights is None or validation_loss(model, cfg, validation) < best.score:
        best.offer(validation_loss(model, cfg, validation), model, steps_done)
    model.load_state_dict(best.weights)
    model.eval()
    thresholds = calibrate_thresholds(model, validation_clean, cfg.threshold_percentile)
    split = {"seed": cfg.split_seed, "fractions": [0.7, 0.15, 0.15]}
    if not cfg.dry_run:
        split.update({key: len(value) for key, value in split_patients(lgg_patients(cfg.data_root), cfg.split_seed).items()})
    data_card = {
        "dataset": f"{LGG} (Buda et al. 2019, TCGA-LGG FLAIR, 128 px copy)" if not cfg.dry_run else "generated dry-run slices",
        "train": f"{len(data['train'])} tumour-free slices of the training patients",
        "validation": f"{len(data['validation'])} tumour-free slices of the validation patients (model selection, thresholds)",
        "patient_split": split,
        "preprocessing": "head mask (Otsu), median head intensity → 0.35, crop to the head, resize",
        "data_root": str(cfg.data_root or "$NNDL_DATA_ROOT or ../shared/data"),
    }
    return run.save_checkpoint(
        model, name, data=data_card, half=True, finished=run.finished(cfg.steps),
        best_step=best.step, best_validation_l1=round(best.score, 6), initialised_from=parent, thresholds={**thresholds, "percentile": cfg.threshold_percentile,
        "median_filter_size": cfg.median_filter_size, "chosen_on": "residuals inside the brain mask of the validation slices"},
    )


if __name__ == "__main__":
    main(parse_config(TrainConfig, PRESETS))
