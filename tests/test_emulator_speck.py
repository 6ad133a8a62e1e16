"""Speck emulator against Sinabs 3.1.3 (``IAFSqueeze`` with MultiSpike, MembraneSubtract and
``min_v_mem``, ``SumPool2d``) running the same integer weights on an N-MNIST-shaped spiking CNN;
memory per core and the 9-core placement; named errors."""

from __future__ import annotations

import nir
import numpy as np
import pytest

from neuroflow.emulator import ChipCapacityError, InputRangeError, UnsupportedNodeError, compile
from neuroflow.emulator.speck import MIN_V_MEM, SpeckLayer, SpeckNetwork


def speck_graph(rng, channels=(8, 16), classes=10, size=34, pool="avg", neuron="if"):
    """conv3x3 (no bias) -> IF (subtractive) -> 2x2 pool, twice, then Flatten -> Linear."""
    nodes = {"input": nir.Input(np.array([2, size, size]))}
    edges, prev, c, h = [], "input", 2, size
    for i, co in enumerate(channels, 1):
        nodes[f"conv{i}"] = nir.Conv2d(
            (h, h), rng.normal(0, 0.6, (co, c, 3, 3)), 1, 1, 1, 1, np.zeros(co)
        )
        shape = (co, h, h)
        md = {"neuroflow_reset": "subtract"}
        if neuron == "if":
            nodes[f"if{i}"] = nir.IF(
                r=np.full(shape, 1e3),
                v_threshold=np.ones(shape),
                v_reset=np.zeros(shape),
                metadata=md,
            )
        else:
            nodes[f"if{i}"] = nir.LIF(
                tau=np.full(shape, 2e-3),
                r=np.ones(shape),
                v_leak=np.zeros(shape),
                v_threshold=np.ones(shape),
                v_reset=np.zeros(shape),
                metadata=md,
            )
        pool_cls = nir.AvgPool2d if pool == "avg" else nir.SumPool2d
        nodes[f"pool{i}"] = pool_cls(np.array([2, 2]), np.array([2, 2]), np.array([0, 0]))
        for node in (f"conv{i}", f"if{i}", f"pool{i}"):
            edges.append((prev, node))
            prev = node
        c, h = co, h // 2
    nodes["flat"] = nir.Flatten({"input": np.array([c, h, h])}, start_dim=0)
    nodes["fc"] = nir.Linear(rng.normal(0, 0.2, (classes, c * h * h)))
    nodes["output"] = nir.Output(np.array([classes]))
    edges += [(prev, "flat"), ("flat", "fc"), ("fc", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def sinabs_run(net, x):
    """Every layer's spikes ``[T, B, C, H, W]`` from Sinabs with the emulator's integers."""
    torch = pytest.importorskip("torch")
    sl = pytest.importorskip("sinabs.layers")
    pytest.importorskip("sinabs.activation")
    from sinabs.activation import MembraneSubtract, MultiSpike

    T, B = x.shape[:2]
    out = {}
    s = torch.tensor(x, dtype=torch.float32).permute(1, 0, 2, 3, 4).reshape(B * T, *x.shape[2:])
    with torch.no_grad():
        for layer in net.layers:
            conv = torch.nn.Conv2d(
                layer.weight.shape[1],
                layer.weight.shape[0],
                layer.weight.shape[2],
                stride=layer.stride,
                padding=layer.padding,
                bias=True,
            )
            conv.weight.copy_(torch.tensor(layer.weight, dtype=torch.float32))
            conv.bias.copy_(torch.tensor(layer.bias, dtype=torch.float32))
            iaf = sl.IAFSqueeze(
                batch_size=B,
                spike_threshold=torch.tensor(float(layer.threshold)),
                min_v_mem=float(layer.min_v_mem),
                spike_fn=MultiSpike,
                reset_fn=MembraneSubtract(),
            )
            spikes = iaf(conv(s))
            out[layer.name] = spikes.reshape(B, T, *spikes.shape[1:]).permute(1, 0, 2, 3, 4).numpy()
            s = sl.SumPool2d(layer.pool)(spikes) if layer.pool > 1 else spikes
    return out


def test_nmnist_cnn_equals_sinabs():
    rng = np.random.default_rng(0)
    net = compile(speck_graph(rng), hardware="speck", dt=1e-3)
    assert [ly.weight.shape for ly in net.layers] == [(8, 2, 3, 3), (16, 8, 3, 3), (10, 16, 8, 8)]
    x = rng.poisson(0.3, (20, 2, 2, 34, 34))
    result = net.run(x)
    ref = sinabs_run(net, x)
    for layer in net.layers:
        np.testing.assert_array_equal(
            result.layer_spikes[layer.name], ref[layer.name], err_msg=layer.name
        )
    assert result.layer_spikes["conv1"].max() > 1  # several spikes per tick do happen
    assert (result.layer_spikes["conv2"] > 0).any()
    assert any("readout" in a for a in net.approximations)


def _layer(rng, name, c_in, size, c_out, k, stride, pad, pool, thr, bias):
    ho = (size + 2 * pad - k) // stride + 1
    return SpeckLayer(
        name,
        rng.integers(-128, 128, (c_out, c_in, k, k)).astype(np.int8),
        rng.integers(-40, 41, c_out) if bias else np.zeros(c_out, np.int64),
        thr,
        MIN_V_MEM // 64,
        (stride, stride),
        (pad, pad),
        pool,
        (c_in, size, size),
        (c_out, ho, ho),
    )


def test_strides_padding_bias_threads_equal_sinabs():
    """Hand-built layers beyond what the N-MNIST net uses: stride 2, 5x5 kernels with padding 2,
    odd channel counts and map sizes, a bias (every neuron updated every tick) next to bias-free
    layers (only the neurons a spike reached), a pooling that drops the last row; one thread,
    two threads, and without recording the hidden layers, all equal to Sinabs."""
    rng = np.random.default_rng(3)
    layers = [
        _layer(rng, "a", 2, 23, 5, 3, 2, 1, 1, 300, bias=True),  # 23 -> 12
        _layer(rng, "b", 5, 12, 3, 5, 1, 2, 2, 500, bias=False),  # 12 -> 12, pool -> 6
        _layer(rng, "c", 3, 6, 7, 3, 1, 0, 2, 400, bias=False),  # 6 -> 4, pool -> 2
    ]
    for core, layer in enumerate(layers):
        layer.core = core
    net = SpeckNetwork(layers, (2, 23, 23))
    x = rng.poisson(0.4, (12, 3, 2, 23, 23))
    ref = sinabs_run(net, x)
    for threads in (1, 2):
        result = net.run(x, threads=threads)
        for layer in layers:
            np.testing.assert_array_equal(result.layer_spikes[layer.name], ref[layer.name])
            assert (ref[layer.name] > 0).any(), layer.name
        pooled = ref["c"].reshape(12, 3, 7, 2, 2, 2, 2).sum(axis=(4, 6))
        np.testing.assert_array_equal(result.output_spikes, pooled)
    quiet = net.run(x, record_layers=False)
    np.testing.assert_array_equal(quiet.output_spikes, result.output_spikes)
    assert quiet.layer_spikes == {}
    assert [s.as_dict() for s in quiet.layers] == [s.as_dict() for s in result.layers]
    assert quiet.energy_per_sample_pj == result.energy_per_sample_pj


def test_memory_formulas_and_core_placement():
    rng = np.random.default_rng(1)
    net = compile(speck_graph(rng), hardware="speck", dt=1e-3)
    l1, l2, l3 = net.layers
    # kernel: c_in 2^(ceil log2(k k) + ceil log2 c_out); neuron: c_out 2^(ceil log2 h + ceil log2 w)
    assert l1.kernel_memory == 2 * 2 ** (4 + 3) and l1.neuron_memory == 8 * 2 ** (6 + 6)
    assert l2.kernel_memory == 8 * 2 ** (4 + 4) and l2.neuron_memory == 16 * 2 ** (5 + 5)
    assert l3.kernel_memory == 16 * 2 ** (6 + 4) and l3.neuron_memory == 10
    cores = [ly.core for ly in net.layers]
    assert len(set(cores)) == 3
    assert cores[0] in (0, 1, 2)  # 32Ki neuron words fit cores 0-4 only: 0-2 offer 64Ki
    r = net.run(rng.poisson(0.2, (5, 1, 2, 34, 34)))
    for stats in r.layers:
        for used, cap in stats.memory.values():
            assert used <= cap


def test_too_big_leaky_and_bad_input_are_named_errors():
    rng = np.random.default_rng(2)
    big = speck_graph(rng, channels=(32, 16))  # 32 x 64 x 64 = 131,072 neuron words
    with pytest.raises(
        ChipCapacityError, match="conv1 needs 131,072 neuron-memory words; core 0 holds 65,536"
    ):
        compile(big, hardware="speck")
    with pytest.raises(UnsupportedNodeError, match="'if1' \\(LIF\\).*leak"):
        compile(speck_graph(rng, neuron="lif"), hardware="speck")
    g = speck_graph(rng)
    g.nodes["extra"] = nir.AvgPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0]))
    net = compile(speck_graph(rng), hardware="speck")
    with pytest.raises(InputRangeError, match="0..255"):
        net.run(np.full((2, 1, 2, 34, 34), -1))
    with pytest.raises(InputRangeError, match=r"\[T, B, 2, 34, 34\]"):
        net.run(np.zeros((2, 1, 2, 32, 32)))


def test_average_pool_at_the_end_is_refused():
    rng = np.random.default_rng(3)
    nodes = {
        "input": nir.Input(np.array([2, 8, 8])),
        "conv": nir.Conv2d((8, 8), rng.normal(0, 1, (4, 2, 3, 3)), 1, 1, 1, 1, np.zeros(4)),
        "if": nir.IF(
            r=np.full((4, 8, 8), 1e3),
            v_threshold=np.ones((4, 8, 8)),
            v_reset=np.zeros((4, 8, 8)),
            metadata={"neuroflow_reset": "subtract"},
        ),
        "avg": nir.AvgPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0])),
        "output": nir.Output(np.array([4, 4, 4])),
    }
    graph = nir.NIRGraph(
        nodes=nodes, edges=[("input", "conv"), ("conv", "if"), ("if", "avg"), ("avg", "output")]
    )
    with pytest.raises(UnsupportedNodeError, match="speck cannot run node 'avg' \\(AvgPool2d\\)"):
        compile(graph, hardware="speck")
