"""One-click examples are test images read from the data root, never copies shipped with the code.

Datasets stored as files (CycleGAN photos, MNIST-M, the LGG and BraTS slices) are shown in place. Datasets stored as
arrays in their official release (MNIST's IDX files, CIFAR's pickles) are written as PNGs to the user cache at start.
The app lets Gradio serve both folders (`allowed_paths`). Without the data, a tab has no examples and says so.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from nndl_data import DatasetMissing, data_root, user_cache_dir

NO_DATA_NOTE = "No test-split examples: the dataset is not under the data root (set NNDL_DATA_ROOT, see the README's 'Data'). Uploads work."


def allowed_paths() -> list[str]:
    """The folders example files come from, for `launch(allowed_paths=...)`."""
    try:
        roots = [str(data_root())]
    except DatasetMissing:
        roots = []
    return roots + [str(user_cache_dir("examples"))]


def write_pngs(slug: str, images: dict[str, np.ndarray]) -> list[Path]:
    """`images` (file stem → uint8 array, HW or HWC) as PNGs in the user cache's examples/<slug>/, in order.
    Rewritten at every start (a few ms), so they always match the data root in use."""
    folder = user_cache_dir("examples", slug)
    paths = []
    for stem, array in images.items():
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".png", delete=False) as partial:
            Image.fromarray(np.asarray(array, dtype=np.uint8)).save(partial, format="PNG")
        paths.append(Path(partial.name).replace(folder / f"{stem}.png"))  # atomic: no half-written example
    return paths
