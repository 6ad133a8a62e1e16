"""``nn.Module`` wrappers of sparse convolution, normalisation, pooling on :class:`SparseTensor`.

Every module maps a :class:`~neuroflow.layers.sparse.tensor.SparseTensor` to a SparseTensor (the
pooling modules to ``[B, C]``), so they chain in ``nn.Sequential``. Convolutions take their
kernel map from the input's cache (built on first use, keyed by geometry and ``indice_key``), so
all submanifold convolutions of a stage share one map.

Energy counting: ``conv.kernel_map(x)`` returns the
:class:`~neuroflow.layers.sparse.kernel_map.KernelMap` the convolution uses for input ``x``;
``kmap.pairs(o)`` gives offset ``o``'s ``(in_idx, out_idx)`` pairs, so a layer's synaptic
operations are ``sum over pairs of (spike count of x[in]) x Cout`` (``kmap.fan_out()`` is each
input voxel's number of pairs).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from neuroflow.errors import InputShapeError, InvalidArgumentError
from neuroflow.layers.sparse.conv import resolve_backend, sparse_conv
from neuroflow.layers.sparse.kernel_map import KernelMap, build_kernel_map, triple
from neuroflow.layers.sparse.policy import SparseConvPolicy, resolve_policy
from neuroflow.layers.sparse.pooling import global_max_pool, global_mean_pool
from neuroflow.layers.sparse.tensor import SparseTensor


def _check_sparse(x, module: nn.Module, channels: int | None = None) -> None:
    if not isinstance(x, SparseTensor):
        raise InputShapeError(
            f"{type(module).__name__} expects a SparseTensor, got {type(x).__name__}"
        )
    if channels is not None and x.num_channels != channels:
        raise InputShapeError(
            f"{type(module).__name__} expects {channels} feature channels, got features of shape "
            f"{tuple(x.features.shape)}"
        )


class _SparseConvNd(nn.Module):
    """Common part of :class:`SubMConv3d` and :class:`SparseConv3d`.

    Parameters: ``weight [K, Cin, Cout]`` (``K = kx ky kz``, see
    :mod:`neuroflow.layers.sparse.conv` for the layout; the same count as spconv's ``SubMConv3d``)
    and ``bias [Cout]`` if ``bias``. Initialised like ``nn.Conv3d``: uniform in
    ``+-1 / sqrt(Cin K)``. ``policy``: this convolution's
    :class:`~neuroflow.layers.sparse.policy.SparseConvPolicy` (``None``: the process-wide one at
    each call).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride,
        dilation,
        bias: bool,
        submanifold: bool,
        indice_key,
        backend: str,
        event_driven: bool,
        policy: SparseConvPolicy | None,
    ):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(f"{name} must be a positive int, got {name}={value!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = triple(kernel_size, "kernel_size")
        self.stride = triple(stride, "stride")
        self.dilation = triple(dilation, "dilation")
        self.submanifold = submanifold
        if submanifold and (self.stride != (1, 1, 1) or any(k % 2 == 0 for k in self.kernel_size)):
            raise InvalidArgumentError(
                f"SubMConv3d needs an odd kernel_size and stride 1, "
                f"got kernel_size={self.kernel_size}, stride={self.stride}"
            )
        self.indice_key = indice_key
        self.backend = resolve_backend(backend)
        self.event_driven = bool(event_driven)
        self.policy = None if policy is None else resolve_policy(policy)
        volume = math.prod(self.kernel_size)
        self.weight = nn.Parameter(torch.empty(volume, in_channels, out_channels))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_channels * self.weight.shape[0])
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def kernel_map(self, x: SparseTensor) -> KernelMap:
        """The kernel map this convolution uses for ``x`` (from ``x``'s cache, built on first
        use)."""
        key = (self.kernel_size, self.stride, self.dilation, self.submanifold, self.indice_key)
        kmap = x.kernel_maps.get(key)
        if kmap is None:
            kmap = build_kernel_map(
                x.coords,
                x.spatial_shape,
                x.batch_size,
                self.kernel_size,
                self.stride,
                self.dilation,
                self.submanifold,
            )
            x.kernel_maps[key] = kmap
        return kmap

    def forward(self, x: SparseTensor) -> SparseTensor:
        _check_sparse(x, self, self.in_channels)
        kmap = self.kernel_map(x)
        y = sparse_conv(
            x.features, self.weight, kmap, self.bias, self.backend, self.event_driven, self.policy
        )
        if self.submanifold:
            return x.replace_features(y)
        return SparseTensor(
            kmap.out_coords, y, kmap.out_spatial_shape, x.batch_size, validate=False
        )

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        if not self.submanifold:
            text += f", stride={self.stride}"
        if self.dilation != (1, 1, 1):
            text += f", dilation={self.dilation}"
        if self.bias is None:
            text += ", bias=False"
        if self.indice_key is not None:
            text += f", indice_key={self.indice_key!r}"
        return text + f", event_driven={self.event_driven}"


class SubMConv3d(_SparseConvNd):
    """Submanifold convolution: outputs only at the input's active sites (odd kernel, stride 1).

    Equals ``conv3d(dense(x), padding=dilation (k // 2))`` sampled at the active sites.
    ``kernel_size=1`` is a per-voxel linear map (1x1x1 convolution).
    ``event_driven=True`` skips voxels whose input row is all zero (no spike); same result.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size=3,
        dilation=1,
        bias: bool = False,
        indice_key=None,
        backend: str = "auto",
        event_driven: bool = False,
        policy: SparseConvPolicy | None = None,
    ):
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            1,
            dilation,
            bias,
            True,
            indice_key,
            backend,
            event_driven,
            policy,
        )


class SparseConv3d(_SparseConvNd):
    """Strided sparse convolution (padding 0): an output site is active when any input in its
    receptive field is (for ``kernel_size=2, stride=2``: any input in its 2x2x2 cell).

    Output grid ``ceil((X - dilation (k - 1) - 1) / stride) + 1`` per axis (no input voxel dropped).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size=2,
        stride=2,
        dilation=1,
        bias: bool = False,
        indice_key=None,
        backend: str = "auto",
        event_driven: bool = False,
        policy: SparseConvPolicy | None = None,
    ):
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            dilation,
            bias,
            False,
            indice_key,
            backend,
            event_driven,
            policy,
        )


class SparseBatchNorm(nn.BatchNorm1d):
    """``BatchNorm1d`` over the voxel features ``[N, C]`` (statistics over all voxels of the
    batch)."""

    def forward(self, x: SparseTensor) -> SparseTensor:
        _check_sparse(x, self, self.num_features)
        if self.training and x.features.shape[0] < 2:
            raise InputShapeError(
                f"SparseBatchNorm({self.num_features}) in training mode needs more than one voxel "
                f"for batch statistics, got {x.features.shape[0]}: use larger clouds or batches, "
                "or call model.eval()"
            )
        return x.replace_features(super().forward(x.features))


class FeatureWise(nn.Module):
    """Apply an element-wise module (a spiking neuron, an activation) to the features only."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: SparseTensor) -> SparseTensor:
        _check_sparse(x, self)
        return x.replace_features(self.module(x.features))


class SparseGlobalAvgPool(nn.Module):
    """Mean over each sample's voxels: SparseTensor ``[N, C]`` -> ``[B, C]``."""

    def forward(self, x: SparseTensor) -> torch.Tensor:
        _check_sparse(x, self)
        return global_mean_pool(x.features, x.batch_index(), x.batch_size)


class SparseGlobalMaxPool(nn.Module):
    """Max over each sample's voxels: SparseTensor ``[N, C]`` -> ``[B, C]``."""

    def forward(self, x: SparseTensor) -> torch.Tensor:
        _check_sparse(x, self)
        return global_max_pool(x.features, x.batch_index(), x.batch_size)
