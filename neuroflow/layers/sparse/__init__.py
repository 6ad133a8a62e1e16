"""Sparse 3-D convolution on voxel grids (point clouds).

``tensor`` (:class:`SparseTensor`), ``kernel_map`` (which voxel feeds which through which
offset), ``conv`` (:func:`sparse_conv`), ``policy`` (when the event kernels run), ``modules``
(``nn.Module`` wrappers), ``pooling``, and ``kernels/`` (numba loops by job: map building, pair
layouts, event kernels). See ``docs/sparse_convolution.md``.
"""

from neuroflow.layers.sparse.conv import sparse_conv
from neuroflow.layers.sparse.kernel_map import KernelMap, build_kernel_map
from neuroflow.layers.sparse.modules import (
    FeatureWise,
    SparseBatchNorm,
    SparseConv3d,
    SparseGlobalAvgPool,
    SparseGlobalMaxPool,
    SubMConv3d,
)
from neuroflow.layers.sparse.policy import (
    DEFAULT_POLICY,
    SparseConvPolicy,
    get_sparse_policy,
    set_sparse_policy,
    sparse_policy,
)
from neuroflow.layers.sparse.pooling import global_max_pool, global_mean_pool
from neuroflow.layers.sparse.tensor import SparseTensor

__all__ = [
    "DEFAULT_POLICY",
    "FeatureWise",
    "KernelMap",
    "SparseBatchNorm",
    "SparseConv3d",
    "SparseConvPolicy",
    "SparseGlobalAvgPool",
    "SparseGlobalMaxPool",
    "SparseTensor",
    "SubMConv3d",
    "build_kernel_map",
    "get_sparse_policy",
    "global_max_pool",
    "global_mean_pool",
    "set_sparse_policy",
    "sparse_conv",
    "sparse_policy",
]
