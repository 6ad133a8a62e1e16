"""Layers for spiking networks.

Public names: :class:`TimeDistributed`, :func:`fold_time`, :func:`unfold_time`; for sparse voxel
grids (point clouds) :class:`SparseTensor`, :class:`SubMConv3d`, :class:`SparseConv3d`,
:class:`SparseBatchNorm`, :class:`FeatureWise`, :class:`SparseGlobalAvgPool`,
:class:`SparseGlobalMaxPool`, the functional :func:`sparse_conv`, :func:`build_kernel_map`,
:class:`KernelMap`, :func:`global_mean_pool`, :func:`global_max_pool`.
"""

from neuroflow.layers.kernel_map import KernelMap, build_kernel_map
from neuroflow.layers.sparse_conv import global_max_pool, global_mean_pool, sparse_conv
from neuroflow.layers.sparse_modules import (
    FeatureWise,
    SparseBatchNorm,
    SparseConv3d,
    SparseGlobalAvgPool,
    SparseGlobalMaxPool,
    SubMConv3d,
)
from neuroflow.layers.sparse_tensor import SparseTensor
from neuroflow.layers.time_distributed import TimeDistributed, fold_time, unfold_time

__all__ = [
    "FeatureWise", "KernelMap", "SparseBatchNorm", "SparseConv3d", "SparseGlobalAvgPool", "SparseGlobalMaxPool",
    "SparseTensor", "SubMConv3d", "TimeDistributed", "build_kernel_map", "fold_time", "global_max_pool",
    "global_mean_pool", "sparse_conv", "unfold_time",
]
