"""The (P)LIF / IF difference equations: parameters, validation and the pure-torch reference step.

One time step, as in SpikingJelly 2.0:

- charge, ``decay_input=True``:  ``h = v + (x - (v - v_reset)) / tau``
- charge, ``decay_input=False``: ``h = v - (v - v_reset) / tau + x``
- IF charge:                     ``h = v + x``
- PLIF: ``1 / tau = sigmoid(w)`` with a learnable scalar ``w``
- fire:   ``s = H(h - v_threshold)`` with H(0) = 1 (surrogate gradient in the backward pass);
  ``strict=True``: H(0) = 0, i.e. fire on ``h > v_threshold`` (NIR, snnTorch, Loihi)
- reset:  hard ``v = s * v_reset + (1 - s) * h``; soft (``v_reset=None``)
  ``v = h - s * v_threshold``; with ``detach_reset`` the spike in the reset carries no gradient.

With a soft reset the charge uses 0 in place of ``v_reset``. The step below is written with
exactly these operations in this order, so that spikes equal SpikingJelly's bit for bit; the fused
kernel (:mod:`neuroflow.neurons.fused`) repeats the same float32 operations. The kinds ``"lif"``,
``"if"`` and ``"plif"`` are registered at the end of this module
(:mod:`neuroflow.neurons.registry`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from neuroflow.errors import InputShapeError, InvalidArgumentError
from neuroflow.neurons.fused import LIF_KERNEL
from neuroflow.neurons.registry import register_neuron_kind
from neuroflow.neurons.surrogate import Surrogate


@dataclass(frozen=True)
class Dynamics:
    """Constant parameters of one (P)LIF / IF layer (PLIF's learnable ``w`` is passed separately).

    ``model`` is the registered kind (``"lif"``, ``"if"`` or ``"plif"``); ``strict`` fires on
    ``h > v_threshold`` instead of ``h >= v_threshold``."""

    model: str  # "lif" | "if" | "plif"
    tau: float | None
    decay_input: bool
    v_threshold: float
    v_reset: float | None
    detach_reset: bool
    surrogate: Surrogate
    strict: bool = False

    @property
    def kind(self) -> str:
        """The registered neuron kind these parameters run (:mod:`neuroflow.neurons.registry`)."""
        return self.model

    @property
    def reset_value(self) -> float:
        return 0.0 if self.v_reset is None else self.v_reset


def validate_params(
    *,
    tau: float | None = None,
    v_threshold: float,
    v_reset: float | None,
    tau_min: float = 0.0,
) -> None:
    """Raise :class:`InvalidArgumentError` naming the argument for physically invalid values."""
    if tau is not None:
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not math.isfinite(tau):
            raise InvalidArgumentError(f"tau must be a finite number, got tau={tau!r}")
        if tau <= tau_min:
            raise InvalidArgumentError(f"tau must be > {tau_min:g}, got tau={tau!r}")
    if (
        isinstance(v_threshold, bool)
        or not isinstance(v_threshold, (int, float))
        or not math.isfinite(v_threshold)
    ):
        raise InvalidArgumentError(
            f"v_threshold must be a finite number, got v_threshold={v_threshold!r}"
        )
    if v_reset is not None:
        if (
            isinstance(v_reset, bool)
            or not isinstance(v_reset, (int, float))
            or not math.isfinite(v_reset)
        ):
            raise InvalidArgumentError(
                f"v_reset must be a finite number or None, got v_reset={v_reset!r}"
            )
        if v_threshold <= v_reset:
            raise InvalidArgumentError(
                f"v_threshold must be greater than v_reset, got v_threshold={v_threshold!r} "
                f"<= v_reset={v_reset!r}"
            )
    elif v_threshold <= 0:
        raise InvalidArgumentError(
            "with a soft reset (v_reset=None) v_threshold must be > 0, "
            f"got v_threshold={v_threshold!r}"
        )


def validate_input(
    x: torch.Tensor,
    state: torch.Tensor | None,
    name: str = "x",
    state_name: str = "state",
    integer: bool = False,
) -> None:
    """Multi-step input must be a floating tensor ``[T, B, ...]``; a state ``x.shape[1:]``."""
    if not isinstance(x, torch.Tensor):
        raise InputShapeError(
            f"{name} must be a torch.Tensor of shape [T, B, ...], got {type(x).__name__}"
        )
    if x.dim() < 2:
        raise InputShapeError(
            f"{name} must have shape [T, B, ...] (at least 2 dimensions, time first), "
            f"got shape {tuple(x.shape)}"
        )
    if not integer and not x.is_floating_point():
        raise InputShapeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if state is not None:
        if not isinstance(state, torch.Tensor) or tuple(state.shape) != tuple(x.shape[1:]):
            got = tuple(state.shape) if isinstance(state, torch.Tensor) else type(state).__name__
            raise InputShapeError(
                f"{state_name} must have shape {tuple(x.shape[1:])} (= {name}.shape[1:]), got {got}"
            )


def initial_state(x: torch.Tensor, dyn: Dynamics) -> torch.Tensor:
    """A fresh membrane potential ``[B, ...]``: ``v_reset`` (hard reset) or 0 (soft reset)."""
    return torch.full(x.shape[1:], dyn.reset_value, dtype=x.dtype, device=x.device)


def charge(x: torch.Tensor, v: torch.Tensor, dyn: Dynamics, q: torch.Tensor | None) -> torch.Tensor:
    """One charge step ``h[t]`` from ``x[t]`` and ``v[t-1]`` (``q = sigmoid(w)`` for PLIF)."""
    vr = dyn.reset_value
    if dyn.model == "if":
        return v + x
    if dyn.model == "plif":
        return v + (x - (v - vr)) * q if dyn.decay_input else v - (v - vr) * q + x
    return v + (x - (v - vr)) / dyn.tau if dyn.decay_input else v - (v - vr) / dyn.tau + x


def reset(h: torch.Tensor, spike: torch.Tensor, dyn: Dynamics) -> torch.Tensor:
    """Membrane potential after the spike: hard reset to ``v_reset`` or soft (minus threshold)."""
    if dyn.detach_reset:
        spike = spike.detach()
    if dyn.v_reset is None:
        return h - spike * dyn.v_threshold
    return spike * dyn.v_reset + (1.0 - spike) * h


def step(
    x_t: torch.Tensor, v: torch.Tensor, dyn: Dynamics, w: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One time step: ``x_t [B, ...]``, ``v [B, ...]`` -> ``(spikes [B, ...], v [B, ...])``.

    The registered update equation of ``"lif"``, ``"if"`` and ``"plif"`` (``w``: PLIF's learnable
    scalar, ``1 / tau = sigmoid(w)``). Autograd differentiates it through the surrogate; this is
    the ground truth for the fused kernel."""
    q = torch.sigmoid(w.float()) if w is not None else None
    h = charge(x_t, v, dyn, q)
    spike = dyn.surrogate(h - dyn.v_threshold, strict=dyn.strict)
    return spike, reset(h, spike, dyn)


for _name in ("lif", "if", "plif"):
    register_neuron_kind(_name, step=step, initial_state=initial_state, kernel=LIF_KERNEL)
