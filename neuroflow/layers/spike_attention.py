"""Spike-driven self-attention (SDSA): Spike-driven Transformer V1 (Yao et al., NeurIPS 2023)
and V2.

Functional core (pure functions on spike tensors; ``...`` = any leading dims such as ``T, B``):

- :func:`split_heads` ``[..., C, H, W]`` -> ``[..., heads, N, d]`` with ``N = H W`` tokens,
  ``d = C / heads``; :func:`merge_heads` inverts it.
- :func:`sdsa_v2` ``Q (K^T V) * scale`` (V2, eq. of SDSA-3 in the paper): ``K^T V`` is a ``d x d``
  matrix per head, so the cost is ``O(N d^2)``, linear in the number of tokens. Q, K, V are binary,
  so ``K^T V`` holds non-negative integers (co-firing counts) and both products only add.
- :func:`sdsa_v1_mask` ``sum over tokens of K * V`` (V1): one ``d``-vector per head, fed to a
  spiking neuron; the V1 output is ``Q * LIF(mask)`` (a column mask, no matmul at all).

The products are plain ``torch.matmul`` calls on the spike tensors so operation counters see them.

Module :class:`SpikeDrivenSelfAttention` on ``[T, B, C, H, W]`` (membrane potentials in, real
values out, as in Meta-SpikeFormer where the block adds the result to its membrane shortcut)::

    x -> LIF -> {Q, K, V} = LIF(BN(RepConv(.)))        spikes [T, B, C, H, W]
      -> V2: LIF_0.5(Q (K^T V) * scale)  |  V1: Q * LIF_0.5(sum_tokens K * V)
      -> BN(RepConv(.))                                  [T, B, C, H, W]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from neuroflow.errors import InputShapeError, InvalidArgumentError
from neuroflow.layers.repconv import RepConv
from neuroflow.layers.time_distributed import TimeDistributed


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``[..., C, H, W]`` -> ``[..., heads, H*W, C/heads]``.

    Channel ``c`` goes to head ``c // d``.
    """
    *lead, c, h, w = x.shape
    if c % heads:
        raise InputShapeError(f"split_heads: {c} channels do not split into {heads} heads")
    return x.reshape(*lead, heads, c // heads, h * w).transpose(-1, -2)


def merge_heads(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``[..., heads, N, d]`` -> ``[..., heads*d, height, width]``.

    The inverse of :func:`split_heads`.
    """
    *lead, heads, n, d = x.shape
    if n != height * width:
        raise InputShapeError(f"merge_heads: {n} tokens do not fill {height}x{width}")
    return x.transpose(-1, -2).reshape(*lead, heads * d, height, width)


def sdsa_v2(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """V2 spike-driven attention scores ``Q (K^T V) * scale``.

    Shapes: ``q``, ``k``, ``v`` ``[..., N, d]`` -> ``[..., N, d]``.

    The product is ordered so that ``K^T V`` (``[..., d, d]``) is formed first: ``O(N d^2)`` time
    and ``O(N d + d^2)`` memory instead of the ``O(N^2 d)`` / ``O(N^2)`` of ``(Q K^T) V``.
    """
    # scaling in place saves one [..., N, d] temporary; bmm keeps its inputs, not its output,
    # for backward
    return (q @ (k.transpose(-2, -1) @ v)).mul_(scale)


def sdsa_v1_mask(k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """V1 channel mask input ``sum over tokens of K * V``: ``[..., N, d]`` x2 -> ``[..., 1, d]``."""
    return (k * v).sum(dim=-2, keepdim=True)


def repconv_bn(dim: int) -> TimeDistributed:
    """RepConv + BatchNorm on every time step (the Q/K/V and output projections of SDSA)."""
    return TimeDistributed(RepConv(dim, dim), nn.BatchNorm2d(dim))


class SpikeDrivenSelfAttention(nn.Module):
    """Multi-head spike-driven self-attention on ``[T, B, C, H, W]`` (returns the same shape).

    Args:
        dim: channels ``C``; must divide into ``num_heads``.
        num_heads: heads; each attends over all ``H*W`` tokens with ``d = C / num_heads``.
        version: ``2`` (``LIF_0.5(Q (K^T V) * scale)``, Meta-SpikeFormer) or ``1``
            (``Q * LIF_0.5(sum_tokens K * V)``, Spike-driven Transformer V1).
        neuron: factory ``neuron(**overrides) -> module`` for the spiking neurons; the attention
            neuron is built with ``v_threshold=attention_threshold``.
        scale: the V2 score scale (0.125 in the reference code).
        attention_threshold: threshold of the neuron after the attention product (0.5).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        neuron: Callable[..., nn.Module],
        version: Literal[1, 2] = 2,
        scale: float = 0.125,
        attention_threshold: float = 0.5,
    ):
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            raise InvalidArgumentError(
                f"SpikeDrivenSelfAttention: dim={dim} must split into num_heads={num_heads}"
            )
        if version not in (1, 2):
            raise InvalidArgumentError(
                f"SpikeDrivenSelfAttention: version must be 1 or 2, got {version!r}"
            )
        self.dim, self.num_heads, self.version, self.scale = dim, num_heads, version, float(scale)
        self.head_lif = neuron()
        self.q_conv, self.k_conv, self.v_conv = repconv_bn(dim), repconv_bn(dim), repconv_bn(dim)
        self.q_lif, self.k_lif, self.v_lif = neuron(), neuron(), neuron()
        self.attn_lif = neuron(v_threshold=attention_threshold)
        self.proj_conv = repconv_bn(dim)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The spiking attention output ``[T, B, C, H, W]`` (spikes) before the projection."""
        h, w = x.shape[-2:]
        s = self.head_lif(x)
        q, k, v = (
            split_heads(lif(conv(s)), self.num_heads)
            for conv, lif in (
                (self.q_conv, self.q_lif),
                (self.k_conv, self.k_lif),
                (self.v_conv, self.v_lif),
            )
        )
        if self.version == 2:
            return merge_heads(self.attn_lif(sdsa_v2(q, k, v, self.scale)), h, w)
        return merge_heads(q * self.attn_lif(sdsa_v1_mask(k, v)), h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[2] != self.dim:
            raise InputShapeError(
                f"SpikeDrivenSelfAttention expects [T, B, {self.dim}, H, W], got {list(x.shape)}"
            )
        return self.proj_conv(self.attention(x))

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, num_heads={self.num_heads}, version={self.version}, "
            f"scale={self.scale:g}"
        )
