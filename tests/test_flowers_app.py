"""The Flowers-102 tab in the launched app: its endpoint through gradio_client and the tab in a browser."""

from __future__ import annotations

import pytest

from demos import flowers as demo
from models import registry
from tests.browser import open_tab

pytestmark = [
    pytest.mark.checkpoint,
    pytest.mark.skipif(not all(registry.available(name) for name in demo.CHECKPOINTS),
                       reason="flowers checkpoints not trained here (python -m training.flowers --preset cnn-pretrained)"),
]
LABEL = next(iter(demo.MODELS))


def test_endpoint_attacks_and_transfers(app_url):
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    path, label = demo.example_images()[0]
    *images, before, after, summary, transfer, cam_before, cam_after = client.predict(LABEL, handle_file(str(path)), "FGSM", 8, 2, 10, "Grad-CAM",
                                                                                      api_name="/flowers")
    assert all(images) and cam_before and cam_after
    assert demo.FLOWER_NAMES[label] in summary and "L∞ = 8.0/255" in summary
    assert "transfer" in transfer or "nothing to transfer" in transfer


def test_endpoint_refuses_a_corrupt_upload(app_url, tmp_path):
    from gradio_client import Client, handle_file

    corrupt = tmp_path / "flower.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    client = Client(app_url, verbose=False)
    with pytest.raises(Exception, match="corrupt|not an image"):
        client.predict(LABEL, handle_file(str(corrupt)), "FGSM", 8, 2, 10, "Grad-CAM", api_name="/flowers")


@pytest.mark.browser
def test_tab_classifies_an_example_in_the_browser(browser_page):
    page = browser_page
    open_tab(page, demo.TITLE)
    page.locator("#flowers-gallery .thumbnail-item").first.click()  # the gallery: the first class's test image
    page.locator("#flowers-upload img").first.wait_for(timeout=30_000)  # the picked flower is in the input
    page.get_by_role("button", name="Classify and attack").click()
    page.wait_for_function("() => document.body.innerText.includes('true class:')", timeout=60_000)
    page.get_by_text("Accuracy vs ε", exact=False).first.click()
    page.wait_for_function("() => document.body.innerText.includes(\"numbers beside ours\")", timeout=60_000)
