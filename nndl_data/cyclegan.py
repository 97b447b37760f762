"""The CycleGAN datasets (Zhu et al. 2017 release layout), as in-memory uint8 tensors.

Layout, as in the public `datasets/<name>.zip` downloads:
    <data root>/cyclegan/apple2orange/{trainA,trainB,testA,testB}/*.jpg            (A = apple, B = orange)
    <data root>/cyclegan/summer2winter_yosemite/{trainA,trainB,testA,testB}/*.jpg  (A = summer, B = winter)
The published images are 256×256; the copies here are 128×128. Images are resized on loading to the size the
caller asks for (bicubic), so the loaders work unchanged on either.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from nndl_data import DatasetMissing, dataset_dir

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass(frozen=True)
class CycleGANDataset:
    name: str  # the short name used on the command line and in checkpoint names
    folder: str  # relative to the data root
    domain_a: str
    domain_b: str


DATASETS = {
    "apple2orange": CycleGANDataset("apple2orange", "cyclegan/apple2orange", "apple", "orange"),
    "summer2winter": CycleGANDataset("summer2winter", "cyclegan/summer2winter_yosemite", "summer", "winter"),
}


def dataset_info(name: str) -> CycleGANDataset:
    if name not in DATASETS:
        raise ValueError(f"unknown CycleGAN dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name]


def image_files(dataset: str, split: str, data_root: str | Path | None = None) -> list[Path]:
    """Sorted image paths of `split` ('trainA', 'trainB', 'testA', 'testB')."""
    folder = dataset_dir(dataset_info(dataset).folder, data_root) / split
    if not folder.is_dir():
        raise DatasetMissing(f"{folder} is missing; expected the CycleGAN layout trainA/trainB/testA/testB (see nndl_data/cyclegan.py).")
    files = sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetMissing(f"{folder} holds no images.")
    return files


def _read(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as image:
        image = image.convert("RGB")
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BICUBIC)
        return np.asarray(image)


def load_split(dataset: str, split: str, data_root: str | Path | None = None, size: int = 128, limit: int | None = None) -> torch.Tensor:
    """uint8 (N, 3, size, size) images of one split, in file-name order."""
    files = image_files(dataset, split, data_root)[:limit]
    with ThreadPoolExecutor(max_workers=4) as pool:
        arrays = list(pool.map(lambda path: _read(path, size), files))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def random_crop_flip(images: torch.Tensor, crop: int, generator: torch.Generator) -> torch.Tensor:
    """uint8 (B, 3, L, L) → float (B, 3, crop, crop) in [0, 1]: one random crop and horizontal flip per image
    (the official train transform after its resize to `L`). Randomness comes only from `generator`."""
    batch, _, height, width = images.shape
    tops = torch.randint(0, height - crop + 1, (batch,), generator=generator).tolist()
    lefts = torch.randint(0, width - crop + 1, (batch,), generator=generator).tolist()
    flips = (torch.rand(batch, generator=generator) < 0.5).tolist()
    out = []
    for image, top, left, flip in zip(images, tops, lefts, flips):
        patch = image[:, top : top + crop, left : left + crop]
        out.append(patch.flip(-1) if flip else patch)
    return torch.stack(out).float().div(255)


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, 3, H, W) → uint8 (N, 3, size, size), bicubic (the official 286-for-256 load size, scaled)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    resized = F.interpolate(images.float(), size=(size, size), mode="bicubic", align_corners=False)
    return resized.round().clamp(0, 255).to(torch.uint8)
