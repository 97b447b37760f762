"""Model registry: architectures by name, checkpoints as `config.json` + `model.safetensors` + `card.json`.

A checkpoint is a folder `checkpoints/<name>/`:
- `config.json`: {"architecture", "config", "dtype", "sha256"}: everything needed to rebuild the module;
- `model.safetensors`: the state dict (buffers included), fp16 when saved with `half=True`;
- `card.json`: what produced the weights (data, split, seed, steps, wall time, hardware) and the metrics
  measured by the system's evaluation command;
- optionally `log.csv` (training curves) and other small files the demo shows.

Checkpoint names start with the system slug (`pixelda-adapted`, `cyclegan-apple2orange`), which is how a
missing checkpoint names the command that trains it. When `NNDL_HUB_REPO` names a Hugging Face repo, missing
checkpoints are fetched from its `<name>/` folder; offline, that fails fast with a clear message.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import importlib
import json
import os
import shutil
import socket
import tempfile
import types
import typing
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

REPO_ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURES: dict[str, tuple[type[nn.Module], type]] = {}


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be used (corrupt, tampered with, or for another architecture)."""


class CheckpointMissing(CheckpointError):
    """No checkpoint of that name, locally or on the configured Hub repo."""


def register(architecture: str, config_class: type):
    """Class decorator: make `architecture` buildable from a config dict. The module takes only `config`."""

    def decorate(module_class: type[nn.Module]) -> type[nn.Module]:
        if architecture in ARCHITECTURES:
            raise ValueError(f"architecture {architecture!r} registered twice")
        ARCHITECTURES[architecture] = (module_class, config_class)
        module_class.architecture = architecture
        return module_class

    return decorate


def checkpoint_root() -> Path:
    return Path(os.environ.get("NNDL_CHECKPOINTS", REPO_ROOT / "checkpoints"))


def train_command(name: str) -> str:
    return f"python -m training.{name.split('-')[0]}"


def config_to_dict(config) -> dict:
    return dataclasses.asdict(config)


def config_from_dict(config_class: type, values: dict):
    """Rebuild a (frozen) dataclass config from JSON, turning JSON lists back into tuples; unknown keys fail."""
    hints = typing.get_type_hints(config_class)
    fields = {field.name for field in dataclasses.fields(config_class)}
    unknown = set(values) - fields
    if unknown:
        raise CheckpointError(f"{config_class.__name__} has no fields {sorted(unknown)}")
    converted = {}
    for key, value in values.items():
        origin = typing.get_origin(hints[key])
        if isinstance(value, list) and (origin is tuple or hints[key] is tuple):
            value = tuple(value)
        elif dataclasses.is_dataclass(hints[key]) and isinstance(value, dict):
            value = config_from_dict(hints[key], value)
        elif origin in (typing.Union, types.UnionType) and isinstance(value, list):
            value = tuple(value)
        converted[key] = value
    return config_class(**converted)


def _module_class(architecture: str) -> tuple[type[nn.Module], type]:
    """Architectures are named `<slug>-<part>` and live in `models/<slug>.py`, imported on first use."""
    if architecture not in ARCHITECTURES:
        try:
            importlib.import_module(f"models.{architecture.split('-')[0]}")
        except ModuleNotFoundError:
            pass
    if architecture not in ARCHITECTURES:
        raise CheckpointError(f"unknown architecture {architecture!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[architecture]


def create(architecture: str, config=None) -> nn.Module:
    module_class, config_class = _module_class(architecture)
    return module_class(config if config is not None else config_class())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


def save(
    model: nn.Module,
    name: str,
    *,
    card: dict,
    root: Path | str | None = None,
    half: bool = False,
    extra_files: dict[str, Path | str] | None = None,
) -> Path:
    """Write `<root>/<name>/` atomically (a crash leaves the previous version intact)."""
    root = Path(root) if root is not None else checkpoint_root()
    root.mkdir(parents=True, exist_ok=True)
    target = root / name
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    tensors = {}
    for key, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous().clone()
        if half and tensor.is_floating_point():
            tensor = tensor.half()
        tensors[key] = tensor
    save_file(tensors, staging / "model.safetensors", metadata={"architecture": model.architecture})
    _write_json(
        staging / "config.json",
        {
            "architecture": model.architecture,
            "config": config_to_dict(model.config),
            "dtype": "float16" if half else "float32",
            "sha256": _sha256(staging / "model.safetensors"),
        },
    )
    _write_json(staging / "card.json", card)
    for file_name, source in (extra_files or {}).items():
        shutil.copyfile(source, staging / file_name)
    if target.exists():
        backup = root / f".{name}-old"
        shutil.rmtree(backup, ignore_errors=True)
        target.rename(backup)
        staging.rename(target)
        shutil.rmtree(backup)
    else:
        staging.rename(target)
    return target


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("//")[-1].split("/")[0]
    try:
        socket.create_connection((endpoint, 443), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def _fetch_from_hub(name: str, root: Path) -> Path:
    """The folder `<name>/` of the Hub repo `NNDL_HUB_REPO`, through the Hugging Face cache (`HF_HUB_CACHE`).

    Offline (`HF_HUB_OFFLINE=1`) it is read from the cache alone, so a Space restarted without network keeps
    serving what it fetched before; without a cached copy, or with the Hub unreachable, the error says what to do
    within seconds, never a hang."""
    repo_id = os.environ.get("NNDL_HUB_REPO")
    where = f"No checkpoint {name!r} in {root}/."
    if not repo_id:
        raise CheckpointMissing(f"{where} Train it with `{train_command(name)}`, or set NNDL_HUB_REPO to a Hub repo that has it.")
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    if not offline and not _hub_reachable():
        raise CheckpointMissing(f"{where} The Hugging Face Hub is unreachable (offline?), so it was not fetched from {repo_id}. Train it with `{train_command(name)}`.")
    from huggingface_hub import snapshot_download

    try:
        snapshot = snapshot_download(repo_id=repo_id, allow_patterns=[f"{name}/*"], cache_dir=os.environ.get("HF_HUB_CACHE"),
                                     local_files_only=offline, etag_timeout=10)
    except Exception as error:  # the hub library raises many types; the user needs one message
        if offline:
            raise CheckpointMissing(f"{where} HF_HUB_OFFLINE is set and {repo_id} is not in the Hugging Face cache. Unset it to download, or train it with `{train_command(name)}`.") from error
        raise CheckpointMissing(f"{where} Fetching it from {repo_id} failed: {error}") from error
    directory = Path(snapshot) / name
    if not (directory / "model.safetensors").exists():
        copy = f"The cached copy of {repo_id} (HF_HUB_OFFLINE is set)" if offline else f"The Hub repo {repo_id}"
        raise CheckpointMissing(f"{where} {copy} has no folder {name}/ either. Train it with `{train_command(name)}`.")
    return directory


def checkpoint_dir(name: str, root: Path | str | None = None) -> Path:
    """The folder of a checkpoint: `<root>/<name>`, else the Hub repo's `<name>/` in the Hugging Face cache."""
    root = Path(root) if root is not None else checkpoint_root()
    directory = root / name
    if not (directory / "model.safetensors").exists():
        return _fetch_from_hub(name, root)
    return directory


def available(name: str, root: Path | str | None = None) -> bool:
    """True when the checkpoint is on disk (no network)."""
    root = Path(root) if root is not None else checkpoint_root()
    return (root / name / "model.safetensors").exists()


def _meta(directory: Path) -> dict:
    try:
        return json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{directory}/config.json is unreadable: {error}") from error


def load_config(name: str, root: Path | str | None = None):
    """The checkpoint's architecture config, without reading its weights."""
    meta = _meta(checkpoint_dir(name, root))
    return config_from_dict(_module_class(meta["architecture"])[1], meta["config"])


def load(name: str, *, root: Path | str | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the module, check the weights' sha256, load strictly, return it in eval mode as float32."""
    directory = checkpoint_dir(name, root)
    meta = _meta(directory)
    weights = directory / "model.safetensors"
    if _sha256(weights) != meta.get("sha256"):
        raise CheckpointError(f"{weights} does not match the sha256 in its config.json (corrupt or replaced). Re-train or re-download it.")
    module_class, config_class = _module_class(meta["architecture"])
    model = module_class(config_from_dict(config_class, meta["config"]))
    state = {key: tensor.float() if tensor.is_floating_point() else tensor for key, tensor in load_file(weights).items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{name}: weights do not fit {meta['architecture']}: {error}") from error
    return model.to(device).eval()


def load_card(name: str, root: Path | str | None = None) -> dict:
    return json.loads((checkpoint_dir(name, root) / "card.json").read_text(encoding="utf-8"))


def update_card(name: str, root: Path | str | None = None, **fields) -> dict:
    """Merge fields (e.g. `metrics=...` from an evaluation command) into a checkpoint's card."""
    path = checkpoint_dir(name, root) / "card.json"
    card = json.loads(path.read_text(encoding="utf-8"))
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(card.get(key), dict):
            card[key] = {**card[key], **value}
        else:
            card[key] = value
    _write_json(path, card)
    return card


def read_log(path: str | Path) -> dict[str, np.ndarray]:
    """A training log as columns: floats (NaN where a row has no value), or strings for text columns."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = {}
    for key in rows[0] if rows else []:
        values = [row[key] for row in rows]
        try:
            columns[key] = np.array([float(value) if value not in ("", None) else np.nan for value in values])
        except ValueError:
            columns[key] = np.array(values)
    return columns
