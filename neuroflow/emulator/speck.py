"""Speck / DYNAP-CNN as Sinabs 3.1.3 simulates it (``sinabs/backend/dynapcnn``, ``IAFSqueeze``).

Each of the 9 cores runs convolution -> integrate-and-fire -> sum pooling. Per tick, with no
delay between layers (Sinabs' time-binned simulation):

    v += conv(s_in) (+ bias)               8-bit weights, one scale per layer
    n = trunc(v / thr) if v > 0 else 0     several spikes per tick (MultiSpike)
    v -= n * thr                           subtractive reset (MembraneSubtract)
    v = max(v, min_v_mem)                  lower bound (default -2^15)
    s_out = sum_pool_k(n)

The state is 16 bits on the chip; like Sinabs, the emulator does not saturate it (a network
whose potential leaves int16 is outside what either models). Memory per core (words):
kernel ``c_in * 2^(ceil(log2(kh kw)) + ceil(log2 c_out))``, neurons
``c_out * 2^(ceil(log2 h) + ceil(log2 w))`` (conv output map); layers are placed on cores by a
bipartite matching of layer demands against each core's memories.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numba
import numpy as np

from neuroflow.emulator.conv_events import deliver_conv_events
from neuroflow.emulator.errors import ChipCapacityError, InputRangeError, UnsupportedNodeError
from neuroflow.emulator.profile import chip_profile, limit, price
from neuroflow.emulator.result import LayerStats, RunResult
from neuroflow.emulator.stages import ConvMap, input_shape_of, stages

MIN_V_MEM = -(2**15)


@dataclass
class SpeckLayer:
    """One core's integers: ``weight [C_out, C_in, k, k]`` int8, ``bias [C_out]``, ``threshold``,
    ``min_v_mem``, conv ``stride`` / ``padding``, output sum ``pool``; ``out_shape`` is the
    conv output map ``(C, H, W)`` before pooling."""

    name: str
    weight: np.ndarray
    bias: np.ndarray
    threshold: int
    min_v_mem: int
    stride: tuple[int, int]
    padding: tuple[int, int]
    pool: int
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    core: int = -1
    quantisation: dict = field(default_factory=dict)

    @property
    def kernel_memory(self) -> int:
        c_out, c_in, kh, kw = self.weight.shape
        return c_in * 2 ** (math.ceil(math.log2(kh * kw)) + math.ceil(math.log2(c_out)))

    @property
    def neuron_memory(self) -> int:
        c, h, w = self.out_shape
        return c * 2 ** (math.ceil(math.log2(h)) + math.ceil(math.log2(w)))

    @property
    def pooled_shape(self) -> tuple[int, int, int]:
        c, h, w = self.out_shape
        return (c, h // self.pool, w // self.pool)


@dataclass
class SpeckNetwork:
    layers: list[SpeckLayer]
    input_shape: tuple[int, int, int]
    dt: float = 1e-3
    hardware: str = "speck"
    approximations: list[str] = field(default_factory=list)

    def run(self, x, processes: int = 1) -> RunResult:
        """Run integer DVS events ``x [T, B, C, H, W]`` (counts >= 0 per pixel and tick).
        Output: the last layer's (pooled) spike counts ``[T, B, ...]``. ``processes > 1``
        shards the streams ``B`` over worker processes (same result)."""
        if processes != 1:
            from neuroflow.emulator.shard import run_sharded

            return run_sharded(self, x, processes)
        x = np.asarray(x)
        if x.ndim != 5 or tuple(x.shape[2:]) != tuple(self.input_shape):
            raise InputRangeError(
                f"speck: input must be [T, B, {', '.join(map(str, self.input_shape))}] event "
                f"counts, got {list(x.shape)}"
            )
        if x.size and (x.min() < 0 or x.max() > 255):
            raise InputRangeError(
                f"speck: input events must be 0..255 per pixel and tick, got "
                f"{int(x.min())}..{int(x.max())}"
            )
        T, B = x.shape[:2]
        s = np.ascontiguousarray(x, np.int32)
        profile = chip_profile(self.hardware)
        stats, spikes = [], {}
        for layer in self.layers:
            c, h, w = layer.pooled_shape
            out = np.zeros((T, B, c, h, w), np.int32)
            raw = np.zeros((T, B) + tuple(layer.out_shape), np.int32)
            events = np.zeros(B, np.int64)
            kernel = np.ascontiguousarray(layer.weight.transpose(1, 2, 3, 0).astype(np.int32))
            fn = _speck_serial
            fn(
                s,
                kernel,
                layer.bias.astype(np.int64),
                layer.stride[0],
                layer.stride[1],
                layer.padding[0],
                layer.padding[1],
                layer.threshold,
                layer.min_v_mem,
                layer.pool,
                raw,
                out,
                events,
            )
            kc = f"kernel_memory_core{layer.core}"
            nc = f"neuron_memory_core{layer.core}"
            mem = {
                "kernel_memory": (layer.kernel_memory, limit(profile, kc)),
                "neuron_memory": (layer.neuron_memory, limit(profile, nc)),
            }
            stats.append(
                LayerStats(
                    layer.name,
                    (layer.core,),
                    int(events.sum()),
                    T * B * int(np.prod(layer.out_shape)),
                    int(raw.sum(dtype=np.int64)),
                    mem,
                )
            )
            spikes[layer.name] = raw
            s = out
        energy, parts = price(profile, stats, B)
        return RunResult(s, spikes, stats, T, B, energy, parts, T * self.dt)

    def resources(self) -> list[dict]:
        return [
            {
                "name": ly.name,
                "core": ly.core,
                "kernel_memory": ly.kernel_memory,
                "neuron_memory": ly.neuron_memory,
                "weight_shape": list(ly.weight.shape),
                "stride": list(ly.stride),
                "pool": ly.pool,
            }
            for ly in self.layers
        ]


def _speck_body(s, kernel, bias, sh, sw, ph, pw, thr, vmin, pool, raw, out, events):
    T, B = s.shape[0], s.shape[1]
    c_out = kernel.shape[3]
    Ho, Wo = raw.shape[3], raw.shape[4]
    for b in range(B):
        v = np.zeros((Ho, Wo, c_out), np.int64)
        ev = 0
        for t in range(T):
            ev += deliver_conv_events(s[t, b], kernel, v, sh, sw, ph, pw)
            for oy in range(Ho):
                for ox in range(Wo):
                    for o in range(c_out):
                        vv = v[oy, ox, o] + bias[o]
                        n = vv // thr if vv > 0 else 0
                        vv -= n * thr
                        v[oy, ox, o] = vv if vv > vmin else vmin
                        if n > 0:
                            raw[t, b, o, oy, ox] = n
                            py, px = oy // pool, ox // pool
                            if py < out.shape[3] and px < out.shape[4]:
                                out[t, b, o, py, px] += n
        events[b] = ev


_speck_serial = numba.njit(cache=True)(_speck_body)


def _assign_cores(layers: list[SpeckLayer], profile) -> None:
    """Place each layer on its own core with enough kernel and neuron memory (augmenting-path
    bipartite matching); a layer no core can hold, or too many layers, is a named error."""
    n_cores = limit(profile, "cores")
    kern = [limit(profile, f"kernel_memory_core{c}") for c in range(n_cores)]
    neur = [limit(profile, f"neuron_memory_core{c}") for c in range(n_cores)]
    if len(layers) > n_cores:
        raise ChipCapacityError(
            f"speck: the network has {len(layers)} layers; the chip has {n_cores} "
            f"cores ({len(layers) - n_cores} too many)"
        )
    fits = []
    for layer in layers:
        ok = [
            c
            for c in range(n_cores)
            if layer.kernel_memory <= kern[c] and layer.neuron_memory <= neur[c]
        ]
        if not ok:
            best_n = max(
                neur[c] for c in range(n_cores) if kern[c] >= min(layer.kernel_memory, max(kern))
            )
            if layer.neuron_memory > max(neur) or layer.neuron_memory > best_n:
                cap = max(neur)
                core = neur.index(cap)
                raise ChipCapacityError(
                    f"speck: {layer.name} needs {layer.neuron_memory:,} neuron-memory words; "
                    f"core {core} holds {cap:,} ({layer.neuron_memory - cap:,} too many)"
                )
            cap = max(kern)
            raise ChipCapacityError(
                f"speck: {layer.name} needs {layer.kernel_memory:,} kernel-memory words; core "
                f"{kern.index(cap)} holds {cap:,} ({layer.kernel_memory - cap:,} too many)"
            )
        fits.append(ok)
    owner = [-1] * n_cores

    def augment(i, seen):
        for c in fits[i]:
            if c not in seen:
                seen.add(c)
                if owner[c] < 0 or augment(owner[c], seen):
                    owner[c] = i
                    return True
        return False

    for i, layer in enumerate(layers):
        if not augment(i, set()):
            raise ChipCapacityError(
                f"speck: no free core left for {layer.name} (kernel {layer.kernel_memory:,}, "
                f"neuron {layer.neuron_memory:,} words): the cores that hold it are taken"
            )
    for c, i in enumerate(owner):
        if i >= 0:
            layers[i].core = c


def _check_shapes(layer: SpeckLayer, profile) -> None:
    c_out, c_in, kh, kw = layer.weight.shape
    problems = []
    if kh != kw or kh > limit(profile, "kernel_size_max"):
        problems.append(f"kernel {kh}x{kw} (square, <= {limit(profile, 'kernel_size_max')})")
    if layer.stride[0] != layer.stride[1] or layer.stride[0] not in (1, 2, 4, 8):
        problems.append(f"stride {layer.stride} (1, 2, 4 or 8)")
    if max(layer.padding) > limit(profile, "padding_max"):
        problems.append(f"padding {layer.padding} (0..{limit(profile, 'padding_max')})")
    if layer.pool not in (1, 2, 4):
        problems.append(f"pooling {layer.pool} (1, 2 or 4)")
    if max(c_out, c_in) > limit(profile, "channels_max"):
        problems.append(f"{max(c_out, c_in)} channels (<= {limit(profile, 'channels_max')})")
    if max(layer.in_shape[1:]) > limit(profile, "input_size_max"):
        problems.append(f"input map {layer.in_shape[1:]} (<= {limit(profile, 'input_size_max')})")
    if problems:
        raise ChipCapacityError(f"speck: {layer.name} has " + "; ".join(problems))


def compile_speck(
    graph,
    dt: float,
    input_shape=None,
    readout_threshold: int = 16,
    assume_subtract_reset: bool = False,
) -> SpeckNetwork:
    """Map a NIR chain of Conv2d / Linear (-> IF) (-> sum or average pooling) layers onto Speck.

    Weights and threshold share one scale per layer (the largest weight -> 127, threshold kept
    below 2^15); a Linear after Flatten becomes a convolution whose kernel covers the map; an
    average pool of spikes runs as the chip's sum pool with its 1/k^2 folded into the next
    layer's weights; a final layer without a neuron (logits) runs as an IF layer with
    ``readout_threshold`` (its spike counts rank the classes; recorded in ``approximations``).
    Leaky neurons are refused (Speck's neurons do not leak multiplicatively).
    """
    import nir

    profile = chip_profile("speck")
    shape = tuple(input_shape) if input_shape is not None else input_shape_of(graph)
    approximations = []
    layers = []
    for stage in stages(graph, shape, "speck", keep_spike_pool=True):
        lin = stage.linear
        if stage.neuron is not None and not isinstance(stage.neuron, nir.IF):
            raise UnsupportedNodeError(
                f"speck cannot run node {stage.neuron_name!r} ({type(stage.neuron).__name__}): "
                f"Speck's neurons integrate and fire without a multiplicative leak (use IF)"
            )
        if isinstance(lin, ConvMap):
            weight, stride, padding, in_shape = lin.weight, lin.stride, lin.padding, lin.in_shape
            out_shape = lin.out_shape
        else:
            in_shape = lin.in_shape if len(lin.in_shape) == 3 else (lin.in_shape[0], 1, 1)
            weight = lin.weight.reshape((lin.weight.shape[0],) + tuple(in_shape))
            stride, padding, out_shape = (1, 1), (0, 0), (lin.weight.shape[0], 1, 1)
        gain = 1.0
        if stage.neuron is not None:
            meta = getattr(stage.neuron, "metadata", {}) or {}
            if meta.get("neuroflow_reset") != "subtract" and not assume_subtract_reset:
                raise UnsupportedNodeError(
                    f"speck cannot run node {stage.neuron_name!r} as written: it resets to "
                    f"v_reset, Speck resets by subtraction (pass assume_subtract_reset=True)"
                )
            if meta.get("neuroflow_reset") != "subtract":
                approximations.append(f"{stage.neuron_name}: hard reset run as subtractive reset")
            gain = float(np.asarray(stage.neuron.r).ravel()[0]) * dt
            theta = float(np.asarray(stage.neuron.v_threshold).ravel()[0])
        w_eff = weight * gain
        b_eff = lin.bias * gain
        wmax = float(np.abs(w_eff).max(initial=0.0)) or 1.0
        if stage.neuron is not None:
            scale = min(127 / wmax, (2**15 - 1) / theta)
            thr = max(int(round(theta * scale)), 1)
        else:
            scale = 127 / wmax
            thr = int(readout_threshold)
            approximations.append(
                f"{stage.name}: the non-spiking readout runs as IF neurons with threshold {thr} "
                f"(class = spike count)"
            )
        w8 = np.clip(np.round(w_eff * scale), -128, 127).astype(np.int8)
        back = w8 / scale
        err = float(np.sqrt(((back - w_eff) ** 2).sum() / max((w_eff**2).sum(), 1e-30)))
        bias = np.round(b_eff * scale).astype(np.int64)
        layer = SpeckLayer(
            stage.name,
            w8,
            bias,
            thr,
            MIN_V_MEM,
            tuple(stride),
            tuple(padding),
            stage.pool,
            tuple(in_shape),
            tuple(out_shape),
            quantisation={
                "scale": scale,
                "relative_rms_error": err,
                "threshold": thr,
                "nodes": stage.nodes,
                "neuron": stage.neuron_name,
            },
        )
        _check_shapes(layer, profile)
        layers.append(layer)
    _assign_cores(layers, profile)
    return SpeckNetwork(layers, tuple(shape), dt, approximations=approximations)
