"""neuroflow neurons: fused kernel vs torch reference, state handling, surrogates, errors."""

import math
import multiprocessing
import threading

import pytest
import torch

from neuroflow.errors import InputShapeError, InvalidArgumentError, NeuroflowError
from neuroflow.neurons import IF, LIF, PLIF, MultiSpike, surrogate
from neuroflow.neurons.functional import fused_supported


def _grads(node, x, v0, weights):
    x = x.clone().requires_grad_(True)
    v0 = v0.clone().requires_grad_(True)
    spikes, v_last = node(x, state=v0, return_state=True)
    ((spikes * weights).sum() + (v_last**2).sum()).backward()
    params = [p.grad.clone() for p in node.parameters()]
    node.zero_grad()
    return spikes.detach(), v_last.detach(), x.grad, v0.grad, params


@pytest.mark.parametrize(
    "make",
    [
        lambda be: LIF(tau=2.0, backend=be),
        lambda be: LIF(tau=5.0, v_reset=None, decay_input=False, backend=be, surrogate="atan"),
        lambda be: LIF(
            tau=1.5,
            v_reset=-0.3,
            v_threshold=0.7,
            detach_reset=True,
            backend=be,
            surrogate="rectangular",
        ),
        lambda be: IF(v_reset=None, backend=be, surrogate=surrogate.ATan(3.0)),
        lambda be: PLIF(tau=4.0, v_reset=None, backend=be),
        lambda be: PLIF(
            tau=2.0, decay_input=False, detach_reset=True, backend=be, surrogate="atan"
        ),
    ],
    ids=[
        "lif",
        "lif-soft-nodecay-atan",
        "lif-vreset-detach-rect",
        "if-soft",
        "plif-soft",
        "plif-nodecay",
    ],
)
@pytest.mark.parametrize("shape", [(7, 2, 3, 11), (33, 1, 300)])
def test_fused_kernel_equals_torch_reference(make, shape):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g) * 1.2 + 0.3
    v0 = torch.randn(shape[1:], generator=g) * 0.3
    w = torch.randn(shape, generator=g)
    fused, ref = make("numba"), make("torch")
    a, b = _grads(fused, x, v0, w), _grads(ref, x, v0, w)
    assert torch.equal(a[0], b[0])  # spikes
    assert torch.equal(a[1], b[1])  # final potential
    for ga, gb in zip(a[2:4], b[2:4]):
        torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-5)
    for pa, pb in zip(a[4], b[4]):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-5 * float(b[2].abs().sum()))


@pytest.mark.parametrize("neuron", [LIF, PLIF])
def test_parallel_split_matches_single_block(neuron):
    # large enough to be split over threads (numba's parallel kernels) and several backward blocks
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        g = torch.Generator().manual_seed(4)
        x = torch.randn(20, 8, 3000, generator=g)
        v0 = torch.zeros(8, 3000)
        a, b = _grads(neuron(backend="numba"), x, v0, x), _grads(neuron(backend="torch"), x, v0, x)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(a[0], b[0])
    torch.testing.assert_close(a[2], b[2], rtol=1e-5, atol=1e-5)
    for pa, pb in zip(a[4], b[4]):  # PLIF's tau gradient: a sum over both column ranges
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-5 * float(b[2].abs().sum()))


_FORK_INPUT = torch.randn(20, 8, 3000, generator=torch.Generator().manual_seed(5))


def _fused_lif_in_child(queue):
    # no parallel torch operation here: torch's own OpenMP hangs in a forked child (data-loader
    # workers therefore run torch on one thread); the neuron kernels alone are under test
    queue.put(float(LIF(backend="numba")(_FORK_INPUT).numpy().sum()))


def test_forked_child_runs_the_kernels_after_the_parent():
    """GNU OpenMP is not fork-safe: numba aborts a forked child's parallel region once the parent
    ran one. A child forked after the parallel kernels ran must run them on its own thread and
    give the parent's result."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)  # inherited by the child: its input would be split over 2 ranges
    try:
        expected = float(LIF(backend="numba")(_FORK_INPUT).numpy().sum())  # parallel here
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_fused_lif_in_child, args=(queue,))
        child.start()
        child.join(timeout=120)
    finally:
        torch.set_num_threads(previous)
    if child.exitcode is None:
        child.kill()
    assert child.exitcode == 0
    assert queue.get(timeout=5) == expected


def test_concurrent_callers_get_correct_spikes():
    """Two Python threads running large layers at once: one launch is parallel at a time (numba's
    fallback threading layer aborts on concurrent launches), the other caller runs serially."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    expected = LIF(backend="torch")(_FORK_INPUT)
    results = []

    def run():
        results.extend(LIF(backend="numba")(_FORK_INPUT) for _ in range(5))

    try:
        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        torch.set_num_threads(previous)
    assert len(results) == 10 and all(torch.equal(r, expected) for r in results)


def test_hand_computed_lif_trace():
    # tau=2, v_th=1, hard reset to 0, decay_input: h = v + (x - v) / 2
    x = torch.tensor([1.0, 1.0, 1.0, 2.0, 0.0]).view(5, 1, 1)
    # v: 0 -> h=.5 (no) -> h=.75 (no) -> h=.875 (no) -> h=1.4375 spike, v=0 -> h=0
    expected = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0]).view(5, 1, 1)
    for be in ("numba", "torch"):
        assert torch.equal(LIF(backend=be)(x), expected)
    # H(0) = 1: a potential exactly at threshold fires
    assert LIF(tau=2.0)(torch.full((1, 1, 1), 2.0)).item() == 1.0


def test_fresh_state_each_call_and_streaming():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(10, 4, 50, generator=g) + 0.5
    lif = LIF()
    assert torch.equal(lif(x), lif(x))  # no hidden state carried between calls
    s_full, v_full = lif(x, return_state=True)
    s1, v1 = lif(x[:6], return_state=True)
    s2, v2 = lif(x[6:], state=v1, return_state=True)
    assert torch.equal(torch.cat([s1, s2]), s_full)
    assert torch.equal(v2, v_full)


def test_float64_and_auto_backend():
    x = torch.randn(4, 2, 5, dtype=torch.float64)
    assert not fused_supported(x)
    assert LIF()(x).dtype == torch.float64  # auto falls back to the reference
    with pytest.raises(InvalidArgumentError, match="backend='numba'"):
        LIF(backend="numba")(x)


def test_plif_learns_tau():
    plif = PLIF(tau=3.0)
    assert math.isclose(plif.tau, 3.0, rel_tol=1e-6)
    x = torch.rand(8, 4, 16) * 2
    plif(x).sum().backward()
    assert plif.w.grad is not None and plif.w.grad.abs() > 0


def test_surrogate_gradients_by_hand():
    u = torch.tensor([-1.0, -0.25, 0.0, 0.3, 2.0], requires_grad=True)
    s = surrogate.Rectangular(width=1.0)(u)
    assert torch.equal(s, torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0]))
    s.sum().backward()
    assert torch.equal(u.grad, torch.tensor([0.0, 1.0, 1.0, 1.0, 0.0]))
    at = surrogate.ATan(2.0).grad(torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(at, torch.tensor([1.0, 1.0 / (1 + math.pi**2)]))
    sig = surrogate.Sigmoid(4.0).grad(torch.tensor([0.0]))
    torch.testing.assert_close(sig, torch.tensor([1.0]))  # alpha * 1/2 * 1/2
    assert surrogate.get_surrogate("atan", alpha=3.0) == surrogate.ATan(3.0)


def test_multispike_integer_values_and_straight_through():
    x = torch.tensor([-1.0, 0.4, 0.6, 2.5, 3.49, 5.0], requires_grad=True)
    s = MultiSpike(D=4)(x)
    assert torch.equal(s, torch.tensor([0.0, 0.0, 1.0, 2.0, 3.0, 4.0]))
    s.sum().backward()
    assert torch.equal(x.grad, torch.tensor([0.0, 1.0, 1.0, 1.0, 1.0, 0.0]))
    torch.testing.assert_close(
        MultiSpike(D=4, normalize=True)(torch.tensor([3.0])), torch.tensor([0.75])
    )


@pytest.mark.parametrize(
    "build,needle",
    [
        (lambda: LIF(tau=float("nan")), "tau"),
        (lambda: LIF(tau=0.0), "tau"),
        (lambda: LIF(tau=-2.0), "tau"),
        (lambda: PLIF(tau=1.0), "tau"),
        (lambda: LIF(v_threshold=0.0, v_reset=0.0), "v_threshold"),
        (lambda: IF(v_threshold=-1.0, v_reset=0.0), "v_reset"),
        (lambda: LIF(v_threshold=float("inf")), "v_threshold"),
        (lambda: LIF(backend="cuda-magic"), "backend"),
        (lambda: MultiSpike(D=0), "D"),
        (lambda: surrogate.Sigmoid(alpha=-1.0), "alpha"),
    ],
)
def test_bad_parameters_raise_named_errors(build, needle):
    with pytest.raises(NeuroflowError, match=needle):
        build()


def test_bad_input_raises_named_errors():
    lif = LIF()
    with pytest.raises(InputShapeError, match=r"\[T, B, \.\.\.\].*\(5,\)"):
        lif(torch.randn(5))
    with pytest.raises(InputShapeError, match="floating-point.*int64"):
        lif(torch.ones(3, 2, dtype=torch.long))
    with pytest.raises(InputShapeError, match="state must have shape"):
        lif(torch.randn(3, 2, 4), state=torch.zeros(2, 5))
    with pytest.raises(InvalidArgumentError):
        LIF(tau=True)


def test_broadcast_spike_gradient():
    # loss = spikes.sum() hands the backward an expanded gradient; the kernel reads it as [T, 1]
    x = torch.randn(9, 3, 70) + 0.5
    grads = []
    for be in ("numba", "torch"):
        xi = x.clone().requires_grad_(True)
        LIF(backend=be)(xi).sum().backward()
        grads.append(xi.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-5)
