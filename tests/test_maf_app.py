"""The MAF tab in the launched app: its API endpoints through gradio_client and the tab in a browser."""

from __future__ import annotations

import pytest

from demos import maf as demo
from models import registry
from tests.browser import open_tab

pytestmark = [
    pytest.mark.checkpoint,
    pytest.mark.skipif(not all(registry.available(name) for name in demo.CHECKPOINTS),
                       reason="maf checkpoints not trained here (python -m training.maf)"),
]


def _example():
    sample = next(s for s in demo.example_samples("capsule") if s.is_anomalous)
    return str(sample.path), str(sample.mask_path)


def test_score_endpoint_returns_panels_and_the_tabs_verdict(app_url):
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    image, mask = _example()
    shown, feature_heat, pixel_heat, truth, text, *_ = client.predict("capsule", handle_file(image), handle_file(mask), api_name="/maf")
    assert shown and feature_heat and pixel_heat and truth
    assert text == demo._analyse("capsule", image, mask)[4]  # the endpoint runs exactly the tab's function


def test_sample_endpoint_is_fast_and_seeded(app_url):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    grid, real, text = client.predict("capsule", 4, 0.8, 3, False, api_name="/maf_sample")
    assert grid and "1,675 s" in text
    seconds = float(text.split("**")[1].split(" s per")[0])
    assert seconds < 1.0


def test_endpoint_refuses_a_corrupt_upload(app_url, tmp_path):
    from gradio_client import Client, handle_file

    corrupt = tmp_path / "capsule.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    client = Client(app_url, verbose=False)
    with pytest.raises(Exception, match="(?i)image"):
        client.predict("capsule", handle_file(str(corrupt)), None, api_name="/maf")


@pytest.mark.browser
def test_tab_scores_an_example_and_samples_in_the_browser(browser_page):
    page = browser_page
    open_tab(page, demo.TITLE)
    page.wait_for_function("() => document.body.innerText.includes('bits/dim')", timeout=120_000)  # the first example
    page.get_by_role("button", name="Score").click()
    page.wait_for_function("() => document.body.innerText.includes('Feature flow: score')")
    page.get_by_role("tab", name="Sampling", exact=True).click()
    page.get_by_role("button", name="Sample").click()
    page.wait_for_function("() => document.body.innerText.includes('per exact sample')", timeout=60_000)
    assert "1,675" in page.inner_text("body")
