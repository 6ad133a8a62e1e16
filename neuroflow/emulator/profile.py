"""Chip profiles: per-event energies (pJ) and the chip's limits, from ``hardware/<chip>.yaml``.

The emulator reads the same files as :mod:`neuroflow.energy` (``load_hardware``): energies from
``precisions.native.ac`` (pJ per synaptic event), ``neuron_update`` and ``spike``; every chip
constant (core counts, memories, bit widths) from ``limits``, each with its cited source.
"""

from __future__ import annotations

import functools

from neuroflow.emulator.result import LayerStats
from neuroflow.energy.hardware import HardwareProfile, load_hardware
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


def price(
    profile: HardwareProfile, layers: list[LayerStats], batch: int
) -> tuple[float, dict[str, float]]:
    """Energy per sample (pJ): events x ac + neuron updates x neuron_update + spikes x spike."""
    syn = sum(s.synaptic_events for s in layers) * profile.ac_pj / batch
    upd = sum(s.neuron_updates for s in layers) * profile.neuron_update_pj / batch
    spk = sum(s.spikes for s in layers) * profile.spike_pj / batch
    return syn + upd + spk, {"synaptic_events": syn, "neuron_updates": upd, "spikes": spk}
