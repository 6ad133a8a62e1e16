"""Intel Loihi as Lava's bit-accurate models (PyDenseModelBitAcc -> PyLifModelBitAcc).

Per layer and tick ``t`` (Lava ``src/lava/proc/dense/models.py``, ``src/lava/proc/lif/models.py``,
``src/lava/utils/weightutils.py``):

* synapses: ``acc = W s(t-1)`` (one tick of delay: Dense sends the sum it built on the previous
  tick), ``a_in = acc << exp`` or ``acc >> -exp`` (floor) with one exponent per layer; weights
  are 8-bit mantissas, clipped by sign mode (mixed: [-256, 255]) and with ``8 - bits + mixed``
  low bits zeroed;
* current: ``u = trunc0(u (4096 - du - 1) / 4096) + (a_in << 6)``, wrapped once into 24 bits
  (``> 2^23`` loses ``2^24``, ``<= -2^23`` gains it);
* voltage: ``v = trunc0(v (4096 - dv) / 4096) + u + (bias_mant << bias_exp)``, clipped to
  ``+-(2^23 - 1)``; spike if ``v > vth << 6`` (strict), then ``v = 0`` (u kept).

``trunc0`` rounds toward zero. Input spikes may be graded (event counts 0..255, Lava's Dense with
``num_message_bits = 8``). Convolutions keep their shared kernel and are applied event by event
(each input spike scatters its kernel taps); a layer without a neuron after it is a readout
whose per-tick input ``(a_in << 6) + bias`` is the output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numba
import numpy as np

from neuroflow.emulator.conv_events import deliver_conv_events
from neuroflow.emulator.errors import ChipCapacityError, UnsupportedNodeError, checked_events
from neuroflow.emulator.profile import chip_profile, limit, price
from neuroflow.emulator.result import LayerStats, RunResult
from neuroflow.emulator.stages import ConvMap, input_shape_of, stages

V_MAX = 2**23 - 1
VTH_MAX = 2**17 - 1
VTH_TARGET = 1024  # integer threshold the quantiser aims for (see _quantise_layer)


@dataclass
class LoihiLayer:
    """One layer's integers. ``weight``: Lava's weight values after clipping and truncation
    (conv ``[C_out, C_in, kh, kw]``, dense ``[n_out, n_in]``); ``weight_exp``; neuron ``du``,
    ``dv`` (12 bits), ``vth`` (17 bits), ``bias_mant`` (13 bits) / ``bias_exp`` (3 bits) per
    output channel (conv) or neuron (dense); ``spiking=False`` marks the readout."""

    name: str
    kind: str
    weight: np.ndarray
    weight_exp: int
    du: int
    dv: int
    vth: int
    bias_mant: np.ndarray
    bias_exp: np.ndarray
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    spiking: bool = True
    cores: int = 1
    neurons_per_core: int = 1024
    quantisation: dict[str, float] = field(default_factory=dict)

    @property
    def n_neurons(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def fan_in(self) -> int:
        return int(np.prod(self.weight.shape[1:]))


@dataclass
class LoihiNetwork:
    layers: list[LoihiLayer]
    input_shape: tuple[int, ...]
    dt: float = 1e-3
    hardware: str = "loihi"

    def run(self, x, drain: bool = True, processes: int = 1) -> RunResult:
        """Run integer events ``x [T, B, *input_shape]`` (0..255). With ``drain`` the chip runs
        ``len(layers)`` extra silent ticks so the last input reaches the readout (each layer
        adds one tick of synaptic delay). Outputs: the last layer's per-tick output, every
        layer's spikes ``[ticks, B, ...]``. ``processes > 1`` shards the streams ``B`` over
        worker processes (same result)."""
        if processes != 1:
            from neuroflow.emulator.shard import run_sharded

            return run_sharded(self, x, processes, drain=drain)
        x = checked_events(x, "loihi", self.input_shape, 255, "8-bit graded spikes")
        T, B = x.shape[:2]
        ticks = T + (len(self.layers) if drain else 0)
        s = np.zeros((ticks, B) + tuple(self.input_shape), np.int32)
        s[:T] = x
        stats, spikes = [], {}
        profile = chip_profile(self.hardware)
        for layer in self.layers:
            out, events = _run_layer(layer, s)
            n_spk = int(out.sum(dtype=np.int64)) if layer.spiking else 0
            syn_mem = layer.neurons_per_core * layer.fan_in
            mem = {
                "synapses_per_core": (
                    min(syn_mem, layer.n_neurons * layer.fan_in),
                    limit(profile, "synapse_memory_kib_per_core") * 1024,
                ),
                "neurons_per_core": (
                    min(layer.neurons_per_core, layer.n_neurons),
                    limit(profile, "neurons_per_core"),
                ),
            }
            stats.append(
                LayerStats(
                    layer.name,
                    tuple(range(layer.cores)),
                    int(events.sum()),
                    ticks * B * layer.n_neurons,
                    n_spk,
                    mem,
                )
            )
            if layer.spiking:
                spikes[layer.name] = out
            s = out
        energy, parts = price(profile, stats, B)
        return RunResult(s, spikes, stats, ticks, B, energy, parts, ticks * self.dt)

    def resources(self) -> list[dict]:
        """Each layer's neurons, fan-in and cores; ``neurons_per_core_limit`` is what its core
        can hold (compartments, synapse memory over the fan-in, input axons)."""
        profile = chip_profile(self.hardware)
        return [
            {
                "name": ly.name,
                "kind": ly.kind,
                "neurons": ly.n_neurons,
                "fan_in": ly.fan_in,
                "cores": ly.cores,
                "neurons_per_core": ly.neurons_per_core,
                "neurons_per_core_limit": _core_capacity(ly, profile),
            }
            for ly in self.layers
        ]


def _run_layer(layer: LoihiLayer, s: np.ndarray):
    ticks, B = s.shape[:2]
    bias = (layer.bias_mant.astype(np.int64) << layer.bias_exp.astype(np.int64)).astype(np.int32)
    events = np.zeros(B, np.int64)
    if layer.kind == "conv":
        c_out, h, w = layer.out_shape
        out = np.zeros((ticks, B, c_out, h, w), np.int32)
        kernel = np.ascontiguousarray(layer.weight.transpose(1, 2, 3, 0).astype(np.int32))
        kernel_fn = _conv_serial
        kernel_fn(
            np.ascontiguousarray(s),
            kernel,
            layer.stride[0],
            layer.stride[1],
            layer.padding[0],
            layer.padding[1],
            layer.weight_exp,
            layer.du,
            layer.dv,
            layer.vth,
            bias,
            layer.spiking,
            out,
            events,
        )
    else:
        flat = np.ascontiguousarray(s.reshape(ticks, B, -1))
        out = np.zeros((ticks, B, layer.out_shape[0]), np.int32)
        w_t = np.ascontiguousarray(layer.weight.T.astype(np.int32))
        nnz = np.count_nonzero(w_t, axis=1).astype(np.int64)
        kernel_fn = _dense_serial
        kernel_fn(
            flat,
            w_t,
            nnz,
            layer.weight_exp,
            layer.du,
            layer.dv,
            layer.vth,
            bias,
            layer.spiking,
            out,
            events,
        )
    return out, events


@numba.njit(cache=True, inline="always")
def _wrap32(x):
    return ((x + 2147483648) & 0xFFFFFFFF) - 2147483648


@numba.njit(cache=True, inline="always")
def _trunc_decay(x, keep):
    prod = np.int64(x) * keep
    mag = (prod if prod >= 0 else -prod) >> 12
    return mag if prod >= 0 else -mag


@numba.njit(cache=True, inline="always")
def _lif(u, v, a_in, du, dv, vth6, bias):
    """One Lava PyLifModelBitAcc step; returns (u, v, spike)."""
    cur = _wrap32(_trunc_decay(u, 4096 - du - 1) + _wrap32(np.int64(a_in) << 6))
    if cur > 8388608:
        cur -= 16777216
    elif cur <= -8388608:
        cur += 16777216
    u = _wrap32(cur)
    volt = _wrap32(_trunc_decay(v, 4096 - dv) + u + bias)
    volt = min(max(volt, -8388607), 8388607)
    if volt > vth6:
        return u, 0, 1
    return u, volt, 0


@numba.njit(cache=True, inline="always")
def _shift(acc, exp):
    return acc << exp if exp > 0 else acc >> (-exp)


def _dense_body(s, w_t, nnz, exp, du, dv, vth, bias, spiking, out, events):
    ticks, B, n_in = s.shape
    n_out = w_t.shape[1]
    vth6 = np.int64(vth) << 6
    for b in range(B):
        u = np.zeros(n_out, np.int64)
        v = np.zeros(n_out, np.int64)
        acc = np.zeros(n_out, np.int64)
        prev = np.zeros(n_out, np.int64)
        ev = 0
        for t in range(ticks):
            for j in range(n_out):
                prev[j] = acc[j]
                acc[j] = 0
            for i in range(n_in):
                n = s[t, b, i]
                if n != 0:
                    for j in range(n_out):
                        acc[j] += w_t[i, j] * n
                    ev += n * nnz[i]
            for j in range(n_out):
                a_in = _wrap32(_shift(prev[j], exp))
                if spiking:
                    u[j], v[j], out[t, b, j] = _lif(u[j], v[j], a_in, du, dv, vth6, bias[j])
                else:
                    out[t, b, j] = _wrap32((np.int64(a_in) << 6) + bias[j])
        events[b] = ev


def _conv_body(s, kernel, sh, sw, ph, pw, exp, du, dv, vth, bias, spiking, out, events):
    ticks, B = s.shape[0], s.shape[1]
    c_out = kernel.shape[3]
    Ho, Wo = out.shape[3], out.shape[4]
    vth6 = np.int64(vth) << 6
    for b in range(B):
        u = np.zeros((Ho, Wo, c_out), np.int64)
        v = np.zeros((Ho, Wo, c_out), np.int64)
        acc = np.zeros((Ho, Wo, c_out), np.int64)
        prev = np.zeros((Ho, Wo, c_out), np.int64)
        flat = acc.reshape((Ho * Wo, c_out))
        no_tracking = np.zeros(0, np.bool_)
        ev = 0
        for t in range(ticks):
            prev[:] = acc
            acc[:] = 0
            ev += deliver_conv_events(
                s[t, b], kernel, flat, Wo, sh, sw, ph, pw, no_tracking, no_tracking
            )[0]
            for oy in range(Ho):
                for ox in range(Wo):
                    for o in range(c_out):
                        a_in = _wrap32(_shift(prev[oy, ox, o], exp))
                        if spiking:
                            u[oy, ox, o], v[oy, ox, o], out[t, b, o, oy, ox] = _lif(
                                u[oy, ox, o], v[oy, ox, o], a_in, du, dv, vth6, bias[o]
                            )
                        else:
                            out[t, b, o, oy, ox] = _wrap32((np.int64(a_in) << 6) + bias[o])
        events[b] = ev


_dense_serial = numba.njit(cache=True)(_dense_body)
_conv_serial = numba.njit(cache=True)(_conv_body)


# ---------------------------------------------------------------------------------------------
# float graph -> integers


def lava_weights(values: np.ndarray, num_weight_bits: int = 8) -> np.ndarray:
    """Lava's Dense weight preparation (sign mode from the values, clip to 8 bits, zero the
    ``8 - num_weight_bits + mixed`` low bits), on integers."""
    w = np.asarray(values, np.int64)
    if w.min(initial=0) >= 0:
        lo, hi, mixed, sign = 0, 255, 0, 1
    elif w.max(initial=0) <= 0:
        lo, hi, mixed, sign = 0, 255, 0, -1
    else:
        lo, hi, mixed, sign = -256, 255, 1, 1
    w = np.clip(w * sign, lo, hi)
    drop = 8 - num_weight_bits + mixed
    return ((w >> drop) << drop) * sign


def _flat(value, n: int) -> np.ndarray:
    """A per-neuron parameter of a NIR node as a flat float vector of ``n`` values."""
    arr = np.asarray(value, np.float64).ravel()
    return np.full(n, arr[0]) if arr.size == 1 else arr


def _neuron_constants(node, name: str, dt: float, n: int):
    """(du, dv, input gain, float threshold, constant drive per tick) of a NIR neuron."""
    import nir

    meta = getattr(node, "metadata", {}) or {}
    if meta.get("neuroflow_reset") == "subtract":
        raise UnsupportedNodeError(
            f"loihi cannot run node {name!r}: it resets by subtraction, Loihi's LIF resets v to 0"
        )
    if node.v_reset is not None and np.any(np.asarray(node.v_reset) != 0):
        raise UnsupportedNodeError(
            f"loihi cannot run node {name!r}: v_reset != 0 (Loihi resets to 0)"
        )
    thr = _flat(node.v_threshold, n)
    if not np.allclose(thr, thr.flat[0]) or thr.flat[0] <= 0:
        raise UnsupportedNodeError(
            f"loihi cannot run node {name!r}: one positive threshold per layer needed"
        )
    r = _flat(node.r, n)
    if isinstance(node, nir.IF):  # NIR: dv/dt = r I, so one tick adds r dt I
        return 4095, 0, r * dt, float(thr.flat[0]), np.zeros(n)
    if isinstance(node, nir.LIF):
        tau = _flat(node.tau, n)
        if not np.allclose(tau, tau.flat[0]):
            raise UnsupportedNodeError(f"loihi cannot run node {name!r}: one tau per layer needed")
        alpha = dt / float(tau.flat[0])
        leak = _flat(node.v_leak, n) * alpha
        return 4095, int(round(4096 * alpha)), r * alpha, float(thr.flat[0]), leak
    if isinstance(node, nir.CubaLIF):
        ts = float(np.asarray(node.tau_syn).flat[0])
        tm = float(np.asarray(node.tau_mem).flat[0])
        w_in = _flat(node.w_in, n)
        leak = _flat(node.v_leak, n) * dt / tm
        du = max(int(round(4096 * dt / ts)) - 1, 0)
        return (
            du,
            int(round(4096 * dt / tm)),
            w_in * dt / ts * r * dt / tm,
            float(thr.flat[0]),
            leak,
        )
    raise UnsupportedNodeError(f"loihi cannot run node {name!r} ({type(node).__name__})")


def _quantise_layer(stage, dt: float):
    lin = stage.linear
    is_conv = isinstance(lin, ConvMap)
    n_channels = lin.weight.shape[0]
    if stage.neuron is not None:
        n_nodes = int(np.prod(lin.out_shape))
        du, dv, gain, theta, leak = _neuron_constants(stage.neuron, stage.neuron_name, dt, n_nodes)
        gain_c = gain.reshape(n_channels, -1)[:, 0] if is_conv else gain
        leak_c = leak.reshape(n_channels, -1)[:, 0] if is_conv else leak
    else:
        du, dv, theta = 4095, 0, None
        gain_c, leak_c = np.ones(n_channels), np.zeros(n_channels)
    shape = (-1,) + (1,) * (lin.weight.ndim - 1)
    w_eff = lin.weight * gain_c.reshape(shape)
    b_eff = lin.bias * gain_c + leak_c
    wmax = float(np.abs(w_eff).max(initial=0.0)) or 1.0
    # v units per float unit S: the threshold becomes vth = VTH_TARGET (so v has 2^23 / (64
    # VTH_TARGET) = 128 thresholds of headroom before the 24-bit current wraps or v clips), and
    # the layer exponent brings the largest weight's mantissa up to 254 or just below
    if theta is not None:
        scale = 64 * VTH_TARGET / theta
        exp = int(math.ceil(math.log2(wmax * scale / 64 / 254)))
        exp = max(min(exp, 7), -8)
    else:  # readout: no threshold; exponent 0 and the full mantissa range
        exp = 0
        scale = 64 * 254 / wmax
    # even mantissas: mixed-sign weights lose their lowest bit in Lava's truncation anyway
    mant = lava_weights(2 * np.round(w_eff * scale / 64 / 2.0**exp / 2))
    back = mant * 64 * 2.0**exp / scale
    err = float(np.sqrt(((back - w_eff) ** 2).sum() / max((w_eff**2).sum(), 1e-30)))
    b_int = b_eff * scale
    b_exp = np.zeros(n_channels, np.int64)
    big = np.abs(b_int) > 4095
    if big.any():
        b_exp[big] = np.minimum(np.ceil(np.log2(np.abs(b_int[big]) / 4095)).astype(np.int64), 7)
    b_mant = np.clip(np.round(b_int / 2.0**b_exp), -4096, 4095).astype(np.int32)
    vth = int(round(theta * scale / 64)) if theta is not None else VTH_MAX
    return LoihiLayer(
        name=stage.name,
        kind="conv" if is_conv else "dense",
        weight=mant.astype(np.int32),
        weight_exp=exp,
        du=int(du),
        dv=int(dv),
        vth=max(vth, 0),
        bias_mant=b_mant,
        bias_exp=b_exp.astype(np.int32),
        in_shape=tuple(lin.in_shape),
        out_shape=tuple(lin.out_shape),
        stride=lin.stride if is_conv else (1, 1),
        padding=lin.padding if is_conv else (0, 0),
        spiking=stage.neuron is not None,
        quantisation={
            "scale": scale,
            "weight_exp": exp,
            "relative_rms_error": err,
            "threshold": vth,
            "nodes": stage.nodes,
            "neuron": stage.neuron_name,
        },
    )


def _core_capacity(layer: LoihiLayer, profile) -> int:
    """The neurons of ``layer`` one core holds: its compartments, or fewer where the synapse
    memory (one byte per synapse) runs out over the layer's fan-in."""
    per_core = limit(profile, "neurons_per_core")
    syn_bytes = limit(profile, "synapse_memory_kib_per_core") * 1024
    return int(min(per_core, syn_bytes // layer.fan_in))


def _map_cores(layers: list[LoihiLayer], hardware: str) -> None:
    """Neurons per core limited by 1,024 compartments, the synapse memory (8-bit synapses:
    ``synapse_memory_kib_per_core * 1024`` per core over the layer's fan-in) and 4,096 input
    axons; the chip's cores must cover every layer."""
    profile = chip_profile(hardware)
    axons = limit(profile, "input_axons_per_core")
    for layer in layers:
        if layer.fan_in > axons:
            raise ChipCapacityError(
                f"loihi: layer {layer.name!r} has a fan-in of {layer.fan_in:,} per neuron; a core "
                f"has {axons:,} input axons ({layer.fan_in - axons:,} too many)"
            )
        layer.neurons_per_core = max(min(_core_capacity(layer, profile), layer.n_neurons), 1)
        layer.cores = math.ceil(layer.n_neurons / layer.neurons_per_core)
    total = sum(ly.cores for ly in layers)
    cap = limit(profile, "cores")
    if total > cap:
        worst = max(layers, key=lambda ly: ly.cores)
        raise ChipCapacityError(
            f"loihi: the network needs {total:,} cores ({worst.name!r} alone {worst.cores:,}); "
            f"the chip has {cap:,} ({total - cap:,} too many)"
        )


def compile_loihi(graph, dt: float, input_shape=None) -> LoihiNetwork:
    """Map a feed-forward NIR chain (Conv2d / Linear / Affine, pooling, Flatten, then LIF, IF or
    CubaLIF; a final linear node without neuron becomes the readout) onto Loihi."""
    shape = tuple(input_shape) if input_shape is not None else input_shape_of(graph)
    layers = [_quantise_layer(stage, dt) for stage in stages(graph, shape, "loihi")]
    _map_cores(layers, "loihi")
    return LoihiNetwork(layers, shape, dt)
