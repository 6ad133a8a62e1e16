"""Functional multi-step neurons: pure functions of ``(x [T, B, ...], v [B, ...])``.

``multistep`` dispatches to the fused CPU kernel (float32 on the CPU) or to the pure-torch
reference (any dtype and device); both give identical spikes and gradients within float32 rounding.
"""

from __future__ import annotations

import numpy as np
import torch

from neuroflow.errors import InvalidArgumentError
from neuroflow.neurons import cpu_kernels
from neuroflow.neurons.dynamics import Dynamics, initial_state, multistep_reference, validate_input
from neuroflow.parallel import numba_parallel

BACKENDS = ("auto", "numba", "torch")


def fused_supported(x: torch.Tensor) -> bool:
    """Whether the fused CPU kernel can run on ``x`` (float32 on the CPU, no forward-mode AD)."""
    return x.device.type == "cpu" and x.dtype == torch.float32


def resolve_backend(backend: str, x: torch.Tensor) -> str:
    if backend not in BACKENDS:
        raise InvalidArgumentError(f"backend must be one of {BACKENDS}, got backend={backend!r}")
    if backend == "auto":
        return "numba" if fused_supported(x) else "torch"
    if backend == "numba" and not fused_supported(x):
        raise InvalidArgumentError(
            f"backend='numba' runs float32 tensors on the CPU; got dtype {x.dtype} on {x.device}. "
            "Use backend='auto' or 'torch'."
        )
    return backend


def multistep(
    x: torch.Tensor,
    state: torch.Tensor | None,
    dyn: Dynamics,
    w: torch.Tensor | None = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a layer of neurons over time.

    Args:
        x: input current ``[T, B, ...]``.
        state: membrane potential ``[B, ...]`` before the first step; ``None`` = fresh state.
        dyn: the layer's constant parameters.
        w: PLIF's learnable scalar (``1/tau = sigmoid(w)``), else ``None``.
        backend: ``"auto"`` (fused kernel where supported), ``"numba"`` or ``"torch"``.

    Returns:
        ``(spikes [T, B, ...], v_T [B, ...])``; spikes are 0/1 in ``x.dtype``.
    """
    validate_input(x, state)
    v0 = initial_state(x, dyn) if state is None else state.to(dtype=x.dtype)
    if resolve_backend(backend, x) == "torch":
        return multistep_reference(x, v0, dyn, w)
    return _FusedMultistep.apply(x, v0, w, dyn)


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


def _kernel_scalars(dyn: Dynamics, w: torch.Tensor | None):
    """``(tau, q, v_threshold, v_reset)`` as float32, the kernels' run-time scalars."""
    q = float(torch.sigmoid(w.detach().float())) if w is not None else 0.0
    tau = dyn.tau if dyn.tau is not None else 1.0
    return np.float32(tau), np.float32(q), np.float32(dyn.v_threshold), np.float32(dyn.reset_value)


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
        flags = (dyn.charge_kind, dyn.v_reset is None)
        _run_columns(cpu_kernels.forward, cpu_kernels.forward_columns, _column_bounds(*x2.shape), arrays,
                     (*flags, *scalars))
        ctx.save_for_backward(x2, v2, w)
        ctx.dyn = dyn
        ctx.scalars = scalars
        ctx.x_shape = x.shape
        return spikes.view(x.shape), v_last.view(x.shape[1:])

    @staticmethod
    def backward(ctx, grad_spikes, grad_v_last):
        x2, v2, w = ctx.saved_tensors
        dyn: Dynamics = ctx.dyn
        steps, m = x2.shape
        if grad_spikes is None:
            grad_spikes = torch.zeros_like(x2)
        gs = grad_spikes.reshape(steps, m)
        # a gradient broadcast over neurons (loss = spikes.sum()) stays [T, 1]
        gs = (gs[:, :1] if gs.stride(1) == 0 else gs).contiguous().float()
        gv = torch.zeros_like(v2) if grad_v_last is None else grad_v_last.reshape(m).contiguous().float()
        grad_x = torch.empty_like(x2)
        grad_v0 = torch.empty_like(v2)
        bounds = _column_bounds(steps, m)
        grad_q = np.zeros(bounds.shape[0] - 1, dtype=np.float64)  # one PLIF partial sum per range
        arrays = (x2.numpy(), v2.numpy(), gs.numpy(), gv.numpy(), grad_x.numpy(), grad_v0.numpy())
        flags = (dyn.charge_kind, dyn.v_reset is None, dyn.detach_reset, dyn.surrogate.kind)
        rest = (*flags, *ctx.scalars, np.float32(dyn.surrogate.alpha))
        _run_columns(cpu_kernels.backward, cpu_kernels.backward_columns, bounds, (*arrays, grad_q), rest)
        grad_w = None
        if w is not None and ctx.needs_input_grad[2]:
            qt = torch.sigmoid(w.detach().float())
            grad_w = (torch.tensor(grad_q.sum(), dtype=torch.float32) * qt * (1 - qt)).to(w.dtype)
        return grad_x.view(ctx.x_shape), grad_v0.view(ctx.x_shape[1:]), grad_w, None
