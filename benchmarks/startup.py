"""Seconds from starting the app (`python app.py`, what `./studio.sh app` runs with an installed venv) until it answers
HTTP, and where the time goes: imports, building the tabs, launching.

    python -m benchmarks.startup [--runs 3]

Target (issue 20): under 10 s on this machine. Prints each run and the median; the app's own timing lines
(`NNDL_STARTUP_LOG=1`) split the time into imports, build and launch.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_app(timeout: float = 180.0, log: Path | None = None, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str, float]:
    """Start app.py on a free loopback port; (process, url, seconds until GET / answered 200). Its output goes to
    `log` (default: discarded, except the `startup:` timing lines, kept in `process.timing`). `env` overrides the
    environment (e.g. benchmarks.space: no data root, GRADIO_SERVER_NAME=0.0.0.0, as a Space starts it)."""
    port = _free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1", "HF_HUB_OFFLINE": "1",
           "GRADIO_ANALYTICS_ENABLED": "False", "NNDL_STARTUP_LOG": "1", **(env or {})}
    env.pop("NNDL_CHECKPOINTS", None)
    output = open(log, "w") if log else tempfile.TemporaryFile("w+")
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "app.py"], cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, text=True)
    process.output = output
    url = f"http://127.0.0.1:{port}/"
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            output.seek(0) if not log else None
            raise RuntimeError(f"app.py exited with {process.returncode}:\n{(output.read() if not log else log.read_text())[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return process, url, time.perf_counter() - started
        except OSError:
            time.sleep(0.05)
    stop_app(process)
    raise RuntimeError(f"app.py did not answer on {url} within {timeout:.0f} s")


def stop_app(process: subprocess.Popen) -> str:
    """Stop the app started by `start_app`; its `startup:` timing lines."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    output = process.output
    if output.closed:
        return ""
    if hasattr(output, "seek") and output.mode == "w+":
        output.seek(0)
        text = output.read()
    else:
        output.close()
        text = Path(output.name).read_text()
    output.close()
    return "; ".join(line.removeprefix("startup: ") for line in text.splitlines() if line.startswith("startup:"))


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    seconds = []
    for run in range(args.runs):
        process, _, elapsed = start_app()
        seconds.append(elapsed)
        print(f"run {run + 1}: answered HTTP after {elapsed:.2f} s ({stop_app(process)}; load average {os.getloadavg()[0]:.1f})")
    result = {"median_s": statistics.median(seconds), "max_s": max(seconds)}
    print(f"app start → first HTTP answer: median {result['median_s']:.2f} s, max {result['max_s']:.2f} s over {args.runs} runs (target < 10 s)")
    return result


if __name__ == "__main__":
    main()
