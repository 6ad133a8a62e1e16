"""Integer multi-spike neuron (E-3DSNN, Spike-driven Transformer V3), the stateless kind
``"multispike"``.

``s = round(clamp(x, 0, D))`` (divided by ``D`` when ``normalize=True``), with a straight-through
gradient inside ``(0, D)``. At inference an integer ``k`` stands for ``k`` binary spikes over ``D``
virtual time steps, so operation counting counts ``k`` operations, not 1. Stateless: the step is
elementwise and applies to an input of any shape (``[T, B, ...]`` by convention).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from neuroflow.errors import InvalidArgumentError
from neuroflow.neurons.base import SpikingNeuron
from neuroflow.neurons.registry import register_neuron_kind


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
    """Integer spikes ``round(clamp(x, 0, D))`` (``/ D`` if normalised), straight-through in
    (0, D)."""
    s = _IntegerSpike.apply(x, D)
    return s / D if normalize else s


@dataclass(frozen=True)
class MultiSpikeParams:
    """Parameters of the ``"multispike"`` kind: at most ``D`` spikes per step; ``normalize``
    divides the output by ``D``."""

    D: int = 4
    normalize: bool = False
    kind: ClassVar[str] = "multispike"


def _step(x, state, params: MultiSpikeParams, learnable):
    return multi_spike(x, params.D, params.normalize), None


register_neuron_kind("multispike", step=_step)


class MultiSpike(SpikingNeuron):
    """Module form of :func:`multi_spike`; accepts any shape (``[T, B, ...]`` by convention)."""

    kind = "multispike"

    def __init__(self, D: int = 4, normalize: bool = False):
        if isinstance(D, bool) or not isinstance(D, int) or D < 1:
            raise InvalidArgumentError(f"D must be a positive integer, got D={D!r}")
        super().__init__(backend="torch")
        self.D = D
        self.normalize = bool(normalize)

    def neuron_params(self) -> MultiSpikeParams:
        return MultiSpikeParams(self.D, self.normalize)

    def extra_repr(self) -> str:
        return f"D={self.D}, normalize={self.normalize}"
