"""The neuron registry: each neuron kind declared once, with its update equation and its kernel.

A **kind** (``"lif"``, ``"if"``, ``"plif"``, ``"multispike"``, ...) is a :class:`NeuronKind`:

- ``step(x_t, state, params, learnable) -> (out_t, state)``: one time step in pure torch,
  differentiable by autograd (spikes through a :mod:`~neuroflow.neurons.surrogate`). It is the
  ground truth: the ``"torch"`` backend runs it in a loop over time, and every fused kernel is
  tested against it.
- ``initial_state(x, params) -> state``: the fresh state for an input ``x [T, B, ...]`` (a tensor
  ``[B, ...]`` or a tuple of them). ``None`` declares a **stateless** kind: its ``step`` is
  elementwise and is applied once to the whole input (any shape), with ``state=None``.
- ``kernel``: an optional :class:`FusedKernel`, a faster implementation of the same equations,
  which declares the surrogates and options it implements. Anything it does not implement runs
  on ``step``.
- ``integer_input``: the step also takes integer tensors (chip neurons that compute in integers);
  otherwise the input must be floating-point.

``params`` is a frozen, hashable object (usually a dataclass) whose ``kind`` attribute names the
registered kind; ``learnable`` is whatever trainable tensor the step reads (PLIF's ``w``) or
``None``. :func:`neuroflow.neurons.functional.multistep` runs any kind from its ``params``.

Adding a kind (see ``docs/neurons.md``)::

    @dataclass(frozen=True)
    class DecayParams:
        decay: float
        v_threshold: float
        surrogate: Surrogate = Sigmoid()
        kind: ClassVar[str] = "decay"

    def decay_step(x_t, v, p, learnable):
        h = p.decay * v + x_t
        s = p.surrogate(h - p.v_threshold)
        return s, h * (1.0 - s)

    register_neuron_kind("decay", step=decay_step,
                         initial_state=lambda x, p: x.new_zeros(x.shape[1:]))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from neuroflow.errors import InvalidArgumentError
from neuroflow.registry import Registry

#: ``step(x_t, state, params, learnable) -> (out_t, state)``
StepFunction = Callable[[torch.Tensor, Any, Any, Any], tuple[torch.Tensor, Any]]
#: ``initial_state(x, params) -> state``
InitialState = Callable[[torch.Tensor, Any], Any]


def _no_restriction(params: Any) -> str | None:
    return None


@dataclass(frozen=True)
class FusedKernel:
    """A fused implementation of a kind's multi-step update.

    Attributes:
        backend: the ``backend=`` name that selects it (``"numba"``).
        run: ``run(x, state, params, learnable) -> (out [T, B, ...], final state)``; differentiable
            (an autograd function) in the inputs, the state and ``learnable``.
        surrogates: the **exact** surrogate types it implements (``type(params.surrogate)`` must
            be one of them; a subclass that overrides ``grad`` is another surrogate), mapped to the
            kernel's own code for each. Empty for a kernel whose kind has no surrogate.
        accepts: ``accepts(x) -> bool``, whether it runs on this input (device, dtype).
        requirement: a sentence saying which inputs ``accepts`` takes (used in error messages).
        restriction: ``restriction(params) -> str | None``: why it cannot run these parameters
            (an option it does not implement), or ``None`` when it can.
    """

    backend: str
    run: Callable[..., tuple[torch.Tensor, Any]]
    accepts: Callable[[torch.Tensor], bool]
    requirement: str
    surrogates: Mapping[type, int] = field(default_factory=dict)
    restriction: Callable[[Any], str | None] = _no_restriction

    def surrogate_code(self, params: Any) -> int:
        """The kernel's code for ``params.surrogate`` (its exact type; see :meth:`why_not`)."""
        return self.surrogates[type(params.surrogate)]

    def why_not(self, params: Any) -> str | None:
        """Why this kernel cannot run ``params`` (a surrogate or option it lacks), or ``None``."""
        if self.surrogates:
            sg = getattr(params, "surrogate", None)
            if type(sg) not in self.surrogates:
                known = ", ".join(t.__name__ for t in self.surrogates)
                return (
                    f"it implements the surrogates {known} (exact types), not {sg!r} "
                    f"of type {type(sg).__module__}.{type(sg).__qualname__}"
                )
        return self.restriction(params)


@dataclass(frozen=True)
class NeuronKind:
    """One registered neuron kind (see the module docstring)."""

    name: str
    step: StepFunction
    initial_state: InitialState | None = None
    kernel: FusedKernel | None = None
    integer_input: bool = False

    @property
    def stateless(self) -> bool:
        return self.initial_state is None


NEURON_KINDS: Registry[NeuronKind] = Registry("neuron kind")


def register_neuron_kind(
    name: str,
    *,
    step: StepFunction,
    initial_state: InitialState | None = None,
    kernel: FusedKernel | None = None,
    integer_input: bool = False,
) -> NeuronKind:
    """Declare the neuron kind ``name``: its update equation ``step``, its fresh state
    (``None``: stateless), optionally a fused ``kernel``, and whether the step takes integer
    inputs. Returns the :class:`NeuronKind`.

    A name can be registered once (:class:`~neuroflow.errors.RegistryError` otherwise)."""
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"a neuron kind needs a non-empty name, got {name!r}")
    if not callable(step):
        raise InvalidArgumentError(f"neuron kind {name!r}: step must be callable, got {step!r}")
    if initial_state is not None and not callable(initial_state):
        raise InvalidArgumentError(
            f"neuron kind {name!r}: initial_state must be callable or None, got {initial_state!r}"
        )
    if kernel is not None and not isinstance(kernel, FusedKernel):
        raise InvalidArgumentError(
            f"neuron kind {name!r}: kernel must be a FusedKernel, got {type(kernel).__name__}"
        )
    kind = NeuronKind(name, step, initial_state, kernel, bool(integer_input))
    NEURON_KINDS.register(name)(kind)
    return kind


def get_neuron_kind(name: str) -> NeuronKind:
    """The registered kind ``name`` (:class:`~neuroflow.errors.RegistryError` naming the known
    kinds if there is none)."""
    return NEURON_KINDS.get(name)


def kind_of(params: Any) -> NeuronKind:
    """The registered kind that ``params`` names by its ``kind`` attribute."""
    name = getattr(params, "kind", None)
    if not isinstance(name, str):
        raise InvalidArgumentError(
            f"neuron parameters must name their kind in a 'kind' attribute, got "
            f"{type(params).__name__} without one"
        )
    return get_neuron_kind(name)
