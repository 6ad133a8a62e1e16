"""Neuromorphic chip emulator: compile a network onto Xylo Audio 2, Loihi or Speck and run it in
the chip's integer arithmetic, event by event (numba kernels batched over input streams).

``compile(source, hardware=...)`` takes a ``nir.NIRGraph``, a ``.nir`` path or a neuroflow model
and returns the chip's compiled network (:class:`XyloNetwork`, :class:`LoihiNetwork`,
:class:`SpeckNetwork`): its integer parameters are numpy arrays, and ``net.run(x)`` on integer
event frames ``[T, B, ...]`` returns a :class:`RunResult` (spikes of every layer, statistics,
energy and latency per sample). The chip models and their sources: ``docs/emulator.md``.
"""

from __future__ import annotations

from neuroflow.emulator.compiler import compile
from neuroflow.emulator.errors import (
    ChipCapacityError,
    EmulatorError,
    InputRangeError,
    UnsupportedNodeError,
)
from neuroflow.emulator.profile import chip_energy_report
from neuroflow.emulator.result import LayerStats, RunResult
from neuroflow.emulator.xylo import XyloNetwork

__all__ = [
    "ChipCapacityError",
    "EmulatorError",
    "InputRangeError",
    "LayerStats",
    "RunResult",
    "UnsupportedNodeError",
    "XyloNetwork",
    "chip_energy_report",
    "compile",
]
