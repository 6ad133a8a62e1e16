"""Layers for spiking networks.

Public names: :class:`TimeDistributed`, :func:`fold_time`, :func:`unfold_time`,
:class:`SparseTensor` (sparse voxel grids for point clouds).
"""

from neuroflow.layers.sparse_tensor import SparseTensor
from neuroflow.layers.time_distributed import TimeDistributed, fold_time, unfold_time

__all__ = ["SparseTensor", "TimeDistributed", "fold_time", "unfold_time"]
