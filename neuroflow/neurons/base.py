"""The base class of every neuron module: a thin ``nn.Module`` over a registered kind.

Monitors, energy counters and exporters find spiking layers by ``isinstance(m, SpikingNeuron)``.
A subclass names its registered kind (:mod:`neuroflow.neurons.registry`) in ``kind`` and returns
its constant parameters from :meth:`SpikingNeuron.neuron_params`; the forward pass is
:func:`neuroflow.neurons.functional.multistep`, the same for every kind.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from neuroflow.errors import InvalidArgumentError
from neuroflow.neurons.functional import BACKENDS, multistep


class SpikingNeuron(nn.Module):
    """Base class of neuroflow's neurons (no parameters of its own).

    Subclasses set ``kind`` and implement :meth:`neuron_params` (and :meth:`learnable` if the
    step reads a trainable tensor). ``backend``: ``"auto"`` (the kind's fused kernel where it
    implements the layer), the kernel's name (``"numba"``, required) or ``"torch"``.
    """

    #: the registered neuron kind this module runs
    kind: ClassVar[str] = ""

    def __init__(self, backend: str = "auto"):
        super().__init__()
        if backend not in BACKENDS:
            raise InvalidArgumentError(
                f"backend must be one of {BACKENDS}, got backend={backend!r}"
            )
        self.backend = backend

    def neuron_params(self) -> Any:
        """The layer's constant parameters (a frozen object whose ``kind`` names the kind)."""
        raise NotImplementedError

    def learnable(self) -> torch.Tensor | None:
        """The trainable tensor the kind's step reads (PLIF's ``w``), else ``None``."""
        return None

    def forward(self, x: torch.Tensor, state: Any = None, return_state: bool = False):
        """``x [T, B, ...]`` -> spikes ``[T, B, ...]`` (and the final state, ``[B, ...]`` for a
        membrane potential, ``None`` for a stateless kind)."""
        out, state = multistep(x, state, self.neuron_params(), self.learnable(), self.backend)
        return (out, state) if return_state else out
