"""A small recurrent network of Xylo's integer IAF neurons written in Brian2 (integer state
variables, bit-shift decays as floor divisions, saturation as ``clip``) gives the same spikes as
the emulator. Brian2 fires one spike per tick and adds synaptic events summed, so the network is
chosen where no neuron fires twice in a tick and no current saturates (checked on the
emulator's side). The input events are offset by one step for Brian2's schedule (see
``brian2_xylo_spikes``)."""

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


def test_small_recurrent_network_equals_brian2():
    rng = np.random.default_rng(0)
    net = small_recurrent_network(rng)
    x = (rng.random((60, 1, 4)) < 0.5).astype(np.int64)
    hidden = net.run(x).layer_spikes["hidden"][:, 0]
    assert hidden.max() == 1 and hidden.sum() > 50  # the regime where both models apply
    pytest.importorskip("brian2")
    from neuroflow.emulator.references import brian2_xylo_spikes

    reference = brian2_xylo_spikes(net, x[:, 0])
    np.testing.assert_array_equal(reference, hidden)
