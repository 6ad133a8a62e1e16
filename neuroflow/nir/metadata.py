"""What NIR cannot hold, written into a graph's metadata by :func:`neuroflow.nir.to_nir`.

NIR fires on ``v > v_threshold``, resets to ``v_reset`` and carries no time step. neuroflow fires
on ``v >= v_threshold`` (as SpikingJelly), may reset by subtraction, and the NIR time constants
it writes are its time steps multiplied by ``dt``. These keys record that, so that
:func:`neuroflow.nir.from_nir` reads neuroflow's own graphs back with the same spikes; other
readers ignore them (plain HDF5 datasets under each node's ``metadata`` group).

Graph keys: ``neuroflow_version``, ``neuroflow_dt`` (seconds), ``neuroflow_note``.
Neuron node keys: ``neuroflow_firing`` (``">="``), ``neuroflow_reset`` (``"subtract"`` or
``"hard"``).
"""

from __future__ import annotations

DT = "neuroflow_dt"
VERSION = "neuroflow_version"
NOTE = "neuroflow_note"
FIRING = "neuroflow_firing"
RESET = "neuroflow_reset"


def _text(x) -> str | None:
    if x is None:
        return None
    if isinstance(x, bytes):
        return x.decode("utf8")
    if hasattr(x, "item"):
        x = x.item()
        if isinstance(x, bytes):
            return x.decode("utf8")
    return str(x)


def graph_dt(metadata: dict | None) -> float | None:
    """The time step neuroflow recorded, or ``None``."""
    value = (metadata or {}).get(DT)
    return None if value is None else float(value)


def node_firing(metadata: dict | None) -> str:
    """``">="`` where neuroflow recorded its own rule, else NIR's ``">"``."""
    return _text((metadata or {}).get(FIRING)) or ">"


def node_reset(metadata: dict | None) -> str:
    """``"subtract"`` where neuroflow recorded a soft reset, else NIR's ``"hard"``."""
    value = _text((metadata or {}).get(RESET))
    return "subtract" if value == "subtract" else "hard"
