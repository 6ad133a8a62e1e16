"""NIR against the peer frameworks' importers and exporters (dev-only peers, skipped if absent).

Reference values are the peers' own simulations: neuroflow -> NIR -> peer importer must give
neuroflow's spikes, and a peer's exported graph imported here must give the peer's spikes, with
the readings ``docs/nir.md`` gives (dt, neuron_mode). Where a peer's reading cannot reproduce
them, the test states the difference by asserting it.
"""

from __future__ import annotations

import contextlib
import io
import logging

import pytest
import torch
from torch import nn

import neuroflow.nir as nfn
from neuroflow.layers import TimeDistributed
from neuroflow.neurons import IF, LIF

pytestmark = [
    pytest.mark.filterwarnings("ignore::neuroflow.nir.NIRSemanticsWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]
DT = 1e-4
T, B = 40, 4


@pytest.fixture(autouse=True)
def _quiet_peer_logs():
    logging.disable(logging.WARNING)  # Norse logs a warning for every r != 1
    yield
    logging.disable(logging.NOTSET)


def _scaled(model: nn.Module, factor: float = 3.0) -> nn.Module:
    """Weights larger than at initialisation so that every layer spikes (10-40% of steps)."""
    torch.manual_seed(0)
    for p in model.parameters():
        if p.dim() > 1:
            p.data *= factor
    return model.eval()


def linear_lif(decay_input: bool = True) -> nn.Module:
    torch.manual_seed(0)
    tau = 2.0 if decay_input else 4.0
    return _scaled(
        nn.Sequential(
            TimeDistributed(nn.Linear(20, 32)),
            LIF(tau=tau, decay_input=decay_input),
            TimeDistributed(nn.Linear(32, 8)),
            LIF(tau=tau, decay_input=decay_input, v_threshold=0.8),
        )
    )


def conv_if(pool_and_flatten: bool = True) -> nn.Module:
    torch.manual_seed(0)
    if pool_and_flatten:
        return _scaled(
            nn.Sequential(
                TimeDistributed(nn.Conv2d(2, 4, 3, padding=1), nn.AvgPool2d(2)),
                IF(),
                TimeDistributed(nn.Flatten(), nn.Linear(64, 8)),
                IF(),
            )
        )
    # Norse and Sinabs map neither AvgPool2d nor a batch-preserving Flatten
    return _scaled(
        nn.Sequential(
            TimeDistributed(nn.Conv2d(2, 4, 3, stride=2, padding=1)),
            IF(),
            TimeDistributed(nn.Conv2d(4, 4, 3, padding=1)),
            IF(),
        )
    )


def _inputs(shape, scale=2.0):
    torch.manual_seed(1)
    return torch.rand(T, B, *shape) * scale


def _stepwise(module, x):
    """Run a nirtorch-built peer module (``(out, state) = m(x_t, state)``) over time."""
    state, outs = None, []
    for x_t in x:
        out, state = module(x_t, state)
        outs.append(out)
    return torch.stack(outs)


def _reference(model, x):
    with torch.no_grad():
        spikes = model(x)
    assert 0.02 < spikes.mean() < 0.6, "the test network should spike on a fair share of steps"
    return spikes


# --------------------------------------------------------------------- neuroflow -> peers
@pytest.mark.parametrize("decay_input", [True, False])
def test_spikingjelly_imports_neuroflow_lif(decay_input):
    nir_exchange = pytest.importorskip("spikingjelly.activation_based.nir_exchange")
    model = linear_lif(decay_input)
    x = _inputs((20,))
    graph = nfn.to_nir(model, (20,), dt=DT)
    with torch.no_grad():
        out, _ = nir_exchange.import_from_nir(graph, dt=DT, step_mode="m")(x)
    torch.testing.assert_close(out, _reference(model, x), rtol=0, atol=0)


def test_spikingjelly_imports_neuroflow_conv_if():
    nir_exchange = pytest.importorskip("spikingjelly.activation_based.nir_exchange")
    model = conv_if()
    x = _inputs((2, 8, 8), 1.5)
    graph = nfn.to_nir(model, (2, 8, 8), dt=DT)
    with torch.no_grad():
        out, _ = nir_exchange.import_from_nir(graph, dt=DT, step_mode="m")(x)
    torch.testing.assert_close(out, _reference(model, x), rtol=0, atol=0)


def test_norse_imports_neuroflow_lif_with_the_export_dt():
    norse = pytest.importorskip("norse.torch")
    model = linear_lif(decay_input=True)
    x = _inputs((20,))
    ref = _reference(model, x)
    graph = nfn.to_nir(model, (20,), dt=DT)
    with torch.no_grad():
        torch.testing.assert_close(_stepwise(norse.from_nir(graph, dt=DT), x), ref, rtol=0, atol=0)
        # Norse's default dt = 1e-3 reads tau 10x shorter: different spikes
        assert (_stepwise(norse.from_nir(graph), x) != ref).any()
        # Norse ignores r: a decay_input=False layer (r = tau / dt) is read as r = 1
        other = linear_lif(decay_input=False)
        wrong = _stepwise(norse.from_nir(nfn.to_nir(other, (20,), dt=DT), dt=DT), x)
        assert (wrong != _reference(other, x)).any()


def test_norse_imports_neuroflow_conv_if():
    norse = pytest.importorskip("norse.torch")
    model = conv_if(pool_and_flatten=False)
    x = _inputs((2, 8, 8), 1.5)
    graph = nfn.to_nir(model, (2, 8, 8), dt=DT)
    with torch.no_grad():
        out = _stepwise(norse.from_nir(graph, dt=DT), x)
    torch.testing.assert_close(out, _reference(model, x), rtol=0, atol=0)


@pytest.mark.parametrize("decay_input", [True, False])
def test_snntorch_imports_neuroflow_lif(decay_input):
    import_nir = pytest.importorskip("snntorch.import_nir")
    model = linear_lif(decay_input)
    x = _inputs((20,))
    graph = nfn.to_nir(model, (20,), dt=DT)  # snnTorch's importer assumes dt = 1e-4
    with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():  # it prints its weight scaling
        out = _stepwise(import_nir.import_from_nir(graph), x)
    torch.testing.assert_close(out, _reference(model, x), rtol=0, atol=0)


def test_snntorch_refuses_if_with_r_one_over_dt():
    import_nir = pytest.importorskip("snntorch.import_nir")
    graph = nfn.to_nir(conv_if(pool_and_flatten=False), (2, 8, 8), dt=DT)
    with pytest.raises(AssertionError, match="r != 1"):
        import_nir.import_from_nir(graph)


def test_sinabs_reads_neuroflow_if_as_multi_spike_and_neuroflow_reproduces_that_reading():
    pytest.importorskip("matplotlib")  # sinabs imports pylab
    sinabs_nir = pytest.importorskip("sinabs.nir")
    model = conv_if(pool_and_flatten=False)
    x = _inputs((2, 8, 8), 1.5)
    graph = nfn.to_nir(model, (2, 8, 8), dt=DT)
    peer = sinabs_nir.from_nir(graph, batch_size=B)
    with torch.no_grad():
        out = peer(x.transpose(0, 1).reshape(B * T, 2, 8, 8))
        out = (out[0] if isinstance(out, tuple) else out).reshape(B, T, 4, 4, 4).transpose(0, 1)
        ours = nfn.from_nir(graph, neuron_mode="sinabs")(x)
    torch.testing.assert_close(ours, out, rtol=0, atol=0)
    assert (out != _reference(model, x)).any()  # several spikes per step and subtractive reset
    assert out.max() > 1


# --------------------------------------------------------------------- peers -> neuroflow
def test_spikingjelly_export_imports_with_its_spikes():
    pytest.importorskip("spikingjelly.activation_based.nir_exchange")
    from spikingjelly.activation_based import functional, layer, neuron
    from spikingjelly.activation_based.nir_exchange import export_to_nir

    torch.manual_seed(0)
    nets = [
        (
            nn.Sequential(
                layer.Linear(20, 32),
                neuron.LIFNode(tau=2.0),
                layer.Linear(32, 8),
                neuron.LIFNode(tau=3.0, decay_input=False),
            ),
            (20,),
        ),
        (
            nn.Sequential(
                layer.Conv2d(2, 4, 3, padding=1),
                layer.AvgPool2d(2),
                neuron.IFNode(),
                layer.Flatten(),
                layer.Linear(64, 8),
                neuron.IFNode(),
            ),
            (2, 8, 8),
        ),
    ]
    for net, shape in nets:
        _scaled(net)
        functional.set_step_mode(net, "m")
        x = _inputs(shape, 1.5)
        ref = _reference(net, x)
        functional.reset_net(net)
        graph = export_to_nir(net, x, dt=DT)
        with torch.no_grad():
            torch.testing.assert_close(nfn.from_nir(graph, dt=DT)(x), ref, rtol=0, atol=0)


def test_snntorch_export_imports_with_its_spikes():
    snn = pytest.importorskip("snntorch")
    from snntorch.export_nir import export_to_nir

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            # per-neuron beta / threshold: a scalar fails nir's type check on export
            self.fc1 = nn.Linear(20, 32)
            self.lif1 = snn.Leaky(
                beta=torch.full((32,), 0.8),
                threshold=torch.ones(32),
                reset_mechanism="zero",
                init_hidden=True,
            )
            self.fc2 = nn.Linear(32, 8)
            self.lif2 = snn.Leaky(
                beta=torch.full((8,), 0.9),
                threshold=torch.ones(8),
                reset_mechanism="zero",
                init_hidden=True,
            )

        def forward(self, x):
            return self.lif2(self.fc2(self.lif1(self.fc1(x))))

    net = _scaled(Net())
    x = _inputs((20,))
    with torch.no_grad():
        ref = torch.stack([net(x_t) for x_t in x])
    assert 0.02 < ref.mean() < 0.6
    graph = export_to_nir(net, x[0], ignore_dims=[0])
    with torch.no_grad():
        torch.testing.assert_close(nfn.from_nir(graph, dt=1e-4)(x), ref, rtol=0, atol=0)


def test_norse_export_imports_with_its_spikes_at_dt_squared():
    """Norse 1.1's ``to_nir`` writes ``tau = dt / tau_mem_inv`` (dt times the time constant), so
    forward Euler reproduces its simulation only with ``dt_norse ** 2`` (1e-6 for its default)."""
    norse = pytest.importorskip("norse.torch")
    net = norse.SequentialState(
        nn.Linear(20, 32), norse.LIFBoxCell(), nn.Linear(32, 8), norse.LIFBoxCell()
    )
    _scaled(net, 30.0)  # LIFBox integrates dt / tau = 0.1 of its input per step
    x = _inputs((20,))
    with torch.no_grad():
        ref = _stepwise(net, x)
    assert 0.02 < ref.mean() < 0.6
    graph = norse.to_nir(net, x[0, 0])  # its LIF nodes have scalar parameters: not type-correct
    with pytest.warns(nfn.NIRSemanticsWarning, match="leniently"), torch.no_grad():
        imported = nfn.from_nir(graph, dt=1e-3 * 1e-3, type_check=False)
    with torch.no_grad():
        torch.testing.assert_close(imported(x), ref, rtol=0, atol=0)
        assert (nfn.from_nir(graph, dt=1e-3, type_check=False)(x) != ref).any()


def test_sinabs_export_imports_with_its_spikes_in_sinabs_mode():
    pytest.importorskip("matplotlib")
    sinabs_nir = pytest.importorskip("sinabs.nir")
    import sinabs.layers as sl

    torch.manual_seed(0)
    nets = [
        (
            nn.Sequential(
                nn.Conv2d(2, 4, 3, padding=1),
                sl.IAFSqueeze(batch_size=B, min_v_mem=-1.0),
                sl.SumPool2d(2),
                nn.Flatten(),
                nn.Linear(64, 8),
                sl.IAFSqueeze(batch_size=B, min_v_mem=-1.0),
            ),
            (2, 8, 8),
        ),
        (
            nn.Sequential(
                nn.Linear(20, 16),
                sl.LIFSqueeze(tau_mem=5.0, batch_size=B, norm_input=False),
                nn.Linear(16, 8),
                sl.LIFSqueeze(tau_mem=8.0, batch_size=B, norm_input=False),
            ),
            (20,),
        ),
    ]
    for net, shape in nets:
        _scaled(net)
        x = _inputs(shape, 1.0)
        folded = x.transpose(0, 1).reshape(B * T, *shape)
        with torch.no_grad():
            ref = net(folded)
            ref = ref.reshape(B, T, *ref.shape[1:]).transpose(0, 1)
        assert ref.max() > 1  # several spikes per step
        graph = sinabs_nir.to_nir(net, folded[:B])
        with torch.no_grad():
            ours = nfn.from_nir(graph, neuron_mode="sinabs", type_check=False)(x)
            spec = nfn.from_nir(graph, dt=1.0, type_check=False)(x)
        torch.testing.assert_close(ours, ref, rtol=0, atol=0)
        assert (spec != ref).any()  # the NIR specification's reading differs


def test_real_recurrent_graph_braille_agrees_with_spikingjelly():
    """``braille.nir``, the recurrent CubaLIF network of the NIR paper's braille task, ships with
    Norse's tests (``norse/torch/utils/test/braille.nir``): Input(12) -> Affine -> CubaLIF(38)
    with an Affine back onto itself -> Affine -> CubaLIF(7). SpikingJelly's importer, run step by
    step with the same dt, gives neuroflow's spikes."""
    from pathlib import Path

    norse = pytest.importorskip("norse")
    nir_exchange = pytest.importorskip("spikingjelly.activation_based.nir_exchange")
    import nir

    path = Path(norse.__file__).parent / "torch" / "utils" / "test" / "braille.nir"
    if not path.is_file():
        pytest.skip("this Norse does not ship braille.nir")
    ours = nfn.load(path, dt=1e-4)
    assert ours.back_edges == [("lif1.w_rec", "lif1.lif")]
    torch.manual_seed(0)
    x = (torch.rand(100, 3, 12) < 0.3).float()
    peer = nir_exchange.import_from_nir(nir.read(path, type_check=False), dt=1e-4, step_mode="s")
    with torch.no_grad():
        ref = _stepwise(peer, x)
        got = ours(x)
    assert 0.02 < ref.mean() < 0.9
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
