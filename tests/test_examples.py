"""One-click examples come from the data root: written PNGs round-trip, the app may serve them, and every tab
still builds (and says why it has no examples) when there is no data at all."""

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from demos import examples
from models import registry


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_written_examples_round_trip_in_order_and_are_servable(cache_home):
    rng = np.random.default_rng(0)
    arrays = {"b-gray": rng.integers(0, 256, (28, 28), dtype=np.uint8), "a-rgb": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)}
    paths = examples.write_pngs("demo", arrays)
    assert [path.stem for path in paths] == ["b-gray", "a-rgb"]  # the caller's order, not the file system's
    for path, array in zip(paths, arrays.values()):
        np.testing.assert_array_equal(np.asarray(Image.open(path)), array)
    assert sorted(p.name for p in paths[0].parent.iterdir()) == ["a-rgb.png", "b-gray.png"]  # no temporary files left
    assert {str(path.resolve()) for path in paths} <= set(examples.allowed_paths())  # served: exactly the files shown


def _tab_modules():
    from app import _demo_modules  # the tabs exactly as the app finds them

    return [module for _, module in _demo_modules() if all(registry.available(name) for name in module.CHECKPOINTS)]


def test_every_tab_builds_without_data_and_says_so(tmp_path, cache_home, monkeypatch):
    """Without a data root every tab still builds; a tab that ships examples (demos/assets/<slug>/, as a Space has
    them) offers those, any other says where the data goes."""
    monkeypatch.setenv("NNDL_DATA_ROOT", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    modules = _tab_modules()
    if not modules:
        pytest.skip("no tab has its checkpoints here")
    for module in modules:
        cached = [value for value in vars(module).values() if hasattr(value, "cache_clear") and value.__name__.startswith("example")]
        for function in cached:
            function.cache_clear()
        try:
            with gr.Blocks() as blocks:
                content = module.build()
            opened = content.fill() if content is not None else ()  # what the tab shows once opened
        finally:
            for function in cached:
                function.cache_clear()
        notes = [block.value for block in blocks.blocks.values() if isinstance(block, gr.Markdown)]
        notes += [value for value in opened if isinstance(value, str)]
        said = any(examples.NO_DATA_NOTE in (note or "") or examples.SHIPPED_NOTE in (note or "") for note in notes)
        shipped = [path for path in examples.allowed_paths() if f"/demos/assets/{module.__name__.split('.')[-1]}/" in path]
        assert said or shipped, f"{module.__name__} has neither shipped examples nor the no-data note"


def test_shipped_assets_are_small_cited_copies_of_the_test_split():
    """demos/assets/<slug>/: at most about 1 MB per tab, a README naming the dataset's citation and licence, and
    every file that sits in the data root's layout is a byte-identical copy of the data root's file."""
    from nndl_data import DatasetMissing, data_root

    try:
        root = data_root()
    except DatasetMissing:
        root = None
    folders = sorted(path for path in examples.ASSETS.iterdir() if path.is_dir())
    assert folders, "no tab ships examples"
    compared = 0
    for folder in folders:
        files = [path for path in folder.rglob("*") if path.is_file()]
        assert sum(path.stat().st_size for path in files) <= 1_100_000, f"{folder.name}: more than about 1 MB shipped"
        readme = folder / "README.md"
        assert readme.is_file(), f"{folder}: name the dataset's citation and licence in a README.md beside the files"
        text = readme.read_text(encoding="utf-8").lower()
        assert any(word in text for word in ("licen", "research", "cc by")), f"{readme} names no licence or terms of use"
        for path in files:
            original = root / path.relative_to(folder) if root is not None else None
            if original is not None and path != readme and original.is_file():
                assert path.read_bytes() == original.read_bytes(), f"{path} differs from {original}"
                compared += 1
    if root is not None:
        assert compared > 0
