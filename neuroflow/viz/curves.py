"""Training curves: loss and accuracy per epoch of one or several runs, from the rows a run
writes to ``metrics.jsonl`` / ``metrics.csv`` (``epoch``, ``train_loss``, ``train_accuracy``,
``val_loss``, ``val_accuracy``, ...)."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from neuroflow.errors import DataFormatError, InvalidArgumentError, NeuroflowError
from neuroflow.viz.backend import new_figure, save_figure

# split prefixes in the order their lines are drawn; any other "<split>_loss" key is drawn too
_SPLIT_ORDER = ("train", "val", "test")
_LINE_STYLES = {"train": "-", "val": "--", "test": ":"}
_MARKERS = {"train": "o", "val": "s", "test": "^"}


class MetricsNotFoundError(NeuroflowError, FileNotFoundError):
    """A run folder holds no ``metrics.jsonl`` or ``metrics.csv``."""


def _splits(rows: Sequence[Mapping], metric: str) -> list[str]:
    found = {key[: -len(metric) - 1] for row in rows for key in row if key.endswith("_" + metric)}
    found = {s for s in found if s and "_" not in s}  # train_loss yes, val_firing_rate no
    return [s for s in _SPLIT_ORDER if s in found] + sorted(found - set(_SPLIT_ORDER))


def _series(rows: Sequence[Mapping], key: str) -> tuple[list[float], list[float]]:
    """(epochs, values) of the rows that have a finite number under ``key``."""
    xs, ys = [], []
    for i, row in enumerate(rows):
        value = row.get(key)
        if value in (None, ""):
            continue
        try:
            value = float(value)
            epoch = float(row.get("epoch", i + 1))
        except (TypeError, ValueError):
            raise InvalidArgumentError(
                f"metrics row {i + 1}: {key}={row.get(key)!r}, epoch={row.get('epoch')!r}: "
                "expected numbers"
            ) from None
        if math.isfinite(value):
            xs.append(epoch)
            ys.append(value)
    return xs, ys


def training_curves_figure(runs: Mapping[str, Sequence[Mapping]]):
    """A figure with two panels, loss and accuracy against epoch: one line per run and split
    (``train``, ``val``, ``test``; solid, dashed, dotted), one colour per run.

    Args:
        runs: label -> the run's per-epoch rows (dicts as in ``metrics.jsonl``). Accuracies are
            fractions in [0, 1] and drawn in percent.

    Returns:
        The ``matplotlib.figure.Figure`` (not registered with pyplot).
    """
    if not isinstance(runs, Mapping) or not runs:
        raise InvalidArgumentError("runs: expected a non-empty dict of label -> metric rows")
    for label, rows in runs.items():
        if isinstance(rows, (str, bytes)) or not all(isinstance(r, Mapping) for r in rows):
            raise InvalidArgumentError(f"runs[{label!r}]: expected a list of dicts (metric rows)")
        if not _splits(rows, "loss") and not _splits(rows, "accuracy"):
            raise InvalidArgumentError(
                f"runs[{label!r}]: no '<split>_loss' or '<split>_accuracy' column in its rows"
            )
    fig = new_figure((11, 4.2))
    ax_loss, ax_acc = fig.subplots(1, 2)
    colours = [f"C{i % 10}" for i in range(len(runs))]
    for colour, (label, rows) in zip(colours, runs.items(), strict=True):
        for ax, metric, scale in ((ax_loss, "loss", 1.0), (ax_acc, "accuracy", 100.0)):
            for split in _splits(rows, metric):
                xs, ys = _series(rows, f"{split}_{metric}")
                if not xs:
                    continue
                name = split if len(runs) == 1 else f"{label} {split}"
                if split == "test" and len(xs) == 1:
                    name += " (best checkpoint)"
                ax.plot(
                    xs,
                    [y * scale for y in ys],
                    color=colour,
                    ls=_LINE_STYLES.get(split, "-."),
                    marker=_MARKERS.get(split, "d"),
                    ms=4,
                    label=name,
                )
    ax_loss.set_title("loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss (mean per sample)")
    ax_acc.set_title("accuracy")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.set_ylim(0, 100)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if ax.get_lines():
            ax.legend(fontsize="small")
    if len(runs) == 1:
        fig.suptitle(next(iter(runs)))
    fig.tight_layout()
    return fig


def plot_training_curves(runs: Mapping[str, Sequence[Mapping]], path: str | os.PathLike) -> Path:
    """Draw :func:`training_curves_figure` and save it to ``path`` (PNG, SVG or PDF by suffix)
    atomically. Returns the path."""
    return save_figure(training_curves_figure(runs), path)


def read_metrics(run_dir: str | os.PathLike, with_test: bool = True) -> list[dict]:
    """The per-epoch rows of a run folder: ``metrics.jsonl`` when present (a line torn by a
    killed run is skipped), else ``metrics.csv``. With ``with_test``, the test result of a
    finished run (``summary.json``: ``test_loss``, ``test_accuracy`` of the checkpoint of
    ``best_epoch``) is appended as one more row at that epoch, drawn as a single point. Raises
    :class:`MetricsNotFoundError` for a folder without metrics, or whose files hold no rows."""
    folder = Path(run_dir)
    if not folder.is_dir():
        raise MetricsNotFoundError(f"{folder}: no such run folder")
    jsonl, table = folder / "metrics.jsonl", folder / "metrics.csv"
    rows: list[dict] = []
    if jsonl.is_file():
        for line in jsonl.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict):
                rows.append(row)
        source = jsonl
    elif table.is_file():
        try:
            with open(table, newline="") as fh:
                rows = [dict(r) for r in csv.DictReader(fh)]
        except (csv.Error, UnicodeDecodeError) as err:
            raise DataFormatError(f"not a metrics table ({err})", str(table)) from None
        source = table
    else:
        raise MetricsNotFoundError(
            f"{folder}: no metrics.jsonl or metrics.csv (is it the output_dir of a training run?)"
        )
    if not rows:
        raise MetricsNotFoundError(f"{source}: holds no epochs yet")
    if with_test:
        rows += _test_row(folder / "summary.json")
    return rows


def _test_row(summary_path: Path) -> list[dict]:
    """``[{"epoch": best_epoch, "test_loss": ..., "test_accuracy": ...}]`` from a run's summary,
    or ``[]`` when it is absent or unreadable (the curves do not depend on it)."""
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(summary, dict) or "best_epoch" not in summary:
        return []
    row = {k: summary[k] for k in ("test_loss", "test_accuracy") if k in summary}
    return [{"epoch": summary["best_epoch"], **row}] if row else []


def plot_runs(
    run_dirs: Sequence[str | os.PathLike], output: str | os.PathLike | None = None
) -> Path:
    """Redraw the curves of one or several run folders into one PNG (what ``neuroflow plot``
    does). Runs are labelled by their folder names (the full path where two names clash).
    ``output`` defaults to ``<first run>/curves.png`` for one run and ``curves.png`` in the
    current folder for several."""
    if not run_dirs:
        raise InvalidArgumentError("plot: name at least one run folder")
    folders = [Path(d) for d in run_dirs]
    names = [f.resolve().name or str(f) for f in folders]
    labels = [n if names.count(n) == 1 else str(f) for n, f in zip(names, folders, strict=True)]
    runs = {label: read_metrics(f) for label, f in zip(labels, folders, strict=True)}
    if output is None:
        output = folders[0] / "curves.png" if len(folders) == 1 else Path("curves.png")
    return plot_training_curves(runs, output)
