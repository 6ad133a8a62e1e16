"""A small recurrent network of Xylo's integer IAF neurons written in Brian2 (integer state
variables, bit-shift decays as floor divisions, saturation as ``clip``) gives the same spikes as
the emulator. Brian2 fires one spike per tick and adds synaptic events summed, so the network is
chosen where no neuron fires twice in a tick and no current saturates (checked on the
emulator's side). Brian2 delivers a tick's spikes after its state update, so its step ``t``
input lands in the emulator's tick ``t + 1``."""

from __future__ import annotations

import numpy as np
import pytest

from neuroflow.emulator.xylo import XyloNetwork


def small_recurrent_network(rng, hidden=30, inputs=4):
    w_in = np.zeros((inputs, hidden, 2), np.int8)
    w_in[..., 0] = rng.integers(-20, 60, (inputs, hidden)) * (rng.random((inputs, hidden)) < 0.5)
    w_rec = np.zeros((hidden, hidden, 2), np.int8)
    w_rec[..., 1] = rng.integers(-30, 30, (hidden, hidden)) * (rng.random((hidden, hidden)) < 0.2)
    return XyloNetwork(
        w_in,
        w_rec,
        np.zeros((hidden, 1), np.int8),
        threshold=rng.integers(1000, 1600, hidden),
        bias=rng.integers(-2, 3, hidden),
        dash_mem=rng.integers(1, 5, hidden),
        dash_syn=rng.integers(1, 4, (hidden, 2)),
        threshold_out=100,
        bias_out=0,
        dash_mem_out=1,
        dash_syn_out=1,
        shift_in=1,
        shift_rec=1,
        shift_out=0,
    )


def brian2_spikes(net: XyloNetwork, x: np.ndarray) -> np.ndarray:
    """Hidden spike counts ``[T + 1, H]`` of the same integers simulated by Brian2 (numpy)."""
    b2 = pytest.importorskip("brian2")
    b2.prefs.codegen.target = "numpy"
    ms = b2.ms
    H, T = net.n_hidden, x.shape[0]
    group = b2.NeuronGroup(
        H,
        "v : integer\ni0 : integer\ni1 : integer\nthr : integer\nbias : integer\n"
        "dm : integer\nd0 : integer\nd1 : integer",
        threshold="v >= thr",
        reset="v -= thr",
        dt=1 * ms,
    )
    # x >> d is floor(x / 2^d); the decay is at least one step toward 0; states saturate at int16
    group.run_regularly(
        "i0 = i0 - (i0 // 2**d0 + int(i0 > 0 and i0 // 2**d0 == 0))\n"
        "i1 = i1 - (i1 // 2**d1 + int(i1 > 0 and i1 // 2**d1 == 0))\n"
        "v = clip(v + clip(clip(-(v // 2**dm + int(v > 0 and v // 2**dm == 0)) + i0 + i1,"
        " -32768, 32767) + bias, -32768, 32767), -32768, 32767)",
        when="groups",
    )
    group.thr, group.bias, group.dm = net.threshold, net.bias, net.dash_mem
    group.d0, group.d1 = net.dash_syn[:, 0], net.dash_syn[:, 1]
    t_idx, n_idx = np.nonzero(x)
    source = b2.SpikeGeneratorGroup(net.n_in, n_idx, t_idx * ms, dt=1 * ms)
    model = "w : integer\nsyn : integer"
    on_pre = "i0_post += w * int(syn == 0)\ni1_post += w * int(syn == 1)"
    synapses = []
    for pre_group, weights, shift in (
        (source, net.w_in, net.shift_in),
        (group, net.w_rec, net.shift_rec),
    ):
        s = b2.Synapses(pre_group, group, model, on_pre=on_pre, dt=1 * ms)
        pre, post, syn = np.nonzero(weights)
        s.connect(i=pre, j=post)
        s.w = weights[pre, post, syn].astype(np.int64) << shift
        s.syn = syn
        synapses.append(s)
    monitor = b2.SpikeMonitor(group)
    b2.Network(group, source, *synapses, monitor).run((T + 1) * ms, namespace={})
    counts = np.zeros((T + 1, H), np.int64)
    np.add.at(counts, (np.round(monitor.t[:] / ms).astype(int), monitor.i[:]), 1)
    return counts


def test_small_recurrent_network_equals_brian2():
    rng = np.random.default_rng(0)
    net = small_recurrent_network(rng)
    x = (rng.random((60, 1, 4)) < 0.5).astype(np.int64)
    hidden = net.run(x).layer_spikes["hidden"][:, 0]
    assert hidden.max() == 1 and hidden.sum() > 50  # the regime where both models apply
    reference = brian2_spikes(net, x[:, 0])
    np.testing.assert_array_equal(reference[1:], hidden)
