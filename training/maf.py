"""Train the report's pixel-space MAF or the feature flow on the good training images of one MVTec AD category.

    python -m training.maf --model pixel --category capsule        # 32 px luma MAF, 5 blocks of (256, 256): CPU, minutes
    python -m training.maf --model features --category capsule     # conditional MAFs on EfficientNet-Lite0 features
    python -m training.maf --model pixel --category bottle --max-minutes 30
    python -m training.maf --preset report --model pixel           # the report's 128 px RGB, 7 × (512, 512), ≈531 M parameters (GPU)
    python -m training.maf --dry-run                               # a few steps on a generated MVTec-layout folder

The good training images are split (seeded, 10 %, the report's validation split) into train and validation. The
pixel MAF minimises the NLL of uniformly dequantised images in bits/dim (Adam, cosine learning rate); the feature
flow minimises the per-channel NLL of randomly drawn (image, position) feature vectors, both stages at once. The
weights with the best validation NLL are kept; then the anomaly threshold (a percentile of the validation images'
scores) and, for the feature flow, each stage's NLL statistics on validation images are stored in the checkpoint.
Writes `maf-<model>-<category>`; `python -m evaluation.maf` measures it on the test split.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.maf import FeatureFlow, FeatureFlowConfig, PixelMAF, PixelMAFConfig, backbone_features, positional_encoding
from nndl_data.maf import list_samples, load_images, train_validation_split, write_fake_mvtec
from training.common import BaseTrainConfig, BestWeights, batch_indices, parse_config
from training.loop import Run

SLUG = "maf"


@dataclass
class TrainConfig(BaseTrainConfig):
    precision: str = "fp32"
    model: str = "pixel"  # pixel | features
    category: str = "capsule"  # capsule | bottle (any MVTec AD category folder works)
    name: str = ""  # checkpoint name; default maf-<model>-<category>
    image_size: int = 0  # 0 = 32 (pixel) or 256 (features: the backbone's input)
    channels: int = 1  # pixel MAF: 1 = luma, 3 = RGB
    hidden: tuple[int, ...] = ()  # () = (256, 256) for both
    blocks: int = 0  # 0 = 5 (pixel) or 4 (features)
    clamp: float = 3.0
    degrees: str = "even"  # even | made (the MADE paper's rule; spec §1.8.5)
    stages: tuple[int, ...] = (2, 4)  # features: EfficientNet-Lite0 stages
    pool: int = 3
    position_frequencies: int = 8
    steps: int = 0  # 0 = 4000 (pixel) or 3000 (features)
    batch_size: int = 64  # images (pixel) ; the feature flow draws `positions` vectors per stage
    positions: int = 512
    learning_rate: float = 1e-3
    final_learning_rate_fraction: float = 0.05  # cosine decay to this fraction; 1 = constant (the report)
    warmup_steps: int = 50
    weight_decay: float = 0.0
    validation_fraction: float = 0.1
    split_seed: int = 0
    threshold_percentile: float = 95.0
    log_every: int = 25
    eval_every: int = 100
    save_every: int = 200


PRESETS = {
    "cpu": TrainConfig(),
    # The report's table 1.1: 128 × 128 × 3, 7 blocks of (512, 512), batch 64, Adam 1e-4, 50 epochs (≈ 4 steps each).
    "report": TrainConfig(image_size=128, channels=3, hidden=(512, 512), blocks=7, steps=200, learning_rate=1e-4,
                          final_learning_rate_fraction=1.0, warmup_steps=0),
}


def checkpoint_name(cfg: TrainConfig) -> str:
    return cfg.name or f"{SLUG}-{cfg.model}-{cfg.category}"


def resolve(cfg: TrainConfig) -> TrainConfig:
    if cfg.model not in ("pixel", "features"):
        raise SystemExit(f"--model must be pixel or features, not {cfg.model!r}")
    pixel = cfg.model == "pixel"
    cfg = dataclasses.replace(
        cfg, image_size=cfg.image_size or (32 if pixel else 256), hidden=cfg.hidden or (256, 256),
        blocks=cfg.blocks or (5 if pixel else 4), steps=cfg.steps or (4000 if pixel else 3000),
    )
    if cfg.dry_run:
        cfg = dataclasses.replace(cfg, image_size=8 if pixel else 64, hidden=(16, 16), blocks=2, steps=4, batch_size=4,
                                  positions=32, log_every=1, eval_every=2, save_every=2, warmup_steps=1)
    return cfg


def model_for(cfg: TrainConfig) -> torch.nn.Module:
    if cfg.model == "pixel":
        return PixelMAF(PixelMAFConfig(image_size=cfg.image_size, channels=cfg.channels, hidden=cfg.hidden, blocks=cfg.blocks,
                                       clamp=cfg.clamp, degrees=cfg.degrees))
    return FeatureFlow(FeatureFlowConfig(image_size=cfg.image_size, stages=cfg.stages, pool=cfg.pool, hidden=cfg.hidden,
                                         blocks=cfg.blocks, position_frequencies=cfg.position_frequencies, clamp=cfg.clamp))


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to `final_learning_rate_fraction`: a pure function of the step."""
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    low = cfg.final_learning_rate_fraction
    return cfg.learning_rate * (low + (1 - low) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def load_good_images(cfg: TrainConfig, root) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """uint8 (N, 3, S, S) train and validation images (both from train/good) and the split's description."""
    samples = list_samples(cfg.category, "train", root)
    train_index, validation_index = train_validation_split(len(samples), cfg.validation_fraction, cfg.split_seed)
    images = load_images(samples, cfg.image_size)
    split = {"seed": cfg.split_seed, "fraction": cfg.validation_fraction, "train": len(train_index),
             "validation": len(validation_index)}
    split["validation_files"] = [samples[i].path.name for i in validation_index]  # moved out of the card's data by main()
    return images[train_index], images[validation_index], split


# ------------------------------------------------------------------------------------------------- pixel MAF
@torch.no_grad()
def pixel_scores(model: PixelMAF, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Bits/dim at the dequantisation midpoint, per image (N,)."""
    return torch.cat([model(images[start : start + batch].float() / 255) for start in range(0, len(images), batch)])


def train_pixel(cfg: TrainConfig, run: Run, model: PixelMAF, optimizer, train: torch.Tensor, validation: torch.Tensor, best: BestWeights) -> int:
    train, validation = train.to(run.device), validation.to(run.device)

    def step(step: int) -> dict:
        index = batch_indices(len(train), cfg.batch_size, step, cfg.seed)
        images = train[index.to(run.device)].float() / 255
        noise = torch.rand(len(index), model.dim, generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)).to(run.device)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step)
        with run.autocast():
            loss = model(images, noise).float().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"train_bits_per_dim": loss, "learning_rate": learning_rate(cfg, step)}

    def validate(done: int) -> dict:
        model.eval()
        loss = pixel_scores(model, validation).mean().item()
        model.train()
        best.offer(loss, model, done)
        return {"validation_bits_per_dim": loss}

    return run.train(cfg.steps, step, validate=validate, log_every=cfg.log_every, eval_every=cfg.eval_every, save_every=cfg.save_every)


# ---------------------------------------------------------------------------------------------- feature flow
@torch.no_grad()
def cached_features(cfg: TrainConfig, images: torch.Tensor, path: Path, batch: int = 16) -> list[torch.Tensor]:
    """Backbone features of uint8 images, computed once per run folder (float16 on disk, our own file)."""
    if path.exists():
        stored = torch.load(path, map_location="cpu", weights_only=True)
        if stored["count"] == len(images) and tuple(stored["stages"]) == tuple(cfg.stages):
            return [f.float() for f in stored["features"]]
    chunks = [backbone_features(images[start : start + batch].float() / 255, cfg.stages, cfg.pool) for start in range(0, len(images), batch)]
    features = [torch.cat([chunk[index] for chunk in chunks]) for index in range(len(cfg.stages))]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"count": len(images), "stages": list(cfg.stages), "features": [f.half() for f in features]}, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)
    return [f.half().float() for f in features]  # exactly what a resumed run reads back


@torch.no_grad()
def stage_nll_maps(model: FeatureFlow, features: list[torch.Tensor], batch: int = 8) -> list[torch.Tensor]:
    """Per-stage NLL maps (N, h, w) of cached features."""
    return [torch.cat([model.stage_nll(index, stage[start : start + batch]) for start in range(0, len(stage), batch)])
            for index, stage in enumerate(features)]


def feature_image_scores(model: FeatureFlow, features: list[torch.Tensor], size: int, batch: int = 8) -> torch.Tensor:
    maps = torch.cat([model.map_from_features([f[start : start + batch] for f in features], size) for start in range(0, len(features[0]), batch)])
    return model.image_score(maps)


def train_features(cfg: TrainConfig, run: Run, model: FeatureFlow, optimizer, train: list[torch.Tensor], validation: list[torch.Tensor],
                   best: BestWeights) -> int:
    conditions = [positional_encoding(f.shape[-2], f.shape[-1], cfg.position_frequencies) for f in train]
    vectors = [f.permute(0, 2, 3, 1).reshape(-1, f.shape[1]) for f in train]  # (N·h·w, C), raster order per image

    def step(step: int) -> dict:
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step)
        losses = {}
        total = 0.0
        for index, (stage_vectors, condition) in enumerate(zip(vectors, conditions)):
            pick = torch.randint(0, len(stage_vectors), (cfg.positions,), generator=generator)
            x = model.standardise(index, stage_vectors[pick][:, :, None, None])[:, :, 0, 0]
            with run.autocast():
                nll = -model.flows[index].log_prob(x.to(run.device), condition[pick % len(condition)].to(run.device)).float().mean() / x.shape[1]
            losses[f"train_nll_stage{cfg.stages[index]}"] = nll
            total = total + nll
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        return {"train_nll": total, **losses, "learning_rate": learning_rate(cfg, step)}

    def validate(done: int) -> dict:
        model.eval()
        maps = stage_nll_maps(model, validation)
        model.train()
        values = {f"validation_nll_stage{stage}": m.mean().item() for stage, m in zip(cfg.stages, maps)}
        loss = sum(values.values())
        best.offer(loss, model, done)
        return {"validation_nll": loss, **values}

    return run.train(cfg.steps, step, validate=validate, log_every=cfg.log_every, eval_every=cfg.eval_every, save_every=cfg.save_every)


def main(cfg: TrainConfig) -> Path:
    cfg = resolve(cfg)
    name = checkpoint_name(cfg)
    run = Run(cfg, name)
    root = cfg.data_root
    if cfg.dry_run:
        root = run.run_dir / "fake-data"
        if not (root / "mvtec" / cfg.category).exists():
            write_fake_mvtec(root, cfg.category, train=12, size=48)
    train_images, validation_images, split = load_good_images(cfg, root)
    model = model_for(cfg).to(run.device).train()
    if cfg.model == "features":  # standardisation from the training images' features (fixed before training starts)
        train_features_list = cached_features(cfg, train_images, run.run_dir / "features-train.pt")
        validation_features = cached_features(cfg, validation_images, run.run_dir / "features-validation.pt")
        for index, stage in enumerate(train_features_list):
            getattr(model, f"feature_mean_{index}").copy_(stage.mean((0, 2, 3)))
            getattr(model, f"feature_std_{index}").copy_(stage.std((0, 2, 3)).clamp_min(1e-4))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    best = BestWeights()
    run.resume(model=model, optimizer=optimizer, best=best)
    if cfg.model == "pixel":
        steps_done = train_pixel(cfg, run, model, optimizer, train_images, validation_images, best)
    else:
        steps_done = train_features(cfg, run, model, optimizer, train_features_list, validation_features, best)
    run.close()
    if best.weights is None:
        best.offer(float("inf"), model, steps_done)
        best.weights = {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}
    model = model.cpu()
    model.load_state_dict(best.weights)
    model.eval()
    with torch.no_grad():
        if cfg.model == "pixel":
            validation_scores = pixel_scores(model, validation_images)
        else:
            maps = stage_nll_maps(model, validation_features)
            model.stage_mean.copy_(torch.stack([m.mean() for m in maps]))
            model.stage_std.copy_(torch.stack([m.std() for m in maps]).clamp_min(1e-6))
            validation_scores = feature_image_scores(model, validation_features, cfg.image_size)
    threshold = float(np.percentile(validation_scores.numpy(), cfg.threshold_percentile))
    model.threshold.fill_(threshold)
    validation_files = split.pop("validation_files")
    data_card = {
        "dataset": f"MVTec AD {cfg.category} (Bergmann et al. 2019, CC BY-NC-SA 4.0)" if not cfg.dry_run else "generated MVTec-layout images",
        "folder": f"mvtec/{cfg.category}",
        "train": f"{split['train']} good training images",
        "validation": f"{split['validation']} good training images held out (model selection, threshold)",
        "split": split,
        "preprocessing": (f"RGB resized to {cfg.image_size} px (PIL bilinear)" + (", luma on the 8-bit lattice, uniform dequantisation, logit λ = 0.05"
                          if cfg.model == "pixel" else ", ImageNet EfficientNet-Lite0 stages " + str(list(cfg.stages)) + f", {cfg.pool}×{cfg.pool} average")),
        "data_root": str(cfg.data_root or "$NNDL_DATA_ROOT or ../shared/data"),
    }
    validation_key = "validation_bits_per_dim" if cfg.model == "pixel" else "validation_nll"
    return run.save_checkpoint(
        model, name, data=data_card, half=True, finished=run.finished(cfg.steps), best_step=best.step,
        **{f"best_{validation_key}": round(best.score, 6)},
        threshold={"value": threshold, "percentile": cfg.threshold_percentile, "chosen_on": f"scores of the {split['validation']} validation images",
                   "validation_scores": [round(float(v), 5) for v in validation_scores]},
        parameters=sum(p.numel() for p in model.parameters()), validation_files=validation_files,
    )


if __name__ == "__main__":
    main(parse_config(TrainConfig, PRESETS))
