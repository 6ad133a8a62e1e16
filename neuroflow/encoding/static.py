"""Encoders that turn a static input ``[B, ...]`` into a spike train or current ``[T, B, ...]``.

- :func:`direct_encode`: repeat the analog input at every step (the first layer does the encoding);
- :func:`rate_encode`: Bernoulli spikes with probability = intensity in [0, 1] (seeded);
- :func:`latency_encode`: one spike per input, earlier for stronger inputs (time-to-first-spike).
"""

from __future__ import annotations

import torch

from neuroflow.errors import InputShapeError, InvalidArgumentError


def _check_steps(time_steps: int) -> None:
    if isinstance(time_steps, bool) or not isinstance(time_steps, int) or time_steps < 1:
        raise InvalidArgumentError(
            f"time_steps must be a positive integer, got time_steps={time_steps!r}"
        )


def _check_unit_range(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise InputShapeError(
            f"{name} expects a floating-point tensor, got {getattr(x, 'dtype', type(x).__name__)}"
        )
    if x.numel() and (x.min() < 0 or x.max() > 1 or not torch.isfinite(x).all()):
        raise InvalidArgumentError(
            f"{name} expects intensities in [0, 1]; "
            f"got values in [{x.min().item():g}, {x.max().item():g}] "
            "(normalise the input first)"
        )


def direct_encode(x: torch.Tensor, time_steps: int) -> torch.Tensor:
    """``[B, ...]`` -> ``[T, B, ...]``, the same input at every step (a broadcast view, no copy)."""
    _check_steps(time_steps)
    return x.unsqueeze(0).expand(time_steps, *x.shape)


def rate_encode(
    x: torch.Tensor, time_steps: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Bernoulli spikes ``[T, B, ...]``: each step fires with probability ``x`` (in [0, 1])."""
    _check_steps(time_steps)
    _check_unit_range(x, "rate_encode")
    p = x.unsqueeze(0).expand(time_steps, *x.shape)
    return torch.bernoulli(p, generator=generator)


def latency_encode(x: torch.Tensor, time_steps: int, threshold: float = 0.0) -> torch.Tensor:
    """One spike per input at step ``round((1 - x) * (T - 1))``: intensity 1 fires at t = 0.

    Inputs ``<= threshold`` never fire. Linear time-to-first-spike code (as snnTorch's
    ``spikegen.latency(..., linear=True)`` with ``normalize=True``).
    """
    _check_steps(time_steps)
    _check_unit_range(x, "latency_encode")
    t_fire = torch.round((1 - x) * (time_steps - 1)).long()
    steps = torch.arange(time_steps, device=x.device).view(time_steps, *([1] * x.dim()))
    spikes = (steps == t_fire.unsqueeze(0)) & (x > threshold).unsqueeze(0)
    return spikes.to(x.dtype)
