"""One-click examples: test images read from the data root, else the few shipped in demos/assets/<slug>/.

Datasets stored as files (CycleGAN photos, MNIST-M, the LGG and BraTS slices) are shown in place. Datasets stored as
arrays in their official release (MNIST's IDX files, CIFAR's pickles) are written as PNGs to the user cache at start.
Every file a tab shows is registered here (`shown`, and `write_pngs` itself), and the app lets Gradio serve exactly
those files (`allowed_paths`), nothing else under the data root.

A Hugging Face Space is built from the repository alone, without a data root: each tab then falls back to a few
test-split files shipped in `assets(slug)` (about 1 MB per tab at most, in the dataset's own layout where it has one,
with a README naming the dataset's citation and licence), and says so (`SHIPPED_NOTE`). How a tab adds them:
docs/space.md. A tab with neither says where the data goes (`NO_DATA_NOTE`).
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from nndl_data import user_cache_dir

ASSETS = Path(__file__).resolve().parent / "assets"
SHIPPED_NOTE = ("Only the few test examples shipped with the app (no data root here, as on a Space); with the dataset under "
                "the data root (NNDL_DATA_ROOT) the tab offers more. Uploads work.")
NO_DATA_NOTE = "No test-split examples: the dataset is not under the data root (set NNDL_DATA_ROOT, see the README's 'Data'). Uploads work."
_SHOWN: set[str] = set()
_LOCK = threading.Lock()


def assets(slug: str) -> Path:
    """demos/assets/<slug>: the tab's shipped examples, in the dataset's layout (use it as a data root)."""
    return ASSETS / slug


def shown(paths):
    """Register example files a tab shows (so the app may serve them) and return `paths` unchanged."""
    with _LOCK:
        _SHOWN.update(str(Path(path).resolve()) for path in paths)
    return paths


def allowed_paths() -> list[str]:
    """The example files the tabs built so far show, for `launch(allowed_paths=...)`: call it after building."""
    with _LOCK:
        return sorted(_SHOWN)


def write_pngs(slug: str, images: dict[str, np.ndarray]) -> list[Path]:
    """`images` (file stem → uint8 array, HW or HWC) as PNGs in the user cache's examples/<slug>/, in order.
    Rewritten at every start (a few ms), so they always match the data root in use."""
    folder = user_cache_dir("examples", slug)
    paths = []
    for stem, array in images.items():
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".png", delete=False) as partial:
            Image.fromarray(np.asarray(array, dtype=np.uint8)).save(partial, format="PNG")
        paths.append(Path(partial.name).replace(folder / f"{stem}.png"))  # atomic: no half-written example
    return shown(paths)
