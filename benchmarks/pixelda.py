"""Latency of one PixelDA request on this CPU, through the tab's own function (`demos.pixelda._run`): an MNIST test
digit → 3 styles (the tab's default) → both classifiers on input, translations and the real MNIST-M image.

    python -m benchmarks.pixelda [--runs 50] [--styles 4]

Target (issue 2): p50 ≤ 50 ms. Prints p50 and p90 in milliseconds.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.timing import latencies
from demos import pixelda as demo


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--styles", type=int, default=3, help="noise seeds per request (the tab's default)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (the app uses 1 per request)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not demo.example_digits():
        parser.error("the benchmark translates an MNIST test digit: MNIST and MNIST-M must be under the data root")
    example = str(demo.example_digits()[0])
    demo.load_models()  # loading is once per process, not per request
    seeds = iter(range(10**9))
    timing = latencies(lambda: demo._translate_upload(example, next(seeds), args.styles), args.runs)
    result = {"p50_ms": 1000 * timing["p50"], "p90_ms": 1000 * timing["p90"]}
    print(f"PixelDA request ({args.styles} styles, {torch.get_num_threads()} threads): p50 {result['p50_ms']:.1f} ms, "
          f"p90 {result['p90_ms']:.1f} ms (target p50 ≤ 50 ms)")
    return result


if __name__ == "__main__":
    main()
