"""Requests made at the same time from several threads, as a tab's workers make them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

Answer = TypeVar("Answer")


def answers_together(request: Callable[[], Answer], count: int = 4) -> list[Answer]:
    """`request()` run `count` times at once, each in its own thread; the answers (the first error is raised)."""
    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(request) for _ in range(count)]
        return [future.result() for future in futures]
