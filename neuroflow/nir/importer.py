"""NIR graph or file -> :class:`~neuroflow.nir.graph_module.NIRGraphModule`.

Reading is defensive: the file is opened with h5py, every node is built on its own so that an
error names it, edges are checked against the nodes, and the graph is type-checked (declared
shapes) unless ``type_check=False``, which reads files whose only fault is a declared shape with a
warning. Neuron semantics follow the NIR specification (see :mod:`neuroflow.nir.neurons`), except
where the graph's metadata, written by :func:`neuroflow.nir.to_nir`, records neuroflow's own
firing rule (``>=``) or a subtractive reset (see :mod:`neuroflow.nir.metadata`).
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import nir
import numpy as np
import torch
from torch import nn

from neuroflow.errors import InvalidArgumentError
from neuroflow.nir import metadata as meta
from neuroflow.nir.errors import NIRFormatError, NIRSemanticsWarning, NIRShapeError
from neuroflow.nir.graph_module import NIRGraphModule
from neuroflow.nir.neurons import METHODS, Delay, NIRNeuron, SinabsNeuron, Threshold

NEURON_MODES = ("spec", "sinabs")
#: the node types this importer runs
SUPPORTED = (
    "Input",
    "Output",
    "Affine",
    "Linear",
    "Scale",
    "Conv1d",
    "Conv2d",
    "SumPool2d",
    "AvgPool2d",
    "Flatten",
    "Threshold",
    "Delay",
    "I",
    "IF",
    "LI",
    "LIF",
    "CubaLI",
    "CubaLIF",
    "NIRGraph",
)
DEFAULT_DT = 1e-4


# ------------------------------------------------------------------------------------ reading
def _decode(x):
    return x.decode("utf8") if isinstance(x, bytes) else x


def _node_from_dict(name: str, data: dict, source: str):
    kind = _decode(data.get("type"))
    if kind not in SUPPORTED:
        raise NIRFormatError(
            f"node {name!r} has type {kind!r}, which neuroflow cannot run "
            f"(supported: {', '.join(SUPPORTED)})",
            path=source,
        )
    if kind == "NIRGraph":
        return _graph_from_dict(data, source, prefix=f"{name}.")
    data = {k: _decode(v) for k, v in data.items()}
    data["type"] = kind
    try:
        return nir.dict2NIRNode(data)
    except Exception as exc:  # a missing or malformed field: name the node
        raise NIRFormatError(f"node {name!r} ({kind}) is malformed: {exc}", path=source) from None


def _graph_from_dict(data: dict, source: str, prefix: str = ""):
    if _decode(data.get("type")) != "NIRGraph" or "nodes" not in data or "edges" not in data:
        raise NIRFormatError(
            "no NIRGraph with 'nodes' and 'edges' under the root 'node' group: not a NIR file",
            path=source,
        )
    nodes = {str(k): _node_from_dict(prefix + str(k), v, source) for k, v in data["nodes"].items()}
    raw = np.asarray(data["edges"], dtype=object)
    edges = [] if raw.size == 0 else [(_decode(a), _decode(b)) for a, b in raw.reshape(-1, 2)]
    metadata = {k: _decode(v) for k, v in dict(data.get("metadata", {})).items()}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata, type_check=False)


def read_graph(path: str | os.PathLike) -> nir.NIRGraph:
    """Read a NIR file without type checking; every failure is a :class:`NIRFormatError` naming
    ``path`` (and the node where one is at fault)."""
    import h5py

    path = str(path)
    if not os.path.isfile(path):
        raise NIRFormatError("file not found", path=path)
    try:
        with h5py.File(path, "r") as f:
            if "node" not in f:
                raise NIRFormatError("no 'node' group at the root: not a NIR file", path=path)
            data = nir.serialization.hdf2dict(f["node"])
    except NIRFormatError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise NIRFormatError(
            f"not a readable HDF5 file (truncated or another format?): {exc}", path=path
        ) from None
    return _graph_from_dict(data, path)


# ---------------------------------------------------------------------------------- checking
def _flatten(graph, source: str, prefix: str = ""):
    """Nodes and edges with every sub-graph inlined (``outer.inner`` names); a sub-graph's
    Input / Output nodes stay as pass-through nodes."""
    nodes, edges = {}, []
    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges = _flatten(node, source, f"{prefix}{name}.")
            nodes.update(sub_nodes)
            edges += sub_edges
        else:
            nodes[prefix + name] = node
    for a, b in graph.edges:
        for end in (a, b):
            if end not in graph.nodes:
                raise NIRFormatError(
                    f"edge ({a!r}, {b!r}) names node {prefix + end!r}, which is not in the graph "
                    f"(nodes: {sorted(prefix + n for n in graph.nodes)})",
                    path=source,
                )
        src, dst = graph.nodes[a], graph.nodes[b]
        outs = (
            [f"{prefix}{a}.{k}" for k, n in src.nodes.items() if isinstance(n, nir.Output)]
            if isinstance(src, nir.NIRGraph)
            else [prefix + a]
        )
        ins = (
            [f"{prefix}{b}.{k}" for k, n in dst.nodes.items() if isinstance(n, nir.Input)]
            if isinstance(dst, nir.NIRGraph)
            else [prefix + b]
        )
        edges += [(o, i) for o in outs for i in ins]
    return nodes, edges


def _type_check(graph, source: str, strict: bool) -> bool:
    """Whether the graph's declared shapes agree (nir's own type check); raises when ``strict``."""
    try:
        nir.NIRGraph(
            nodes=copy.deepcopy(graph.nodes), edges=list(graph.edges), metadata={}, type_check=True
        )
    except Exception as exc:
        message = f"the graph's declared shapes do not agree: {' '.join(str(exc).split())}"
        if strict:
            raise NIRFormatError(
                message + " (from_nir(..., type_check=False) reads it leniently)", path=source
            ) from None
        warnings.warn(
            f"{source}: {message}; read leniently (type_check=False): the declared input "
            "shape is not enforced",
            NIRSemanticsWarning,
            stacklevel=4,
        )
        return False
    return True


# ---------------------------------------------------------------------------------- mapping
def _ints(x, n: int | None = None):
    a = np.asarray(x).astype(np.int64).reshape(-1).tolist()
    if n is not None and len(a) == 1:
        a = a * n
    return tuple(a) if n is not None else (a[0] if len(a) == 1 else tuple(a))


def _padding(p, n: int):
    return p if isinstance(p, str) else _ints(p, n)


class Scale(nn.Module):
    """NIR ``Scale``: ``y = x * scale`` elementwise."""

    def __init__(self, scale):
        super().__init__()
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale, dtype=np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def _tensor(x) -> torch.Tensor:
    return torch.as_tensor(np.array(x, dtype=np.float32))


def _node_module(
    name: str, node, dt: float, mode: str, method: str, source: str, honor_metadata: bool
):
    """The module for one NIR node (``None`` for Input / Output)."""
    if isinstance(node, (nir.Input, nir.Output)):
        return None
    if isinstance(node, (nir.Affine, nir.Linear)):
        w = np.asarray(node.weight)
        if w.ndim != 2:
            raise NIRFormatError(
                f"node {name!r}: weight of shape {w.shape} (neuroflow runs 2-D weights)",
                path=source,
            )
        affine = isinstance(node, nir.Affine) and node.bias is not None
        m = nn.Linear(w.shape[1], w.shape[0], bias=affine)
        m.weight.data = _tensor(w)
        if affine:
            m.bias.data = _tensor(np.broadcast_to(np.asarray(node.bias), (w.shape[0],)))
        return m
    if isinstance(node, nir.Scale):
        return Scale(node.scale)
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        w = np.asarray(node.weight)
        dims = 1 if isinstance(node, nir.Conv1d) else 2
        if w.ndim != dims + 2:
            raise NIRFormatError(
                f"node {name!r}: Conv{dims}d weight of shape {w.shape}", path=source
            )
        cls = nn.Conv1d if dims == 1 else nn.Conv2d
        groups = int(np.asarray(node.groups).reshape(-1)[0])
        m = cls(
            w.shape[1] * groups,
            w.shape[0],
            tuple(w.shape[2:]),
            stride=_ints(node.stride, dims),
            padding=_padding(node.padding, dims),
            dilation=_ints(node.dilation, dims),
            groups=groups,
            bias=True,
        )
        m.weight.data = _tensor(w)
        m.bias.data = _tensor(np.broadcast_to(np.asarray(node.bias), (w.shape[0],)))
        return m
    if isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
        total = isinstance(node, nir.SumPool2d)
        return nn.AvgPool2d(
            _ints(node.kernel_size, 2),
            _ints(node.stride, 2),
            _ints(node.padding, 2),
            divisor_override=1 if total else None,
        )
    if isinstance(node, nir.Flatten):
        start, end = int(node.start_dim), int(node.end_dim)
        return nn.Flatten(start + 1 if start >= 0 else start, end + 1 if end >= 0 else end)
    if isinstance(node, nir.Threshold):
        return Threshold(node.threshold, np.shape(node.threshold))
    if isinstance(node, nir.Delay):
        return Delay(node.delay, np.shape(node.delay), dt)
    kind = {
        nir.LIF: "lif",
        nir.LI: "li",
        nir.IF: "if",
        nir.I: "i",
        nir.CubaLIF: "cubalif",
        nir.CubaLI: "cubali",
    }.get(type(node))
    if kind is None:
        raise NIRFormatError(
            f"node {name!r} has type {type(node).__name__}, which neuroflow cannot run", path=source
        )
    params = {
        k: getattr(node, k)
        for k in ("tau", "tau_mem", "tau_syn", "r", "v_leak", "v_threshold", "v_reset", "w_in")
        if getattr(node, k, None) is not None
    }
    shapes = {np.shape(v) for k, v in params.items()}
    if len(shapes) > 1:
        raise NIRFormatError(
            f"node {name!r} ({type(node).__name__}): parameters of different shapes "
            f"{sorted(shapes)}",
            path=source,
        )
    shape = shapes.pop() if shapes else ()
    _check_positive(name, type(node).__name__, params, source)
    if mode == "sinabs" and kind in ("if", "lif", "li"):
        return SinabsNeuron(kind, params, shape)
    node_meta = (getattr(node, "metadata", None) or {}) if honor_metadata else {}
    strict = meta.node_firing(node_meta) != ">="
    reset = meta.node_reset(node_meta)
    return NIRNeuron(kind, params, shape, dt, strict=strict, reset=reset, method=method)


def _check_positive(name: str, kind: str, params: dict, source: str) -> None:
    for key in ("tau", "tau_mem", "tau_syn"):
        if key in params:
            v = np.asarray(params[key], dtype=np.float64)
            if not np.all(np.isfinite(v)) or np.any(v <= 0):
                raise NIRFormatError(
                    f"node {name!r} ({kind}): {key} must be finite and > 0 seconds, got "
                    f"min {float(np.min(v)):g}",
                    path=source,
                )


# ------------------------------------------------------------------------------------ public
def from_nir(
    graph_or_path,
    dt: float | None = None,
    neuron_mode: str = "spec",
    type_check: bool = True,
    method: str = "euler",
    honor_metadata: bool = True,
) -> NIRGraphModule:
    """Build a runnable module from a NIR graph (``nir.NIRGraph``) or file (path).

    Args:
        graph_or_path: a ``nir.NIRGraph`` or the path of a ``.nir`` (HDF5) file.
        dt: time step in seconds. ``None``: the ``neuroflow_dt`` the graph's metadata records
            (graphs written by :func:`to_nir`), else ``1e-4`` (snnTorch's and SpikingJelly's
            default; Norse assumes ``1e-3``).
        neuron_mode: ``"spec"`` (default): neurons as the NIR specification defines them (strict
            threshold, reset to ``v_reset``); ``"sinabs"``: IF / LIF / LI as Sinabs and Speck run
            them (several spikes per step, subtractive reset, ``tau`` in steps).
        type_check: check the declared shapes; ``False`` reads a graph whose declared shapes are
            wrong with a :class:`NIRSemanticsWarning`.
        method: ``"euler"`` (forward Euler, as the Python importers) or ``"exact"``.
        honor_metadata: read neuroflow's firing rule and reset from the metadata that
            :func:`to_nir` writes (so that a round trip gives the same spikes); ``False`` follows
            the specification everywhere.

    Returns:
        A :class:`NIRGraphModule`: ``[T, B, *input_shape]`` -> ``[T, B, *output_shape]``, fresh
        state each call, ``state=`` / ``return_state=True``.

    Raises:
        NIRFormatError: unreadable file, unknown node type, edge to a missing node, shapes that do
            not agree (the message names the file and the node).
    """
    if neuron_mode not in NEURON_MODES:
        raise InvalidArgumentError(
            f"neuron_mode must be one of {NEURON_MODES}, got {neuron_mode!r}"
        )
    if method not in METHODS:
        raise InvalidArgumentError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(graph_or_path, (str, os.PathLike)):
        source = str(graph_or_path)
        graph = read_graph(source)
    elif isinstance(graph_or_path, nir.NIRGraph):
        source, graph = "graph", graph_or_path
        for name, node in graph.nodes.items():
            if type(node).__name__ not in SUPPORTED:
                raise NIRFormatError(
                    f"node {name!r} has type {type(node).__name__}, which neuroflow cannot run "
                    f"(supported: {', '.join(SUPPORTED)})",
                    path=source,
                )
    else:
        raise InvalidArgumentError(
            f"from_nir takes a nir.NIRGraph or a file path, got {type(graph_or_path).__name__}"
        )
    nodes, edges = _flatten(graph, source)
    shapes_agree = _type_check(graph, source, strict=type_check)
    if dt is None:
        dt = (meta.graph_dt(graph.metadata) if honor_metadata else None) or DEFAULT_DT
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not np.isfinite(dt) or dt <= 0:
        raise InvalidArgumentError(f"dt must be a positive number of seconds, got dt={dt!r}")
    layers = {}
    for name, node in nodes.items():
        layers[name] = _node_module(
            name, node, float(dt), neuron_mode, method, source, honor_metadata
        )
    layers = {k: v for k, v in layers.items() if v is not None}
    top_inputs = [n for n, node in graph.nodes.items() if isinstance(node, nir.Input)]
    top_outputs = [n for n, node in graph.nodes.items() if isinstance(node, nir.Output)]
    if not top_outputs:
        raise NIRFormatError("the graph has no Output node", path=source)
    if not top_inputs:
        raise NIRFormatError("the graph has no Input node", path=source)
    shapes = {n: _input_shape(graph.nodes[n]) if shapes_agree else None for n in top_inputs}
    flat_graph = nir.NIRGraph(
        nodes=nodes, edges=edges, metadata=dict(graph.metadata), type_check=False
    )
    module = NIRGraphModule(flat_graph, layers, top_inputs, top_outputs, shapes, float(dt), source)
    module.original_graph = graph
    _probe(module, shapes, source, strict=type_check)
    return module


def _input_shape(node) -> tuple[int, ...] | None:
    shape = node.input_type.get("input") if node.input_type else None
    return None if shape is None else tuple(int(s) for s in np.asarray(shape).reshape(-1))


def _probe(module: NIRGraphModule, shapes: dict, source: str, strict: bool) -> None:
    """Run one zero step to report a node whose weights do not fit its input at import time."""
    if any(s is None for s in shapes.values()):
        return
    x = {n: torch.zeros(1, 1, *s) for n, s in shapes.items()}
    try:
        with torch.no_grad():
            module(x if len(x) > 1 else next(iter(x.values())))
    except NIRShapeError as exc:
        if strict:
            raise NIRFormatError(str(exc).removeprefix(f"{source}: "), path=source) from None
        warnings.warn(f"{exc}", NIRSemanticsWarning, stacklevel=3)


def load(
    path: str | os.PathLike,
    dt: float | None = None,
    neuron_mode: str = "spec",
    type_check: bool = True,
    method: str = "euler",
    honor_metadata: bool = True,
) -> NIRGraphModule:
    """Read a ``.nir`` file into a runnable module: :func:`from_nir` on a path."""
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidArgumentError(f"load takes a file path, got {type(path).__name__}")
    return from_nir(
        Path(path),
        dt=dt,
        neuron_mode=neuron_mode,
        type_check=type_check,
        method=method,
        honor_metadata=honor_metadata,
    )
