"""Per-sample global pooling of voxel features: ``[N, C]`` -> ``[B, C]``."""

from __future__ import annotations

import torch

from neuroflow.errors import InputShapeError


def _voxels_per_sample(
    features: torch.Tensor, batch_index: torch.Tensor, batch_size: int
) -> torch.Tensor:
    if features.dim() != 2 or batch_index.dim() != 1 or batch_index.shape[0] != features.shape[0]:
        raise InputShapeError(
            f"expected features [N, C] and batch_index [N], got {tuple(features.shape)} and "
            f"{tuple(batch_index.shape)}"
        )
    return torch.bincount(batch_index, minlength=batch_size)


def global_mean_pool(
    features: torch.Tensor, batch_index: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """``[N, C]`` -> ``[B, C]``: mean over each sample's voxels (0 for a sample without voxels)."""
    count = _voxels_per_sample(features, batch_index, batch_size).clamp(min=1).to(features.dtype)
    total = features.new_zeros((batch_size, features.shape[1])).index_add(0, batch_index, features)
    return total / count[:, None]


def global_max_pool(
    features: torch.Tensor, batch_index: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """``[N, C]`` -> ``[B, C]``: max over each sample's voxels (0 for a sample without voxels)."""
    empty = _voxels_per_sample(features, batch_index, batch_size) == 0
    out = features.new_full((batch_size, features.shape[1]), float("-inf"))
    out = out.scatter_reduce(0, batch_index[:, None].expand_as(features), features, reduce="amax")
    return out.masked_fill(empty[:, None], 0.0)
