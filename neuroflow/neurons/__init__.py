"""Spiking neurons: multi-step, time-first ``[T, B, ...]``, a fresh state at each call.

Public names: :class:`LIF`, :class:`IF`, :class:`PLIF`, :class:`MultiSpike`, the base class
:class:`SpikingNeuron`, the :mod:`surrogate` gradients and the pure :mod:`functional` core.
"""

from neuroflow.neurons import functional, surrogate
from neuroflow.neurons.dynamics import Dynamics
from neuroflow.neurons.lif import IF, LIF, PLIF, SpikingNeuron
from neuroflow.neurons.multispike import MultiSpike, multi_spike

__all__ = ["LIF", "IF", "PLIF", "MultiSpike", "SpikingNeuron", "Dynamics", "multi_spike", "surrogate", "functional"]
