"""The fused CPU kernel of the (P)LIF / IF kinds, and what it implements.

:data:`LIF_KERNEL` is the :class:`~neuroflow.neurons.registry.FusedKernel` that the kinds
``"lif"``, ``"if"`` and ``"plif"`` declare. It runs float32 tensors on the CPU and implements:

- the charges of :mod:`neuroflow.neurons.dynamics` (codes :data:`CHARGE_CODES`, the ``kind``
  argument of :mod:`neuroflow.neurons.cpu_kernels`),
- the surrogates :data:`SURROGATE_CODES`, by **exact type**: a subclass of ``Sigmoid`` that
  overrides ``grad``, or any user surrogate, is not the kernel's and runs on the torch step,
- hard and soft reset, ``detach_reset``, and both firing rules (``h >= v_th`` and, ``strict``,
  ``h > v_th``).

Parameters are read by attribute (``model``, ``tau``, ``decay_input``, ``v_threshold``,
``v_reset``, ``detach_reset``, ``surrogate``, ``strict``), as :class:`~neuroflow.neurons.dynamics.
Dynamics` holds them.
"""

from __future__ import annotations

import numpy as np
import torch

from neuroflow.neurons import cpu_kernels
from neuroflow.neurons.registry import FusedKernel
from neuroflow.neurons.surrogate import ATan, Rectangular, Sigmoid
from neuroflow.parallel import numba_parallel

#: (model, decay_input) -> the kernel's charge code (see :func:`cpu_kernels._step_row`)
CHARGE_CODES = {
    ("lif", True): 0,
    ("lif", False): 1,
    ("if", True): 2,
    ("if", False): 2,
    ("plif", True): 3,
    ("plif", False): 4,
}
#: surrogate type (exact) -> the kernel's surrogate code (see :func:`cpu_kernels._backward_row`)
SURROGATE_CODES = {Sigmoid: 0, ATan: 1, Rectangular: 2}


def fused_supported(x: torch.Tensor) -> bool:
    """Whether the fused CPU kernel can run on ``x`` (float32 on the CPU)."""
    return x.device.type == "cpu" and x.dtype == torch.float32


# Below this many elements (T x M) one thread is faster than starting parallel work.
_PARALLEL_MIN_ELEMENTS = 1 << 16


def _column_bounds(steps: int, m: int) -> np.ndarray:
    """``[parts + 1]`` boundaries splitting ``m`` columns into one contiguous, block-aligned range
    per thread (``torch.get_num_threads``)."""
    workers = max(1, torch.get_num_threads())
    if workers == 1 or steps * m < _PARALLEL_MIN_ELEMENTS:
        return np.array([0, m], dtype=np.int64)
    block = cpu_kernels.block_columns(steps)
    blocks = -(-m // block)
    per = -(-blocks // workers) * block
    return np.array([*range(0, m, per), m], dtype=np.int64)


def _run_columns(serial, parallel, bounds: np.ndarray, arrays: tuple, rest: tuple) -> None:
    """``serial(*arrays, lo, hi, *rest)`` over one column range, or ``parallel(*arrays, bounds,
    *rest)`` over several (numba's OpenMP threads; see :mod:`~neuroflow.neurons.cpu_kernels`)."""
    with numba_parallel(bounds.shape[0] - 1) as parts:
        if parts > 1:
            parallel(*arrays, bounds, *rest)
        else:
            serial(*arrays, bounds[0], bounds[-1], *rest)


def _kernel_scalars(dyn, w: torch.Tensor | None):
    """``(tau, q, v_threshold, margin, v_reset)`` as float32, the kernels' run-time scalars.

    The kernels fire where ``h - v_threshold >= margin``: 0 for ``h >= v_threshold``; for the
    strict rule ``h > v_threshold`` the (exact) distance to the next float32 above the threshold
    (see :mod:`~neuroflow.neurons.cpu_kernels`)."""
    q = float(torch.sigmoid(w.detach().float())) if w is not None else 0.0
    tau = dyn.tau if dyn.tau is not None else 1.0
    v_reset = 0.0 if dyn.v_reset is None else dyn.v_reset
    th = np.float32(dyn.v_threshold)
    margin = np.nextafter(th, np.float32(np.inf)) - th if dyn.strict else np.float32(0.0)
    return np.float32(tau), np.float32(q), th, np.float32(margin), np.float32(v_reset)


def _flags(dyn) -> tuple[int, bool]:
    """``(charge code, soft reset)``: the forward's variant flags."""
    return CHARGE_CODES[(dyn.model, bool(dyn.decay_input))], dyn.v_reset is None


class _FusedMultistep(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, v0, w, dyn):
        steps = x.shape[0]
        x2 = x.detach().reshape(steps, -1).contiguous()
        v2 = v0.detach().reshape(-1).contiguous()
        spikes = torch.empty_like(x2)
        v_last = torch.empty_like(v2)
        scalars = _kernel_scalars(dyn, w)
        arrays = (x2.numpy(), v2.numpy(), spikes.numpy(), v_last.numpy())
        _run_columns(
            cpu_kernels.forward,
            cpu_kernels.forward_columns,
            _column_bounds(*x2.shape),
            arrays,
            (*_flags(dyn), *scalars),
        )
        ctx.save_for_backward(x2, v2, w)
        ctx.dyn = dyn
        ctx.scalars = scalars
        ctx.x_shape = x.shape
        return spikes.view(x.shape), v_last.view(x.shape[1:])

    @staticmethod
    def backward(ctx, grad_spikes, grad_v_last):
        x2, v2, w = ctx.saved_tensors
        dyn = ctx.dyn
        steps, m = x2.shape
        if grad_spikes is None:
            grad_spikes = torch.zeros_like(x2)
        gs = grad_spikes.reshape(steps, m)
        # a gradient broadcast over neurons (loss = spikes.sum()) stays [T, 1]
        gs = (gs[:, :1] if gs.stride(1) == 0 else gs).contiguous().float()
        gv = (
            torch.zeros_like(v2)
            if grad_v_last is None
            else grad_v_last.reshape(m).contiguous().float()
        )
        grad_x = torch.empty_like(x2)
        grad_v0 = torch.empty_like(v2)
        bounds = _column_bounds(steps, m)
        grad_q = np.zeros(bounds.shape[0] - 1, dtype=np.float64)  # one PLIF partial sum per range
        arrays = (x2.numpy(), v2.numpy(), gs.numpy(), gv.numpy(), grad_x.numpy(), grad_v0.numpy())
        flags = (*_flags(dyn), dyn.detach_reset, LIF_KERNEL.surrogate_code(dyn))
        rest = (*flags, *ctx.scalars, np.float32(dyn.surrogate.alpha))
        _run_columns(
            cpu_kernels.backward, cpu_kernels.backward_columns, bounds, (*arrays, grad_q), rest
        )
        grad_w = None
        if w is not None and ctx.needs_input_grad[2]:
            qt = torch.sigmoid(w.detach().float())
            grad_w = (torch.tensor(grad_q.sum(), dtype=torch.float32) * qt * (1 - qt)).to(w.dtype)
        return grad_x.view(ctx.x_shape), grad_v0.view(ctx.x_shape[1:]), grad_w, None


def _run(x: torch.Tensor, v0: torch.Tensor, dyn, w: torch.Tensor | None):
    return _FusedMultistep.apply(x, v0, w, dyn)


#: below this threshold magnitude the spacing of float32 values is subnormal, and a processor
#: set to flush subnormals to zero would turn the strict margin into 0 (see _kernel_scalars)
_STRICT_MIN_THRESHOLD = 2.0**-100


def _restriction(dyn) -> str | None:
    if (getattr(dyn, "model", None), bool(getattr(dyn, "decay_input", True))) not in CHARGE_CODES:
        return f"it implements the charges of {sorted({m for m, _ in CHARGE_CODES})}"
    if dyn.strict and abs(dyn.v_threshold) < _STRICT_MIN_THRESHOLD:
        return (
            f"it implements strict firing for |v_threshold| >= 2**-100, got "
            f"v_threshold={dyn.v_threshold!r}"
        )
    return None


LIF_KERNEL = FusedKernel(
    backend="numba",
    run=_run,
    accepts=fused_supported,
    requirement="float32 tensors on the CPU",
    surrogates=SURROGATE_CODES,
    restriction=_restriction,
)
