"""Checkpoints on the Hub: `scripts.publish` lays out the repository the app downloads from, and the app's
`NNDL_HUB_REPO` path loads from a Hugging Face cache offline, as a restarted Space does."""

import shutil

import pytest
import torch
import yaml

from models import registry
from scripts import publish

NAME = "pixelda-adapted"  # a small committed checkpoint


@pytest.fixture(scope="module")
def laid_out(tmp_path_factory):
    source = tmp_path_factory.mktemp("checkpoints")
    for name in (NAME, "trivae-vae"):
        shutil.copytree(registry.checkpoint_root() / name, source / name)
    return publish.main(["--repo", "someone/nndl-studio", "--checkpoints", str(source), "--out", str(tmp_path_factory.mktemp("hub") / "repo"), "--no-upload"])


def test_layout_has_every_checkpoint_and_a_model_card_with_hub_metadata(laid_out):
    assert sorted(publish.checkpoint_names(laid_out)) == [NAME, "trivae-vae"]
    for file in ("config.json", "model.safetensors", "card.json", "log.csv"):
        assert (laid_out / NAME / file).exists(), file
    text = (laid_out / "README.md").read_text()
    metadata = yaml.safe_load(text.split("---")[1])
    assert metadata["license"] == "other" and "pixelda" in metadata["tags"]
    values = {metric["name"]: metric["value"] for result in metadata["model-index"][0]["results"] for metric in result["metrics"]}
    adapted = registry.load_card(NAME)["metrics"]["mnist_m_test_accuracy"]
    assert values[f"{NAME}: adapted"] == pytest.approx(adapted, abs=1e-4)  # measured, from the card
    assert "python -m training.pixelda" in text and "| adapted | 96.0 % |" in text  # command; report beside ours
    assert "*.safetensors filter=lfs" in (laid_out / ".gitattributes").read_text()


def test_upload_without_network_stops_with_a_message_and_keeps_the_folder(laid_out, monkeypatch):
    monkeypatch.setattr(registry, "_hub_reachable", lambda: False)
    with pytest.raises(SystemExit, match="unreachable"):
        publish.upload(laid_out, "someone/nndl-studio")
    assert (laid_out / NAME / "model.safetensors").exists()


def test_app_loads_a_published_checkpoint_from_the_hugging_face_cache_offline(laid_out, tmp_path, monkeypatch):
    """The cache as `snapshot_download` leaves it: refs/main names a snapshot folder holding the repo's files."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "hf-cache" / "models--someone--nndl-studio" / "snapshots" / commit
    shutil.copytree(laid_out, snapshot)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text(commit)
    monkeypatch.setenv("NNDL_CHECKPOINTS", str(tmp_path / "empty"))  # nothing on disk, as on a fresh Space
    monkeypatch.setenv("NNDL_HUB_REPO", "someone/nndl-studio")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    from_hub = registry.load(NAME)
    assert registry.load_card(NAME)["metrics"] == publish.json.loads((laid_out / NAME / "card.json").read_text())["metrics"]
    local = registry.load(NAME, root=laid_out)
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(from_hub(x), local(x), rtol=0, atol=0)
    with pytest.raises(registry.CheckpointMissing, match="cached copy of someone/nndl-studio .HF_HUB_OFFLINE is set. has no folder"):
        registry.load("trivae-trivae-coarse")  # published elsewhere, not cached here
