"""One-click examples: test images read from the data root, else the few shipped in demos/assets/<slug>/.

Datasets stored as files (CycleGAN photos, MNIST-M, the LGG and BraTS slices) are shown in place. Datasets stored as
arrays in their official release (MNIST's IDX files, CIFAR's pickles) are written as PNGs to the user cache at start.
Every file a tab shows is registered here (`shown`, and `write_pngs` itself), and the app serves exactly those files
(`allowed_paths`), nothing else under the data root: Gradio is given the few folders they lie in (`served_folders`) and
the app's middleware refuses every other file in them (`may_serve`, demos/serving.py).

A Hugging Face Space is built from the repository alone, without a data root: each tab then falls back to a few
test-split files shipped in `assets(slug)` (about 1 MB per tab at most, in the dataset's own layout where it has one,
with a README naming the dataset's citation and licence), and says so (`SHIPPED_NOTE`). How a tab adds them:
docs/space.md. A tab with neither says where the data goes (`NO_DATA_NOTE`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from nndl_data import DatasetMissing, data_root, user_cache_dir

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
    """The example files the tabs built so far show: the only files of `served_folders()` the app serves."""
    with _LOCK:
        return sorted(_SHOWN)


def _example_roots() -> list[Path]:
    roots = [ASSETS, user_cache_dir("examples")]
    with contextlib.suppress(DatasetMissing):
        roots.append(data_root())
    return [root.resolve() for root in roots]


def served_folders() -> list[str]:
    """What `launch(allowed_paths=...)` gets: the roots the shown files lie in (shipped assets, the PNG cache, the data
    root), not the files. Gradio checks a path against each entry with two `realpath` calls, on its event loop, for
    every output file and every download: with the ~250 example files themselves that was ~0.2 s of CPU per request
    of the VAE tab, most of what a request cost. `may_serve` keeps the rest of these folders private."""
    roots = _example_roots()
    return sorted({str(next((root for root in roots if Path(path).is_relative_to(root)), path)) for path in allowed_paths()})


def may_serve(requested: str, folders: list[str]) -> bool:
    """Whether the app may send the file a request names (`/file=<path>`, relative to the working directory as Gradio
    reads it): not if it lies in one of `folders` (`served_folders()` at launch) without being a shown example;
    anything else Gradio decides."""
    path = Path(os.path.abspath(requested)).resolve()
    with _LOCK:
        if str(path) in _SHOWN:
            return True
    return not any(path.is_relative_to(folder) for folder in folders)


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
