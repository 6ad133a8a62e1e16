"""Cutting a feed-forward NIR chain into chip layers: each layer is one linear map (a shared
convolution kernel or a dense matrix, in float) followed by a neuron population, or by nothing
(a non-spiking readout), plus an optional sum pooling of its spikes.

Linear nodes between two neuron populations are composed into one map: average / sum pooling
after a convolution becomes a larger strided kernel (conv 3x3 then 2x2 average pool = conv 4x4,
stride 2, weights / 4), pooling of spikes before a convolution or dense layer is folded into its
weights (kernel taps repeated, stride multiplied), Flatten only reorders. Nothing is expanded
into a dense matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import nir
import numpy as np

from neuroflow.emulator.errors import UnsupportedNodeError
from neuroflow.emulator.graph import chain

NEURONS = (nir.LIF, nir.IF, nir.CubaLIF, nir.LI, nir.I, nir.CubaLI)


@dataclass
class ConvMap:
    """``weight [C_out, C_in, kh, kw]``, ``bias [C_out]``, stride and zero padding (rows, cols);
    ``in_shape`` and ``out_shape`` are ``(C, H, W)``."""

    weight: np.ndarray
    bias: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int]
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]


@dataclass
class DenseMap:
    """``weight [n_out, n_in]``, ``bias [n_out]``; ``in_shape`` is the (unflattened) input."""

    weight: np.ndarray
    bias: np.ndarray
    in_shape: tuple[int, ...]
    out_shape: tuple[int]


@dataclass
class Stage:
    """One chip layer: ``linear`` (ConvMap or DenseMap) -> ``neuron`` (a NIR neuron node or
    None for a readout) -> optional ``pool`` (sum pooling of its spikes, kernel = stride)."""

    name: str
    nodes: list[str]
    linear: ConvMap | DenseMap
    neuron: object | None
    neuron_name: str | None
    pool: int = 1
    pool_node: str | None = None

    @property
    def out_shape(self) -> tuple[int, ...]:
        shape = self.linear.out_shape
        if self.pool > 1:
            c, h, w = shape
            return (c, h // self.pool, w // self.pool)
        return shape


def _pair(value) -> tuple[int, int]:
    arr = np.atleast_1d(np.asarray(value)).astype(int)
    return (int(arr[0]), int(arr[-1]))


def _conv_out(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


def _fold_pool_after_conv(conv: ConvMap, k: int, scale: float, name: str) -> ConvMap:
    """conv (stride s) then pool k (stride k) = one conv with kernel kh + (k-1) s, stride s k."""
    c_out, c_in, kh, kw = conv.weight.shape
    s = conv.stride
    new = np.zeros((c_out, c_in, kh + (k - 1) * s[0], kw + (k - 1) * s[1]))
    for a in range(k):
        for b in range(k):
            new[:, :, a * s[0] : a * s[0] + kh, b * s[1] : b * s[1] + kw] += conv.weight * scale
    c, h, w = conv.out_shape
    return ConvMap(
        new,
        conv.bias * scale * k * k,
        (s[0] * k, s[1] * k),
        conv.padding,
        conv.in_shape,
        (c, h // k, w // k),
    )


def _pool_spec(node, name: str) -> int:
    k = _pair(node.kernel_size)
    s = _pair(node.stride)
    p = _pair(node.padding)
    if k[0] != k[1] or s != k or p != (0, 0):
        raise UnsupportedNodeError(
            f"node {name!r}: only square pooling with stride = kernel and no padding "
            f"is mapped (got kernel {k}, stride {s}, padding {p})"
        )
    return k[0]


def stages(
    graph: nir.NIRGraph, input_shape: tuple[int, ...], chip: str, keep_spike_pool: bool = False
):
    """The graph's chain as a list of :class:`Stage`. ``keep_spike_pool``: a pooling node right
    after a neuron stays the layer's output pooling (Speck) instead of being folded forward."""
    names = chain(graph)
    nodes = graph.nodes
    result: list[Stage] = []
    shape = tuple(int(s) for s in input_shape)
    linear = None
    pending_pool = 1  # sum pooling (kernel, scale) of spikes not yet folded into a weight
    pending_scale = 1.0
    pre_pool_shape = shape
    flat_from = None  # the (C, H, W) a Flatten turned into a vector, for dense layers after it
    carry_scale = 1.0  # an average pool kept as the chip's sum pool: 1/k^2 goes to the next weights
    members: list[str] = []
    for name in names[1:]:
        node = nodes[name]
        kind = type(node).__name__
        if isinstance(node, nir.Output):
            break
        members.append(name)
        if isinstance(node, nir.Conv2d):
            if linear is not None:
                raise UnsupportedNodeError(
                    f"{chip}: node {name!r} follows another linear node without a neuron"
                )
            if (
                int(node.groups) != 1
                or _pair(node.dilation) != (1, 1)
                or isinstance(node.padding, str)
            ):
                raise UnsupportedNodeError(
                    f"{chip} cannot run node {name!r}: groups, dilation or string padding"
                )
            w = np.asarray(node.weight, np.float64)
            stride, pad = _pair(node.stride), _pair(node.padding)
            bias = np.broadcast_to(np.asarray(node.bias, np.float64), (w.shape[0],)).copy()
            if pending_pool > 1:  # pooled spikes into a conv: repeat each tap k x k
                k = pending_pool
                w = np.repeat(np.repeat(w, k, axis=2), k, axis=3) * pending_scale
                stride, pad = (stride[0] * k, stride[1] * k), (pad[0] * k, pad[1] * k)
                in_shape = pre_pool_shape
            else:
                in_shape = shape
            if len(shape) != 3 or w.shape[1] != shape[0]:
                raise UnsupportedNodeError(
                    f"{chip}: node {name!r} expects {w.shape[1]} input channels, gets {shape}"
                )
            h = _conv_out(
                shape[1], node.weight.shape[2], _pair(node.stride)[0], _pair(node.padding)[0]
            )
            wd = _conv_out(
                shape[2], node.weight.shape[3], _pair(node.stride)[1], _pair(node.padding)[1]
            )
            shape = (w.shape[0], h, wd)
            linear = ConvMap(w * carry_scale, bias, stride, pad, in_shape, shape)
            pending_pool, pending_scale, carry_scale = 1, 1.0, 1.0
        elif isinstance(node, nir.AvgPool2d | nir.SumPool2d):
            k = _pool_spec(node, name)
            scale = 1.0 / (k * k) if isinstance(node, nir.AvgPool2d) else 1.0
            if isinstance(linear, ConvMap):
                linear = _fold_pool_after_conv(linear, k, scale, name)
                shape = linear.out_shape
            elif (
                linear is None
                and result
                and result[-1].neuron is not None
                and keep_spike_pool
                and result[-1].pool == 1
                and pending_pool == 1
            ):
                result[-1].pool, result[-1].pool_node = k, name
                carry_scale = scale
                shape = (shape[0], shape[1] // k, shape[2] // k)
                members.pop()
                result[-1].nodes.append(name)
            elif linear is None and pending_pool == 1:
                pending_pool, pending_scale = k, scale
                pre_pool_shape = shape
                shape = (shape[0], shape[1] // k, shape[2] // k)
            else:
                raise UnsupportedNodeError(f"{chip}: node {name!r} ({kind}) cannot be folded here")
        elif isinstance(node, nir.Flatten):
            flat_from = shape if len(shape) == 3 else flat_from
            shape = (int(np.prod(shape)),)
        elif isinstance(node, nir.Linear | nir.Affine):
            if linear is not None:
                raise UnsupportedNodeError(
                    f"{chip}: node {name!r} follows another linear node without a neuron"
                )
            w = np.asarray(node.weight, np.float64)
            bias = (
                np.asarray(node.bias, np.float64)
                if isinstance(node, nir.Affine)
                else np.zeros(w.shape[0])
            )
            in_shape = flat_from if flat_from is not None and pending_pool == 1 else shape
            if pending_pool > 1:  # pooled spikes flattened into a dense layer: gather its columns
                c, hp, wp = shape_before_flatten(pre_pool_shape, pending_pool)
                ch, hh, ww = pre_pool_shape
                w4 = w.reshape(w.shape[0], c, hp, wp)
                full = np.zeros((w.shape[0], ch, hh, ww))
                for a in range(pending_pool):
                    for b in range(pending_pool):
                        full[
                            :,
                            :,
                            a : hp * pending_pool : pending_pool,
                            b : wp * pending_pool : pending_pool,
                        ] = w4
                w = full.reshape(w.shape[0], -1) * pending_scale
                in_shape = pre_pool_shape
                pending_pool, pending_scale = 1, 1.0
            if w.shape[1] != int(np.prod(in_shape)):
                raise UnsupportedNodeError(
                    f"{chip}: node {name!r} takes {w.shape[1]} inputs, gets {in_shape}"
                )
            shape = (w.shape[0],)
            linear = DenseMap(w * carry_scale, bias, in_shape, shape)
            carry_scale, flat_from = 1.0, None
        elif isinstance(node, NEURONS):
            if linear is None:
                raise UnsupportedNodeError(
                    f"{chip}: neuron node {name!r} has no synaptic layer before it"
                )
            result.append(Stage(f"layer{len(result) + 1}", members, linear, node, name))
            members, linear = [], None
        else:
            raise UnsupportedNodeError(f"{chip} cannot run node {name!r} ({kind})")
    if linear is not None:
        result.append(Stage(f"layer{len(result) + 1}", members, linear, None, None))
    if pending_pool > 1 or carry_scale != 1.0:
        pool = result[-1].pool_node if result and carry_scale != 1.0 else "the last pooling node"
        raise UnsupportedNodeError(
            f"{chip} cannot run node {pool!r} (AvgPool2d) at the end of the graph: the chip "
            f"sum-pools spikes and no layer follows to absorb the 1/k^2"
        )
    if not result:
        raise UnsupportedNodeError(f"{chip}: the graph has no layer to map")
    for stage in result:  # name layers after their weighted node, as the user wrote them
        weighted = [
            n for n in stage.nodes if isinstance(nodes[n], nir.Conv2d | nir.Linear | nir.Affine)
        ]
        stage.name = weighted[0] if weighted else stage.nodes[0]
    return result


def shape_before_flatten(pre_pool_shape: tuple[int, int, int], k: int) -> tuple[int, int, int]:
    c, h, w = pre_pool_shape
    return c, h // k, w // k


def input_shape_of(graph: nir.NIRGraph) -> tuple[int, ...]:
    node = graph.nodes[chain(graph)[0]]
    shape = node.input_type.get("input") if hasattr(node, "input_type") else None
    return tuple(int(s) for s in np.asarray(shape).ravel())
