"""Liquid state machine experiments on top of the ``lsm`` model: readouts fitted on fixed
features (``readout``), the robustness sweep (``sweep``), the ``neuroflow lsm`` command
(``command``), energy on the RRAM macro (``energy``) and zero-shot contrastive readouts
(``zeroshot``). Import the submodules; this package imports nothing heavy, so that the command
line can register ``neuroflow lsm`` cheaply.
"""
