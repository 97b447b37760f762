"""NNDL Studio: one Gradio app, an overview tab and one tab per system (`demos/<slug>.py`).

Models load lazily on first use and each tab draws its cards and curves when it is first opened, so the app is up
in seconds. A tab whose checkpoints are missing shows the command that trains them instead; the rest of the app
still works. How concurrent visitors are served (queues, workers, thread count, files): demos/serving.py and
docs/concurrency.md.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import importlib
import importlib.util
import os
import threading

import gradio as gr

from demos import overview, serving
from models import registry


def _demo_modules():
    for slug in overview.SYSTEMS:
        if importlib.util.find_spec(f"demos.{slug}") is not None:
            yield slug, importlib.import_module(f"demos.{slug}")


def _missing(module) -> list[str]:
    if os.environ.get("NNDL_HUB_REPO"):
        return []  # fetched from the Hub on first use; failures surface in the tab
    return [name for name in module.CHECKPOINTS if not registry.available(name)]


def _headline(module) -> str:
    """'ready', plus the tab's key measured numbers when it offers them (`headline()` reads its cards)."""
    if not hasattr(module, "headline"):
        return "ready"
    try:
        return f"ready: {module.headline()}"
    except (registry.CheckpointError, OSError, KeyError) as error:
        return f"ready (card unreadable: {error})"


def build_app() -> gr.Blocks:
    demos = list(_demo_modules())
    status = {}
    for slug, module in demos:
        missing = _missing(module)
        status[slug] = _headline(module) if not missing else f"not trained: `{registry.train_command(missing[0])}`"
    with gr.Blocks(title="NNDL Studio") as app:
        with gr.Tab(overview.TITLE):
            overview.build(status)
        for slug, module in demos:
            with gr.Tab(module.TITLE, id=slug) as tab:
                missing = _missing(module)
                if missing:
                    gr.Markdown(
                        f"## {module.TITLE}\nThis tab needs checkpoints that are not in `{registry.checkpoint_root()}`: "
                        + ", ".join(f"`{name}`" for name in missing)
                        + f".\n\nTrain them with `{registry.train_command(missing[0])}` (see the README), "
                        "or set `NNDL_HUB_REPO` to a Hugging Face repo that has them."
                    )
                else:
                    serving.fill_when_opened(tab, module.build())
    return app


def _log(stage: str) -> None:
    if os.environ.get("NNDL_STARTUP_LOG"):  # benchmarks/startup.py reads these lines
        print(f"startup: {stage} at {time.perf_counter() - STARTED:.2f} s", flush=True)


if __name__ == "__main__":
    _log("imports done")
    app = build_app()
    _log("tabs built")
    serving.launch(  # one intra-op thread per request, per-tab queues, upload limit, cache clean-up: demos/serving.py
        app,
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT") or os.environ.get("PORT") or 7860),  # as a Space or a container sets it
        prevent_thread_lock=True,
    )
    _log("serving")
    # what a tab's first request would otherwise wait for (imports), once the app already answers
    threading.Thread(target=lambda: [module.warm_up() for _, module in _demo_modules() if hasattr(module, "warm_up")], daemon=True).start()
    app.block_thread()
