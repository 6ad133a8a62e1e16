"""Sparse 3-D convolution on voxel features: a pure function with hand-written autograd.

``sparse_conv(features [N, Cin], weight [K, Cin, Cout], kernel_map)`` -> ``[M, Cout]`` computes
``y[out] = sum over pairs (in, out, o) of x[in] @ W[o]`` (see
:mod:`neuroflow.layers.sparse.kernel_map` for the geometry), the submanifold and strided sparse
convolutions of Graham et al., "3D Semantic Segmentation with Submanifold Sparse Convolutional
Networks" (CVPR 2018). Weight layout ``[K, Cin, Cout]``, ``K = kx ky kz`` in offset order (x
slowest): ``W.reshape(kx, ky, kz, Cin, Cout).permute(4, 3, 0, 1, 2)`` is the equivalent ``conv3d``
weight.

Backends:

* ``"batched"`` (default via ``"auto"``): the centre offset of a submanifold map (every voxel
  paired with itself) is one dense ``x @ W[c]``; all other offsets are one gather into padded
  ``[G_b, P_b, Cin]`` blocks of offsets of similar length
  (:class:`~neuroflow.layers.sparse.kernel_map.GroupedPairs`), one batched matmul and one
  scatter-add per block (a numba loop on the CPU, :mod:`~neuroflow.layers.sparse.kernels.layout`).
  Forward and backward are hand-written (the backward reuses the layout and the gathered inputs:
  ``grad_x`` scatters ``g @ W^T`` to the inputs, ``grad_W = x_g^T g_g`` per offset), so a call
  costs ~10-20 tensor operations whatever the kernel size, each on torch's intra-op threads.
  Only the scatter and the layout are numba loops: fully fused gather-matmul-scatter loops were
  slower than BLAS at 32 channels.
* ``"torch"``: the reference, one gather / matmul / ``index_add`` per offset, autograd backward
  (it skips silent rows only when the features need no gradient).

``event_driven=True`` skips input rows that are all zero (voxels that did not spike): only pairs
with an active input are multiplied, so the forward's work (and ``grad_W``'s) scales with the
number of spiking voxels, not of active sites. On the CPU the event kernels
(:mod:`~neuroflow.layers.sparse.kernels.events`) do this in inference and, for the forward and
``grad_W``, in training, while the layer is narrow enough or few enough voxels spiked; above that
the batched path, restricted to the spiking voxels, is as fast or faster. Where each crossover
lies is one :class:`~neuroflow.layers.sparse.policy.SparseConvPolicy` (``policy=``, else the
process-wide one). ``grad_x`` still needs every pair: a silent voxel's pre-activation can have a
non-zero (straight-through) gradient, so forward + backward cannot scale with the spikes as the
forward does. The result equals the non-skipping path up to float rounding.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from neuroflow.errors import InputShapeError, InvalidArgumentError
from neuroflow.layers.sparse.kernel_map import GroupedPairs, KernelMap, group_pairs
from neuroflow.layers.sparse.kernels.events import (
    event_conv,
    event_weight_grad,
    nonzero_rows,
    spiking_rows,
)
from neuroflow.layers.sparse.kernels.layout import scatter_add_rows
from neuroflow.layers.sparse.policy import SparseConvPolicy, resolve_policy

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
    policy: SparseConvPolicy | None = None,
) -> torch.Tensor:
    """Sparse convolution ``[N, Cin]`` -> ``[M, Cout]`` over ``kernel_map`` (differentiable).

    ``policy``: where the event kernels and the batched path run (``None``: the process-wide
    :func:`~neuroflow.layers.sparse.policy.get_sparse_policy`); it changes the speed, not the
    result.
    """
    if features.dim() != 2 or features.shape[0] != kernel_map.num_in:
        raise InputShapeError(
            f"features must be [N={kernel_map.num_in}, Cin] for this kernel map, "
            f"got {tuple(features.shape)}"
        )
    if (
        weight.dim() != 3
        or weight.shape[0] != kernel_map.kernel_volume
        or weight.shape[1] != features.shape[1]
    ):
        raise InputShapeError(
            f"weight must be [K={kernel_map.kernel_volume}, Cin={features.shape[1]}, Cout], "
            f"got {tuple(weight.shape)} (features have {features.shape[1]} channels)"
        )
    if weight.dtype != features.dtype:
        raise InputShapeError(
            f"features ({features.dtype}) and weight ({weight.dtype}) must have the same dtype"
        )
    policy = resolve_policy(policy)
    needs_grad = torch.is_grad_enabled() and (features.requires_grad or weight.requires_grad)
    if resolve_backend(backend) == "torch":
        y = _reference(features, weight, kernel_map, event_driven)
    elif not event_driven:
        y = _BatchedSparseConv.apply(features, weight, kernel_map, None, False, policy)
    else:
        y = _event_driven(features, weight, kernel_map, needs_grad, policy)
    return y if bias is None else y + bias


_EVENT_DTYPES = (torch.float32, torch.float64)


def _narrow(w: torch.Tensor, limit: int) -> bool:
    """Whether ``w [K, Cin, Cout]`` makes at most ``limit`` multiply-adds per pair."""
    return w.shape[1] * w.shape[2] <= limit


def _event_kernel_applies(x: torch.Tensor, w: torch.Tensor, policy: SparseConvPolicy) -> bool:
    """Whether the event-driven kernels apply: CPU float32/64, ``Cin Cout`` up to
    ``policy.event_max_macs``."""
    return (
        x.is_cpu
        and x.dtype in _EVENT_DTYPES
        and x.shape[1] > 0
        and _narrow(w, policy.event_max_macs)
    )


def _many_neighbours(kmap: KernelMap, policy: SparseConvPolicy) -> bool:
    """Whether the batched path's dense centre matmul is a small share of its work: a strided map
    (no centre) or one of ``policy.event_min_pairs_per_voxel`` or more pairs per voxel."""
    return kmap.center < 0 or kmap.num_pairs >= policy.event_min_pairs_per_voxel * kmap.num_in


def _event_limit(
    x: torch.Tensor, w: torch.Tensor, kmap: KernelMap, needs_grad: bool, policy: SparseConvPolicy
) -> int:
    """Most spiking rows of ``x`` for which the event kernels run (training or inference)."""
    if needs_grad:
        always = _narrow(w, policy.training_event_macs)
        share = (
            policy.training_narrow_max_density
            if _narrow(w, policy.training_narrow_macs)
            else policy.training_event_max_density
        )
    else:
        always = _narrow(w, policy.inference_event_macs) or _many_neighbours(kmap, policy)
        share = policy.inference_event_max_density
    return x.shape[0] if always else int(share * x.shape[0])


def _event_driven(
    x: torch.Tensor, w: torch.Tensor, kmap: KernelMap, needs_grad: bool, policy: SparseConvPolicy
) -> torch.Tensor:
    """The event kernels (their work follows the spikes) while few enough voxels spiked (see
    :func:`_event_limit`), else the batched path skipping the silent voxels."""
    if not _event_kernel_applies(x, w, policy):
        return _BatchedSparseConv.apply(x, w, kmap, nonzero_rows(x), False, policy)
    limit = _event_limit(x, w, kmap, needs_grad, policy)
    # in inference the row test runs inside the event kernel, unless the map's sorted pairs are yet
    # to be built for a layer that may fall back (wasted work if it does)
    if not needs_grad and (limit >= x.shape[0] or kmap.has_pairs_by_output()):
        pairs = kmap.by_output
        y, active = event_conv(
            x, w, pairs.arrays, pairs.block, kmap.num_out, torch.get_num_threads(), limit
        )
        return y if y is not None else _BatchedSparseConv.apply(x, w, kmap, active, False, policy)
    active, count = spiking_rows(x, torch.get_num_threads())
    if count > limit:  # in training, narrow layers still take the event kernel's forward
        event_forward = needs_grad and _narrow(w, policy.training_narrow_macs)
        return _BatchedSparseConv.apply(x, w, kmap, active, event_forward, policy)
    if needs_grad:
        return _EventSparseConv.apply(x, w, kmap, active, count, policy)
    return _event_forward(x, w, kmap, (active, count))


def _event_forward(
    x: torch.Tensor, w: torch.Tensor, kmap: KernelMap, rows: tuple[torch.Tensor, int] | None
) -> torch.Tensor:
    """The event kernel's ``y`` (:func:`event_conv`) whatever the share of spiking voxels; ``rows``:
    the row test's ``(active, count)`` if the caller has it."""
    pairs = kmap.by_output
    threads = torch.get_num_threads()
    return event_conv(x, w, pairs.arrays, pairs.block, kmap.num_out, threads, x.shape[0], rows)[0]


def _reference(
    x: torch.Tensor, w: torch.Tensor, kmap: KernelMap, event_driven: bool
) -> torch.Tensor:
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


# Rows are picked with index_select / index_copy_, never advanced indexing (``w[offsets]``), which
# is several times slower on the CPU.
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
    as that transposed view (:func:`scatter_add_rows` reads it in place): torch's CPU ``bmm`` is
    several times slower for such narrow products (at 16 or more columns both forms take the same
    time).
    """
    if w.shape[2] < _NARROW_COLUMNS and rows.device.type == "cpu":
        return torch.bmm(w.transpose(1, 2), rows.transpose(1, 2)).transpose(1, 2)
    return torch.bmm(rows, w)


def _with_zero_row(grad_y: torch.Tensor) -> torch.Tensor:
    """``grad_y [M, C]`` with a zero row appended at index ``M``: what the padding entries of
    :attr:`KernelMap.grouped` gather."""
    return torch.cat([grad_y, grad_y.new_zeros((1, grad_y.shape[1]))])


def _input_grad(
    grad_y: torch.Tensor,
    w: torch.Tensor,
    kmap: KernelMap,
    policy: SparseConvPolicy,
    g_rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """``grad_x [N, Cin]``: ``g[out] @ W[o]^T`` summed into the inputs over *every* pair (a silent
    voxel's input gradient is not zero).

    Layers up to ``policy.input_grad_event_macs`` on the CPU (up to
    ``policy.input_grad_event_wide_macs`` on maps of many neighbours, see
    :func:`_many_neighbours`): the event kernel on the transposed map
    (:attr:`KernelMap.by_input_blocks`, ``W[o]^T``), whose row test skips zero rows of ``grad_y``.
    Else the batched path; ``g_rows``, :func:`_with_zero_row` of ``grad_y`` gathered at
    ``kmap.grouped.out_idx``, if the caller has it."""
    if _event_kernel_applies(grad_y, w, policy) and (
        _narrow(w, policy.input_grad_event_macs)
        or (_narrow(w, policy.input_grad_event_wide_macs) and _many_neighbours(kmap, policy))
    ):
        pairs = kmap.by_input_blocks
        w_t = w.detach().transpose(1, 2).contiguous()
        grad_x, _ = event_conv(
            grad_y,
            w_t,
            pairs.arrays,
            pairs.block,
            kmap.num_in,
            torch.get_num_threads(),
            grad_y.shape[0],
        )
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
    inputs' pairs only (:func:`~neuroflow.layers.sparse.kernels.events.event_weight_grad`),
    ``grad_x`` over every pair (:func:`_input_grad`)."""

    @staticmethod
    def forward(ctx, x, w, kmap: KernelMap, active: torch.Tensor, count: int, policy):
        ctx.save_for_backward(x, w, active)
        ctx.kmap, ctx.policy = kmap, policy
        return _event_forward(x, w, kmap, (active, count))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        x, w, active = ctx.saved_tensors
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = _input_grad(grad_y, w, ctx.kmap, ctx.policy)
        if ctx.needs_input_grad[1]:
            threads = torch.get_num_threads()
            grad_w = event_weight_grad(x, grad_y, active, ctx.kmap.pair_arrays, threads)
        return grad_x, grad_w, None, None, None, None


def _relayout_pays(n_active: int, n: int, w: torch.Tensor, policy: SparseConvPolicy) -> bool:
    """Whether laying out the pairs of the ``n_active`` spiking voxels of ``n`` beats the cached
    layout of all pairs: below ``policy.relayout_max_density``, when the silent pairs' products it
    saves, ``(1 - density) Cin Cout`` multiply-adds per pair, exceed ``policy.relayout_min_saving``
    times its own cost per pair, which grows with ``Cin + Cout`` (gathering and scattering rows)."""
    cin, cout = w.shape[1], w.shape[2]
    saved = (n - n_active) * cin * cout  # silent pairs' multiply-adds, per pair of the map times n
    return (
        n_active < policy.relayout_max_density * n
        and saved > policy.relayout_min_saving * (cin + cout) * n
    )


def _count(mask: torch.Tensor) -> int:
    """Number of true entries of ``mask`` (bool): numpy's count on the CPU, where torch's ``sum``
    (a parallel reduction) costs a noticeable share of a small layer's forward."""
    return int(np.count_nonzero(mask.numpy())) if mask.is_cpu else int(mask.sum())


def _event_weight_grad_applies(x: torch.Tensor, w: torch.Tensor, policy: SparseConvPolicy) -> bool:
    """Whether ``grad_W`` comes from the event kernel
    (:func:`~neuroflow.layers.sparse.kernels.events.event_weight_grad`) at any share of spiking
    voxels: on the CPU up to ``policy.weight_grad_event_macs``."""
    return _event_kernel_applies(x, w, policy) and _narrow(w, policy.weight_grad_event_macs)


class _BatchedSparseConv(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx,
        x,
        w,
        kmap: KernelMap,
        active: torch.Tensor | None,
        event_forward: bool,
        policy: SparseConvPolicy,
    ):
        """``active [N]`` bool: the voxels that spiked (event-driven), or None (every voxel).

        ``event_forward`` (CPU float32/64 only): when the map's cached layout serves, ``y`` comes
        from the event kernel (:func:`~neuroflow.layers.sparse.kernels.events.event_conv`), and
        the backward gathers the input rows for ``grad_W`` itself."""
        n_active = _count(active) if active is not None else x.shape[0]
        # most voxels spiked, or the layer is narrow: the map's cached layout (a silent row adds
        # zeros) costs less than laying out the spiking ones' pairs anew; the centre offset is
        # worth gathering only when few voxels spiked (a gathered row costs ~3 dense ones: gather,
        # matmul, scatter)
        dense = not _relayout_pays(n_active, x.shape[0], w, policy)
        pairs = kmap.grouped if dense else group_pairs(kmap, active)
        centre_rows = torch.nonzero(active, as_tuple=True)[0] if 3 * n_active < x.shape[0] else None
        ctx.kmap, ctx.pairs, ctx.policy = kmap, pairs, policy
        # the gathered rows, for the batched grad_W
        keep_rows = not _event_weight_grad_applies(x, w, policy)
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
            products = _offset_products(rows, w.index_select(0, offsets))
            scatter_add_rows(y, pairs.out_idx[entries], products)
        ctx.save_for_backward(x, w, centre_rows, gathered if keep_rows else None, active)
        return y[:-1]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        x, w, centre_rows, gathered, active = ctx.saved_tensors
        kmap: KernelMap = ctx.kmap
        policy: SparseConvPolicy = ctx.policy
        c = kmap.center
        grad_x = grad_w = None
        pairs = ctx.pairs  # silent inputs contribute nothing to grad_W
        batched_grad_w = ctx.needs_input_grad[1] and not _event_weight_grad_applies(x, w, policy)
        g_rows = _with_zero_row(grad_y).index_select(0, pairs.out_idx) if batched_grad_w else None
        if ctx.needs_input_grad[0]:
            # the batched input gradient gathers g at the same pairs when the forward used the
            # map's full layout
            full_rows = g_rows if pairs is kmap.grouped else None
            grad_x = _input_grad(grad_y, w, kmap, policy, full_rows)
        if ctx.needs_input_grad[1] and not batched_grad_w:
            threads = torch.get_num_threads()
            grad_w = event_weight_grad(x, grad_y, active, kmap.pair_arrays, threads)
        elif ctx.needs_input_grad[1]:
            grad_w = w.new_zeros(w.shape)
            if gathered is None:  # the event kernel made the forward
                gathered = x.index_select(0, pairs.in_idx)
            for (offsets, _, x_b), (_, _, g_b) in zip(
                _blocks(gathered, pairs), _blocks(g_rows, pairs)
            ):
                grad_w.index_copy_(0, offsets, torch.bmm(x_b.transpose(1, 2), g_b))
            if c >= 0:
                grad_w[c] = (
                    x.t() @ grad_y
                    if centre_rows is None
                    else x.index_select(0, centre_rows).t() @ grad_y.index_select(0, centre_rows)
                )
        return grad_x, grad_w, None, None, None, None
