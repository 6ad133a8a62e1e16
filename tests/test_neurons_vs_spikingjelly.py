"""Neuron dynamics against SpikingJelly 2.0.0 (the reference implementation the design follows).

Spikes must be equal exactly, input and parameter gradients to 1e-5, for every combination of
hard/soft reset, decay_input and detach_reset, on both neuroflow backends.
"""

import itertools

import pytest
import torch

from neuroflow.neurons import IF, LIF, PLIF, surrogate

sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
sj_surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")

SURROGATES = [
    (surrogate.Sigmoid(4.0), lambda: sj_surrogate.Sigmoid(alpha=4.0)),
    (surrogate.ATan(2.0), lambda: sj_surrogate.ATan(alpha=2.0)),
]
COMBOS = list(
    itertools.product([0.0, None], [True, False], [False, True])
)  # v_reset, decay_input, detach


def _inputs(seed, shape=(12, 3, 257)):
    g = torch.Generator().manual_seed(seed)
    # a wide spread of currents so that neurons fire at different rates, some at every step
    return torch.randn(shape, generator=g) * 1.5 + 0.4, torch.randn(shape, generator=g)


def _run(node, x, weights, params=()):
    x = x.clone().requires_grad_(True)
    spikes = node(x)
    (spikes * weights).sum().backward()
    return spikes.detach(), x.grad, [p.grad.clone() for p in params]


def _close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("sg", SURROGATES, ids=["sigmoid", "atan"])
@pytest.mark.parametrize("v_reset,decay_input,detach", COMBOS)
def test_lif_matches_spikingjelly(backend, sg, v_reset, decay_input, detach):
    x, w = _inputs(1)
    for tau in (2.0, 3.0):  # 3 is not a power of two: division rounding must match too
        ours = LIF(
            tau=tau,
            v_reset=v_reset,
            decay_input=decay_input,
            detach_reset=detach,
            surrogate=sg[0],
            backend=backend,
        )
        ref = sj_neuron.LIFNode(
            tau=tau,
            v_reset=v_reset,
            decay_input=decay_input,
            detach_reset=detach,
            surrogate_function=sg[1](),
            step_mode="m",
        )
        s1, g1, _ = _run(ours, x, w)
        s2, g2, _ = _run(ref, x, w)
        assert torch.equal(s1, s2)
        assert 0.05 < s1.mean() < 0.95
        _close(g1, g2)


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("v_reset,detach", list(itertools.product([0.0, None], [False, True])))
def test_if_matches_spikingjelly(backend, v_reset, detach):
    x, w = _inputs(2)
    ours = IF(v_reset=v_reset, detach_reset=detach, backend=backend)
    ref = sj_neuron.IFNode(
        v_reset=v_reset,
        detach_reset=detach,
        surrogate_function=sj_surrogate.Sigmoid(),
        step_mode="m",
    )
    s1, g1, _ = _run(ours, x, w)
    s2, g2, _ = _run(ref, x, w)
    assert torch.equal(s1, s2)
    _close(g1, g2)


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("v_reset,decay_input,detach", COMBOS)
def test_plif_matches_spikingjelly(backend, v_reset, decay_input, detach):
    x, w = _inputs(3)
    ours = PLIF(
        tau=2.5, v_reset=v_reset, decay_input=decay_input, detach_reset=detach, backend=backend
    )
    ref = sj_neuron.ParametricLIFNode(
        init_tau=2.5,
        v_reset=v_reset,
        decay_input=decay_input,
        detach_reset=detach,
        surrogate_function=sj_surrogate.Sigmoid(),
        step_mode="m",
    )
    torch.testing.assert_close(ours.w.detach(), ref.w.detach())
    s1, g1, (gw1,) = _run(ours, x, w, [ours.w])
    s2, g2, (gw2,) = _run(ref, x, w, [ref.w])
    assert torch.equal(s1, s2)
    _close(g1, g2)
    # dL/dw sums over every neuron and step: compare relative to its size
    torch.testing.assert_close(gw1, gw2, rtol=1e-5, atol=1e-5 * float(g2.abs().sum()))
