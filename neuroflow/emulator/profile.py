"""Chip profiles: per-event energies (pJ) and the chip's limits, from ``hardware/<chip>.yaml``.

The emulator reads the same files as :mod:`neuroflow.energy` (``load_hardware``): energies from
``precisions.native.ac`` (pJ per synaptic event), ``neuron_update`` and ``spike``; every chip
constant (core counts, memories, bit widths) from ``limits``, each with its cited source.
"""

from __future__ import annotations

import functools

from neuroflow.emulator.result import LayerStats, RunResult
from neuroflow.energy.hardware import HardwareProfile, load_hardware
from neuroflow.energy.ops import OpCounts
from neuroflow.energy.report import EnergyReport, LayerEnergy, layer_energy
from neuroflow.errors import ConfigError


@functools.lru_cache(maxsize=16)
def chip_profile(name: str) -> HardwareProfile:
    """The profile of chip ``name`` (``loihi``, ``speck``, ``xylo``) or of a YAML path (read
    once per process: profiles are data files that do not change while it runs)."""
    return load_hardware(name)


def limit(profile: HardwareProfile, key: str) -> int:
    """One integer chip constant of ``profile.limits`` (a missing key is a profile error)."""

    if key not in profile.limits:
        raise ConfigError(
            f"{profile.path}: limits.{key} is missing (the {profile.name} emulator needs it)"
        )
    return int(profile.limits[key])


def layer_counts(stats: LayerStats, batch: int) -> OpCounts:
    """One emulated layer's per-sample counts in :mod:`neuroflow.energy`'s terms: every synaptic
    event is one accumulate (AC; the chip adds an integer weight per incoming spike, a multi-spike
    of n counting n), neuron updates and spikes as counted on the chip. No MACs (the chip's input
    is events) and no dense counts (no ANN twin is run)."""
    return OpCounts(
        acs=stats.synaptic_events / batch,
        neuron_updates=stats.neuron_updates / batch,
        spikes=stats.spikes / batch,
        calls=1,
    )


def layer_energies(
    profile: HardwareProfile, layers: list[LayerStats], batch: int, ticks: int
) -> list[LayerEnergy]:
    """Each layer priced by :func:`neuroflow.energy.report.layer_energy`, the function that
    prices the float model's :class:`~neuroflow.energy.OpCounter` counts, so that the chip's
    energy and ``neuroflow.energy``'s estimate agree wherever their counts agree."""
    return [
        layer_energy(s.name, "chip", layer_counts(s, batch), profile, max(ticks, 1)) for s in layers
    ]


def price(
    profile: HardwareProfile, layers: list[LayerStats], batch: int
) -> tuple[float, dict[str, float]]:
    """Energy per sample (pJ): events x ac + neuron updates x neuron_update + spikes x spike,
    summed over the layers priced by :func:`layer_energies`; and that sum split by event kind."""
    total = sum(e.energy_pj for e in layer_energies(profile, layers, batch, 1))
    syn = sum(s.synaptic_events for s in layers) * profile.ac_pj / batch
    upd = sum(s.neuron_updates for s in layers) * profile.neuron_update_pj / batch
    spk = sum(s.spikes for s in layers) * profile.spike_pj / batch
    return total, {"synaptic_events": syn, "neuron_updates": upd, "spikes": spk}


def chip_energy_report(result: RunResult, hardware: str | HardwareProfile) -> EnergyReport:
    """An emulator run as a :class:`neuroflow.energy.EnergyReport` on the chip profile
    ``hardware`` (name, path or profile): per layer and per sample, the same table, JSON and
    chart as ``neuroflow energy`` prints for a float model. Its ``total_energy_pj`` equals
    ``result.energy_per_sample_pj`` on the same profile. The ANN column is 0: the chip runs no
    dense twin."""
    profile = chip_profile(hardware) if isinstance(hardware, str) else hardware
    return EnergyReport(
        profile.name,
        profile.precision,
        result.batch,
        result.ticks,
        layer_energies(profile, result.layers, result.batch, result.ticks),
    )
