"""Errors of the chip emulator: each names the layer or node, the chip and the limit."""

from __future__ import annotations

from neuroflow.errors import NeuroflowError


class EmulatorError(NeuroflowError, ValueError):
    """Base class of the emulator's errors."""


class ChipCapacityError(EmulatorError):
    """A layer does not fit the chip: the message names the layer, the limit and the excess."""


class UnsupportedNodeError(EmulatorError):
    """A graph node (or a parameter of it) that the chip cannot run; names the node and chip."""


class InputRangeError(EmulatorError):
    """Event input outside what the chip accepts (negative, too many events, wrong shape)."""
