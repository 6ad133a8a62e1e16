"""NIR export / import: round trips, the specification's neuron semantics, DAGs, refusals."""

from __future__ import annotations

import math
import warnings

import nir
import numpy as np
import pytest
import torch
from torch import nn

import neuroflow.nir as nfn
from neuroflow.layers import TimeDistributed
from neuroflow.models import build
from neuroflow.neurons import IF, LIF, MultiSpike

pytestmark = pytest.mark.filterwarnings("ignore::neuroflow.nir.NIRSemanticsWarning")


def _scnn_with_bn_stats(seed: int = 0):
    torch.manual_seed(seed)
    model = build("scnn", num_classes=10, input_shape=(2, 34, 34)).eval()
    for m in model.modules():  # non-trivial running statistics, so that folding is exercised
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 2.0)
            m.bias.data.uniform_(-0.3, 0.3)
    model.conv1[
        0
    ].weight.data *= 4  # larger weights than at initialisation, so that both layers spike
    model.conv2[0].weight.data *= 12
    return model


def _lif_mlp(seed: int = 0, soft: bool = False):
    torch.manual_seed(seed)
    v_reset = None if soft else 0.0
    return nn.Sequential(
        TimeDistributed(nn.Linear(20, 32)),
        LIF(tau=2.0, v_reset=v_reset),
        TimeDistributed(nn.Linear(32, 16)),
        LIF(tau=3.0, decay_input=False, v_threshold=0.8, v_reset=v_reset),
        TimeDistributed(nn.Linear(16, 4)),
        IF(v_threshold=0.7, v_reset=v_reset),
    ).eval()


def _recurrent_cuba_graph(seed: int = 0) -> nir.NIRGraph:
    rng = np.random.default_rng(seed)
    n = 12
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([6])),
            "w_in": nir.Affine(
                weight=rng.normal(0, 1.0, (n, 6)).astype(np.float32), bias=np.zeros(n, np.float32)
            ),
            "lif": nir.CubaLIF(
                tau_syn=np.full(n, 5e-3),
                tau_mem=np.full(n, 1e-2),
                r=np.full(n, 100.0),
                v_leak=np.zeros(n),
                v_threshold=np.full(n, 1.0),
                v_reset=np.zeros(n),
                w_in=np.full(n, 50.0),
            ),
            "w_rec": nir.Linear(weight=rng.normal(0, 0.3, (n, n)).astype(np.float32)),
            "readout": nir.Affine(
                weight=rng.normal(0, 1.0, (3, n)).astype(np.float32), bias=np.zeros(3, np.float32)
            ),
            "output": nir.Output(output_type=np.array([3])),
        },
        edges=[
            ("input", "w_in"),
            ("w_in", "lif"),
            ("lif", "w_rec"),
            ("w_rec", "lif"),
            ("lif", "readout"),
            ("readout", "output"),
        ],
    )


def _spikes_of(model: nn.Module, x: torch.Tensor, upto: str) -> torch.Tensor:
    """Output of a Sequential ``model`` after its child ``upto``."""
    for name, child in model.named_children():
        x = child(x)
        if name == upto:
            return x
    raise KeyError(upto)


# ------------------------------------------------------------------------------- round trips
def test_scnn_round_trip_identical_spikes_and_logits(tmp_path):
    model = _scnn_with_bn_stats()
    path = tmp_path / "scnn.nir"
    nfn.save(model, path, input_shape=(2, 34, 34), dt=1e-3)
    imported = nfn.load(path)
    assert imported.dt == 1e-3  # read from the metadata
    x = (torch.rand(8, 4, 2, 34, 34) < 0.2).float() * 2
    with torch.no_grad():
        ref_logits = model(x)
        got_logits = imported(x)
        ref_spikes = _spikes_of(model, x, "lif2")
        got = imported.layer("lif2")
        # run the imported graph up to lif2 by hand from the graph's own modules
        h = x
        for name in ["conv1_0", "conv1_2", "lif1", "conv2_0", "conv2_2", "lif2"]:
            h = imported._run_node(name, h, {}, {})
    assert got is not None
    assert 0.01 < ref_spikes.mean() < 0.5
    torch.testing.assert_close(h, ref_spikes, rtol=0, atol=0)
    torch.testing.assert_close(got_logits, ref_logits, rtol=1e-5, atol=1e-5)


def test_bn_is_folded_into_the_convolution():
    model = _scnn_with_bn_stats()
    graph = nfn.to_nir(model, (2, 34, 34))
    assert not any("BatchNorm" in type(n).__name__ for n in graph.nodes.values())
    conv, bn = model.conv1[0], model.conv1[1]
    x = torch.randn(3, 2, 34, 34)
    node = graph.nodes["conv1_0"]
    folded = nn.Conv2d(2, 16, 3, padding=1)
    folded.weight.data = torch.from_numpy(node.weight)
    folded.bias.data = torch.from_numpy(node.bias)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), bn(conv(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("soft", [False, True])
def test_lif_mlp_round_trip_identical_spikes(tmp_path, soft):
    model = _lif_mlp(soft=soft)
    nfn.save(model, tmp_path / "mlp.nir", input_shape=(20,))
    imported = nfn.load(tmp_path / "mlp.nir")
    x = torch.rand(30, 5, 20) * 1.5
    with torch.no_grad():
        ref, got = model(x), imported(x)
    assert 0 < ref.sum() < ref.numel()
    torch.testing.assert_close(got, ref, rtol=0, atol=0)


def test_recurrent_cuba_round_trip_identical_spikes(tmp_path):
    graph = _recurrent_cuba_graph()
    first = nfn.from_nir(graph)
    assert first.back_edges == [("w_rec", "lif")]
    # only the cycle is stepped through time; the input and readout layers run on whole sequences
    assert first.plan == [["input"], ["w_in"], ["lif", "w_rec"], ["readout"], ["output"]]
    nfn.save(first, tmp_path / "rec.nir")
    second = nfn.load(tmp_path / "rec.nir")
    x = (torch.rand(50, 3, 6) < 0.3).float()
    with torch.no_grad():
        a, b = first(x), second(x)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    lif_a = first.layer("lif")
    assert lif_a is not None and first.layer("lif").kind == "cubalif"


def test_recurrence_matches_a_hand_written_loop():
    """The back edge w_rec -> lif carries the previous step's spikes (nirtorch's convention)."""
    graph = _recurrent_cuba_graph(seed=3)
    module = nfn.from_nir(graph)
    n = graph.nodes
    w_in, w_rec, w_out = (torch.from_numpy(n[k].weight) for k in ("w_in", "w_rec", "readout"))
    x = (torch.rand(40, 2, 6) < 0.4).float()
    i = torch.zeros(2, 12)
    v = torch.zeros(2, 12)
    z = torch.zeros(2, 12)
    outs = []
    dt = 1e-4
    for x_t in x:
        inp = x_t @ w_in.T + z @ w_rec.T
        i = i + (inp * 50.0 - i) / (5e-3 / dt)  # Euler: tau_syn dI/dt = -I + w_in x
        h = v + (100.0 * i - v) / (1e-2 / dt)  # tau_mem dv/dt = -v + r I
        z = (h > 1.0).float()
        v = torch.where(z > 0, torch.zeros_like(h), h)
        outs.append(z @ w_out.T)
    with torch.no_grad():
        got = module(x)
    torch.testing.assert_close(got, torch.stack(outs), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------- semantics
def _single(node, input_shape=(1,)):
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array(input_shape)),
            "n": node,
            "output": nir.Output(output_type=np.array(input_shape)),
        },
        edges=[("input", "n"), ("n", "output")],
    )


def test_spec_lif_fires_strictly_and_resets_to_v_reset():
    # r = tau / dt: v <- v - (v - v_leak) dt / tau + x; with v_leak = 0, tau / dt = 4
    node = nir.LIF(
        tau=np.array([4e-4]),
        r=np.array([4.0]),
        v_leak=np.array([0.0]),
        v_threshold=np.array([1.0]),
        v_reset=np.array([-0.5]),
    )
    module = nfn.from_nir(_single(node), dt=1e-4)
    x = torch.tensor([1.0, 0.25, 2.0, 0.0]).view(4, 1, 1)
    out, (v,) = module.layer("n")(x, return_state=True)
    # hand computation: start at v_reset = -0.5
    # t0: h = -0.5 + 0.125 + 1 = 0.625 -> no spike
    # t1: h = 0.625 - 0.15625 + 0.25 = 0.71875
    # t2: h = 0.71875 - 0.1796875 + 2 = 2.5390625 -> spike, v = -0.5
    # t3: h = -0.5 + 0.125 = -0.375
    assert out.view(-1).tolist() == [0.0, 0.0, 1.0, 0.0]
    assert float(v) == pytest.approx(-0.375)
    # exactly at threshold: NIR does not fire (neuroflow's >= would)
    at = nfn.from_nir(
        _single(nir.IF(r=np.array([1e4]), v_threshold=np.array([1.0]), v_reset=np.array([0.0])))
    )
    assert at(torch.ones(1, 1, 1)).item() == 0.0
    assert at(torch.full((1, 1, 1), 1.5)).item() == 1.0


def test_dt_is_a_parameter_and_exact_method():
    node = nir.LI(tau=np.array([1e-2]), r=np.array([1.0]), v_leak=np.array([0.0]))
    x = torch.ones(100, 1, 1)
    for dt in (1e-4, 1e-3):
        euler = nfn.from_nir(_single(node), dt=dt)(x)[-1].item()
        exact = nfn.from_nir(_single(node), dt=dt, method="exact")(x)[-1].item()
        t = 100 * dt
        assert exact == pytest.approx(1 - math.exp(-t / 1e-2), rel=1e-5)  # v(t) = 1 - e^{-t/tau}
        assert euler == pytest.approx(
            1 - (1 - dt / 1e-2) ** 100, rel=1e-5
        )  # forward Euler, by hand


def test_sinabs_mode_multi_spike_subtractive_reset():
    node = nir.IF(r=np.array([1.0]), v_threshold=np.array([1.0]), v_reset=np.array([0.0]))
    spec = nfn.from_nir(_single(node), dt=1.0)
    sinabs = nfn.from_nir(_single(node), dt=1.0, neuron_mode="sinabs")
    x = torch.tensor([2.5, 0.0, -3.0, 0.6]).view(4, 1, 1)
    # Sinabs IAF: v = 2.5 -> 2 spikes, v = 0.5; 0.5 -> 0; -2.5 clipped at -v_th = -1; -0.4 -> 0
    assert sinabs(x).view(-1).tolist() == [2.0, 0.0, 0.0, 0.0]
    assert spec(x).view(-1).tolist() == [1.0, 0.0, 0.0, 0.0]


def test_state_continues_a_sequence():
    module = nfn.from_nir(_recurrent_cuba_graph(seed=1))
    x = (torch.rand(30, 2, 6) < 0.4).float()
    with torch.no_grad():
        whole = module(x)
        first, state = module(x[:13], return_state=True)
        second = module(x[13:], state=state)
        again = module(x)
    torch.testing.assert_close(torch.cat([first, second]), whole, rtol=0, atol=0)
    torch.testing.assert_close(again, whole, rtol=0, atol=0)  # a fresh state at each call

    mlp = nfn.from_nir(nfn.to_nir(_lif_mlp(), (20,)))
    x = torch.rand(20, 3, 20)
    with torch.no_grad():
        a, s = mlp(x[:7], return_state=True)
        b = mlp(x[7:], state=s)
        torch.testing.assert_close(torch.cat([a, b]), mlp(x), rtol=0, atol=0)


def test_dag_fan_out_and_fan_in_sum():
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32)
    lif = dict(
        tau=np.full(4, 2e-4),
        r=np.ones(4),
        v_leak=np.zeros(4),
        v_threshold=np.ones(4),
        v_reset=np.zeros(4),
    )
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([3])),
            "a": nir.Linear(weight=w1),
            "b": nir.Linear(weight=w2),
            "lif": nir.LIF(**lif),
            "scale": nir.Scale(scale=np.full(4, 0.5, np.float32)),
            "out": nir.Output(output_type=np.array([4])),
            "out2": nir.Output(output_type=np.array([4])),
        },
        edges=[
            ("input", "a"),
            ("input", "b"),
            ("a", "lif"),
            ("b", "lif"),
            ("lif", "out"),
            ("a", "scale"),
            ("scale", "out2"),
        ],
    )
    module = nfn.from_nir(graph)
    x = torch.rand(10, 2, 3) * 2
    out = module(x)
    assert set(out) == {"out", "out2"}
    summed = x @ torch.from_numpy(w1).T + x @ torch.from_numpy(w2).T
    ref = LIF(tau=2.0)(
        summed
    )  # same Euler step; neuroflow fires on >=, ties have probability 0 here
    torch.testing.assert_close(out["out"], ref)
    torch.testing.assert_close(out["out2"], 0.5 * (x @ torch.from_numpy(w1).T))


def test_nodes_pooling_flatten_threshold_delay_conv1d():
    rng = np.random.default_rng(1)
    conv = nir.Conv1d(
        input_shape=8,
        weight=rng.normal(size=(3, 2, 3)).astype(np.float32),
        stride=1,
        padding=1,
        dilation=1,
        groups=1,
        bias=np.zeros(3, np.float32),
    )
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([2, 8])),
            "conv": conv,
            "th": nir.Threshold(threshold=np.full((3, 8), 0.1)),
            "delay": nir.Delay(delay=np.tile(np.array([0.0, 2e-4, 5e-4]).reshape(3, 1), (1, 8))),
            "flat": nir.Flatten(input_type={"input": np.array([3, 8])}, start_dim=0),
            "output": nir.Output(output_type=np.array([24])),
        },
        edges=[
            ("input", "conv"),
            ("conv", "th"),
            ("th", "delay"),
            ("delay", "flat"),
            ("flat", "output"),
        ],
    )
    module = nfn.from_nir(graph, dt=1e-4)
    x = torch.randn(9, 2, 2, 8)
    c = torch.nn.functional.conv1d(
        x.reshape(18, 2, 8), torch.from_numpy(conv.weight), padding=1
    ).reshape(9, 2, 3, 8)
    z = (c > 0.1).float()
    ref = torch.zeros_like(z)
    for ch, d in enumerate([0, 2, 5]):
        ref[d:, :, ch] = z[: 9 - d, :, ch]
    torch.testing.assert_close(module(x), ref.reshape(9, 2, 24))

    pools = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([1, 4, 4])),
            "sum": nir.SumPool2d(
                kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])
            ),
            "avg": nir.AvgPool2d(
                kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])
            ),
            "output": nir.Output(output_type=np.array([1, 1, 1])),
        },
        edges=[("input", "sum"), ("sum", "avg"), ("avg", "output")],
    )
    x = torch.arange(16.0).view(1, 1, 1, 4, 4)
    sums = torch.tensor(
        [[0 + 1 + 4 + 5, 2 + 3 + 6 + 7], [8 + 9 + 12 + 13, 10 + 11 + 14 + 15]], dtype=torch.float32
    )
    assert nfn.from_nir(pools)(x).item() == pytest.approx(float(sums.mean()))


def test_lif_import_runs_on_the_fused_kernel_when_it_can():
    module = nfn.from_nir(nfn.to_nir(_lif_mlp(), (20,)))
    assert module.layer("1")._fused is not None  # neuroflow's own >=: the fused kernel
    spec = nfn.from_nir(nfn.to_nir(_lif_mlp(), (20,)), honor_metadata=False)
    assert spec.layer("1").strict  # NIR's strict threshold


# ----------------------------------------------------------------------------------- export
def test_export_records_semantics_and_warns():
    with pytest.warns(nfn.NIRSemanticsWarning, match="soft"):
        graph = nfn.to_nir(_lif_mlp(soft=True), (20,), dt=2e-3)
    assert graph.metadata["neuroflow_dt"] == 2e-3
    lif = graph.nodes["1"]
    assert lif.metadata == {"neuroflow_firing": ">=", "neuroflow_reset": "subtract"}
    np.testing.assert_allclose(lif.tau, 2.0 * 2e-3)
    np.testing.assert_allclose(graph.nodes["3"].r, 3.0)  # decay_input=False -> r = tau in steps
    np.testing.assert_allclose(graph.nodes["5"].r, 1 / 2e-3)  # IF: r = 1 / dt


def test_export_refuses_multispike_and_attention_naming_the_layer():
    model = nn.Sequential(TimeDistributed(nn.Linear(4, 4)), MultiSpike())
    with pytest.raises(nfn.NIRExportError, match=r"'1'.*MultiSpike.*binary"):
        nfn.to_nir(model, (4,))
    from neuroflow.layers.spike_attention import SpikeDrivenSelfAttention

    attention = nn.Sequential(SpikeDrivenSelfAttention(16, num_heads=2, neuron=LIF))
    with pytest.raises(nfn.NIRExportError, match=r"'0'.*products"):
        nfn.to_nir(attention, (16, 4, 4))
    with pytest.raises(nfn.NIRExportError, match="max pooling"):
        nfn.to_nir(nn.Sequential(nn.MaxPool2d(2)), (1, 4, 4))


def test_exported_graph_survives_nir_write_and_read(tmp_path):
    graph = nfn.to_nir(_scnn_with_bn_stats(), (2, 34, 34))
    nir.write(tmp_path / "g.nir", graph)
    back = nir.read(tmp_path / "g.nir")  # the reference reader, type-checked
    assert sorted(back.nodes) == sorted(graph.nodes)  # HDF5 lists groups by name
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nfn.from_nir(back)


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("kind", ["lif", "lif_unscaled", "if"])
def test_fused_path_equals_the_torch_step(kind, strict):
    """Where a layer runs on neuroflow's fused kernel, its spikes and final potential equal the
    pure-torch step of the same equations (the ground truth)."""
    from neuroflow.nir.neurons import NIRNeuron

    shape = (5, 6)
    if kind == "if":
        params = {
            "r": np.full(shape, 1e4),
            "v_threshold": np.full(shape, 0.9),
            "v_reset": np.zeros(shape),
        }
    else:
        tau = 3e-4
        params = {
            "tau": np.full(shape, tau),
            "r": np.full(shape, 3.0 if kind == "lif_unscaled" else 1.0),
            "v_leak": np.full(shape, 0.1),
            "v_threshold": np.full(shape, 0.9),
            "v_reset": np.full(shape, 0.1),
        }
    neuron = NIRNeuron(kind.split("_")[0], params, shape, dt=1e-4, strict=strict)
    if neuron._fused is None:
        pytest.skip("this neuroflow's fused kernel has no strict threshold")
    x = torch.rand(25, 4, *shape) * 1.5
    x[0] = 0.9  # IF from rest: h = 0.9 lands exactly on the threshold (fires only with >=)
    fused, (v_fused,) = neuron(x, return_state=True)
    loop, (v_loop,) = neuron._loop(x, neuron.initial_state(x))
    torch.testing.assert_close(fused, loop, rtol=0, atol=0)
    torch.testing.assert_close(v_fused, v_loop, rtol=0, atol=0)


class _Residual(nn.Module):
    """conv -> LIF, then a residual block whose output adds to its input before the next LIF."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(
            TimeDistributed(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4)), LIF()
        )
        self.block = nn.Sequential(TimeDistributed(nn.Conv2d(4, 4, 3, padding=1)), LIF(tau=3.0))
        self.head = nn.Sequential(TimeDistributed(nn.Flatten(), nn.Linear(4 * 6 * 6, 5)), IF())

    def forward(self, x):
        h = self.stem(x)
        return self.head(h + self.block(h))


def test_residual_model_exports_as_fan_in_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model = _Residual().eval()
    for p in model.parameters():
        if p.dim() > 1:
            p.data *= 3
    graph = nfn.to_nir(model, (2, 6, 6))
    into_head = sorted(a for a, b in graph.edges if b == "head_0_0")
    assert into_head == ["block_1", "stem_1"]  # the sum h + block(h) is NIR fan-in
    nfn.save(graph, tmp_path / "res.nir")
    imported = nfn.load(tmp_path / "res.nir")
    x = torch.rand(20, 3, 2, 6, 6) * 2
    with torch.no_grad():
        ref = model(x)
    assert 0 < ref.mean() < 1
    torch.testing.assert_close(imported(x), ref, rtol=0, atol=0)


def test_untraceable_model_is_refused_by_name():
    class Gated(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = TimeDistributed(nn.Linear(4, 4)), TimeDistributed(nn.Linear(4, 4))

        def forward(self, x):
            return self.a(x) * self.b(x)

    with pytest.raises(nfn.NIRExportError, match="mul.*no NIR node"):
        nfn.to_nir(Gated(), (4,))


def test_plif_exports_as_lif_with_its_learned_tau(tmp_path):
    from neuroflow.neurons import PLIF

    torch.manual_seed(0)
    model = nn.Sequential(TimeDistributed(nn.Linear(10, 16)), PLIF(tau=3.0)).eval()
    model[0][0].weight.data *= 3
    with torch.no_grad():
        model[1].w += 0.4  # as if trained: tau = 1 / sigmoid(w) no longer 3
    graph = nfn.to_nir(model, (10,), dt=1e-3)
    np.testing.assert_allclose(graph.nodes["1"].tau, model[1].tau * 1e-3, rtol=1e-6)
    x = torch.rand(30, 4, 10) * 2
    with torch.no_grad():
        ref = model(x)
        got = nfn.from_nir(graph)(x)
    assert 0 < ref.mean() < 1
    # PLIF multiplies by sigmoid(w) where the import divides by tau: equal up to float rounding,
    # so the spikes agree unless a potential lies within one rounding of the threshold
    assert (got != ref).float().mean() < 1e-3
