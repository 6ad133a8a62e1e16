"""Surrogate gradients for the Heaviside spike function.

The forward pass is always the exact Heaviside step ``H(u) = 1 if u >= 0 else 0`` (H(0) = 1, as in
SpikingJelly), or with ``strict=True`` ``H(u) = 1 if u > 0 else 0`` (H(0) = 0, as NIR, snnTorch and
Loihi fire). Only the backward pass uses the derivative ``grad(u)`` of a smooth function, the same
for both conventions. Formulas match SpikingJelly 2.0 (``spikingjelly.activation_based.surrogate``):

- ``Sigmoid(alpha)``:     g(u) = alpha * s * (1 - s),  s = sigmoid(alpha * u)
- ``ATan(alpha)``:        g(u) = (alpha / 2) / (1 + (pi/2 * alpha * u)^2)
- ``Rectangular(width)``: g(u) = 1 / width if |u| < width / 2 else 0 (straight-through inside a
  window)

A user surrogate subclasses :class:`Surrogate` and defines ``grad``. Fused kernels declare the exact
surrogate types they implement (:mod:`neuroflow.neurons.fused`); any other surrogate, subclasses of
the built-in ones included, runs on the pure-torch path, which calls ``grad``.
"""

from __future__ import annotations

import math

import torch

from neuroflow.errors import InvalidArgumentError
from neuroflow.registry import Registry

SURROGATES: Registry = Registry("surrogate")


class Surrogate:
    """Base class: ``grad(u)`` is dg/du; calling the object on ``u`` spikes with that gradient."""

    name: str = ""

    def __init__(self, alpha: float):
        alpha = float(alpha)
        if not math.isfinite(alpha) or alpha <= 0:
            raise InvalidArgumentError(
                f"{type(self).__name__}: alpha must be a finite positive number, got {alpha!r}"
            )
        self.alpha = alpha

    def grad(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, u: torch.Tensor, strict: bool = False) -> torch.Tensor:
        """Spikes ``H(u)`` (0/1 in ``u.dtype``) with gradient ``grad(u)``; ``strict``: H(0) = 0."""
        return SpikeFunction.apply(u, self, strict)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alpha={self.alpha:g})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.alpha == other.alpha  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.alpha))


@SURROGATES.register("sigmoid")
class Sigmoid(Surrogate):
    name = "sigmoid"

    def __init__(self, alpha: float = 4.0):
        super().__init__(alpha)

    def grad(self, u: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(self.alpha * u)
        return (1 - s) * s * self.alpha


@SURROGATES.register("atan")
class ATan(Surrogate):
    name = "atan"

    def __init__(self, alpha: float = 2.0):
        super().__init__(alpha)

    def grad(self, u: torch.Tensor) -> torch.Tensor:
        z = u * (math.pi / 2 * self.alpha)
        return (self.alpha / 2) / (1 + z * z)


@SURROGATES.register("rectangular")
class Rectangular(Surrogate):
    """Straight-through estimator inside a window of ``width`` around the threshold."""

    name = "rectangular"

    def __init__(self, width: float = 1.0):
        super().__init__(width)

    @property
    def width(self) -> float:
        return self.alpha

    def grad(self, u: torch.Tensor) -> torch.Tensor:
        return (u.abs() < self.alpha / 2).to(u.dtype) / self.alpha

    def __repr__(self) -> str:
        return f"Rectangular(width={self.alpha:g})"


def get_surrogate(spec: str | Surrogate, **kwargs) -> Surrogate:
    """A surrogate from a name (``"sigmoid"``, ``"atan"``, ``"rectangular"``) or an instance."""
    if isinstance(spec, Surrogate):
        return spec
    if not isinstance(spec, str):
        raise InvalidArgumentError(f"surrogate must be a name or a Surrogate, got {spec!r}")
    return SURROGATES.get(spec.lower())(**kwargs)


class SpikeFunction(torch.autograd.Function):
    """Heaviside forward (H(0) = 1, or 0 when ``strict``), surrogate derivative backward."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, surrogate: Surrogate, strict: bool = False) -> torch.Tensor:
        ctx.save_for_backward(u)
        ctx.surrogate = surrogate
        return ((u > 0) if strict else (u >= 0)).to(u.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (u,) = ctx.saved_tensors
        return grad_out * ctx.surrogate.grad(u), None, None
