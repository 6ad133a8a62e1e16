"""Real NIR files written by others, and bad files: each failure names the file and the node."""

from __future__ import annotations

from pathlib import Path

import h5py
import nir
import numpy as np
import pytest
import torch

import neuroflow.nir as nfn
from neuroflow.errors import NeuroflowError

DATA = Path(__file__).parent / "data" / "nir"
pytestmark = pytest.mark.filterwarnings("ignore::neuroflow.nir.NIRSemanticsWarning")


# ------------------------------------------------------------------ the NIR paper's LIF neuron
@pytest.mark.parametrize("method", ["euler", "exact"])
def test_nir_paper_single_lif_spike_times(method):
    """The published traces (tests/data/nir/README.md) spike at steps 460, 510, 710, 760 of 0.1 ms
    in the exact solution, Norse, snnTorch, Nengo and SpiNNaker2."""
    trace = np.loadtxt(DATA / "lif_norse.csv", delimiter=",")
    x = torch.from_numpy(trace[:, 0]).float().view(-1, 1, 1)
    module = nfn.load(DATA / "lif_norse.nir", dt=1e-4, method=method)
    with torch.no_grad():
        spikes = module(x).view(-1).numpy()
    assert np.nonzero(spikes)[0].tolist() == [460, 510, 710, 760]
    np.testing.assert_array_equal(spikes, trace[:, 2])


def test_nir_paper_single_lif_membrane_trace_matches_norse():
    trace = np.loadtxt(DATA / "lif_norse.csv", delimiter=",")
    x = torch.from_numpy(trace[:, 0]).float().view(-1, 1, 1)
    lif = nfn.load(DATA / "lif_norse.nir", dt=1e-4).layer("1")
    state, v = None, []
    with torch.no_grad():
        for t in range(x.shape[0]):
            _, state = lif(x[t : t + 1], state=state, return_state=True)
            v.append(float(state[0]))
    np.testing.assert_allclose(v, trace[:, 1], atol=1e-6)


# -------------------------------------------------------------------------------- bad input
def _small_graph():
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([3])),
            "fc": nir.Affine(weight=np.ones((4, 3), np.float32), bias=np.zeros(4, np.float32)),
            "lif": nir.LIF(
                tau=np.full(4, 1e-3), r=np.ones(4), v_leak=np.zeros(4), v_threshold=np.ones(4)
            ),
            "output": nir.Output(output_type=np.array([4])),
        },
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")],
    )


def test_truncated_and_non_hdf5_files(tmp_path):
    good = tmp_path / "good.nir"
    nir.write(good, _small_graph())
    truncated = tmp_path / "truncated.nir"
    truncated.write_bytes(good.read_bytes()[:700])
    text = tmp_path / "model.nir"
    text.write_text("this is not HDF5\n")
    for path in (truncated, text):
        with pytest.raises(nfn.NIRFormatError, match=path.name) as info:
            nfn.load(path)
        assert isinstance(info.value, NeuroflowError)
    with pytest.raises(nfn.NIRFormatError, match="not found"):
        nfn.load(tmp_path / "missing.nir")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("x", data=np.arange(3))
    with pytest.raises(nfn.NIRFormatError, match="other.h5.*not a NIR file"):
        nfn.load(tmp_path / "other.h5")


def _rewrite(path, edit):
    with h5py.File(path, "r+") as f:
        edit(f["node"])


def test_edge_naming_a_missing_node(tmp_path):
    path = tmp_path / "edge.nir"
    nir.write(path, _small_graph())

    def edit(node):
        del node["edges"]
        node.create_dataset(
            "edges", data=np.array([[b"input", b"fc"], [b"fc", b"lif"], [b"lif", b"ghost"]])
        )

    _rewrite(path, edit)
    with pytest.raises(nfn.NIRFormatError, match=r"edge.nir.*'ghost'"):
        nfn.load(path)


def test_unknown_node_type(tmp_path):
    path = tmp_path / "unknown.nir"
    nir.write(path, _small_graph())

    def edit(node):
        del node["nodes"]["lif"]["type"]
        node["nodes"]["lif"].create_dataset("type", data="Izhikevich", dtype=h5py.string_dtype())

    _rewrite(path, edit)
    with pytest.raises(nfn.NIRFormatError, match=r"unknown.nir.*'lif'.*'Izhikevich'"):
        nfn.load(path)


def test_malformed_node_is_named(tmp_path):
    path = tmp_path / "malformed.nir"
    nir.write(path, _small_graph())
    _rewrite(path, lambda node: node["nodes"]["lif"].__delitem__("tau"))
    with pytest.raises(nfn.NIRFormatError, match=r"malformed.nir.*'lif' \(LIF\)"):
        nfn.load(path)


def test_mismatched_shapes_name_the_nodes_and_lenient_mode_warns(tmp_path):
    path = tmp_path / "shapes.nir"
    graph = _small_graph()
    graph.nodes["input"] = nir.Input(input_type=np.array([5]))  # declared 5, the Affine takes 3
    nir.write(path, graph)
    with pytest.raises(nfn.NIRFormatError, match=r"shapes.nir.*input.*fc.*type_check=False"):
        nfn.load(path)
    with pytest.warns(nfn.NIRSemanticsWarning, match="leniently"):
        module = nfn.load(path, type_check=False)
    out = module(torch.ones(2, 1, 3))  # runs on the shape its weights take
    assert out.shape == (2, 1, 4)
    with pytest.raises(nfn.NIRShapeError, match=r"node 'fc'"):
        module(torch.ones(2, 1, 5))


def test_weights_that_do_not_fit_are_reported_at_import(tmp_path):
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([3])),
            "a": nir.Affine(weight=np.ones((4, 3), np.float32), bias=np.zeros(4, np.float32)),
            "b": nir.Affine(weight=np.ones((2, 5), np.float32), bias=np.zeros(2, np.float32)),
            "output": nir.Output(output_type=np.array([2])),
        },
        edges=[("input", "a"), ("a", "b"), ("b", "output")],
        type_check=False,
    )
    with pytest.raises(nfn.NIRFormatError, match=r"a\.output.*b\.input"):
        nfn.from_nir(graph)
    with pytest.warns(nfn.NIRSemanticsWarning):
        lenient = nfn.from_nir(graph, type_check=False)
    with pytest.raises(nfn.NIRShapeError, match=r"node 'b' \(Linear\)"):
        lenient(torch.ones(2, 1, 3))


def test_bad_arguments():
    with pytest.raises(NeuroflowError, match="neuron_mode"):
        nfn.from_nir(_small_graph(), neuron_mode="loihi")
    with pytest.raises(NeuroflowError, match="dt"):
        nfn.from_nir(_small_graph(), dt=0.0)
    with pytest.raises(NeuroflowError, match="nir.NIRGraph or a file path"):
        nfn.from_nir(42)
    module = nfn.from_nir(_small_graph())
    with pytest.raises(nfn.NIRShapeError, match=r"\[T, B, 3\]"):
        module(torch.ones(2, 1, 4))
