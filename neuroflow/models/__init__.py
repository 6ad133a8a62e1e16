"""Models and the model registry.

Public names: :data:`MODELS` (name -> builder), :func:`build_model`, :func:`build`,
:func:`builder_parameters`, :class:`SCNN` (registered as ``scnn``), :class:`E3DSNN` (registered as
``e3dsnn``, ``e3dsnn_t``, ``e3dsnn_s``).
"""

from neuroflow.models.e3dsnn import E3DSNN, e3dsnn, e3dsnn_s, e3dsnn_t
from neuroflow.models.registry import DATA_ARGUMENTS, MODELS, build, build_model, builder_parameters
from neuroflow.models.scnn import SCNN, scnn

__all__ = [
    "DATA_ARGUMENTS", "E3DSNN", "MODELS", "SCNN", "build", "build_model", "builder_parameters", "e3dsnn",
    "e3dsnn_s", "e3dsnn_t", "scnn",
]
