"""Oxford Flowers-102 (Nilsback & Zisserman, "Automated Flower Classification over a Large Number of Classes",
ICVGIP 2008) in its published layout, as in-memory uint8 tensors.

Layout (torchvision's `Flowers102(root)` and the official download): `<data root>/flowers102/flowers-102/`
with `jpg/image_00001.jpg …`, `imagelabels.mat` (`labels`, 1…102 per image id) and `setid.mat` (`trnid`,
`valid`, `tstid`: the official 1,020 / 1,020 / 6,149 image ids, 1-based). The copy in ../shared/data has 64 × 64
images and lacks every 40th id; the loader skips absent files and reports how many of each split it found. The
full original download (about 500 px images) works unchanged: images are resized to `image_size`.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

from nndl_data import DatasetMissing, dataset_dir

FLOWER_NAMES: tuple[str, ...] = tuple(torchvision.datasets.Flowers102.classes)  # label index 0…101 → name
SPLIT_KEYS = {"train": "trnid", "val": "valid", "test": "tstid"}
IMAGE_SIZE = 64


@dataclass
class FlowersSplit:
    images: torch.Tensor  # (N, 3, S, S) uint8
    labels: torch.Tensor  # (N,) int64, 0…101
    image_ids: torch.Tensor  # (N,) int64, the official 1-based ids
    expected: int  # how many ids the official split lists
    folder: Path

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def missing(self) -> int:
        return self.expected - len(self)

    def describe(self) -> str:
        return f"{len(self)} of {self.expected} images ({self.missing} absent ids skipped)"


def flowers_dir(data_root: str | Path | None = None) -> Path:
    """`<data root>/flowers102/flowers-102`, checked for the two .mat files and `jpg/`."""
    folder = dataset_dir("flowers102", data_root) / "flowers-102"
    needed = [folder / "jpg", folder / "imagelabels.mat", folder / "setid.mat"]
    if not all(path.exists() for path in needed):
        raise DatasetMissing(f"{folder} should hold jpg/, imagelabels.mat and setid.mat (torchvision's Flowers102 layout: "
                             "`torchvision.datasets.Flowers102(root, download=True)` creates it).")
    return folder


def _read_rgb(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as image:
        image = image.convert("RGB")
        return np.asarray(image if image.size == (size, size) else image.resize((size, size), Image.BICUBIC))


def read_split_ids(folder: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """({split: official 1-based ids}, labels 0…101 indexed by id − 1)."""
    import scipy.io

    setid = scipy.io.loadmat(folder / "setid.mat")
    labels = scipy.io.loadmat(folder / "imagelabels.mat")["labels"].reshape(-1).astype(np.int64) - 1
    return {split: setid[key].reshape(-1).astype(np.int64) for split, key in SPLIT_KEYS.items()}, labels


@functools.lru_cache(maxsize=8)
def _load(folder: Path, split: str, size: int) -> FlowersSplit:
    ids_by_split, labels = read_split_ids(folder)
    ids = np.sort(ids_by_split[split])
    paths = [folder / "jpg" / f"image_{image_id:05d}.jpg" for image_id in ids]
    present = np.array([path.is_file() for path in paths], dtype=bool)
    kept = ids[present]
    if not len(kept):
        raise DatasetMissing(f"{folder / 'jpg'} has none of the {len(ids)} {split} images (image_NNNNN.jpg).")
    with ThreadPoolExecutor(max_workers=4) as pool:  # JPEG decoding releases the GIL
        arrays = list(pool.map(lambda path: _read_rgb(path, size), [p for p, keep in zip(paths, present) if keep]))
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()  # (N, 3, S, S)
    return FlowersSplit(images, torch.from_numpy(labels[kept - 1]), torch.from_numpy(kept), len(ids), folder)


def load_flowers(split: str, data_root: str | Path | None = None, image_size: int = IMAGE_SIZE) -> FlowersSplit:
    """One official split (`train`, `val` or `test`) with absent ids skipped; `.describe()` says how many."""
    if split not in SPLIT_KEYS:
        raise ValueError(f"split must be one of {sorted(SPLIT_KEYS)}, not {split!r}")
    return _load(flowers_dir(data_root), split, image_size)


def write_layout(folder: Path, *, num_images: int = 120, num_classes: int = 4, missing_every: int = 40, size: int = 16,
                 seed: int = 0) -> Path:
    """A generated Flowers-102 layout (tests and `--dry-run`): class-coloured images, a 1/4 · 1/4 · 1/2 split by id,
    every `missing_every`-th id absent as in the shared copy. Returns `folder` (pass its grandparent as the data root:
    `write_layout(root / "flowers102" / "flowers-102")`)."""
    import scipy.io

    rng = np.random.default_rng(seed)
    (folder / "jpg").mkdir(parents=True, exist_ok=True)
    ids = np.arange(1, num_images + 1)
    labels = (ids - 1) % num_classes + 1
    order = rng.permutation(ids)
    quarter = num_images // 4
    scipy.io.savemat(folder / "setid.mat", {"trnid": order[:quarter][None].astype(np.uint16), "valid": order[quarter:2 * quarter][None].astype(np.uint16),
                                            "tstid": order[2 * quarter:][None].astype(np.uint16)})
    scipy.io.savemat(folder / "imagelabels.mat", {"labels": labels[None].astype(np.uint8)})
    colours = rng.uniform(0, 255, size=(num_classes, 3))
    for image_id, label in zip(ids, labels):
        if missing_every and image_id % missing_every == 0:
            continue
        pixels = np.clip(colours[label - 1] + rng.normal(0, 30, size=(size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / "jpg" / f"image_{image_id:05d}.jpg", quality=95)
    return folder
