"""Kernel maps of sparse 3-D convolutions, built by coordinate hashing.

A kernel map lists, for every kernel offset ``o``, the pairs ``(in_idx, out_idx)`` of voxel rows
such that input voxel ``in_idx`` feeds output voxel ``out_idx`` through weight ``W[o]``. A sparse
convolution is then ``y[out] += x[in] @ W[o]`` over all pairs (gather -> matmul -> scatter).

Geometry (cross-correlation, as ``torch.nn.functional.conv3d``), kernel offset ``o = (a k + b) k + c``
for kernel position ``(a, b, c)`` along ``(x, y, z)``:

* submanifold (``submanifold=True``, odd ``k``, stride 1): outputs are exactly the input sites;
  ``y[p] = sum_o W[o] x[p + dilation ((a, b, c) - k // 2)]`` (conv3d with padding
  ``dilation (k // 2)``, sampled at the active sites).
* strided (``submanifold=False``, padding 0): ``y[q] = sum_o W[o] x[stride q + dilation (a, b, c)]``;
  an output site is active when any input in its receptive field is (for k = s = 2: any input in
  its 2x2x2 cell). The output grid has ``ceil((X - dilation (k - 1) - 1) / s) + 1`` cells per axis,
  i.e. conv3d over the input zero-padded at the high end so that no input voxel is dropped.

Coordinates are hashed to linear keys ``((b X + x) Y + y) Z + z``. A neighbour is found by binary
search in the sorted keys (memory O(N), any grid size), or, where the whole index grid has at most
:data:`DENSE_LOOKUP_MAX_CELLS` cells, by a dense ``int32`` index volume (faster; bounded memory).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property

import torch

from neuroflow.errors import InvalidArgumentError
from neuroflow.layers.sparse_cpu_kernels import padded_layout

#: largest B*X*Y*Z for which neighbours are looked up in a dense int32 index volume (16 MiB)
DENSE_LOOKUP_MAX_CELLS = 1 << 22


@dataclass(frozen=True)
class KernelMap:
    """Input -> output voxel pairs of one convolution geometry.

    Attributes:
        in_idx, out_idx: ``[P]`` int64 pair lists, sorted by (offset, out_idx).
        offset_ptr: ``[K + 1]`` int64; the pairs of offset ``o`` are ``offset_ptr[o]:offset_ptr[o + 1]``.
        t_in_idx, t_out_idx: the same pairs sorted by (offset, in_idx), same ``offset_ptr``
            (the transposed map, used by the backward pass to accumulate input gradients per input).
        out_coords: ``[M, 4]`` int64 output coordinates (the input coordinates if submanifold).
        out_spatial_shape: output grid size.
        num_in: number of input voxels ``N``.
        center: offset index whose pairs are exactly ``(i, i)`` for every voxel (submanifold
            odd kernels: ``K // 2``), else -1; that offset is one dense matmul.
    """

    in_idx: torch.Tensor
    out_idx: torch.Tensor
    offset_ptr: torch.Tensor
    t_in_idx: torch.Tensor
    t_out_idx: torch.Tensor
    out_coords: torch.Tensor
    out_spatial_shape: tuple[int, int, int]
    num_in: int
    center: int

    @property
    def kernel_volume(self) -> int:
        return self.offset_ptr.numel() - 1

    @property
    def num_out(self) -> int:
        return self.out_coords.shape[0]

    @property
    def num_pairs(self) -> int:
        return self.in_idx.numel()

    def pairs(self, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(in_idx, out_idx)`` of kernel offset ``offset`` (views, sorted by ``out_idx``)."""
        lo, hi = int(self.offset_ptr[offset]), int(self.offset_ptr[offset + 1])
        return self.in_idx[lo:hi], self.out_idx[lo:hi]

    @cached_property
    def grouped(self) -> "GroupedPairs":
        """All non-centre pairs, one padded row per offset (see :func:`group_pairs`)."""
        return group_pairs(self, None)

    def fan_out(self) -> torch.Tensor:
        """``[N]`` number of (offset, output) pairs each input voxel feeds."""
        return torch.bincount(self.in_idx, minlength=self.num_in)


@dataclass(frozen=True)
class GroupedPairs:
    """Pairs of the non-centre offsets laid out ``[G, P]`` (one row per offset, padded to the
    longest) so that one batched matmul serves all offsets.

    Padding entries gather input row 0 and scatter into the dump row ``num_out`` (callers allocate
    ``num_out + 1`` output rows), so they never touch a real output.
    """

    offsets: torch.Tensor  # [G] kernel offset of each row
    in_idx: torch.Tensor  # [G * P]
    out_idx: torch.Tensor  # [G * P]
    width: int  # P


def group_pairs(kmap: "KernelMap", active: torch.Tensor | None) -> GroupedPairs:
    """Padded per-offset layout of the pairs, without the centre offset, keeping only the pairs
    whose input row is ``active`` (``[N]`` bool; ``None`` = all)."""
    if active is None:
        active = torch.ones(kmap.num_in, dtype=torch.bool, device=kmap.in_idx.device)
    return GroupedPairs(*padded_layout(kmap.offset_ptr, kmap.in_idx, kmap.out_idx, active, kmap.center, kmap.num_out))


def triple(value: int | tuple[int, int, int], name: str) -> tuple[int, int, int]:
    """``k`` or ``(kx, ky, kz)`` -> a 3-tuple of positive ints."""
    values = (value,) * 3 if isinstance(value, int) and not isinstance(value, bool) else value
    if (not isinstance(values, (tuple, list)) or len(values) != 3
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values)):
        raise InvalidArgumentError(f"{name} must be a positive int or 3 positive ints, got {name}={value!r}")
    return tuple(int(v) for v in values)


def linear_keys(coords: torch.Tensor, spatial_shape: tuple[int, int, int]) -> torch.Tensor:
    """``[N, 4]`` (b, x, y, z) -> ``[N]`` int64 keys ``((b X + x) Y + y) Z + z``."""
    X, Y, Z = spatial_shape
    return ((coords[..., 0] * X + coords[..., 1]) * Y + coords[..., 2]) * Z + coords[..., 3]


class _Lookup:
    """Key -> row index (or -1) for the keys of one coordinate set."""

    def __init__(self, keys: torch.Tensor, num_cells: int):
        self.dense = num_cells <= DENSE_LOOKUP_MAX_CELLS
        if self.dense:
            self.volume = torch.full((num_cells,), -1, dtype=torch.int32, device=keys.device)
            self.volume[keys] = torch.arange(keys.numel(), dtype=torch.int32, device=keys.device)
        else:
            self.sorted_keys, self.order = torch.sort(keys)

    def __call__(self, query: torch.Tensor) -> torch.Tensor:
        if self.dense:
            return self.volume[query].long()
        pos = torch.searchsorted(self.sorted_keys, query).clamp_(max=self.sorted_keys.numel() - 1)
        return torch.where(self.sorted_keys[pos] == query, self.order[pos], -1)


def _kernel_positions(kernel_size, dilation, device) -> torch.Tensor:
    """``[K, 3]`` int64 kernel positions ``dilation * (a, b, c)`` in offset order (x slowest)."""
    grid = itertools.product(*(range(k) for k in kernel_size))
    return torch.tensor(list(grid), dtype=torch.int64, device=device) * torch.tensor(dilation, device=device)


def _check_key_range(batch_size: int, spatial_shape) -> int:
    cells = batch_size
    for s in spatial_shape:
        cells *= s
    if cells >= 1 << 62:
        raise InvalidArgumentError(
            f"grid too large to hash: batch_size x spatial_shape = {batch_size} x {tuple(spatial_shape)} >= 2^62 cells"
        )
    return cells


def build_kernel_map(
    coords: torch.Tensor,
    spatial_shape: tuple[int, int, int],
    batch_size: int,
    kernel_size: int | tuple[int, int, int],
    stride: int | tuple[int, int, int] = 1,
    dilation: int | tuple[int, int, int] = 1,
    submanifold: bool = True,
) -> KernelMap:
    """Kernel map of a convolution over the voxels ``coords [N, 4]`` (unique rows, in range).

    Memory is O(N K) for the pairs plus O(N) for the hash (or a dense index volume of at most
    :data:`DENSE_LOOKUP_MAX_CELLS` cells); no feature grid is allocated. See the module docstring
    for the geometry.
    """
    k, s, d = triple(kernel_size, "kernel_size"), triple(stride, "stride"), triple(dilation, "dilation")
    device = coords.device
    coords = coords.to(torch.int64)
    shape = tuple(int(v) for v in spatial_shape)
    n = coords.shape[0]
    positions = _kernel_positions(k, d, device)  # [K, 3]
    K = positions.shape[0]
    if submanifold:
        if s != (1, 1, 1) or any(v % 2 == 0 for v in k):
            raise InvalidArgumentError(
                f"a submanifold convolution needs an odd kernel_size and stride 1, got kernel_size={k}, stride={s}"
            )
        shift = positions - torch.tensor([dk * (kk // 2) for kk, dk in zip(k, d)], device=device)
        lookup = _Lookup(linear_keys(coords, shape), _check_key_range(batch_size, shape))
        neighbour = coords[None, :, 1:] + shift[:, None, :]  # [K, N, 3]
        inside = ((neighbour >= 0) & (neighbour < torch.tensor(shape, device=device))).all(-1)
        neighbour = torch.cat([coords[None, :, :1].expand(K, n, 1), neighbour], -1)
        found = lookup(torch.where(inside, linear_keys(neighbour, shape), 0))
        found = torch.where(inside, found, -1)
        offset, out_idx = torch.nonzero(found >= 0, as_tuple=True)  # row-major: sorted by (offset, out)
        in_idx = found[offset, out_idx]
        out_coords, out_shape = coords, shape
        center = K // 2
    else:
        out_shape = tuple(max(0, -(-(X - dk * (kk - 1) - 1) // ss)) + 1 for X, kk, ss, dk in zip(shape, k, s, d))
        _check_key_range(batch_size, out_shape)
        # input x feeds output q through position a when x = s q + a, 0 <= q < out_shape
        rel = coords[None, :, 1:] - positions[:, None, :]  # [K, N, 3]
        step = torch.tensor(s, device=device)
        q = torch.div(rel, step, rounding_mode="floor")
        inside = (q >= 0).all(-1) & (q < torch.tensor(out_shape, device=device)).all(-1)
        valid = ((rel - q * step) == 0).all(-1) & inside
        offset, in_idx = torch.nonzero(valid, as_tuple=True)
        q = torch.cat([coords[in_idx, :1], q[offset, in_idx]], 1)
        out_keys, out_idx = torch.unique(linear_keys(q, out_shape), sorted=True, return_inverse=True)
        out_coords = torch.empty((out_keys.numel(), 4), dtype=torch.int64, device=device)
        out_coords[out_idx] = q
        order = torch.argsort(offset * out_keys.numel() + out_idx)
        offset, in_idx, out_idx = offset[order], in_idx[order], out_idx[order]
        center = -1
    offset_ptr = torch.zeros(K + 1, dtype=torch.int64, device=device)
    offset_ptr[1:] = torch.cumsum(torch.bincount(offset, minlength=K), 0)
    t_order = torch.argsort(offset * max(n, 1) + in_idx)
    return KernelMap(
        in_idx=in_idx, out_idx=out_idx, offset_ptr=offset_ptr,
        t_in_idx=in_idx[t_order], t_out_idx=out_idx[t_order],
        out_coords=out_coords, out_spatial_shape=out_shape, num_in=n, center=center,
    )
