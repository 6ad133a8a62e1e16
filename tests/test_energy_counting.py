"""Operation counting against NeuroBench, hand counts and dense references."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from neuroflow.energy import (
    OpCounter,
    conv_synaptic_ops,
    linear_synaptic_ops,
    matmul_ops,
    register_op_counter,
    sparse_conv_synaptic_ops,
)
from neuroflow.layers import TimeDistributed
from neuroflow.neurons import LIF


def small_snn() -> nn.Sequential:
    """Conv - LIF - strided conv + pool - LIF - linear, weights biased positive so that every
    LIF layer fires (a comparison on silent layers would prove little)."""
    torch.manual_seed(0)
    net = nn.Sequential(
        TimeDistributed(nn.Conv2d(2, 6, 3, padding=1)),
        LIF(v_threshold=0.3),
        TimeDistributed(nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.AvgPool2d(2)),
        LIF(v_threshold=0.3),
        TimeDistributed(nn.Flatten(), nn.Linear(8 * 3 * 3, 10)),
    )
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.uniform_(-0.15, 0.2)
    return net.eval()


def count(net: nn.Module, x: torch.Tensor):
    with OpCounter(net) as counter, torch.no_grad():
        net(x)
    return counter.per_sample()


def neurobench_synops(net: nn.Module, x: torch.Tensor) -> dict:
    """NeuroBench 2.3 ``SynapticOperations`` per sample on the same network and input."""
    from neurobench.metrics.workload import SynapticOperations
    from neurobench.models import TorchModel

    model = TorchModel(net)
    model.register_hooks()
    try:
        with torch.no_grad():
            preds = model(x)
        # NeuroBench divides by data[0].size(0): pass a batch-sized tensor (inputs are [T, B, ...])
        return SynapticOperations()(model, preds, (torch.zeros(x.shape[1]), None))
    finally:
        model.cleanup_hooks()


@pytest.mark.parametrize("inputs", ["spikes", "real"])
def test_effective_ops_equal_neurobench(inputs):
    pytest.importorskip("neurobench")
    torch.manual_seed(1)
    shape = (4, 3, 2, 12, 12)
    x = (torch.rand(shape) < 0.3).float() if inputs == "spikes" else torch.rand(shape)
    net = small_snn()
    layers = count(net, x)
    rates = {
        name: c.spikes / c.neuron_updates for name, (kind, c) in layers.items() if kind == "neuron"
    }
    assert all(0.01 < r < 0.9 for r in rates.values()), rates  # every layer takes part
    synaptic = [c for kind, c in layers.values() if kind in ("conv", "linear")]
    ref = neurobench_synops(net, x)
    assert sum(c.macs for c in synaptic) == pytest.approx(ref["Effective_MACs"], rel=1e-9)
    assert sum(c.acs for c in synaptic) == pytest.approx(ref["Effective_ACs"], rel=1e-9)
    assert sum(c.dense_macs for c in synaptic) == pytest.approx(ref["Dense"], rel=1e-9)
    first = layers["0.0"][1]
    if inputs == "real":  # the encoding layer is the only MAC layer
        assert first.macs > 0 and first.acs == 0
    else:
        assert sum(c.macs for c in synaptic) == 0


def test_conv_counts_by_hand():
    # 1 -> 3 channels, 3x3, padding 1 on a 4x4 frame. Windows covering a position: corner 4,
    # edge 6, interior 9. Events: corner (0,0), edge (0,2), interior (1,1), a 2-spike at (2,2).
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 0, 0] = x[0, 0, 0, 2] = x[0, 0, 1, 1] = 1
    x[0, 0, 2, 2] = 2
    c = conv_synaptic_ops(
        x, out_channels=3, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), dilation=(1, 1)
    )
    assert c.acs == 3 * (4 + 6 + 9 + 2 * 9) and c.macs == 0
    # dense: 4 corners x 4 + 8 edges x 6 + 4 interior x 9 = 100 taps, times 3 outputs
    assert c.dense_macs == 300
    assert c.activity_sum == 5 and c.activity_nonzero == 4 and c.activity_elements == 16
    # 2x2 stride 2: every position in exactly one window; 2 groups of 2 -> 4 channels
    y = torch.zeros(1, 2, 4, 4)
    y[0, 0, 0, 0], y[0, 1, 3, 3] = 1, 3
    c = conv_synaptic_ops(
        y,
        out_channels=4,
        kernel_size=(2, 2),
        stride=(2, 2),
        padding=(0, 0),
        dilation=(1, 1),
        groups=2,
    )
    assert c.acs == (4 / 2) * (1 + 3) and c.dense_macs == 2 * 32


@pytest.mark.parametrize("dims", [1, 3])
def test_conv1d_conv3d_match_a_dense_unfold_count(dims):
    # reference: materialise every (output position, kernel tap) pair with F.unfold-like padding
    torch.manual_seed(dims)
    spatial = (7,) * dims
    x = (torch.rand(2, 3, *spatial) < 0.4).float()
    conv = {1: nn.Conv1d, 3: nn.Conv3d}[dims](3, 5, 3, stride=2, padding=1)
    with OpCounter(conv, time_first=False) as counter, torch.no_grad():
        conv(x)
    got = counter.layers[""][1]
    # each output element sums C_in x taps products; count the non-zero input taps explicitly
    ones = torch.ones(1, 3, *(3,) * dims)
    fn = {1: F.conv1d, 3: F.conv3d}[dims]
    taps = fn(x, ones, stride=2, padding=1)  # events read per output position (summed over C_in)
    assert got.acs == pytest.approx(5 * float(taps.sum()))
    covered = fn(torch.ones_like(x), ones, stride=2, padding=1)
    assert got.dense_macs == pytest.approx(5 * float(covered.sum()))


class SpikeAttention(nn.Module):
    """Spike-driven attention in the Meta-SpikeFormer form ``Q (K^T V)`` on binary spikes."""

    def forward(self, q, k, v):
        return q @ (k.transpose(-2, -1) @ v)


class Wrapper(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = SpikeAttention()

    def forward(self, qkv):
        return self.attn(qkv[0], qkv[1], qkv[2])


def test_attention_products_are_counted_per_module():
    torch.manual_seed(2)
    q, k, v = ((torch.rand(2, 4, 16, 8) < 0.3).float() for _ in range(3))  # [B, heads, N, d]
    qkv = torch.stack([q, k, v])
    net = Wrapper()
    with OpCounter(net, time_first=False) as counter:
        net(qkv)
    counter.add_samples(2)
    layers = counter.per_sample()
    assert list(layers) == ["attn.matmul0", "attn.matmul1"]
    ktv = k.transpose(-2, -1) @ v
    # reference: the number of (i, k, j) triples whose two factors are both non-zero
    pairs_ktv = float(((k.transpose(-2, -1) != 0).float() @ (v != 0).float()).sum())
    pairs_out = float(((q != 0).float() @ (ktv != 0).float()).sum())
    assert layers["attn.matmul0"][1].acs * 2 == pytest.approx(pairs_ktv)
    assert layers["attn.matmul1"][1].acs * 2 == pytest.approx(pairs_out)
    assert layers["attn.matmul0"][1].dense_macs * 2 == 2 * 4 * 8 * 16 * 8
    assert layers["attn.matmul1"][1].macs == 0


def test_matmul_one_spiking_operand_and_real_product():
    a = torch.tensor([[1.0, 0.0, 2.0]])  # integer spikes: 3 events
    w = torch.randn(3, 5)
    c = matmul_ops(a, w)
    assert c.acs == 3 * 5 and c.macs == 0 and c.dense_macs == 15
    c = matmul_ops(w.T, a.T)  # [5, 3] @ [3, 1]: b spikes, each event reaches 5 rows
    assert c.acs == 3 * 5
    c = matmul_ops(torch.tensor([[0.5, 0.0, -1.5]]), w)
    assert c.macs == 2 * 5 and c.acs == 0


def test_registered_module_is_counted_once_and_hides_its_products():
    class Crossbar(nn.Module):  # a layer computing its product with matmul internally
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(4, 3))

        def forward(self, x):
            return x @ self.w

    @register_op_counter(Crossbar, kind="crossbar")
    def _crossbar(module, inputs, output):
        return matmul_ops(inputs[0], module.w)

    net = nn.Sequential(Crossbar())
    x = (torch.rand(2, 5, 4) < 0.5).float()
    layers = count(net, x)
    assert list(layers) == ["0"] and layers["0"][0] == "crossbar"
    assert layers["0"][1].acs == pytest.approx(float(x.sum()) * 3 / 5)


def test_uncounted_layers_are_listed():
    net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Bilinear(3, 3, 2))
    with OpCounter(net) as counter:
        pass
    assert counter.uncounted == ["2 (Bilinear)"]


def _kernel_map(coords: dict, offsets, out_of):
    """(in_idx, out_idx) per offset: input site p feeds output out_of(p, o) when that output
    exists."""
    maps = []
    out_index = {}
    for o in offsets:
        ins, outs = [], []
        for p, i in coords.items():
            q = out_of(p, o)
            if q is not None:
                ins.append(i)
                outs.append(out_index.setdefault(q, len(out_index)))
        maps.append((torch.tensor(ins, dtype=torch.long), torch.tensor(outs, dtype=torch.long)))
    return maps, out_index


def _sparse_case(kind, seed=3, size=6, c_in=3):
    """Random active sites of a ``size^3`` grid with integer multi-spike features (0..2), and the
    dense reference: ``conv3d`` of the per-site event count with a ones kernel gives, at each output
    site, the events its window reads (each feeds ``C_out`` outputs); the same conv of the active
    mask gives the weight taps (the dense MAC count). Outputs: the active sites (submanifold 3x3x3)
    or every stride-2 cell holding one (strided 2x2x2)."""
    torch.manual_seed(seed)
    active = torch.rand(size, size, size) < 0.3
    sites = [tuple(p) for p in active.nonzero().tolist()]
    features = torch.randint(0, 3, (len(sites), c_in)).float()
    dense = torch.zeros(1, c_in, size, size, size)
    for i, p in enumerate(sites):
        dense[0, :, p[0], p[1], p[2]] = features[i]
    events = dense.abs().sum(1, keepdim=True)
    k, stride, pad = (3, 1, 1) if kind == "submanifold" else (2, 2, 0)
    kernel = torch.ones(1, 1, k, k, k)
    per_out = F.conv3d(events, kernel, stride=stride, padding=pad)[0, 0]
    taps = F.conv3d(active[None, None].float(), kernel, stride=stride, padding=pad)[0, 0]
    out_mask = active if kind == "submanifold" else taps > 0
    return sites, features, float(per_out[out_mask].sum()), float(taps[out_mask].sum())


@pytest.mark.parametrize("kind", ["submanifold", "strided"])
def test_sparse_conv_counts_equal_dense_count_at_active_sites(kind):
    c_in, c_out = 3, 5
    sites, features, events_read, taps = _sparse_case(kind, c_in=c_in)
    coords = {p: i for i, p in enumerate(sites)}
    if kind == "submanifold":
        offsets = list(itertools.product((-1, 0, 1), repeat=3))

        def out_of(p, o):
            q = tuple(a - b for a, b in zip(p, o))  # output q reads p = q + o
            return q if q in coords else None
    else:
        offsets = list(itertools.product((0, 1), repeat=3))

        def out_of(p, o):
            return tuple(a // 2 for a in p) if all(a % 2 == b for a, b in zip(p, o)) else None

    kmap, _ = _kernel_map(coords, offsets, out_of)
    got = sparse_conv_synaptic_ops(features, kmap, c_out)
    assert got.acs == pytest.approx(c_out * events_read)
    assert got.dense_macs == pytest.approx(c_in * c_out * taps)
    assert got.macs == 0


@pytest.mark.parametrize("kind", ["submanifold", "strided"])
def test_sparse_conv_modules_are_counted_from_their_kernel_maps(kind):
    """E-3DSNN's layers under the counter: the real SubMConv3d / SparseConv3d kernel maps give the
    dense reference's counts (integer spikes marked by the MultiSpike neuron in front)."""
    from neuroflow.layers import FeatureWise, SparseConv3d, SparseTensor, SubMConv3d
    from neuroflow.neurons import MultiSpike

    c_in, c_out, size = 3, 5, 6
    sites, features, events_read, taps = _sparse_case(kind, size=size, c_in=c_in)
    coords = torch.tensor([(0, *p) for p in sites])
    conv = SubMConv3d(c_in, c_out, 3) if kind == "submanifold" else SparseConv3d(c_in, c_out, 2, 2)
    net = nn.Sequential(FeatureWise(MultiSpike(D=4)), conv).eval()
    with OpCounter(net) as counter:
        net(SparseTensor(coords, features, (size, size, size), batch_size=1))
        counter.add_samples(1)
    kind_, counts = counter.per_sample()["1"]
    assert kind_ == "sparse_conv"
    assert counts.acs == pytest.approx(c_out * events_read)
    assert counts.dense_macs == pytest.approx(c_in * c_out * taps)
    assert counts.macs == 0


@pytest.mark.parametrize("values", ["binary", "counts", "real"])
def test_channels_last_input_counts_equal_nchw(values):
    """TimeDistributed runs pooling stacks in channels-last: a conv or pooling input in that layout
    takes the numba kernel through its NHWC view and must count as the same input in NCHW (the
    float64 torch path is the reference)."""
    from neuroflow.energy.ops import pool_ops

    torch.manual_seed(5)
    x = torch.rand(6, 3, 8, 8)
    x = {"binary": (x < 0.3).float(), "counts": torch.poisson(x), "real": x}[values]
    nhwc = x.contiguous(memory_format=torch.channels_last)
    assert not nhwc.is_contiguous()
    for fn in (
        lambda t: conv_synaptic_ops(t, 4, (3, 3), (1, 1), (1, 1), (1, 1)),
        lambda t: pool_ops(t, (2, 2), (2, 2), (0, 0)),
    ):
        assert fn(nhwc).as_dict() == pytest.approx(fn(x.double()).as_dict())


@pytest.mark.parametrize("values", ["binary", "counts", "signed", "real", "sparse_real"])
def test_numba_and_torch_paths_agree(values):
    # float32 contiguous CPU tensors take the one-pass numba kernel, float64 the torch path
    torch.manual_seed(4)
    x = torch.rand(6, 3, 9, 9)
    x = {
        "binary": (x < 0.3).float(),
        "counts": torch.poisson(x),
        "signed": torch.randint(-2, 3, x.shape).float(),
        "real": x,
        "sparse_real": x * (x < 0.2),
    }[values]
    for fn in (
        lambda t: conv_synaptic_ops(t, 4, (3, 3), (2, 2), (1, 1), (1, 1)),
        lambda t: linear_synaptic_ops(t.reshape(6, -1), 7),
    ):
        fast, slow = fn(x), fn(x.double())
        assert fast.as_dict() == pytest.approx(slow.as_dict())
    assert fast.activity_nonzero == float((x != 0).sum())
    assert (fast.acs > 0) == (values not in ("real", "sparse_real"))
