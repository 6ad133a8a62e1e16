"""Resistive memory (RRAM): a cell model and an in-memory-computing crossbar.

Public names: :class:`DeviceConfig` and the cell functions :func:`form`, :func:`program`,
:func:`quantise`, :func:`drift`, :func:`read`, :func:`make_generator` (``device``);
:class:`Crossbar`, :func:`program_crossbar`, :func:`adc_quantise` (``crossbar``); the spiking
reservoir's equations :func:`reservoir_step`, :func:`run_reservoir_torch` and the compiled
:func:`run_reservoir` (``reservoir``). Reservoir *models* live in :mod:`neuroflow.models.lsm`.
"""

from neuroflow.rram.crossbar import Crossbar, adc_quantise, program_crossbar
from neuroflow.rram.device import DeviceConfig, drift, form, make_generator, program, quantise, read
from neuroflow.rram.reservoir import reservoir_step, run_reservoir, run_reservoir_torch

__all__ = [
    "Crossbar",
    "DeviceConfig",
    "adc_quantise",
    "drift",
    "form",
    "make_generator",
    "program",
    "program_crossbar",
    "quantise",
    "read",
    "reservoir_step",
    "run_reservoir",
    "run_reservoir_torch",
]
