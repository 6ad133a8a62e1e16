"""Layers for spiking networks.

Public names:

- time folding: :class:`TimeDistributed`, :func:`fold_time`, :func:`unfold_time`;
- sparse voxel grids (point clouds): :class:`SparseTensor`, :class:`SubMConv3d`,
  :class:`SparseConv3d`, :class:`SparseBatchNorm`, :class:`FeatureWise`,
  :class:`SparseGlobalAvgPool`, :class:`SparseGlobalMaxPool`, the functional :func:`sparse_conv`,
  :func:`build_kernel_map`, :class:`KernelMap`, :func:`global_mean_pool`, :func:`global_max_pool`,
  and the dispatch policy :class:`SparseConvPolicy`, :func:`set_sparse_policy`,
  :func:`sparse_policy` (the package :mod:`neuroflow.layers.sparse`);
- spike-driven transformer: :class:`SpikeDrivenSelfAttention` (functional :func:`sdsa_v2`,
  :func:`sdsa_v1_mask`, :func:`split_heads`, :func:`merge_heads`), :class:`RepConv`,
  :class:`SepConv`, :class:`ConvBlock`, :class:`TransformerBlock`, :class:`SpikeMLP`,
  :class:`Downsampling`, :func:`reparameterize`.
"""

from neuroflow.layers.repconv import RepConv
from neuroflow.layers.sparse import (
    FeatureWise,
    KernelMap,
    SparseBatchNorm,
    SparseConv3d,
    SparseConvPolicy,
    SparseGlobalAvgPool,
    SparseGlobalMaxPool,
    SparseTensor,
    SubMConv3d,
    build_kernel_map,
    global_max_pool,
    global_mean_pool,
    set_sparse_policy,
    sparse_conv,
    sparse_policy,
)
from neuroflow.layers.spike_attention import (
    SpikeDrivenSelfAttention,
    merge_heads,
    sdsa_v1_mask,
    sdsa_v2,
    split_heads,
)
from neuroflow.layers.spikeformer_blocks import (
    ConvBlock,
    Downsampling,
    SepConv,
    SpikeMLP,
    TransformerBlock,
    reparameterize,
)
from neuroflow.layers.time_distributed import TimeDistributed, fold_time, unfold_time

__all__ = [
    "ConvBlock",
    "Downsampling",
    "FeatureWise",
    "KernelMap",
    "RepConv",
    "SepConv",
    "SparseBatchNorm",
    "SparseConv3d",
    "SparseConvPolicy",
    "SparseGlobalAvgPool",
    "SparseGlobalMaxPool",
    "SparseTensor",
    "SpikeDrivenSelfAttention",
    "SpikeMLP",
    "SubMConv3d",
    "TimeDistributed",
    "TransformerBlock",
    "build_kernel_map",
    "fold_time",
    "global_max_pool",
    "global_mean_pool",
    "merge_heads",
    "reparameterize",
    "sdsa_v1_mask",
    "sdsa_v2",
    "set_sparse_policy",
    "sparse_conv",
    "sparse_policy",
    "split_heads",
    "unfold_time",
]
