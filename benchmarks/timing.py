"""The one timing loop every benchmark uses: warm up, then time `runs` calls of a function."""

from __future__ import annotations

import statistics
import time


def latencies(function, runs: int, warmup: int = 1) -> dict[str, float]:
    """Seconds per call: p50 (median), p90 and min over `runs` timed calls after `warmup` untimed ones."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    times.sort()
    return {"p50": statistics.median(times), "p90": times[int(0.9 * (len(times) - 1))], "min": times[0]}
