"""The PixelDA tab: pure functions on tiny models, bad uploads, the endpoint through gradio_client, a browser run,
and the committed checkpoint's accuracy on real MNIST-M test images."""

import shutil

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from demos import pixelda as demo
from models import registry
from tests.bad_uploads import MUST_ACCEPT, MUST_REFUSE, bad_image_files
from tests.test_pixelda import TINY
from tests.browser import open_tab


@pytest.fixture
def tiny_models(monkeypatch):
    torch.manual_seed(0)
    models = demo.PixelDAModels(TINY["generator"]().eval(), TINY["classifier"]().eval(), TINY["classifier"]().eval())
    monkeypatch.setattr(demo, "load_models", lambda: models)
    return models


def _digit_image(ink: int, paper: int) -> Image.Image:
    array = np.full((60, 40), paper, dtype=np.uint8)
    array[10:50, 17:23] = ink  # a "1"
    return Image.fromarray(array)


def test_digits_in_any_polarity_become_mnist_like():
    white_on_black = demo.to_mnist_digit(_digit_image(255, 0))
    black_on_white = demo.to_mnist_digit(_digit_image(0, 255))
    torch.testing.assert_close(white_on_black, black_on_white)
    assert white_on_black.shape == (1, 3, 32, 32)
    assert white_on_black[0, :, 16, 16].min() > 0.9 and white_on_black[0, :, 2, 2].max() < 0.05
    sketch = np.zeros((60, 40, 4), dtype=np.uint8)
    sketch[10:50, 17:23] = (0, 0, 0, 255)  # black strokes on a transparent canvas
    torch.testing.assert_close(demo.to_mnist_digit(Image.fromarray(sketch, "RGBA")), white_on_black)


def test_adapt_gives_one_translation_per_seed_and_probabilities(tiny_models):
    result = demo.adapt(tiny_models, demo.to_mnist_digit(_digit_image(255, 0)), seed=3, styles=3)
    assert result.seeds == [3, 4, 5] and len(result.translations) == 3
    assert result.translations[0].shape == (32, 32, 3) and result.translations[0].dtype == np.uint8
    assert result.source_only.shape == (4, 10) and np.allclose(result.adapted.sum(1), 1, atol=1e-5)
    again = demo.adapt(tiny_models, demo.to_mnist_digit(_digit_image(255, 0)), seed=3, styles=3)
    assert all(np.array_equal(a, b) for a, b in zip(result.translations, again.translations)), "same seed, same style"


def test_folded_generator_gives_the_same_images():
    torch.manual_seed(0)
    generator = TINY["generator"]()
    generator.train()(torch.rand(8, 3, 32, 32))  # move the BatchNorm statistics away from their defaults
    generator.eval()
    digits, noise = torch.rand(3, 3, 32, 32), generator.sample_noise(3)
    with torch.inference_mode():
        torch.testing.assert_close(demo.fold_batchnorm(generator)(digits, noise), generator(digits, noise), atol=1e-5, rtol=1e-4)


@pytest.fixture(scope="module")
def example_digits():
    digits = demo.example_digits()
    if not digits:
        pytest.skip("MNIST / MNIST-M test data not under the data root")
    return digits


def test_examples_are_the_first_test_digit_of_each_class(example_digits):
    from nndl_data.digits import load_mnist

    images, labels = load_mnist("test")
    assert [int(labels[int(path.stem[-4:])]) for path in example_digits] == list(range(10))
    for path in example_digits:
        np.testing.assert_array_equal(np.asarray(Image.open(path)), images[int(path.stem[-4:])].numpy())


def test_real_mnist_m_shown_only_for_the_example_test_digit(tmp_path, example_digits):
    example = example_digits[0]
    assert demo.matching_mnist_m(str(example)).shape == (32, 32, 3)
    impostor = tmp_path / example.name
    _digit_image(255, 0).save(impostor)
    assert demo.matching_mnist_m(str(impostor)) is None
    assert demo.matching_mnist_m(None) is None


def test_without_the_data_root_the_shipped_digits_are_offered_with_their_mnist_m_twins(example_digits, tmp_path, monkeypatch):
    """A Space has no data root: the tab falls back to demos/assets/pixelda, the same ten digits, pixel for pixel."""
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("NNDL_DATA_ROOT", str(tmp_path / "empty"))
    demo.example_digits.cache_clear()
    try:
        shipped = demo.example_digits()
    finally:
        demo.example_digits.cache_clear()
    assert [path.parent for path in shipped] == [demo.ASSETS] * 10
    assert [path.name for path in shipped] == [path.name for path in example_digits]  # classes 0 to 9 in order
    for ours, theirs in zip(shipped, example_digits):
        np.testing.assert_array_equal(np.asarray(Image.open(ours)), np.asarray(Image.open(theirs)))
        twin = demo.matching_mnist_m(str(ours))
        np.testing.assert_array_equal(twin, demo.matching_mnist_m(str(theirs)))


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    return bad_image_files(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("case", MUST_REFUSE)
def test_bad_uploads_get_a_clear_message(tiny_models, bad_files, case):
    with pytest.raises(gr.Error) as error:
        demo._translate_upload(str(bad_files[case]), 0, 2)
    assert any(word in error.value.message for word in ("empty", "corrupt", "not an image", "megapixels"))


@pytest.mark.parametrize("case", MUST_ACCEPT)
def test_odd_but_valid_uploads_work(tiny_models, bad_files, case):
    outputs = demo._translate_upload(str(bad_files[case]), 0, 2)
    assert len(outputs[1]) == 2


def test_empty_sketch_asks_for_a_drawing(tiny_models):
    with pytest.raises(gr.Error, match="Draw"):
        demo._translate_sketch({"composite": np.zeros((50, 50, 4), dtype=np.uint8)}, 0, 2)


def test_app_builds_every_tab_and_explains_missing_checkpoints(checkpoint_root):
    import app

    blocks = app.build_app()  # empty checkpoint root: every system tab shows how to train it
    markdown = " ".join(str(block.value) for block in blocks.blocks.values() if isinstance(block, gr.Markdown))
    assert "python -m training.pixelda" in markdown
    tab_ids = {block.id for block in blocks.blocks.values() if isinstance(block, gr.Tab)}
    assert "pixelda" in tab_ids


@pytest.mark.checkpoint
def test_committed_adapted_classifier_matches_its_card_on_real_mnist_m():
    from evaluation.pixelda import predict
    from nndl_data.digits import load_mnist_m

    try:
        images, labels = load_mnist_m("test", limit=1000)
    except FileNotFoundError as error:
        pytest.skip(f"MNIST-M not available: {error}")
    card = registry.load_card("pixelda-adapted")["metrics"]["mnist_m_test_accuracy"]
    accuracy = (predict(registry.load("pixelda-adapted"), images) == labels).float().mean().item()
    assert abs(accuracy - card) <= 0.02, f"first 1,000 MNIST-M test images: {accuracy:.4f}, card (all 9,001): {card:.4f}"
    baseline = (predict(registry.load("pixelda-source-only"), images) == labels).float().mean().item()
    assert accuracy > baseline + 0.2, "adaptation must beat the source-only classifier by a wide margin"


def test_endpoint_through_gradio_client(app_url, tmp_path, bad_files, example_digits):
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    example = example_digits[7]
    digit, gallery, real, source_label, adapted_label, table = client.predict(
        handle_file(str(example)), 0, 3, api_name="/pixelda"
    )
    assert len(gallery) == 3 and real is not None
    assert Image.open(digit).size == (demo.DISPLAY_SIZE, demo.DISPLAY_SIZE)
    assert adapted_label["label"] == "7"  # the examples are the digits 0 to 9 in order
    with pytest.raises(Exception, match="corrupt"):
        client.predict(handle_file(str(bad_files["corrupt"])), 0, 2, api_name="/pixelda")


@pytest.mark.browser
def test_browser_runs_the_pixelda_tab_on_an_example(browser_page, tmp_path):
    page = browser_page
    open_tab(page, demo.TITLE)
    page.locator(".block", has_text="MNIST test digits").last.locator("button").first.click()  # the "0"
    # On a loaded machine the example can take a while to reach the input: translate only once it is there.
    page.locator(".block", has_text="Digit image (any size or format)").last.locator("img").first.wait_for(state="visible")
    page.get_by_role("button", name="Translate", exact=True).click()
    gallery = page.locator(".block", has_text="PixelDA translations").last
    gallery.locator("img").nth(2).wait_for(state="visible", timeout=60_000)  # 3 styles by default
    adapted = page.locator(".block", has_text="Adapted classifier on the first translation").last
    adapted.get_by_text("0", exact=True).first.wait_for(timeout=30_000)
    page.screenshot(path=str(tmp_path / "pixelda.png"))
