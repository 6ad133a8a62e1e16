"""What a run of the emulator returns: spikes of every layer, statistics, energy and latency."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class LayerStats:
    """Per-layer counts of one run, summed over the batch (divide by ``batch`` for per sample).

    ``synaptic_events``: weight additions (one per synapse per incoming spike; a multi-spike of
    n counts n). ``neuron_updates``: neuron state updates. ``spikes``: spikes emitted (routed).
    ``memory``: resource name -> (used, limit) on the layer's core(s).
    """

    name: str
    cores: tuple[int, ...]
    synaptic_events: int = 0
    neuron_updates: int = 0
    spikes: int = 0
    memory: dict[str, tuple[int, int]] = field(default_factory=dict)

    def as_dict(self, batch: int = 1) -> dict:
        return {
            "name": self.name,
            "cores": list(self.cores),
            "synaptic_events_per_sample": self.synaptic_events / batch,
            "neuron_updates_per_sample": self.neuron_updates / batch,
            "spikes_per_sample": self.spikes / batch,
            "memory": {
                k: {"used": int(u), "limit": int(lim)} for k, (u, lim) in self.memory.items()
            },
        }


@dataclass
class RunResult:
    """One emulator run over ``[T, B, ...]`` integer event frames.

    ``output_spikes``: ``[T, B, n_out]`` integer spikes (or, for a non-spiking readout layer,
    its integer accumulated input per tick). ``layer_spikes[name]``: ``[T, B, ...]`` integer spike
    counts of every spiking layer. ``energy_per_sample_pj``: priced on the chip profile's
    per-event energies (pJ). ``latency_per_sample_s``: ticks x tick time plus serialised events.
    """

    output_spikes: np.ndarray
    layer_spikes: dict[str, np.ndarray]
    layers: list[LayerStats]
    ticks: int
    batch: int
    energy_per_sample_pj: float
    energy_breakdown_pj: dict[str, float]
    latency_per_sample_s: float

    @property
    def synaptic_events(self) -> int:
        return int(sum(s.synaptic_events for s in self.layers))

    @property
    def output_counts(self) -> np.ndarray:
        """``[B, n_out]``: the output summed over time (the usual class score)."""
        return self.output_spikes.sum(axis=0)

    def stats_table(self) -> list[dict]:
        return [s.as_dict(self.batch) for s in self.layers]
