"""Xylo Audio 2 emulator against XyloSim (the ``xylosim`` C++ package, SynSense's bit-accurate
simulator of the chip), driven directly: equal hidden and output spikes on random networks at
the chip's full size (16-1000-8, fan-out 64), including saturating ones."""

from __future__ import annotations

import nir
import numpy as np
import pytest

from neuroflow.emulator import ChipCapacityError, InputRangeError, UnsupportedNodeError, compile
from neuroflow.emulator.xylo import XyloNetwork


def random_xylo(
    rng,
    hidden=1000,
    outputs=8,
    inputs=16,
    fan_out=64,
    wmax=127,
    thr=(50, 3000),
    dash=8,
    shifts=None,
):
    """A random full-size network: each hidden neuron drives exactly ``fan_out`` synapses."""
    w_in = rng.integers(-wmax, wmax + 1, (inputs, hidden, 2)).astype(np.int8)
    w_in[rng.random(w_in.shape) < 0.5] = 0
    w_rec = np.zeros((hidden, hidden, 2), np.int8)
    w_out = np.zeros((hidden, outputs), np.int8)
    for j in range(hidden):
        n_out = int(rng.integers(0, 3))
        w_out[j, rng.choice(outputs, n_out, replace=False)] = rng.integers(
            1, wmax + 1, n_out
        ) * rng.choice([-1, 1], n_out)
        flat = rng.choice(hidden * 2, fan_out - n_out, replace=False)
        w_rec[j, flat // 2, flat % 2] = rng.integers(1, wmax + 1, flat.size) * rng.choice(
            [-1, 1], flat.size
        )
    return XyloNetwork(
        w_in,
        w_rec,
        w_out,
        threshold=rng.integers(*thr, hidden),
        bias=rng.integers(-20, 20, hidden),
        dash_mem=rng.integers(0, dash, hidden),
        dash_syn=rng.integers(0, dash, (hidden, 2)),
        threshold_out=rng.integers(*thr, outputs),
        bias_out=rng.integers(-20, 20, outputs),
        dash_mem_out=rng.integers(0, dash, outputs),
        dash_syn_out=rng.integers(0, dash, outputs),
        **dict(
            zip(("shift_in", "shift_rec", "shift_out"), shifts or rng.integers(0, 5, 3).tolist())
        ),
    )


def xylosim_run(net: XyloNetwork, x: np.ndarray):
    """Hidden ``[T, H]``, output ``[T, O]`` spikes and ``v_mem`` of XyloSim for one stream."""
    pytest.importorskip("xylosim.v2")
    from neuroflow.emulator.references import XyloSimReference

    return XyloSimReference(net).run(x)


@pytest.mark.parametrize(
    "case", ["moderate", "saturating", pytest.param("tiny_threshold", marks=pytest.mark.slow)]
)
def test_full_size_network_equals_xylosim(case):
    pytest.importorskip("xylosim.v2")
    rng = np.random.default_rng({"moderate": 0, "saturating": 1, "tiny_threshold": 2}[case])
    if case == "moderate":
        net = random_xylo(rng)
        x = (rng.random((40, 2, 16)) < 0.2) * rng.integers(0, 16, (40, 2, 16))
    elif case == "saturating":  # big shifted weights, slow decays: isyn and vmem pin at +-32768
        net = random_xylo(rng, thr=(20000, 32767), dash=15, shifts=(7, 6, 7))
        x = rng.integers(0, 16, (40, 2, 16))
    else:  # thresholds of 0..2: up to 31 spikes per tick, wrap16 in v - thr
        net = random_xylo(rng, thr=(0, 3))
        x = (rng.random((40, 2, 16)) < 0.1) * rng.integers(0, 16, (40, 2, 16))
    result = net.run(x)
    saturated = False
    for b in range(x.shape[1]):
        hidden, out, vmem = xylosim_run(net, x[:, b])
        np.testing.assert_array_equal(result.layer_spikes["hidden"][:, b], hidden)
        np.testing.assert_array_equal(result.output_spikes[:, b], out)
        saturated |= bool((np.abs(vmem) >= 32767).any())
    assert result.layer_spikes["hidden"].any()
    if case == "saturating":
        assert saturated, "the saturating case must reach the int16 limits"
    if case == "tiny_threshold":
        assert result.layer_spikes["hidden"].max() == 31


def test_statistics_count_events_and_energy_prices_them():
    rng = np.random.default_rng(5)
    net = random_xylo(rng, hidden=50, fan_out=10)
    x = rng.integers(0, 3, (20, 3, 16))
    r = net.run(x)
    # input events: every input event reaches each synapse of its row (hand count)
    expected_in = sum(
        int(x[t, b, i]) * int(np.count_nonzero(net.w_in[i]))
        for t in range(20)
        for b in range(3)
        for i in range(16)
    )
    h = r.layer_spikes["hidden"].astype(np.int64)
    expected_rec = int((h[:-1].sum(axis=(0, 1)) * np.count_nonzero(net.w_rec, axis=(1, 2))).sum())
    assert r.layers[0].synaptic_events == expected_in + expected_rec
    assert r.layers[0].neuron_updates == 20 * 3 * 50
    from neuroflow.energy import load_hardware

    p = load_hardware("xylo")
    total = (
        sum(s.synaptic_events for s in r.layers) * p.ac_pj
        + sum(s.neuron_updates for s in r.layers) * p.neuron_update_pj
    )
    assert r.energy_per_sample_pj == pytest.approx(total / 3)
    assert r.latency_per_sample_s == pytest.approx(20 * net.dt)


def test_too_big_and_bad_input_are_named_errors():
    rng = np.random.default_rng(3)
    with pytest.raises(ChipCapacityError, match="1,001 hidden neurons; the chip has 1,000"):
        XyloNetwork(
            np.zeros((16, 1001, 2)),
            np.zeros((1001, 1001, 2)),
            np.zeros((1001, 8)),
            1,
            0,
            0,
            0,
            1,
            0,
            0,
            0,
        )
    w_rec = np.ones((10, 10, 2))
    w_out = np.ones((10, 8))
    with pytest.raises(
        ChipCapacityError, match="drives 148 synapses; the chip allows a fan-out of 64"
    ):
        XyloNetwork(
            np.zeros((16, 70, 2)), np.ones((70, 70, 2)), np.ones((70, 8)), 1, 0, 0, 0, 1, 0, 0, 0
        )
    net = XyloNetwork(np.ones((16, 10, 2)), w_rec, w_out, 5, 0, 1, 1, 5, 0, 1, 1)
    with pytest.raises(InputRangeError, match="0..15"):
        net.run(np.full((4, 1, 16), 16))
    with pytest.raises(InputRangeError, match=r"\[T, B, 16\]"):
        net.run(rng.integers(0, 2, (4, 1, 15)))


def _cuba(n, tau_syn=4e-3, tau_mem=8e-3, thr=1.0):
    return nir.CubaLIF(
        tau_syn=np.full(n, tau_syn),
        tau_mem=np.full(n, tau_mem),
        r=np.ones(n),
        v_leak=np.zeros(n),
        v_threshold=np.full(n, thr),
        v_reset=np.zeros(n),
        w_in=np.ones(n),
    )


def test_compile_from_nir_graph_with_recurrence():
    rng = np.random.default_rng(7)
    H = 40
    w_rec = rng.normal(0, 1.0, (H, H)) * (rng.random((H, H)) < 0.2)
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(np.array([16])),
            "w_in": nir.Linear(rng.normal(0, 1, (H, 16))),
            "hidden": _cuba(H),
            "w_rec": nir.Linear(w_rec),
            "w_out": nir.Linear(rng.normal(0, 1, (8, H))),
            "out": _cuba(8),
            "output": nir.Output(np.array([8])),
        },
        edges=[
            ("input", "w_in"),
            ("w_in", "hidden"),
            ("hidden", "w_rec"),
            ("w_rec", "hidden"),
            ("hidden", "w_out"),
            ("w_out", "out"),
            ("out", "output"),
        ],
    )
    net = compile(graph, hardware="xylo", dt=1e-3)
    assert 0.9 * np.count_nonzero(w_rec) <= np.count_nonzero(net.w_rec) <= np.count_nonzero(w_rec)
    assert (net.dash_syn == 2).all() and (net.dash_mem == 3).all()  # log2(4 ms / 1 ms), log2(8 / 1)
    for name in ("w_in", "w_rec", "w_out"):
        assert net.quantisation[name]["relative_rms_error"] < 0.05
    x = rng.integers(0, 4, (30, 2, 16))
    r = net.run(x)
    hidden, out, _ = (
        xylosim_run(net, x[:, 0])
        if _has_xylosim()
        else (r.layer_spikes["hidden"][:, 0], r.output_spikes[:, 0], None)
    )
    np.testing.assert_array_equal(r.layer_spikes["hidden"][:, 0], hidden)
    np.testing.assert_array_equal(r.output_spikes[:, 0], out)


def _has_xylosim() -> bool:
    try:
        import xylosim.v2  # noqa: F401
    except ImportError:
        return False
    return True


def test_leaky_hidden_without_synaptic_state_is_refused():
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(np.array([16])),
            "w_in": nir.Linear(np.ones((4, 16))),
            "hidden": nir.LI(tau=np.ones(4), r=np.ones(4), v_leak=np.zeros(4)),
            "output": nir.Output(np.array([4])),
        },
        edges=[("input", "w_in"), ("w_in", "hidden"), ("hidden", "output")],
    )
    with pytest.raises(UnsupportedNodeError, match="xylo cannot run node 'hidden' \\(LI\\)"):
        compile(graph, hardware="xylo")
