"""Models and the model registry.

Public names: :data:`MODELS` (name -> builder), :func:`build_model`, :func:`build`,
:func:`builder_parameters`; :class:`SCNN` (registered as ``scnn``); :class:`E3DSNN` (``e3dsnn``,
``e3dsnn_t``, ``e3dsnn_s``); :class:`MetaSpikeFormer` (``metaspikeformer``, ``metaspikeformer_15m``,
``_31m``, ``_55m``, ``metaspikeformer_event``, ``metaspikeformer_cifar``); the spike-driven check
:func:`check_spike_driven` / :class:`SpikeDrivenReport`; :class:`LSM` (``lsm``, an RRAM liquid
state machine).
"""

from neuroflow.models.e3dsnn import E3DSNN, e3dsnn, e3dsnn_s, e3dsnn_t
from neuroflow.models.lsm import LSM, lsm
from neuroflow.models.registry import DATA_ARGUMENTS, MODELS, build, build_model, builder_parameters
from neuroflow.models.scnn import SCNN, scnn
from neuroflow.models.speck_cnn import SpeckCNN, speck_cnn  # noqa: F401
from neuroflow.models.spike_driven_check import SpikeDrivenReport, check_spike_driven
from neuroflow.models.spikeformer import MetaSpikeFormer

__all__ = [
    "DATA_ARGUMENTS",
    "E3DSNN",
    "MODELS",
    "MetaSpikeFormer",
    "SCNN",
    "SpikeDrivenReport",
    "build",
    "build_model",
    "builder_parameters",
    "check_spike_driven",
    "e3dsnn",
    "e3dsnn_s",
    "e3dsnn_t",
    "scnn",
    "LSM",
    "lsm",
]
