"""Energy of counted operations on a hardware profile: per-layer table, totals, JSON and a chart.

Per layer and per sample (one inference over all ``T`` time steps), in pJ::

    E_layer = E_MAC x MACs + E_AC x ACs + E_update x neuron updates + E_spike x spikes
    E_ANN   = (E_MAC x dense MACs + E_AC x dense adds) / T

``E_ANN`` is the same layer in the equivalent ANN, run once instead of ``T`` times on dense
inputs (Yao et al., Spike-driven Transformer, NeurIPS 2023, energy appendix: an ANN costs
``E_MAC x FLOPs`` while the SNN costs ``E_AC x SOPs``, ``SOP = rate x T x FLOPs``). A layer's
firing rate is the mean event count per element of its input (of its output for neuron layers):
for binary spikes the fraction that are 1, for integer spikes the mean integer value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from neuroflow.energy.counter import OpCounter
from neuroflow.energy.hardware import HardwareProfile
from neuroflow.energy.ops import OpCounts
from neuroflow.experiment import atomic_write


@dataclass
class LayerEnergy:
    """One layer's per-sample counts and energies."""

    name: str
    kind: str
    counts: OpCounts
    energy_pj: float
    ann_energy_pj: float

    @property
    def firing_rate(self) -> float:
        c = self.counts
        return c.activity_sum / c.activity_elements if c.activity_elements else 0.0

    @property
    def sparsity(self) -> float:
        """Fraction of zeros in the layer's input (output for neurons)."""
        c = self.counts
        return 1.0 - c.activity_nonzero / c.activity_elements if c.activity_elements else 0.0

    def to_dict(self) -> dict:
        c = self.counts
        return {
            "name": self.name,
            "kind": self.kind,
            "macs": c.macs,
            "acs": c.acs,
            "dense_macs": c.dense_macs,
            "dense_acs": c.dense_acs,
            "neuron_updates": c.neuron_updates,
            "spikes": c.spikes,
            "firing_rate": self.firing_rate,
            "sparsity": self.sparsity,
            "energy_pj": self.energy_pj,
            "ann_energy_pj": self.ann_energy_pj,
        }


@dataclass
class EnergyReport:
    """Per-sample energy of an SNN and of its ANN equivalent on one hardware profile."""

    hardware: str
    precision: str
    samples: int
    time_steps: int
    layers: list[LayerEnergy]
    uncounted: list[str] = field(default_factory=list)

    @property
    def total_energy_pj(self) -> float:
        return sum(layer.energy_pj for layer in self.layers)

    @property
    def ann_energy_pj(self) -> float:
        return sum(layer.ann_energy_pj for layer in self.layers)

    @property
    def snn_to_ann_ratio(self) -> float:
        """SNN energy / ANN energy (below 1: the SNN is cheaper)."""
        return self.total_energy_pj / self.ann_energy_pj if self.ann_energy_pj else float("nan")

    def total(self, attribute: str) -> float:
        """Sum of a per-layer count, e.g. ``total("acs")``."""
        return sum(getattr(layer.counts, attribute) for layer in self.layers)

    def to_dict(self) -> dict:
        return {
            "hardware": self.hardware,
            "precision": self.precision,
            "samples": self.samples,
            "time_steps": self.time_steps,
            "total_energy_pj": self.total_energy_pj,
            "ann_energy_pj": self.ann_energy_pj,
            "snn_to_ann_ratio": self.snn_to_ann_ratio,
            "macs": self.total("macs"),
            "acs": self.total("acs"),
            "dense_macs": self.total("dense_macs"),
            "neuron_updates": self.total("neuron_updates"),
            "spikes": self.total("spikes"),
            "layers": [layer.to_dict() for layer in self.layers],
            "uncounted": self.uncounted,
        }

    def summary(self) -> str:
        """One line: SNN and ANN energy per sample and their ratio."""
        return (
            f"energy per sample on {self.hardware} ({self.precision}): "
            f"SNN {_pj(self.total_energy_pj)}, "
            f"ANN equivalent {_pj(self.ann_energy_pj)} (ratio {self.snn_to_ann_ratio:.3f}, "
            f"{self.samples} samples, T={self.time_steps})"
        )

    def table(self) -> str:
        """A per-layer text table (counts per sample) followed by the totals."""
        name_w = max([len("layer"), *(len(layer.name) for layer in self.layers)]) + 2
        kind_w = max([len("kind"), *(len(layer.kind) for layer in self.layers)]) + 2
        head = (
            f"{'layer':<{name_w}}{'kind':<{kind_w}}{'MACs':>12}{'ACs':>12}{'updates':>10}{'spikes':>10}"
            f"{'rate':>8}{'energy':>12}{'ANN':>12}"
        )
        rows = [head, "-" * len(head)]
        for layer in self.layers:
            c = layer.counts
            rows.append(
                f"{layer.name:<{name_w}}{layer.kind:<{kind_w}}{c.macs:>12.4g}{c.acs:>12.4g}"
                f"{c.neuron_updates:>10.4g}{c.spikes:>10.4g}{layer.firing_rate:>8.4f}"
                f"{_pj(layer.energy_pj):>12}{_pj(layer.ann_energy_pj):>12}"
            )
        rows.append("-" * len(head))
        rows.append(
            f"{'total':<{name_w + kind_w}}{self.total('macs'):>12.4g}{self.total('acs'):>12.4g}"
            f"{self.total('neuron_updates'):>10.4g}{self.total('spikes'):>10.4g}{'':>8}"
            f"{_pj(self.total_energy_pj):>12}{_pj(self.ann_energy_pj):>12}"
        )
        rows.append(self.summary())
        if self.uncounted:
            rows.append("not counted (no handler): " + ", ".join(self.uncounted))
        return "\n".join(rows)

    def save_json(self, path: str | Path) -> None:
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        atomic_write(Path(path), lambda tmp: tmp.write_text(text))

    def plot(self, path: str | Path) -> Path:
        """A chart of SNN and ANN-equivalent energy per layer (PNG, SVG or PDF by suffix); the
        value axis is in the unit of its title, and many layers get horizontal bars."""
        from neuroflow.viz import plot_energy_breakdown

        title = f"energy per sample on {self.hardware} ({self.precision}), T={self.time_steps}"
        return plot_energy_breakdown(self.layers, title, path)


def _pj(value: float) -> str:
    """pJ with an SI prefix: 1234.5 -> '1.23 nJ'."""
    for scale, unit in ((1e9, "mJ"), (1e6, "uJ"), (1e3, "nJ")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g} pJ"


def layer_energy(
    name: str, kind: str, c: OpCounts, hw: HardwareProfile, time_steps: int
) -> LayerEnergy:
    energy = (
        c.macs * hw.mac_pj
        + c.acs * hw.ac_pj
        + c.neuron_updates * hw.neuron_update_pj
        + c.spikes * hw.spike_pj
    )
    ann = (c.dense_macs * hw.mac_pj + c.dense_acs * hw.ac_pj) / time_steps
    return LayerEnergy(name, kind, c, energy, ann)


def energy_report(counter: OpCounter, hardware: HardwareProfile) -> EnergyReport:
    """Price a counter's per-sample operations on ``hardware``."""
    layers = [
        layer_energy(name, kind, counts, hardware, counter.time_steps)
        for name, (kind, counts) in counter.per_sample().items()
    ]
    return EnergyReport(
        hardware.name,
        hardware.precision,
        counter.samples,
        counter.time_steps,
        layers,
        list(counter.uncounted),
    )
