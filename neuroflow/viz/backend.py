"""Matplotlib access for the plotting functions: a clear error when it is missing, the headless
Agg backend when there is no display, and atomic saving of figures."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

from neuroflow.errors import InvalidArgumentError, NeuroflowError


class PlotError(NeuroflowError, OSError):
    """A figure cannot be drawn or written (matplotlib missing, output folder missing)."""


def _has_display() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def pyplot():
    """``matplotlib.pyplot``, imported on first use. Without a display (and no backend chosen by
    the user or by Jupyter through ``MPLBACKEND``) the Agg backend is selected first, so that
    plotting works on servers and in CI."""
    try:
        import matplotlib
    except ImportError:
        raise PlotError("plotting needs matplotlib: pip install matplotlib") from None
    if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
        if not _has_display():
            matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def new_figure(figsize: tuple[float, float]):
    """A figure that is not registered with pyplot (nothing to close, nothing shown): for the
    functions that only save a PNG."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotError("plotting needs matplotlib: pip install matplotlib") from None
    return Figure(figsize=figsize)


def save_figure(fig, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` atomically (a temporary file in the same folder, then a rename),
    so that a reader never sees half a PNG. The format follows the suffix (``.png``, ``.svg``,
    ``.pdf``). Returns the path."""
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if not suffix:
        raise InvalidArgumentError(f"{path}: the figure path needs a suffix such as .png")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise PlotError(f"{path}: cannot write the figure, folder {folder} does not exist")
    # open(..., "xb") rather than mkstemp: the file gets the umask's permissions, not 0600
    tmp = folder / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, "xb") as fh:
            fig.savefig(fh, format=suffix, dpi=dpi)
        os.replace(tmp, path)
    except ValueError as err:  # matplotlib: unknown format
        _discard(tmp)
        raise InvalidArgumentError(f"{path}: {err}") from None
    except OSError as err:
        _discard(tmp)
        raise PlotError(f"{path}: cannot write the figure ({err.strerror or err})") from None
    return path


def _discard(tmp: Path) -> None:
    try:
        tmp.unlink(missing_ok=True)
    except OSError:  # nothing was created, or the folder forbids it: nothing to clean
        pass


def to_numpy(values, name: str):
    """A float numpy array from a tensor, array or nested list (``name`` for the error)."""
    import numpy as np

    if hasattr(values, "detach"):  # a torch tensor, without importing torch here
        values = values.detach().cpu().float().numpy()
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InvalidArgumentError(
            f"{name}: expected a tensor or array of numbers ({err})"
        ) from None
