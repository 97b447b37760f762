"""CIFAR-10 and CIFAR-100 as in-memory uint8 tensors (N, 3, 32, 32) with int64 labels.

Accepted layouts, tried in this order, under `<data root>/<name>/`:
- the torchvision/pickle release (`cifar10/cifar-10-batches-py/`, `cifar100/cifar-100-python/`), read through
  `torchvision.datasets.CIFAR10` / `CIFAR100` (which verify the official md5 sums);
- an ImageFolder tree `train/<class>/*.jpg|png`, `test/<class>/*` (the CIFAR-10 copy in ../shared/data is this
  one: 1,500 training images per class and all 10,000 test images, JPEG re-encoded).
Class indices follow the sorted folder names, which for CIFAR-10 is the official order (airplane … truck).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

from nndl_data import DatasetMissing, dataset_dir

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
PICKLE_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
TORCHVISION_CLASSES = {"cifar10": torchvision.datasets.CIFAR10, "cifar100": torchvision.datasets.CIFAR100}


def _read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((32, 32), Image.BILINEAR) if image.size != (32, 32) else image.convert("RGB"))


def load_image_folder(folder: Path, limit_per_class: int | None = None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """`folder/<class>/<image>` → (uint8 (N, 3, 32, 32), int64 (N,), class names in index order)."""
    classes = sorted(entry.name for entry in folder.iterdir() if entry.is_dir())
    if not classes:
        raise DatasetMissing(f"{folder} has no class folders; expected {folder}/<class>/<image>.jpg (ImageFolder layout).")
    paths, labels = [], []
    for index, name in enumerate(classes):
        files = sorted(path for path in (folder / name).iterdir() if path.suffix.lower() in IMAGE_EXTENSIONS)
        files = files[:limit_per_class] if limit_per_class else files
        paths += files
        labels += [index] * len(files)
    with ThreadPoolExecutor(max_workers=8) as pool:  # JPEG decoding releases the GIL
        images = np.stack(list(pool.map(_read_rgb, paths, chunksize=256)))
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.tensor(labels, dtype=torch.int64), classes


def load_cifar(name: str, split: str, data_root: str | Path | None = None, limit_per_class: int | None = None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(images uint8 (N, 3, 32, 32), labels int64 (N,), class names) for `name` in {cifar10, cifar100}, split train/test."""
    if name not in PICKLE_FOLDERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(PICKLE_FOLDERS)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    root = dataset_dir(name, data_root)
    if (root / PICKLE_FOLDERS[name]).is_dir():
        try:
            dataset = TORCHVISION_CLASSES[name](root=str(root), train=split == "train", download=False)
        except RuntimeError as error:  # torchvision's "Dataset not found or corrupted"
            raise DatasetMissing(f"{root / PICKLE_FOLDERS[name]} is not a complete {name} pickle release ({error})") from error
        images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()  # (N, 3, 32, 32)
        labels = torch.tensor(dataset.targets, dtype=torch.int64)
        if limit_per_class:
            keep = torch.cat([torch.nonzero(labels == c).flatten()[:limit_per_class] for c in range(len(dataset.classes))]).sort().values
            images, labels = images[keep], labels[keep]
        return images, labels, list(dataset.classes)
    if (root / split).is_dir():
        return load_image_folder(root / split, limit_per_class)
    raise DatasetMissing(
        f"{root} has neither {PICKLE_FOLDERS[name]}/ (torchvision layout) nor {split}/<class>/ (ImageFolder layout). "
        f"For CIFAR-100, `torchvision.datasets.CIFAR100(root='{root}', download=True)` creates the first."
    )


def cifar100_coarse_labels(split: str, data_root: str | Path | None = None) -> torch.Tensor:
    """The 20 super-class labels (the pickle's `coarse_labels`; torchvision does not expose them)."""
    import pickle

    path = dataset_dir("cifar100", data_root) / PICKLE_FOLDERS["cifar100"] / split
    with open(path, "rb") as handle:
        entry = pickle.load(handle, encoding="latin1")  # the official release's own file format, read locally
    return torch.tensor(entry["coarse_labels"], dtype=torch.int64)


def fake_cifar(num_items: int, num_classes: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Tiny generated data for --dry-run: class-dependent colour blobs, so a few steps can learn something."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_items) % num_classes
    colours = torch.rand(num_classes, 3, 1, 1, generator=generator)
    noise = torch.rand(num_items, 3, 32, 32, generator=generator) * 0.5
    images = (colours[labels] * 0.5 + noise).clamp(0, 1)
    return (images * 255).round().to(torch.uint8), labels
