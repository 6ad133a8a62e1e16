"""Meta-SpikeFormer (Spike-driven Transformer V2; Yao et al., ICLR 2024) and its registered
variants.

Structure, on ``[T, B, C_in, H, W]`` (``strides`` = (s1, ..., s5); ImageNet: 2, 2, 2, 2, 1)::

    stage 1  downsample1_1  7x7 conv, stride s1 -> C0/2 (stem*)  + conv_depths[0] ConvBlocks
             downsample1_2  LIF, 3x3 conv, stride s2 -> C0       + conv_depths[1] ConvBlocks
    stage 2  downsample2    LIF, 3x3 conv, stride s3 -> C1       + conv_depths[2] ConvBlocks
    stage 3  downsample3    LIF, 3x3 conv, stride s4 -> C2       + transformer_depths[0] blocks
    stage 4  downsample4    LIF, 3x3 conv, stride s5 -> C3       + transformer_depths[1] blocks
    head     mean over H, W -> LIF -> Linear(C3 -> classes)      [T, B, classes]
             (or, head_pool="flatten": LIF -> Linear(C3 * H' * W' -> classes))

    * the stem: real input, no LIF

Every convolution pads ``k // 2`` (the stem: ``stem_padding``), so a stride ``s`` stage maps a
side ``n`` to ``n / s`` exactly when ``s`` divides ``n``; the builder rejects input sizes that some
stride does not divide (see :func:`check_strides`). The
output is logits per time step (the reference averages them over T; neuroflow's losses do that).

Registered builders (parameter counts at 1000 classes, from the architecture; the reference
``classification/models.py`` gives the same per-module formulas):

=======================  =====================  ==============  ===============
name                     dims C0/C1/C2/C3       parameters      paper
=======================  =====================  ==============  ===============
metaspikeformer_15m      64/128/256/360         15,112,208      15.11M
metaspikeformer_31m      96/192/384/480         31,333,864      31.33M
metaspikeformer_55m      128/256/512/640        55,350,248      55.35M
metaspikeformer_event    small, 34x34 event frames: unpadded 3x3 stem, 8x8 tokens, flatten head
metaspikeformer_cifar    small, 32x32 images (strides 1,2,2,1,1)
=======================  =====================  ==============  ===============
"""

from __future__ import annotations

import functools
from typing import Literal

import torch
from torch import nn

from neuroflow.errors import InputShapeError, InvalidArgumentError
from neuroflow.layers import TimeDistributed
from neuroflow.layers.spikeformer_blocks import ConvBlock, Downsampling, TransformerBlock
from neuroflow.models.registry import MODELS
from neuroflow.neurons import LIF
from neuroflow.neurons import surrogate as surrogates

IMAGENET_STRIDES = (2, 2, 2, 2, 1)


def _positive_ints(name: str, values, length: int, minimum: int = 1) -> tuple[int, ...]:
    values = tuple(values)
    if len(values) != length or any(
        isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in values
    ):
        raise InvalidArgumentError(
            f"metaspikeformer: {name} must be {length} integers >= {minimum}, got {list(values)}"
        )
    return values


def check_strides(
    input_shape: tuple[int, ...],
    strides: tuple[int, ...],
    stem_kernel: int = 3,
    stem_padding: int | None = None,
) -> list[tuple[int, int]]:
    """The ``(H, W)`` after each downsampling.

    Raises :class:`InputShapeError` if a stride does not divide the side it receives.

    Every convolution pads ``k // 2`` except the stem, which pads ``stem_padding``; a side ``n``
    first becomes ``n + 2 p - k + 1`` (``n`` for ``k // 2`` padding) and that must be a multiple of
    the stride, so that no row or column is silently dropped.
    """
    _, h, w = input_shape
    pad = stem_kernel // 2 if stem_padding is None else stem_padding
    h, w = h + 2 * pad - stem_kernel + 1, w + 2 * pad - stem_kernel + 1
    sizes = []
    for i, s in enumerate(strides, start=1):
        if h < 1 or w < 1 or h % s or w % s:
            raise InputShapeError(
                f"metaspikeformer: input_shape {tuple(input_shape)} does not fit the strides "
                f"{list(strides)} (stem kernel {stem_kernel}, padding {pad}): downsampling {i} "
                f"(stride {s}) gets {h}x{w}, which {s} does not divide; choose a frame size or "
                "strides so that every stride divides"
            )
        h, w = h // s, w // s
        sizes.append((h, w))
    return sizes


class MetaSpikeFormer(nn.Module):
    """Meta-SpikeFormer: conv stages, then spike-driven transformer stages, then a linear head.

    Args:
        num_classes: logits per time step.
        input_shape: one frame ``(C, H, W)``; every stride must divide the side it receives.
        dims: ``(C0, C1, C2, C3)``; stage 1 runs at ``C0/2`` then ``C0`` (C0 even).
        conv_depths: ConvBlocks after downsampling 1_1, 1_2 and 2 (reference: 1, 1, 2).
        transformer_depths: transformer blocks in stages 3 and 4 (reference: 6, 2).
        strides: the five downsampling strides (reference: 2, 2, 2, 2, 1).
        stem_kernel: kernel of the first convolution (reference: 7).
        stem_padding: its padding; ``None`` = ``stem_kernel // 2`` (size-preserving). ``0`` lets
            34x34 event frames become 32x32, which halves cleanly.
        num_heads: attention heads (must divide C2 and C3).
        mlp_ratio: hidden width factor of the ConvBlock and MLP.
        attention_version: 2 (``LIF(Q K^T V)``) or 1 (``Q * LIF(sum K*V)``).
        attention_scale: the V2 scale (0.125 in the reference). Few tokens and narrow heads give
            small ``Q K^T V`` sums: a larger scale lets a small model's attention neuron fire
            sooner.
        head_pool: ``"mean"`` over tokens before the head (reference) or ``"flatten"`` (the head
            sees every token: ``Linear(C3 * H' * W')``; small event variant, where the mean-pooled
            features of a shallow network learn far slower on N-MNIST).
        tau, detach_reset, surrogate, surrogate_alpha, backend: the LIF neurons (threshold 1, hard
            reset to 0; the attention neuron has threshold 0.5).

    Input ``[T, B, C, H, W]`` float; output ``[T, B, num_classes]``.
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: tuple[int, ...],
        dims: list[int] = (64, 128, 256, 360),
        conv_depths: list[int] = (1, 1, 2),
        transformer_depths: list[int] = (6, 2),
        strides: list[int] = IMAGENET_STRIDES,
        stem_kernel: int = 7,
        stem_padding: int | None = None,
        num_heads: int = 8,
        mlp_ratio: int = 4,
        attention_version: int = 2,
        attention_scale: float = 0.125,
        head_pool: Literal["mean", "flatten"] = "mean",
        tau: float = 2.0,
        detach_reset: bool = True,
        surrogate: Literal["sigmoid", "atan", "rectangular"] = "sigmoid",
        surrogate_alpha: float = 4.0,
        backend: Literal["auto", "numba", "torch"] = "auto",
    ):
        super().__init__()
        if len(input_shape) != 3:
            raise InvalidArgumentError(
                f"metaspikeformer: input_shape must be (C, H, W), got {input_shape}"
            )
        c0, c1, c2, c3 = dims = _positive_ints("dims", dims, 4)
        conv_depths = _positive_ints("conv_depths", conv_depths, 3, minimum=0)
        transformer_depths = _positive_ints("transformer_depths", transformer_depths, 2, minimum=0)
        strides = _positive_ints("strides", strides, 5)
        if c0 % 2:
            raise InvalidArgumentError(
                f"metaspikeformer: dims[0] must be even (stage 1 starts at C0/2), got {c0}"
            )
        if c2 % num_heads or c3 % num_heads:
            raise InvalidArgumentError(
                f"metaspikeformer: num_heads={num_heads} must divide dims[2]={c2} and dims[3]={c3}"
            )
        if (
            stem_kernel < 1
            or stem_kernel % 2 == 0
            or (stem_padding is not None and stem_padding < 0)
        ):
            raise InvalidArgumentError(
                f"metaspikeformer: stem_kernel must be odd and stem_padding >= 0, "
                f"got {stem_kernel} and {stem_padding}"
            )
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = num_classes
        self.feature_sizes = check_strides(self.input_shape, strides, stem_kernel, stem_padding)

        sg = (
            surrogates.get_surrogate(surrogate, alpha=surrogate_alpha)
            if surrogate != "rectangular"
            else surrogates.get_surrogate(surrogate)
        )
        neuron = functools.partial(
            LIF,
            tau=tau,
            v_threshold=1.0,
            v_reset=0.0,
            detach_reset=detach_reset,
            surrogate=sg,
            backend=backend,
        )

        def convs(dim: int, n: int) -> nn.Sequential:
            return nn.Sequential(*(ConvBlock(dim, neuron, mlp_ratio) for _ in range(n)))

        def blocks(dim: int, n: int) -> nn.Sequential:
            return nn.Sequential(
                *(
                    TransformerBlock(
                        dim, num_heads, neuron, mlp_ratio, attention_version, attention_scale
                    )
                    for _ in range(n)
                )
            )

        self.downsample1_1 = Downsampling(
            self.input_shape[0], c0 // 2, stem_kernel, strides[0], neuron=None, padding=stem_padding
        )
        self.conv_blocks1_1 = convs(c0 // 2, conv_depths[0])
        self.downsample1_2 = Downsampling(c0 // 2, c0, 3, strides[1], neuron)
        self.conv_blocks1_2 = convs(c0, conv_depths[1])
        self.downsample2 = Downsampling(c0, c1, 3, strides[2], neuron)
        self.conv_blocks2 = convs(c1, conv_depths[2])
        self.downsample3 = Downsampling(c1, c2, 3, strides[3], neuron)
        self.blocks3 = blocks(c2, transformer_depths[0])
        self.downsample4 = Downsampling(c2, c3, 3, strides[4], neuron)
        self.blocks4 = blocks(c3, transformer_depths[1])
        if head_pool not in ("mean", "flatten"):
            raise InvalidArgumentError(
                f"metaspikeformer: head_pool must be 'mean' or 'flatten', got {head_pool!r}"
            )
        self.head_pool = head_pool
        h, w = self.feature_sizes[-1]
        self.head_lif = neuron()
        self.head = TimeDistributed(
            nn.Flatten(), nn.Linear(c3 * (1 if head_pool == "mean" else h * w), num_classes)
        )
        nn.init.trunc_normal_(self.head[1].weight, std=0.02)
        nn.init.zeros_(self.head[1].bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, B, C, H, W]`` -> the last stage's membrane stream ``[T, B, C3, H', W']``."""
        for stage in (
            self.downsample1_1,
            self.conv_blocks1_1,
            self.downsample1_2,
            self.conv_blocks1_2,
            self.downsample2,
            self.conv_blocks2,
            self.downsample3,
            self.blocks3,
            self.downsample4,
            self.blocks4,
        ):
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or tuple(x.shape[2:]) != self.input_shape:
            raise InputShapeError(
                f"metaspikeformer expects [T, B, {', '.join(map(str, self.input_shape))}], "
                f"got {list(x.shape)}"
            )
        x = self.features(x)
        return self.head(self.head_lif(x.mean(dim=(-2, -1)) if self.head_pool == "mean" else x))


def _variant(name: str, dims, doc: str, input_shape_default, **arch):
    """Register a fixed-architecture builder whose config keys are the training-related options."""

    def builder(
        num_classes: int = 1000,
        input_shape: tuple[int, ...] = input_shape_default,
        attention_version: int = 2,
        tau: float = 2.0,
        detach_reset: bool = True,
        surrogate: Literal["sigmoid", "atan", "rectangular"] = "sigmoid",
        surrogate_alpha: float = 4.0,
        backend: Literal["auto", "numba", "torch"] = "auto",
    ) -> MetaSpikeFormer:
        return MetaSpikeFormer(
            num_classes,
            input_shape,
            dims=dims,
            attention_version=attention_version,
            tau=tau,
            detach_reset=detach_reset,
            surrogate=surrogate,
            surrogate_alpha=surrogate_alpha,
            backend=backend,
            **arch,
        )

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = doc
    return MODELS.register(name)(builder)


metaspikeformer = MODELS.register("metaspikeformer")(MetaSpikeFormer)
metaspikeformer_15m = _variant(
    "metaspikeformer_15m",
    (64, 128, 256, 360),
    "Meta-SpikeFormer 15.11M (ImageNet, 224x224x3).",
    (3, 224, 224),
)
metaspikeformer_31m = _variant(
    "metaspikeformer_31m",
    (96, 192, 384, 480),
    "Meta-SpikeFormer 31.33M (ImageNet, 224x224x3).",
    (3, 224, 224),
)
metaspikeformer_55m = _variant(
    "metaspikeformer_55m",
    (128, 256, 512, 640),
    "Meta-SpikeFormer 55.35M (ImageNet, 224x224x3).",
    (3, 224, 224),
)
metaspikeformer_event = _variant(
    "metaspikeformer_event",
    (16, 32, 48, 48),
    "Small Meta-SpikeFormer for 34x34 event frames (N-MNIST): an unpadded 3x3/s2 stem makes 16x16, "
    "then 8x8 = 64 tokens; one conv and one transformer block; flatten head.",
    (2, 34, 34),
    conv_depths=(1, 0, 0),
    transformer_depths=(1, 0),
    strides=(2, 2, 1, 1, 1),
    stem_kernel=3,
    stem_padding=0,
    num_heads=8,
    head_pool="flatten",
)
metaspikeformer_cifar = _variant(
    "metaspikeformer_cifar",
    (32, 64, 128, 128),
    "Small Meta-SpikeFormer for 32x32 images (CIFAR): 8x8 = 64 tokens.",
    (3, 32, 32),
    conv_depths=(1, 1, 1),
    transformer_depths=(2, 1),
    strides=(1, 2, 2, 1, 1),
    stem_kernel=3,
    num_heads=8,
)
