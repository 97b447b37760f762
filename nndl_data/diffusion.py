"""CIFAR-10 for the diffusion system: the shared CIFAR loader (`nndl_data.attacks.load_cifar`, torchvision pickle or
ImageFolder layout) plus the fixed, class-balanced test subsets the evaluation, the tests and the tab use.

The copy in ../shared/data has 1,500 training images per class (15,000) and all 10,000 test images; the report
trained and "tested" on the training split only (§3.7.7). Here training uses the training split and every number
comes from the test split.
"""

from __future__ import annotations

from pathlib import Path

import torch

from models.diffusion import CIFAR10_CLASSES
from nndl_data.attacks import fake_cifar, load_cifar

DATASET = "cifar10"


def load_split(split: str, data_root: str | Path | None = None, limit_per_class: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images (N, 3, 32, 32), int64 labels (N,)) of CIFAR-10 `split` (train | test), classes in the official order."""
    images, labels, classes = load_cifar(DATASET, split, data_root, limit_per_class)
    if tuple(classes) != CIFAR10_CLASSES:
        raise ValueError(f"{DATASET} classes {classes} are not CIFAR-10's {CIFAR10_CLASSES}")
    return images, labels


def balanced_subset(labels: torch.Tensor, per_class: int, seed: int = 0, num_classes: int = 10) -> torch.Tensor:
    """Indices of `per_class` items of each class, drawn with `seed`, in class-interleaved order (0, 1, …, 9, 0, …),
    so any prefix of a multiple of 10 is balanced too."""
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in range(num_classes):
        members = torch.nonzero(labels == label).flatten()
        if len(members) < per_class:
            raise ValueError(f"class {label} has {len(members)} items, fewer than {per_class}")
        chosen.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return torch.stack(chosen, dim=1).flatten()


def generated(num_items: int = 48, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Generated CIFAR-shaped data for dry runs (the attacks lab's `fake_cifar`)."""
    return fake_cifar(num_items, seed=seed)
