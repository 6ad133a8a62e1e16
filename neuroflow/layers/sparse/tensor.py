"""A sparse voxel tensor: integer coordinates of the occupied voxels and one feature row each.

Point-cloud networks (E-3DSNN, spconv/MinkowskiEngine style) store only the occupied voxels of a
``[B, C, X, Y, Z]`` grid: ``coords [N, 4]`` (batch, x, y, z) and ``features [N, C]``. Convolutions
on it need *kernel maps* (which input row feeds which output row through which kernel offset);
building one costs a pass over the coordinates, so a tensor carries a cache of them, keyed by the
convolution geometry, that every tensor derived with :meth:`SparseTensor.replace_features` shares:
all submanifold convolutions of one stage then build their map once.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import torch

from neuroflow.errors import InputShapeError, InvalidArgumentError

#: cache key: (kernel_size, stride, dilation, submanifold, indice_key), sizes as 3-tuples
KernelMapKey = tuple[
    tuple[int, int, int], tuple[int, int, int], tuple[int, int, int], bool, Hashable
]


class SparseTensor:
    """Occupied voxels of a batch of 3-D grids.

    Args:
        coords: ``[N, 4]`` int32/int64, rows ``(batch, x, y, z)`` with ``0 <= batch < batch_size``
            and ``0 <= x < spatial_shape[0]`` etc. Rows must be unique: a submanifold kernel map
            (:func:`neuroflow.layers.sparse.kernel_map.build_kernel_map`, which sorts the voxels
            anyway) refuses duplicates; strided maps assume it (a check here would cost a sort on
            every construction).
        features: ``[N, C]`` floating point, one row per coordinate row.
        spatial_shape: ``(X, Y, Z)`` grid size in voxels.
        batch_size: number of samples ``B``; a sample may have no voxels.

    Coordinates are stored as int64 on the features' device. The kernel-map cache
    (:attr:`kernel_maps`) is a plain dict shared with every tensor made by
    :meth:`replace_features`; a tensor with other coordinates (e.g. the output of a strided
    convolution) starts its own.
    """

    __slots__ = ("coords", "features", "spatial_shape", "batch_size", "kernel_maps")

    def __init__(
        self,
        coords: torch.Tensor,
        features: torch.Tensor,
        spatial_shape: tuple[int, int, int] | list[int],
        batch_size: int,
        *,
        kernel_maps: dict[KernelMapKey, Any] | None = None,
        validate: bool = True,
    ):
        if validate:
            _validate(coords, features, spatial_shape, batch_size)
        self.coords = coords.to(device=features.device, dtype=torch.int64)
        self.features = features
        self.spatial_shape = tuple(int(s) for s in spatial_shape)
        self.batch_size = int(batch_size)
        self.kernel_maps: dict[KernelMapKey, Any] = {} if kernel_maps is None else kernel_maps

    # --- derived tensors -------------------------------------------------------------------------
    def replace_features(self, new_features: torch.Tensor) -> SparseTensor:
        """Same coordinates (and kernel-map cache), new ``[N, C']`` features."""
        if not isinstance(new_features, torch.Tensor) or new_features.dim() != 2:
            shape = (
                tuple(new_features.shape)
                if isinstance(new_features, torch.Tensor)
                else type(new_features).__name__
            )
            raise InputShapeError(f"new_features must be [N, C], got {shape}")
        if new_features.shape[0] != self.num_points:
            raise InputShapeError(
                f"new_features must have one row per voxel ({self.num_points}), "
                f"got {new_features.shape[0]} rows"
            )
        return SparseTensor(
            self.coords,
            new_features,
            self.spatial_shape,
            self.batch_size,
            kernel_maps=self.kernel_maps,
            validate=False,
        )

    def to(self, *args, **kwargs) -> SparseTensor:
        """Move / cast like ``Tensor.to``; features take the dtype, coordinates stay int64.

        On the same device the kernel-map cache is kept; on another device it starts empty.
        """
        features = self.features.to(*args, **kwargs)
        same_device = features.device == self.features.device
        return SparseTensor(
            self.coords.to(features.device),
            features,
            self.spatial_shape,
            self.batch_size,
            kernel_maps=self.kernel_maps if same_device else None,
            validate=False,
        )

    # --- views -----------------------------------------------------------------------------------
    @property
    def num_points(self) -> int:
        """Number of occupied voxels ``N``."""
        return self.coords.shape[0]

    @property
    def num_channels(self) -> int:
        """Feature width ``C``."""
        return self.features.shape[1]

    @property
    def device(self) -> torch.device:
        return self.features.device

    def batch_index(self) -> torch.Tensor:
        """``[N]`` int64 sample index of every voxel."""
        return self.coords[:, 0]

    def dense(self) -> torch.Tensor:
        """The dense grid ``[B, C, X, Y, Z]`` (empty voxels 0); for tests and small grids only."""
        B, C = self.batch_size, self.num_channels
        out = self.features.new_zeros((B, *self.spatial_shape, C))
        b, x, y, z = self.coords.unbind(1)
        out = out.index_put((b, x, y, z), self.features)
        return out.permute(0, 4, 1, 2, 3).contiguous()

    def __repr__(self) -> str:
        return (
            f"SparseTensor(num_points={self.num_points}, channels={self.num_channels}, "
            f"spatial_shape={self.spatial_shape}, batch_size={self.batch_size}, "
            f"cached_maps={len(self.kernel_maps)})"
        )


def _validate(coords: Any, features: Any, spatial_shape: Any, batch_size: Any) -> None:
    if not isinstance(coords, torch.Tensor) or coords.dtype not in (torch.int32, torch.int64):
        what = coords.dtype if isinstance(coords, torch.Tensor) else type(coords).__name__
        raise InputShapeError(f"coords must be an int32 or int64 tensor [N, 4], got {what}")
    if coords.dim() != 2 or coords.shape[1] != 4:
        raise InputShapeError(
            f"coords must have shape [N, 4] (batch, x, y, z), got {tuple(coords.shape)}"
        )
    if not isinstance(features, torch.Tensor) or not features.is_floating_point():
        what = features.dtype if isinstance(features, torch.Tensor) else type(features).__name__
        raise InputShapeError(f"features must be a floating-point tensor [N, C], got {what}")
    if features.dim() != 2:
        raise InputShapeError(f"features must have shape [N, C], got {tuple(features.shape)}")
    if features.shape[0] != coords.shape[0]:
        raise InputShapeError(
            f"features has {features.shape[0]} rows but coords has {coords.shape[0]}: "
            "one feature row per voxel"
        )
    if coords.shape[0] == 0:
        raise InputShapeError(
            "empty SparseTensor: coords has no rows (at least one occupied voxel needed)"
        )
    if (
        not isinstance(spatial_shape, (tuple, list))
        or len(spatial_shape) != 3
        or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in spatial_shape)
    ):
        raise InvalidArgumentError(
            f"spatial_shape must be 3 positive ints (X, Y, Z), got {spatial_shape!r}"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be a positive int, got {batch_size!r}")
    low = coords.min(0).values.tolist()
    high = coords.max(0).values.tolist()
    limits = (batch_size, *spatial_shape)
    for axis, name in enumerate(("batch", "x", "y", "z")):
        if low[axis] < 0 or high[axis] >= limits[axis]:
            raise InvalidArgumentError(
                f"coords column {axis} ({name}) spans [{low[axis]}, {high[axis]}], "
                f"outside [0, {limits[axis] - 1}] (batch_size={batch_size}, "
                f"spatial_shape={tuple(spatial_shape)})"
            )
