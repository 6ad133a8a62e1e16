"""Sparse 3-D convolution and per-sample pooling on voxel features: pure functions.

``sparse_conv(features [N, Cin], weight [K, Cin, Cout], kernel_map)`` -> ``[M, Cout]`` computes
``y[out] = sum over pairs (in, out, o) of x[in] @ W[o]`` (see :mod:`neuroflow.layers.sparse.kernel_map`
for the geometry). Weight layout ``[K, Cin, Cout]``, ``K = kx ky kz`` in offset order (x slowest):
``W.reshape(kx, ky, kz, Cin, Cout).permute(4, 3, 0, 1, 2)`` is the equivalent ``conv3d`` weight.

Backends:

* ``"batched"`` (default via ``"auto"``): the centre offset of a submanifold map (every voxel
  paired with itself) is one dense ``x @ W[c]``; all other offsets are one gather into padded
  ``[G_b, P_b, Cin]`` blocks of offsets of similar length
  (:class:`~neuroflow.layers.sparse.kernel_map.GroupedPairs`), one batched matmul and one scatter-add
  per block (a numba loop on the CPU, see :mod:`~neuroflow.layers.sparse.kernels.events`).
  Forward and backward are hand-written (the backward reuses the layout and the gathered inputs:
  ``grad_x`` scatters ``g @ W^T`` to the inputs, ``grad_W = x_g^T g_g`` per offset), so a call
  costs ~10-20 tensor operations whatever the kernel size, each on torch's intra-op threads.
  (Running them single-threaded, with the independent halves of each pass on two plain threads,
  measured 1.5x slower for an E-3DSNN-T training step on 4 real ModelNet40 clouds on the 2-core
  VM: 328 against 213 ms; switching torch's thread count on every call and a plain thread
  competing with torch's spinning workers cost more than they saved.) Fully fused numba
  gather-matmul-scatter kernels (one axpy per pair and input channel) measured 2-5x slower here
  than the BLAS matmuls at 32 channels, so only the scatter and the layout are numba loops.
* ``"torch"``: the reference, one gather / matmul / ``index_add`` per offset, autograd backward
  (it skips silent rows only when the features need no gradient).

``event_driven=True`` skips input rows that are all zero (voxels that did not spike): only pairs
with an active input are multiplied, so the forward's work (and ``grad_W``'s) scales with the
number of spiking voxels, not of active sites. On the CPU, for up to ``Cin Cout = 16,384``:

* in inference, while at most 60% of the voxels spiked (always for ``Cin Cout <= 8,192`` or on
  maps of 3 or more pairs per voxel, see :data:`_MIN_PAIRS_PER_VOXEL`), the
  forward is the event kernel (:func:`~neuroflow.layers.sparse.kernels.events.event_conv`: a row
  test, then each spiking input's products, accumulated in vector registers, are added into
  their output rows in place, blocks of output rows split over numba's threads);
* in training, the same forward, and ``grad_W`` over the spiking inputs' pairs only
  (:func:`~neuroflow.layers.sparse.kernels.events.event_weight_grad`: gathered rows of the input
  and of the output gradient, multiplied in vector registers), always for ``Cin Cout <= 2,048``,
  while at most 60% of the voxels spiked up to 8,192, 40% above (see :func:`_event_limit`).

Above that, the batched path is as fast or faster; it lays out the spiking inputs' pairs anew only
where the skipped products outweigh that (wide layers, see :func:`_relayout_pays`), else it
multiplies the silent rows too, in the map's cached layout, and then, in training, narrow layers
(``Cin Cout <= 8,192``) still take the event kernel's forward. ``grad_x`` still needs every pair:
a silent voxel's pre-activation can have a non-zero (straight-through) gradient, so forward +
backward cannot scale with the spikes as the forward does (1.5-1.65x at 10% spiking voxels, 32 ->
32 channels; ~3x when the input needs no gradient, as in a first layer). The
result equals the non-skipping path.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from neuroflow.errors import InputShapeError, InvalidArgumentError
from neuroflow.layers.sparse.kernel_map import GroupedPairs, KernelMap, group_pairs
from neuroflow.layers.sparse.kernels.events import (
    EVENT_MAX_MACS, event_conv, event_weight_grad, nonzero_rows, scatter_add_rows, spiking_rows,
)

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
    needs_grad = torch.is_grad_enabled() and (features.requires_grad or weight.requires_grad)
    if resolve_backend(backend) == "torch":
        y = _reference(features, weight, kernel_map, event_driven)
    elif not event_driven:
        y = _BatchedSparseConv.apply(features, weight, kernel_map, None)
    else:
        y = _event_driven(features, weight, kernel_map, needs_grad)
    return y if bias is None else y + bias


_EVENT_DTYPES = (torch.float32, torch.float64)


def _event_kernel_applies(x: torch.Tensor, w: torch.Tensor) -> bool:
    """Whether the event-driven kernels apply: CPU float32/64, ``Cin Cout <= EVENT_MAX_MACS``."""
    return x.is_cpu and x.dtype in _EVENT_DTYPES and x.shape[1] > 0 and _narrow(w, EVENT_MAX_MACS)


# Above these shares of spiking voxels the batched path (restricted to the spiking voxels, its
# operations on torch's threads) is about as fast as the event kernels or faster. Measured on the
# 2-core VM, 8,192 random voxels, 2 threads, inference (event kernel / batched path):
# 32 -> 32 channels 0.49 / 0.73 ms at 70% spiking voxels and 0.59 / 0.61 at 100% (16 -> 16: 0.32 /
# 0.57 and 0.34 / 0.35); 64 -> 64 1.54 / 1.68 at 70%, 2.09 / 1.60 at 100% (1.22 / 1.33 with the
# kernel's two products in flight, below); 128 -> 128 5.5 / 5.8 at 50%, 6.4 / 5.2 at 70%. Those
# random voxels have ~1.8 pairs each, so the batched path's dense
# centre matmul is half its work. Real clouds have more neighbours: on the first map of 4 ModelNet40
# clouds (3.7 pairs per voxel) at 95% spiking voxels, 64 -> 64 11.8 / 16.0 ms, 64 -> 128 26.3 /
# 31.8, 128 -> 128 58.5 / 52.7; whole E-3DSNN inference with the event kernel for every layer up to
# Cin Cout = 4,096 instead of 1,024 (fresh inputs, 16 alternating rounds): -T on 4 clouds 96.7 ->
# 86.9 and 102.7 -> 99.1 ms, on 8 clouds 229.8 -> 209.6; -S on 4 clouds 122.9 -> 116.1. With the
# kernel's two products in flight, up to 8,192 instead of 4,096 (so 64 -> 128 too; 12 alternating
# rounds): -T inference 64 -> 59, 54 -> 52, 65 -> 64, 61 -> 59 ms, training 200 -> 198, 169 -> 172;
# -S inference 105 -> 99, training 311 -> 299. So layers up to 8,192 always take the event kernel
# in inference (and its forward in training).
# Training, fwd+bwd with the event kernel's forward and weight gradient against the batched path
# (with the event forward; then without), 2 threads, on 8,192 random voxels (1.8 pairs each) and
# on a sphere shell of 16,746 voxels (13.5 pairs each), ms at 20 / 60 / 100% spiking voxels:
# random 32 -> 32 0.94 / 1.35, 1.18 / 1.39, 1.37 / 1.34; 32 -> 64 1.46 / 1.99, 2.01 / 2.14, 2.59 /
# 2.37; 64 -> 64 2.09 / 2.60, 3.74 / 4.39, 4.60 / 4.14; 64 -> 128 4.66 / 5.24, 7.16 / 7.63, 9.16 /
# 8.18; 128 -> 128 8.30 / 8.29, 12.89 / 12.39 (at 40% 10.59 / 11.73), 17.31 / 15.50; shell
# 16 -> 16 2.6 / 5.9, 3.6 / 6.1, 4.5 / 6.3; 32 -> 32 6.6 / 11.3, 9.7 / 15.2, 12.8 / 16.2; 32 -> 64
# 10.8 / 15.9, 18.1 / 24.9, 24.0 / 26.9; 64 -> 64 20.5 / 24.7, 34.6 / 43.8, 47.1 / 48.6; 64 -> 128
# 61.6 / 66.5, 86.8 / 99.5, 115.6 / 105.1; 128 -> 128 116.6 / 110.3, 175.4 / 174.2, 229.9 / 204.5.
_EVENT_MAX_DENSITY = {"inference": 0.6, "training": 0.4}
#: ``Cin Cout`` (multiply-adds per pair) up to which inference always takes the event kernel
_NARROW_LAYER_MACS = 8192
#: ... and training, while at most this share of voxels spiked (above it, its forward: see
#: :class:`_BatchedSparseConv`)
_NARROW_TRAINING_MAX_DENSITY = 0.6
#: ``Cin Cout`` up to which training always takes the event kernels
_NARROWEST_LAYER_MACS = 2048
# Inference, wider layers, event kernel / batched path, ms at 60 / 80 / 100% spiking voxels: on a
# sphere shell of 16,746 voxels (13.5 pairs each) 96 -> 96 19.6 / 31.5, 24.5 / 43.8, 29.9 / 45.2;
# 128 -> 128 41.4 / 51.9, 53.5 / 72.9, 65.7 / 74.2; 96 -> 160 37.6 / 47.6, 49.4 / 68.1, 60.4 / 69.1;
# but on 8,192 random voxels (1.8 pairs each, the batched path's dense centre matmul half its
# work) 128 -> 128 3.5 / 3.3, 4.4 / 3.8, 5.4 / 4.0. So maps of 3 or more pairs per voxel take the
# event kernel in inference whatever the layer's width (up to EVENT_MAX_MACS).
_MIN_PAIRS_PER_VOXEL = 3


def _narrow(w: torch.Tensor, limit: int = _NARROW_LAYER_MACS) -> bool:
    """Whether ``w [K, Cin, Cout]`` makes at most ``limit`` multiply-adds per pair."""
    return w.shape[1] * w.shape[2] <= limit


def _many_neighbours(kmap: KernelMap) -> bool:
    """Whether the batched path's dense centre matmul is under a third of its work: a strided map
    (no centre) or one of 3 or more pairs per voxel (:data:`_MIN_PAIRS_PER_VOXEL`)."""
    return kmap.center < 0 or kmap.num_pairs >= _MIN_PAIRS_PER_VOXEL * kmap.num_in


def _event_limit(x: torch.Tensor, w: torch.Tensor, kmap: KernelMap, needs_grad: bool) -> int:
    """Most spiking rows of ``x`` for which the event kernels run (see :data:`_EVENT_MAX_DENSITY`)."""
    if needs_grad:
        always = _narrow(w, _NARROWEST_LAYER_MACS)
        share = _NARROW_TRAINING_MAX_DENSITY if _narrow(w) else _EVENT_MAX_DENSITY["training"]
    else:
        always = _narrow(w) or _many_neighbours(kmap)
        share = _EVENT_MAX_DENSITY["inference"]
    return x.shape[0] if always else int(share * x.shape[0])


def _event_driven(x: torch.Tensor, w: torch.Tensor, kmap: KernelMap, needs_grad: bool) -> torch.Tensor:
    """The event kernels (their work follows the spikes) while few enough voxels spiked (see
    :func:`_event_limit`), else the batched path skipping the silent voxels."""
    if not _event_kernel_applies(x, w):
        return _BatchedSparseConv.apply(x, w, kmap, nonzero_rows(x))
    limit = _event_limit(x, w, kmap, needs_grad)
    # in inference the row test runs inside the event kernel, unless the map's sorted pairs are yet
    # to be built for a layer that may fall back (~1 ms for 116,160 pairs, wasted if it does)
    if not needs_grad and (limit >= x.shape[0] or kmap.has_pairs_by_output()):
        pairs = kmap.by_output
        y, active = event_conv(x, w, pairs.arrays, pairs.block, kmap.num_out, torch.get_num_threads(), limit)
        return y if y is not None else _BatchedSparseConv.apply(x, w, kmap, active)
    active, count = spiking_rows(x, torch.get_num_threads())
    if count > limit:  # in training, narrow layers still take the event kernel's forward
        return _BatchedSparseConv.apply(x, w, kmap, active, _narrow(w))
    if needs_grad:
        return _EventSparseConv.apply(x, w, kmap, active, count)
    return _event_forward(x, w, kmap, (active, count))


def _event_forward(x: torch.Tensor, w: torch.Tensor, kmap: KernelMap, rows: tuple[torch.Tensor, int] | None
                   ) -> torch.Tensor:
    """The event kernel's ``y`` (:func:`event_conv`) whatever the share of spiking voxels; ``rows``:
    the row test's ``(active, count)`` if the caller has it."""
    pairs = kmap.by_output
    return event_conv(x, w, pairs.arrays, pairs.block, kmap.num_out, torch.get_num_threads(), x.shape[0], rows)[0]


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


# Rows are picked with index_select / index_copy_, never advanced indexing (``w[offsets]``): on the
# CPU that measured 6-10x slower (26 of [27, 64, 64] weights: 150 us against 23 us).
def _blocks(gathered: torch.Tensor, pairs: GroupedPairs):
    """Per block of ``pairs``: ``(its offsets [G_b], its slice of the padded entries, its rows of
    gathered [R, C] as [G_b, P_b, C])``."""
    for offsets, entries, shape in pairs.split():
        yield offsets, entries, gathered[entries].view(*shape, gathered.shape[1])


#: products narrower than this many columns are computed transposed (see :func:`_offset_products`)
_NARROW_COLUMNS = 16


def _offset_products(rows: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``rows [G, P, Cin] @ w [G, Cin, Cout]`` -> ``[G, P, Cout]``, one matrix product per offset.

    With fewer than 16 output columns on the CPU it is computed as ``(w^T rows^T)^T`` and returned
    as that transposed view (:func:`scatter_add_rows` reads it in place): torch's CPU ``bmm``
    measured 3-5x slower for such narrow products (26 offsets x 2,085 rows, 8 -> 8 channels:
    1.1-1.3 ms against 0.26-0.29 ms transposed; 16 -> 8: 1.3-1.9 against 0.41; at 16 or more
    columns both forms took the same time).
    """
    if w.shape[2] < _NARROW_COLUMNS and rows.device.type == "cpu":
        return torch.bmm(w.transpose(1, 2), rows.transpose(1, 2)).transpose(1, 2)
    return torch.bmm(rows, w)


def _with_zero_row(grad_y: torch.Tensor) -> torch.Tensor:
    """``grad_y [M, C]`` with a zero row appended at index ``M``: what the padding entries of
    :attr:`KernelMap.grouped` gather."""
    return torch.cat([grad_y, grad_y.new_zeros((1, grad_y.shape[1]))])


# Measured inside E-3DSNN-T training on 4 real ModelNet40 clouds (grad_x per layer, event kernel /
# batched): 16 -> 16 at 20,472 voxels (8.2 pairs each) 3.7 / 5.8 ms, at 29,771 voxels (3.6 pairs
# each) 2.5 / 3.5; 32 -> 32 at 7,601 voxels 4.6 / 6.0; but 64 -> 64 at 1,837 voxels 4.5 / 4.1. On
# sparser submanifold maps the batched path's dense centre matmul is a larger share of the work:
# 8,192 random voxels (1.8 pairs each), 32 -> 32 fwd+bwd 2.15 ms with the event kernel's grad_x,
# 2.06 without. Strided maps have no centre: k = s = 2 (one pair per voxel), 16 -> 16 at 20,472
# voxels 1.1 / 1.5 ms, 16 -> 32 1.25 / 1.43. With the kernel's two products in flight, up to
# Cin Cout = 4,096 instead of 1,024 (so 32 -> 64 and 64 -> 64 too), whole training steps in A/Bs
# of 12 rounds: -T 175 -> 167, 163 -> 159, 177 -> 179, 163 -> 159 ms; -S 287 -> 277 ms.
# With the kernel's shared weight loads, grad_x alone, event kernel / batched, 2 threads: on 8,192
# random voxels (1.8 pairs each) 16 -> 16 0.17 / 0.29 ms, 32 -> 32 0.31 / 0.44, 32 -> 64 0.53 /
# 0.69, 64 -> 64 1.06 / 1.11, 64 -> 128 2.46 / 2.24; on a sphere shell of 16,746 voxels (13.5 pairs
# each) 16 -> 16 1.1 / 4.4, 32 -> 32 3.2 / 9.6, 64 -> 64 11.7 / 23.9, 64 -> 128 25.0 / 44.7. So
# layers up to 4,096 take the event kernel on any map, up to 8,192 on maps of 3 pairs per voxel or
# more (or strided ones); whole E-3DSNN-T and -S training steps on 4 real clouds within noise.
_INPUT_GRAD_EVENT_MACS = 4096
_INPUT_GRAD_EVENT_WIDE_MACS = 8192


def _input_grad(grad_y: torch.Tensor, w: torch.Tensor, kmap: KernelMap, g_rows: torch.Tensor | None = None
                ) -> torch.Tensor:
    """``grad_x [N, Cin]``: ``g[out] @ W[o]^T`` summed into the inputs over *every* pair (a silent
    voxel's input gradient is not zero).

    Narrow layers on the CPU (``Cin Cout <= 4,096``, or 8,192 unless the batched path's dense
    centre matmul is a third of the work or more: a submanifold map with under 3 pairs per voxel;
    see :data:`_INPUT_GRAD_EVENT_MACS`): the event kernel on the transposed map
    (:attr:`KernelMap.by_input_blocks`, ``W[o]^T``), whose row test skips zero rows of ``grad_y``.
    Else the batched path; ``g_rows``, :func:`_with_zero_row` of ``grad_y`` gathered at
    ``kmap.grouped.out_idx``, if the caller has it."""
    if _event_kernel_applies(grad_y, w) and (_narrow(w, _INPUT_GRAD_EVENT_MACS) or (
            _narrow(w, _INPUT_GRAD_EVENT_WIDE_MACS) and _many_neighbours(kmap))):
        pairs = kmap.by_input_blocks
        w_t = w.detach().transpose(1, 2).contiguous()
        grad_x, _ = event_conv(grad_y, w_t, pairs.arrays, pairs.block, kmap.num_in, torch.get_num_threads(),
                               grad_y.shape[0])
        return grad_x
    full, c = kmap.grouped, kmap.center
    if g_rows is None:
        g_rows = _with_zero_row(grad_y).index_select(0, full.out_idx)
    grad_x = grad_y @ w[c].t() if c >= 0 else grad_y.new_zeros((kmap.num_in, w.shape[1]))
    for offsets, entries, g_b in _blocks(g_rows, full):
        products = _offset_products(g_b, w.index_select(0, offsets).transpose(1, 2))
        scatter_add_rows(grad_x, full.in_idx[entries], products)
    return grad_x


class _EventSparseConv(torch.autograd.Function):
    """The event-driven path in training: the event kernel's forward; ``grad_W`` over the spiking
    inputs' pairs only (:func:`~neuroflow.layers.sparse.kernels.events.event_weight_grad`), ``grad_x``
    over every pair (:func:`_input_grad`)."""

    @staticmethod
    def forward(ctx, x, w, kmap: KernelMap, active: torch.Tensor, count: int):
        ctx.save_for_backward(x, w, active)
        ctx.kmap = kmap
        return _event_forward(x, w, kmap, (active, count))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        x, w, active = ctx.saved_tensors
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = _input_grad(grad_y, w, ctx.kmap)
        if ctx.needs_input_grad[1]:
            grad_w = event_weight_grad(x, grad_y, active, ctx.kmap.pair_arrays, torch.get_num_threads())
        return grad_x, grad_w, None, None, None


# Above this share of spiking voxels the batched path uses the map's cached layout of all pairs
# instead of laying out the spiking voxels' pairs on each call. Measured, E-3DSNN-T inference on 4
# real ModelNet40 clouds (~97% of voxels spiking at each convolution): event-driven 153 ms with
# the per-call layout against 131 ms for the non-skipping model.
_RELAYOUT_MAX_DENSITY = 0.8
# Below it, a new layout pays only when the silent pairs' products it saves, (1 - density) Cin Cout
# multiply-adds per pair, outweigh its cost per pair, which grows with Cin + Cout (gathering and
# scattering the rows): it pays when the saving exceeds this many times Cin + Cout. Measured,
# fwd+bwd on 8,192 random voxels, 2 threads, new layout / cached: 32 -> 32 at 50% spiking 2.18 /
# 2.05 ms; 64 -> 64 at 50% 5.70 / 5.99, at 70% 6.28 / 6.32; 128 -> 128 at 50% 19.7 / 22.8, at 70%
# 20.9 / 22.3.
_RELAYOUT_MIN_SAVING = 10


def _relayout_pays(n_active: int, n: int, w: torch.Tensor) -> bool:
    """Whether laying out the pairs of the ``n_active`` spiking voxels of ``n`` beats the cached
    layout of all pairs (see :data:`_RELAYOUT_MAX_DENSITY`, :data:`_RELAYOUT_MIN_SAVING`)."""
    cin, cout = w.shape[1], w.shape[2]
    saved = (n - n_active) * cin * cout  # silent pairs' multiply-adds, per pair of the map times n
    return n_active < _RELAYOUT_MAX_DENSITY * n and saved > _RELAYOUT_MIN_SAVING * (cin + cout) * n


def _count(mask: torch.Tensor) -> int:
    """Number of true entries of ``mask`` (bool): numpy's count on the CPU, where torch's ``sum``
    (a parallel reduction) measured ~30 us for 8,192 entries, a tenth of a 32 -> 32 layer's forward."""
    return int(np.count_nonzero(mask.numpy())) if mask.is_cpu else int(mask.sum())


# The event kernels' weight gradient against the batched one (gathered blocks, bmm, the centre's
# matmul), every voxel spiking, 2 threads, ms: on 8,192 random voxels 16 -> 16 0.14 / 0.32, 32 -> 32
# 0.35 / 0.58, 64 -> 64 1.47 / 1.34, 128 -> 128 5.7 / 4.0; on a sphere shell of 16,746 voxels 16 -> 16
# 1.7 / 3.7, 32 -> 32 5.1 / 9.4, 64 -> 64 22.7 / 24.1, 64 -> 128 46.4 / 41.5, 128 -> 128 94 / 69.
def _event_weight_grad_applies(x: torch.Tensor, w: torch.Tensor) -> bool:
    """Whether ``grad_W`` comes from :func:`~neuroflow.layers.sparse.kernels.events.event_weight_grad`
    at any share of spiking voxels: on the CPU for ``Cin Cout <= 2,048``."""
    return _event_kernel_applies(x, w) and _narrow(w, _NARROWEST_LAYER_MACS)


class _BatchedSparseConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, kmap: KernelMap, active: torch.Tensor | None, event_forward: bool = False):
        """``active [N]`` bool: the voxels that spiked (event-driven), or None (every voxel).

        ``event_forward`` (CPU float32/64 only): when the map's cached layout serves, ``y`` comes
        from the event kernel (:func:`~neuroflow.layers.sparse.kernels.events.event_conv`), and the
        backward gathers the input rows for ``grad_W`` itself. Measured on the first map of 4 real
        ModelNet40 clouds at 95% spiking voxels, inference: 16 -> 16 1.7 against 4.1 ms batched,
        32 -> 32 3.8 against 7.3, 64 -> 64 11.8 against 16.0."""
        n_active = _count(active) if active is not None else x.shape[0]
        # most voxels spiked, or the layer is narrow: the map's cached layout (a silent row adds
        # zeros) costs less than laying out the spiking ones' pairs anew; the centre offset is
        # worth gathering only when few voxels spiked (a gathered row costs ~3 dense ones: gather,
        # matmul, scatter)
        dense = not _relayout_pays(n_active, x.shape[0], w)
        pairs = kmap.grouped if dense else group_pairs(kmap, active)
        centre_rows = torch.nonzero(active, as_tuple=True)[0] if 3 * n_active < x.shape[0] else None
        ctx.kmap, ctx.pairs = kmap, pairs
        keep_rows = not _event_weight_grad_applies(x, w)  # the gathered rows, for the batched grad_W
        if event_forward and dense:
            y = _event_forward(x, w, kmap, None)
            ctx.save_for_backward(x, w, centre_rows, None, active)
            return y
        c = kmap.center
        # one spare output row takes the padding entries' products (never read, so not zeroed)
        dense_centre = c >= 0 and centre_rows is None
        y = (x.new_empty if dense_centre else x.new_zeros)((kmap.num_out + 1, w.shape[2]))
        if dense_centre:
            torch.mm(x, w[c], out=y[:-1])
        elif c >= 0:
            scatter_add_rows(y, centre_rows, x.index_select(0, centre_rows) @ w[c])
        gathered = x.index_select(0, pairs.in_idx)
        for offsets, entries, rows in _blocks(gathered, pairs):
            scatter_add_rows(y, pairs.out_idx[entries], _offset_products(rows, w.index_select(0, offsets)))
        ctx.save_for_backward(x, w, centre_rows, gathered if keep_rows else None, active)
        return y[:-1]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        x, w, centre_rows, gathered, active = ctx.saved_tensors
        kmap: KernelMap = ctx.kmap
        c = kmap.center
        grad_x = grad_w = None
        pairs = ctx.pairs  # silent inputs contribute nothing to grad_W
        batched_grad_w = ctx.needs_input_grad[1] and not _event_weight_grad_applies(x, w)
        g_rows = _with_zero_row(grad_y).index_select(0, pairs.out_idx) if batched_grad_w else None
        if ctx.needs_input_grad[0]:
            # the batched input gradient gathers g at the same pairs when the forward used the
            # map's full layout
            grad_x = _input_grad(grad_y, w, kmap, g_rows if pairs is kmap.grouped else None)
        if ctx.needs_input_grad[1] and not batched_grad_w:
            grad_w = event_weight_grad(x, grad_y, active, kmap.pair_arrays, torch.get_num_threads())
        elif ctx.needs_input_grad[1]:
            grad_w = w.new_zeros(w.shape)
            if gathered is None:  # the event kernel made the forward
                gathered = x.index_select(0, pairs.in_idx)
            for (offsets, _, x_b), (_, _, g_b) in zip(_blocks(gathered, pairs), _blocks(g_rows, pairs)):
                grad_w.index_copy_(0, offsets, torch.bmm(x_b.transpose(1, 2), g_b))
            if c >= 0:
                grad_w[c] = (x.t() @ grad_y if centre_rows is None
                             else x.index_select(0, centre_rows).t() @ grad_y.index_select(0, centre_rows))
        return grad_x, grad_w, None, None, None


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
