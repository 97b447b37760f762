"""Latency of the VAE tab on this CPU, through the tab's own functions (as a user runs them).

    python -m benchmarks.vae                 # p50 of 50 runs, 1 thread
    python -m benchmarks.vae --runs 200 --threads 2

Target (issue 28): decoding one point p50 ≤ 20 ms. Measured twice: the decoder alone (z → 28 × 28 digit), and the
whole request the plane's click or sliders make (`_decode`: decode, nearest test μ among 10,000, the plane redrawn
with the point marked, the digit enlarged; Gradio's image encoding comes on top). Also a 15 × 15 manifold, 16 prior
samples and encoding a drawn digit. Latency does not depend on the weights, so a missing checkpoint is replaced by
a freshly initialised model (and said so); missing test latents by 10,000 random points.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from benchmarks.timing import latencies
from demos import vae as demo
from models import registry
from models.vae import VAE, VAEConfig

TARGET_S = 0.020
NAME = "vae-report"


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    trained = registry.available(NAME)
    model = demo.load_model(NAME) if trained else VAE(VAEConfig()).eval()
    source = "trained weights" if trained else "checkpoint missing: fresh weights, same cost"
    original_model, original_latents = demo.load_model, demo.test_latents
    if not trained or demo.test_latents(NAME) is None:
        rng = np.random.default_rng(0)
        latents = demo.Latents(rng.normal(size=(10_000, 2)).astype(np.float32), rng.integers(0, 10, 10_000), None)
        demo.test_latents = lambda name: latents
    demo.load_model = lambda name: model
    label = next(label for label, name in demo.MODELS.items() if name == NAME)
    demo.base_plane(NAME)  # rendered once per model when the tab opens, not per request
    points = iter(np.random.default_rng(1).uniform(-3, 3, size=(10 * args.runs + 10, 2)))
    results = {}
    try:
        timings = {
            "decode one point (decoder alone)": latencies(lambda: demo.decode(model, next(points)), args.runs),
            "decode one point (the tab's request)": latencies(lambda: demo._decode(label, *next(points)), args.runs),
            "15 × 15 manifold": latencies(lambda: demo._manifold(label, 15, 3.0, "evenly spaced"), max(5, args.runs // 5)),
            "16 prior samples": latencies(lambda: demo._sample(label, 16, 1.0, 0), max(5, args.runs // 5)),
            "encode a test digit (μ, σ, 8 samples, SSIM, plane)": latencies(lambda: demo._encode_example(label, demo.example_digits()[0].label, 0), max(5, args.runs // 5)),
        }
    finally:
        demo.load_model, demo.test_latents = original_model, original_latents
    for what, timing in timings.items():
        results[what] = timing["p50"]
        verdict = "" if "one point" not in what else ("; ok" if timing["p50"] <= TARGET_S else f"; over the {TARGET_S * 1000:.0f} ms target")
        print(f"{what:52s} p50 {timing['p50'] * 1000:6.2f} ms  p90 {timing['p90'] * 1000:6.2f} ms  ({source}{verdict})")
    return results


if __name__ == "__main__":
    main()
