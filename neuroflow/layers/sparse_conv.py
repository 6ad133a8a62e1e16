"""Sparse 3-D convolution and per-sample pooling on voxel features: pure functions.

``sparse_conv(features [N, Cin], weight [K, Cin, Cout], kernel_map)`` -> ``[M, Cout]`` computes
``y[out] = sum over pairs (in, out, o) of x[in] @ W[o]`` (see :mod:`neuroflow.layers.kernel_map`
for the geometry). Weight layout ``[K, Cin, Cout]``, ``K = kx ky kz`` in offset order (x slowest):
``W.reshape(kx, ky, kz, Cin, Cout).permute(4, 3, 0, 1, 2)`` is the equivalent ``conv3d`` weight.

Backends:

* ``"batched"`` (default via ``"auto"``): the centre offset of a submanifold map (every voxel
  paired with itself) is one dense ``x @ W[c]``; all other offsets are one gather into padded
  ``[G_b, P_b, Cin]`` blocks of offsets of similar length
  (:class:`~neuroflow.layers.kernel_map.GroupedPairs`), one batched matmul and one scatter-add
  per block (a numba loop on the CPU, see :mod:`~neuroflow.layers.sparse_cpu_kernels`).
  Forward and backward are hand-written (the backward reuses the layout and the gathered inputs:
  ``grad_x`` scatters ``g @ W^T`` to the inputs, ``grad_W = x_g^T g_g`` per offset), so a call
  costs ~10-20 tensor operations whatever the kernel size. The operations run single-threaded, the
  two independent halves of each pass (centre / other offsets; ``grad_x`` / ``grad_W``) on two
  plain threads when torch has more than one (see :func:`_plain_threads`). Fully fused numba
  gather-matmul-scatter kernels (one axpy per pair and input channel) measured 2-5x slower here
  than the BLAS matmuls at 32 channels, so only the scatter and the layout are numba loops.
* ``"torch"``: the reference, one gather / matmul / ``index_add`` per offset, autograd backward
  (it skips silent rows only when the features need no gradient).

``event_driven=True`` skips input rows that are all zero (voxels that did not spike): only pairs
with an active input are gathered and multiplied, so the forward's work (and ``grad_W``'s) scales
with the number of spiking voxels, not of active sites. On the CPU, for up to ``Cin Cout =
16,384``, the forward is the event kernel (:func:`~neuroflow.layers.sparse_cpu_kernels.event_conv`:
gather the spiking inputs' pairs offset by offset, GEMM, sum into the output rows, every step
scaling with the spikes and split over numba's threads; against the non-skipping path at 100%,
8,192 voxels 32 -> 32, measured 5.4x faster at 10% of the voxels spiking, 2.5x at 50%, 1.5x at
100%), except where the batched path restricted to the spiking inputs is faster (see
:data:`_EVENT_MAX_DENSITY`): in training above 50% spiking voxels, and on one thread above 60%.
In training the event kernel keeps the gathered rows for ``grad_W``
(:func:`~neuroflow.layers.sparse_cpu_kernels.event_weight_grad`).
``grad_x`` still needs every pair: a silent voxel's pre-activation can have a non-zero
(straight-through) gradient, so forward + backward cannot scale with the spikes as the forward
does (1.4-1.6x at 10%; 2.0-2.8x when the input needs no gradient, as in a first layer). The
result equals the non-skipping path.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

import torch
from torch.autograd.function import once_differentiable

from neuroflow.errors import InputShapeError, InvalidArgumentError
from neuroflow.layers.kernel_map import GroupedPairs, KernelMap, group_pairs
from neuroflow.layers.sparse_cpu_kernels import (
    event_conv, event_conv_forward, event_gemm_chunk, event_weight_grad, nonzero_rows, scatter_add_rows,
    spiking_rows,
)
from neuroflow.parallel import run_concurrently

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


def _event_kernel_applies(x: torch.Tensor, w: torch.Tensor) -> bool:
    """Whether the event-driven kernels apply: CPU float32/64 and channels few enough for their
    single-threaded GEMM chunks (:func:`event_gemm_chunk`)."""
    return (x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
            and x.shape[1] > 0 and event_gemm_chunk(w.shape[1], w.shape[2]) > 0)


# Above these shares of spiking voxels the batched path (restricted to the spiking voxels) is about
# as fast as the event kernels or faster. Training: its grad_W reuses the forward's layout, where the
# event path's grad_W GEMMs are small (fwd+bwd, event / batched, surface voxels 16 -> 16: 28.0 /
# 29.0 ms at 50%, 31.8 / 28.8 at 60%). Inference on one thread: the batched path's GEMMs are
# faster (8,192 random voxels 32 -> 32: 1.07 / 1.18 ms at 50%, 1.35 / 1.35 at 70%, 1.85 / 1.35 at
# 100%). Inference with the event kernel's steps split over numba's threads has no limit: it
# measured faster at every density (2 threads: 0.65 / 1.09 ms at 50%, 1.07 / 1.54 at 100%;
# E-3DSNN-T on 8 real ModelNet40 clouds, ~97% of the voxels spiking: 357 ms against 478 for the
# batched path and 410 for the non-skipping model).
_EVENT_MAX_DENSITY = {"training": 0.5, "inference_one_thread": 0.6}


def _event_driven(x: torch.Tensor, w: torch.Tensor, kmap: KernelMap, needs_grad: bool) -> torch.Tensor:
    """The event kernels (their work follows the spikes) while few enough voxels spiked (see
    :data:`_EVENT_MAX_DENSITY`; in training they keep the gathered rows for ``grad_W``), else the
    batched path skipping the silent voxels."""
    if not _event_kernel_applies(x, w):
        return _BatchedSparseConv.apply(x, w, kmap, nonzero_rows(x))
    if needs_grad:
        active, count = spiking_rows(x)
        if count <= _EVENT_MAX_DENSITY["training"] * x.shape[0]:
            return _EventSparseConv.apply(x, w, kmap, active)
    else:
        pairs = kmap.by_input
        y, active = event_conv(x, w, pairs.ptr, pairs.offset, pairs.out_idx, kmap.num_out, torch.get_num_threads(),
                               int(_EVENT_MAX_DENSITY["inference_one_thread"] * x.shape[0]))
        if y is not None:
            return y
    return _BatchedSparseConv.apply(x, w, kmap, active)


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


# Below this many multiply-adds the hand-off to a second thread costs more than it saves (0.1-0.3
# ms on the 2-core VM, whose idle virtual CPUs sleep). Measured there: 8,192 voxels 32 -> 32
# (23 M) fwd+bwd 10-20% faster on two threads; an E-3DSNN step on small clouds (convolutions of
# < 1 M) ~6% faster without the hand-offs.
_PARALLEL_MIN_MACS = 1 << 23


@contextmanager
def _plain_threads():
    """Run the enclosed tensor operations single-threaded, yielding the caller's thread count.

    Why: at these sizes (thousands of voxels x tens of channels) every intra-op parallel region
    costs more than it saves, and on a loaded machine far more (measured on the shared 2-core VM:
    each op took >= 8 ms at 2 threads against 0.05-0.5 ms at 1). Parallelism comes instead from
    running independent parts on plain threads (:func:`_both`) when the work is large.
    torch's thread count is process-wide, so other threads briefly see 1 too.
    """
    threads = torch.get_num_threads()
    if threads == 1:
        yield 1
        return
    torch.set_num_threads(1)
    try:
        yield threads
    finally:
        torch.set_num_threads(threads)


def _both(first: Callable[[], None] | None, second: Callable[[], None] | None, threads: int, macs: int) -> None:
    """Run two independent parts (``None``: a part not needed), on two threads when ``threads > 1``,
    both are needed and they are worth ``macs`` multiply-adds or more (tensor ops release the GIL)."""
    if first is not None and second is not None and threads > 1 and macs >= _PARALLEL_MIN_MACS:
        run_concurrently([first, second])
        return
    for part in (first, second):
        if part is not None:
            part()


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


def _input_grad(grad_y: torch.Tensor, g_rows: torch.Tensor, w: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    """``grad_x [N, Cin]``: ``g[out] @ W[o]^T`` scattered to the inputs over *every* pair (a silent
    voxel's input gradient is not zero); ``g_rows`` is :func:`_with_zero_row` of ``grad_y``
    gathered at ``kmap.grouped.out_idx``."""
    full, c = kmap.grouped, kmap.center
    grad_x = grad_y @ w[c].t() if c >= 0 else grad_y.new_zeros((kmap.num_in, w.shape[1]))
    for offsets, entries, g_b in _blocks(g_rows, full):
        products = _offset_products(g_b, w.index_select(0, offsets).transpose(1, 2))
        scatter_add_rows(grad_x, full.in_idx[entries], products)
    return grad_x


class _EventSparseConv(torch.autograd.Function):
    """The event-driven path in training: the inference kernel's forward, keeping its gathered
    spiking rows for ``grad_W`` (whose work then scales with the spikes too); ``grad_x`` as the
    batched path."""

    @staticmethod
    def forward(ctx, x, w, kmap: KernelMap, active: torch.Tensor):
        pairs = kmap.by_input
        y, ctx.layout = event_conv_forward(x, w, active, pairs.ptr, pairs.offset, pairs.out_idx, kmap.num_out,
                                           torch.get_num_threads(), keep_layout=True)
        ctx.save_for_backward(w)
        ctx.kmap = kmap
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        (w,) = ctx.saved_tensors
        out = {"x": None, "w": None}
        with _plain_threads() as threads:
            def input_grad():
                g_rows = _with_zero_row(grad_y).index_select(0, ctx.kmap.grouped.out_idx)
                out["x"] = _input_grad(grad_y, g_rows, w, ctx.kmap)

            def weight_grad():
                out["w"] = event_weight_grad(ctx.layout, grad_y, w.shape)

            _both(input_grad if ctx.needs_input_grad[0] else None,
                  weight_grad if ctx.needs_input_grad[1] else None, threads,
                  ctx.kmap.num_pairs * w.shape[1] * w.shape[2])
        return out["x"], out["w"], None, None


# Above this share of spiking voxels the batched path uses the map's cached layout of all pairs
# instead of laying out the spiking voxels' pairs on each call. Measured, E-3DSNN-T inference on 4
# real ModelNet40 clouds (~97% of voxels spiking at each convolution): event-driven 153 ms with
# the per-call layout against 131 ms for the non-skipping model.
_RELAYOUT_MAX_DENSITY = 0.8


class _BatchedSparseConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, kmap: KernelMap, active: torch.Tensor | None):
        """``active [N]`` bool: the voxels that spiked (event-driven), or None (every voxel)."""
        with _plain_threads() as threads:
            n_active = int(active.sum()) if active is not None else x.shape[0]
            # most voxels spiked: the map's cached layout (a silent row adds zeros) costs less than
            # laying out the spiking ones' pairs anew; the centre offset is worth gathering only
            # when few voxels spiked (a gathered row costs ~3 dense ones: gather, matmul, scatter)
            dense = n_active >= _RELAYOUT_MAX_DENSITY * x.shape[0]
            pairs = kmap.grouped if dense else group_pairs(kmap, active)
            centre_rows = torch.nonzero(active, as_tuple=True)[0] if 3 * n_active < x.shape[0] else None
            c = kmap.center
            # one spare output row takes the padding entries' products (never read, so not zeroed)
            dense_centre = c >= 0 and centre_rows is None
            y = (x.new_empty if dense_centre else x.new_zeros)((kmap.num_out + 1, w.shape[2]))
            parts = {}

            def centre():
                if dense_centre:
                    torch.mm(x, w[c], out=y[:-1])
                elif c >= 0:
                    scatter_add_rows(y, centre_rows, x.index_select(0, centre_rows) @ w[c])

            def others():
                parts["gathered"] = x.index_select(0, pairs.in_idx)
                parts["products"] = [(entries, _offset_products(rows, w.index_select(0, offsets)))
                                     for offsets, entries, rows in _blocks(parts["gathered"], pairs)]

            macs = (pairs.in_idx.numel() + n_active) * w.shape[1] * w.shape[2]
            _both(centre, others, threads, macs)
            for entries, products in parts["products"]:
                scatter_add_rows(y, pairs.out_idx[entries], products)
        ctx.save_for_backward(x, w, centre_rows, parts["gathered"])
        ctx.kmap, ctx.pairs = kmap, pairs
        return y[:-1]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        x, w, centre_rows, gathered = ctx.saved_tensors
        kmap: KernelMap = ctx.kmap
        c = kmap.center
        out = {"x": None, "w": None}
        with _plain_threads() as threads:
            g = _with_zero_row(grad_y)
            # both parts gather g at the same pairs when the forward used the map's full layout:
            # gather once
            pairs = ctx.pairs  # silent inputs contribute nothing to grad_W
            shared = g.index_select(0, pairs.out_idx) if pairs is kmap.grouped else None

            def input_grad():
                g_rows = shared if shared is not None else g.index_select(0, kmap.grouped.out_idx)
                out["x"] = _input_grad(grad_y, g_rows, w, kmap)

            def weight_grad():
                grad_w = w.new_zeros(w.shape)
                g_rows = shared if shared is not None else g.index_select(0, pairs.out_idx)
                for (offsets, _, x_b), (_, _, g_b) in zip(_blocks(gathered, pairs), _blocks(g_rows, pairs)):
                    grad_w.index_copy_(0, offsets, torch.bmm(x_b.transpose(1, 2), g_b))
                if c >= 0:
                    rows = centre_rows
                    grad_w[c] = (x.t() @ grad_y if rows is None
                                 else x.index_select(0, rows).t() @ grad_y.index_select(0, rows))
                out["w"] = grad_w

            _both(input_grad if ctx.needs_input_grad[0] else None,
                  weight_grad if ctx.needs_input_grad[1] else None, threads,
                  ctx.kmap.num_pairs * w.shape[1] * w.shape[2])
        return out["x"], out["w"], None, None


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
