"""Liquid state machine experiments on top of the ``lsm`` model: readouts fitted on fixed
features, the robustness sweep, energy on the RRAM macro, zero-shot contrastive readouts.

Public names: :func:`fit_ridge`, :func:`fit_logistic`, :func:`fit_readout`,
:class:`FittedReadout` (``readout``).
"""

from neuroflow.lsm.readout import FittedReadout, fit_logistic, fit_readout, fit_ridge

__all__ = ["FittedReadout", "fit_logistic", "fit_readout", "fit_ridge"]
