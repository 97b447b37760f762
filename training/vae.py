"""Train the report's MNIST VAE (2-D latent) and the variants of §6.1: BCE vs MSE, β ∈ {0 (plain AE), 1, 4}.

    python -m training.vae --preset report        # the report: MSE-sum + KL, latent 2, Adam 1e-3, batch 128, 10 epochs
    python -m training.vae --preset bce           # the better variant: Bernoulli likelihood (BCE-sum) + KL
    python -m training.vae --preset bce-ae        # plain autoencoder (β = 0, no sampling), BCE; also mse-ae
    python -m training.vae --preset bce-beta4     # β = 4; also mse-beta4
    python -m training.vae --dry-run              # a few steps on generated digits

Every preset keeps the report's optimiser, batch and 10 epochs over the 60,000 training images (468 full batches an
epoch; the report's DataLoader also ran the last 96 images), so the variants differ only in the loss. The loss is
the report's: summed over the pixels *and the batch* (reduction='sum'), reconstruction + β·KL; the log shows it per
image. Training samples z = μ + σ·ε (one draw per image); every metric uses z = μ. No model selection: the last
weights are saved (the report's protocol), and the test split is never read here. Writes `vae-<preset>`;
`python -m evaluation.vae` measures it on the 10,000 test images.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from models.vae import VAE, VAEConfig, kl_divergence, reconstruction_loss
from nndl_data.digits import load_mnist
from training.common import BaseTrainConfig, batch_indices, initialise_from, parse_config
from training.loop import Run

SLUG = "vae"
TRAIN_IMAGES = 60_000


@dataclass
class TrainConfig(BaseTrainConfig):
    model: str = "report"  # names the checkpoint vae-<model>
    name: str = ""  # checkpoint name; default vae-<model>
    latent_dim: int = 2
    loss: str = "mse"  # mse (the report) | bce
    kl_weight: float = 1.0  # β (the report's λ); 0 trains the plain autoencoder (no log σ² head, z = μ)
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 1e-3
    log_every: int = 39  # 12 rows an epoch
    save_every: int = 234


PRESETS = {
    "report": TrainConfig(),
    "bce": TrainConfig(model="bce", loss="bce"),
    "bce-ae": TrainConfig(model="bce-ae", loss="bce", kl_weight=0.0),
    "bce-beta4": TrainConfig(model="bce-beta4", loss="bce", kl_weight=4.0),
    "mse-ae": TrainConfig(model="mse-ae", loss="mse", kl_weight=0.0),
    "mse-beta4": TrainConfig(model="mse-beta4", loss="mse", kl_weight=4.0),
}
PRESETS["better"] = PRESETS["bce"]
PRESETS["cpu"] = PRESETS["report"]  # minutes on one core


def checkpoint_name(cfg: TrainConfig) -> str:
    return cfg.name or f"{SLUG}-{cfg.model}"


def model_config(cfg: TrainConfig) -> VAEConfig:
    return VAEConfig(latent_dim=cfg.latent_dim, variational=cfg.kl_weight > 0,
                     likelihood="bernoulli" if cfg.loss == "bce" else "gaussian", **({"width": 4, "hidden_dim": 16} if cfg.dry_run else {}))


def generated_digits(count: int, seed: int = 0) -> torch.Tensor:
    """uint8 (count, 28, 28): random bright strokes on black (a dry run's stand-in for MNIST)."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.zeros(count, 28, 28)
    rows = torch.arange(28).view(1, 28, 1).float()
    for _ in range(3):  # three blurry segments each
        centre = 6 + 16 * torch.rand(count, 2, generator=generator)
        images += torch.exp(-((rows - centre[:, 0, None, None]) ** 2 + (rows.transpose(1, 2) - centre[:, 1, None, None]) ** 2) / 8)
    return (images.clamp(0, 1) * 255).to(torch.uint8)


def training_images(cfg: TrainConfig) -> torch.Tensor:
    if cfg.dry_run:
        return generated_digits(64, cfg.seed)
    images, _ = load_mnist("train", cfg.data_root)
    return images


def main(cfg: TrainConfig) -> Path:
    if cfg.loss not in ("mse", "bce"):
        raise SystemExit(f"--loss must be mse or bce, not {cfg.loss!r}")
    if cfg.kl_weight < 0:
        raise SystemExit("--kl-weight must be ≥ 0")
    if cfg.dry_run:
        cfg = dataclasses.replace(cfg, epochs=1, batch_size=16, log_every=1, save_every=2)
    name = checkpoint_name(cfg)
    run = Run(cfg, name)
    train = training_images(cfg)
    model = VAE(model_config(cfg)).to(run.device).train()
    trained = run.wrap(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    start = run.resume(model=model, optimizer=optimizer)
    parent = initialise_from(cfg, model, start, run.run_dir, run.device)
    steps = cfg.epochs * max(len(train) // cfg.batch_size, 1)

    def step(step: int) -> dict:
        index = run.shard(batch_indices(len(train), cfg.batch_size, step, cfg.seed))
        x = train[index].to(run.device).float().div(255).unsqueeze(1)  # (B, 1, 28, 28) in [0, 1], ToTensor()
        with run.autocast():
            logits, mu, logvar = trained(x)  # z sampled (training mode), or z = μ for the plain autoencoder
        reconstruction = reconstruction_loss(logits.float(), x, cfg.loss)  # (B,)
        kl = kl_divergence(mu.float(), None if logvar is None else logvar.float())  # (B,)
        loss = (reconstruction + cfg.kl_weight * kl).sum()  # the report: summed over the batch
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"loss": loss / len(index), "reconstruction": reconstruction.mean(), "kl": kl.mean(), "epoch": step * cfg.batch_size / len(train)}

    run.train(steps, step, log_every=cfg.log_every, save_every=cfg.save_every)
    run.close()
    model.eval()
    data = {
        "dataset": "MNIST (LeCun et al. 1998), torchvision layout" if not cfg.dry_run else "generated dry-run digits",
        "train": f"all {len(train):,} training images, pixels in [0, 1] (ToTensor, no normalisation, no augmentation)",
        "test": "never read while training (python -m evaluation.vae measures the 10,000 test images)",
        "data_root": str(cfg.data_root or "$NNDL_DATA_ROOT or ../shared/data"),
    }
    return run.save_checkpoint(model, name, data=data, half=True, finished=run.finished(steps), epochs_trained=round(run.steps_done * cfg.batch_size / len(train), 3),
                               loss=f"{cfg.loss.upper()}-sum + {cfg.kl_weight:g}·KL, summed over the batch", initialised_from=parent)


if __name__ == "__main__":
    main(parse_config(TrainConfig, PRESETS))
