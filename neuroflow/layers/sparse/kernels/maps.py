"""numba loops that build kernel maps: neighbour search, strided output cells, pair lists.

* :func:`submanifold_found`: each voxel's neighbour at every kernel shift, from the voxels' sorted
  linear keys, one merge-like sweep per z-column of shifts (memory O(N), any grid size);
* :func:`strided_found`: the output cell each input feeds through every kernel position, the cells
  collected in an open-addressing hash table and numbered in key order (batch, x, y, z);
* :func:`found_pairs`: the ``[K, N]`` lookup table of either as per-offset pair lists.

Large maps split over numba's threads (from :data:`MAP_PARALLEL_MIN` entries), with the
one-thread result bit for bit.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from neuroflow.errors import InvalidArgumentError
from neuroflow.parallel import OPTS, compiled, run_split


# a copy of the one in events.py: numba's cache would not see an edit made in another file
@numba.njit(inline="always", **OPTS)
def _part(n, t, parts):
    """Range ``[lo, hi)`` of part ``t`` of ``parts`` over ``n`` items."""
    return n * t // parts, n * (t + 1) // parts


@numba.njit(inline="always", **OPTS)
def _slot(key, mask):
    # Fibonacci hashing of a 63-bit key into a power-of-two table
    return ((np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(20)) & np.uint64(mask)


@numba.njit(**OPTS)
def _new_table(n):
    size = 1
    while size < 2 * n:
        size *= 2
    return np.full(size, -1, np.int64), np.empty(size, np.int64)


@numba.njit(inline="always", **OPTS)
def _lookup(table_keys, table_rows, key, insert_row):
    """Row stored for ``key``; if absent, store ``insert_row`` (when >= 0) and return it, else -1.
    Inlined: the map builders call it once per (voxel, offset)."""
    mask = np.uint64(table_keys.shape[0] - 1)
    h = _slot(key, mask)
    while True:
        stored = table_keys[h]
        if stored == key:
            return table_rows[h]
        if stored == -1:
            break
        h = (h + np.uint64(1)) & mask
    if insert_row >= 0:
        table_keys[h] = key
        table_rows[h] = insert_row
    return insert_row


@numba.njit(**OPTS)
def _largest_shift(shift):
    return np.max(np.abs(shift))


def _submanifold_found_body(coords, shape, shift, parts):
    """``(found [K, N], duplicate [2])``: row of voxel ``i``'s neighbour at ``shift[o]``, or -1, and
    ``(-1, -1)``; or, when two rows of ``coords`` are the same voxel, an empty ``found`` and the
    two rows.

    The voxels' keys are sorted once. The shifts are grouped by their (x, y) part: a group's
    targets lie in one z-column of the grid, so one merge-like sweep of the sorted keys per group
    finds them all (a 3x3x3 kernel: 9 sweeps, not 27), with sequential memory access. When the
    shifts come in opposite pairs (``shift[K - 1 - o] = -shift[o]``, as for every odd kernel
    centred on the voxel) each neighbour found gives its mirror pair too (j is i's neighbour at
    ``s`` exactly when i is j's at ``-s``), so only the first half of the offsets is swept (5
    sweeps for 3x3x3), and the zero shift needs none. ``parts`` split the sorted voxels.
    """
    n, K = coords.shape[0], shift.shape[0]
    X, Y, Z = shape[0], shape[1], shape[2]
    keys = np.empty(n, np.int64)
    for i in range(n):
        keys[i] = ((coords[i, 0] * X + coords[i, 1]) * Y + coords[i, 2]) * Z + coords[i, 3]
    ascending = True
    for i in range(1, n):
        ascending &= keys[i - 1] < keys[i]
    # voxelised clouds arrive sorted (numba's mergesort of sorted keys still costs a pass or more)
    order = np.arange(n) if ascending else np.argsort(keys, kind="mergesort")
    sorted_keys = keys if ascending else keys[order]
    if (
        not ascending
    ):  # strictly ascending keys have no duplicates: only unsorted ones pay this pass
        for r in range(1, n):
            if sorted_keys[r] == sorted_keys[r - 1]:
                return np.empty((0, n), np.int32), np.array([order[r - 1], order[r]], np.int64)
    mirrored = True
    for o in range(K):
        for a in range(3):
            mirrored &= shift[K - 1 - o, a] == -shift[o, a]
    found = np.full((K, n), -1, np.int32)  # rows < 2^31: half the memory traffic of int64
    swept = np.empty(K, np.int64)  # the offsets to sweep, then sorted by (dx, dy, dz)
    count = 0
    for o in range(K):
        zero = shift[o, 0] == 0 and shift[o, 1] == 0 and shift[o, 2] == 0
        if mirrored and zero:
            for i in range(n):
                found[o, i] = i
        elif not mirrored or o < K - 1 - o:  # the others are filled while sweeping their mirror
            swept[count] = o
            count += 1
    span = 2 * _largest_shift(shift) + 1 if K else 1
    rank = np.empty(count, np.int64)
    for g in range(count):
        o = swept[g]
        rank[g] = (
            ((shift[o, 0] + span) * 2 * span + shift[o, 1] + span) * 2 * span + shift[o, 2] + span
        )
    swept = swept[:count][np.argsort(rank, kind="mergesort")]
    groups = np.empty((count, 2), np.int64)  # [first, last) of each z-column group of swept
    num_groups = 0
    first = 0
    while first < count:
        last = first + 1
        while (
            last < count
            and shift[swept[last], 0] == shift[swept[first], 0]
            and shift[swept[last], 1] == shift[swept[first], 1]
        ):
            last += 1
        groups[num_groups, 0], groups[num_groups, 1] = first, last
        num_groups += 1
        first = last
    # each part sweeps its range of the sorted voxels for every group; a mirror entry
    # found[K - 1 - o, j] has one writer (the voxel at j - shift[o]), so parts never collide
    for t in numba.prange(parts):
        lo, hi = _part(n, t, parts)
        for gi in range(num_groups):
            first, last = groups[gi, 0], groups[gi, 1]
            dx, dy, dz_low = shift[swept[first], 0], shift[swept[first], 1], shift[swept[first], 2]
            column = (dx * Y + dy) * Z  # key offset of the group's (x, y) part
            # j: the first key at or after the lowest target of the voxels swept so far; later
            # voxels' targets are higher, so it only moves forward
            j = np.searchsorted(sorted_keys, sorted_keys[lo] + column + dz_low) if lo < hi else n
            for r in range(lo, hi):
                i = order[r]
                x, y, z = coords[i, 1] + dx, coords[i, 2] + dy, coords[i, 3]
                if not (0 <= x < X and 0 <= y < Y):
                    continue
                base = sorted_keys[r] + column
                low = base + dz_low
                while j < n and sorted_keys[j] < low:
                    j += 1
                k = j
                for g in range(first, last):  # ascending dz: k moves forward too
                    o = swept[g]
                    dz = shift[o, 2]
                    if not 0 <= z + dz < Z:
                        continue
                    target = base + dz
                    while k < n and sorted_keys[k] < target:
                        k += 1
                    if k < n and sorted_keys[k] == target:
                        found[o, i] = order[k]
                        if mirrored:
                            found[K - 1 - o, order[k]] = i
    return found, np.full(2, -1, np.int64)


@numba.njit(**OPTS)
def _strided_found(coords, out_shape, positions, stride, max_out):
    """``(found [K, N], out_coords [M, 4])``: the output row input ``i`` feeds through kernel
    position ``o`` (or -1); outputs in key order (batch, x, y, z). ``max_out`` bounds the number
    of outputs (the table must never fill).

    Input ``c`` feeds cell ``q_out`` through position ``p`` (per axis) when ``c - p = stride
    q_out``: writing ``c = stride q + r`` and ``p = stride pq + pr`` (``0 <= r, pr < stride``), when
    ``r == pr``, and then ``q_out = q - pq``. So the voxels are bucketed once by their remainders
    (all three axes in one code), and each position visits only its bucket, in voxel order; no
    division in the loop (a division per axis, position and voxel took most of the time).
    """
    n, K = coords.shape[0], positions.shape[0]
    s0, s1, s2 = stride[0], stride[1], stride[2]
    quotient = np.empty((n, 3), np.int64)
    bucket_ptr = np.zeros(s0 * s1 * s2 + 1, np.int64)
    code = np.empty(n, np.int64)
    for i in range(n):
        rem = 0
        for a in range(3):
            quotient[i, a] = coords[i, a + 1] // stride[a]
            rem = rem * stride[a] + coords[i, a + 1] - quotient[i, a] * stride[a]
        code[i] = rem
        bucket_ptr[rem + 1] += 1
    for c in range(s0 * s1 * s2):
        bucket_ptr[c + 1] += bucket_ptr[c]
    bucket = np.empty(n, np.int64)
    fill = bucket_ptr[:-1].copy()
    for i in range(n):  # stable: each bucket keeps the voxel order
        bucket[fill[code[i]]] = i
        fill[code[i]] += 1
    table_keys, table_rows = _new_table(max_out)
    found = np.full((K, n), -1, np.int32)  # rows < 2^31: half the memory traffic of int64
    out_coords = np.empty((max_out, 4), np.int64)
    m = 0
    for o in range(K):
        px, py, pz = positions[o, 0] // s0, positions[o, 1] // s1, positions[o, 2] // s2
        rem = (
            ((positions[o, 0] - px * s0) * s1 + positions[o, 1] - py * s1) * s2
            + positions[o, 2]
            - pz * s2
        )
        for b in range(bucket_ptr[rem], bucket_ptr[rem + 1]):
            i = bucket[b]
            qx, qy, qz = quotient[i, 0] - px, quotient[i, 1] - py, quotient[i, 2] - pz
            if not (0 <= qx < out_shape[0] and 0 <= qy < out_shape[1] and 0 <= qz < out_shape[2]):
                continue
            key = ((coords[i, 0] * out_shape[0] + qx) * out_shape[1] + qy) * out_shape[2] + qz
            row = _lookup(table_keys, table_rows, key, m)
            if row == m:
                out_coords[m, 0], out_coords[m, 1], out_coords[m, 2], out_coords[m, 3] = (
                    coords[i, 0],
                    qx,
                    qy,
                    qz,
                )
                m += 1
            found[o, i] = row
    # renumber the outputs in key order (batch, x, y, z), the order of voxelised inputs: the next
    # submanifold map then finds its keys sorted (no argsort, sequential sweeps), and the
    # convolutions after it read neighbouring voxels from neighbouring rows
    keys = np.empty(m, np.int64)
    for r in range(m):
        keys[r] = (
            (out_coords[r, 0] * out_shape[0] + out_coords[r, 1]) * out_shape[1] + out_coords[r, 2]
        ) * out_shape[2] + out_coords[r, 3]
    order = np.argsort(keys, kind="mergesort")
    rank = np.empty(m, np.int32)
    for r in range(m):
        rank[order[r]] = r
    for o in range(K):
        for i in range(n):
            if found[o, i] >= 0:
                found[o, i] = rank[found[o, i]]
    return found, out_coords[order]


def _found_pairs_body(found, parts):
    # the entries >= 0 of found [K, N] in row-major order: per row o, their columns and values; each
    # row written branch-free (a branch per entry is taken at random: mispredicted), the rows split
    # over `parts`
    K, n = found.shape
    counts = np.empty(K + 1, np.int64)
    counts[0] = 0
    for o in numba.prange(K):
        c = 0
        for j in range(n):
            c += found[o, j] >= 0
        counts[o + 1] = c
    for o in range(K):
        counts[o + 1] += counts[o]
    columns = np.empty(counts[-1], np.int64)
    values = np.empty(counts[-1], np.int64)
    for o in numba.prange(K):
        r, end = counts[o], counts[o + 1]
        for j in range(n):
            if r == end:  # row o complete: a further (unkept) write would land in row o + 1's slots
                break
            value = found[o, j]
            columns[r], values[r] = j, value
            r += value >= 0
    return counts, columns, values


_found_pairs = compiled(_found_pairs_body, "_found_pairs")
_found_pairs_parallel = compiled(_found_pairs_body, "_found_pairs_parallel", parallel=True)
_submanifold_found = compiled(_submanifold_found_body, "_submanifold_found")
_submanifold_found_parallel = compiled(
    _submanifold_found_body, "_submanifold_found_parallel", parallel=True
)
#: kernel-map entries (voxels x offsets) from which the map builders split over numba's threads
MAP_PARALLEL_MIN = 1 << 16


def _map_threads(entries: int) -> int:
    """Threads for a kernel-map step over ``entries`` (voxels x offsets): torch's, from
    :data:`MAP_PARALLEL_MIN` on."""
    return torch.get_num_threads() if entries >= MAP_PARALLEL_MIN else 1


def found_pairs(found: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(offset_ptr [K + 1], columns [P], values [P])``, int64 on ``found``'s device: the entries
    ``found[o, j] >= 0`` of a ``[K, N]`` lookup table (:func:`submanifold_found`,
    :func:`strided_found`) in row-major order, row ``o``'s entries at ``offset_ptr[o]:offset_ptr[o +
    1]``. One numba pass where ``nonzero``, a gather and a ``bincount`` took three."""
    found_np = found.cpu().numpy()
    arrays = run_split(_found_pairs, _found_pairs_parallel, _map_threads(found_np.size), found_np)
    return tuple(torch.from_numpy(a).to(found.device) for a in arrays)


def submanifold_found(
    coords: torch.Tensor, spatial_shape: tuple[int, int, int], shift: torch.Tensor
) -> torch.Tensor:
    """``[K, N]`` int32: for each kernel shift ``[K, 3]`` and voxel ``i`` of ``coords [N, 4]``,
    the row of the voxel at ``coords[i] + shift`` (same sample), or -1; InvalidArgumentError if
    two rows are the same voxel. The voxels' keys sorted once, then one merge-like sweep per
    z-column of shifts (memory O(N), any grid size): sequential reads, where a hash table of the
    voxels probes at random (the measured alternatives are in ``docs/sparse_convolution.md``)."""
    coords_np = coords.cpu().numpy()
    found, duplicate = run_split(
        _submanifold_found,
        _submanifold_found_parallel,
        _map_threads(coords_np.shape[0] * shift.shape[0]),
        coords_np,
        np.asarray(spatial_shape, np.int64),
        shift.cpu().numpy(),
    )
    if duplicate[0] >= 0:
        i, j = duplicate.tolist()
        raise InvalidArgumentError(
            f"coords rows {i} and {j} are the same voxel {tuple(coords_np[i].tolist())} "
            "(batch, x, y, z): a sparse tensor needs one row per occupied voxel (merge the "
            "duplicates' features first)"
        )
    return torch.from_numpy(found).to(coords.device)


def strided_found(
    coords: torch.Tensor,
    out_shape: tuple[int, int, int],
    positions: torch.Tensor,
    stride: tuple[int, int, int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(found [K, N], out_coords [M, 4])``: for kernel position ``positions[o]`` and input voxel
    ``i``, the output cell ``q`` with ``coords[i] = stride q + positions[o]`` (row of
    ``out_coords``) or -1; the output cells are collected in a hash table (memory O(N K)), then
    numbered in key order (batch, x, y, z)."""
    # an input lies in the receptive fields of at most prod(ceil(k / s)) outputs
    kernel = positions.amax(0).cpu() + 1
    fan = int(torch.prod(-(-kernel // torch.tensor(stride)))) if positions.numel() else 1
    found, out_coords = _strided_found(
        coords.cpu().numpy(),
        np.asarray(out_shape, np.int64),
        positions.cpu().numpy(),
        np.asarray(stride, np.int64),
        max(1, coords.shape[0] * fan),
    )
    return torch.from_numpy(found).to(coords.device), torch.from_numpy(out_coords).to(coords.device)
