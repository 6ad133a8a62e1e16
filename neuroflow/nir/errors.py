"""Errors and warnings of the NIR interchange (all subclasses of neuroflow's own bases)."""

from __future__ import annotations

from neuroflow.errors import DataFormatError, InputShapeError, InvalidArgumentError


class NIRFormatError(DataFormatError):
    """A NIR file or graph cannot be read: not HDF5, truncated, an unknown node type, an edge to a
    missing node, shapes that do not match. The message names the file (where there is one) and
    the node."""


class NIRExportError(InvalidArgumentError):
    """A model holds a layer that NIR cannot express; the message names the layer and why."""


class NIRShapeError(InputShapeError):
    """A tensor reaching a node of an imported graph does not have the shape the node needs."""


class NIRSemanticsWarning(UserWarning):
    """What a NIR graph cannot hold (soft reset, firing on ``>=``, the time step) was written into
    its metadata, or an imported graph was read leniently."""
