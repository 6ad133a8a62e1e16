"""``speck_cnn``: a spiking CNN in the layer shapes Speck (DYNAP-CNN) runs natively.

Structure (one stage per entry of ``channels``)::

    conv{i}  TimeDistributed(Conv2d 3x3, pad 1, no bias)         [T, B, C_i, H, W]
    if{i}    MultiSpikeIF: IF, several spikes per step, subtractive reset (as Speck)
    pool{i}  TimeDistributed(AvgPool2d 2)                         [T, B, C_i, H/2, W/2]
    fc       TimeDistributed(Flatten, Linear(no bias))            [T, B, classes] logits
    out      MultiSpikeIF (``spiking_readout=True``)              [T, B, classes] spike counts

Average pooling of spikes equals the chip's sum pooling with the 1/4 moved into the next
layer's weights, which is how the emulator maps it; the readout's logits run on the chip as an
integrate-and-fire layer whose spike counts rank the classes. That is an approximation (a
class whose input turns negative late keeps the spikes it already fired): with
``spiking_readout=True`` the model is trained on the output spike counts the chip produces.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from neuroflow.errors import InvalidArgumentError
from neuroflow.layers import TimeDistributed
from neuroflow.models.registry import MODELS
from neuroflow.models.scnn import make_surrogate
from neuroflow.neurons import IF


class MultiSpikeIF(IF):
    """IF with Speck's spike rule: ``v += x``; ``n = floor(v / v_threshold)`` spikes when
    ``v > 0`` (several per step); ``v -= n v_threshold`` (Sinabs ``IAFSqueeze`` with MultiSpike
    and MembraneSubtract). Exported to NIR as an IF with subtractive reset; the Speck emulator
    runs it with this rule. Gradient: the surrogate of the first spike, ``d n / d v`` at
    ``v = v_threshold``. Input ``[T, B, ...]``, fresh state each call.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        theta = self.v_threshold
        v = torch.zeros_like(x[0])
        out = []
        for t in range(x.shape[0]):
            v = v + x[t]
            first = self.surrogate(v - theta)
            count = torch.floor(torch.clamp(v, min=0) / theta).detach()
            spikes = count + (first - first.detach())
            v = v - count * theta
            out.append(spikes)
        return torch.stack(out)


class SpeckCNN(nn.Sequential):
    """(conv3x3 no bias - IF subtractive - avgpool 2) x len(channels), then Linear (no bias).

    Input ``[T, B, C, H, W]`` event frames; output ``[T, B, num_classes]`` logits.
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: tuple[int, ...],
        channels: list[int] = (8, 16),
        v_threshold: float = 1.0,
        surrogate: str = "sigmoid",
        surrogate_alpha: float = 4.0,
        surrogate_width: float = 1.0,
        backend: str = "auto",
        spiking_readout: bool = False,
    ):
        if len(input_shape) != 3 or not channels or any(c < 1 for c in channels):
            raise InvalidArgumentError(
                f"speck_cnn: input_shape must be (C, H, W) and channels positive, got "
                f"{input_shape}, {channels}"
            )
        in_ch, h, w = (int(s) for s in input_shape)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i, out_ch in enumerate(channels, start=1):
            layers[f"conv{i}"] = TimeDistributed(nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False))
            layers[f"if{i}"] = MultiSpikeIF(
                v_threshold=v_threshold,
                v_reset=None,
                surrogate=make_surrogate(surrogate, surrogate_alpha, surrogate_width),
                backend=backend,
            )
            layers[f"pool{i}"] = TimeDistributed(nn.AvgPool2d(2))
            in_ch, h, w = out_ch, h // 2, w // 2
        layers["fc"] = TimeDistributed(
            nn.Flatten(), nn.Linear(in_ch * h * w, num_classes, bias=False)
        )
        if spiking_readout:  # the class is the output layer's spike count, as on the chip
            layers["out"] = MultiSpikeIF(
                v_threshold=v_threshold,
                v_reset=None,
                surrogate=make_surrogate(surrogate, surrogate_alpha, surrogate_width),
            )
        super().__init__(layers)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = num_classes


speck_cnn = MODELS.register("speck_cnn")(SpeckCNN)
