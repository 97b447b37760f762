"""Latency of the brain-tumour tab on this CPU, per slice, through the tab's own functions (as a user runs it).

    python -m benchmarks.trivae                 # p50 of 20 runs per model, 1 thread
    python -m benchmarks.trivae --runs 50 --threads 2

Target (issue 5): p50 ≤ 150 ms per slice (read the PNG, prepare, reconstruct, brain mask, median filter, threshold,
render the panels). Latency does not depend on the weights, so a missing checkpoint is replaced by a freshly
initialised model of the same configuration (and said so).
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.timing import latencies
from demos import trivae as demo
from models import registry
from models.trivae import SimpleVAE, SimpleVAEConfig, TriVAE, TriVAEConfig

TARGET_S = 0.150


def _percentiles(function, runs: int) -> tuple[float, float]:
    timing = latencies(function, runs)
    return timing["p50"], timing["p90"]


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not demo.example_slices():
        parser.error("the benchmark analyses an LGG test slice: the LGG data must be under the data root")
    image, mask = demo.example_slices()[0]
    results = {}
    for label, name in demo.MODELS.items():
        if registry.available(name):
            model, note = demo.load_model(name), "trained weights"
        else:
            model = (SimpleVAE(SimpleVAEConfig()) if name.endswith("vae") else TriVAE(TriVAEConfig())).eval()
            note = "checkpoint missing: fresh weights, same cost"
        original = demo.load_model
        demo.load_model = lambda _name=None, model=model: model  # the adapter below runs exactly what the tab runs
        try:
            threshold = demo.default_threshold(model, model.config.median_filter_size)
            p50, p90 = _percentiles(lambda: demo._analyse(image, mask, -1, label, threshold, model.config.median_filter_size), args.runs)
        finally:
            demo.load_model = original
        results[label] = p50
        verdict = "ok" if p50 <= TARGET_S else f"over the {TARGET_S * 1000:.0f} ms target"
        print(f"{label:42s} p50 {p50 * 1000:6.1f} ms  p90 {p90 * 1000:6.1f} ms  ({note}; {verdict})")
    return results


if __name__ == "__main__":
    main()
