"""Shared fixtures. Tests run on the CPU, offline, with small thread counts (CI has 2 cores)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest
import torch

torch.set_num_threads(1)  # 2 shared cores: one intra-op thread per process avoids OpenMP thrashing


@pytest.fixture
def checkpoint_root(tmp_path, monkeypatch):
    """An empty checkpoint folder that the registry uses instead of checkpoints/."""
    root = tmp_path / "checkpoints"
    root.mkdir()
    monkeypatch.setenv("NNDL_CHECKPOINTS", str(root))
    return root


# ---------------------------------------------------------------- the launched app (endpoint and browser tests)
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_LAUNCHED: dict = {}  # the session's app process and its log, for app_process


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def app_url(tmp_path_factory):
    """`python app.py` on a free loopback port with the committed checkpoints; stopped after the session."""
    port = _free_port()
    log = tmp_path_factory.mktemp("app") / "app.log"
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1", "HF_HUB_OFFLINE": "1"}
    env.pop("NNDL_CHECKPOINTS", None)
    with open(log, "w") as handle:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=REPO_ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    _LAUNCHED.update(process=process, log=log)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"app.py exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail(f"app.py did not answer on {url} within 180 s:\n{log.read_text()[-3000:]}")
    yield url
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="session")
def app_process(app_url):
    """The launched app's `subprocess.Popen` (for its pid, RSS and whether it is still alive) and its log file."""
    return _LAUNCHED["process"], _LAUNCHED["log"]


@pytest.fixture(scope="session")
def browser():
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (./studio.sh test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )
        yield instance
        instance.close()


@pytest.fixture
def browser_page(browser, app_url):
    """A fresh page on the app's front page; screenshots of failures go to the pytest tmp folder."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(app_url)
    page.wait_for_selector("button[role=tab]")
    yield page
    page.close()
