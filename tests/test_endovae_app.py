"""The EndoVAE tab in the launched app: its API endpoints through gradio_client and the tab in a browser."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from demos import endovae as demo
from models import registry
from tests.browser import open_tab

pytestmark = [
    pytest.mark.checkpoint,
    pytest.mark.skipif(not all(registry.available(name) for name in demo.CHECKPOINTS),
                       reason="endovae checkpoints not trained here (python -m training.endovae --preset report|better|normal)"),
]
LABEL = next(iter(demo.MODELS))


def test_endpoints_reconstruct_detect_and_generate(app_url):
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    image, mask = demo.example_frames()[0]
    *panels, text = client.predict(handle_file(image), LABEL, api_name="/endovae")
    assert all(panels) and "PSNR" in text and "SSIM" in text
    assert text == demo._reconstruct(image, LABEL)[3]  # the endpoint runs exactly the tab's function
    *images, verdict, histogram, roc = client.predict(handle_file(image), handle_file(mask), api_name="/endovae_anomaly")
    assert all(images) and "Dice" in verdict
    assert verdict == demo._detect(image, mask)[3]
    assert client.predict(LABEL, 1.0, 5, api_name="/endovae_generate")


def test_endpoint_refuses_a_corrupt_upload(app_url, tmp_path):
    from gradio_client import Client, handle_file

    corrupt = tmp_path / "frame.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    client = Client(app_url, verbose=False)
    with pytest.raises(Exception, match="corrupt|not an image"):
        client.predict(handle_file(str(corrupt)), LABEL, api_name="/endovae")


@pytest.mark.browser
def test_tab_reconstructs_an_upload_and_samples_in_the_browser(browser_page, tmp_path):
    page = browser_page
    open_tab(page, demo.TITLE)
    page.wait_for_function("() => document.body.innerText.includes('Error map:')")  # the first test frame, analysed on opening
    page.get_by_role("button", name="Reconstruct and detect").click()
    page.wait_for_function("() => document.body.innerText.includes('SSIM')")
    frame = tmp_path / "wide_frame.jpg"  # any size: a generated 300×180 frame, no mask
    rng = np.random.default_rng(0)
    Image.fromarray(np.clip(np.array([190, 100, 80]) + rng.normal(0, 15, (180, 300, 3)), 0, 255).astype(np.uint8)).save(frame)
    upload = page.locator("#endovae-upload")
    if not upload.locator("input[type=file]").count():  # the first example is shown: clear it to get the drop zone back
        upload.get_by_role("button", name=re.compile("clear|remove", re.IGNORECASE)).first.click()
    upload.locator("input[type=file]").first.set_input_files(str(frame))
    page.get_by_role("tab", name="Anomaly (normal-mucosa model)").click()
    page.wait_for_function("() => document.body.innerText.includes('No mask for this frame')")
    page.get_by_role("button", name="Sample 9").click()
    page.wait_for_timeout(1500)
    page.get_by_text("Report vs ours", exact=False).first.wait_for(timeout=30_000)
    assert "28.33" in page.inner_text("body")
