"""Integer multi-spike neuron (E-3DSNN, Spike-driven Transformer V3).

Stateless: ``s = round(clamp(x, 0, D))`` (divided by ``D`` when ``normalize=True``), with a
straight-through gradient inside ``(0, D)``. At inference an integer ``k`` stands for ``k`` binary
spikes over ``D`` virtual time steps, so operation counting counts ``k`` operations, not 1.
"""

from __future__ import annotations

import torch

from neuroflow.errors import InputShapeError, InvalidArgumentError
from neuroflow.neurons.lif import SpikingNeuron


class _IntegerSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, D: int) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.D = D
        return torch.round(torch.clamp(x, 0, D))

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (x,) = ctx.saved_tensors
        inside = (x > 0) & (x < ctx.D)
        return grad_out * inside.to(grad_out.dtype), None


def multi_spike(x: torch.Tensor, D: int = 4, normalize: bool = False) -> torch.Tensor:
    """Integer spikes ``round(clamp(x, 0, D))`` (``/ D`` if normalised), straight-through in (0, D)."""
    s = _IntegerSpike.apply(x, D)
    return s / D if normalize else s


class MultiSpike(SpikingNeuron):
    """Module form of :func:`multi_spike`; accepts any shape (``[T, B, ...]`` by convention)."""

    def __init__(self, D: int = 4, normalize: bool = False):
        if isinstance(D, bool) or not isinstance(D, int) or D < 1:
            raise InvalidArgumentError(f"D must be a positive integer, got D={D!r}")
        super().__init__(v_threshold=0.5, v_reset=None, detach_reset=False, surrogate="rectangular", backend="torch")
        self.D = D
        self.normalize = bool(normalize)

    def forward(self, x: torch.Tensor, state=None, return_state: bool = False):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            what = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
            raise InputShapeError(f"x must be a floating-point tensor, got {what}")
        s = multi_spike(x, self.D, self.normalize)
        return (s, None) if return_state else s

    def extra_repr(self) -> str:
        return f"D={self.D}, normalize={self.normalize}"
