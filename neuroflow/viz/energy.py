"""Energy per layer as a bar chart, in one unit (pJ, nJ, µJ or mJ) shared by the value axis, the
legend's totals and a title built from the same totals; models with many layers get horizontal
bars, one row per layer."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from neuroflow.errors import InvalidArgumentError
from neuroflow.viz.backend import new_figure, save_figure

# unit -> pJ per unit; the "auto" choice uses the same thresholds as the energy report's text
UNITS_PJ = {"pJ": 1.0, "nJ": 1e3, "µJ": 1e6, "mJ": 1e9, "J": 1e12}
_ALIASES = {"uj": "µJ", "µj": "µJ"}
HORIZONTAL_FROM = 13  # layers; from this many on, bars are horizontal (labels stay readable)


def energy_unit(largest_pj: float, unit: str = "auto") -> tuple[str, float]:
    """``(unit, pJ per unit)``: the given unit (``pJ``, ``nJ``, ``uJ``/``µJ``, ``mJ``, ``J``), or
    for ``"auto"`` the largest unit in which ``largest_pj`` is at least 1."""
    if unit == "auto":
        for name in ("mJ", "µJ", "nJ"):
            if abs(largest_pj) >= UNITS_PJ[name]:
                return name, UNITS_PJ[name]
        return "pJ", 1.0
    name = _ALIASES.get(unit.lower(), unit)
    if name not in UNITS_PJ:
        raise InvalidArgumentError(
            f"unit={unit!r}: expected 'auto' or one of {', '.join(['uJ', *UNITS_PJ])}"
        )
    return name, UNITS_PJ[name]


def _layer_rows(layers) -> list[tuple[str, float, float | None]]:
    """``(name, SNN pJ, ANN pJ or None)`` per layer from any of the accepted layouts."""
    if isinstance(layers, Mapping):
        items = []
        for name, value in layers.items():
            if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
                items.append({"name": name, "energy_pj": value[0], "ann_energy_pj": value[1]})
            else:
                items.append({"name": name, "energy_pj": value})
        layers = items
    rows = []
    for i, layer in enumerate(layers):
        get = (
            layer.get if isinstance(layer, Mapping) else lambda k, d=None, o=layer: getattr(o, k, d)
        )
        name, snn, ann = get("name"), get("energy_pj"), get("ann_energy_pj")
        try:
            snn = float(snn)
            ann = None if ann is None else float(ann)
        except (TypeError, ValueError):
            raise InvalidArgumentError(
                f"layers[{i}] ({name!r}): energy_pj={snn!r}, ann_energy_pj={ann!r}: "
                "expected numbers in pJ"
            ) from None
        if not math.isfinite(snn) or (ann is not None and not math.isfinite(ann)):
            raise InvalidArgumentError(f"layers[{i}] ({name!r}): energy is not finite")
        rows.append((str(name if name is not None else i), snn, ann))
    if not rows:
        raise InvalidArgumentError("layers: no layer to plot")
    return rows


def energy_breakdown_figure(layers, title: str | None = None, unit: str = "auto"):
    """Per-layer energy of a spiking network and, where given, of its ANN equivalent.

    Args:
        layers: one entry per layer, in forward order: dicts or objects with ``name``,
            ``energy_pj`` and optionally ``ann_energy_pj`` (the rows of
            ``EnergyReport.to_dict()["layers"]`` or ``EnergyReport.layers``), or a dict
            name -> pJ or name -> (SNN pJ, ANN pJ). Energies are per sample, in pJ.
        title: the chart's title; ``None`` writes "energy per sample: SNN x, ANN y" in ``unit``.
        unit: ``"auto"`` (the largest unit in which the larger of the SNN and ANN totals is at
            least 1, the choice the report's text makes for that total) or ``pJ``, ``nJ``,
            ``uJ``, ``mJ``, ``J``. The value axis is in this unit, without offset or
            scientific multiplier, and the legend gives both totals in it.

    Returns:
        The ``matplotlib.figure.Figure``: vertical bars up to 12 layers, horizontal bars (first
        layer on top) from 13 on.
    """
    rows = _layer_rows(layers)
    has_ann = any(ann is not None for _, _, ann in rows)
    total_snn = sum(snn for _, snn, _ in rows)
    total_ann = sum(ann or 0.0 for _, _, ann in rows)
    unit_name, scale = energy_unit(max(total_snn, total_ann), unit)
    names = [name for name, _, _ in rows]
    snn = [v / scale for _, v, _ in rows]
    ann = [(a or 0.0) / scale for _, _, a in rows]
    horizontal = len(rows) >= HORIZONTAL_FROM
    longest = max(len(n) for n in names)
    if horizontal:
        fig = new_figure((max(7.0, 4.5 + 0.07 * longest), 1.6 + 0.26 * len(rows)))
    else:
        fig = new_figure((max(6.0, 0.6 * len(rows) + 2.5), 4.2 + 0.05 * min(longest, 40)))
    ax = fig.subplots()
    width = 0.4 if has_ann else 0.8
    offset = width / 2 if has_ann else 0.0
    positions = list(range(len(rows)))
    snn_label = f"SNN (total {total_snn / scale:.3g} {unit_name})"
    ann_label = f"ANN equivalent (total {total_ann / scale:.3g} {unit_name})"
    value_label = f"energy per sample ({unit_name})"
    if horizontal:
        # the SNN bar above the ANN bar of its layer, layers top to bottom in forward order
        ax.barh([p - offset for p in positions], snn, width, label=snn_label)
        if has_ann:
            ax.barh([p + offset for p in positions], ann, width, label=ann_label)
        ax.set_yticks(positions, names, fontsize="small")
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlabel(value_label)
        ax.set_ylabel("layer")
        value_axis = ax.xaxis
        ax.grid(axis="x", alpha=0.3)
    else:
        ax.bar([p - offset for p in positions], snn, width, label=snn_label)
        if has_ann:
            ax.bar([p + offset for p in positions], ann, width, label=ann_label)
        ax.set_xticks(
            positions,
            names,
            rotation=45 if longest > 6 else 0,
            ha="right" if longest > 6 else "center",
        )
        ax.set_ylabel(value_label)
        ax.set_xlabel("layer")
        value_axis = ax.yaxis
        ax.grid(axis="y", alpha=0.3)
    # the values are already in the titled unit: no "1e7" offset text on the axis
    value_axis.get_major_formatter().set_useOffset(False)
    value_axis.get_major_formatter().set_scientific(False)
    if title is None:
        title = f"energy per sample: SNN {total_snn / scale:.3g} {unit_name}"
        if has_ann:
            title += f", ANN {total_ann / scale:.3g} {unit_name}"
    ax.set_title(title)
    ax.legend(fontsize="small", loc="best")
    fig.tight_layout()
    return fig


def plot_energy_breakdown(
    layers, title: str | None, path: str | os.PathLike, unit: str = "auto"
) -> Path:
    """Draw :func:`energy_breakdown_figure` and save it to ``path`` atomically; returns the path."""
    return save_figure(energy_breakdown_figure(layers, title, unit), path)
