"""The attacks tab in the running app: the `attacks` endpoint through gradio_client, and a browser test.

Both use the lead's session fixtures (`app_url`: the app on a free port with the real checkpoints; `browser_page`:
Playwright + Debian chromium) and skip when the attacks checkpoints are not trained here.
"""

import pytest
from PIL import Image

from demos import attacks as demo
from models import registry
from tests.browser import open_tab

pytestmark = pytest.mark.skipif(
    not all(registry.available(name) for name in demo.CHECKPOINTS),
    reason="attacks checkpoints are not trained here (python -m training.attacks, or scripts/gpu_attacks.sh)",
)
EXAMPLES = {path.stem: str(path) for path in demo.example_images()}
needs_cifar = pytest.mark.skipif("cifar10-cat" not in EXAMPLES, reason="CIFAR-10 test data not under the data root")
STANDARD = "ResNet-20, standard training (CIFAR-10)"


def _arguments(path, model=STANDARD, attack="PGD (L∞)"):
    return (model, path, attack, 8, 2, 10, 0.5, 1.0, demo.UNTARGETED, "Grad-CAM")


@needs_cifar
def test_endpoint_attacks_a_cifar_image(app_url):
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    outputs = client.predict(*_arguments(handle_file(EXAMPLES["cifar10-cat"])), api_name="/attacks")
    original, perturbation, adversarial, before, after, summary, cam_before, cam_after = outputs
    for path in (original, perturbation, adversarial, cam_before, cam_after):
        with Image.open(path) as image:
            assert image.size == (demo.DISPLAY_SIZE, demo.DISPLAY_SIZE)
    assert before["label"] == "cat"  # the standard model gets this test image right
    assert "Success" in summary and "L∞ = 8.00/255" in summary  # PGD-10 at 8/255 flips a standard model


def test_endpoint_attacks_a_photo_with_the_imagenet_model(app_url):
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    photo = EXAMPLES["photo-coffee"]
    outputs = client.predict(*_arguments(handle_file(photo), model="EfficientNet-Lite0 (ImageNet, any photo)", attack="FGSM"), api_name="/attacks")
    assert outputs[3]["label"] == "espresso"


def test_endpoint_refuses_a_bad_upload(app_url, tmp_path):
    from gradio_client import Client, handle_file

    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    client = Client(app_url, verbose=False)
    with pytest.raises(Exception, match="not an image|could not|corrupt"):
        client.predict(*_arguments(handle_file(str(broken))), api_name="/attacks")


@pytest.mark.browser
def test_tab_in_the_browser(browser_page, app_url):
    page = browser_page
    page.goto(app_url)
    open_tab(page, demo.TITLE)
    page.locator("input[type=file]").first.set_input_files(EXAMPLES["cifar10-cat"])
    page.get_by_role("button", name="Attack", exact=True).click()
    page.get_by_text("PSNR =").first.wait_for(timeout=60_000)
    page.get_by_text("Perturbation shown ×").first.wait_for(timeout=30_000)
    page.get_by_text("Accuracy vs ε, the reports' numbers beside ours").first.click()
    page.get_by_text("AdvGAN success rate, all images (report's definition)").first.wait_for(timeout=10_000)
