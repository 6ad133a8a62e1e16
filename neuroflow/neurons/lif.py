"""Multi-step spiking neuron modules: LIF, IF, PLIF (thin wrappers over :mod:`functional`).

Every module takes ``x [T, B, ...]`` and starts from a fresh state at each call (no ``reset_net``).
For streaming, pass ``state=`` (the membrane potential ``[B, ...]``) and ``return_state=True``.
Parameter names follow SpikingJelly: ``tau``, ``v_threshold``, ``v_reset`` (``None`` = soft reset
by subtraction), ``decay_input``, ``detach_reset``, ``surrogate``. Defaults follow SpikingJelly:
``tau=2``, ``v_threshold=1``, hard reset to 0, ``Sigmoid(alpha=4)`` surrogate, fire on
``h >= v_threshold`` (``strict=True``: ``h > v_threshold``). Equations: :mod:`dynamics`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from neuroflow.neurons.base import SpikingNeuron
from neuroflow.neurons.dynamics import Dynamics, validate_params
from neuroflow.neurons.surrogate import Sigmoid, Surrogate, get_surrogate

__all__ = ["IF", "LIF", "PLIF", "SpikingNeuron", "ThresholdNeuron"]


class ThresholdNeuron(SpikingNeuron):
    """Base of the neurons with a membrane potential, a threshold and a reset (LIF, IF, PLIF).

    ``strict=True`` fires on ``h > v_threshold`` (NIR, snnTorch, Loihi) instead of
    ``h >= v_threshold`` (SpikingJelly, the default)."""

    def __init__(
        self,
        v_threshold: float,
        v_reset: float | None,
        detach_reset: bool,
        surrogate: Surrogate | str | None,
        backend: str,
        strict: bool = False,
    ):
        super().__init__(backend)
        self.v_threshold = float(v_threshold)
        self.v_reset = None if v_reset is None else float(v_reset)
        self.detach_reset = bool(detach_reset)
        self.surrogate = Sigmoid() if surrogate is None else get_surrogate(surrogate)
        self.strict = bool(strict)

    def dynamics(self) -> Dynamics:
        raise NotImplementedError

    def neuron_params(self) -> Dynamics:
        return self.dynamics()

    def extra_repr(self) -> str:
        d = self.dynamics()
        parts = [f"tau={d.tau:g}"] if d.tau is not None else []
        parts += [f"v_threshold={d.v_threshold:g}", f"v_reset={d.v_reset}"]
        if d.model != "if":
            parts.append(f"decay_input={d.decay_input}")
        parts += [f"detach_reset={d.detach_reset}", f"surrogate={d.surrogate!r}"]
        if d.strict:
            parts.append("strict=True")
        parts.append(f"backend={self.backend!r}")
        return ", ".join(parts)


class LIF(ThresholdNeuron):
    """Leaky integrate-and-fire: ``h = v + (x - (v - v_reset)) / tau`` (``decay_input=True``)."""

    kind = "lif"

    def __init__(
        self,
        tau: float = 2.0,
        v_threshold: float = 1.0,
        v_reset: float | None = 0.0,
        decay_input: bool = True,
        detach_reset: bool = False,
        surrogate: Surrogate | str | None = None,
        backend: str = "auto",
        strict: bool = False,
    ):
        validate_params(tau=tau, v_threshold=v_threshold, v_reset=v_reset)
        super().__init__(v_threshold, v_reset, detach_reset, surrogate, backend, strict)
        self.tau = float(tau)
        self.decay_input = bool(decay_input)

    def dynamics(self) -> Dynamics:
        return Dynamics(
            "lif",
            self.tau,
            self.decay_input,
            self.v_threshold,
            self.v_reset,
            self.detach_reset,
            self.surrogate,
            self.strict,
        )


class IF(ThresholdNeuron):
    """Integrate-and-fire (no leak): ``h = v + x``."""

    kind = "if"

    def __init__(
        self,
        v_threshold: float = 1.0,
        v_reset: float | None = 0.0,
        detach_reset: bool = False,
        surrogate: Surrogate | str | None = None,
        backend: str = "auto",
        strict: bool = False,
    ):
        validate_params(v_threshold=v_threshold, v_reset=v_reset)
        super().__init__(v_threshold, v_reset, detach_reset, surrogate, backend, strict)

    def dynamics(self) -> Dynamics:
        return Dynamics(
            "if",
            None,
            True,
            self.v_threshold,
            self.v_reset,
            self.detach_reset,
            self.surrogate,
            self.strict,
        )


class PLIF(ThresholdNeuron):
    """Parametric LIF (Fang et al. 2021): one learnable time constant per layer.

    ``1 / tau = sigmoid(w)``, ``w`` initialised to ``-log(tau - 1)`` so that it starts at ``tau``
    (hence ``tau > 1``).
    """

    kind = "plif"

    def __init__(
        self,
        tau: float = 2.0,
        v_threshold: float = 1.0,
        v_reset: float | None = 0.0,
        decay_input: bool = True,
        detach_reset: bool = False,
        surrogate: Surrogate | str | None = None,
        backend: str = "auto",
        strict: bool = False,
    ):
        validate_params(tau=tau, v_threshold=v_threshold, v_reset=v_reset, tau_min=1.0)
        super().__init__(v_threshold, v_reset, detach_reset, surrogate, backend, strict)
        self.decay_input = bool(decay_input)
        self.w = nn.Parameter(torch.tensor(-math.log(float(tau) - 1.0)))

    @property
    def tau(self) -> float:
        """The current time constant ``1 / sigmoid(w)``."""
        return float(1.0 / torch.sigmoid(self.w.detach()))

    def learnable(self) -> torch.Tensor:
        return self.w

    def dynamics(self) -> Dynamics:
        return Dynamics(
            "plif",
            self.tau,
            self.decay_input,
            self.v_threshold,
            self.v_reset,
            self.detach_reset,
            self.surrogate,
            self.strict,
        )
