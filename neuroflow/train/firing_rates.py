"""Firing rates of every spiking neuron layer, measured with forward hooks.

A layer's rate is the mean of its output over all elements it produced (time steps x batch x
neurons): for binary spikes, the fraction of (neuron, step) pairs that fired. The overall rate is
total spikes over total elements, i.e. the layers weighted by their output size.
"""

from __future__ import annotations

import torch
from torch import nn

from neuroflow.neurons import SpikingNeuron


class FiringRateMonitor:
    """Context manager accumulating spike sums and element counts per ``SpikingNeuron``.

    ``with FiringRateMonitor(model) as mon: model(x)`` then ``mon.rates()``. Names are the
    modules' names in ``model`` (e.g. ``lif1``).
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.sums: dict[str, float] = {}
        self.counts: dict[str, float] = {}
        self._handles = []

    def __enter__(self) -> FiringRateMonitor:
        for name, module in self.model.named_modules():
            if isinstance(module, SpikingNeuron):
                self.sums[name] = 0.0
                self.counts[name] = 0.0
                self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _hook(self, name: str):
        def hook(module, inputs, output):
            out = output[0] if isinstance(output, (tuple, list)) else output
            self.sums[name] += float(out.detach().sum(dtype=torch.float64))
            self.counts[name] += out.numel()

        return hook

    def names(self) -> list[str]:
        return list(self.sums)

    def totals(self) -> list[float]:
        """``[sum_0, count_0, sum_1, count_1, ...]`` for all-reducing across ranks."""
        return [v for n in self.sums for v in (self.sums[n], self.counts[n])]

    def load_totals(self, values) -> None:
        for i, n in enumerate(self.sums):
            self.sums[n], self.counts[n] = float(values[2 * i]), float(values[2 * i + 1])

    def rates(self) -> dict[str, float]:
        return {n: self.sums[n] / self.counts[n] if self.counts[n] else 0.0 for n in self.sums}

    def mean_rate(self) -> float:
        total = sum(self.counts.values())
        return sum(self.sums.values()) / total if total else 0.0
