"""Energy estimation: count operations with hooks, price them on a hardware profile, report per
layer.

The convention (MACs for the real-valued encoding layer, ACs for spike-driven layers, priced at
Horowitz's 45 nm energies, ISSCC 2014) is that of the Spike-driven Transformer papers (Yao et
al., NeurIPS 2023 / ICLR 2024) and E-3DSNN (Qiu et al., AAAI 2025, arXiv 2412.07360).

Public names: :class:`OpCounter`, :func:`register_op_counter` (plug a layer type in),
:class:`OpCounts` and the pure counting functions (:func:`conv_synaptic_ops`,
:func:`linear_synaptic_ops`, :func:`matmul_ops`, :func:`pool_ops`, :func:`neuron_ops`,
:func:`sparse_conv_synaptic_ops`), :func:`load_hardware` / :func:`hardware_names` /
:class:`HardwareProfile`, :class:`EnergyReport` / :func:`energy_report`, and
:func:`estimate_energy` / :func:`estimate_checkpoint` over a dataset.
"""

from neuroflow.energy.counter import OpCounter, register_op_counter
from neuroflow.energy.estimate import estimate_checkpoint, estimate_energy
from neuroflow.energy.hardware import HardwareProfile, hardware_names, load_hardware
from neuroflow.energy.ops import (
    OpCounts,
    conv_synaptic_ops,
    linear_synaptic_ops,
    matmul_ops,
    neuron_ops,
    pool_ops,
    sparse_conv_synaptic_ops,
)
from neuroflow.energy.report import EnergyReport, energy_report

__all__ = [
    "OpCounter",
    "register_op_counter",
    "OpCounts",
    "conv_synaptic_ops",
    "linear_synaptic_ops",
    "matmul_ops",
    "neuron_ops",
    "pool_ops",
    "sparse_conv_synaptic_ops",
    "HardwareProfile",
    "hardware_names",
    "load_hardware",
    "EnergyReport",
    "energy_report",
    "estimate_checkpoint",
    "estimate_energy",
]
