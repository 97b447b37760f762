"""Kvasir-SEG polyp frames for the EndoVAE system, in their published layout, and the polyp-free patches.

Layout (Jha et al., "Kvasir-SEG: A Segmented Polyp Dataset", MMM 2020; here a 128 px copy split 700/200/100):

    kvasir_seg/{train,valid,test}/images/<id>.jpg     RGB frames
    kvasir_seg/{train,valid,test}/masks/<id>.png      polyp masks, 0/255 (binarised at 128 here)

The full original download (`Kvasir-SEG/images`, `Kvasir-SEG/masks`, frames of 332×487 to 1920×1072, no split) fits
the same reader with `split=""` on a folder that has `images/` and `masks/` directly. Frames keep their size in
`Frames.images` (uint8, all the same size here); `prepared` applies a model's preprocessing. The Kvasir v1 "normal"
classes that the course report trained on are not part of Kvasir-SEG and not available here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from models.endovae import EndoVAEConfig, prepare_image, prepare_mask
from nndl_data import DatasetMissing, dataset_dir

KVASIR = "kvasir_seg"
SPLITS = ("train", "valid", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclasses.dataclass
class Frames:
    """Frames of one split: images uint8 (N, H, W, 3), masks bool (N, H, W), ids."""

    images: np.ndarray
    masks: np.ndarray
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, index) -> "Frames":
        index = list(range(len(self))[index]) if isinstance(index, slice) else list(index)
        return Frames(self.images[index], self.masks[index], [self.names[i] for i in index])

    def prepared(self, config: EndoVAEConfig, size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Through the model's preprocessing: (images uint8 (N, 3, S, S), masks bool (N, S, S))."""
        images = np.stack([np.round(prepare_image(Image.fromarray(image), config, size) * 255).astype(np.uint8) for image in self.images])
        masks = np.stack([prepare_mask(Image.fromarray(mask.astype(np.uint8) * 255), config, size) for mask in self.masks])
        return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(masks)


def split_dir(split: str, data_root: str | Path | None = None) -> Path:
    root = dataset_dir(KVASIR, data_root)
    folder = root / split if split else root
    if not (folder / "images").is_dir():
        raise DatasetMissing(f"{folder}/images does not exist: Kvasir-SEG needs {KVASIR}/<split>/images/<id>.jpg and masks/<id>.png.")
    return folder


def image_paths(split: str, data_root: str | Path | None = None) -> list[tuple[Path, Path]]:
    """(image, mask) paths of a split, sorted by id; frames without a mask are skipped."""
    folder = split_dir(split, data_root)
    pairs = []
    for image in sorted(p for p in (folder / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        mask = folder / "masks" / f"{image.stem}.png"
        if not mask.exists():
            mask = next((m for m in (folder / "masks").glob(f"{image.stem}.*")), None)
        if mask is not None:
            pairs.append((image, mask))
    if not pairs:
        raise DatasetMissing(f"{folder}/images holds no frames with a mask in {folder}/masks.")
    return pairs


def load_split(split: str, data_root: str | Path | None = None, size: int | None = 128, limit: int = 0) -> Frames:
    """Every frame of a split (optionally the first `limit`), resized to `size` px when it is not (None: keep)."""
    pairs = image_paths(split, data_root)
    if limit:
        pairs = pairs[:limit]
    images, masks = [], []
    for image_path, mask_path in pairs:
        with Image.open(image_path) as image, Image.open(mask_path) as mask:
            image, mask = image.convert("RGB"), mask.convert("L")
            if size and image.size != (size, size):
                image = image.resize((size, size), Image.BICUBIC)
            if mask.size != image.size:
                mask = mask.resize(image.size, Image.NEAREST)
            images.append(np.asarray(image))
            masks.append(np.asarray(mask) > 127)
    return Frames(np.stack(images), np.stack(masks), [image.stem for image, _ in pairs])


def polyp_free_patches(images: torch.Tensor, masks: torch.Tensor, size: int = 32, stride: int = 16,
                       margin: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Every size × size patch at `stride` whose mask (grown by `margin` pixels) holds no polyp pixel.

    images uint8 (N, 3, H, W), masks bool (N, H, W) → (patches uint8 (M, 3, size, size), positions (M, 3) as
    (frame, top, left)): the normal-mucosa model's training data."""
    grown = masks.float()[:, None]
    if margin:
        grown = torch.nn.functional.max_pool2d(grown, 2 * margin + 1, 1, margin)
    any_polyp = torch.nn.functional.max_pool2d(grown, size, stride)[:, 0] > 0  # (N, rows, cols)
    frame, row, col = (~any_polyp).nonzero(as_tuple=True)
    top, left = row * stride, col * stride
    patches = torch.stack([images[f, :, t : t + size, l : l + size] for f, t, l in zip(frame.tolist(), top.tolist(), left.tolist())]) \
        if len(frame) else torch.zeros(0, 3, size, size, dtype=torch.uint8)
    return patches, torch.stack([frame, top, left], 1)


def write_fake_kvasir(root: str | Path, counts: dict[str, int] | None = None, size: int = 64, seed: int = 0) -> Path:
    """A generated Kvasir-SEG layout: pink 'mucosa' with texture, a black octagonal border, and a brighter round
    'polyp' per frame with its 0/255 mask. For tests and dry runs."""
    counts = counts or {"train": 12, "valid": 6, "test": 4}
    rng = np.random.default_rng(seed)
    folder = Path(root) / KVASIR
    rows, cols = np.mgrid[0:size, 0:size] / size - 0.5
    border = (np.abs(rows) + np.abs(cols) < 0.68) & (np.abs(rows) < 0.47) & (np.abs(cols) < 0.47)
    for split, count in counts.items():
        (folder / split / "images").mkdir(parents=True, exist_ok=True)
        (folder / split / "masks").mkdir(parents=True, exist_ok=True)
        for index in range(count):
            base = np.array([200, 110, 90]) + rng.normal(0, 10, 3)
            texture = rng.normal(0, 8, (size, size, 1)) + 15 * np.sin(rows[..., None] * rng.uniform(5, 15))
            cy, cx, radius = *rng.uniform(-0.2, 0.2, 2), rng.uniform(0.08, 0.18)
            mask = (rows - cy) ** 2 + (cols - cx) ** 2 < radius**2
            image = base + texture + mask[..., None] * np.array([40, 40, 30])
            image = np.clip(image * border[..., None], 0, 255).astype(np.uint8)
            name = f"frame{index:03d}"
            Image.fromarray(image).save(folder / split / "images" / f"{name}.jpg", quality=95)
            Image.fromarray(mask.astype(np.uint8) * 255).save(folder / split / "masks" / f"{name}.png")
    return folder
