"""Registry: every registered architecture round-trips exactly; tampering and mismatches are rejected."""

import importlib
import json
import pkgutil

import pytest
import torch
from safetensors.torch import load_file, save_file

import models
from models import registry


def _import_all_models():
    for info in pkgutil.iter_modules(models.__path__):
        if info.name != "registry":
            importlib.import_module(f"models.{info.name}")


_import_all_models()


def _example_input(model):
    """Each model class may define `example_input(batch)`; the registry test needs nothing else."""
    return model.example_input(2) if hasattr(model, "example_input") else torch.rand(2, 3, 32, 32)


@pytest.mark.parametrize("architecture", sorted(registry.ARCHITECTURES))
def test_save_load_reproduces_outputs(architecture, checkpoint_root):
    torch.manual_seed(0)
    model = registry.create(architecture).eval()
    inputs = _example_input(model)
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    with torch.no_grad():
        expected = model(*inputs)
    registry.save(model, f"{architecture}-test", card={"note": "test"})
    loaded = registry.load(f"{architecture}-test")
    with torch.no_grad():
        actual = loaded(*inputs)
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)
    assert registry.load_card(f"{architecture}-test")["note"] == "test"


def test_half_precision_checkpoint_loads_as_float32(checkpoint_root):
    model = registry.create("pixelda-classifier").eval()
    registry.save(model, "pixelda-half", card={}, half=True)
    assert load_file(checkpoint_root / "pixelda-half" / "model.safetensors")["head.0.weight"].dtype == torch.float16
    loaded = registry.load("pixelda-half")
    assert next(loaded.parameters()).dtype == torch.float32
    x = torch.rand(4, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model(x), atol=2e-3, rtol=2e-2)


def test_renamed_key_is_rejected(checkpoint_root):
    directory = registry.save(registry.create("pixelda-classifier"), "pixelda-renamed", card={})
    weights = directory / "model.safetensors"
    tensors = load_file(weights)
    tensors["head.0.renamed"] = tensors.pop("head.0.weight")
    save_file(tensors, weights)
    config = json.loads((directory / "config.json").read_text())
    config["sha256"] = registry._sha256(weights)  # a consistent file: only strict loading can catch it
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(registry.CheckpointError, match="head.0"):
        registry.load("pixelda-renamed")


def test_tampered_weights_fail_the_sha256_check(checkpoint_root):
    directory = registry.save(registry.create("pixelda-classifier"), "pixelda-tampered", card={})
    with open(directory / "model.safetensors", "r+b") as handle:
        handle.seek(-4, 2)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(registry.CheckpointError, match="sha256"):
        registry.load("pixelda-tampered")


def test_missing_checkpoint_names_the_training_command(checkpoint_root, monkeypatch):
    monkeypatch.delenv("NNDL_HUB_REPO", raising=False)
    with pytest.raises(registry.CheckpointMissing, match=r"python -m training\.pixelda"):
        registry.load("pixelda-nothing")


def test_hub_offline_falls_back_fast_with_a_clear_message(checkpoint_root, monkeypatch):
    monkeypatch.setenv("NNDL_HUB_REPO", "someone/nndl-studio")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(registry.CheckpointMissing, match="HF_HUB_OFFLINE"):
        registry.load("pixelda-adapted")


def test_hub_unreachable_does_not_hang(checkpoint_root, monkeypatch):
    monkeypatch.setenv("NNDL_HUB_REPO", "someone/nndl-studio")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", "https://127.0.0.1:9")  # nothing listens there
    with pytest.raises(registry.CheckpointMissing, match="unreachable"):
        registry.load("pixelda-adapted")


def test_unknown_config_field_is_rejected(checkpoint_root):
    directory = registry.save(registry.create("pixelda-classifier"), "pixelda-extra-field", card={})
    config = json.loads((directory / "config.json").read_text())
    config["config"]["dropout"] = 0.5
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(registry.CheckpointError, match="dropout"):
        registry.load("pixelda-extra-field")


def test_init_from_copies_weights_into_fresh_runs_only_and_records_the_parent(checkpoint_root):
    from training.common import BaseTrainConfig, initialise_from

    torch.manual_seed(0)
    registry.save(registry.create("pixelda-classifier"), "pixelda-parent", card={"steps": 123, "initialised_from": {"checkpoint": "older"}})
    parent_weights = registry.load("pixelda-parent").state_dict()
    cfg = BaseTrainConfig(checkpoint_root=str(checkpoint_root), init_from="pixelda-parent")

    fresh = registry.create("pixelda-classifier")
    provenance = initialise_from(cfg, fresh, start=0, run_dir=checkpoint_root.parent / "fresh-run")
    assert all(torch.equal(fresh.state_dict()[key], parent_weights[key]) for key in parent_weights)
    assert provenance["checkpoint"] == "pixelda-parent" and provenance["steps"] == 123
    assert provenance["initialised_from"] == {"checkpoint": "older"}  # the chain of parents survives

    resumed = registry.create("pixelda-classifier")  # a resumed run (start > 0) keeps the weights it restored
    before = {key: value.clone() for key, value in resumed.state_dict().items()}
    initialise_from(cfg, resumed, start=50, run_dir=checkpoint_root.parent / "resumed-run")
    assert all(torch.equal(resumed.state_dict()[key], before[key]) for key in before)
    assert initialise_from(BaseTrainConfig(), resumed, start=0, run_dir=checkpoint_root.parent / "plain-run") is None
