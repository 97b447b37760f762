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
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def time_to_first_answer(timeout: float = 120.0) -> tuple[float, str]:
    """Start app.py on a free loopback port; seconds until GET / answers 200, and the app's timing lines."""
    port = _free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1", "HF_HUB_OFFLINE": "1",
           "GRADIO_ANALYTICS_ENABLED": "False", "NNDL_STARTUP_LOG": "1"}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "app.py"], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        while time.perf_counter() - started < timeout:
            if process.poll() is not None:
                raise RuntimeError(f"app.py exited with {process.returncode}:\n{process.stdout.read()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - started, ""
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"no answer within {timeout:.0f} s")
    finally:
        process.terminate()
        try:
            output, _ = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        time_to_first_answer.last_log = "\n".join(line for line in (output or "").splitlines() if line.startswith("startup:"))


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    seconds = []
    for run in range(args.runs):
        elapsed, _ = time_to_first_answer()
        seconds.append(elapsed)
        print(f"run {run + 1}: answered HTTP after {elapsed:.2f} s  ({time_to_first_answer.last_log.replace(chr(10), '; ')})")
    result = {"median_s": statistics.median(seconds), "max_s": max(seconds)}
    print(f"app start → first HTTP answer: median {result['median_s']:.2f} s, max {result['max_s']:.2f} s over {args.runs} runs (target < 10 s)")
    return result


if __name__ == "__main__":
    main()
