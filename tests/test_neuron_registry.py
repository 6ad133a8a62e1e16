"""The neuron registry: kernel dispatch by exact surrogate type, strict firing, registered kinds."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch

from neuroflow.errors import InputShapeError, InvalidArgumentError, RegistryError
from neuroflow.neurons import (
    IF,
    LIF,
    PLIF,
    FusedKernel,
    MultiSpike,
    SpikingNeuron,
    functional,
    get_neuron_kind,
    register_neuron_kind,
    surrogate,
)
from neuroflow.neurons.registry import NEURON_KINDS
from neuroflow.neurons.surrogate import Sigmoid, Surrogate


class Triangle(surrogate.Surrogate):
    """A user surrogate: g(u) = alpha * max(0, 1 - alpha |u|) (a triangle of area 1)."""

    def __init__(self, alpha: float = 1.0):
        super().__init__(alpha)

    def grad(self, u):
        return self.alpha * torch.clamp(1.0 - self.alpha * u.abs(), min=0.0)


class SteeperSigmoid(surrogate.Sigmoid):
    """A subclass of a built-in surrogate that overrides ``grad``: not the kernel's sigmoid."""

    def grad(self, u):
        return 2.0 * super().grad(u)


def _input_grad(node, x):
    x = x.clone().requires_grad_(True)
    node(x).sum().backward()
    return x.grad


@pytest.mark.parametrize(
    "sg", [Triangle(1.0), SteeperSigmoid(4.0)], ids=["triangle", "sigmoid-subclass"]
)
def test_user_surrogate_gets_its_own_gradient_on_auto(sg):
    """Bug: backend='auto' ran the fused kernel, whose fall-through computed the rectangular
    gradient for any surrogate it did not know. The reference is the torch step, which calls
    ``sg.grad``."""
    x = torch.randn(8, 4, 64, generator=torch.Generator().manual_seed(0))
    assert functional.resolve_backend("auto", x, LIF(surrogate=sg).dynamics()) == "torch"
    auto = _input_grad(LIF(surrogate=sg, backend="auto"), x)
    ref = _input_grad(LIF(surrogate=sg, backend="torch"), x)
    torch.testing.assert_close(auto, ref, rtol=1e-6, atol=1e-6)


def test_user_surrogate_gradient_by_hand():
    # one IF neuron, one step: dL/dx = g(x - v_th) for L = s
    x = torch.tensor([[[0.25, 0.75, 1.5, 3.0]]])
    g = _input_grad(IF(surrogate=Triangle(1.0)), x)
    expected = torch.clamp(1.0 - (x - 1.0).abs(), min=0.0)  # 1 - |u| inside |u| < 1
    torch.testing.assert_close(g, expected)


def test_builtin_surrogates_still_take_the_kernel():
    x = torch.randn(4, 2, 8)
    for sg in (surrogate.Sigmoid(), surrogate.ATan(), surrogate.Rectangular()):
        assert functional.resolve_backend("auto", x, LIF(surrogate=sg).dynamics()) == "numba"
    assert functional.resolve_backend("auto", x.double(), LIF().dynamics()) == "torch"


def test_numba_backend_refuses_an_unknown_surrogate():
    x = torch.randn(4, 2, 8)
    with pytest.raises(InvalidArgumentError, match=r"backend='numba'.*Triangle"):
        LIF(surrogate=Triangle(), backend="numba")(x)
    with pytest.raises(InvalidArgumentError, match=r"SteeperSigmoid"):
        PLIF(surrogate=SteeperSigmoid(), backend="numba")(x)
    with pytest.raises(InvalidArgumentError, match=r"'multispike' has no numba kernel"):
        functional.multistep(x, None, MultiSpike().neuron_params(), backend="numba")


def test_strict_threshold_by_hand():
    # IF, v_th = 1, hard reset to 0; inputs 0.5, 0.5, 0.5: h = 0.5, 1.0, ...
    # >= (default): h = 1.0 fires at step 1, then h = 0.5 at step 2
    # >  (strict):  h = 1.0 does not fire; h = 1.5 fires at step 2
    x = torch.full((3, 1, 1), 0.5)
    for backend in ("numba", "torch"):
        assert IF(backend=backend)(x).flatten().tolist() == [0.0, 1.0, 0.0]
        assert IF(strict=True, backend=backend)(x).flatten().tolist() == [0.0, 0.0, 1.0]


@pytest.mark.parametrize("th", [0.3, 0.7, 1.0, 5.5, 1e-3, 123.4])
def test_strict_threshold_at_the_float32_spacing(th):
    # IF, hard reset to 0: h = th exactly, then th again, then the next float32 above th
    th32 = np.float32(th)
    ulp = np.nextafter(th32, np.float32(np.inf)) - th32
    x = torch.tensor([th32, 0.0, ulp], dtype=torch.float32).view(3, 1, 1)
    for backend in ("numba", "torch"):
        strict = IF(v_threshold=float(th32), strict=True, backend=backend)(x).flatten().tolist()
        default = IF(v_threshold=float(th32), backend=backend)(x).flatten().tolist()
        assert strict == [0.0, 0.0, 1.0] and default == [1.0, 0.0, 0.0]


def test_strict_with_a_tiny_threshold_takes_the_torch_step():
    # the kernel's strict margin would be subnormal (flushed to 0 where subnormals are disabled)
    x = torch.zeros(2, 1, 3)
    params = IF(v_threshold=0.0, v_reset=-1.0, strict=True).dynamics()
    assert functional.resolve_backend("auto", x, params) == "torch"
    with pytest.raises(InvalidArgumentError, match="strict firing"):
        IF(v_threshold=0.0, v_reset=-1.0, strict=True, backend="numba")(x)
    assert IF(v_threshold=0.0, v_reset=-1.0, strict=True)(x).sum() == 0  # h = 0 is not > 0


def _quantised(shape, seed):
    # multiples of 1/4 with tau = 2: every potential is exact, and many land on the threshold
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-2, 7, shape, generator=g).float() / 4


@pytest.mark.parametrize(
    "make",
    [
        lambda be: LIF(strict=True, backend=be),
        lambda be: LIF(strict=True, v_reset=None, decay_input=False, surrogate="atan", backend=be),
        lambda be: IF(strict=True, detach_reset=True, surrogate="rectangular", backend=be),
        lambda be: PLIF(strict=True, v_reset=None, backend=be),
    ],
    ids=["lif", "lif-soft-atan", "if-detach-rect", "plif-soft"],
)
def test_strict_kernel_equals_torch_step(make):
    x = _quantised((24, 3, 130), 1)
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    results = []
    for backend in ("numba", "torch"):
        node = make(backend)
        xi = x.clone().requires_grad_(True)
        spikes, v = node(xi, return_state=True)
        ((spikes * weights).sum() + (v**2).sum()).backward()
        results.append((spikes.detach(), v.detach(), xi.grad, [p.grad for p in node.parameters()]))
    (s1, v1, g1, p1), (s2, v2, g2, p2) = results
    assert torch.equal(s1, s2) and torch.equal(v1, v2)
    torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-5)
    for a, b in zip(p1, p2):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * float(g2.abs().sum()))


def test_strict_differs_from_default_on_threshold_hits():
    x = _quantised((24, 3, 130), 1)
    for backend in ("numba", "torch"):
        assert not torch.equal(LIF(strict=True, backend=backend)(x), LIF(backend=backend)(x))


def test_strict_lif_matches_norse_lif_box():
    """Norse's box LIF (``dv = dt / tau (x + v_leak - v)``, fire on ``v > v_th``, reset to
    ``v_reset``) is neuroflow's strict LIF with decay_input and v_reset = 0 = v_leak; with
    dt / tau = 1/2 both compute the same float32 operations."""
    norse = pytest.importorskip("norse.torch.functional.lif_box")
    x = _quantised((24, 3, 130), 3) * 1.5
    p = norse.LIFBoxParameters(tau_mem_inv=torch.tensor(0.5))
    state = norse.LIFBoxFeedForwardState(v=torch.zeros(x.shape[1:]))
    spikes = []
    for x_t in x:
        z, state = norse.lif_box_feed_forward_step(x_t, state, p, dt=1.0)
        spikes.append(z)
    ref = torch.stack(spikes)
    assert 0.05 < float(ref.mean()) < 0.95
    for backend in ("numba", "torch"):
        s, v = LIF(tau=2.0, strict=True, backend=backend)(x, return_state=True)
        assert torch.equal(s, ref)
        assert torch.equal(v, state.v)


def test_registered_kinds_and_their_kernels():
    assert {"lif", "if", "plif", "multispike"} <= set(NEURON_KINDS.names())
    for name in ("lif", "if", "plif"):
        kind = get_neuron_kind(name)
        assert not kind.stateless and isinstance(kind.kernel, FusedKernel)
    assert get_neuron_kind("multispike").stateless and get_neuron_kind("multispike").kernel is None
    with pytest.raises(RegistryError, match="did you mean 'lif'"):
        get_neuron_kind("lfi")
    with pytest.raises(RegistryError, match="already registered"):
        register_neuron_kind("lif", step=lambda x, s, p, w: (x, s))


def test_multispike_is_a_stateless_spiking_neuron_without_dummy_parameters():
    m = MultiSpike(D=4)
    assert isinstance(m, SpikingNeuron)
    for dummy in ("v_threshold", "v_reset", "surrogate", "detach_reset"):
        assert not hasattr(m, dummy)
    s, state = m(torch.tensor([[0.4, 2.6, 9.0]]), return_state=True)
    assert state is None and s.tolist() == [[0.0, 3.0, 4.0]]


# A kind added in one place, as docs/neurons.md shows: the reservoir neuron v = decay v + x.
@dataclass(frozen=True)
class _DecayParams:
    decay: float
    v_threshold: float
    surrogate: Surrogate = Sigmoid()
    kind: ClassVar[str] = "test-decay"


def _decay_step(x_t, v, p, learnable):
    h = p.decay * v + x_t
    s = p.surrogate(h - p.v_threshold)
    return s, h * (1.0 - s)


class _Decay(SpikingNeuron):
    kind = "test-decay"

    def __init__(self, decay, v_threshold, backend="auto"):
        super().__init__(backend)
        self.decay, self.v_threshold = decay, v_threshold

    def neuron_params(self):
        return _DecayParams(self.decay, self.v_threshold)


def test_a_new_kind_runs_through_the_registry():
    if "test-decay" not in NEURON_KINDS:
        register_neuron_kind(
            "test-decay", step=_decay_step, initial_state=lambda x, p: x.new_zeros(x.shape[1:])
        )
    # decay 0.5, threshold 1: v = 0 -> h = 0.8 -> h = 0.4 + 0.8 = 1.2 fires, v = 0 -> h = 0.8
    x = torch.full((3, 1, 1), 0.8)
    s, v = _Decay(0.5, 1.0)(x, return_state=True)
    assert s.flatten().tolist() == [0.0, 1.0, 0.0]
    torch.testing.assert_close(v, torch.full((1, 1), 0.8))
    with pytest.raises(InvalidArgumentError, match="no numba kernel"):
        _Decay(0.5, 1.0, backend="numba")(x)


# A two-state integer kind (synaptic current halved by a right shift each step, subtractive
# reset), as the chips' neurons will be: a tuple state and integer tensors.
@dataclass(frozen=True)
class _ShiftParams:
    threshold: int
    kind: ClassVar[str] = "test-int-shift"


def _shift_step(x_t, state, p, learnable):
    i_syn, v = state
    i_syn = i_syn - (i_syn >> 1) + x_t
    v = v + i_syn
    s = (v >= p.threshold).to(v.dtype)
    return s, (i_syn, v - s * p.threshold)


def test_a_two_state_integer_kind():
    if "test-int-shift" not in NEURON_KINDS:
        register_neuron_kind(
            "test-int-shift",
            step=_shift_step,
            initial_state=lambda x, p: (x.new_zeros(x.shape[1:]), x.new_zeros(x.shape[1:])),
            integer_input=True,
        )
    # by hand, threshold 3, x = 1, 1, 1: i_syn 1, 2, 2; v 1, 3 -> fires, 0, 2
    x = torch.ones(3, 1, 1, dtype=torch.int32)
    s, (i_syn, v) = functional.multistep(x, None, _ShiftParams(3))
    assert s.flatten().tolist() == [0, 1, 0] and s.dtype == torch.int32
    assert int(i_syn) == 2 and int(v) == 2
    # streaming: the tuple state carries over between calls
    s1, state = functional.multistep(x[:2], None, _ShiftParams(3))
    s2, state = functional.multistep(x[2:], state, _ShiftParams(3))
    assert torch.equal(torch.cat([s1, s2]), s)
    with pytest.raises(InputShapeError, match=r"state\[1\] must have shape"):
        functional.multistep(x, (torch.zeros(1, 1), torch.zeros(2)), _ShiftParams(3))
    with pytest.raises(InputShapeError, match="floating-point"):
        LIF()(x)  # a floating-point kind still refuses integers
