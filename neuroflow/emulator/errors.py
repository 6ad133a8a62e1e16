"""Errors of the chip emulator: each names the layer or node, the chip and the limit."""

from __future__ import annotations

import numpy as np

from neuroflow.errors import NeuroflowError


class EmulatorError(NeuroflowError, ValueError):
    """Base class of the emulator's errors."""


class ChipCapacityError(EmulatorError):
    """A layer does not fit the chip: the message names the layer, the limit and the excess."""


class UnsupportedNodeError(EmulatorError):
    """A graph node (or a parameter of it) that the chip cannot run; names the node and chip."""


class InputRangeError(EmulatorError):
    """Event input outside what the chip accepts (negative, too many events, wrong shape)."""


def checked_events(x, chip: str, shape: tuple[int, ...], top: int, what: str) -> np.ndarray:
    """``x`` as an array of event counts ``[T, B, *shape]`` within ``0..top``; an
    :class:`InputRangeError` naming ``chip``, the expected shape or range (``what`` says
    what limits it) and what ``x`` holds otherwise."""
    x = np.asarray(x)
    if x.ndim != 2 + len(shape) or tuple(x.shape[2:]) != tuple(shape):
        raise InputRangeError(
            f"{chip}: input must be [T, B, {', '.join(map(str, shape))}] event counts, got "
            f"{list(x.shape)}"
        )
    if x.size and (x.min() < 0 or x.max() > top):
        raise InputRangeError(
            f"{chip}: input events must be 0..{top} ({what}), got {int(x.min())}..{int(x.max())}"
        )
    return x
