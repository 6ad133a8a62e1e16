"""Layers for spiking networks. Public names: :class:`TimeDistributed`, :func:`fold_time`, :func:`unfold_time`."""

from neuroflow.layers.time_distributed import TimeDistributed, fold_time, unfold_time

__all__ = ["TimeDistributed", "fold_time", "unfold_time"]
