"""The benchmark scripts stay importable (they run as files, importing ``benchmarks/floors.py`` as a
sibling) and their floor helpers compute what they say. Timings themselves are never asserted."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load(path: Path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # as ``python benchmarks/<script>.py`` does
    spec = importlib.util.spec_from_file_location(f"_bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", sorted(BENCHMARKS.glob("bench_*.py")), ids=lambda p: p.stem)
def test_benchmark_scripts_import_and_have_a_main(path, monkeypatch):
    assert callable(load(path, monkeypatch).main)


def test_median_seconds_runs_warmup_then_repeat(monkeypatch):
    floors = load(BENCHMARKS / "floors.py", monkeypatch)
    calls = []
    seconds = floors.median_seconds(lambda: calls.append(1), repeat=5, warmup=3)
    assert len(calls) == 8 and seconds >= 0


def test_forward_floor_follows_the_spiking_pairs(monkeypatch):
    """The arithmetic part of the floor counts only pairs whose input row spiked: with the same
    memory traffic, fewer spiking voxels give a floor no higher, and silent inputs leave the
    memory term alone (> 0)."""
    from neuroflow.layers import build_kernel_map

    bench = load(BENCHMARKS / "bench_sparse_conv.py", monkeypatch)
    gen = torch.Generator().manual_seed(0)
    keys = torch.randperm(8**3, generator=gen)[:100]
    coords = torch.stack([torch.zeros_like(keys), keys // 64, keys // 8 % 8, keys % 8], 1)
    kmap = build_kernel_map(coords, (8, 8, 8), 1, 3)
    w = torch.randn(27, 8, 8, generator=gen)
    full = torch.ones(100, 8)
    inputs = {
        "full": full,
        "tenth": full * (torch.arange(100) % 10 == 0)[:, None],
        "silent": full * 0,
    }
    previous = torch.get_num_threads()
    try:
        floors, rates = bench.forward_floors(kmap, inputs, w, threads=1, repeat=3)
    finally:
        torch.set_num_threads(previous)
    assert floors["silent"] <= floors["tenth"] <= floors["full"] and floors["silent"] > 0
    assert rates["copy_bandwidth_GBps"] > 0 and rates["dense_mm_GMACps"] > 0
