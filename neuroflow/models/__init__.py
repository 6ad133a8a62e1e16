"""Models and the model registry.

Public names: :data:`MODELS` (name -> builder), :func:`build_model`, :func:`builder_parameters`,
:class:`SCNN` (registered as ``scnn``).
"""

from neuroflow.models.registry import DATA_ARGUMENTS, MODELS, build_model, builder_parameters
from neuroflow.models.scnn import SCNN, scnn

__all__ = ["DATA_ARGUMENTS", "MODELS", "SCNN", "build_model", "builder_parameters", "scnn"]
from neuroflow.models.spikeformer import MetaSpikeFormer
from neuroflow.models.spike_driven_check import SpikeDrivenReport, check_spike_driven

__all__ += ["MetaSpikeFormer", "SpikeDrivenReport", "check_spike_driven"]
