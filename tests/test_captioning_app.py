"""The captioning tab in the launched app: its API endpoints through gradio_client and the tab in a browser
(Persian captions rendered right to left)."""

from __future__ import annotations

import pytest

from demos import captioning as demo
from models import registry
from tests.browser import open_tab

pytestmark = [
    pytest.mark.checkpoint,
    pytest.mark.skipif(not all(registry.available(name) for name in demo.CHECKPOINTS),
                       reason="captioning checkpoints not trained here (python -m training.captioning)"),
]
PERSIAN = "Persian (Flickr8k-fa)"


def _example() -> str:
    return str(sorted(demo.ASSETS.glob("*.jpg"))[0])


def test_endpoint_captions_a_test_image_with_references(app_url):
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    shown, greedy_html, beam_html, beams, panels, figure, steps, references = client.predict(
        handle_file(_example()), PERSIAN, 3, 0.0, 0, 30, "best beam", api_name="/captioning")
    assert 'dir="rtl"' in beam_html and "Sentence BLEU" in references
    expected = demo._caption(_example(), PERSIAN, 3, 0.0, 0, 30, "best beam")
    assert beam_html == expected[2] and greedy_html == expected[1]  # the endpoint runs exactly the tab's function
    assert len(panels) == len(expected[4])  # one attention panel per generated token


def test_tokenisation_endpoint_highlights_unknown_words(app_url):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    text = client.predict("یک سگ در پارک می دود زززز", PERSIAN, api_name="/captioning_tokens")
    assert "&lt;unk&gt;" in text and "background:#ffd2d2" in text  # the made-up word is highlighted


def test_endpoint_refuses_a_corrupt_upload(app_url, tmp_path):
    from gradio_client import Client, handle_file

    corrupt = tmp_path / "photo.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    client = Client(app_url, verbose=False)
    with pytest.raises(Exception, match="corrupt|decoded|image"):
        client.predict(handle_file(str(corrupt)), PERSIAN, 3, 0.0, 0, 30, "best beam", api_name="/captioning")


@pytest.mark.browser
def test_persian_caption_is_right_to_left_in_the_browser(browser_page):
    page = browser_page
    open_tab(page, demo.TITLE)
    caption = page.locator("#captioning-beam .captioning-caption").first
    caption.wait_for(timeout=120_000)  # the first example is captioned when the tab is opened
    assert caption.evaluate("element => getComputedStyle(element).direction") == "rtl"
    assert len(caption.inner_text().strip()) > 0
    page.get_by_role("button", name="Caption").click()
    page.get_by_text("Sentence BLEU", exact=False).first.wait_for(timeout=60_000)
    reference = page.locator(".captioning-reference").first
    assert reference.evaluate("element => getComputedStyle(element).direction") == "rtl"
