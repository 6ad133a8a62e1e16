"""numba loops of the batched path: pair layouts and the scatter-add of its products.

* :func:`scatter_add_rows`, ``y[index[p]] += rows[p]``, the last step of every batched sparse
  convolution, where ``Tensor.index_add_`` is several times slower on the CPU and, with 2
  intra-op threads on a loaded machine, erratic (see ``docs/sparse_convolution.md``). One thread
  writes the rows in order, so the result does not depend on the thread count. Other devices
  (and dtypes numba does not take) use ``index_add_``.
* :func:`padded_layout`: the padded per-offset pair layout of
  :class:`~neuroflow.layers.sparse.kernel_map.GroupedPairs` (blocks of offsets of similar length)
  in two passes over the pairs (count, fill); as tensor operations it took ~15 calls, too many for
  the event-driven path, which rebuilds it on every call.
* :func:`pairs_by_voxel`: the pairs of a map ordered by blocks of input or output rows (a
  counting sort), the layout the event kernels walk.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from neuroflow.parallel import OPTS


@numba.njit(**OPTS)
def _add_rows(y, index, rows, lo, hi):
    # y[index[g P + p]] += rows[g, p] for the targets in [lo, hi); rows [G, P, C] of any strides (a
    # transposed product read in place). Each target row adds its rows in order, so a split of the
    # targets into ranges gives the same sums.
    block = rows.shape[1]
    for g in range(rows.shape[0]):
        for p in range(block):
            q = index[g * block + p]
            if lo <= q < hi:
                for c in range(y.shape[1]):
                    y[q, c] += rows[g, p, c]


def scatter_add_rows(y: torch.Tensor, index: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """In place ``y[index[p]] += rows[p]`` for ``y [M, C]``, ``index [P]`` int64 and
    ``rows [P, C]``, or ``rows [G, P', C]`` of any strides whose row ``g P' + p'`` goes to
    ``index[g P' + p']`` (e.g. a transposed batched product, read in place); returns ``y``.

    ``y`` must be contiguous; no autograd (used inside hand-written forward/backward passes).
    """
    if y.device.type == "cpu" and y.dtype in (torch.float32, torch.float64) and y.is_contiguous():
        blocks = rows.numpy() if rows.dim() == 3 else rows.contiguous().numpy()[None]
        _add_rows(y.numpy(), index.contiguous().numpy(), blocks, 0, y.shape[0])
        return y
    return y.index_add_(0, index, rows.reshape(-1, rows.shape[-1]))


@numba.njit(**OPTS)
def _pairs_by_voxel(key_idx, partner_idx, offset_ptr, num_keys, block):
    # counting sort of the pairs (grouped by offset) by their key voxel's group of `block`; within
    # a group they stay in offset order. A power-of-two block divides by a shift (an integer
    # division per pair was a large share of the sort)
    ptr = np.zeros((num_keys + block - 1) // block + 1, np.int64)
    shift = 0
    while (1 << shift) < block:
        shift += 1
    if (1 << shift) != block:
        shift = -1
    for p in range(key_idx.shape[0]):
        ptr[(key_idx[p] >> shift if shift >= 0 else key_idx[p] // block) + 1] += 1
    for g in range(ptr.shape[0] - 1):
        ptr[g + 1] += ptr[g]
    fill = ptr[:-1].copy()
    offset = np.empty(key_idx.shape[0], np.int32)
    voxel = np.empty(key_idx.shape[0], np.int32)
    partner = np.empty(key_idx.shape[0], np.int32)
    for o in range(offset_ptr.shape[0] - 1):
        for p in range(offset_ptr[o], offset_ptr[o + 1]):
            g = key_idx[p] >> shift if shift >= 0 else key_idx[p] // block
            r = fill[g]
            fill[g] = r + 1
            offset[r], voxel[r], partner[r] = o, key_idx[p], partner_idx[p]
    return ptr, offset, voxel, partner


def pairs_by_voxel(
    key_idx: torch.Tensor,
    partner_idx: torch.Tensor,
    offset_ptr: torch.Tensor,
    num_keys: int,
    block: int = 1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(ptr [G + 1] int64, offset [P] int32, voxel [P] int32, partner [P] int32)``: the pairs of
    a kernel map (``key_idx``, ``partner_idx`` grouped by offset, ``offset_ptr [K + 1]``; the input
    and output rows, in either role) ordered by group of ``block`` consecutive key voxels, then
    offset; group ``g``'s pairs (key voxels ``g block`` to ``(g + 1) block - 1``) are ``ptr[g]:ptr[g
    + 1]``, ``voxel`` their key voxels. A counting sort, O(P), several times faster than a stable
    ``argsort`` of the keys. Computed on the CPU, returned on ``key_idx``'s device."""
    arrays = (t.detach().cpu().numpy() for t in (key_idx, partner_idx, offset_ptr))
    return tuple(
        torch.from_numpy(a).to(key_idx.device) for a in _pairs_by_voxel(*arrays, num_keys, block)
    )


#: offsets whose pair count is at least this share of a block's longest join that block (padding
#: at most 1/0.75 = 1.33x); see :func:`padded_layout`
_BLOCK_FILL = 0.75


@numba.njit(**OPTS)
def _padded_layout(offset_ptr, in_idx, out_idx, active, skip_offset, pad_out, fill):
    K = offset_ptr.shape[0] - 1
    counts = np.zeros(K, np.int64)
    for o in range(K):
        if o != skip_offset:
            for p in range(offset_ptr[o], offset_ptr[o + 1]):
                if active[in_idx[p]]:
                    counts[o] += 1
    nonzero = np.nonzero(counts)[0]
    offsets = nonzero[np.argsort(-counts[nonzero], kind="mergesort")]  # longest first
    # blocks: consecutive offsets of similar length, padded to the block's first (longest)
    blocks = np.empty((offsets.shape[0], 3), np.int64)  # (first row, rows, width)
    row_start = np.empty(offsets.shape[0], np.int64)  # of each offset's row in the padded arrays
    num_blocks, total, r = 0, 0, 0
    while r < offsets.shape[0]:
        width = counts[offsets[r]]
        end = r + 1
        while end < offsets.shape[0] and counts[offsets[end]] >= fill * width:
            end += 1
        blocks[num_blocks, 0], blocks[num_blocks, 1], blocks[num_blocks, 2] = r, end - r, width
        num_blocks += 1
        for k in range(r, end):
            row_start[k] = total + (k - r) * width
        total += (end - r) * width
        r = end
    padded_in = np.zeros(total, np.int64)
    padded_out = np.full(total, pad_out, np.int64)
    for r in range(offsets.shape[0]):
        o = offsets[r]
        q = row_start[r]
        for p in range(offset_ptr[o], offset_ptr[o + 1]):
            if active[in_idx[p]]:
                padded_in[q] = in_idx[p]
                padded_out[q] = out_idx[p]
                q += 1
    return offsets, padded_in, padded_out, blocks[:num_blocks].copy()


def padded_layout(
    offset_ptr: torch.Tensor,
    in_idx: torch.Tensor,
    out_idx: torch.Tensor,
    active: torch.Tensor,
    skip_offset: int,
    pad_out: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple]:
    """``(offsets [G], padded_in [R], padded_out [R], blocks)``: the pairs with an ``active`` input,
    offset ``skip_offset`` left out, one row per offset that has pairs, longest first. Rows are
    grouped into blocks of similar length, each padded to its longest: ``blocks`` holds ``(first
    row, rows, width)`` per block, and block ``b`` takes ``rows x width`` consecutive entries of
    ``padded_in`` / ``padded_out``. Padding entries are input 0 / output ``pad_out``.

    Why blocks: one block padded to the longest offset (one batched matmul for all) did 1.5-1.8x
    the real pairs on real ModelNet40 clouds, whose surfaces make some directions far more common;
    with blocks filled to at least 75% the padding is at most 1.33x, for a few more matmuls.
    Computed on the CPU, returned on ``in_idx``'s device."""
    arrays = (t.detach().cpu().numpy() for t in (offset_ptr, in_idx, out_idx, active))
    offsets, padded_in, padded_out, blocks = _padded_layout(
        *arrays, skip_offset, pad_out, _BLOCK_FILL
    )
    device = in_idx.device
    return (
        torch.from_numpy(offsets).to(device),
        torch.from_numpy(padded_in).to(device),
        torch.from_numpy(padded_out).to(device),
        tuple(tuple(int(v) for v in b) for b in blocks),
    )
