"""``scnn``: a small spiking CNN for event frames such as N-MNIST's ``[T, B, 2, 34, 34]``.

Structure (one stage per entry of ``channels``; two by default)::

    conv1  TimeDistributed(Conv2d 3x3 (pad 1, no bias), BatchNorm2d, AvgPool2d 2)   [T,B,C1,17,17]
    lif1   LIF                                                                      spikes 0/1
    conv2  TimeDistributed(Conv2d 3x3, BatchNorm2d, AvgPool2d 2)                     [T,B,C2,8,8]
    lif2   LIF
    fc     TimeDistributed(Flatten, Linear(C2*8*8 -> num_classes))                  [T,B,classes]

The output is real-valued logits at every time step; losses average them over time. Pooling sits
before the neuron, so every layer after the first receives binary spikes (and conv, BN and pool are
all linear, so the order costs nothing). Average (not max) pooling is the default because NIR has
AvgPool2d / SumPool2d nodes but no max pooling. The model is a plain ``nn.Sequential`` of named
children with no state kept between calls, so exporters can walk it layer by layer.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

import torch
from torch import nn

from neuroflow.errors import InputShapeError, InvalidArgumentError
from neuroflow.layers import TimeDistributed
from neuroflow.models.registry import MODELS
from neuroflow.neurons import LIF
from neuroflow.neurons import surrogate as surrogates


def make_surrogate(name: str, alpha: float, width: float) -> surrogates.Surrogate:
    """The surrogate for a config name: ``alpha`` for sigmoid/atan, ``width`` for rectangular."""
    kwargs = {"width": width} if name == "rectangular" else {"alpha": alpha}
    return surrogates.get_surrogate(name, **kwargs)


class SCNN(nn.Sequential):
    """Spiking CNN: (conv3x3 - BN - pool - LIF) x len(channels), then a linear readout.

    Args:
        num_classes: output logits per time step.
        input_shape: one frame ``(C, H, W)``, e.g. ``(2, 34, 34)``.
        channels: output channels of each conv stage; each stage halves H and W (floor).
        pool: ``"avg"`` or ``"max"`` 2x2 pooling.
        batch_norm: BatchNorm2d after each conv (statistics over time and batch).
        tau, v_threshold, v_reset, detach_reset, backend: LIF parameters (``v_reset=None``
            means soft reset by subtraction).
        surrogate, surrogate_alpha, surrogate_width: the surrogate gradient.

    Input ``[T, B, C, H, W]`` float; output ``[T, B, num_classes]`` logits.
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: tuple[int, ...],
        channels: list[int] = (16, 32),
        pool: Literal["avg", "max"] = "avg",
        batch_norm: bool = True,
        tau: float = 2.0,
        v_threshold: float = 1.0,
        v_reset: float | None = 0.0,
        detach_reset: bool = False,
        surrogate: Literal["sigmoid", "atan", "rectangular"] = "sigmoid",
        surrogate_alpha: float = 4.0,
        surrogate_width: float = 1.0,
        backend: Literal["auto", "numba", "torch"] = "auto",
    ):
        if len(input_shape) != 3:
            raise InvalidArgumentError(f"scnn: input_shape must be (C, H, W), got {input_shape}")
        if not channels or any(c < 1 for c in channels):
            raise InvalidArgumentError(f"scnn: channels must be positive integers, got {channels}")
        in_ch, h, w = (int(s) for s in input_shape)
        if min(h, w) < 2 ** len(channels):
            raise InvalidArgumentError(
                f"scnn: {len(channels)} pooling stages need frames of at least "
                f"{2 ** len(channels)}x{2 ** len(channels)}, got {h}x{w}"
            )
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i, out_ch in enumerate(channels, start=1):
            stage = [nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=not batch_norm)]
            if batch_norm:
                stage.append(nn.BatchNorm2d(out_ch))
            stage.append(nn.AvgPool2d(2) if pool == "avg" else nn.MaxPool2d(2))
            layers[f"conv{i}"] = TimeDistributed(*stage)
            layers[f"lif{i}"] = LIF(
                tau=tau,
                v_threshold=v_threshold,
                v_reset=v_reset,
                detach_reset=detach_reset,
                surrogate=make_surrogate(surrogate, surrogate_alpha, surrogate_width),
                backend=backend,
            )
            in_ch, h, w = out_ch, h // 2, w // 2
        layers["fc"] = TimeDistributed(nn.Flatten(), nn.Linear(in_ch * h * w, num_classes))
        super().__init__(layers)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or tuple(x.shape[2:]) != self.input_shape:
            raise InputShapeError(
                f"scnn expects [T, B, {', '.join(map(str, self.input_shape))}], got {list(x.shape)}"
            )
        return super().forward(x)


#: the registry entry (a class is a builder: its ``__init__`` keywords are the config keys)
scnn = MODELS.register("scnn")(SCNN)
