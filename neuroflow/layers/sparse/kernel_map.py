"""Kernel maps of sparse 3-D convolutions, built from linear coordinate keys.

A kernel map lists, for every kernel offset ``o``, the pairs ``(in_idx, out_idx)`` of voxel rows
such that input voxel ``in_idx`` feeds output voxel ``out_idx`` through weight ``W[o]``. A sparse
convolution is then ``y[out] += x[in] @ W[o]`` over all pairs (gather -> matmul -> scatter).

Geometry (cross-correlation, as ``torch.nn.functional.conv3d``), kernel offset
``o = (a k + b) k + c`` for kernel position ``(a, b, c)`` along ``(x, y, z)``:

* submanifold (``submanifold=True``, odd ``k``, stride 1): outputs are exactly the input sites;
  ``y[p] = sum_o W[o] x[p + dilation ((a, b, c) - k // 2)]`` (conv3d with padding
  ``dilation (k // 2)``, sampled at the active sites).
* strided (``submanifold=False``, padding 0):
  ``y[q] = sum_o W[o] x[stride q + dilation (a, b, c)]``; an output site is active when any input
  in its receptive field is (for k = s = 2: any input in its 2x2x2 cell). The output grid has
  ``ceil((X - dilation (k - 1) - 1) / s) + 1`` cells per axis, i.e. conv3d over the input
  zero-padded at the high end so that no input voxel is dropped.

Coordinates become linear keys ``((b X + x) Y + y) Z + z``. Submanifold neighbours are found by
sorting the N keys once and sweeping them once per z-column of kernel shifts (a key shifted by a
constant stays sorted), the voxels split over numba's threads; strided output cells are collected
in an open-addressing hash table, then numbered in key order (batch, x, y, z), the order of
voxelised inputs, so that the next stage's submanifold map finds them sorted too. Both are numba
loops with memory O(N) whatever the grid size: no dense index or feature grid is allocated.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property

import torch

from neuroflow.errors import InvalidArgumentError
from neuroflow.layers.sparse.kernels.layout import padded_layout, pairs_by_voxel
from neuroflow.layers.sparse.kernels.maps import found_pairs, strided_found, submanifold_found

#: output rows per group of :attr:`KernelMap.by_output`. The event-driven kernel walks the pairs
#: in one flat loop, group by group, each group's pairs by offset (so each weight offset is read
#: once per group); faster than a loop per output row, and than groups of 256 rows on real clouds
#: (``docs/sparse_convolution.md``).
OUTPUT_BLOCK = 64


@dataclass(frozen=True)
class KernelMap:
    """Input -> output voxel pairs of one convolution geometry.

    Attributes:
        in_idx, out_idx: ``[P]`` int64 pair lists grouped by offset (submanifold: sorted by
            (offset, out_idx); strided: by (offset, in_idx)).
        offset_ptr: ``[K + 1]`` int64; the pairs of offset ``o`` are
            ``offset_ptr[o]:offset_ptr[o + 1]``.
        out_coords: ``[M, 4]`` int64 output coordinates (the input coordinates if submanifold).
        out_spatial_shape: output grid size.
        num_in: number of input voxels ``N``.
        center: offset index whose pairs are exactly ``(i, i)`` for every voxel (submanifold
            odd kernels: ``K // 2``), else -1; that offset is one dense matmul.
    """

    in_idx: torch.Tensor
    out_idx: torch.Tensor
    offset_ptr: torch.Tensor
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
        """``(in_idx, out_idx)`` of kernel offset ``offset`` (views)."""
        lo, hi = int(self.offset_ptr[offset]), int(self.offset_ptr[offset + 1])
        return self.in_idx[lo:hi], self.out_idx[lo:hi]

    @cached_property
    def grouped(self) -> GroupedPairs:
        """All non-centre pairs, one padded row per offset (see :func:`group_pairs`)."""
        return group_pairs(self, None)

    @cached_property
    def pair_arrays(self) -> tuple:
        """``(in_idx, out_idx, offset_ptr)`` as numpy arrays sharing the tensors' memory (CPU only),
        made once: the event kernels' weight gradient takes them on every call."""
        return self.in_idx.numpy(), self.out_idx.numpy(), self.offset_ptr.numpy()

    @cached_property
    def by_output(self) -> PairsByVoxel:
        """The pairs in blocks of :data:`OUTPUT_BLOCK` output rows, by offset within a block, each
        with its input row as ``partner``: for the event-driven forward in inference."""
        return PairsByVoxel(
            *pairs_by_voxel(self.out_idx, self.in_idx, self.offset_ptr, self.num_out, OUTPUT_BLOCK),
            block=OUTPUT_BLOCK,
        )

    @cached_property
    def by_input_blocks(self) -> PairsByVoxel:
        """The pairs in blocks of :data:`OUTPUT_BLOCK` input rows, by offset within a block, each
        with its output row as ``partner``: the layout of the transposed convolution, for the
        input gradient ``grad_x[i] = sum over i's pairs of grad_y[out] @ W[o]^T``."""
        return PairsByVoxel(
            *pairs_by_voxel(self.in_idx, self.out_idx, self.offset_ptr, self.num_in, OUTPUT_BLOCK),
            block=OUTPUT_BLOCK,
        )

    def has_pairs_by_output(self) -> bool:
        """Whether :attr:`by_output` has been built (it is cached on first use)."""
        return "by_output" in self.__dict__

    def fan_out(self) -> torch.Tensor:
        """``[N]`` number of (offset, output) pairs each input voxel feeds."""
        return torch.bincount(self.in_idx, minlength=self.num_in)


@dataclass(frozen=True)
class PairsByVoxel:
    """The pairs of a kernel map ordered by one end (inputs or outputs), in groups of ``block``
    consecutive voxels of that end and by kernel offset within a group: group ``g``'s pairs are
    ``ptr[g]:ptr[g + 1]``, each with its ``offset``, its ``voxel`` at the ordered end and the row
    at the other end, ``partner``."""

    ptr: torch.Tensor  # [ceil(N / block) + 1] int64
    offset: torch.Tensor  # [P] int32
    voxel: torch.Tensor  # [P] int32
    partner: torch.Tensor  # [P] int32
    block: int

    @cached_property
    def arrays(self) -> tuple:
        """``(ptr, offset, voxel, partner)`` as numpy arrays sharing the tensors' memory (CPU only),
        made once: the event kernels take them on every call."""
        return self.ptr.numpy(), self.offset.numpy(), self.voxel.numpy(), self.partner.numpy()


@dataclass(frozen=True)
class GroupedPairs:
    """Pairs of the non-centre offsets, one padded row per offset, in blocks of rows of similar
    length (see :func:`~neuroflow.layers.sparse.kernels.layout.padded_layout`), so that one batched
    matmul serves each block.

    Padding entries gather input row 0 and scatter into the dump row ``num_out`` (callers allocate
    ``num_out + 1`` output rows), so they never touch a real output.
    """

    offsets: torch.Tensor  # [G] kernel offset of each row
    in_idx: torch.Tensor  # [R] the padded rows, block after block
    out_idx: torch.Tensor  # [R]
    blocks: tuple[tuple[int, int, int], ...]  # (first row, rows G_b, width P_b) per block

    def split(self):
        """Per block: ``(its offsets [G_b], its slice of the padded entries, (G_b, P_b))``."""
        start = 0
        for first, rows, width in self.blocks:
            entries = slice(start, start + rows * width)
            yield self.offsets[first : first + rows], entries, (rows, width)
            start = entries.stop


def group_pairs(kmap: KernelMap, active: torch.Tensor | None) -> GroupedPairs:
    """Padded per-offset layout of the pairs, without the centre offset, keeping only the pairs
    whose input row is ``active`` (``[N]`` bool; ``None`` = all)."""
    if active is None:
        active = torch.ones(kmap.num_in, dtype=torch.bool, device=kmap.in_idx.device)
    return GroupedPairs(
        *padded_layout(
            kmap.offset_ptr, kmap.in_idx, kmap.out_idx, active, kmap.center, kmap.num_out
        )
    )


def triple(value: int | tuple[int, int, int], name: str) -> tuple[int, int, int]:
    """``k`` or ``(kx, ky, kz)`` -> a 3-tuple of positive ints."""
    values = (value,) * 3 if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        not isinstance(values, (tuple, list))
        or len(values) != 3
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values)
    ):
        raise InvalidArgumentError(
            f"{name} must be a positive int or 3 positive ints, got {name}={value!r}"
        )
    return tuple(int(v) for v in values)


def _kernel_positions(kernel_size, dilation, device) -> torch.Tensor:
    """``[K, 3]`` int64 kernel positions ``dilation * (a, b, c)`` in offset order (x slowest)."""
    grid = itertools.product(*(range(k) for k in kernel_size))
    return torch.tensor(list(grid), dtype=torch.int64, device=device) * torch.tensor(
        dilation, device=device
    )


def _check_key_range(batch_size: int, spatial_shape) -> int:
    cells = batch_size
    for s in spatial_shape:
        cells *= s
    if cells >= 1 << 62:
        raise InvalidArgumentError(
            f"grid too large to hash: batch_size x spatial_shape = {batch_size} x "
            f"{tuple(spatial_shape)} >= 2^62 cells"
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

    Memory is O(N K) for the pairs plus O(N) for the sorted keys or hash table; nothing grows with
    the grid volume. See the module docstring for the geometry.
    """
    k, s, d = (
        triple(kernel_size, "kernel_size"),
        triple(stride, "stride"),
        triple(dilation, "dilation"),
    )
    device = coords.device
    coords = coords.to(torch.int64)
    shape = tuple(int(v) for v in spatial_shape)
    n = coords.shape[0]
    positions = _kernel_positions(k, d, device)  # [K, 3]
    K = positions.shape[0]
    if submanifold:
        if s != (1, 1, 1) or any(v % 2 == 0 for v in k):
            raise InvalidArgumentError(
                "a submanifold convolution needs an odd kernel_size and stride 1, "
                f"got kernel_size={k}, stride={s}"
            )
        shift = positions - torch.tensor([dk * (kk // 2) for kk, dk in zip(k, d)], device=device)
        _check_key_range(batch_size, shape)
        # row-major: sorted by (offset, out)
        offset_ptr, out_idx, in_idx = found_pairs(submanifold_found(coords, shape, shift))
        out_coords, out_shape = coords, shape
        center = K // 2
    else:
        out_shape = tuple(
            max(0, -(-(X - dk * (kk - 1) - 1) // ss)) + 1 for X, kk, ss, dk in zip(shape, k, s, d)
        )
        _check_key_range(batch_size, out_shape)
        # input x feeds output q through position a when x = s q + a, 0 <= q < out_shape
        found, out_coords = strided_found(coords, out_shape, positions, s)
        offset_ptr, in_idx, out_idx = found_pairs(found)  # row-major: sorted by (offset, in)
        center = -1
    return KernelMap(
        in_idx=in_idx,
        out_idx=out_idx,
        offset_ptr=offset_ptr,
        out_coords=out_coords,
        out_spatial_shape=out_shape,
        num_in=n,
        center=center,
    )
