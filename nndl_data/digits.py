"""MNIST (torchvision layout) and MNIST-M (the DANN release layout), as in-memory uint8 tensors.

MNIST-M layout (Ganin & Lempitsky 2015 release, same as the public download):
    mnist_m/mnist_m_train/00000000.png ...   mnist_m/mnist_m_train_labels.txt   ("00000000.png 5" per line)
    mnist_m/mnist_m_test/00000000.png ...    mnist_m/mnist_m_test_labels.txt
Its images are 32×32 RGB; MNIST digits are 28×28 gray and are tiled to RGB and resized to 32×32 (bilinear),
as the official PixelDA pipeline does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

from torchvision.datasets.utils import extract_archive

from nndl_data import DatasetMissing, dataset_dir, user_cache_dir

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _mnist_root(root: Path) -> Path:
    """torchvision reads the uncompressed IDX files; when the root only has the official `.gz` files (and may be
    read-only), they are extracted once into a user cache folder in the same layout."""
    raw = root / "MNIST" / "raw"
    if all((raw / name).exists() for name in MNIST_FILES):
        return root
    cache = user_cache_dir("mnist")
    (cache / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)
    for name in MNIST_FILES:
        if not (cache / "MNIST" / "raw" / name).exists():
            if not (raw / f"{name}.gz").exists():
                raise DatasetMissing(f"{raw} has neither {name} nor {name}.gz (torchvision MNIST layout).")
            extract_archive(str(raw / f"{name}.gz"), str(cache / "MNIST" / "raw"))
    return cache


def load_mnist(split: str, data_root: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 (N, 28, 28), labels int64 (N,)) for split 'train' or 'test'."""
    root = _mnist_root(dataset_dir("mnist", data_root))
    try:
        dataset = torchvision.datasets.MNIST(root=root, train=split == "train", download=False)
    except RuntimeError as error:  # torchvision's "Dataset not found"
        raise DatasetMissing(f"MNIST not found under {root}/MNIST/raw ({error})") from error
    return dataset.data, dataset.targets


def load_mnist_m(split: str, data_root: str | Path | None = None, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 (N, 3, 32, 32), labels int64 (N,)) in the order of the labels file."""
    root = dataset_dir("mnist_m", data_root)
    labels_file = root / f"mnist_m_{split}_labels.txt"
    if not labels_file.exists():
        raise DatasetMissing(f"{labels_file} is missing; expected the DANN MNIST-M layout (see nndl_data/digits.py).")
    entries = [line.split() for line in labels_file.read_text().splitlines() if line.strip()][:limit]
    images = np.stack([np.asarray(Image.open(root / f"mnist_m_{split}" / name).convert("RGB")) for name, _ in entries])
    labels = torch.tensor([int(label) for _, label in entries])
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), labels


def mnist_to_rgb32(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) gray → float (N, 3, 32, 32) in [0, 1]: tiled to RGB, bilinear resize (official PixelDA)."""
    x = images.float().div(255).unsqueeze(1)  # (N, 1, 28, 28)
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    return x.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()  # (N, 3, 32, 32)
