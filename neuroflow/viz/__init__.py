"""Plots of plain tensors, arrays and dicts (matplotlib; the Agg backend when there is no display).

This package imports nothing from neuroflow but ``neuroflow.errors``, so every layer can use it.

- training curves (``curves``): :func:`plot_training_curves`, :func:`training_curves_figure`,
  :func:`read_metrics`, :func:`plot_runs` (what ``neuroflow plot`` runs);
- energy (``energy``): :func:`plot_energy_breakdown`, :func:`energy_breakdown_figure`,
  :func:`energy_unit`;
- spikes (``spikes``): :func:`raster`, :func:`firing_rates`, :func:`layer_rates`,
  :func:`membrane_trace`;
- events and point clouds (``events``): :func:`event_frames`, :func:`point_cloud`;
- :func:`save_figure` (atomic), :class:`PlotError`, :class:`MetricsNotFoundError`.
"""

from neuroflow.viz.backend import PlotError, save_figure
from neuroflow.viz.curves import (
    MetricsNotFoundError,
    plot_runs,
    plot_training_curves,
    read_metrics,
    training_curves_figure,
)
from neuroflow.viz.energy import energy_breakdown_figure, energy_unit, plot_energy_breakdown
from neuroflow.viz.events import event_frames, point_cloud
from neuroflow.viz.spikes import firing_rates, layer_rates, membrane_trace, raster

__all__ = [
    "MetricsNotFoundError",
    "PlotError",
    "energy_breakdown_figure",
    "energy_unit",
    "event_frames",
    "firing_rates",
    "layer_rates",
    "membrane_trace",
    "plot_energy_breakdown",
    "plot_runs",
    "plot_training_curves",
    "point_cloud",
    "raster",
    "read_metrics",
    "save_figure",
    "training_curves_figure",
]
