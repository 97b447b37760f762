"""Datasets in their published layouts, read from one configurable data root.

The root is, in order: an explicit argument (the training scripts' `--data-root`), the `NNDL_DATA_ROOT`
environment variable, `../shared/data` beside the repository, `./data` inside it. Each dataset keeps the folder
name and layout of its public download, so a full original download works unchanged in place of the subsets here.
"""

from __future__ import annotations

import os
from pathlib import Path

from models.registry import REPO_ROOT


class DatasetMissing(FileNotFoundError):
    """A dataset folder is not where the data root says; the message says how to point at it."""


def data_root(override: str | Path | None = None) -> Path:
    candidates = [override, os.environ.get("NNDL_DATA_ROOT"), REPO_ROOT.parent / "shared" / "data", REPO_ROOT / "data"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    raise DatasetMissing("No data root found. Pass --data-root DIR or set NNDL_DATA_ROOT=DIR (see README, 'Data').")


def dataset_dir(name: str, override: str | Path | None = None) -> Path:
    """`<data root>/<name>`, or a DatasetMissing error that names the root and the variable to set."""
    root = data_root(override)
    directory = root / name
    if not directory.is_dir():
        raise DatasetMissing(f"{directory} does not exist. Put the {name} dataset there, or point --data-root / NNDL_DATA_ROOT at a folder that has it.")
    return directory


def user_cache_dir(*parts: str) -> Path:
    """`$XDG_CACHE_HOME/nndl-studio/...` (default ~/.cache): files derived from the data root, never committed."""
    directory = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "nndl-studio", *parts)
    directory.mkdir(parents=True, exist_ok=True)
    return directory
