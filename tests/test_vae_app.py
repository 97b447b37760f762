"""The VAE tab in the launched app: its API endpoints through gradio_client and the tab in a browser."""

from __future__ import annotations

import pytest

from demos import vae as demo
from models import registry
from tests.browser import open_tab

pytestmark = [
    pytest.mark.checkpoint,
    pytest.mark.skipif(not all(registry.available(name) for name in demo.CHECKPOINTS),
                       reason="vae checkpoints not trained here (python -m training.vae --preset report|bce|bce-ae|bce-beta4|mse-ae|mse-beta4)"),
]
LABEL = next(iter(demo.MODELS))


def test_endpoints_decode_a_point_a_grid_a_path_and_samples(app_url):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    plane, digit, text = client.predict(LABEL, 1.0, -0.5, api_name="/vae_decode")
    assert plane and digit and text == demo._decode(LABEL, 1.0, -0.5)[2]  # the endpoint runs exactly the tab's function
    grid, grid_plane = client.predict(LABEL, 10, 2.0, "evenly spaced", api_name="/vae_manifold")
    assert grid and grid_plane
    names = [e.label for e in demo.example_digits()]
    assert all(client.predict(LABEL, names[0], names[3], 8, api_name="/vae_interpolate"))
    *images, text = client.predict(LABEL, names[1], 0, api_name="/vae_encode_example")
    assert all(images) and text == demo._encode_example(LABEL, names[1], 0)[4] and "σ = (" in text
    assert all(client.predict(LABEL, 16, 1.0, 3, api_name="/vae_sample"))


def test_endpoint_refuses_a_corrupt_upload(app_url, tmp_path):
    from gradio_client import Client, handle_file

    corrupt = tmp_path / "digit.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    client = Client(app_url, verbose=False)
    with pytest.raises(Exception, match="corrupt|not an image"):
        client.predict(LABEL, handle_file(str(corrupt)), 0, api_name="/vae_encode_upload")


@pytest.mark.browser
def test_clicking_the_plane_decodes_the_point_in_the_browser(browser_page):
    page = browser_page
    open_tab(page, demo.TITLE)
    page.wait_for_function("() => document.body.innerText.includes('nearest test μ')", timeout=120_000)  # the origin, decoded on opening
    image = page.locator("#vae-plane img").first
    box = image.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.25)  # upper right of the plane: z₁ > 0, z₂ > 0
    page.wait_for_function("() => /z = \\(\\d+\\.\\d+, \\d+\\.\\d+\\)/.test(document.body.innerText)", timeout=30_000)
