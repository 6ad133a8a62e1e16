"""Spike-driven check: does every synaptic operation after the first read spikes?

A network is *spike-driven* (Spike-driven Transformer V1/V2) when every matrix multiplication and
convolution except the input encoding layer multiplies weights (or another spike tensor) by binary
or non-negative integer spikes, so that on neuromorphic hardware it becomes additions only.

:func:`check_spike_driven` runs the model once under a ``TorchDispatchMode`` that sees every aten
convolution and matrix product (``nn.Conv*``, ``nn.Linear`` and ``@`` all end there), checks each
operand that is not a parameter of the model, and reports the sites where an operand holds a value
that is negative or not an integer. The first synaptic operation of the forward pass is the
encoding layer and is exempt. Sites are named by the innermost module running at the time.

Run it on the inference form: :func:`neuroflow.layers.reparameterize` fuses RepConv and SepConv
chains (consecutive linear maps) into single convolutions, which is how the paper counts them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

#: aten ops that are synaptic (multiply-accumulate) operations, and which arguments are operands
SYNAPTIC_OPS = {
    aten.convolution.default: (0, 1),
    aten.mm.default: (0, 1),
    aten.bmm.default: (0, 1),
    aten.addmm.default: (1, 2),
    aten.baddbmm.default: (1, 2),
}


@dataclass(frozen=True)
class Violation:
    """One synaptic operation whose non-parameter operand is not (integer) spikes."""

    index: int  # order of the operation among all synaptic operations of the forward pass
    site: str  # module name (``blocks3.0.attn``) or ``<model>`` for code outside any submodule
    op: str  # aten op, e.g. ``aten.convolution.default``
    operand: int  # argument position of the offending tensor
    min_value: float
    non_integer_fraction: float

    def __str__(self) -> str:
        return (
            f"#{self.index} {self.site}: {self.op} operand {self.operand} is not spikes "
            f"(min {self.min_value:.3g}, {100 * self.non_integer_fraction:.1f}% non-integer)"
        )


@dataclass
class SpikeDrivenReport:
    """What :func:`check_spike_driven` saw: the synaptic sites in order and the violations."""

    sites: list[tuple[str, str]]  # (module name, aten op) per synaptic operation, first = encoder
    violations: list[Violation]

    @property
    def ok(self) -> bool:
        return not self.violations

    def __str__(self) -> str:
        first = self.sites[0] if self.sites else None
        head = f"{len(self.sites)} synaptic operations, first (encoding) exempt: {first}"
        return "\n".join(
            [head] + [str(v) for v in self.violations] + (["spike-driven: yes"] if self.ok else [])
        )


def is_spikes(x: torch.Tensor) -> bool:
    """True when every element is a non-negative integer (binary spikes included)."""
    return bool(((x >= 0) & (x == torch.round(x))).all())


class _SynapticOpRecorder(TorchDispatchMode):
    def __init__(self, parameter_storages: set[int], module_stack: list[str]):
        super().__init__()
        self.parameter_storages = parameter_storages
        self.module_stack = module_stack
        self.sites: list[tuple[str, str]] = []
        self.violations: list[Violation] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        operands = SYNAPTIC_OPS.get(func)
        if operands is not None:
            index = len(self.sites)
            site = self.module_stack[-1] if self.module_stack else "<model>"
            self.sites.append((site, str(func)))
            for pos in operands:
                x = args[pos]
                if (
                    index == 0
                    or x.untyped_storage().data_ptr() in self.parameter_storages
                    or is_spikes(x)
                ):
                    continue
                x = x.detach()
                self.violations.append(
                    Violation(
                        index,
                        site,
                        str(func),
                        pos,
                        float(x.min()),
                        float((x != torch.round(x)).float().mean()),
                    )
                )
        return func(*args, **(kwargs or {}))


@torch.no_grad()
def check_spike_driven(model: nn.Module, x: torch.Tensor) -> SpikeDrivenReport:
    """Run ``model(x)`` once and report every non-spike operand of a convolution or matmul.

    Parameters and buffers (weights, including transposed views of them) are not operands under
    test; everything else is: activations, and both sides of an activation-activation product
    such as ``Q @ (K^T V)``. The model's mode (train/eval) is left as the caller set it.
    """
    storages = {
        t.untyped_storage().data_ptr() for t in list(model.parameters()) + list(model.buffers())
    }
    stack: list[str] = []
    handles = []

    def leave(module, args, output) -> None:  # a hook's return value would replace the output
        stack.pop()

    for name, module in model.named_modules():
        if name:
            handles.append(
                module.register_forward_pre_hook(lambda m, a, name=name: stack.append(name))
            )
            handles.append(module.register_forward_hook(leave))
    try:
        with _SynapticOpRecorder(storages, stack) as recorder:
            model(x)
    finally:
        for h in handles:
            h.remove()
    return SpikeDrivenReport(recorder.sites, recorder.violations)
