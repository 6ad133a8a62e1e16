"""Functional multi-step neurons: pure functions of ``(x [T, B, ...], state)``, any registered kind.

:func:`multistep` looks the kind up from ``params.kind`` (:mod:`neuroflow.neurons.registry`) and
runs its fused kernel where the kernel implements the input, the surrogate and the options, else
the kind's pure-torch step in a loop over time (any dtype and device). Both give identical spikes
and gradients within float32 rounding (tested for every kernel).
"""

from __future__ import annotations

from typing import Any

import torch

from neuroflow.errors import InputShapeError, InvalidArgumentError
from neuroflow.neurons.dynamics import validate_input
from neuroflow.neurons.fused import fused_supported
from neuroflow.neurons.registry import NeuronKind, kind_of

__all__ = ["BACKENDS", "fused_supported", "multistep", "reference_multistep", "resolve_backend"]

BACKENDS = ("auto", "numba", "torch")


def resolve_backend(backend: str, x: torch.Tensor, params: Any) -> str:
    """``"torch"`` or the kernel's backend (``"numba"``) that runs ``params`` on ``x``.

    ``"auto"`` takes the kind's fused kernel when it implements ``x`` (device, dtype), the
    surrogate (exact type) and the options, else the torch step. Naming the kernel's backend
    requires it: :class:`InvalidArgumentError` says what it does not implement."""
    if backend not in BACKENDS:
        raise InvalidArgumentError(f"backend must be one of {BACKENDS}, got backend={backend!r}")
    return _choose(backend, x, kind_of(params), params)


def _choose(backend: str, x: torch.Tensor, kind: NeuronKind, params: Any) -> str:
    if backend == "torch":
        return "torch"
    kernel = kind.kernel
    if backend == "auto":
        if kernel is None or not kernel.accepts(x) or kernel.why_not(params) is not None:
            return "torch"
        return kernel.backend
    if kernel is None or kernel.backend != backend:
        raise InvalidArgumentError(
            f"backend={backend!r}: neuron kind {kind.name!r} has no {backend} kernel. "
            "Use backend='auto' or 'torch'."
        )
    if not kernel.accepts(x):
        raise InvalidArgumentError(
            f"backend={backend!r} runs {kernel.requirement}; got dtype {x.dtype} on {x.device}. "
            "Use backend='auto' or 'torch'."
        )
    reason = kernel.why_not(params)
    if reason is not None:
        raise InvalidArgumentError(
            f"backend={backend!r} cannot run neuron kind {kind.name!r}: {reason}. "
            "Use backend='auto' (falls back to the torch step) or 'torch'."
        )
    return backend


def reference_multistep(
    kind: NeuronKind, x: torch.Tensor, state: Any, params: Any, learnable: Any = None
) -> tuple[torch.Tensor, Any]:
    """The kind's torch ``step`` over time (once over all of ``x`` for a stateless kind)."""
    if kind.stateless:
        return kind.step(x, None, params, learnable)
    outs = []
    for x_t in x:
        out, state = kind.step(x_t, state, params, learnable)
        outs.append(out)
    return torch.stack(outs), state


def multistep(
    x: torch.Tensor,
    state: Any,
    params: Any,
    w: Any = None,
    backend: str = "auto",
) -> tuple[torch.Tensor, Any]:
    """Run a layer of neurons of any registered kind over time.

    Args:
        x: input current ``[T, B, ...]``, floating-point unless the kind declares
            ``integer_input`` (a stateless kind takes any shape).
        state: the state before the first step (``[B, ...]`` for the (P)LIF / IF potential);
            ``None`` = the kind's fresh state.
        params: the layer's constant parameters; ``params.kind`` names the registered kind
            (e.g. :class:`~neuroflow.neurons.dynamics.Dynamics`).
        w: the trainable tensor the step reads (PLIF's ``w``, ``1/tau = sigmoid(w)``), or ``None``.
        backend: ``"auto"`` (the fused kernel where it implements the layer), ``"numba"`` or
            ``"torch"``.

    Returns:
        ``(out [T, B, ...], final state)``; spikes are in ``x.dtype``; a stateless kind's final
        state is ``None``.
    """
    kind = kind_of(params)
    if backend not in BACKENDS:
        raise InvalidArgumentError(f"backend must be one of {BACKENDS}, got backend={backend!r}")
    integer = kind.integer_input
    if kind.stateless:
        if not isinstance(x, torch.Tensor) or not (integer or x.is_floating_point()):
            what = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
            raise InputShapeError(f"x must be a floating-point tensor, got {what}")
    elif state is None:
        validate_input(x, None, integer=integer)
        state = kind.initial_state(x, params)
    elif isinstance(state, torch.Tensor):
        validate_input(x, state, integer=integer)
        if x.is_floating_point():
            state = state.to(dtype=x.dtype)
    else:  # a tuple of tensors, each [B, ...]
        validate_input(x, None, integer=integer)
        for i, s in enumerate(state):
            validate_input(x, s, state_name=f"state[{i}]", integer=integer)
    if _choose(backend, x, kind, params) == "torch":
        return reference_multistep(kind, x, state, params, w)
    return kind.kernel.run(x, state, params, w)
