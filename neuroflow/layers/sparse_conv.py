"""Sparse 3-D convolution and per-sample pooling on voxel features: pure functions.

``sparse_conv(features [N, Cin], weight [K, Cin, Cout], kernel_map)`` -> ``[M, Cout]`` computes
``y[out] = sum over pairs (in, out, o) of x[in] @ W[o]`` (see :mod:`neuroflow.layers.kernel_map`
for the geometry). Weight layout ``[K, Cin, Cout]``, ``K = kx ky kz`` in offset order (x slowest):
``W.reshape(kx, ky, kz, Cin, Cout).permute(4, 3, 0, 1, 2)`` is the equivalent ``conv3d`` weight.

Backends:

* ``"batched"`` (default via ``"auto"``): the centre offset of a submanifold map (every voxel
  paired with itself) is one dense ``x @ W[c]``; all other offsets are one gather into a padded
  ``[G, P, Cin]`` block (:class:`~neuroflow.layers.kernel_map.GroupedPairs`), one batched matmul
  and one scatter-add (:func:`~neuroflow.layers.scatter.scatter_add_rows`, a numba loop on the CPU). Forward and backward are hand-written (the backward reuses the
  layout: ``grad_x`` scatters ``g @ W^T`` to the inputs, ``grad_W = x_g^T g_g`` per offset), so a
  call costs ~10 tensor operations whatever the kernel size. Fully fused numba
  gather-matmul-scatter kernels (one axpy per pair and input channel) measured 2-5x slower here
  than the BLAS matmuls at 32 channels, so only the scatter is a numba kernel.
* ``"torch"``: the reference, one gather / matmul / ``index_add`` per offset, autograd backward
  (it skips silent rows only when the features need no gradient).

``event_driven=True`` skips input rows that are all zero (voxels that did not spike): only pairs
with an active input are gathered and multiplied, so the forward's work (and ``grad_W``'s) scales
with the number of spiking voxels, not of active sites. ``grad_x`` still needs every pair: a
silent voxel's pre-activation can have a non-zero (straight-through) gradient. The result equals
the non-skipping path.
"""

from __future__ import annotations

import torch

from neuroflow.errors import InputShapeError, InvalidArgumentError
from neuroflow.layers.kernel_map import GroupedPairs, KernelMap, group_pairs
from neuroflow.layers.scatter import scatter_add_rows

BACKENDS = ("auto", "batched", "torch")


def resolve_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise InvalidArgumentError(f"backend must be one of {BACKENDS}, got backend={backend!r}")
    return "batched" if backend == "auto" else backend


def sparse_conv(
    features: torch.Tensor,
    weight: torch.Tensor,
    kernel_map: KernelMap,
    bias: torch.Tensor | None = None,
    backend: str = "auto",
    event_driven: bool = False,
) -> torch.Tensor:
    """Sparse convolution ``[N, Cin]`` -> ``[M, Cout]`` over ``kernel_map`` (differentiable)."""
    if features.dim() != 2 or features.shape[0] != kernel_map.num_in:
        raise InputShapeError(
            f"features must be [N={kernel_map.num_in}, Cin] for this kernel map, got {tuple(features.shape)}"
        )
    if weight.dim() != 3 or weight.shape[0] != kernel_map.kernel_volume or weight.shape[1] != features.shape[1]:
        raise InputShapeError(
            f"weight must be [K={kernel_map.kernel_volume}, Cin={features.shape[1]}, Cout], got {tuple(weight.shape)} "
            f"(features have {features.shape[1]} channels)"
        )
    if weight.dtype != features.dtype:
        raise InputShapeError(f"features ({features.dtype}) and weight ({weight.dtype}) must have the same dtype")
    if resolve_backend(backend) == "torch":
        y = _reference(features, weight, kernel_map, event_driven)
    else:
        y = _BatchedSparseConv.apply(features, weight, kernel_map, bool(event_driven))
    return y if bias is None else y + bias


def _reference(x: torch.Tensor, w: torch.Tensor, kmap: KernelMap, event_driven: bool) -> torch.Tensor:
    """Per offset: gather the input rows, one matmul, index_add into the output rows.

    Event-driven skipping only when ``x`` needs no gradient: autograd would give skipped (silent)
    rows a zero gradient, not their true one.
    """
    y = x.new_zeros((kmap.num_out, w.shape[2]))
    active = x.detach().ne(0).any(1) if event_driven and not x.requires_grad else None
    for o in range(kmap.kernel_volume):
        in_idx, out_idx = kmap.pairs(o)
        if active is not None:
            keep = active[in_idx]
            in_idx, out_idx = in_idx[keep], out_idx[keep]
        if in_idx.numel():
            y = y.index_add(0, out_idx, x[in_idx] @ w[o])
    return y


def _gather(rows: torch.Tensor, index: torch.Tensor, pairs: GroupedPairs) -> torch.Tensor:
    """``rows[index]`` as ``[G, P, C]``."""
    return rows.index_select(0, index).view(pairs.offsets.numel(), pairs.width, rows.shape[1])


class _BatchedSparseConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, kmap: KernelMap, event_driven: bool):
        active = x.ne(0).any(1) if event_driven else None
        pairs = kmap.grouped if active is None else group_pairs(kmap, active)
        c = kmap.center
        # one spare output row takes the padding entries' products
        y = x.new_zeros((kmap.num_out + 1, w.shape[2]))
        if c >= 0:
            if active is None:
                torch.mm(x, w[c], out=y[:-1])
            else:
                rows = torch.nonzero(active, as_tuple=True)[0]
                y[rows] = x[rows] @ w[c]
        if pairs.width:
            products = torch.bmm(_gather(x, pairs.in_idx, pairs), w[pairs.offsets])
            scatter_add_rows(y, pairs.out_idx, products.view(-1, w.shape[2]))
        ctx.save_for_backward(x, w, active)
        ctx.kmap, ctx.pairs = kmap, pairs
        return y[:-1]

    @staticmethod
    def backward(ctx, grad_y):
        x, w, active = ctx.saved_tensors
        kmap: KernelMap = ctx.kmap
        c = kmap.center
        # a zero row at index num_out: what the padding entries gather
        g = torch.cat([grad_y, grad_y.new_zeros((1, grad_y.shape[1]))])
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            pairs = kmap.grouped  # every pair: silent inputs get gradients too
            grad_x = grad_y @ w[c].t() if c >= 0 else x.new_zeros(x.shape)
            if pairs.width:
                products = torch.bmm(_gather(g, pairs.out_idx, pairs), w[pairs.offsets].transpose(1, 2))
                scatter_add_rows(grad_x, pairs.in_idx, products.view(-1, x.shape[1]))
        if ctx.needs_input_grad[1]:
            pairs = ctx.pairs  # silent inputs contribute nothing to grad_W
            grad_w = w.new_zeros(w.shape)
            if pairs.width:
                grad_w[pairs.offsets] = torch.bmm(_gather(x, pairs.in_idx, pairs).transpose(1, 2),
                                                  _gather(g, pairs.out_idx, pairs))
            if c >= 0:
                rows = torch.nonzero(active, as_tuple=True)[0] if active is not None else None
                grad_w[c] = x.t() @ grad_y if rows is None else x[rows].t() @ grad_y[rows]
        return grad_x, grad_w, None, None


# --- per-sample pooling ------------------------------------------------------------------------------
def _voxels_per_sample(features: torch.Tensor, batch_index: torch.Tensor, batch_size: int) -> torch.Tensor:
    if features.dim() != 2 or batch_index.dim() != 1 or batch_index.shape[0] != features.shape[0]:
        raise InputShapeError(
            f"expected features [N, C] and batch_index [N], got {tuple(features.shape)} and {tuple(batch_index.shape)}"
        )
    return torch.bincount(batch_index, minlength=batch_size)


def global_mean_pool(features: torch.Tensor, batch_index: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``[N, C]`` -> ``[B, C]``: mean over each sample's voxels (0 for a sample without voxels)."""
    count = _voxels_per_sample(features, batch_index, batch_size).clamp(min=1).to(features.dtype)
    total = features.new_zeros((batch_size, features.shape[1])).index_add(0, batch_index, features)
    return total / count[:, None]


def global_max_pool(features: torch.Tensor, batch_index: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``[N, C]`` -> ``[B, C]``: max over each sample's voxels (0 for a sample without voxels)."""
    empty = _voxels_per_sample(features, batch_index, batch_size) == 0
    out = features.new_full((batch_size, features.shape[1]), float("-inf"))
    out = out.scatter_reduce(0, batch_index[:, None].expand_as(features), features, reduce="amax")
    return out.masked_fill(empty[:, None], 0.0)
