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


#: layers that compute the same under torch's channels-last (NHWC) layout and keep it
_CHANNELS_LAST_LAYERS = (
    nn.Conv2d,
    nn.BatchNorm2d,
    nn.AvgPool2d,
    nn.MaxPool2d,
    nn.Dropout,
    nn.Identity,
)
_POOLING = (nn.AvgPool2d, nn.MaxPool2d)


def _runs_channels_last(layers: nn.Sequential, x: torch.Tensor) -> bool:
    """Whether ``x [N, C, H, W]`` goes through ``layers`` in channels-last: on the CPU, for stacks
    of convolutions, BatchNorm and pooling that pool (where the layout pays: see
    :class:`TimeDistributed`)."""
    return (
        x.dim() == 4
        and x.device.type == "cpu"
        and any(isinstance(m, _POOLING) for m in layers)
        and all(isinstance(m, _CHANNELS_LAST_LAYERS) for m in layers)
    )


class _ToLayout(torch.autograd.Function):
    """``x`` copied into ``memory_format``; its gradient copied back into ``grad_format`` (the
    layout of the layers before), so that no layer sees a gradient in another layout than its
    input: torch's pooling backward with an NCHW gradient for a channels-last input measured
    several times slower than with matching layouts."""

    @staticmethod
    def forward(ctx, x, memory_format, grad_format):
        ctx.grad_format = grad_format
        return torch.empty_like(x, memory_format=memory_format).copy_(x)

    @staticmethod
    def backward(ctx, grad):
        return torch.empty_like(grad, memory_format=ctx.grad_format).copy_(grad), None, None


class TimeDistributed(nn.Sequential):
    """Run stateless modules (Conv, BatchNorm, Linear, pooling...) on ``[T, B, ...]`` input.

    The modules see one big batch ``[T * B, ...]``, so BatchNorm statistics are shared over time
    steps, as in SpikingJelly's ``SeqToANNContainer``. It is an ``nn.Sequential``: the wrapped
    layers stay reachable by index for inspection and graph export.

    On the CPU, image input ``[T, B, C, H, W]`` to a stack of convolutions, BatchNorm and pooling
    that pools runs in the channels-last layout (converted on the way in and back on the way out,
    the gradients kept in the same layout by :class:`_ToLayout`): torch's NCHW pooling is slow on
    the CPU, so channels-last makes such a stack markedly faster to train. Stacks without pooling
    stay NCHW: for the Meta-SpikeFormer's 1x1 and depthwise convolutions channels-last brought no
    gain. The measured figures are in ``docs/benchmarks.md``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() < 2:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InputShapeError(f"TimeDistributed expects x of shape [T, B, ...], got {shape}")
        folded = fold_time(x)
        if _runs_channels_last(self, folded):
            nchw, nhwc = torch.contiguous_format, torch.channels_last
            y = _ToLayout.apply(super().forward(_ToLayout.apply(folded, nhwc, nchw)), nchw, nhwc)
        else:
            y = super().forward(folded)
        return unfold_time(y, x.shape[0])
