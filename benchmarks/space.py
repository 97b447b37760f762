"""The app started as a Hugging Face Space starts it, and what a visitor waits for: seconds until it answers HTTP, and
each tab's first shipped example through its public endpoint, the first time (the model loads) and again.

    python -m benchmarks.space [--repeats 2]

"As a Space": a repository alone, so no data root (NNDL_DATA_ROOT points at an empty folder; the tabs fall back to the
examples shipped in demos/assets/<slug>), HF_HUB_OFFLINE=1, GRADIO_SERVER_NAME=0.0.0.0 on a free port, the committed
checkpoints. The requests are the tabs' own (`api_examples()`, first endpoint, first input), computed without the data
root too, so they are the shipped files. tests/test_space_smoke.py runs the same start and requests and checks the
answers. Results and the machine's load: docs/space.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.load import Endpoint, _arguments, rss_mb
from benchmarks.startup import start_app, stop_app


def space_env(empty_data_root: Path) -> dict[str, str]:
    """The environment a Space gives the app (plus the empty data root that stands for "no ../shared/data")."""
    return {"NNDL_DATA_ROOT": str(empty_data_root), "HF_HUB_OFFLINE": "1", "GRADIO_SERVER_NAME": "0.0.0.0"}


def _example_caches(module) -> list:
    return [value for value in vars(module).values() if hasattr(value, "cache_clear") and getattr(value, "__name__", "").startswith("example")]


@contextlib.contextmanager
def without_data_root(empty: Path):
    """This process sees no data root (NNDL_DATA_ROOT → `empty`), with the tabs' cached example lists cleared before
    and after, so `api_examples()` gives the shipped files."""
    import app

    modules = [module for _, module in app._demo_modules()]
    previous = os.environ.get("NNDL_DATA_ROOT")
    os.environ["NNDL_DATA_ROOT"] = str(empty)
    for function in (f for module in modules for f in _example_caches(module)):
        function.cache_clear()
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("NNDL_DATA_ROOT", None)
        else:
            os.environ["NNDL_DATA_ROOT"] = previous
        for function in (f for module in modules for f in _example_caches(module)):
            function.cache_clear()


@dataclass
class FirstExample:
    slug: str
    title: str
    endpoint: Endpoint  # the tab's public endpoint with its first shipped example as the only input
    files: list[Path]  # the example files the request uploads


# slug → (module → (api_name, arguments)): the tab's first one-click example as its main endpoint takes it, for the tabs
# whose api_examples() do not start with it (or that declare none). Any other tab: its api_examples()' first endpoint
# that uploads a file, first input; so a new tab is covered by declaring api_examples() from its shipped examples.
REQUESTS = {
    "attacks": lambda m: ("/attacks", (next(iter(m.CLASSIFIERS)), str(m.example_images()[0]), "FGSM", 8, 2, 10, 0.5, 1.0, m.UNTARGETED, "Grad-CAM")),
    "maf": lambda m: ("/maf", ("capsule", *next((str(s.path), str(s.mask_path)) for s in m.example_samples("capsule") if s.is_anomalous))),
    "captioning": lambda m: ("/captioning", (m.example_images()[0], "Persian (Flickr8k-fa)", 3, 0.0, 0, 30, "best beam")),
    "endovae": lambda m: ("/endovae", (m.example_frames()[0][0], next(iter(m.MODELS)))),
}


def _from_api_examples(module) -> tuple[str, tuple] | None:
    requests = [(name, inputs[0]) for name, inputs in (module.api_examples() if hasattr(module, "api_examples") else {}).items() if inputs]
    uploads = [(name, arguments) for name, arguments in requests if any(isinstance(a, str) and Path(a).is_file() for a in arguments)]
    return (uploads or requests or [None])[0]


def first_examples(empty: Path) -> dict[str, FirstExample | None]:
    """slug → the tab's first shipped example request without a data root (None: the tab offers none), for every tab
    whose checkpoints are here."""
    import app
    from models import registry

    found: dict[str, FirstExample | None] = {}
    with without_data_root(empty):
        for slug, module in app._demo_modules():
            if not all(registry.available(name) for name in module.CHECKPOINTS):
                continue
            try:
                request = REQUESTS[slug](module) if slug in REQUESTS else _from_api_examples(module)
            except (IndexError, StopIteration):  # the tab has no examples without the data root
                request = None
            if request is None:
                found[slug] = None
                continue
            name, arguments = request
            files = [Path(a) for a in arguments if isinstance(a, str) and Path(a).is_file()]
            found[slug] = FirstExample(slug, module.TITLE, Endpoint(name, [tuple(arguments)]), files)
    return found


def predict(client, example: FirstExample):
    return client.predict(*_arguments(example.endpoint, 0), api_name=example.endpoint.api_name)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="requests per tab: the first loads the model")
    args = parser.parse_args(argv)
    from gradio_client import Client

    with tempfile.TemporaryDirectory(prefix="nndl-space-") as folder:
        empty = Path(folder) / "no-data"
        empty.mkdir()
        examples = first_examples(empty)
        load_before = os.getloadavg()
        process, url, started = start_app(env=space_env(empty))
        print(f"start → first HTTP answer: {started:.1f} s (load average before {load_before[0]:.1f})")
        results = {"start_s": started, "tabs": {}}
        try:
            client = Client(url, verbose=False, download_files=str(Path(folder) / "downloads"))
            for slug, example in examples.items():
                if example is None:
                    print(f"{slug:12s} no shipped example request (api_examples() is empty without a data root)")
                    continue
                seconds = []
                for _ in range(args.repeats):
                    began = time.perf_counter()
                    predict(client, example)
                    seconds.append(time.perf_counter() - began)
                results["tabs"][slug] = seconds
                print(f"{slug:12s} {example.endpoint.api_name:14s} " + " / ".join(f"{s:.2f} s" for s in seconds)
                      + f"  (first, then warm; load average {os.getloadavg()[0]:.1f})")
            results["rss_mb"] = rss_mb(process.pid)
            print(f"app resident memory after every tab's first example: {results['rss_mb']:.0f} MB")
        finally:
            timing = stop_app(process)
        print(f"app timing: {timing}")
        results["load_average"] = os.getloadavg()
        print(f"load average after: {results['load_average'][0]:.1f} / {results['load_average'][1]:.1f} / {results['load_average'][2]:.1f} (1/5/15 min), {os.cpu_count()} cores")
    return results


if __name__ == "__main__":
    main()
