"""The diffusion tab in the launched app: its API endpoints through gradio_client and the tab in a browser."""

from __future__ import annotations

import pytest

from demos import diffusion as demo
from models import registry
from tests.browser import open_tab

pytestmark = [
    pytest.mark.checkpoint,
    pytest.mark.skipif(not all(registry.available(name) for name in demo.CHECKPOINTS),
                       reason="diffusion checkpoints not trained here (python -m training.diffusion --preset cpu|report)"),
]


def test_endpoints_generate_and_denoise(app_url):
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    x_t, x0, text = client.predict("cat", 3.0, 5, 0, 1, api_name="/diffusion")
    assert x_t and x0 and "The judge (ResNet-20) calls" in text
    path = str(demo.example_images()[0][3])  # the cat
    clean_noisy_denoised, every_label, report_text = client.predict(handle_file(path), "airplane", 5, 0, api_name="/diffusion_report")
    assert clean_noisy_denoised and every_label and "true class **cat**" in report_text
    assert report_text == demo._report(path, "airplane", 5, 0)[2]  # the endpoint runs exactly the tab's function


def test_endpoints_refuse_bad_settings_and_a_corrupt_upload(app_url, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    with pytest.raises(Exception, match="maximum|Batch size"):  # Gradio's slider check, or ours behind it
        client.predict("cat", 3.0, 5, 0, 40, api_name="/diffusion")
    corrupt = tmp_path / "image.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(Exception, match="corrupt|not an image"):
        client.predict(handle_file(str(corrupt)), "cat", 5, 0, api_name="/diffusion_report")


@pytest.mark.browser
def test_tab_generates_and_shows_the_metrics_in_the_browser(browser_page):
    page = browser_page
    open_tab(page, demo.TITLE)
    page.wait_for_function("() => document.body.innerText.includes('class consistency, guidance 3')")  # the metrics table on opening
    page.get_by_role("button", name="Generate", exact=True).click()
    page.wait_for_function("() => document.body.innerText.includes('The judge (ResNet-20) calls')", timeout=120_000)
