"""The recurrent spiking reservoir of a liquid state machine: its difference equations, a plain
torch time loop (the reference) and a compiled (numba) kernel that runs the whole time loop.

One step, per sample and neuron ``j`` (Lin et al., Nat. Comput. Sci. 2025; the reservoir of
github MrLinNing/MemristorLSM: multiplicative decay, threshold, reset to 0)::

    r_j = ADC( sum_i s_i(t-1) W_ij + noise_j )          recurrent crossbar read (spikes of t-1)
    v_j = (decay * v_j + u_j(t)) + r_j                   u = the input projection's current
    s_j(t) = 1 if v_j >= threshold else 0                H(0) = 1, as SpikingJelly
    v_j = 0 where s_j(t) = 1                             hard reset

``W [N, N]`` holds the recurrent weights (rows = presynaptic neurons; an inhibitory neuron's row is
negative); ``noise_j = sqrt(sum_i s_i(t-1) Wvar_ij) eps_j(t)`` is the read noise of the RRAM
crossbar in its exact column form (see :mod:`neuroflow.rram.crossbar`) with ``Wvar`` the
per-weight noise variance (0 for software weights) and ``eps`` drawn by the caller; ``ADC`` is the
per-column quantiser (``lsb = 0``: ideal). All quantities are in the neuron's units (weights
already multiplied by the weight scale).

The kernel runs the time loop of each sample in compiled code (samples in parallel): the
recurrent sum is event-driven, adding the rows of the neurons that spiked. The torch loop does the
same arithmetic with a dense product per step; both sum ``decay * v + u`` first, then ``r``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numba
import numpy as np
import torch

from neuroflow.errors import InputShapeError, InvalidArgumentError
from neuroflow.neurons.registry import FusedKernel, get_neuron_kind, register_neuron_kind
from neuroflow.parallel import numba_parallel


def _check(u: torch.Tensor, w: torch.Tensor) -> None:
    if u.dim() != 3:
        raise InputShapeError(f"reservoir input current must be [T, B, N], got {list(u.shape)}")
    if w.dim() != 2 or w.shape[0] != w.shape[1] or w.shape[0] != u.shape[2]:
        raise InputShapeError(
            f"recurrent weights must be [N, N] with N = {u.shape[2]} neurons, got {list(w.shape)}"
        )


def adc_round(r: torch.Tensor, lsb: torch.Tensor | None, qmax: int) -> torch.Tensor:
    """Per-column ADC of the recurrent read (``lsb [N]``; ``None`` = ideal): codes in
    ``[-qmax - 1, qmax]``."""
    if lsb is None:
        return r
    return torch.clamp(torch.round(r / lsb), -qmax - 1, qmax) * lsb


def reservoir_step(
    v: torch.Tensor,
    s_prev: torch.Tensor,
    u_t: torch.Tensor,
    w: torch.Tensor,
    decay: float,
    threshold: float,
    w_var: torch.Tensor | None = None,
    eps_t: torch.Tensor | None = None,
    lsb: torch.Tensor | None = None,
    qmax: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step for ``[B, N]`` state: returns ``(spikes, v)`` after the reset. Pure torch."""
    r = s_prev @ w
    if w_var is not None and eps_t is not None:
        r = r + torch.sqrt(s_prev @ w_var) * eps_t
    r = adc_round(r, lsb, qmax)
    v = decay * v + u_t + r
    s = (v >= threshold).to(v.dtype)
    return s, v * (1.0 - s)


def run_reservoir_torch(
    u: torch.Tensor,
    w: torch.Tensor,
    decay: float,
    threshold: float,
    w_var: torch.Tensor | None = None,
    eps: torch.Tensor | None = None,
    lsb: torch.Tensor | None = None,
    qmax: int = 0,
) -> torch.Tensor:
    """The plain torch time loop: spikes ``[T, B, N]`` for input current ``u [T, B, N]``."""
    _check(u, w)
    steps, batch, n = u.shape
    v = torch.zeros(batch, n, dtype=u.dtype)
    s = torch.zeros(batch, n, dtype=u.dtype)
    out = torch.empty_like(u)
    for t in range(steps):
        s, v = reservoir_step(
            v, s, u[t], w, decay, threshold, w_var, None if eps is None else eps[t], lsb, qmax
        )
        out[t] = s
    return out


@numba.njit(cache=True, nogil=True)
def _run_sample(u, w, w_var, eps, lsb, qmax, decay, threshold, out, v_out, b, noisy, quantised):
    steps, _, n = u.shape
    v = np.zeros(n, dtype=u.dtype)
    r = np.zeros(n, dtype=u.dtype)
    q = np.zeros(n, dtype=u.dtype)
    active = np.empty(n, dtype=np.int64)
    n_active = 0
    for t in range(steps):
        for j in range(n):
            r[j] = 0.0
            q[j] = 0.0
        for k in range(n_active):
            i = active[k]
            for j in range(n):
                r[j] += w[i, j]
            if noisy:
                for j in range(n):
                    q[j] += w_var[i, j]
        if noisy:
            for j in range(n):
                r[j] += np.sqrt(q[j]) * eps[t, b, j]
        if quantised:
            for j in range(n):
                code = np.round(r[j] / lsb[j])
                if code > qmax:
                    code = qmax
                elif code < -qmax - 1:
                    code = -qmax - 1
                r[j] = code * lsb[j]
        n_active = 0
        for j in range(n):
            vj = decay * v[j] + u[t, b, j]
            vj = vj + r[j]
            if vj >= threshold:
                out[t, b, j] = 1.0
                v[j] = 0.0
                active[n_active] = j
                n_active += 1
            else:
                out[t, b, j] = 0.0
                v[j] = vj
    for j in range(n):
        v_out[b, j] = v[j]


@numba.njit(cache=True, nogil=True)
def _run_serial(u, w, w_var, eps, lsb, qmax, decay, threshold, out, v_out, noisy, quantised):
    for b in range(u.shape[1]):
        _run_sample(u, w, w_var, eps, lsb, qmax, decay, threshold, out, v_out, b, noisy, quantised)


@numba.njit(cache=True, nogil=True, parallel=True)
def _run_parallel(u, w, w_var, eps, lsb, qmax, decay, threshold, out, v_out, noisy, quantised):
    for b in numba.prange(u.shape[1]):
        _run_sample(u, w, w_var, eps, lsb, qmax, decay, threshold, out, v_out, b, noisy, quantised)


def run_reservoir(
    u: torch.Tensor,
    w: torch.Tensor,
    decay: float,
    threshold: float,
    w_var: torch.Tensor | None = None,
    eps: torch.Tensor | None = None,
    lsb: torch.Tensor | None = None,
    qmax: int = 0,
    return_potential: bool = False,
) -> torch.Tensor:
    """The compiled reservoir: spikes ``[T, B, N]`` (``u``'s dtype, float32 or float64) for input
    current ``u [T, B, N]``; the same equations as :func:`run_reservoir_torch`.

    ``w_var`` and ``eps [T, B, N]`` (read noise) go together; ``lsb [N]`` turns the ADC on. CPU.
    ``return_potential=True`` also returns the potential after the last step ``[B, N]``.
    """
    _check(u, w)
    if u.dtype not in (torch.float32, torch.float64):
        raise InvalidArgumentError(
            f"reservoir: input current must be float32 or float64, got {u.dtype}"
        )
    if (w_var is None) != (eps is None):
        raise InvalidArgumentError("reservoir: pass both w_var and eps (read noise) or neither")
    dtype = u.dtype
    un = u.detach().to("cpu").contiguous().numpy()
    wn = w.detach().to("cpu", dtype).contiguous().numpy()
    noisy = w_var is not None
    wv = (
        w_var.detach().to("cpu", dtype).contiguous().numpy()
        if noisy
        else np.zeros((1, 1), dtype=un.dtype)
    )
    ep = (
        eps.detach().to("cpu", dtype).contiguous().numpy()
        if noisy
        else np.zeros((1, 1, 1), dtype=un.dtype)
    )
    quantised = lsb is not None
    ls = (
        lsb.detach().to("cpu", dtype).contiguous().numpy()
        if quantised
        else np.ones(1, dtype=un.dtype)
    )
    out = np.empty_like(un)
    v_out = np.empty_like(un[0])
    args = (
        un,
        wn,
        wv,
        ep,
        ls,
        float(qmax),
        un.dtype.type(decay),
        un.dtype.type(threshold),
        out,
        v_out,
        noisy,
        quantised,
    )
    with numba_parallel(min(torch.get_num_threads(), un.shape[1])) as parts:
        if parts > 1:
            _run_parallel(*args)
        else:
            _run_serial(*args)
    if return_potential:
        return torch.from_numpy(out), torch.from_numpy(v_out)
    return torch.from_numpy(out)


# ------------------------------------------------------------------------------ neuron registry
@dataclass(frozen=True, eq=False)
class ReservoirParams:
    """Constant parameters of a recurrent reservoir layer (kind ``"lsm_reservoir"``).

    ``w [N, N]`` recurrent weights (rows presynaptic); ``lsb [N]`` and ``qmax`` the recurrent
    read's ADC (``lsb=None``: ideal). Compared by identity (it holds tensors).
    """

    decay: float
    v_threshold: float
    w: torch.Tensor
    lsb: torch.Tensor | None = None
    qmax: int = 0
    kind: ClassVar[str] = "lsm_reservoir"


def _reservoir_state(x: torch.Tensor, p: ReservoirParams):
    """Fresh state: potential and last step's spikes, both zeros ``[B, N]``."""
    return x.new_zeros(x.shape[1:]), x.new_zeros(x.shape[1:])


def _reservoir_kind_step(x_t, state, p: ReservoirParams, learnable):
    v, s_prev = state
    s, v = reservoir_step(
        v,
        s_prev,
        x_t,
        p.w.to(x_t.dtype),
        p.decay,
        p.v_threshold,
        lsb=None if p.lsb is None else p.lsb.to(x_t.dtype),
        qmax=p.qmax,
    )
    return s, (v, s)


def _reservoir_kernel_run(x, state, p: ReservoirParams, learnable):
    v0, s0 = state
    if bool(v0.any()) or bool(s0.any()):  # the kernel starts from rest; streaming runs the step
        from neuroflow.neurons.functional import reference_multistep

        return reference_multistep(get_neuron_kind("lsm_reservoir"), x, state, p, learnable)
    out, v = run_reservoir(
        x, p.w, p.decay, p.v_threshold, lsb=p.lsb, qmax=p.qmax, return_potential=True
    )
    return out.to(x.dtype), (v.to(x.dtype), out[-1].to(x.dtype))


#: the reservoir neuron in the neuron registry: its step is :func:`reservoir_step`, its fused
#: kernel :func:`run_reservoir` (read noise, which needs per-step draws, is passed to
#: :func:`run_reservoir` directly by the lsm model)
RESERVOIR_KIND = register_neuron_kind(
    "lsm_reservoir",
    step=_reservoir_kind_step,
    initial_state=_reservoir_state,
    kernel=FusedKernel(
        backend="numba",
        run=_reservoir_kernel_run,
        accepts=lambda x: (
            x.device.type == "cpu"
            and x.dtype in (torch.float32, torch.float64)
            and not x.requires_grad
        ),
        requirement="float32 or float64 CPU tensors without gradient (the reservoir is frozen)",
    ),
)
