"""Latency of one 256×256 CycleGAN translation on this CPU (target from issue 3: p50 ≤ 250 ms).

    python -m benchmarks.cyclegan [--runs 30] [--threads N]

Times G_AB on one (1, 3, 256, 256) image under `torch.inference_mode()` (what the tab runs three times per click:
G(x), F(G(x)) and F(x)), and the tab's whole `translate` call at 256 px for reference. Uses the trained
`cyclegan-apple2orange` weights when present, else an untrained generator of the same architecture (same cost).
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform

import numpy as np
import torch
from PIL import Image

from benchmarks.timing import latencies
from models import registry
from models.cyclegan import CycleGAN, CycleGANConfig

TARGET_MS = 250.0


def _percentiles(function, runs: int, warmup: int = 3) -> dict[str, float]:
    timing = latencies(function, runs, warmup)
    return {f"{key}_ms": round(1000 * value, 1) for key, value in timing.items()}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    name = "cyclegan-apple2orange"
    trained = registry.available(name)
    model = registry.load(name) if trained else CycleGAN(CycleGANConfig()).eval()
    image = torch.rand(1, 3, 256, 256)
    with torch.inference_mode():
        generator = _percentiles(lambda: model.g_ab(image), args.runs)
    from demos.cyclegan import translate  # imports gradio; only for the reference number

    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8))
    whole = _percentiles(lambda: translate(model, photo, "a2b", resolution=256), max(args.runs // 3, 5), warmup=1)
    result = {
        "benchmark": "cyclegan 256x256 translation (G_AB forward)",
        "weights": name if trained else "untrained, same architecture",
        "generator_filters": model.config.generator.filters,
        **generator,
        "target_p50_ms": TARGET_MS,
        "meets_target": generator["p50_ms"] <= TARGET_MS,
        "tab_translate_p50_ms": whole["p50_ms"],
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
