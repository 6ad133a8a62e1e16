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

from neuroflow.emulator.conv_events import deliver_conv_events, deliver_spike
from neuroflow.emulator.errors import ChipCapacityError, UnsupportedNodeError, checked_events
from neuroflow.emulator.profile import chip_profile, limit, price
from neuroflow.emulator.result import LayerStats, RunResult
from neuroflow.emulator.stages import ConvMap, input_shape_of, stages
from neuroflow.parallel import compiled, run_split

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

    def run(
        self, x, processes: int = 1, threads: int | None = None, record_layers: bool = True
    ) -> RunResult:
        """Run integer DVS events ``x [T, B, C, H, W]`` (counts >= 0 per pixel and tick).

        Output: the last layer's (pooled) spike counts ``[T, B, ...]``; with ``record_layers``
        also every layer's spikes before pooling (``layer_spikes``: dense ``[T, B, C, H, W]``
        arrays, which can cost more memory traffic than the run itself; the statistics are
        counted either way). The streams ``B`` split over ``threads`` of numba's threads
        (default: all), or with ``processes > 1`` over worker processes; the result is the same
        either way."""
        if processes != 1:
            from neuroflow.emulator.shard import run_sharded

            return run_sharded(self, x, processes, record_layers=record_layers)
        x = checked_events(x, "speck", self.input_shape, 255, "per pixel and tick")
        T, B = x.shape[:2]
        if x.dtype.kind not in "iu":
            x = x.astype(np.int32)
        threads = min(numba.get_num_threads() if threads is None else threads, B)
        plan = _plan(self.layers)
        last = self.layers[-1]
        c, h, w = last.pooled_shape
        out = np.zeros((T, B, c * h * w), np.int32)
        record = np.zeros(T * B * int(plan.record_size) if record_layers else 0, np.int32)
        counts = np.zeros((len(self.layers), B, 2), np.int64)
        run_split(
            _speck_serial,
            _speck_parallel,
            threads,
            np.ascontiguousarray(x),
            plan.geometry,
            plan.kernels,
            plan.biases,
            plan.pooled_yx,
            record,
            out,
            counts,
        )
        profile = chip_profile(self.hardware)
        stats, spikes = [], {}
        for i, layer in enumerate(self.layers):
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
                    int(counts[i, :, 0].sum()),
                    T * B * int(np.prod(layer.out_shape)),
                    int(counts[i, :, 1].sum()),
                    mem,
                )
            )
            if record_layers:
                start = T * B * int(plan.geometry[i, G_RECORD])
                size = T * B * int(np.prod(layer.out_shape))
                spikes[layer.name] = record[start : start + size].reshape(
                    (T, B) + tuple(layer.out_shape)
                )
        s = out.reshape(T, B, c, h, w)
        energy, parts = price(profile, stats, B)
        return RunResult(s, spikes, stats, T, B, energy, parts, T * self.dt)

    def resources(self) -> list[dict]:
        """Each layer's core and memory words against that core's limits."""
        profile = chip_profile(self.hardware)
        return [
            {
                "name": ly.name,
                "core": ly.core,
                "kernel_memory": ly.kernel_memory,
                "kernel_memory_limit": limit(profile, f"kernel_memory_core{ly.core}"),
                "neuron_memory": ly.neuron_memory,
                "neuron_memory_limit": limit(profile, f"neuron_memory_core{ly.core}"),
                "weight_shape": list(ly.weight.shape),
                "stride": list(ly.stride),
                "pool": ly.pool,
            }
            for ly in self.layers
        ]


# columns of a layer's row in ``_Plan.geometry``
G_C_IN, G_H, G_W, G_KH, G_KW, G_C_OUT, G_HO, G_WO = range(8)
G_SH, G_SW, G_PH, G_PW, G_THR, G_VMIN, G_EVERY = range(8, 15)
G_KERNEL, G_BIAS, G_STATE, G_POS, G_RECORD, G_OUT_H, G_OUT_W = range(15, 22)


@dataclass
class _Plan:
    """The network packed for the kernel: one row of integers per layer (``G_*`` columns:
    shapes, stride, padding, threshold, bounds, and offsets into the flat arrays), the kernels
    ``[c_in, kh, kw, c_out]`` and biases concatenated, and ``pooled_yx [positions, 2]``: where
    each output position's spikes land after pooling (-1 where the pooling drops it)."""

    geometry: np.ndarray
    kernels: np.ndarray
    biases: np.ndarray
    pooled_yx: np.ndarray
    record_size: int


def _plan(layers: list[SpeckLayer]) -> _Plan:
    rows, kernels, biases, pooled = [], [], [], []
    k_off = b_off = s_off = p_off = r_off = 0
    for layer in layers:
        c_out, c_in, kh, kw = layer.weight.shape
        _, ho, wo = layer.out_shape
        _, h, w = layer.pooled_shape
        # with no bias a neuron that received nothing this tick cannot change
        every = bool(np.any(layer.bias != 0)) or layer.min_v_mem > 0
        rows.append(
            [c_in, *layer.in_shape[1:], kh, kw, c_out, ho, wo, *layer.stride, *layer.padding]
            + [layer.threshold, layer.min_v_mem, every, k_off, b_off, s_off, p_off, r_off, h, w]
        )
        kernels.append(layer.weight.transpose(1, 2, 3, 0).astype(np.int32).ravel())
        biases.append(layer.bias.astype(np.int64))
        oy, ox = np.divmod(np.arange(ho * wo), wo)
        py, px = oy // layer.pool, ox // layer.pool
        keep = (py < h) & (px < w)
        pooled.append(np.stack([np.where(keep, py, -1), np.where(keep, px, -1)], axis=1))
        k_off += kernels[-1].size
        b_off += c_out
        s_off += ho * wo * c_out
        p_off += ho * wo
        r_off += c_out * ho * wo
    return _Plan(
        np.array(rows, np.int64),
        np.concatenate(kernels),
        np.concatenate(biases),
        np.ascontiguousarray(np.concatenate(pooled), np.int64),
        r_off,
    )


def _speck_body(x, geometry, kernels, biases, pooled_yx, record, out, counts, parts):
    """The whole network, tick by tick and layer by layer within a tick, the streams split into
    ``parts`` ranges (numba's threads); see :func:`_plan` for the packed network.

    Each tick the input frame's events, then each layer's spikes, are delivered through the
    next layer's kernel (:func:`deliver_spike`); only the neurons they reached are updated,
    unless the layer has a bias (then every neuron, every tick). A stream's state stays in
    cache across its layers. ``record`` (empty: off) receives each layer's spikes
    ``[T, B, C, Ho * Wo]`` at its offset; ``out [T, B, C * h * w]`` the last layer's pooled
    spikes; ``counts [L, B, 2]`` each layer's synaptic events and spikes per stream."""
    T, B = x.shape[0], x.shape[1]
    L = geometry.shape[0]
    n_state = n_pos_all = max_spikes = 0
    for layer in range(L):
        g = geometry[layer]
        n_pos = g[G_HO] * g[G_WO]
        n_state += n_pos * g[G_C_OUT]
        n_pos_all += n_pos
        max_spikes = max(max_spikes, n_pos * g[G_C_OUT])
    for part in numba.prange(parts):
        state = np.zeros(n_state, np.int64)
        touched = np.zeros(n_pos_all, np.bool_)
        order = np.empty(n_pos_all, np.int64)
        spikes_in = np.empty((max_spikes, 4), np.int64)
        spikes_out = np.empty((max_spikes, 4), np.int64)
        for layer in range(L):
            g = geometry[layer]
            order[g[G_POS] : g[G_POS] + g[G_HO] * g[G_WO]] = np.arange(g[G_HO] * g[G_WO])
        for b in range(part * B // parts, (part + 1) * B // parts):
            state[:] = 0
            for t in range(T):
                n_in = 0
                for layer in range(L):
                    g = geometry[layer]
                    c_in, c_out, Wo = g[G_C_IN], g[G_C_OUT], g[G_WO]
                    n_pos = g[G_HO] * Wo
                    every = g[G_EVERY] != 0
                    kernel = kernels[g[G_KERNEL] : g[G_KERNEL] + c_in * g[G_KH] * g[G_KW] * c_out]
                    kernel = kernel.reshape((c_in, g[G_KH], g[G_KW], c_out))
                    v = state[g[G_STATE] : g[G_STATE] + n_pos * c_out].reshape((n_pos, c_out))
                    mark = touched[g[G_POS] : g[G_POS] + (0 if every else n_pos)]
                    listed = order[g[G_POS] : g[G_POS] + n_pos]
                    sh, sw, ph, pw = g[G_SH], g[G_SW], g[G_PH], g[G_PW]
                    if layer == 0:
                        events, reached = deliver_conv_events(
                            x[t, b], kernel, v, Wo, sh, sw, ph, pw, mark, listed
                        )
                    else:
                        events = reached = 0
                        for i in range(n_in):
                            c, y, xx, n = spikes_in[i]
                            e, reached = deliver_spike(
                                kernel, v, Wo, sh, sw, ph, pw, c, y, xx, n, mark, listed, reached
                            )
                            events += e
                    counts[layer, b, 0] += events
                    thr, vmin = g[G_THR], g[G_VMIN]
                    bias = biases[g[G_BIAS] : g[G_BIAS] + c_out]
                    n_out = 0
                    fired = 0
                    for i in range(n_pos if every else reached):
                        p = listed[i]
                        if not every:
                            mark[p] = False
                        vp = v[p]
                        for o in range(c_out):
                            vv = vp[o] + bias[o]
                            if vv >= thr:
                                n = vv // thr
                                vv -= n * thr
                                fired += n
                                if record.shape[0] > 0:
                                    at = ((t * B + b) * c_out + o) * n_pos + p
                                    record[T * B * g[G_RECORD] + at] = n
                                py = pooled_yx[g[G_POS] + p, 0]
                                if py >= 0:
                                    px = pooled_yx[g[G_POS] + p, 1]
                                    if layer == L - 1:
                                        out[t, b, (o * g[G_OUT_H] + py) * g[G_OUT_W] + px] += n
                                    else:
                                        spikes_out[n_out, 0] = o
                                        spikes_out[n_out, 1] = py
                                        spikes_out[n_out, 2] = px
                                        spikes_out[n_out, 3] = n
                                        n_out += 1
                            vp[o] = vv if vv > vmin else vmin
                    counts[layer, b, 1] += fired
                    spikes_in, spikes_out = spikes_out, spikes_in
                    n_in = n_out


_speck_serial = compiled(_speck_body, "_speck_serial")
_speck_parallel = compiled(_speck_body, "_speck_parallel", parallel=True)


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
