"""How the app serves many visitors at once: one process, requests in worker threads (docs/concurrency.md).

Everything a tab needs to be safe under concurrent requests lives here, once, so new tabs get it by using it:

- `configure_process()`, at start only: the intra-op thread count (a request never calls `torch.set_num_threads`),
  matplotlib's headless backend, glibc malloc settings and a trimmer thread that keep resident memory from creeping
  up request after request (`tune_memory`), and atomic writes for Gradio's content-addressed output cache (two requests that
  produce the same image used to rewrite the same file while a client was downloading it: cut-off answers).
- `ModelPool`: private model copies for requests that change a model while they use it (hooks, `train()`/`eval()`,
  gradients accumulated on its parameters); read-only inference shares one model.
- `load_once`: a cache that loads a model once even when the first requests arrive together.
- `model_event()` / `internal_event()`: the keyword arguments of every event, so each tab has its own queue
  (`concurrency_id`) with `WORKERS_PER_TAB` workers, and internal events stay out of the public API.
- `OnOpen` / `fill_when_opened()`: what a tab shows from its cards and logs (tables, curves, a first example) is
  made when a visitor opens the tab, not while the app starts.
- `launch()`: queue size, upload size limit, the example files that may be served, cache clean-up, and patience with
  its own server's first answer on a busy machine.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse

from demos import examples

Model = TypeVar("Model")

THREADS = int(os.environ.get("NNDL_TORCH_THREADS", "1"))  # intra-op threads per request
WORKERS_PER_TAB = int(os.environ.get("NNDL_WORKERS_PER_TAB", "2"))  # requests of one tab computed at once
QUEUE_SIZE = int(os.environ.get("NNDL_QUEUE_SIZE", "128"))  # waiting requests, all tabs; more are refused ("queue is full")
MMAP_THRESHOLD = 256 * 1024  # bytes: larger blocks (activations, images) are mapped and unmapped, never pooled
BUSY_CPU_S = 0.1  # CPU seconds per second above which the process counts as serving requests (the trimmer runs)
CACHE_CLEANUP = (600, 1800)  # every 10 min, delete Gradio cache files (uploads, outputs) older than 30 min


# ---------------------------------------------------------------------------------------------- process set-up

def configure_process(threads: int = THREADS) -> None:
    """Process-global settings, made once before the first request (idempotent)."""
    import matplotlib

    matplotlib.use("Agg")  # figures are rendered for the browser, never shown in a window
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    tune_memory()
    make_gradio_cache_atomic()


_TRIMMER: list[threading.Thread] = []


def tune_memory(threshold: int = MMAP_THRESHOLD) -> bool:
    """Keep the server's resident memory at what it uses, on glibc (Linux, the Space); elsewhere a no-op (False).

    Measured (docs/concurrency.md, 'Memory'): after 8 clients × 4 requests on two endpoints, 570 of 1,730 MB resident
    were free heap pages that glibc kept, and the amount wandered by ±200 MB from round to round. Two causes:
    - glibc raises its mmap threshold to 32 MB the first time a large block is freed; from then on every activation
      tensor and decoded image is carved out of the per-thread heaps (one per request thread) and stays resident,
      fragmented, after the request. A fixed threshold keeps blocks over 256 KB in their own mappings, returned to
      the system when freed.
    - free pages inside a heap are only returned by `malloc_trim`; a daemon thread calls it once a second while the
      process is busy and once after it goes quiet, so an idle server holds what it uses (a trim costs 2 to 35 ms
      and is thread-safe); an idle server is left alone."""
    libc_path = ctypes.util.find_library("c")
    libc = ctypes.CDLL(libc_path) if libc_path else None
    if libc is None or not hasattr(libc, "malloc_trim"):  # not glibc
        return False
    if _TRIMMER:
        return True
    m_mmap_threshold = -3  # from glibc's malloc.h
    libc.mallopt(m_mmap_threshold, threshold)

    def trim_while_busy() -> None:
        cpu, was_busy = time.process_time(), False
        while True:
            time.sleep(1.0)
            cpu, previous = time.process_time(), cpu
            busy = cpu - previous > BUSY_CPU_S
            if busy or was_busy:  # while requests run, and once more after the last one ended
                libc.malloc_trim(0)
            was_busy = busy

    _TRIMMER.append(threading.Thread(target=trim_while_busy, name="malloc-trim", daemon=True))
    _TRIMMER[0].start()
    return True


def _write_atomically(path: Path, data: bytes) -> None:
    """Content-addressed file: if it is there it already holds `data` (refresh its age for the cache clean-up);
    otherwise write a unique temporary file beside it and rename it into place, so a reader sees the whole file
    or none, never a file being rewritten."""
    if path.exists():
        with contextlib.suppress(OSError):
            os.utime(path)
        return
    descriptor, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def make_gradio_cache_atomic() -> None:
    """Gradio (6.31) saves every output image and byte payload to `<cache>/<sha256 of the bytes>/<name>` with a plain
    `write_bytes`: two requests with the same output rewrite the same file (truncate, then write) while the first
    client may be downloading it, and the server then sends fewer bytes than the Content-Length it declared
    (h11: "Too little data for declared Content-Length"). Its `save_file_to_cache` already writes atomically; these
    two get the same treatment (and images are stored as PNG, not WebP). Every component's postprocess goes through them (`processing_utils.<name>` is
    looked up at call time), so every tab, present or future, is covered."""
    from gradio import processing_utils

    if getattr(processing_utils.save_pil_to_cache, "atomic", False):
        return

    def save_pil_to_cache(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:
        # Gradio's default image format, WebP, is lossy (quality 80: it smears the 1/255 perturbations the attack tabs
        # show) and slower to encode than PNG: 33 vs 22 ms for the VAE's 560 × 500 plane, 26 vs 13 ms for a 512 px photo.
        format = "png" if format.lower() == "webp" else format
        data = processing_utils.encode_pil_to_bytes(img, format)
        folder = Path(cache_dir) / processing_utils.hash_bytes(data)
        folder.mkdir(exist_ok=True, parents=True)
        path = (folder / f"{name}.{format}").resolve()
        _write_atomically(path, data)
        return str(path)

    def save_bytes_to_cache(data: bytes, file_name: str, cache_dir: str) -> str:
        folder = Path(cache_dir) / processing_utils.hash_bytes(data)
        folder.mkdir(exist_ok=True, parents=True)
        if not Path(file_name).suffix:
            file_name += processing_utils.detect_audio_format(data)
        path = (folder / Path(file_name).name).resolve()
        _write_atomically(path, data)
        return str(path)

    save_pil_to_cache.atomic = save_bytes_to_cache.atomic = True
    processing_utils.save_pil_to_cache = save_pil_to_cache
    processing_utils.save_bytes_to_cache = save_bytes_to_cache


# ------------------------------------------------------------------------------------------------------ models

def load_once(function: Callable[..., Model]) -> Callable[..., Model]:
    """`functools.cache` that runs `function` once per arguments even when several threads ask at the same time
    (the first requests after start all arrive together; each would otherwise load its own copy)."""
    cached = functools.cache(function)
    lock = threading.Lock()

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with lock:
            return cached(*args, **kwargs)

    wrapper.cache_clear = cached.cache_clear
    return wrapper


def chosen_model(models: dict[str, str], label: str, load: Callable[[str], Model]) -> Model:
    """The model a tab's picker names (`models`: label → checkpoint), or a gr.Error that says what to pick or what is
    wrong with the checkpoint."""
    import gradio as gr

    from models import registry

    name = models.get(label)
    if name is None:
        raise gr.Error(f"Unknown model {label!r}; pick one of {', '.join(models)}.")
    try:
        return load(name)
    except registry.CheckpointError as error:
        raise gr.Error(str(error)) from error


class ModelPool:
    """At most `size` private copies of a model, each used by one request at a time.

    For work that changes the model while it runs: Grad-CAM registers hooks on a layer and accumulates gradients
    on the parameters, torchattacks switches `train()`/`eval()`; two requests doing that on one shared model crash
    the process (measured: a segfault within seconds with 8 threads). Copies are deep copies of `load()`, made on
    first need, so a pool costs memory only when requests overlap; with `size` = the tab's worker count a request
    never waits for one. When `load()` returns another model (reloaded, or replaced by a test), the old copies
    are dropped."""

    def __init__(self, load: Callable[[], Model], size: int = WORKERS_PER_TAB):
        self._load, self._size = load, size
        self._source = None
        self._free: list[Model] = []
        self._made = 0
        self._generation = 0
        self._condition = threading.Condition()

    @contextlib.contextmanager
    def borrow(self) -> Iterator[Model]:
        import copy

        source = self._load()
        with self._condition:
            if source is not self._source:
                self._source, self._free, self._made = source, [], 0
                self._generation += 1
            generation = self._generation
            while not self._free and self._made >= self._size:
                self._condition.wait()
            model = self._free.pop() if self._free else None
            if model is None:
                self._made += 1
        if model is None:
            try:
                model = copy.deepcopy(source)
            except BaseException:
                with self._condition:
                    self._made -= generation == self._generation
                    self._condition.notify()
                raise
        try:
            yield model
        finally:
            _reset(model)
            with self._condition:
                if generation == self._generation:
                    self._free.append(model)
                self._condition.notify()


def _reset(model) -> None:
    """Back to inference state for the next borrower: eval mode, no gradients kept on the parameters."""
    if hasattr(model, "zero_grad"):
        model.zero_grad(set_to_none=True)
        model.eval()


# ------------------------------------------------------------------------------------------------------ events

def model_event(slug: str, api_name: str | None = None) -> dict:
    """Keyword arguments for an event that runs the tab's models: the tab's own queue (`concurrency_id=slug`, shared
    by all its model events) with `WORKERS_PER_TAB` workers; public under `api_name`, else private."""
    arguments = {"concurrency_id": slug, "concurrency_limit": WORKERS_PER_TAB}
    return arguments | ({"api_name": api_name} if api_name else {"api_visibility": "private"})


def internal_event() -> dict:
    """A light UI event (relabel a control, show a slider): not in the API, not queued behind model work."""
    return {"api_visibility": "private", "concurrency_limit": None, "show_progress": "hidden"}


# --------------------------------------------------------------------------------------------- lazy tab content

@dataclass
class OnOpen:
    """A tab's content that can wait until a visitor opens the tab: `fill()` returns one value per output."""

    fill: Callable[[], tuple]
    outputs: list


def fill_when_opened(tab, content: OnOpen | None) -> None:
    """Wire `content` to the first time `tab` is selected in a browser session (later selections change nothing)."""
    if content is None:
        return
    import gradio as gr

    filled = gr.State(False)

    def fill_once(done: bool):
        if done:
            return [gr.skip()] * len(content.outputs) + [True]
        return [*content.fill(), True]

    tab.select(fill_once, filled, [*content.outputs, filled], **internal_event())


def run_alone(module) -> None:
    """`python -m demos.<slug>`: the tab on its own, filled when the page loads, served as the app serves it."""
    import gradio as gr

    with gr.Blocks(title=module.TITLE) as app:
        content = module.build()
        if content is not None:
            app.load(content.fill, None, content.outputs, **internal_event())
    launch(app)


# ------------------------------------------------------------------------------------------------------ launch

def launch(app, **options):
    """Queue and launch `app` as the Space runs it (app.py and every `python -m demos.<slug>`), after its tabs are built
    (they register the example files they show)."""
    from demos.uploads import MAX_BYTES

    configure_process()
    wait_patiently_for_own_server()
    app.delete_cache = CACHE_CLEANUP
    folders = examples.served_folders()
    return app.queue(max_size=QUEUE_SIZE, default_concurrency_limit=WORKERS_PER_TAB).launch(
        max_file_size=MAX_BYTES, allowed_paths=folders, app_kwargs={"middleware": [Middleware(ExamplesOnly, folders=folders)]}, **options
    )


STARTUP_PATIENCE_S = 60  # how long launch waits for its own server to answer '/'


def wait_patiently_for_own_server() -> None:
    """Gradio's launch asks its own new server for '/' (`networking.url_ok`): on the first request that takes over 3 s
    it gives up and exits with "When localhost is not accessible, a shareable link must be created". On a busy
    machine (five trainings on the two cores, session 17) the app died that way at start. The same check, with
    each try allowed 10 s and retried for up to `STARTUP_PATIENCE_S`."""
    import httpx
    from gradio import networking

    if getattr(networking.url_ok, "patient", False):
        return

    def url_ok(url: str) -> bool:
        deadline = time.monotonic() + STARTUP_PATIENCE_S
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TimeoutException, httpx.TransportError):
                if httpx.head(url, timeout=10, verify=False).status_code in (200, 401, 301, 302, 303, 307, 308):
                    return True
            time.sleep(0.5)
        return False

    url_ok.patient = True
    networking.url_ok = url_ok


class ExamplesOnly:
    """ASGI middleware: of the folders Gradio may serve files from (`examples.served_folders()`), only the example files
    the tabs show are sent (`examples.may_serve`); any other file there answers 403 before Gradio sees the request."""

    def __init__(self, app, folders: list[str]):
        self.app, self.folders = app, folders

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            requested = next((scope["path"].split(marker, 1)[1] for marker in ("/file=", "/file/") if marker in scope["path"]), None)
            if requested and not examples.may_serve(requested, self.folders):
                await PlainTextResponse("File not allowed.", status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)

