"""NIR's neuron nodes as multi-step modules: ``x [T, B, *shape] -> [T, B, *shape]``.

NIR defines its neurons in continuous time (the NIR specification, github neuromorphs/NIR,
``nir/ir/neuron.py``)::

    LIF      tau dv/dt = (v_leak - v) + r I;  z = v > v_threshold;  v <- v_reset where z
    LI       tau dv/dt = (v_leak - v) + r I   (output: v)
    IF       dv/dt = r I;  z = v > v_threshold;  v <- v_reset where z
    I        dv/dt = r I                      (output: v)
    CubaLIF  tau_syn dI/dt = -I + w_in x;  tau_mem dv/dt = (v_leak - v) + r I;  fire, reset as LIF
    CubaLI   the same without firing          (output: v)

Discretised with a time step ``dt`` (seconds), input ``x[t]`` held over the step:

- ``method="euler"`` (forward Euler, as the Python importers do): with ``tau_steps = tau / dt``,
  ``h = v + (r x - (v - v_leak)) / tau_steps``; where ``r == tau_steps`` (an input that is not
  scaled, SpikingJelly's ``decay_input=False``) the same step is computed as
  ``h = v - (v - v_leak) / tau_steps + x``; IF / I: ``h = v + (r dt) x``. The synaptic current of
  CubaLI(F) is updated first and the membrane reads the new current (SpikingJelly, Norse).
- ``method="exact"``: the exact solution for an input held over the step,
  ``h = v_inf + (v - v_inf) exp(-dt / tau)`` with ``v_inf = v_leak + r x`` (IF / I are exact
  under Euler already); CubaLI(F) step the current, then the membrane, this way (the current
  held over the step: not the exact two-exponential solution).

Then ``z = h > v_threshold`` (``>=`` where ``strict=False``, neuroflow's own rule) and the reset:
``"hard"`` to ``v_reset`` (the specification), ``"subtract"`` (``v = h - v_threshold``,
neuroflow's soft reset). ``neuron_mode="sinabs"`` (:class:`SinabsNeuron`) reads IF and LIF as
Sinabs 3.1 and the Speck chip run them: several spikes per step, subtractive reset, LIF's
``tau`` in time steps, IF's potential bounded below by ``-v_threshold``.

Every module starts from a fresh state at each call; ``state=`` / ``return_state=True`` carry it
between calls (a tuple of tensors ``[B, *shape]``). Where the parameters are uniform and the step
is one of neuroflow's fused forms, the layer runs on neuroflow's fused CPU kernel
(:func:`neuroflow.neurons.functional.multistep`), which computes the same float32 operations.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from neuroflow.neurons.dynamics import Dynamics
from neuroflow.neurons.functional import fused_supported, multistep
from neuroflow.neurons.surrogate import Sigmoid, Surrogate

#: NIR node type name -> the kind of :class:`NIRNeuron`
FIRING_KINDS = ("lif", "if", "cubalif")
KINDS = ("lif", "li", "if", "i", "cubalif", "cubali")
RESETS = ("hard", "subtract")
METHODS = ("euler", "exact")


def _param(value, shape: tuple[int, ...]) -> torch.Tensor:
    """A NIR parameter (scalar or per-neuron array) as a float32 tensor of ``shape``."""
    arr = np.array(np.broadcast_to(np.asarray(value, dtype=np.float64), shape))
    return torch.from_numpy(arr).float()


def _uniform(t: torch.Tensor) -> float | None:
    """The single value of ``t`` when all its elements are equal, else ``None``."""
    flat = t.reshape(-1)
    if flat.numel() == 0:
        return None
    first = flat[0]
    return float(first) if bool(torch.all(flat == first)) else None


def fire(
    h: torch.Tensor, threshold: torch.Tensor, strict: bool, surrogate: Surrogate
) -> torch.Tensor:
    """Spikes 0/1 of potential ``h``: ``h > threshold`` (``strict``) or ``h >= threshold``.

    The forward is exact; the backward is the surrogate's (symmetric, so ``1 - H(-u)`` has the
    same gradient as ``H(u)``)."""
    if strict:
        return 1.0 - surrogate(threshold - h)
    return surrogate(h - threshold)


def reset(
    h: torch.Tensor, z: torch.Tensor, threshold: torch.Tensor, v_reset: torch.Tensor, mode: str
):
    """Potential after the spikes ``z``: to ``v_reset`` (``"hard"``) or ``h - threshold``."""
    if mode == "subtract":
        return h - z * threshold
    return z * v_reset + (1.0 - z) * h


def leaky_step(v, x, tau_steps, gain, v_leak, unscaled: bool, decay=None):
    """One step of ``tau dv/dt = (v_leak - v) + r x`` (see the module docstring).

    ``decay = exp(-dt / tau)`` selects the exact step; else forward Euler, ``unscaled`` meaning
    ``r == tau_steps``."""
    if decay is not None:
        v_inf = v_leak + gain * x
        return v_inf + (v - v_inf) * decay
    if unscaled:
        return v - (v - v_leak) / tau_steps + x
    return v + (gain * x - (v - v_leak)) / tau_steps


class NIRNeuron(nn.Module):
    """One NIR neuron node (LIF, LI, IF, I, CubaLIF, CubaLI) run on ``[T, B, *shape]``.

    Args:
        kind: ``"lif"``, ``"li"``, ``"if"``, ``"i"``, ``"cubalif"`` or ``"cubali"``.
        params: the node's parameters as in NIR (``tau`` or ``tau_mem`` / ``tau_syn`` in seconds,
            ``r``, ``v_leak``, ``v_threshold``, ``v_reset``, ``w_in``); scalars or arrays.
        shape: the neurons' shape (NIR's node shape, without batch and time).
        dt: the time step in seconds.
        strict: fire on ``>`` (the specification) or ``>=`` (neuroflow's rule).
        reset: ``"hard"`` (the specification) or ``"subtract"``.
        method: ``"euler"`` or ``"exact"``.
        surrogate: surrogate gradient for training an imported graph (default ``Sigmoid(4)``).

    Output: spikes 0/1 for the firing kinds, the membrane potential ``v`` for LI / I / CubaLI.
    State: ``(v,)``, or ``(v, i_syn)`` for the Cuba kinds, each ``[B, *shape]``.
    """

    def __init__(
        self,
        kind: str,
        params: dict,
        shape: tuple[int, ...],
        dt: float,
        strict: bool = True,
        reset: str = "hard",
        method: str = "euler",
        surrogate: Surrogate | None = None,
    ):
        super().__init__()
        assert kind in KINDS and reset in RESETS and method in METHODS
        self.kind, self.shape, self.dt = kind, tuple(int(s) for s in shape), float(dt)
        self.strict, self.reset_mode, self.method = bool(strict), reset, method
        self.surrogate = Sigmoid() if surrogate is None else surrogate
        p = {k: _param(v, self.shape) for k, v in params.items() if v is not None}
        zeros = torch.zeros(self.shape)
        if kind in ("if", "i"):
            self.register_buffer("gain", p["r"] * float(dt))  # r dt: 1 where r = 1 / dt
            self.register_buffer("v_leak", zeros.clone())
        else:
            tau = p["tau_mem"] if kind.startswith("cuba") else p["tau"]
            self.register_buffer("tau_steps", (tau.double() / dt).float())
            self.register_buffer("decay", torch.exp(-dt / tau.double()).float())
            self.register_buffer("gain", p["r"])
            self.register_buffer("v_leak", p["v_leak"])
            self.unscaled = bool(
                torch.allclose(p["r"].double(), tau.double() / dt, rtol=1e-6, atol=0)
            )
        if kind.startswith("cuba"):
            tau_syn = p["tau_syn"]
            self.register_buffer("syn_tau_steps", (tau_syn.double() / dt).float())
            self.register_buffer("syn_decay", torch.exp(-dt / tau_syn.double()).float())
            self.register_buffer("w_in", p.get("w_in", torch.ones(self.shape)))
            self.syn_unscaled = bool(
                torch.allclose(self.w_in.double(), tau_syn.double() / dt, rtol=1e-6, atol=0)
            )
        if kind in FIRING_KINDS:
            self.register_buffer("v_threshold", p["v_threshold"])
            self.register_buffer("v_reset", p.get("v_reset", zeros.clone()))
        self._fused = self._fused_dynamics()

    # --------------------------------------------------------------------------- fused path
    def _fused_dynamics(self) -> Dynamics | None:
        """neuroflow's :class:`Dynamics` when this layer's step is one of the fused kernel's forms
        (uniform parameters, forward Euler, ``>=``), else ``None``."""
        strict_kernel = "strict" in getattr(Dynamics, "__dataclass_fields__", {})
        if (
            self.kind not in ("lif", "if")
            or self.method != "euler"
            or (self.strict and not strict_kernel)
        ):
            return None
        extra = {"strict": True} if self.strict else {}
        th, vr = _uniform(self.v_threshold), _uniform(self.v_reset)
        if th is None or vr is None:
            return None
        v_reset = None if self.reset_mode == "subtract" else vr
        if self.reset_mode == "subtract" and vr != 0.0:
            return None
        if self.kind == "if":
            return (
                Dynamics("if", None, True, th, v_reset, False, self.surrogate, **extra)
                if _uniform(self.gain) == 1.0
                else None
            )
        tau, leak, gain = _uniform(self.tau_steps), _uniform(self.v_leak), _uniform(self.gain)
        if (
            tau is None
            or leak is None
            or gain is None
            or leak != (vr if v_reset is not None else 0.0)
        ):
            return None
        if self.unscaled:
            return Dynamics("lif", tau, False, th, v_reset, False, self.surrogate, **extra)
        if gain == 1.0:
            return Dynamics("lif", tau, True, th, v_reset, False, self.surrogate, **extra)
        return None

    # ------------------------------------------------------------------------------ forward
    def initial_state(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """A fresh state for input ``x [T, B, *shape]``: ``v = v_reset`` (0 for the non-firing
        kinds and a subtractive reset), ``i_syn = 0``."""
        shape = x.shape[1:]
        if self.kind in FIRING_KINDS and self.reset_mode == "hard":
            v = self.v_reset.to(x).expand(shape).clone()
        else:
            v = x.new_zeros(shape)
        return (v, x.new_zeros(shape)) if self.kind.startswith("cuba") else (v,)

    def forward(
        self,
        x: torch.Tensor,
        state: tuple[torch.Tensor, ...] | None = None,
        return_state: bool = False,
    ):
        """``x [T, B, *shape]`` -> ``[T, B, *shape]`` (and the final state)."""
        state = self.initial_state(x) if state is None else tuple(state)
        if self._fused is not None and fused_supported(x):
            out, v = multistep(x, state[0], self._fused)
            return (out, (v,)) if return_state else out
        out, state = self._loop(x, state)
        return (out, state) if return_state else out

    def _loop(self, x: torch.Tensor, state: tuple[torch.Tensor, ...]):
        exact = self.method == "exact"
        v = state[0]
        i_syn = state[1] if len(state) > 1 else None
        outs = []
        for x_t in x:
            if self.kind in ("if", "i"):
                h = v + self.gain * x_t
            else:
                if i_syn is not None:
                    i_syn = leaky_step(
                        i_syn,
                        x_t,
                        self.syn_tau_steps,
                        self.w_in,
                        0.0,
                        self.syn_unscaled,
                        self.syn_decay if exact else None,
                    )
                    x_t = i_syn
                h = leaky_step(
                    v,
                    x_t,
                    self.tau_steps,
                    self.gain,
                    self.v_leak,
                    self.unscaled,
                    self.decay if exact else None,
                )
            if self.kind in FIRING_KINDS:
                z = fire(h, self.v_threshold, self.strict, self.surrogate)
                v = reset(h, z, self.v_threshold, self.v_reset, self.reset_mode)
                outs.append(z)
            else:
                v = h
                outs.append(h)
        new_state = (v, i_syn) if i_syn is not None else (v,)
        return torch.stack(outs), new_state

    def extra_repr(self) -> str:
        return (
            f"kind={self.kind!r}, shape={self.shape}, dt={self.dt:g}, strict={self.strict}, "
            f"reset={self.reset_mode!r}, method={self.method!r}, fused={self._fused is not None}"
        )


class SinabsNeuron(nn.Module):
    """IF / LIF / LI as Sinabs 3.1 (``IAFSqueeze``, ``LIFSqueeze``, ``ExpLeakSqueeze``) and the
    Speck chip run them (Sinabs ``layers/functional/lif.py``, ``activation/spike_generation.py``).

    Per step: ``v = alpha v + x`` (``alpha = exp(-1 / tau)`` with ``tau`` in time steps; 1 for
    IF); the firing kinds emit ``k = trunc(v / v_threshold)`` spikes where ``v > 0`` (several per
    step), subtract ``k v_threshold``, and IF bounds the potential below by ``-v_threshold``
    (Sinabs' NIR import sets ``min_v_mem = -v_threshold``). ``r`` and ``v_leak`` are read as
    Sinabs reads them: not at all (its exporter writes ``r = 1``, ``v_leak = 0``). LI outputs ``v``.
    """

    def __init__(self, kind: str, params: dict, shape: tuple[int, ...]):
        super().__init__()
        assert kind in ("if", "lif", "li")
        self.kind, self.shape = kind, tuple(int(s) for s in shape)
        alpha = (
            torch.ones(self.shape)
            if kind == "if"
            else torch.exp(-1.0 / _param(params["tau"], self.shape).double()).float()
        )
        self.register_buffer("alpha", alpha)
        if kind != "li":
            self.register_buffer("v_threshold", _param(params["v_threshold"], self.shape))

    def initial_state(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (x.new_zeros(x.shape[1:]),)

    def forward(
        self,
        x: torch.Tensor,
        state: tuple[torch.Tensor, ...] | None = None,
        return_state: bool = False,
    ):
        """``x [T, B, *shape]`` -> spike counts (or ``v`` for LI) ``[T, B, *shape]``."""
        v = (self.initial_state(x) if state is None else tuple(state))[0]
        outs = []
        for x_t in x:
            v = self.alpha * v + x_t
            if self.kind == "li":
                outs.append(v)
                continue
            k = (v > 0) * torch.div(v, self.v_threshold, rounding_mode="trunc")
            v = v - k * self.v_threshold
            if self.kind == "if":
                v = torch.maximum(v, -self.v_threshold)
            outs.append(k)
        out = torch.stack(outs)
        return (out, (v,)) if return_state else out

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, shape={self.shape}"


class Threshold(nn.Module):
    """NIR ``Threshold``: ``z = x > threshold`` elementwise, stateless."""

    def __init__(self, threshold, shape: tuple[int, ...], surrogate: Surrogate | None = None):
        super().__init__()
        self.register_buffer("threshold", _param(threshold, tuple(shape)))
        self.surrogate = Sigmoid() if surrogate is None else surrogate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fire(x, self.threshold, True, self.surrogate)


class Delay(nn.Module):
    """NIR ``Delay``: ``y(t) = x(t - delay)``, ``delay`` (seconds) rounded to whole steps of ``dt``
    per element; zero before the first delayed input. State: the last ``max_delay`` inputs."""

    def __init__(self, delay, shape: tuple[int, ...], dt: float):
        super().__init__()
        steps = np.rint(
            np.broadcast_to(np.asarray(delay, dtype=np.float64), tuple(shape)) / dt
        ).astype(np.int64)
        self.register_buffer("steps", torch.from_numpy(np.array(steps)))
        self.max_steps = int(steps.max()) if steps.size else 0

    def initial_state(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (x.new_zeros((self.max_steps, *x.shape[1:])),)

    def forward(
        self,
        x: torch.Tensor,
        state: tuple[torch.Tensor, ...] | None = None,
        return_state: bool = False,
    ):
        history = (self.initial_state(x) if state is None else tuple(state))[0]
        full = torch.cat([history, x], 0)  # [D + T, B, *shape]
        t = torch.arange(x.shape[0], device=x.device).view(-1, *([1] * (x.dim() - 1)))
        index = (t + self.max_steps - self.steps).expand_as(x)
        out = torch.gather(full, 0, index)
        new_state = (full[full.shape[0] - self.max_steps :],) if self.max_steps else (history,)
        return (out, new_state) if return_state else out
