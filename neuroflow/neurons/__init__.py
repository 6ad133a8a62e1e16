"""Spiking neurons: multi-step, time-first ``[T, B, ...]``, a fresh state at each call.

Public names: :class:`LIF`, :class:`IF`, :class:`PLIF`, :class:`MultiSpike`, the base classes
:class:`SpikingNeuron` (every neuron module) and :class:`ThresholdNeuron` (membrane, threshold,
reset), the :mod:`surrogate` gradients, the pure :mod:`functional` core and the neuron
:mod:`registry` (:func:`register_neuron_kind`: a kind's update equation and optional fused kernel,
declared in one place).
"""

from neuroflow.neurons import functional, registry, surrogate
from neuroflow.neurons.base import SpikingNeuron
from neuroflow.neurons.dynamics import Dynamics
from neuroflow.neurons.lif import IF, LIF, PLIF, ThresholdNeuron
from neuroflow.neurons.multispike import MultiSpike, MultiSpikeParams, multi_spike
from neuroflow.neurons.registry import (
    FusedKernel,
    NeuronKind,
    get_neuron_kind,
    register_neuron_kind,
)

__all__ = [
    "LIF",
    "IF",
    "PLIF",
    "MultiSpike",
    "MultiSpikeParams",
    "SpikingNeuron",
    "ThresholdNeuron",
    "Dynamics",
    "FusedKernel",
    "NeuronKind",
    "get_neuron_kind",
    "register_neuron_kind",
    "multi_spike",
    "surrogate",
    "functional",
    "registry",
]
