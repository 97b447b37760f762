"""Train EndoVAE on Kvasir-SEG: the report's model, a better variant, and a normal-mucosa model for polyp maps.

    python -m training.endovae --preset report --max-minutes 30   # the paper/report model: 96 px resize, latent 6, MSE, β 1
    python -m training.endovae --preset better                    # centre crop, convolutional latent, loss/β from the sweep
    python -m training.endovae --preset normal                    # polyp-free 32 px patches of training frames only
    python -m training.endovae --preset better --loss bce --kl-weight 0.1 --steps 300 --name endovae-sweep-bce-0.1 \\
        --checkpoint-root runs/endovae-sweep                      # one run of the validation sweep (docs/endovae.md)
    python -m training.endovae --recalibrate endovae-normal       # the anomaly map chosen on valid again, same weights
    python -m training.endovae --dry-run                          # a few steps on a generated Kvasir-SEG layout

Loss (spec §B4): the reconstruction term summed over the pixels of an image (`--loss mse`, the report's, or `bce`,
the paper's, on logits) + β·KL(q(z|x) ‖ N(0, I)) summed over the latent, averaged over the batch (the report summed
over the batch as well; Adam does not care). Training samples z; validation and every metric use z = μ.
The report's preset keeps its settings (batch 128, Adam 1e-3, no schedule, no augmentation, 1,000 epochs = 5,000
steps); on this CPU it is cut by `--max-minutes` and resumes where it stopped. The best weights by validation
(PSNR on the valid split; the normal-mucosa model: reconstruction error on polyp-free validation patches) are the
ones saved (the normal-mucosa model: `--select-by pixel_auroc` keeps the best valid AUROC instead). The normal-mucosa
model then picks, on the valid split's frames and masks, its anomaly map's colour channels (RGB or blue), whether the
error is divided by the typical error at its position (a table from the polyp-free pixels of the training frames),
the smoothing and the erosion of the field-of-view mask (best pixel AUROC), and its anomaly thresholds (pixel: the best pooled Dice of the smoothed error map;
patch: the best Youden J of polyp vs polyp-free patches)
and stores them in the checkpoint. Writes `endovae-<model>`; `python -m evaluation.endovae` measures it.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models import registry
from models.endovae import (EndoVAE, EndoVAEConfig, best_dice_threshold, best_youden_threshold, error_maps, finish_map, patch_labels,
                            patch_scores, pixel_auroc, pixel_error, position_error_table, psnr, with_map_settings)
from nndl_data.endovae import KVASIR, load_split, polyp_free_patches, write_fake_kvasir
from training.common import BaseTrainConfig, BestWeights, batch_indices, initialise_from, parse_config
from training.loop import Run

SLUG = "endovae"


@dataclass
class TrainConfig(BaseTrainConfig):
    model: str = "report"  # report | better | normal (sets the name; the architecture is in the fields below)
    name: str = ""  # checkpoint name; default endovae-<model>
    image_size: int = 96
    width: int = 16
    latent_dim: int = 6
    latent_channels: int = 0  # > 0: convolutional latent (better, normal)
    preprocess: str = "resize"  # resize (the report) | crop
    crop_fraction: float = 1.0
    patches: bool = False  # train on polyp-free image_size² patches of the (frame_size px) training frames
    frame_size: int = 128
    patch_stride: int = 8  # stride of the training patches
    loss: str = "mse"  # mse (the report's final code) | bce (the paper)
    kl_weight: float = 1.0  # β
    steps: int = 5000
    batch_size: int = 128
    learning_rate: float = 1e-3
    schedule: str = "constant"  # constant (the report) | cosine
    flip: bool = False  # random horizontal and vertical flips
    grad_clip: float = 0.0  # 0 = none (the report)
    initial_log_variance: float = 0.0  # bias of a convolutional latent's log σ² head at the start: < 0 starts nearly deterministic
    kaiming_init: bool = False  # He-normal convolutions, zero biases (PyTorch's default init shrinks the signal through 13 ReLU layers)
    anomaly_sigma: float = 2.0
    select_by: str = "patch_mse"  # normal model: keep the weights with the lowest patch_mse on polyp-free valid patches, or the best pixel_auroc on valid frames
    selection_sigma: float = 4.0  # pixel_auroc selection: the smoothing and field-of-view erosion of the map it scores
    selection_erosion: int = 10
    anomaly_channels: str = "rgb"  # the map's colour channels during training (pixel_auroc selection); the final map is chosen on valid
    recalibrate: str = ""  # a trained normal-mucosa checkpoint: choose its map settings and thresholds on valid again, no training
    log_every: int = 10
    eval_every: int = 100
    save_every: int = 50


PRESETS = {
    # The paper / report: 96 px direct resize, latent 6, MSE + β·KL with β = 1, batch 128, Adam 1e-3, 1,000 epochs.
    "report": TrainConfig(),
    # The B10 variant: a centre crop of 96 px out of 128 (no resampling, fewer black corners and overlays), half the
    # width (no 36,864-wide FC), a convolutional 8 × 12 × 12 latent, He init; loss and β from the validation sweep
    # (docs/endovae.md: MSE and BCE at β 0.01 tied within 0.01 dB after 100 steps, β 0.1 was lower).
    "better": TrainConfig(model="better", width=8, latent_channels=8, preprocess="crop", crop_fraction=0.75, loss="mse",
                          kl_weight=0.01, steps=1000, batch_size=32, schedule="cosine", flip=True, kaiming_init=True, initial_log_variance=-5.0,
                          eval_every=100, save_every=100),
    # Normal mucosa: 32 px polyp-free patches of the 128 px training frames, a tight 4-channel latent at 1/8.
    "normal": TrainConfig(model="normal", image_size=32, width=8, latent_channels=4, preprocess="crop", crop_fraction=1.0,
                          patches=True, loss="mse", kl_weight=1.0, steps=2000, batch_size=64, schedule="cosine", flip=True,
                          kaiming_init=True, eval_every=500, save_every=250),
}
PRESETS["cpu"] = PRESETS["report"]


def checkpoint_name(cfg: TrainConfig) -> str:
    return cfg.name or f"{SLUG}-{cfg.model}"


def resolve(cfg: TrainConfig) -> TrainConfig:
    if cfg.loss not in ("mse", "bce"):
        raise SystemExit(f"--loss must be mse or bce, not {cfg.loss!r}")
    if cfg.select_by not in ("patch_mse", "pixel_auroc"):
        raise SystemExit(f"--select-by must be patch_mse or pixel_auroc, not {cfg.select_by!r}")
    if cfg.schedule not in ("constant", "cosine"):
        raise SystemExit(f"--schedule must be constant or cosine, not {cfg.schedule!r}")
    if cfg.dry_run:
        size = 16 if cfg.patches else 32
        cfg = dataclasses.replace(cfg, image_size=size, width=4, frame_size=64, steps=4, batch_size=4, log_every=1,
                                  eval_every=2, save_every=2, patch_stride=16)
    return cfg


def model_config(cfg: TrainConfig) -> EndoVAEConfig:
    return EndoVAEConfig(image_size=cfg.image_size, width=cfg.width, latent_dim=cfg.latent_dim, latent_channels=cfg.latent_channels,
                         preprocess=cfg.preprocess, crop_fraction=cfg.crop_fraction, frame_size=cfg.frame_size if cfg.patches else 0,
                         anomaly_sigma=cfg.anomaly_sigma, anomaly_channels=cfg.anomaly_channels)


def data_root(cfg: TrainConfig, run_dir: Path):
    if not cfg.dry_run:
        return cfg.data_root
    root = run_dir / "fake-data"
    if not (root / KVASIR).exists():
        write_fake_kvasir(root, size=64)
    return root


def load_data(cfg: TrainConfig, config: EndoVAEConfig, root) -> dict:
    """Training tensors (uint8 (N, 3, S, S): frames, or polyp-free patches) and the validation frames and masks."""
    frame_size = cfg.frame_size if cfg.patches else config.image_size
    train = load_split("train", root, size=None if not cfg.dry_run else 64)
    valid = load_split("valid", root, size=None if not cfg.dry_run else 64)
    train_images, train_masks = train.prepared(config, frame_size)
    valid_images, valid_masks = valid.prepared(config, frame_size)
    data = {"frames": len(train), "valid_images": valid_images, "valid_masks": valid_masks}
    if cfg.patches:
        data["train_images"], data["train_masks"] = train_images, train_masks  # the position table of the anomaly map
        data["train"], _ = polyp_free_patches(train_images, train_masks, cfg.image_size, cfg.patch_stride)
        data["valid_patches"], _ = polyp_free_patches(valid_images, valid_masks, cfg.image_size, cfg.image_size)
    else:
        data["train"] = train_images
    return data


def reconstruction_loss(logits: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Summed over an image's pixels and channels, averaged over the batch."""
    if kind == "bce":
        total = F.binary_cross_entropy_with_logits(logits, target, reduction="sum")
    else:
        total = (torch.sigmoid(logits) - target).pow(2).sum()
    return total / target.shape[0]


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) summed over the latent, averaged over the batch."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / mu.shape[0]


@torch.no_grad()
def reconstruct_all(model: EndoVAE, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """uint8 (N, 3, S, S) → float reconstructions (z = μ)."""
    return torch.cat([model.reconstruct(images[i : i + batch_size].float().div(255)) for i in range(0, len(images), batch_size)])


@torch.no_grad()
def validation_metrics(model: EndoVAE, cfg: TrainConfig, data: dict) -> dict[str, float]:
    was_training = model.training
    model.eval()
    if cfg.patches:
        patches = data["valid_patches"].float().div(255)
        error = (reconstruct_all(model, data["valid_patches"]) - patches).pow(2).mean().item()
        maps = error_maps(model, data["valid_images"])
        scored = with_map_settings(model, anomaly_sigma=cfg.selection_sigma, field_of_view_erosion=cfg.selection_erosion)
        result = {"validation_patch_mse": error, "validation_pixel_auroc": pixel_auroc(maps, data["valid_masks"]),
                  "validation_pixel_auroc_fov": pixel_auroc(error_maps(scored.eval(), data["valid_images"]), data["valid_masks"])}
    else:
        images = data["valid_images"].float().div(255)
        result = {"validation_psnr": psnr(reconstruct_all(model, data["valid_images"]), images).mean().item()}
    model.train(was_training)
    return result


SMOOTHING = (1.0, 2.0, 4.0, 8.0)  # σ (px) of the error map's Gaussian smoothing tried on the valid split
FIELD_OF_VIEW_EROSION = (0, 3, 6, 10)  # px of erosion of the lit field of view tried on the valid split (0 = no mask)
CHANNELS = ("rgb", "b")  # colour channels of the squared error tried on the valid split
POSITION_NORMALISED = (False, True)  # error divided by the typical error at its position (from polyp-free training pixels) or not


@torch.no_grad()
def choose_map_settings(model: EndoVAE, frames: torch.Tensor, masks: torch.Tensor, train_frames: torch.Tensor | None = None,
                        train_masks: torch.Tensor | None = None) -> tuple[EndoVAE, dict[str, float]]:
    """The anomaly map's colour channels, position normalisation (its table from the polyp-free pixels of the
    training frames), smoothing σ and field-of-view erosion with the best pixel AUROC on validation frames: the
    model rebuilt with them (and its position table)."""
    images = frames.float().div(255)
    reconstruction = reconstruct_all(model, frames)
    scores, tables = {}, {}
    for channels in CHANNELS:
        for normalised in POSITION_NORMALISED:
            if normalised and train_frames is None:
                continue
            candidate = with_map_settings(model, anomaly_channels=channels, position_normalised=normalised)
            if normalised:
                tables[channels] = position_error_table(candidate, train_frames, train_masks)
                candidate.position_error.copy_(tables[channels])
            error = pixel_error(candidate, images, reconstruction)
            for sigma in SMOOTHING:
                for erosion in FIELD_OF_VIEW_EROSION:
                    maps = finish_map(with_map_settings(candidate, field_of_view_erosion=erosion), images, error, sigma)
                    scores[channels, normalised, sigma, erosion] = pixel_auroc(maps[:, 0], masks)
    channels, normalised, sigma, erosion = max(scores, key=scores.get)
    chosen = with_map_settings(model, anomaly_channels=channels, position_normalised=normalised, anomaly_sigma=sigma,
                               field_of_view_erosion=erosion)
    if normalised:
        chosen.position_error.copy_(tables[channels])
    labels = {(c, n, s, e): f"{c}{', per position' if n else ''}, sigma {s:g}, erosion {e}" for c, n, s, e in scores}
    return chosen.eval(), {labels[key]: round(value, 4) for key, value in scores.items()}


def choose_and_calibrate(model: EndoVAE, data: dict) -> tuple[EndoVAE, dict]:
    """The map settings (`choose_map_settings`) and the thresholds (`calibrate`), all on the valid split: the model
    with them, and what goes into the card."""
    model, settings = choose_map_settings(model, data["valid_images"], data["valid_masks"], data.get("train_images"), data.get("train_masks"))
    thresholds = calibrate(model, data["valid_images"], data["valid_masks"])
    return model, {**thresholds, "anomaly_channels": model.config.anomaly_channels, "position_normalised": model.config.position_normalised,
                   "anomaly_sigma": model.config.anomaly_sigma, "field_of_view_erosion": model.config.field_of_view_erosion,
                   "validation_pixel_auroc_by_setting": settings,
                   "chosen_on": ("the valid split's frames and masks (channels, position normalisation, σ and erosion: best pixel AUROC; "
                                 "pixel threshold: best pooled Dice; patch: best Youden J); the position table from the train split's "
                                 "polyp-free lit pixels")}


def recalibrate(cfg: TrainConfig) -> Path:
    """Choose a trained normal-mucosa checkpoint's map settings and thresholds on valid again (no training): the
    checkpoint is rewritten in place (same fp16 weights), its card keeps its training record."""
    name, root = cfg.recalibrate, cfg.checkpoint_root
    model = registry.load(name, root=root)
    if not model.config.frame_size:
        raise SystemExit(f"{name} is not a normal-mucosa (patch) model")
    card = registry.load_card(name, root=root)
    cfg = dataclasses.replace(cfg, patches=True, image_size=model.config.image_size, frame_size=model.config.frame_size)
    data = load_data(cfg, model.config, data_root(cfg, Path(cfg.run_dir or ".")))
    model, thresholds = choose_and_calibrate(model, data)
    card = {key: value for key, value in card.items() if key not in ("metrics", "evaluation_command")}  # measured again by evaluation.endovae
    card["thresholds"] = thresholds
    card["recalibrated_with"] = f"python -m training.endovae --recalibrate {name}"
    directory = registry.checkpoint_dir(name, root)
    log = directory / "log.csv"
    keep = Path(tempfile.mkdtemp()) / "log.csv"
    if log.exists():
        shutil.copyfile(log, keep)
    return registry.save(model, name, root=root, card=card, half=True, extra_files={"log.csv": keep} if keep.exists() else None)


@torch.no_grad()
def calibrate(model: EndoVAE, frames: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
    """Pick and store the anomaly thresholds on validation frames and masks."""
    maps = error_maps(model, frames)
    pixel, dice = best_dice_threshold(maps, masks)
    scores = patch_scores(maps[:, None], model.config.image_size, model.config.patch_stride).flatten().numpy()
    labels = patch_labels(masks, model.config.image_size, model.config.patch_stride).flatten().numpy()
    keep = labels >= 0
    patch, youden = best_youden_threshold(scores[keep], labels[keep])
    model.pixel_threshold.fill_(pixel)
    model.patch_threshold.fill_(patch)
    return {"pixel_threshold": pixel, "validation_dice": dice, "patch_threshold": patch, "validation_youden_j": youden}


def main(cfg: TrainConfig) -> Path:
    cfg = resolve(cfg)
    if cfg.recalibrate:
        return recalibrate(cfg)
    name = checkpoint_name(cfg)
    run = Run(cfg, name)
    config = model_config(cfg)
    root = data_root(cfg, run.run_dir)
    data = load_data(cfg, config, root)
    model = EndoVAE(config).to(run.device).train()
    if cfg.kaiming_init:  # before resume/init-from, which overwrite it
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                torch.nn.init.zeros_(module.bias)
    if config.latent_channels and cfg.initial_log_variance:
        with torch.no_grad():
            model.to_moments.bias[config.latent_channels :].fill_(cfg.initial_log_variance)
    trained = run.wrap(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    best = BestWeights()  # lower is better: the negative validation PSNR, or the patch reconstruction error
    start = run.resume(model=model, optimizer=optimizer, best=best)
    parent = initialise_from(cfg, model, start, run.run_dir, run.device)
    train = data["train"]

    def learning_rate(step: int) -> float:
        if cfg.schedule == "cosine":
            return cfg.learning_rate * 0.5 * (1 + math.cos(math.pi * min(step / max(cfg.steps, 1), 1.0)))
        return cfg.learning_rate

    def step(step: int) -> dict:
        index = batch_indices(len(train), cfg.batch_size, step, cfg.seed)
        flips = torch.rand(len(index), 2, generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)) < 0.5  # whole batch
        index, flips = run.shard(index), run.shard(flips)
        images = train[index].to(run.device).float().div(255)  # (B, 3, S, S)
        if cfg.flip:
            images = torch.where(flips[:, 0].view(-1, 1, 1, 1).to(run.device), images.flip(-1), images)
            images = torch.where(flips[:, 1].view(-1, 1, 1, 1).to(run.device), images.flip(-2), images)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step)
        with run.autocast():
            logits, mu, logvar = trained(images)
        reconstruction = reconstruction_loss(logits.float(), images, cfg.loss)
        kl = kl_divergence(mu.float(), logvar.float())
        loss = reconstruction + cfg.kl_weight * kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        return {"loss": loss, "reconstruction": reconstruction, "kl": kl, "lr": learning_rate(step)}

    def validate(done: int) -> dict:
        metrics = validation_metrics(model, cfg, data)
        if not cfg.patches:
            score = -metrics["validation_psnr"]
        elif cfg.select_by == "pixel_auroc":
            score = -metrics["validation_pixel_auroc_fov"]
        else:
            score = metrics["validation_patch_mse"]
        best.offer(score, model, done)
        return metrics

    steps_done = run.train(cfg.steps, step, validate=validate, log_every=cfg.log_every, eval_every=cfg.eval_every, save_every=cfg.save_every)
    run.close()
    validate(steps_done)  # the last weights too (a run cut by --max-minutes stops between validations)
    model.load_state_dict(best.weights)
    model.eval()
    extra = {}
    if cfg.patches:
        model, extra["thresholds"] = choose_and_calibrate(model, data)
    data_card = {
        "dataset": f"{KVASIR} (Jha et al. 2020, Kvasir-SEG, 128 px copy)" if not cfg.dry_run else "generated dry-run frames",
        "train": (f"{len(train)} polyp-free {cfg.image_size} px patches (stride {cfg.patch_stride}) of the {data['frames']} train frames"
                  if cfg.patches else f"{data['frames']} train frames (polyp frames: the Kvasir normal classes are not available)"),
        "validation": f"{len(data['valid_images'])} valid frames (model selection{', thresholds' if cfg.patches else ''})",
        "preprocessing": ("direct resize of the whole frame to 96 px (the report)" if cfg.preprocess == "resize" else
                          f"centre square crop of {cfg.crop_fraction:g} of the frame, at {config.frame_size or config.image_size} px"),
        "data_root": str(cfg.data_root or "$NNDL_DATA_ROOT or ../shared/data"),
    }
    return run.save_checkpoint(model, name, data=data_card, half=True, finished=run.finished(cfg.steps), best_step=best.step,
                               best_validation=round(best.score if cfg.patches and cfg.select_by == "patch_mse" else -best.score, 6), initialised_from=parent, **extra)


if __name__ == "__main__":
    main(parse_config(TrainConfig, PRESETS))
