"""Latency of the captioning tab on this CPU: a beam-3 caption of an uploaded photo, encoder included.

    python -m benchmarks.captioning                 # p50 of 20 runs, 1 thread
    python -m benchmarks.captioning --runs 50 --threads 2

Target (issue 23): p50 ≤ 500 ms for read the upload → resize to 224 → EfficientNet-Lite0 grid → greedy and beam-3
decoding (`demos.captioning.describe`, what the tab runs before drawing its panels), and separately the whole tab
adapter (attention panels, β/entropy figure, references). Latency hardly depends on the weights, so a missing
checkpoint is replaced by a freshly initialised decoder of the same size (and said so).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from benchmarks.timing import latencies
from demos import captioning as demo
from demos.uploads import read_image
from models import registry
from models.captioning import Captioner, CaptionerConfig

TARGET_S = 0.500


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    upload = str(sorted(demo.ASSETS.glob("*.jpg"))[0])
    label, name = next(iter(demo.MODELS.items()))
    if registry.available(name):
        model, note = demo.load_model(name), "trained weights"
    else:
        vocabulary = CaptionerConfig().vocabulary + tuple(f"word{i}" for i in range(3000))
        model, note = Captioner(CaptionerConfig(vocabulary=vocabulary)).eval(), "checkpoint missing: fresh weights, same size"
    encoder = demo.load_encoder()
    original = demo.load_model
    demo.load_model = lambda _name=None, model=model: model
    try:
        caption = latencies(lambda: demo.describe(model, encoder, read_image(upload), beam_width=3), args.runs)
        tab = latencies(lambda: demo._caption(upload, label, 3, 0.0, 0, 30, "best beam"), max(args.runs // 2, 3))
    finally:
        demo.load_model = original
    verdict = "ok" if caption["p50"] <= TARGET_S else f"over the {TARGET_S * 1000:.0f} ms target"
    print(f"beam-3 caption of an upload, encoder included: p50 {caption['p50'] * 1000:6.1f} ms  p90 {caption['p90'] * 1000:6.1f} ms  ({note}; {verdict})")
    print(f"the whole tab request (plus panels, figure, references): p50 {tab['p50'] * 1000:6.1f} ms  p90 {tab['p90'] * 1000:6.1f} ms")
    print(f"upload: {Path(upload).name}, {args.threads} thread(s)")
    return {"caption_p50": caption["p50"], "tab_p50": tab["p50"]}


if __name__ == "__main__":
    main()
