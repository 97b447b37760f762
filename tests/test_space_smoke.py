"""The app as a Hugging Face Space runs it: built from the repository alone (no data root: NNDL_DATA_ROOT points at an
empty folder), HF_HUB_OFFLINE=1, GRADIO_SERVER_NAME=0.0.0.0 on a free port, the committed checkpoints. Every tab's
first shipped example (demos/assets/<slug>/) goes through the tab's endpoint (gradio_client) and through the tab in
a browser (Playwright + Debian chromium; every tab is clicked once before the checks, so the app draws their first
views side by side), and each answer is checked for being right, not only present.

The requests are benchmarks/space.py's (which also measures start time and latency: docs/space.md). A tab that has
no answer check here yet is run with a presence check and reported as xfail: add its check to CHECKS and BROWSER
(docs/space.md, "A new tab's shipped examples"). One app process for the module; the browser runs after the
endpoints, on warm models.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.space import first_examples, predict, space_env
from benchmarks.startup import start_app, stop_app
from demos import examples
from tests.browser import open_tab

pytestmark = [pytest.mark.checkpoint, pytest.mark.slow]


def _tabs() -> dict[str, str]:
    """slug → title of the tabs the app builds with their checkpoints here (the others show a training command)."""
    import app
    from models import registry

    return {slug: module.TITLE for slug, module in app._demo_modules() if all(registry.available(name) for name in module.CHECKPOINTS)}


TITLES = _tabs()
TABS = list(TITLES)


@pytest.fixture(scope="module")
def no_data_root():
    with tempfile.TemporaryDirectory(prefix="nndl-space-") as folder:
        empty = Path(folder) / "no-data"
        empty.mkdir()
        yield empty


@pytest.fixture(scope="module")
def first_requests(no_data_root):
    return first_examples(no_data_root)


@pytest.fixture(scope="module")
def space_url(no_data_root, tmp_path_factory):
    log = tmp_path_factory.mktemp("space") / "app.log"
    process, url, _ = start_app(log=log, env=space_env(no_data_root))
    yield url
    stop_app(process)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]  # nothing failed inside the app


@pytest.fixture(scope="module")
def client(space_url, tmp_path_factory):
    from gradio_client import Client

    return Client(space_url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


# ---------------------------------------------------------------------------------------- what a right answer is


def _number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in {text[:300]!r}"
    return float(match.group(1))


def _rgb(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255


def _orange_share(image: np.ndarray) -> float:
    """Share of saturated pixels with an orange hue (15-45°)."""
    import matplotlib.colors

    hsv = matplotlib.colors.rgb_to_hsv(image)
    return float(((hsv[..., 0] * 360 > 15) & (hsv[..., 0] * 360 < 45) & (hsv[..., 1] > 0.4) & (hsv[..., 2] > 0.3)).mean())


def _check_pixelda(outputs, request):
    digit, gallery, real, source_label, adapted_label, table = outputs
    label = {line.split()[0]: line.split()[1] for line in (examples.assets("pixelda") / "labels.txt").read_text().splitlines()}
    truth = label[request.files[0].name]
    assert truth == "0"  # the first example is the first test digit of class 0
    assert adapted_label["label"] == truth and len(gallery) == 3
    assert real is not None, "the shipped MNIST-M twin of the example was not found"
    rows = {row[0]: row for row in table["data"]}
    assert rows["real MNIST-M (same index)"][3] == int(truth)  # the adapted classifier reads the real MNIST-M image


def _check_cyclegan(outputs, request):
    seen, translated, reconstruction, identity, errors, summary = outputs
    assert "apple → orange" in summary and Image.open(translated).size == (128, 128)
    assert _number(r"cycle error \|F\(G\(x\)\) − x\| = ([\d.]+)", summary) < 0.1  # F undoes G
    assert _orange_share(_rgb(translated)) > _orange_share(_rgb(seen)) + 0.05  # the apple turned orange


def _check_attacks(outputs, request):
    before, after, verdict = outputs[3], outputs[4], outputs[5]
    truth = request.files[0].stem.removeprefix("cifar10-")
    assert before["label"] == truth == "airplane"  # the standard ResNet-20 gets the test image right
    assert after["label"] != truth and "Success" in verdict and "L∞ = 8.00/255" in verdict  # FGSM at 8/255 flips it


def _check_trivae(outputs, request):
    *panels, text = outputs
    assert all(panels) and _number(r"Dice ([\d.]+)", text) > 0.5  # the largest shipped tumour is found


def _check_maf(outputs, request):
    text = outputs[4]
    assert "/crack/" in str(request.files[0])
    assert re.search(r"Feature flow: score [\d.]+ \(threshold [\d.]+\) → \*\*defective\*\*", text), text  # the crack is flagged


def _check_captioning(outputs, request):
    shown, greedy_html, beam_html, beams, panels, figure, steps, references = outputs
    caption = re.sub(r"<[^>]+>", "", beam_html).strip()
    assert 'dir="rtl"' in beam_html and len(caption.split()) >= 4
    assert "Sentence BLEU" in references  # the shipped references.json knows the image
    assert _number(r"\| best beam \| ([\d.]+) \|", references) > 0.3  # BLEU-1 against its Persian references


def _check_endovae(outputs, request):
    *panels, text = outputs
    assert all(panels) and _number(r"PSNR ([\d.]+) dB", text) > 15 and _number(r"SSIM ([\d.]+)", text) > 0.3


def _check_vae(outputs, request):
    plane, digit, text = outputs
    assert request.endpoint.api_name == "/vae_decode" and "z = (0.00, 0.00)" in text
    ink = (_rgb(digit).mean(-1) > 0.5).mean()
    assert 0.03 < ink < 0.5, f"the origin decoded to {ink:.0%} ink: not a digit stroke"
    assert re.search(r"nearest test μ: a \*\*\d\*\*", text), text  # the shipped test latents were found


def _check_diffusion(outputs, request):
    panels, steps, text = outputs
    assert request.endpoint.api_name == "/diffusion_report" and "true class **airplane**" in text  # the shipped CIFAR-10 airplane
    identity = _number(r"Identity: MSE [\d.]+, PSNR ([\d.]+) dB", text)
    denoised = _number(r"Report's denoiser: MSE [\d.]+, PSNR ([\d.]+) dB", text)
    assert 25 < denoised < identity  # at its own σ the report's denoiser is worse than returning its input (docs/diffusion.md)
    assert _number(r"at most \*\*([\d.]+)\*\*", text) < 0.5  # the wrong label barely moves the output


def _check_flowers(outputs, request):
    original, perturbation, attacked, before, after, text, transfer, *cams = outputs
    assert "true class: **" in text  # the shipped flower's label is known
    assert _number(r"L∞ = ([\d.]+)/255", text) == 4.0  # FGSM moved every pixel by at most ε = 4/255, and some by that much
    assert sum(row["confidence"] for row in before["confidences"]) <= 1.0001 and len(before["confidences"]) == 5
    assert "(transfer)" in transfer and transfer.count("\n|") >= 4  # the same image on the three other models


CHECKS = {"pixelda": _check_pixelda, "cyclegan": _check_cyclegan, "attacks": _check_attacks, "trivae": _check_trivae,
          "maf": _check_maf, "captioning": _check_captioning, "endovae": _check_endovae, "vae": _check_vae,
          "diffusion": _check_diffusion, "flowers": _check_flowers}


# ---------------------------------------------------------------------------------------- the tabs in a browser


def _wait_text(page, text: str, timeout: float = 60_000) -> None:
    page.wait_for_function("text => document.body.innerText.includes(text)", arg=text, timeout=timeout)


def _browse_pixelda(page):
    page.locator(".block", has_text="MNIST test digits").last.locator("button").first.click()  # the "0": one click translates it
    page.locator(".block", has_text="Digit image (any size or format)").last.locator("img").first.wait_for(state="visible")
    _wait_text(page, "real MNIST-M (same index)")  # the shipped twin was found for the clicked example
    page.locator(".block", has_text="Adapted classifier on the first translation").last.get_by_text("0", exact=True).first.wait_for()


def _browse_cyclegan(page):
    page.get_by_text("apple → orange: n07740461_10011", exact=True).first.click()  # one click: picked and translated
    page.locator(".block", has_text="input photo").first.locator("img").first.wait_for(state="visible")
    _wait_text(page, "cycle error |F(G(x)) − x| =")
    assert "apple → orange, final" in page.inner_text("body")


def _browse_attacks(page):
    page.locator(".block", has_text="CIFAR-10 test images and two photos").last.locator("button").first.click()  # the airplane, attacked
    page.locator(".block:has([data-testid='block-label']:text-is('image')) img").first.wait_for(state="visible")
    _wait_text(page, "PSNR =")
    assert re.search(r"(Success|Failed): airplane →", page.inner_text("body"))  # the model saw the airplane


def _browse_trivae(page):
    _wait_text(page, "flagged", 90_000)  # the first shipped slice, analysed when the tab opens (as a visitor first sees it)
    assert _number(r"Dice ([\d.]+) against", page.inner_text("body")) > 0.5


def _browse_maf(page):
    _wait_text(page, "Feature flow: score", 90_000)  # the first shipped defective capsule, analysed when the tab opens
    assert re.search(r"Feature flow: score [\d.]+ \(threshold [\d.]+\) → defective", page.inner_text("body"))


def _browse_captioning(page):
    caption = page.locator("#captioning-beam .captioning-caption").first
    caption.wait_for(timeout=90_000)  # the first shipped image, captioned when the tab opens
    assert caption.evaluate("element => getComputedStyle(element).direction") == "rtl" and caption.inner_text().strip()
    _wait_text(page, "Sentence BLEU")  # its references, from the shipped references.json


def _browse_endovae(page):
    _wait_text(page, "Error map:", 90_000)  # the first shipped frame, analysed when the tab opens
    assert _number(r"PSNR ([\d.]+) dB", page.inner_text("body")) > 15


def _browse_vae(page):
    _wait_text(page, "nearest test μ", 90_000)  # the origin, decoded when the tab opens, near a shipped test latent
    assert re.search(r"nearest test μ: a \d", page.inner_text("body"))


def _browse_diffusion(page):
    _wait_text(page, "class consistency, guidance 3", 90_000)  # the metrics table, from the committed cards
    page.get_by_role("button", name="Generate", exact=True).click()
    _wait_text(page, "The judge (ResNet-20) calls", 120_000)  # samples streamed, then judged


def _browse_flowers(page):
    page.locator("#flowers-gallery .thumbnail-item").first.click()  # the first shipped flower, classified and attacked
    page.locator("#flowers-upload img").first.wait_for(timeout=30_000)
    _wait_text(page, "true class:")
    assert re.search(r"L∞ = [\d.]+/255", page.inner_text("body"))


BROWSER = {"pixelda": _browse_pixelda, "cyclegan": _browse_cyclegan, "attacks": _browse_attacks, "trivae": _browse_trivae,
           "maf": _browse_maf, "captioning": _browse_captioning, "endovae": _browse_endovae,
           "vae": _browse_vae, "diffusion": _browse_diffusion, "flowers": _browse_flowers}


# ---------------------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("slug", TABS)
def test_first_shipped_example_through_the_endpoint(slug, first_requests, client):
    request = first_requests.get(slug)
    assert request is not None, (f"{slug} offers no example without a data root: ship a few test files in demos/assets/{slug}/ "
                                 "and fall back to them (docs/space.md)")
    for path in request.files:  # the Space has only the repository: shipped files, or PNGs written from them
        assert "/demos/assets/" in str(path.resolve()) or "/nndl-studio/examples/" in str(path), path
    outputs = predict(client, request)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    assert outputs and outputs[0] not in (None, ""), f"{slug} answered nothing: {outputs!r}"[:500]
    if slug not in CHECKS:
        pytest.xfail(f"{slug} answered; tests/test_space_smoke.py has no check of its answer yet (CHECKS)")
    CHECKS[slug](outputs, request)


@pytest.fixture(scope="module")
def space_page(browser, space_url, first_requests, client):
    """One page; every tab is clicked once first, so the app draws the tabs' first views side by side (each tab has its
    own queue) while the checks look at them one by one. The endpoint tests ran first: the models are loaded."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(space_url)
    page.wait_for_selector("button[role=tab]")
    for slug in TABS:
        open_tab(page, TITLES[slug])
    yield page
    page.close()


@pytest.mark.browser
@pytest.mark.parametrize("slug", TABS)
def test_first_shipped_example_in_the_browser(slug, space_page, tmp_path):
    page = space_page
    open_tab(page, TITLES[slug])
    try:
        if slug not in BROWSER:
            page.wait_for_timeout(2000)
            body = page.inner_text("body")
            assert examples.NO_DATA_NOTE not in body or "shipped" in body, f"{slug} shows no examples without a data root"
            pytest.xfail(f"{slug}: the tab opens; tests/test_space_smoke.py does not click its first example yet (BROWSER)")
        BROWSER[slug](page)
    except Exception:
        page.screenshot(path=str(tmp_path / f"{slug}.png"))
        raise
