"""Sparse 3-D convolution on voxel grids (point clouds): tensor, kernel map, convolution, modules."""

from neuroflow.layers.sparse.conv import global_max_pool, global_mean_pool, sparse_conv
from neuroflow.layers.sparse.kernel_map import KernelMap, build_kernel_map
from neuroflow.layers.sparse.modules import (
    FeatureWise,
    SparseBatchNorm,
    SparseConv3d,
    SparseGlobalAvgPool,
    SparseGlobalMaxPool,
    SubMConv3d,
)
from neuroflow.layers.sparse.tensor import SparseTensor

__all__ = [
    "FeatureWise",
    "KernelMap",
    "SparseBatchNorm",
    "SparseConv3d",
    "SparseGlobalAvgPool",
    "SparseGlobalMaxPool",
    "SparseTensor",
    "SubMConv3d",
    "build_kernel_map",
    "global_max_pool",
    "global_mean_pool",
    "sparse_conv",
]
