"""The CycleGAN tab in the running app: the `cyclegan` endpoint through gradio_client, and a browser test.

Both use the lead's session fixtures (`app_url`: the app on a free port with the real checkpoints;
`browser_page`: Playwright + Debian chromium) and skip when the checkpoints are not trained here.
"""

import numpy as np
import pytest
from PIL import Image

from demos import cyclegan as demo
from models import registry
from tests.bad_uploads import MUST_REFUSE, bad_image_files
from tests.browser import open_tab

pytestmark = pytest.mark.skipif(
    not all(registry.available(name) for name in demo.CHECKPOINTS),
    reason="CycleGAN checkpoints are not trained here (python -m training.cyclegan)",
)


@pytest.fixture(scope="module")
def apple(tmp_path_factory) -> str:
    """A generated stand-in for a photo: a red disc on a light background, 128 px (tests make their own inputs)."""
    yy, xx = np.mgrid[:128, :128]
    picture = np.full((128, 128, 3), 230, dtype=np.uint8)
    picture[(yy - 64) ** 2 + (xx - 64) ** 2 < 45**2] = (190, 30, 40)
    path = tmp_path_factory.mktemp("cyclegan") / "apple.jpg"
    Image.fromarray(picture).save(path)
    return str(path)


@pytest.mark.checkpoint
def test_endpoint_translates_an_example(app_url, apple):
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    outputs = client.predict(handle_file(apple), "apple2orange", "a2b", 128, 2, 0.0, api_name="/cyclegan")
    seen, translated, reconstruction, identity, errors, summary = outputs
    for path in (seen, translated, reconstruction, identity, errors):
        with Image.open(path) as image:
            assert image.size == (128, 128)
    assert "cycle error" in summary and "apple → orange" in summary


@pytest.mark.checkpoint
@pytest.mark.parametrize("case", MUST_REFUSE)
def test_endpoint_refuses_bad_uploads_with_a_message(app_url, tmp_path, case):
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    with pytest.raises(Exception, match="empty|corrupt|not an image|megapixels"):
        client.predict(handle_file(str(bad_image_files(tmp_path)[case])), "apple2orange", "a2b", 128, 2, 0.0, api_name="/cyclegan")


@pytest.mark.browser
def test_tab_in_the_browser(browser_page, tmp_path, apple):
    page = browser_page
    open_tab(page, demo.TITLE)
    page.get_by_text("summer2winter", exact=True).first.click()
    page.get_by_text("winter → summer", exact=True).first.wait_for(timeout=10_000)
    page.get_by_text("apple2orange", exact=True).first.click()
    page.locator("input[type=file]").first.set_input_files(apple)
    page.get_by_role("button", name="Translate", exact=True).click()
    page.get_by_text("cycle error |F(G(x)) − x| =").first.wait_for(timeout=60_000)
    page.get_by_text("judged 'orange'").first.wait_for(timeout=30_000)  # the measurements table beside the report
    page.screenshot(path=str(tmp_path / "cyclegan.png"))
