"""Train the CycleGAN evaluation's second judge: a small domain classifier (apple vs orange, summer vs winter).

    python -m training.cyclegan_judge --dataset apple2orange     # ~3 min on one CPU core
    python -m training.cyclegan_judge --dataset summer2winter
    python -m training.cyclegan_judge --dry-run                  # a few steps on generated data

Issue 25 asks for a judge that has never seen ImageNet, next to the ImageNet EfficientNet-Lite0: `DomainJudge`
(models/cyclegan.py, five stride-2 conv blocks, ~0.5 M parameters) trained from random weights on the TRAINING
splits only (trainA = class 0, trainB = class 1; random 128 px crops of 143 px resized photos, horizontal flips,
±15 % brightness), a fixed number of epochs with no model selection (the test split is never looked at while
training). Its accuracy on the real test images goes into its card; `python -m evaluation.cyclegan` then reports,
for every direction, the share of translated test images it judges to be the target domain. Nothing the GAN
training optimises ever sees this network.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from models import registry
from models.cyclegan import DomainJudge, DomainJudgeConfig
from nndl_data.cyclegan import dataset_info, load_split, random_crop_flip
from training.common import BaseTrainConfig, batch_indices, parse_config, seed_everything, training_card

SLUG = "cyclegan_judge"


def judge_name(dataset: str) -> str:
    return f"cyclegan-judge-{dataset_info(dataset).name}"


@dataclass
class JudgeConfig(BaseTrainConfig):
    dataset: str = "apple2orange"
    image_size: int = 128
    load_size: int = 143
    epochs: int = 12
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 5e-4
    brightness: float = 0.15


def _data(cfg: JudgeConfig, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images of both domains of `split` ('train' or 'test') and their labels (0 = A, 1 = B)."""
    size = cfg.load_size if split == "train" else cfg.image_size
    if cfg.dry_run:
        generator = torch.Generator().manual_seed(cfg.seed)
        images = torch.randint(0, 256, (12, 3, size, size), generator=generator, dtype=torch.uint8)
        return images, torch.arange(12) % 2
    a = load_split(cfg.dataset, f"{split}A", cfg.data_root, size=size)
    b = load_split(cfg.dataset, f"{split}B", cfg.data_root, size=size)
    return torch.cat([a, b]), torch.cat([torch.zeros(len(a), dtype=torch.long), torch.ones(len(b), dtype=torch.long)])


@torch.no_grad()
def predict(judge: DomainJudge, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Predicted domain (0 = A, 1 = B) of uint8 or [0, 1] float images (N, 3, H, W)."""
    judge.eval()
    out = []
    for batch in images.split(batch_size):
        batch = batch.float().div(255) if batch.dtype == torch.uint8 else batch.float()
        out.append(judge(batch).argmax(1))
    return torch.cat(out)


def main(cfg: JudgeConfig) -> DomainJudge:
    torch.set_num_threads(1) if cfg.device in ("auto", "cpu") and not torch.cuda.is_available() else None
    seed_everything(cfg.seed)
    if cfg.dry_run:
        cfg = dataclasses.replace(cfg, image_size=32, load_size=36, epochs=1, batch_size=4)
    info = dataset_info(cfg.dataset)
    started = time.monotonic()
    images, labels = _data(cfg, "train")
    judge = DomainJudge(DomainJudgeConfig(dataset=info.name, domain_a=info.domain_a, domain_b=info.domain_b, image_size=cfg.image_size))
    optimizer = torch.optim.AdamW(judge.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(len(images) // cfg.batch_size, 1)
    total = cfg.epochs * steps_per_epoch
    judge.train()
    for step in range(total):
        for group in optimizer.param_groups:  # cosine to 0
            group["lr"] = cfg.learning_rate * 0.5 * (1 + math.cos(math.pi * step / total))
        index = batch_indices(len(images), cfg.batch_size, step, cfg.seed)
        augment = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        batch = random_crop_flip(images[index], cfg.image_size, augment)  # (B, 3, S, S) in [0, 1]
        scale = 1 + cfg.brightness * (2 * torch.rand(len(batch), 1, 1, 1, generator=augment) - 1)
        loss = F.cross_entropy(judge((batch * scale).clamp(0, 1)), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % steps_per_epoch == 0 or step == total - 1:
            print(f"step {step + 1}/{total} (epoch {step / steps_per_epoch:.1f}) loss {loss.item():.3f}", flush=True)
    wall = time.monotonic() - started
    test_images, test_labels = _data(cfg, "test")
    predicted = predict(judge, test_images)
    accuracy = {
        "test_accuracy": round((predicted == test_labels).float().mean().item(), 4),
        f"test_accuracy_{info.domain_a}": round((predicted[test_labels == 0] == 0).float().mean().item(), 4),
        f"test_accuracy_{info.domain_b}": round((predicted[test_labels == 1] == 1).float().mean().item(), 4),
        "test_images": len(test_labels),
    }
    print(judge_name(cfg.dataset), accuracy)
    card = training_card(cfg, slug=SLUG, steps=total, wall_time_s=wall, data={
        "dataset": f"{info.folder}: trainA ({info.domain_a}) = class 0, trainB ({info.domain_b}) = class 1; test splits only for the metrics",
        "generated_dry_run_data": cfg.dry_run,
    }, role=f"second judge of the CycleGAN evaluation: {info.domain_a} (0) vs {info.domain_b} (1), trained from scratch, never saw ImageNet",
        metrics=accuracy, evaluation_command=f"python -m training.{SLUG} --dataset {info.name} (test accuracy measured at the end of training)")
    root = cfg.checkpoint_root if not cfg.dry_run else (cfg.run_dir or "runs/cyclegan-judge-dry-run")
    registry.save(judge, judge_name(cfg.dataset), card=card, root=root, half=True)
    return judge


if __name__ == "__main__":
    main(parse_config(JudgeConfig))
