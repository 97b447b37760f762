"""MVTec AD (Bergmann, Fauser, Sattlegger & Steger, CVPR 2019) in its published layout, CC BY-NC-SA 4.0.

    <root>/mvtec/<category>/train/good/NNN.png
    <root>/mvtec/<category>/test/<good|defect>/NNN.png
    <root>/mvtec/<category>/ground_truth/<defect>/NNN_mask.png

The original download has 1000 px (capsule; bottle 900 px) `.png` images; the copy here is 256 px `.jpg` (bottle
without masks). Both read the same way: any of .png/.jpg/.jpeg, sorted by name; a defect without a mask file gets
no mask (pixel metrics skip it). Images are resized with PIL (antialiased bilinear) and kept as uint8.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nndl_data import dataset_dir

CATEGORIES = ("capsule", "bottle")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
LICENCE = "MVTec AD © MVTec Software GmbH, CC BY-NC-SA 4.0 (non-commercial)"
CITATION = ("Bergmann, Fauser, Sattlegger & Steger, \"MVTec AD — A Comprehensive Real-World Dataset for Unsupervised "
            "Anomaly Detection\", CVPR 2019")


@dataclass(frozen=True)
class Sample:
    path: Path
    defect: str  # "good" or the defect type (the folder name)
    mask_path: Path | None  # ground truth, when the dataset has one

    @property
    def is_anomalous(self) -> bool:
        return self.defect != "good"

    @property
    def name(self) -> str:
        return f"{self.defect}/{self.path.stem}"


def category_dir(category: str, root: str | Path | None = None) -> Path:
    return dataset_dir(f"mvtec/{category}", root)


def _images(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES and not path.stem.endswith("_mask"))


def list_samples(category: str, split: str, root: str | Path | None = None) -> list[Sample]:
    """Every image of `split` (train | test), good first, then the defect types in alphabetical order."""
    base = category_dir(category, root)
    if split not in ("train", "test"):
        raise ValueError(f"split must be train or test, not {split!r}")
    folders = sorted((p for p in (base / split).iterdir() if p.is_dir()), key=lambda p: (p.name != "good", p.name))
    samples = []
    for folder in folders:
        for path in _images(folder):
            mask = None
            if folder.name != "good":
                found = [base / "ground_truth" / folder.name / f"{path.stem}_mask{suffix}" for suffix in IMAGE_SUFFIXES]
                mask = next((candidate for candidate in found if candidate.exists()), None)
            samples.append(Sample(path, folder.name, mask))
    if not samples:
        raise FileNotFoundError(f"no images under {base / split}")
    return samples


def load_image(source: str | Path | Image.Image, size: int) -> torch.Tensor:
    """One image → uint8 (3, size, size) RGB."""
    image = source if isinstance(source, Image.Image) else Image.open(source)
    image = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)


def load_images(samples: list[Sample], size: int) -> torch.Tensor:
    """uint8 (N, 3, size, size)."""
    return torch.stack([load_image(sample.path, size) for sample in samples])


def load_masks(samples: list[Sample], size: int) -> torch.Tensor:
    """bool (N, size, size): the ground-truth defect pixels; all False for good images and missing masks."""
    masks = []
    for sample in samples:
        if sample.mask_path is None:
            masks.append(np.zeros((size, size), bool))
        else:
            mask = Image.open(sample.mask_path).convert("L").resize((size, size), Image.Resampling.NEAREST)
            masks.append(np.asarray(mask) > 127)
    return torch.from_numpy(np.stack(masks))


def has_masks(samples: list[Sample]) -> bool:
    return any(sample.mask_path is not None for sample in samples)


def train_validation_split(count: int, fraction: float = 0.1, seed: int = 0) -> tuple[list[int], list[int]]:
    """Seeded split of the good training images: (train indices, validation indices), validation ≈ fraction."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()
    held_out = max(1, round(count * fraction))
    return sorted(order[held_out:]), sorted(order[:held_out])


def write_fake_mvtec(root: str | Path, category: str = "capsule", *, train: int = 12, test: dict[str, int] | None = None,
                     size: int = 48, suffix: str = ".png", masks: bool = True, seed: int = 0) -> Path:
    """A generated MVTec-layout folder `<root>/mvtec/<category>` (tests and dry runs): a pale ellipse 'capsule' on
    grey; defects are dark blobs (with masks) or a squeezed ellipse."""
    test = test if test is not None else {"good": 3, "crack": 3, "squeeze": 2}
    generator = np.random.default_rng(seed)
    base = Path(root) / "mvtec" / category
    rows, cols = np.mgrid[0:size, 0:size] / size - 0.5

    def draw(defect: str) -> tuple[np.ndarray, np.ndarray]:
        squeeze = 0.6 if defect == "squeeze" else 1.0
        body = (cols / 0.4) ** 2 + (rows / (0.15 * squeeze)) ** 2 < 1
        image = 90 + 10 * generator.standard_normal((size, size, 3))
        image[body] = [200, 120, 60] + 8 * generator.standard_normal((body.sum(), 3))
        mask = np.zeros((size, size), bool)
        if defect not in ("good", "squeeze"):
            cy, cx = generator.uniform(-0.08, 0.08), generator.uniform(-0.25, 0.25)
            mask = (rows - cy) ** 2 + (cols - cx) ** 2 < 0.004
            image[mask] = 20
        return np.clip(image, 0, 255).astype(np.uint8), mask

    for split, counts in (("train", {"good": train}), ("test", test)):
        for defect, count in counts.items():
            folder = base / split / defect
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                image, mask = draw(defect)
                Image.fromarray(image).save(folder / f"{index:03d}{suffix}")
                if split == "test" and defect != "good" and masks:
                    (base / "ground_truth" / defect).mkdir(parents=True, exist_ok=True)
                    Image.fromarray(mask.astype(np.uint8) * 255).save(base / "ground_truth" / defect / f"{index:03d}_mask.png")
    return base
