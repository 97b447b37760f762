"""The repository is a valid Hugging Face Space: its README front matter names the SDK and versions it runs."""

import re
from pathlib import Path

import gradio
import yaml

ROOT = Path(__file__).resolve().parent.parent


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n"), "a Space's README starts with YAML front matter"
    return yaml.safe_load(text.split("---\n")[1])


def test_front_matter_matches_what_the_tests_run():
    meta = front_matter()
    pinned = re.search(r"^gradio==([\w.]+)", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    assert pinned, "requirements.txt pins gradio exactly, so the Space runs the version the tests ran"
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == pinned.group(1) == gradio.__version__
    assert str(meta["python_version"]) == "3.12"
    assert (ROOT / meta["app_file"]).is_file()
    assert meta["license"] == "mit" and (ROOT / "LICENSE").is_file()


def test_binaries_are_stored_with_lfs_as_the_hub_requires():
    attributes = (ROOT / ".gitattributes").read_text()
    for pattern in ("*.safetensors", "*.png", "*.jpg"):
        assert re.search(rf"^{re.escape(pattern)} filter=lfs diff=lfs merge=lfs -text$", attributes, re.MULTILINE), pattern
