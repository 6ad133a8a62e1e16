"""neuroflow model -> ``nir.NIRGraph`` (and ``.nir`` files).

A model exports when it is a chain of layers, ``nn.Sequential`` containers (``TimeDistributed``
and the ``scnn`` model are ones), or a module whose ``forward`` torch.fx can trace into such
chains and sums of their outputs (residual connections become NIR fan-in), made of Conv1d /
Conv2d, Linear, AvgPool2d, Flatten, BatchNorm (folded into the convolution or linear layer before
it), Dropout / Identity (dropped) and neuroflow's LIF / IF / PLIF neurons. An imported graph
(:class:`NIRGraphModule`) exports its own graph with its current weights. Layers NIR cannot
express are refused with :class:`NIRExportError` naming them: integer multi-spike neurons
(several spikes per step), spike-driven attention (products of two spike tensors), max pooling.

Neurons map onto NIR's continuous-time nodes so that forward Euler with the same ``dt`` gives
neuroflow's update back (SpikingJelly's ``export_to_nir`` writes the same numbers):

- ``LIF(tau, decay_input=True)``  -> ``LIF(tau = tau dt, r = 1, v_leak = v_reset)``
- ``LIF(tau, decay_input=False)`` -> ``LIF(tau = tau dt, r = tau, v_leak = v_reset)``
- ``IF`` -> ``IF(r = 1 / dt)``; PLIF as LIF with its current ``tau``.

NIR cannot hold the firing rule (neuroflow: ``>=``), a soft reset (written as ``v_reset = 0``) or
``dt``: they go into the metadata (:mod:`neuroflow.nir.metadata`) and a
:class:`NIRSemanticsWarning` says so.
"""

from __future__ import annotations

import copy
import os
import tempfile
import warnings

import nir
import numpy as np
import torch
from torch import nn

from neuroflow.errors import InvalidArgumentError
from neuroflow.neurons import IF, LIF, PLIF, MultiSpike, SpikingNeuron
from neuroflow.nir import metadata as meta
from neuroflow.nir.errors import NIRExportError, NIRSemanticsWarning
from neuroflow.nir.graph_module import NIRGraphModule

_DROPPED = (nn.Identity, nn.Dropout)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("neuroflow")
    except Exception:  # a source tree that is not installed
        return "unknown"


def _refusal(module: nn.Module) -> str | None:
    """Why NIR cannot express ``module``, or ``None``."""
    if isinstance(module, MultiSpike):
        return (
            "an integer multi-spike neuron emits 0..D spikes per step; NIR's neurons emit binary "
            "spikes (retrain with LIF, or run it as D binary steps)"
        )
    if "Attention" in type(module).__name__:
        return (
            "spike-driven attention multiplies two spike tensors (Q K^T V); NIR edges carry "
            "sums of weighted signals, not products"
        )
    if isinstance(module, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)):
        return "NIR has no max pooling (use AvgPool2d, which NIR writes as AvgPool2d)"
    return None


def _leaves(module: nn.Module, prefix: str):
    """``(qualified name, layer)`` of a chain, in order; raises for anything that is not a chain."""
    if isinstance(module, nn.Sequential):
        for name, child in module.named_children():
            yield from _leaves(child, f"{prefix}.{name}" if prefix else name)
        return
    if isinstance(module, SpikingNeuron) or not any(True for _ in module.children()):
        yield prefix or type(module).__name__.lower(), module
        return
    raise NIRExportError(
        f"layer {prefix or '<model>'!r} ({type(module).__name__}) is not a chain of layers: "
        "neuroflow exports nn.Sequential chains (TimeDistributed included) of Conv, Linear, "
        "AvgPool2d, Flatten, BatchNorm and LIF / IF / PLIF neurons"
    )


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().float().numpy().copy()


def _fold_bn(node, bn: nn.modules.batchnorm._BatchNorm, name: str):
    """Fold an eval-mode BatchNorm into the convolution / affine ``node`` before it."""
    if not bn.track_running_stats or bn.running_mean is None:
        raise NIRExportError(
            f"layer {name!r} (BatchNorm without running statistics) cannot be folded"
        )
    var = bn.running_var.detach().double()
    scale = 1.0 / torch.sqrt(var + bn.eps)
    if bn.affine:
        scale = scale * bn.weight.detach().double()
    shift = -bn.running_mean.detach().double() * scale
    if bn.affine:
        shift = shift + bn.bias.detach().double()
    scale_np, shift_np = scale.numpy(), shift.numpy()
    w = np.asarray(node.weight, dtype=np.float64)
    w = w * scale_np.reshape(-1, *([1] * (w.ndim - 1)))
    b = np.asarray(node.bias, dtype=np.float64) if getattr(node, "bias", None) is not None else 0.0
    b = b * scale_np + shift_np
    node.weight = w.astype(np.float32)
    node.bias = np.asarray(b, dtype=np.float32)
    return node


def _neuron_node(module: SpikingNeuron, name: str, shape: tuple[int, ...], dt: float):
    soft = module.v_reset is None
    v_reset = 0.0 if soft else module.v_reset
    full = lambda v: np.full(shape, v, dtype=np.float64)  # noqa: E731
    md = {meta.FIRING: ">=", meta.RESET: "subtract" if soft else "hard"}
    if isinstance(module, IF):
        return nir.IF(
            r=full(1.0 / dt),
            v_threshold=full(module.v_threshold),
            v_reset=full(v_reset),
            metadata=md,
        )
    if isinstance(module, (LIF, PLIF)):
        tau = module.tau
        return nir.LIF(
            tau=full(tau * dt),
            r=full(1.0 if module.decay_input else tau),
            v_leak=full(v_reset),
            v_threshold=full(module.v_threshold),
            v_reset=full(v_reset),
            metadata=md,
        )
    raise NIRExportError(f"layer {name!r} ({type(module).__name__}): no NIR node for this neuron")


def _graph_module_export(model: NIRGraphModule):
    """The imported graph, with the module's current weights written back."""
    graph = copy.deepcopy(getattr(model, "original_graph", model.graph))
    flat = model.graph.nodes

    def update(g, prefix):
        for name, node in g.nodes.items():
            if isinstance(node, nir.NIRGraph):
                update(node, f"{prefix}{name}.")
                continue
            layer = model.layer(prefix + name) if (prefix + name) in flat else None
            if isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                node.weight = _np(layer.weight)
                if getattr(node, "bias", None) is not None and layer.bias is not None:
                    node.bias = _np(layer.bias)

    update(graph, "")
    return graph


def to_nir(
    model: nn.Module, input_shape: tuple[int, ...], dt: float = 1e-4, warn: bool = True
) -> nir.NIRGraph:
    """Export a neuroflow model as a NIR graph.

    Args:
        model: a chain of layers (see the module docstring) or an imported :class:`NIRGraphModule`.
        input_shape: one frame without time and batch, e.g. ``(2, 34, 34)``.
        dt: the time step in seconds that NIR's time constants are written for
            (``tau_NIR = tau_steps * dt``); importers must be given the same ``dt``.
        warn: issue a :class:`NIRSemanticsWarning` for what NIR cannot hold (recorded in metadata).

    Returns:
        A type-checked ``nir.NIRGraph`` ``input -> ... -> output`` whose node names are the
        layers' qualified names with ``.`` replaced by ``_``.

    Raises:
        NIRExportError: a layer NIR cannot express (named, with the reason).
    """
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not np.isfinite(dt) or dt <= 0:
        raise InvalidArgumentError(f"dt must be a positive number of seconds, got dt={dt!r}")
    if isinstance(model, NIRGraphModule):
        return _graph_module_export(model)
    if not isinstance(model, nn.Module):
        raise InvalidArgumentError(f"to_nir takes an nn.Module, got {type(model).__name__}")
    try:
        shape = tuple(int(s) for s in input_shape)
    except TypeError:
        raise InvalidArgumentError(
            f"input_shape must be a tuple of ints, got {input_shape!r}"
        ) from None
    for name, sub in model.named_modules():
        why = _refusal(sub)
        if why is not None:
            raise NIRExportError(
                f"layer {name or '<model>'!r} ({type(sub).__name__}) cannot be exported to NIR: "
                f"{why}"
            )

    nodes: dict = {"input": nir.Input(input_type=np.array(shape))}
    edges: list[tuple[str, str]] = []
    soft_layers: list[str] = []
    with torch.no_grad():
        if isinstance(model, nn.Sequential):
            sources, shape = _chain(
                list(_leaves(model, "")), ["input"], shape, dt, nodes, edges, soft_layers
            )
        else:
            sources, shape = _traced(model, shape, dt, nodes, edges, soft_layers)
    nodes["output"] = nir.Output(output_type=np.array(shape))
    edges += [(src, "output") for src in sources]
    md = {
        meta.VERSION: _version(),
        meta.DT: float(dt),
        meta.NOTE: (
            "time constants are neuroflow's time steps times neuroflow_dt; neuroflow fires on "
            "v >= v_threshold (NIR: >); layers with neuroflow_reset='subtract' reset by "
            "subtracting v_threshold (written as v_reset=0)"
        ),
    }
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=md, type_check=True)
    if warn:
        extra = (
            f"; soft (subtractive) reset in {soft_layers}, written as v_reset=0"
            if soft_layers
            else ""
        )
        warnings.warn(
            f"NIR graph written for dt={dt:g} s (NIR has no time step: give importers "
            f"dt={dt:g}); neuroflow fires on v >= v_threshold where NIR fires on v > v_threshold"
            f"{extra}; recorded in the graph's metadata, which only neuroflow reads",
            NIRSemanticsWarning,
            stacklevel=2,
        )
    return graph


def _chain(
    leaves,
    sources: list[str],
    shape: tuple[int, ...],
    dt: float,
    nodes: dict,
    edges: list,
    soft_layers: list[str],
):
    """Append the NIR nodes of a chain of ``(qualified name, layer)`` fed by ``sources`` (whose
    outputs sum into the chain's first node); returns ``(last node names, output shape)``."""
    last: str | None = None
    for qualified, layer in leaves:
        name = qualified.replace(".", "_")
        if isinstance(layer, _DROPPED):
            continue
        if isinstance(layer, SpikingNeuron):
            node = _neuron_node(layer, qualified, shape, dt)
            if layer.v_reset is None:
                soft_layers.append(qualified)
        elif isinstance(layer, nn.modules.batchnorm._BatchNorm):
            prev = nodes.get(last) if last is not None else None
            if not isinstance(prev, (nir.Conv1d, nir.Conv2d, nir.Affine)):
                raise NIRExportError(
                    f"layer {qualified!r} (BatchNorm) must follow a convolution or linear "
                    f"layer to be folded on export; it follows {type(prev).__name__}"
                )
            _fold_bn(prev, layer, qualified)
            continue
        elif isinstance(layer, (nn.Conv1d, nn.Conv2d)):
            node = _conv_node(layer, qualified, shape)
        elif isinstance(layer, nn.Linear):
            if len(shape) != 1:
                raise NIRExportError(
                    f"layer {qualified!r} (Linear) gets input of shape {shape}; NIR's "
                    "Affine takes vectors (add a Flatten before it)"
                )
            bias = (
                _np(layer.bias)
                if layer.bias is not None
                else np.zeros(layer.out_features, np.float32)
            )
            node = nir.Affine(weight=_np(layer.weight), bias=bias)
        elif isinstance(layer, nn.AvgPool2d):
            node = _avgpool_node(layer, qualified)
        elif isinstance(layer, nn.Flatten):
            if layer.start_dim == 0:
                raise NIRExportError(f"layer {qualified!r} (Flatten) flattens the batch dimension")
            start = layer.start_dim - 1 if layer.start_dim > 0 else layer.start_dim
            end = layer.end_dim - 1 if layer.end_dim > 0 else layer.end_dim
            node = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=start, end_dim=end)
        else:
            raise NIRExportError(f"layer {qualified!r} ({type(layer).__name__}) has no NIR node")
        if not isinstance(layer, SpikingNeuron):
            shape = tuple(layer(torch.zeros(1, *shape)).shape[1:])
        if name in nodes:
            raise NIRExportError(
                f"layer {qualified!r} is used twice; NIR nodes are layers, not calls"
            )
        nodes[name] = node
        edges += [(src, name) for src in ([last] if last is not None else sources)]
        last = name
    return ([last] if last is not None else list(sources)), shape


def _is_leaf(module: nn.Module) -> bool:
    return isinstance(module, (nn.Sequential, SpikingNeuron)) or not any(
        True for _ in module.children()
    )


def _traced(
    model: nn.Module,
    shape: tuple[int, ...],
    dt: float,
    nodes: dict,
    edges: list,
    soft_layers: list[str],
):
    """A model with branches: trace its forward (torch.fx, layers and Sequential chains as
    leaves); ``a + b`` becomes fan-in (both feed the consumer, which NIR sums)."""
    import operator

    from torch import fx

    class Tracer(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return _is_leaf(m)

    try:
        graph = Tracer().trace(model)
    except Exception as exc:
        raise NIRExportError(
            f"model {type(model).__name__} is not an nn.Sequential chain and its forward cannot be "
            f"traced ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
        ) from None
    sources: dict = {}
    shapes: dict = {}
    result: list[str] = []
    for node in graph.nodes:
        if node.op == "placeholder":
            if sources:
                raise NIRExportError(
                    f"model {type(model).__name__}: more than one input ({node.name!r})"
                )
            sources[node], shapes[node] = ["input"], shape
        elif node.op == "call_module":
            module = model.get_submodule(node.target)
            args = [a for a in node.args if isinstance(a, fx.Node)]
            if len(args) != 1 or len(node.args) != 1 or node.kwargs:
                raise NIRExportError(
                    f"layer {node.target!r} is called with {len(node.args)} inputs"
                )
            leaves = list(_leaves(module, node.target))
            sources[node], shapes[node] = _chain(
                leaves, sources[args[0]], shapes[args[0]], dt, nodes, edges, soft_layers
            )
        elif (
            node.op == "call_function"
            and node.target in (operator.add, torch.add)
            and not node.kwargs
        ):
            a, b = node.args
            if not (isinstance(a, fx.Node) and isinstance(b, fx.Node)) or shapes[a] != shapes[b]:
                raise NIRExportError(f"{node.name!r}: NIR sums signals of one shape, not {a} + {b}")
            sources[node], shapes[node] = sources[a] + sources[b], shapes[a]
        elif node.op == "output":
            out = node.args[0]
            if not isinstance(out, fx.Node):
                raise NIRExportError(f"model {type(model).__name__}: the output must be one tensor")
            result, shape = sources[out], shapes[out]
        else:
            raise NIRExportError(
                f"{node.name!r} ({node.op} {getattr(node.target, '__name__', node.target)}) has no "
                "NIR node: NIR graphs hold layers, neurons and sums of their outputs"
            )
    return result, shape


def _conv_node(layer, name: str, shape: tuple[int, ...]):
    if layer.padding_mode != "zeros":
        raise NIRExportError(
            f"layer {name!r}: padding_mode={layer.padding_mode!r} (NIR pads with zeros)"
        )
    bias = _np(layer.bias) if layer.bias is not None else np.zeros(layer.out_channels, np.float32)
    padding = layer.padding if isinstance(layer.padding, str) else tuple(layer.padding)
    if isinstance(layer, nn.Conv1d):
        return nir.Conv1d(
            input_shape=shape[-1],
            weight=_np(layer.weight),
            stride=layer.stride[0],
            padding=padding if isinstance(padding, str) else padding[0],
            dilation=layer.dilation[0],
            groups=layer.groups,
            bias=bias,
        )
    return nir.Conv2d(
        input_shape=tuple(shape[-2:]),
        weight=_np(layer.weight),
        stride=tuple(layer.stride),
        padding=padding,
        dilation=tuple(layer.dilation),
        groups=layer.groups,
        bias=bias,
    )


def _avgpool_node(layer: nn.AvgPool2d, name: str):
    pair = lambda v: np.array(v if isinstance(v, (tuple, list)) else (v, v))  # noqa: E731
    if (
        layer.ceil_mode
        or layer.divisor_override is not None
        or (np.any(pair(layer.padding)) and not layer.count_include_pad)
    ):
        raise NIRExportError(
            f"layer {name!r} (AvgPool2d): ceil_mode, divisor_override or padding excluded from "
            "the average have no NIR equivalent"
        )
    stride = layer.stride if layer.stride is not None else layer.kernel_size
    return nir.AvgPool2d(
        kernel_size=pair(layer.kernel_size), stride=pair(stride), padding=pair(layer.padding)
    )


def save(
    model,
    path: str | os.PathLike,
    input_shape: tuple[int, ...] | None = None,
    dt: float = 1e-4,
    warn: bool = True,
) -> nir.NIRGraph:
    """Write ``model`` (a module, or a ``nir.NIRGraph`` as it is) to a ``.nir`` file, atomically
    (a temporary file in the same folder, then a rename). Returns the graph written."""
    if isinstance(model, nir.NIRGraph):
        graph = model
    else:
        if input_shape is None and not isinstance(model, NIRGraphModule):
            raise InvalidArgumentError(
                "save needs input_shape=(C, H, W) (one frame) to export a model"
            )
        graph = to_nir(model, input_shape, dt=dt, warn=warn)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".nir-", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        nir.write(tmp, graph)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return graph
