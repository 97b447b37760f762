"""The brain-tumour tab in the launched app: its API endpoint through gradio_client and the tab in a browser."""

from __future__ import annotations

import pytest

from demos import trivae as demo
from models import registry
from tests.browser import open_tab

pytestmark = [
    pytest.mark.checkpoint,
    pytest.mark.skipif(not all(registry.available(name) for name in demo.CHECKPOINTS),
                       reason="trivae checkpoints not trained here (python -m training.trivae)"),
]


def test_endpoint_returns_panels_and_dice(app_url):
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    image, mask = demo.example_slices()[0]
    label = "Tri-VAE, coarse noise"
    threshold = demo.default_threshold(demo.load_model(demo.MODELS[label]), 5)
    *panels, text = client.predict(handle_file(image), handle_file(mask), -1, label, threshold, 5, api_name="/trivae")
    assert all(panel for panel in panels)  # five images (the ground truth is known here)
    assert "Dice" in text
    expected = demo._analyse(image, mask, -1, label, threshold, 5)[5]
    assert text == expected  # the endpoint runs exactly the tab's function


def test_endpoint_refuses_a_corrupt_nifti(app_url, tmp_path):
    from gradio_client import Client, handle_file

    corrupt = tmp_path / "scan.nii.gz"
    corrupt.write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    client = Client(app_url, verbose=False)
    with pytest.raises(Exception, match="NIfTI"):
        client.predict(handle_file(str(corrupt)), None, 0, "Tri-VAE, coarse noise", 0.1, 5, api_name="/trivae")


@pytest.mark.browser
def test_tab_detects_a_gallery_slice_in_the_browser(browser_page, tmp_path):
    import nibabel
    import numpy as np

    page = browser_page
    open_tab(page, demo.TITLE)
    # the first example is analysed when the tab is first opened (innerText: visible text only; the overview also says Dice)
    page.wait_for_function("() => document.body.innerText.includes('flagged')", timeout=120_000)
    page.get_by_role("button", name="Detect").click()
    page.wait_for_function("() => document.body.innerText.includes('flagged')")
    assert "Dice" in page.inner_text("body")
    volume = tmp_path / "scan.nii.gz"  # a generated 64×64×9 volume: the slice slider appears, no ground truth
    rows, cols = np.mgrid[0:64, 0:64] / 64 - 0.5
    head = ((rows / 0.4) ** 2 + (cols / 0.35) ** 2 < 1).astype(np.float32) * 300
    nibabel.save(nibabel.Nifti1Image(np.repeat(head[..., None], 9, axis=2), np.eye(4)), volume)
    upload = page.locator("#trivae-upload")
    upload.get_by_role("button", name="Clear").click()  # the example file is shown; clearing brings back the drop zone
    upload.locator("input[type=file]").set_input_files(str(volume))
    page.wait_for_function("() => document.body.innerText.includes('No ground truth')")
    page.get_by_text("Axial slice").first.wait_for(timeout=30_000)
    page.get_by_text("Noise playground", exact=False).first.click()
    page.get_by_role("button", name="Make noise").click()
    page.wait_for_timeout(1500)
    page.get_by_text("Report vs ours", exact=False).first.wait_for(timeout=30_000)
