"""Brain MRI slices for the VAE / Tri-VAE system, in their published layouts, plus the synthetic-anomaly noise.

Layouts (all read into memory as prepared 1-channel slices, see `models.trivae.prepare_slice`):

- LGG (Buda et al. 2019, the Kaggle "kaggle_3m" set; here FLAIR only, 128 px):
      brain/lgg_flair/<patient>/<patient>_<n>.png  +  <patient>_<n>_mask.png (0/255)  +  brain/lgg_flair/data.csv
  Split by patient (seeded 70/15/15), never by slice: `split_patients`.
- BraTS 2021 slices: brain/brats21_slices/images/<name>.png + masks/<name>.png (whole tumour, 0/255).
- The report's IXI T2 PNG slices: every `*.png` under a folder, sorted (`os.walk`), all healthy.
- The report's BraTS volumes: every `*_t2.nii[.gz]` under a folder with `*_seg.nii[.gz]` beside it (nibabel);
  the middle axial slice (the report) or every slice with tumour. Labels are binarised (> 0) *before* resizing,
  which fixes the report's uint8 overflow; a missing segmentation file is skipped with a warning.

Noise (negatives of the Tri-VAE triplets, spec §A1.3 with the §A12.4–5 fixes): `coarse_noise`, `simplex_noise`,
`add_noise`. Every sample gets its own noise (the report's 100 simplex masks were all identical).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from models.trivae import brain_mask, head_mask, prepare_slice
from models.registry import REPO_ROOT
from nndl_data import DatasetMissing, dataset_dir

# The FLAIR-intensity baseline's measurement (no model, so not a card): written by `python -m evaluation.trivae --baseline`.
BASELINE_FILE = REPO_ROOT / "evaluation" / "results" / "trivae-intensity-baseline.json"

LGG = "brain/lgg_flair"
BRATS_SLICES = "brain/brats21_slices"
MIN_FOREGROUND = 0.1  # slices whose head/brain covers less of the frame than this are skipped ("almost no brain")


@dataclasses.dataclass
class Slices:
    """Prepared slices: images uint8 (N, S, S) (value/255 is the model input), masks bool (N, S, S), ids."""

    images: torch.Tensor
    masks: torch.Tensor
    names: list[str]
    patients: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, keep) -> "Slices":
        keep = torch.as_tensor(keep)
        if keep.dtype == torch.bool:
            keep = keep.nonzero().flatten()
        index = keep.tolist()
        return Slices(self.images[keep], self.masks[keep], [self.names[i] for i in index], [self.patients[i] for i in index])

    def floats(self) -> torch.Tensor:
        return self.images.float().div(255).unsqueeze(1)  # (N, 1, S, S) in [0, 1]

    @property
    def has_tumour(self) -> torch.Tensor:
        return self.masks.flatten(1).any(1)


def _pack(items: list[tuple[np.ndarray, np.ndarray | None, str, str]], size: int) -> Slices:
    if not items:
        return Slices(torch.zeros(0, size, size, dtype=torch.uint8), torch.zeros(0, size, size, dtype=torch.bool), [], [])
    images = np.stack([np.round(image * 255).astype(np.uint8) for image, *_ in items])
    masks = np.stack([mask if mask is not None else np.zeros((size, size), bool) for _, mask, *_ in items])
    return Slices(torch.from_numpy(images), torch.from_numpy(masks), [item[2] for item in items], [item[3] for item in items])


def _gray(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))


def foreground_fraction(image: np.ndarray) -> float:
    """Share of the frame covered by the head (`head_mask`): small on slices with almost no brain."""
    return float(head_mask(image).mean())


def _slice_number(path: Path) -> int:
    match = re.search(r"_(\d+)$", path.stem)
    return int(match.group(1)) if match else 0


def load_lgg(data_root: str | Path | None = None, size: int = 128, patients: list[str] | None = None,
             min_foreground: float = MIN_FOREGROUND) -> Slices:
    """Every LGG slice (of `patients`, default all) with enough head in it, in patient then slice order."""
    root = dataset_dir(LGG, data_root)
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if patients is not None:
        wanted = set(patients)
        folders = [folder for folder in folders if folder.name in wanted]
    if not folders:
        raise DatasetMissing(f"{root} has no patient folders (<patient>/<patient>_<n>.png + _mask.png).")
    items = []
    for folder in folders:
        for path in sorted((p for p in folder.glob("*.png") if not p.stem.endswith("_mask")), key=_slice_number):
            mask_path = path.with_name(path.stem + "_mask.png")
            raw = _gray(path)
            if foreground_fraction(raw) < min_foreground:
                continue
            image, mask = prepare_slice(raw, _gray(mask_path) if mask_path.exists() else np.zeros_like(raw), size)
            items.append((image, mask, path.stem, folder.name))
    return _pack(items, size)


def lgg_patients(data_root: str | Path | None = None) -> list[str]:
    root = dataset_dir(LGG, data_root)
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def split_patients(patients: list[str], seed: int = 0, fractions=(0.7, 0.15, 0.15)) -> dict[str, list[str]]:
    """Seeded patient-level split → {'train', 'validation', 'test'}: disjoint, together all patients."""
    order = sorted(patients)
    permutation = np.random.default_rng(seed).permutation(len(order))
    shuffled = [order[i] for i in permutation]
    n_train = int(round(fractions[0] * len(order)))
    n_validation = int(round(fractions[1] * len(order)))
    return {
        "train": sorted(shuffled[:n_train]),
        "validation": sorted(shuffled[n_train : n_train + n_validation]),
        "test": sorted(shuffled[n_train + n_validation :]),
    }


def load_lgg_splits(data_root: str | Path | None = None, size: int = 128, seed: int = 0) -> dict[str, Slices]:
    """The protocol of issue 5: train = tumour-free slices of training patients; validation = tumour-free slices of
    validation patients (threshold choice); validation_tumour; test = tumour slices of test patients."""
    split = split_patients(lgg_patients(data_root), seed)
    everything = load_lgg(data_root, size)
    by_patient = np.array(everything.patients)
    part = {name: torch.from_numpy(np.isin(by_patient, patients)) for name, patients in split.items()}
    healthy = ~everything.has_tumour
    return {
        "train": everything.subset(part["train"] & healthy),
        "validation": everything.subset(part["validation"] & healthy),
        "validation_tumour": everything.subset(part["validation"] & ~healthy),
        "test": everything.subset(part["test"] & ~healthy),
        "test_healthy": everything.subset(part["test"] & healthy),
    }


def load_brats_slices(data_root: str | Path | None = None, size: int = 128, folder: str | Path | None = None) -> Slices:
    """BraTS 2021 PNG slices (`images/` + `masks/`, same file names)."""
    root = Path(folder) if folder is not None else dataset_dir(BRATS_SLICES, data_root)
    paths = sorted((root / "images").glob("*.png"))
    if not paths:
        raise DatasetMissing(f"{root}/images has no PNG slices.")
    items = []
    for path in paths:
        mask_path = root / "masks" / path.name
        if not mask_path.exists():
            warnings.warn(f"{mask_path} is missing; slice skipped")
            continue
        image, mask = prepare_slice(_gray(path), _gray(mask_path), size)
        items.append((image, mask, path.stem, path.stem.rsplit("_", 1)[0]))
    return _pack(items, size)


def load_ixi_png(folder: str | Path, size: int = 128) -> Slices:
    """The report's IXI T2 layout: every *.png below `folder` (os.walk, sorted), all healthy (empty masks)."""
    paths = sorted(Path(directory) / name for directory, _, names in os.walk(folder) for name in names if name.lower().endswith(".png"))
    if not paths:
        raise DatasetMissing(f"{folder} has no PNG slices (the report's IXI T2 layout: any folder tree of *.png).")
    items = [(prepare_slice(_gray(path), None, size)[0], None, path.stem, path.parent.name) for path in paths]
    return _pack(items, size)


class VolumeError(ValueError):
    """A file that is not a usable NIfTI volume; the message is meant for the user."""


MAX_VOLUME_VOXELS = 64_000_000


def read_volume(path: str | Path) -> np.ndarray:
    """A NIfTI file → float32 (H, W, D) in closest-canonical (RAS) orientation, or VolumeError with a clear message."""
    import nibabel

    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise VolumeError(f"{path.name} is empty or missing. Upload a NIfTI volume (.nii or .nii.gz).")
    if not (path.name.lower().endswith(".nii") or path.name.lower().endswith(".nii.gz")):
        raise VolumeError(f"{path.name} is not a NIfTI file (.nii or .nii.gz). For a single slice upload a PNG or JPEG.")
    try:
        volume = nibabel.load(str(path))
        if not isinstance(volume, (nibabel.Nifti1Image, nibabel.Nifti2Image)):
            raise VolumeError(f"{path.name} is not a NIfTI-1/2 image.")
        if int(np.prod(volume.shape)) > MAX_VOLUME_VOXELS:
            raise VolumeError(f"{path.name} has {np.prod(volume.shape):,} voxels; the limit is {MAX_VOLUME_VOXELS:,}.")
        volume = nibabel.as_closest_canonical(volume) if volume.ndim >= 3 else volume
        data = np.asarray(volume.get_fdata(dtype=np.float32))
    except VolumeError:
        raise
    except Exception as error:  # nibabel raises ImageFileError, EOFError, zlib/gzip errors, ValueError, ...
        raise VolumeError(f"{path.name} could not be read as a NIfTI volume ({type(error).__name__}: {error}). "
                          "It may be corrupt, truncated or another format.") from error
    if data.ndim == 2:
        data = data[:, :, None]
    while data.ndim > 3:
        data = data[..., 0]  # 4-D (time / modality): the first volume
    if data.ndim != 3 or min(data.shape[:2]) < 8:
        raise VolumeError(f"{path.name} has shape {data.shape}; expected a 3-D volume with slices of at least 8×8 voxels.")
    if not np.isfinite(data).all():
        data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    return data


def axial_slice(volume: np.ndarray, index: int) -> np.ndarray:
    """Slice `index` of the last axis, rotated so anterior is up (radiological display of RAS data)."""
    return np.rot90(volume[:, :, int(np.clip(index, 0, volume.shape[2] - 1))]).copy()


def load_brats_volumes(folder: str | Path, size: int = 128, slices: str = "middle", min_tumour_pixels: int = 20) -> Slices:
    """The report's BraTS 2020 layout: `*_t2.nii[.gz]` + `*_seg.nii[.gz]`. `slices`: 'middle' (z = D // 2, the
    report) or 'tumour' (every axial slice whose whole-tumour mask has at least `min_tumour_pixels`)."""
    paths = sorted(Path(d) / n for d, _, names in os.walk(folder) for n in names if re.search(r"_t2\.nii(\.gz)?$", n))
    if not paths:
        raise DatasetMissing(f"{folder} has no *_t2.nii volumes (BraTS layout: <case>/<case>_t2.nii + <case>_seg.nii).")
    items = []
    for path in paths:
        seg_path = path.with_name(re.sub(r"_t2(\.nii(\.gz)?)$", r"_seg\1", path.name))
        if not seg_path.exists():  # e.g. BraTS 2020 case 355's non-standard name
            warnings.warn(f"{seg_path.name} not found beside {path.name}; case skipped")
            continue
        image, segmentation = read_volume(path), read_volume(seg_path) > 0
        if slices == "middle":
            indices = [image.shape[2] // 2]
        else:
            areas = segmentation.sum(axis=(0, 1))
            indices = [int(z) for z in np.nonzero(areas >= min_tumour_pixels)[0]]
        case = path.name.split("_t2")[0]
        for z in indices:
            prepared, mask = prepare_slice(axial_slice(image, z), axial_slice(segmentation, z), size)
            items.append((prepared, mask, f"{case}_z{z}", case))
    return _pack(items, size)


# ---- synthetic anomalies ----

_SQRT3 = math.sqrt(3.0)
_F2, _G2 = 0.5 * (_SQRT3 - 1.0), (3.0 - _SQRT3) / 6.0
_GRADIENTS = torch.tensor([[1, 1], [-1, 1], [1, -1], [-1, -1], [1, 0], [-1, 0], [1, 0], [-1, 0], [0, 1], [0, -1], [0, 1], [0, -1]], dtype=torch.float32)


def simplex2d(x: torch.Tensor, y: torch.Tensor, permutation: torch.Tensor) -> torch.Tensor:
    """2-D simplex noise (Perlin 2001, Gustavson's formulation), vectorised; values in about [-1, 1].

    `permutation`: int64 (512,), a permutation of 0..255 repeated twice (the hash of lattice points).
    """
    s = (x + y) * _F2
    i, j = torch.floor(x + s), torch.floor(y + s)
    t = (i + j) * _G2
    x0, y0 = x - (i - t), y - (j - t)  # offsets from the first simplex corner
    upper = (x0 > y0).to(x.dtype)  # which of the two triangles of the skewed cell
    corners = [(x0, y0, 0, 0), (x0 - upper + _G2, y0 - (1 - upper) + _G2, upper, 1 - upper), (x0 - 1 + 2 * _G2, y0 - 1 + 2 * _G2, 1, 1)]
    ii, jj = i.long() & 255, j.long() & 255
    gradients = _GRADIENTS.to(x.device)
    total = torch.zeros_like(x)
    for dx, dy, di, dj in corners:
        di = di.long() if torch.is_tensor(di) else di
        dj = dj.long() if torch.is_tensor(dj) else dj
        hashed = permutation[ii + di + permutation[jj + dj]] % 12
        g = gradients[hashed]  # (..., 2)
        falloff = (0.5 - dx * dx - dy * dy).clamp(min=0)
        total = total + falloff**4 * (g[..., 0] * dx + g[..., 1] * dy)
    return 70.0 * total


def simplex_noise(batch: int, size: int, *, generator: torch.Generator | None = None, device="cpu",
                  frequency: float = 2**-6, octaves: int = 6, persistence: float = 0.8, lacunarity: float = 2.0,
                  reference_size: int = 256) -> torch.Tensor:
    """(batch, 1, size, size) fractal simplex noise, a different random pattern per sample, zero-centred, unit std.

    Frequencies are in cycles per pixel of a `reference_size` image (the report's 2^-6 at 256 px), so a 128 px slice
    gets the same pattern relative to the brain.
    """
    permutation = torch.randperm(256, generator=generator).repeat(2).to(device)
    offsets = (torch.rand(batch, 2, 1, 1, generator=generator) * 4096).to(device)  # per-sample shift: the report's fix
    coordinates = torch.arange(size, dtype=torch.float32, device=device) * (reference_size / size)
    rows, cols = coordinates.view(1, size, 1), coordinates.view(1, 1, size)
    noise = torch.zeros(batch, size, size, device=device)
    for octave in range(octaves):
        f = frequency * lacunarity**octave
        if f * reference_size / size > 0.5:  # above the Nyquist rate of this image size: it would only alias
            break
        noise += persistence**octave * simplex2d(rows * f + offsets[:, 0], cols * f + offsets[:, 1], permutation)
    noise = noise - noise.mean(dim=(1, 2), keepdim=True)
    return (noise / noise.std(dim=(1, 2), keepdim=True).clamp(min=1e-6)).unsqueeze(1)


def simplex_noise_report(size: int = 256, frequency: float = 2**-6, octaves: int = 6, persistence: float = 0.8,
                         lacunarity: float = 2.0, offset: tuple[float, float] = (0.0, 0.0), seed: int = 42) -> torch.Tensor:
    """The report's mask: min–max scaled to [0, 1] (added at full strength). With offset (0, 0) and one seed every
    call returns the same pattern, which is the report's bug."""
    permutation = torch.randperm(256, generator=torch.Generator().manual_seed(seed)).repeat(2)
    coordinates = torch.arange(size, dtype=torch.float32)
    rows, cols = coordinates.view(size, 1), coordinates.view(1, size)
    noise = torch.zeros(size, size)
    for octave in range(octaves):
        f = frequency * lacunarity**octave
        noise += persistence**octave * simplex2d(rows * f + offset[0], cols * f + offset[1], permutation)
    return (noise - noise.min()) / (noise.max() - noise.min()).clamp(min=1e-6)


def coarse_noise(batch: int, size: int, *, generator: torch.Generator | None = None, device="cpu", grid: int = 16) -> torch.Tensor:
    """(batch, 1, size, size): N(0, 1) on a grid×grid lattice, bilinearly up-sampled (the report: 16×16); unit σ on the lattice."""
    lattice = torch.randn(batch, 1, grid, grid, generator=generator).to(device)
    return F.interpolate(lattice, size=(size, size), mode="bilinear", align_corners=False)


def add_noise(images: torch.Tensor, kind: str, *, sigma: float = 0.2, foreground: torch.Tensor | None = None,
              generator: torch.Generator | None = None, **noise_options) -> tuple[torch.Tensor, torch.Tensor]:
    """(noised images clamped to [0, 1], the noise added). kind 'coarse' or 'simplex'; `foreground` (bool, same shape)
    restricts the noise to the head/brain (the report also noised the background and clamped to [-1, 1])."""
    batch, _, size, _ = images.shape
    makers = {"coarse": coarse_noise, "simplex": simplex_noise}
    if kind not in makers:
        raise ValueError(f"noise kind must be one of {sorted(makers)}, not {kind!r}")
    noise = sigma * makers[kind](batch, size, generator=generator, device=images.device, **noise_options)
    if foreground is not None:
        noise = noise * foreground
    noised = (images + noise).clamp(0, 1)
    return noised, noised - images


def foreground_masks(slices: Slices) -> torch.Tensor:
    """bool (N, 1, S, S): the un-eroded head/brain mask of every slice (where training noise is added)."""
    return brain_mask(slices.floats(), erosion=0)
