"""Physical floors for the benchmarks: what the same machine does at best, measured in the same run.

The benchmark scripts import this file as a sibling module (``python benchmarks/bench_*.py`` puts
``benchmarks/`` on the path).
"""

from __future__ import annotations

import statistics
import time

import torch


def median_seconds(run, repeat: int, warmup: int = 2) -> float:
    """Median wall time of ``run()`` over ``repeat`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def copy_bandwidth(numel: int, repeat: int) -> float:
    """Bytes per second of ``dst.copy_(src)`` (read + write) for float32 tensors of ``numel``."""
    src = torch.randn(numel)
    dst = torch.empty_like(src)
    return 2 * numel * 4 / median_seconds(lambda: dst.copy_(src), repeat)
