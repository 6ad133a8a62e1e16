"""Apply stateless layers to every time step at once by folding time into the batch."""

from __future__ import annotations

import torch
from torch import nn

from neuroflow.errors import InputShapeError


def fold_time(x: torch.Tensor) -> torch.Tensor:
    """``[T, B, ...]`` -> ``[T * B, ...]`` (a view when ``x`` is contiguous)."""
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def unfold_time(y: torch.Tensor, steps: int) -> torch.Tensor:
    """``[T * B, ...]`` -> ``[T, B, ...]``."""
    return y.reshape(steps, y.shape[0] // steps, *y.shape[1:])


class TimeDistributed(nn.Sequential):
    """Run stateless modules (Conv, BatchNorm, Linear, pooling...) on ``[T, B, ...]`` input.

    The modules see one big batch ``[T * B, ...]``, so BatchNorm statistics are shared over time
    steps, as in SpikingJelly's ``SeqToANNContainer``. It is an ``nn.Sequential``: the wrapped layers
    stay reachable by index for inspection and graph export.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() < 2:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InputShapeError(f"TimeDistributed expects x of shape [T, B, ...], got {shape}")
        return unfold_time(super().forward(fold_time(x)), x.shape[0])
