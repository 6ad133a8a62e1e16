"""Meta-SpikeFormer blocks (Spike-driven Transformer V2, Yao et al., ICLR 2024), on
``[T, B, C, H, W]``.

Every block keeps the *membrane shortcut*: blocks add real-valued outputs to a real-valued stream
and each branch starts with its own spiking neuron, so every convolution after the stem sees
spikes (at inference, after :func:`reparameterize`).

- :class:`Downsampling`: ``[LIF] -> conv k x k / s (bias) -> BN``; the stem has no LIF (it encodes
  the real-valued input: the only multiply-accumulate layer).
- :class:`SepConv`: ``LIF -> 1x1 C->rC + BN -> LIF -> depthwise 7x7 -> 1x1 rC->C + BN`` (r = 2).
- :class:`ConvBlock`: ``x += SepConv(x); x += [LIF, 3x3 C->4C + BN, LIF, 3x3 4C->C + BN](x)``.
- :class:`SpikeMLP`: ``LIF -> 1x1 C->4C (bias) + BN -> LIF -> 1x1 4C->C (bias) + BN``.
- :class:`TransformerBlock`: ``x += SDSA(x); x += MLP(x)``.

Biases and BN placement follow the reference code (BICLab/Spike-Driven-Transformer-V2,
``classification/models.py``), so parameter counts match the paper's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from neuroflow.layers.repconv import RepConv
from neuroflow.layers.spike_attention import SpikeDrivenSelfAttention
from neuroflow.layers.time_distributed import TimeDistributed

NeuronFactory = Callable[..., nn.Module]


class Downsampling(nn.Module):
    """``[LIF] -> Conv2d(k, stride, padding, bias) -> BN``.

    Shapes: ``[T, B, C_in, H, W] -> [T, B, C_out, H/s, W/s]``.

    ``padding=None`` pads ``k // 2`` (size-preserving before the stride).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        neuron: NeuronFactory | None,
        padding: int | None = None,
    ):
        super().__init__()
        self.lif = neuron() if neuron is not None else None
        self.conv = TimeDistributed(
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding=kernel_size // 2 if padding is None else padding,
            ),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x if self.lif is None else self.lif(x))


class SepConv(nn.Module):
    """Inverted separable convolution (MobileNetV2 style) with spiking inputs; same shape out."""

    def __init__(self, dim: int, neuron: NeuronFactory, expansion: int = 2, kernel_size: int = 7):
        super().__init__()
        mid = expansion * dim
        self.lif1 = neuron()
        self.pwconv1 = TimeDistributed(nn.Conv2d(dim, mid, 1, bias=False), nn.BatchNorm2d(mid))
        self.lif2 = neuron()
        self.dwconv_pwconv2 = TimeDistributed(
            nn.Conv2d(mid, mid, kernel_size, padding=kernel_size // 2, groups=mid, bias=False),
            nn.Conv2d(mid, dim, 1, bias=False),
            nn.BatchNorm2d(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dwconv_pwconv2(self.lif2(self.pwconv1(self.lif1(x))))

    @torch.no_grad()
    def reparameterize_(self) -> None:
        """Fuse the depthwise and pointwise convolutions into one dense ``k x k`` convolution.

        They are consecutive linear maps, so ``W[o, m, :, :] = P[o, m] D[m, :, :]``; afterwards the
        only convolution of the branch's second half reads the spikes of ``lif2``.
        """
        dw, pw = self.dwconv_pwconv2[0], self.dwconv_pwconv2[1]
        fused = nn.Conv2d(
            dw.in_channels, pw.out_channels, dw.kernel_size, padding=dw.padding, bias=False
        )
        fused = fused.to(device=dw.weight.device, dtype=dw.weight.dtype)
        fused.weight.copy_(pw.weight[:, :, 0, 0, None, None] * dw.weight[None, :, 0])
        self.dwconv_pwconv2 = TimeDistributed(fused, self.dwconv_pwconv2[2])


def conv_bn(in_channels: int, out_channels: int, kernel_size: int, bias: bool) -> TimeDistributed:
    return TimeDistributed(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias),
        nn.BatchNorm2d(out_channels),
    )


class ConvBlock(nn.Module):
    """Meta-SpikeFormer conv block: SepConv token mixer + 3x3 channel conv, both residual."""

    def __init__(self, dim: int, neuron: NeuronFactory, mlp_ratio: int = 4):
        super().__init__()
        self.sepconv = SepConv(dim, neuron)
        self.lif1 = neuron()
        self.conv1 = conv_bn(dim, mlp_ratio * dim, 3, bias=False)
        self.lif2 = neuron()
        self.conv2 = conv_bn(mlp_ratio * dim, dim, 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.sepconv(x)
        return x + self.conv2(self.lif2(self.conv1(self.lif1(x))))


class SpikeMLP(nn.Module):
    """Channel MLP as 1x1 convolutions on spikes: ``[T, B, C, H, W]`` -> same shape."""

    def __init__(self, dim: int, neuron: NeuronFactory, mlp_ratio: int = 4):
        super().__init__()
        self.lif1 = neuron()
        self.fc1 = conv_bn(dim, mlp_ratio * dim, 1, bias=True)
        self.lif2 = neuron()
        self.fc2 = conv_bn(mlp_ratio * dim, dim, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.lif2(self.fc1(self.lif1(x))))


class TransformerBlock(nn.Module):
    """Meta-SpikeFormer transformer block: ``x += SDSA(x); x += MLP(x)`` (membrane shortcuts)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        neuron: NeuronFactory,
        mlp_ratio: int = 4,
        attention_version: int = 2,
        attention_scale: float = 0.125,
    ):
        super().__init__()
        self.attn = SpikeDrivenSelfAttention(
            dim, num_heads, neuron, version=attention_version, scale=attention_scale
        )
        self.mlp = SpikeMLP(dim, neuron, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


def reparameterize(model: nn.Module) -> nn.Module:
    """Put ``model`` in eval mode and fuse every :class:`RepConv` and :class:`SepConv` in place.

    The result computes the same function as the eval-mode training form (up to float rounding) with
    one convolution per synaptic layer. Returns ``model``.
    """
    model.eval()
    for module in list(model.modules()):
        if isinstance(module, (RepConv, SepConv)):
            module.reparameterize_()
    return model
