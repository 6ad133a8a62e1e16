"""Spike activity: raster plot, firing rate per layer over time, membrane potential traces.

Every function takes plain tensors or arrays, time first, draws into ``ax`` when given (a new
figure otherwise), optionally saves to ``path`` (atomically), and returns ``(figure, axes)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from neuroflow.errors import InputShapeError, InvalidArgumentError
from neuroflow.viz.backend import pyplot, save_figure, to_numpy

RATE_LABEL = "firing rate (spikes / neuron / step)"


def _figure_and_axes(ax, figsize):
    if ax is not None:
        return ax.figure, ax
    fig, ax = pyplot().subplots(figsize=figsize, layout="constrained")
    return fig, ax


def _finish(fig, ax, path):
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # time steps are whole numbers
    if path is not None:
        save_figure(fig, path)


def _per_neuron(spikes, sample: int, name: str):
    """``[T, N]`` from ``[T, N]`` or ``[T, B, ...]`` (sample ``sample``, the rest flattened)."""
    s = to_numpy(spikes, name)
    if s.ndim < 2:
        raise InputShapeError(f"{name}: expected [T, N] or [T, B, ...], got shape {list(s.shape)}")
    if s.ndim == 2:
        return s
    if not 0 <= sample < s.shape[1]:
        raise InvalidArgumentError(f"sample={sample}: {name} has {s.shape[1]} samples (dim 1)")
    return s[:, sample].reshape(s.shape[0], -1)


def raster(
    spikes,
    ax=None,
    *,
    sample: int = 0,
    max_neurons: int | None = 200,
    title: str | None = None,
    path: str | os.PathLike | None = None,
):
    """Raster plot: a mark at (time step, neuron) for every spike.

    Args:
        spikes: ``[T, N]`` or ``[T, B, ...]`` (then sample ``sample``, its neurons flattened in
            C order). Integer (multi-)spikes are drawn darker the larger the count.
        max_neurons: draw only the first this many neurons (``None``: all).
    """
    s = _per_neuron(spikes, sample, "spikes")
    if max_neurons is not None:
        s = s[:, :max_neurons]
    t, n = np.nonzero(s)
    counts = s[t, n]
    fig, ax = _figure_and_axes(ax, (7, 4))
    # a tick about one neuron row high (marker sizes are in points squared), so rows stay apart
    row_pt = ax.get_window_extent().height * 72 / fig.dpi / max(s.shape[1], 1)
    size = float(np.clip(0.9 * row_pt, 2.0, 8.0)) ** 2
    if counts.size and counts.max() > 1:
        points = ax.scatter(
            t, n, c=counts, cmap="Greys", vmin=0, vmax=counts.max(), marker="|", s=size
        )
        fig.colorbar(points, ax=ax, label="spikes per step (integer spikes)")
    else:
        ax.scatter(t, n, color="black", marker="|", s=size)
    ax.set_xlim(-0.5, s.shape[0] - 0.5)
    ax.set_ylim(-0.5, s.shape[1] - 0.5)
    ax.set_xlabel("time step")
    ax.set_ylabel("neuron index")
    ax.set_title(title or f"{int(counts.sum())} spikes, {s.shape[1]} neurons, {s.shape[0]} steps")
    _finish(fig, ax, path)
    return fig, ax


def layer_rates(spikes_by_layer: Mapping[str, object]) -> dict[str, object]:
    """Layer -> ``[T]`` firing rate per time step (mean over the batch and the neurons) from
    layer -> spikes ``[T, B, ...]``."""
    rates = {}
    for name, spikes in spikes_by_layer.items():
        s = to_numpy(spikes, f"spikes_by_layer[{name!r}]")
        if s.ndim < 2:
            raise InputShapeError(
                f"spikes_by_layer[{name!r}]: expected [T, B, ...], got shape {list(s.shape)}"
            )
        rates[name] = s.reshape(s.shape[0], -1).mean(axis=1)
    return rates


def firing_rates(
    spikes_by_layer: Mapping[str, object],
    ax=None,
    *,
    style: str = "auto",
    title: str | None = None,
    path: str | os.PathLike | None = None,
):
    """Firing rate of every layer at every time step.

    Args:
        spikes_by_layer: layer name -> spikes ``[T, B, ...]`` (all with the same ``T``), e.g.
            captured with forward hooks; integer spikes count as their value.
        style: ``"lines"`` (one line per layer), ``"heatmap"`` (layers x time steps) or
            ``"auto"`` (lines up to 10 layers, a heatmap beyond).
    """
    if not isinstance(spikes_by_layer, Mapping) or not spikes_by_layer:
        raise InvalidArgumentError("spikes_by_layer: expected a non-empty dict of layer -> spikes")
    if style not in ("auto", "lines", "heatmap"):
        raise InvalidArgumentError(f"style={style!r}: expected 'auto', 'lines' or 'heatmap'")
    rates = layer_rates(spikes_by_layer)
    steps = {len(r) for r in rates.values()}
    if len(steps) > 1:
        raise InputShapeError(
            f"spikes_by_layer: layers have different numbers of steps {sorted(steps)}"
        )
    (T,) = steps
    if style == "auto":
        style = "lines" if len(rates) <= 10 else "heatmap"
    if style == "lines":
        fig, ax = _figure_and_axes(ax, (7, 4))
        for name, r in rates.items():
            ax.plot(range(T), r, marker="o", ms=3, label=name)
        ax.set_ylabel(RATE_LABEL)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize="small", loc="best")
    else:
        fig, ax = _figure_and_axes(ax, (7, 1.5 + 0.25 * len(rates)))
        image = ax.imshow(
            np.stack(list(rates.values())), aspect="auto", cmap="viridis", interpolation="nearest"
        )
        ax.set_yticks(range(len(rates)), list(rates), fontsize="small")
        ax.set_ylabel("layer")
        fig.colorbar(image, ax=ax, label=RATE_LABEL)
    ax.set_xlabel("time step")
    ax.set_title(title or "firing rate per layer")
    _finish(fig, ax, path)
    return fig, ax


def membrane_trace(
    potentials,
    neurons: Sequence | None = None,
    ax=None,
    *,
    threshold: float | None = None,
    spikes=None,
    title: str | None = None,
    path: str | os.PathLike | None = None,
):
    """Membrane potential of chosen neurons over time.

    Args:
        potentials: ``[T, ...]`` membrane potentials (the model's units, in which the firing
            threshold is ``threshold``).
        neurons: which neurons, as indices into the dims after ``T`` (tuples, or ints into the
            flattened dims); default: the first three.
        threshold: drawn as a dashed horizontal line.
        spikes: optional ``[T, ...]`` spikes of the same shape; a dot marks each step in which a
            drawn neuron fired.
    """
    v = to_numpy(potentials, "potentials")
    if v.ndim < 2:
        raise InputShapeError(
            f"potentials: expected [T, ...] with neurons, got shape {list(v.shape)}"
        )
    flat = v.reshape(v.shape[0], -1)
    s = None
    if spikes is not None:
        s = to_numpy(spikes, "spikes")
        if s.shape != v.shape:
            raise InputShapeError(
                f"spikes: shape {list(s.shape)} differs from potentials' {list(v.shape)}"
            )
        s = s.reshape(s.shape[0], -1)
    if neurons is None:
        neurons = list(range(min(3, flat.shape[1])))
    columns, labels = [], []
    for neuron in neurons:
        try:
            index = (
                int(np.ravel_multi_index(tuple(neuron), v.shape[1:]))
                if isinstance(neuron, Sequence)
                else int(neuron)
            )
        except (ValueError, TypeError):
            raise InvalidArgumentError(
                f"neurons: {neuron!r} is not an index into the neuron dims {list(v.shape[1:])}"
            ) from None
        if not 0 <= index < flat.shape[1]:
            raise InvalidArgumentError(
                f"neurons: {neuron!r} is outside the {flat.shape[1]} neurons"
            )
        columns.append(index)
        labels.append(f"neuron {tuple(neuron) if isinstance(neuron, Sequence) else neuron}")
    fig, ax = _figure_and_axes(ax, (7, 3.5))
    steps = np.arange(v.shape[0])
    for column, label in zip(columns, labels, strict=True):
        (line,) = ax.plot(steps, flat[:, column], marker=".", label=label)
        if s is not None:
            fired = s[:, column] > 0
            ax.plot(
                steps[fired], flat[fired, column], "o", mfc="none", ms=9, color=line.get_color()
            )
    if threshold is not None:
        ax.axhline(threshold, color="gray", ls="--", label=f"threshold {threshold:g}")
    ax.set_xlabel("time step")
    ax.set_ylabel("membrane potential (model units)")
    ax.set_title(title or "membrane potential" + (" (circles: spikes)" if s is not None else ""))
    ax.legend(fontsize="small", loc="best")
    _finish(fig, ax, path)
    return fig, ax
