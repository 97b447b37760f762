"""Concurrency rules every tab relies on (demos/serving.py): atomic output cache, private model copies, one load,
no process-global state changed by a request, figures outside pyplot, deliberate events; and the training-curve
step axis. Fast, in-process; the launched-app checks are in test_app_serving.py and test_load.py."""

from __future__ import annotations

import ast
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from demos import cards, serving

DEMOS = Path(__file__).resolve().parent.parent / "demos"


def test_gradio_output_cache_is_written_atomically(tmp_path):
    """Two requests with the same output image: one rewrites the cached file while the other's client downloads it.
    Every read must see the whole file (Gradio's own writer truncated it first: cut-off answers)."""
    from gradio import processing_utils

    serving.configure_process()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8))
    path = processing_utils.save_pil_to_cache(image, str(tmp_path))
    size = Path(path).stat().st_size
    stop = time.monotonic() + 1.5
    short, reads = [], [0]

    def writer():
        while time.monotonic() < stop:
            assert processing_utils.save_pil_to_cache(image, str(tmp_path)) == path
            processing_utils.save_bytes_to_cache(Path(path).read_bytes(), Path(path).name, str(tmp_path))

    def reader():
        while time.monotonic() < stop:
            data = Path(path).read_bytes()
            reads[0] += 1
            if len(data) != size:
                short.append(len(data))

    threads = [threading.Thread(target=writer), threading.Thread(target=writer), threading.Thread(target=reader)]
    [thread.start() for thread in threads]
    [thread.join() for thread in threads]
    assert reads[0] > 100 and not short, f"{len(short)} of {reads[0]} reads saw a partial file"
    assert sorted(p.name for p in Path(path).parent.iterdir()) == ["image.png"]  # no temporary files left behind


FRAGMENTED_HEAP = """
import os, sys, threading, time
sys.path.insert(0, {root!r})
from benchmarks.load import rss_mb
from demos import serving
if {tuned}:
    assert serving.tune_memory()

def fragment():  # 120 MB of 64 KB blocks (under any mmap threshold), every other one freed: holes inside the heap
    blocks = [bytearray(64 * 1024) for _ in range(1920)]
    del blocks[::2]
    kept.append(blocks)

kept = []
threads = [threading.Thread(target=fragment) for _ in range(4)]
[thread.start() for thread in threads]
[thread.join() for thread in threads]
time.sleep(2.5)
print(rss_mb(os.getpid()))
"""


def _resident_after_fragmenting(tuned: bool) -> float:
    import subprocess
    import sys

    script = FRAGMENTED_HEAP.format(root=str(Path(__file__).resolve().parent.parent), tuned=tuned)
    return float(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="glibc malloc tuning is Linux-only")
def test_freed_request_memory_goes_back_to_the_system():
    """Four request threads leave 240 MB of freed 64 KB holes in their heaps: glibc keeps them resident; with
    `tune_memory` the trimmer thread hands them back within a second or two."""
    untuned, tuned = _resident_after_fragmenting(False), _resident_after_fragmenting(True)
    assert untuned - tuned > 150, f"resident {untuned:.0f} MB untuned vs {tuned:.0f} MB tuned"


def test_model_pool_gives_each_concurrent_request_its_own_copy():
    from models.attacks import CifarResNet, ResNetConfig
    from demos import attacks

    torch.manual_seed(0)
    shared = CifarResNet(ResNetConfig(depth=8)).eval()
    pool = serving.ModelPool(lambda: shared, size=3)
    x = torch.rand(1, 3, 32, 32)
    import copy

    expected = attacks.grad_cam("cifar", copy.deepcopy(shared), x, "Grad-CAM")
    in_use, peak, results, lock = set(), [0], [], threading.Lock()

    def request():
        for _ in range(4):
            with pool.borrow() as model:
                with lock:
                    assert id(model) not in in_use, "a copy lent to two requests at once"
                    in_use.add(id(model))
                    peak[0] = max(peak[0], len(in_use))
                assert model is not shared
                results.append(attacks.grad_cam("cifar", model, x, "Grad-CAM"))  # hooks + backward on the copy
                with lock:
                    in_use.discard(id(model))

    threads = [threading.Thread(target=request) for _ in range(8)]
    [thread.start() for thread in threads]
    [thread.join() for thread in threads]
    assert len(results) == 32 and all(np.array_equal(result, expected) for result in results)
    assert peak[0] <= 3 and pool._made <= 3
    assert all(parameter.grad is None for parameter in shared.parameters())  # the shared model was never touched
    with pool.borrow() as model:
        assert not model.training and all(parameter.grad is None for parameter in model.parameters())  # reset on return


def test_model_pool_drops_copies_of_a_replaced_model():
    first, second = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    current = [first]
    pool = serving.ModelPool(lambda: current[0])
    with pool.borrow() as model:
        assert torch.equal(model.weight, first.weight)
    current[0] = second
    with pool.borrow() as model:
        assert torch.equal(model.weight, second.weight)


def test_load_once_loads_once_when_the_first_requests_arrive_together():
    calls = []

    @serving.load_once
    def load(name):
        calls.append(name)
        time.sleep(0.2)
        return object()

    answers = []
    threads = [threading.Thread(target=lambda: answers.append(load("x"))) for _ in range(6)]
    [thread.start() for thread in threads]
    [thread.join() for thread in threads]
    assert calls == ["x"] and len({id(answer) for answer in answers}) == 1


def _calls(path: Path) -> set[str]:
    """Dotted names of everything a module calls or imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            names.add(ast.unparse(node.func))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {alias.name for alias in node.names} | ({node.module} if isinstance(node, ast.ImportFrom) and node.module else set())
    return names


@pytest.mark.parametrize("path", sorted(p for p in DEMOS.glob("*.py") if p.name != "serving.py"), ids=lambda p: p.stem)
def test_no_tab_changes_process_global_state(path):
    """Tabs, present and future: the thread count is set once at start (serving.configure_process), figures are
    matplotlib.figure.Figure (pyplot's registry is global and not thread-safe), global RNG seeding is off limits."""
    calls = _calls(path)
    assert not {name for name in calls if name.endswith(("set_num_threads", "set_num_interop_threads", "manual_seed"))
                and not name.startswith("torch.Generator")}, f"{path.name} changes process-global torch state"
    assert not {name for name in calls if "pyplot" in name or name.startswith("plt.")}, f"{path.name} uses pyplot"
    assert "matplotlib.use" not in calls, f"{path.name} switches matplotlib's backend (serving.configure_process does, once)"


def test_every_event_is_deliberate(monkeypatch):
    """Public events are named after their tab's slug; the rest are private; every event that runs a tab's models
    waits in that tab's own queue with the tab's worker count."""
    import app
    from models import registry

    blocks = app.build_app()
    slugs = [slug for slug, module in app._demo_modules() if all(registry.available(name) for name in module.CHECKPOINTS)]
    if not slugs:
        pytest.skip("no tab has its checkpoints here")
    public = [fn for fn in blocks.fns.values() if fn.api_visibility == "public"]
    assert public, "no public endpoint"
    for fn in public:
        assert fn.api_name.split("_")[0] in slugs, f"public event {fn.api_name!r} is not named after a tab's slug"
        assert fn.concurrency_id == fn.api_name.split("_")[0] and fn.concurrency_limit == serving.WORKERS_PER_TAB, fn.api_name
    private = [fn for fn in blocks.fns.values() if fn.api_visibility != "public"]
    assert all(fn.api_visibility == "private" or fn.name == "load_example" for fn in private)  # gr.Examples' own: undocumented
    info = blocks.get_api_info()
    assert sorted(info["named_endpoints"]) == sorted(f"/{fn.api_name}" for fn in public) and not info["unnamed_endpoints"]


LOG_STEPS = np.r_[np.arange(100, 9417, 100), 9416, np.arange(2812, 7623, 100), 7623, np.arange(5011, 13082, 100), 13081]


def test_continued_runs_are_drawn_on_a_cumulative_step_axis():
    """cyclegan-apple2orange's log: runs of 6,704 + 2,712, 4,911 and 8,170 steps, each continuation numbering its steps
    on from its parent's own count. On the cumulative axis the steps never go back and end at the chain's total."""
    steps, starts = cards.cumulative_steps(LOG_STEPS.astype(float))
    assert starts[1:] == [int(np.argmax(LOG_STEPS == 2812)), int(np.argmax(LOG_STEPS == 5011))]
    assert np.all(np.diff(steps) >= 0)
    assert steps[-1] == 6704 + 2712 + 4911 + 8170
    plain, none = cards.cumulative_steps(np.arange(0, 1000, 50.0))
    assert none == [0] and np.array_equal(plain, np.arange(0, 1000, 50.0))


def test_training_curves_draw_each_continuation_as_its_own_segment(checkpoint_root):
    import csv

    folder = checkpoint_root / "toy"
    folder.mkdir()
    with open(folder / "log.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "loss"])
        writer.writerows([[step, 1 / (1 + index)] for index, step in enumerate(LOG_STEPS)])
    figure = cards.plot_curves("toy", {"loss": ["loss"]})
    lines = [line for line in figure.axes[0].get_lines() if line.get_linestyle() == "-"]
    assert len(lines) == 3 and len({line.get_color() for line in lines}) == 1  # one colour, three segments
    assert all(np.all(np.diff(line.get_xdata()) > 0) for line in lines)
    assert "cumulative" in figure.axes[0].get_xlabel()


def test_launch_waits_for_its_own_server_on_a_busy_machine():
    """Gradio's start-up check gives up on a first answer slower than 3 s (and the app exits); after
    `wait_patiently_for_own_server` a server whose first answer takes 4 s counts as up."""
    import http.server

    from gradio import networking

    class SlowFirst(http.server.BaseHTTPRequestHandler):
        answered = 0

        def do_HEAD(self):
            if SlowFirst.answered == 0:
                time.sleep(4)
            SlowFirst.answered += 1
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowFirst)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        serving.wait_patiently_for_own_server()
        assert networking.url_ok(f"http://127.0.0.1:{server.server_address[1]}/")
        assert SlowFirst.answered >= 1
    finally:
        server.shutdown()
