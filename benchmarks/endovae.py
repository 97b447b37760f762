"""Latency of the EndoVAE tab on this CPU, through the tab's own functions (as a user runs them).

    python -m benchmarks.endovae                 # p50 of 20 runs, 1 thread
    python -m benchmarks.endovae --runs 50 --threads 2

Target (issue 27): reconstruction of one upload p50 ≤ 100 ms: read the file, preprocess, reconstruct (z = μ), PSNR,
SSIM, error heat map, the enlarged panels. Measured for a 128 px test frame and for a 1280×1024 frame (a
full-resolution colonoscopy frame's size), for both reconstruction models, and for the anomaly panel (normal-mucosa
model, with its histogram and ROC figures). Latency does not depend on the weights, so a missing checkpoint is
replaced by a freshly initialised model of the same configuration (and said so).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.timing import latencies
from demos import endovae as demo
from models import registry
from models.endovae import EndoVAE, EndoVAEConfig

TARGET_S = 0.100
FRESH = {
    "endovae-report": EndoVAEConfig(),
    "endovae-better": EndoVAEConfig(width=8, latent_channels=8, preprocess="crop", crop_fraction=0.75),
    "endovae-normal": EndoVAEConfig(image_size=32, width=8, latent_channels=4, preprocess="crop", frame_size=128),
}


def _model(name: str) -> tuple[EndoVAE, str]:
    if registry.available(name):
        return demo.load_model(name), "trained weights"
    model = EndoVAE(FRESH[name]).eval()
    model.pixel_threshold.fill_(0.01)
    model.patch_threshold.fill_(0.01)
    return model, "checkpoint missing: fresh weights, same cost"


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    frames = demo.example_frames()
    if not frames:
        parser.error("no example frames: neither the data root's kvasir_seg/test nor demos/assets/endovae has any")
    small, mask = frames[0]
    large = Path(tempfile.mkdtemp()) / "frame_1280x1024.jpg"
    Image.open(small).convert("RGB").resize((1280, 1024), Image.BICUBIC).save(large, quality=90)
    models = {name: _model(name) for name in FRESH}
    original = demo.load_model
    demo.load_model = lambda name: models[name][0]  # the adapters below run exactly what the tab runs
    results = {}
    try:
        for label, name in demo.MODELS.items():
            for path, size in ((small, "128 px"), (large, "1280×1024")):
                timing = latencies(lambda: demo._reconstruct(str(path), label), args.runs)
                results[f"{name} {size}"] = timing["p50"]
                verdict = "ok" if timing["p50"] <= TARGET_S else f"over the {TARGET_S * 1000:.0f} ms target"
                print(f"reconstruct {name:15s} {size:10s} p50 {timing['p50'] * 1000:6.1f} ms  p90 {timing['p90'] * 1000:6.1f} ms  ({models[name][1]}; {verdict})")
        timing = latencies(lambda: demo._detect(str(small), str(mask)), args.runs)
        results["anomaly panel"] = timing["p50"]
        print(f"anomaly panel (map, verdict, histogram, ROC)  p50 {timing['p50'] * 1000:6.1f} ms  p90 {timing['p90'] * 1000:6.1f} ms  ({models['endovae-normal'][1]})")
        timing = latencies(lambda: demo._decode(*np.zeros(6)), args.runs)
        results["slider decode"] = timing["p50"]
        print(f"one latent-slider decode                      p50 {timing['p50'] * 1000:6.1f} ms")
    finally:
        demo.load_model = original
    return results


if __name__ == "__main__":
    main()
