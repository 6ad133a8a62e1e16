"""Loihi emulator against a reference written here from Lava's bit-accurate process models
(lava-nc/lava ``src/lava/proc/dense/models.py`` PyDenseModelBitAcc, ``src/lava/proc/lif/models.py``
PyLifModelBitAcc, ``src/lava/utils/weightutils.py``): plain numpy, one Dense -> LIF pair per
layer, tick by tick in Lava's order, convolutions unrolled into dense matrices. lava-nc itself
needs Python < 3.11 and cannot be installed here."""

from __future__ import annotations

import nir
import numpy as np
import pytest

from neuroflow.emulator import ChipCapacityError, InputRangeError, UnsupportedNodeError, compile
from neuroflow.emulator.loihi import LoihiLayer, LoihiNetwork, lava_weights


class LavaDense:
    """PyDenseModelBitAcc: weights clipped and truncated once, ``a_out`` is last tick's sum."""

    def __init__(self, weights, weight_exp, num_weight_bits=8):
        w = np.asarray(weights, np.int32)
        if w.min() >= 0:
            mode = "exc"
        elif w.max() <= 0:
            mode = "inh"
        else:
            mode = "mixed"
        sign = -1 if mode == "inh" else 1
        w = w * sign
        w = np.clip(w, -256 if mode == "mixed" else 0, 255)
        drop = 8 - num_weight_bits + (mode == "mixed")
        self.w = ((w >> drop) << drop) * sign
        self.exp = weight_exp
        self.a_buff = np.zeros(self.w.shape[0], np.int32)

    def step(self, s_in):
        a_out = self.a_buff
        acc = self.w.dot(s_in.astype(np.int32))
        self.a_buff = (
            np.left_shift(acc, self.exp) if self.exp > 0 else np.right_shift(acc, -self.exp)
        )
        return a_out


class LavaLIF:
    """PyLifModelBitAcc (ds_offset 1, dm_offset 0, 24-bit u wrap, v clip, strict threshold)."""

    def __init__(self, n, du, dv, vth, bias_mant, bias_exp):
        self.u = np.zeros(n, np.int32)
        self.v = np.zeros(n, np.int32)
        self.du, self.dv, self.vth = du, dv, vth
        self.bias = np.where(
            bias_exp >= 0,
            np.left_shift(bias_mant.astype(np.int32), bias_exp),
            np.right_shift(bias_mant.astype(np.int32), -bias_exp),
        )

    def step(self, a_in):
        m = 2**23
        dec = np.int64(1) * self.u * (4096 - (self.du + 1))
        dec = np.int32(np.sign(dec) * np.right_shift(np.abs(dec), 12))
        dec = dec + np.left_shift(a_in.astype(np.int32), 6)
        wrapped = np.where(dec > m, dec - 2 * m, dec)
        wrapped = np.where(wrapped <= -m, dec + 2 * m, wrapped)
        self.u[:] = wrapped
        vdec = np.int64(1) * self.v * (4096 - self.dv)
        vdec = np.int32(np.sign(vdec) * np.right_shift(np.abs(vdec), 12))
        self.v[:] = np.clip(vdec + self.u + self.bias, -m + 1, m - 1)
        spikes = self.v > (self.vth << 6)
        self.v[spikes] = 0
        return spikes.astype(np.int32)


def conv_as_dense(weight, in_shape, stride, padding):
    """The dense matrix ``[C_out*Ho*Wo, C_in*H*W]`` of a zero-padded strided convolution."""
    c_out, c_in, kh, kw = weight.shape
    _, H, W = in_shape
    Ho = (H + 2 * padding[0] - kh) // stride[0] + 1
    Wo = (W + 2 * padding[1] - kw) // stride[1] + 1
    dense = np.zeros((c_out, Ho, Wo, c_in, H, W), np.int64)
    for oy in range(Ho):
        for ox in range(Wo):
            for ky in range(kh):
                for kx in range(kw):
                    y, x = oy * stride[0] - padding[0] + ky, ox * stride[1] - padding[1] + kx
                    if 0 <= y < H and 0 <= x < W:
                        dense[:, oy, ox, :, y, x] = weight[:, :, ky, kx]
    return dense.reshape(c_out * Ho * Wo, c_in * H * W)


def lava_reference(net: LoihiNetwork, x: np.ndarray, ticks: int):
    """Every layer's spikes ``[ticks, n]`` (or readout ``(a_in << 6) + bias``) for one stream."""
    procs = []
    for layer in net.layers:
        if layer.kind == "conv":
            w = conv_as_dense(layer.weight, layer.in_shape, layer.stride, layer.padding)
            per = int(np.prod(layer.out_shape[1:]))
            bm, be = np.repeat(layer.bias_mant, per), np.repeat(layer.bias_exp, per)
        else:
            w, bm, be = layer.weight, layer.bias_mant, layer.bias_exp
        procs.append(
            (
                LavaDense(w, layer.weight_exp),
                LavaLIF(w.shape[0], layer.du, layer.dv, layer.vth, bm, be),
                layer.spiking,
            )
        )
    record = [[] for _ in procs]
    for t in range(ticks):
        s = x[t].reshape(-1) if t < len(x) else np.zeros(x[0].size, np.int32)
        for k, (dense, lif, spiking) in enumerate(procs):
            a_in = dense.step(s)
            if spiking:
                s = lif.step(a_in)
            else:
                s = np.left_shift(a_in.astype(np.int64), 6) + lif.bias
            record[k].append(s.copy())
    return [np.array(r) for r in record]


def random_layer(
    rng, name, kind, in_shape, out_ch, k=3, stride=(1, 1), padding=(1, 1), spiking=True, wrap=False
):
    if kind == "conv":
        weight = rng.integers(-256, 256, (out_ch, in_shape[0], k, k))
        H = (in_shape[1] + 2 * padding[0] - k) // stride[0] + 1
        W = (in_shape[2] + 2 * padding[1] - k) // stride[1] + 1
        out_shape = (out_ch, H, W)
    else:
        weight = rng.integers(-256, 256, (out_ch, int(np.prod(in_shape))))
        out_shape = (out_ch,)
    return LoihiLayer(
        name,
        kind,
        lava_weights(weight),
        weight_exp=int(rng.integers(3, 7)) if wrap else int(rng.integers(-2, 3)),
        du=int(rng.integers(0, 4096)),
        dv=int(rng.integers(0, 4096)),
        vth=int(rng.integers(60000, 131071)) if wrap else int(rng.integers(10, 3000)),
        bias_mant=rng.integers(-4096, 4096, out_ch).astype(np.int32),
        bias_exp=rng.integers(0, 8, out_ch).astype(np.int32),
        in_shape=tuple(in_shape),
        out_shape=out_shape,
        stride=stride,
        padding=padding,
        spiking=spiking,
    )


@pytest.mark.parametrize("wrap", [False, True], ids=["ordinary", "wrap_and_clip"])
def test_conv_dense_chain_equals_lava_reference(wrap):
    rng = np.random.default_rng(11 + wrap)
    l1 = random_layer(rng, "conv1", "conv", (2, 9, 9), 4, wrap=wrap)
    l2 = random_layer(
        rng, "conv2", "conv", (4, 9, 9), 5, k=4, stride=(2, 2), padding=(1, 1), wrap=wrap
    )
    l3 = random_layer(rng, "fc", "dense", l2.out_shape, 6, spiking=True, wrap=wrap)
    l4 = random_layer(rng, "readout", "dense", (6,), 3, spiking=False)
    net = LoihiNetwork([l1, l2, l3, l4], (2, 9, 9))
    x = rng.integers(0, 3, (12, 2, 2, 9, 9)) * (rng.random((12, 2, 2, 9, 9)) < 0.4)
    result = net.run(x)
    assert result.ticks == 12 + 4
    for b in range(2):
        ref = lava_reference(net, x[:, b], result.ticks)
        for layer, r in zip(net.layers, ref):
            got = result.layer_spikes[layer.name] if layer.spiking else result.output_spikes
            np.testing.assert_array_equal(
                got[:, b].reshape(result.ticks, -1), r, err_msg=layer.name
            )
    assert all(
        result.layer_spikes[n].any() for n in (("conv1",) if wrap else ("conv1", "conv2", "fc"))
    )


def test_wrap_and_clip_cases_are_reached():
    """The 24-bit current wrap and the voltage clip happen in the 'wrap_and_clip' setting."""
    rng = np.random.default_rng(12)
    layer = random_layer(rng, "conv1", "conv", (2, 9, 9), 4, wrap=True)
    x = rng.integers(0, 3, (12, 2, 9, 9)) * (rng.random((12, 2, 9, 9)) < 0.4)
    dense = LavaDense(
        conv_as_dense(layer.weight, layer.in_shape, layer.stride, layer.padding), layer.weight_exp
    )
    per = int(np.prod(layer.out_shape[1:]))
    lif = LavaLIF(
        dense.w.shape[0],
        layer.du,
        0,
        131071,
        np.repeat(layer.bias_mant, per),
        np.repeat(layer.bias_exp, per),
    )
    wrapped = clipped = False
    for t in range(12):
        a_in = dense.step(x[t].reshape(-1))
        before = np.int64(lif.u) * (4096 - layer.du - 1) // 4096 + (a_in.astype(np.int64) << 6)
        lif.step(a_in)
        wrapped |= bool((np.abs(before) > 2**23).any())
        clipped |= bool((np.abs(lif.v) == 2**23 - 1).any())
    assert wrapped and clipped


def scnn_graph(rng, channels=(4, 6), classes=3):
    """A quickstart-shaped NIR chain: conv3x3 -> avgpool2 -> LIF, twice, then Flatten -> Affine."""
    nodes = {"input": nir.Input(np.array([2, 12, 12]))}
    edges, prev, c, h = [], "input", 2, 12
    for i, co in enumerate(channels, 1):
        nodes[f"conv{i}"] = nir.Conv2d(
            (h, h), rng.normal(0, 0.5, (co, c, 3, 3)), 1, 1, 1, 1, rng.normal(0, 0.1, co)
        )
        nodes[f"pool{i}"] = nir.AvgPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0]))
        h //= 2
        n = co * h * h
        nodes[f"lif{i}"] = nir.LIF(
            tau=np.full((co, h, h), 2e-3),
            r=np.ones((co, h, h)),
            v_leak=np.zeros((co, h, h)),
            v_threshold=np.ones((co, h, h)),
            v_reset=np.zeros((co, h, h)),
        )
        for node in (f"conv{i}", f"pool{i}", f"lif{i}"):
            edges.append((prev, node))
            prev = node
        c = co
    nodes["flat"] = nir.Flatten({"input": np.array([c, h, h])}, start_dim=0)
    nodes["fc"] = nir.Affine(rng.normal(0, 0.3, (classes, n)), rng.normal(0, 0.1, classes))
    nodes["output"] = nir.Output(np.array([classes]))
    edges += [(prev, "flat"), ("flat", "fc"), ("fc", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def test_compile_folds_pooling_into_strided_kernels_and_matches_reference():
    rng = np.random.default_rng(3)
    net = compile(scnn_graph(rng), hardware="loihi", dt=1e-3)
    kinds = [(ly.kind, ly.weight.shape, ly.stride, ly.spiking) for ly in net.layers]
    assert kinds[0] == ("conv", (4, 2, 4, 4), (2, 2), True)  # conv3x3 + avgpool2 = conv4x4 stride 2
    assert kinds[1] == ("conv", (6, 4, 4, 4), (2, 2), True)
    assert kinds[2][0] == "dense" and not kinds[2][3]
    assert net.layers[0].dv == 2048 and net.layers[0].du == 4095  # tau = 2 ticks; no current state
    for layer in net.layers:
        assert layer.quantisation["relative_rms_error"] < 0.02
    x = rng.integers(0, 2, (6, 2, 2, 12, 12))
    result = net.run(x)
    for b in range(2):
        ref = lava_reference(net, x[:, b], result.ticks)
        np.testing.assert_array_equal(result.output_spikes[:, b], ref[-1])


def test_errors_name_layer_limit_and_excess():
    rng = np.random.default_rng(4)
    nodes = {
        "input": nir.Input(np.array([5000])),
        "big": nir.Linear(rng.normal(0, 1, (10, 5000))),
        "lif": nir.IF(r=np.ones(10), v_threshold=np.ones(10), v_reset=np.zeros(10)),
        "output": nir.Output(np.array([10])),
    }
    graph = nir.NIRGraph(nodes=nodes, edges=[("input", "big"), ("big", "lif"), ("lif", "output")])
    with pytest.raises(
        ChipCapacityError,
        match="'big' has a fan-in of 5,000 .* 4,096 input axons \\(904 too many\\)",
    ):
        compile(graph, hardware="loihi")
    # 64 x 64 x 64 neurons of fan-in 576: 131,072 synapse bytes / 576 = 227 neurons per core
    shape = (64, 64, 64)
    nodes = {
        "input": nir.Input(np.array([64, 64, 64])),
        "wide": nir.Conv2d((64, 64), rng.normal(0, 1, (64, 64, 3, 3)), 1, 1, 1, 1, np.zeros(64)),
        "lif": nir.IF(r=np.ones(shape), v_threshold=np.ones(shape), v_reset=np.zeros(shape)),
        "output": nir.Output(np.array(shape)),
    }
    graph = nir.NIRGraph(nodes=nodes, edges=[("input", "wide"), ("wide", "lif"), ("lif", "output")])
    with pytest.raises(
        ChipCapacityError, match="needs 1,155 cores .* the chip has 128 \\(1,027 too many\\)"
    ):
        compile(graph, hardware="loihi")
    net = compile(scnn_graph(rng), hardware="loihi")
    with pytest.raises(InputRangeError, match="0..255"):
        net.run(np.full((2, 1, 2, 12, 12), 300))
    bad = scnn_graph(rng)
    bad.nodes["lif1"].metadata["neuroflow_reset"] = "subtract"
    with pytest.raises(UnsupportedNodeError, match="'lif1'.*subtraction"):
        compile(bad, hardware="loihi")
