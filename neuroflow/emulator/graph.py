"""Reading the emulator's input: a ``nir.NIRGraph``, a ``.nir`` file or a neuroflow model."""

from __future__ import annotations

from pathlib import Path

import nir

from neuroflow.emulator.errors import EmulatorError, UnsupportedNodeError


def consumers(graph: nir.NIRGraph, name: str) -> list[str]:
    return [dst for src, dst in graph.edges if src == name]


def producers(graph: nir.NIRGraph, name: str) -> list[str]:
    return [src for src, dst in graph.edges if dst == name]


def as_graph(
    source, input_shape=None, dt: float | None = None
) -> tuple[nir.NIRGraph, float | None]:
    """``(graph, dt)`` for a NIR graph, a path to a ``.nir`` file, or a neuroflow ``nn.Module``
    (exported with :func:`neuroflow.nir.to_nir`, which needs ``input_shape`` of one frame).
    ``dt`` (seconds per tick): the argument, else the graph's ``neuroflow_dt`` metadata."""
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise EmulatorError(f"NIR file not found: {path}")
        from neuroflow.nir import read_graph

        graph = read_graph(path)
    elif isinstance(source, nir.NIRGraph):
        graph = source
    else:
        import torch

        if not isinstance(source, torch.nn.Module):
            raise EmulatorError(
                f"emulator source must be a nir.NIRGraph, a .nir path or a torch model, "
                f"got {type(source).__name__}"
            )
        if input_shape is None:
            input_shape = getattr(source, "input_shape", None)
        if input_shape is None:
            raise EmulatorError(
                "compiling a torch model needs input_shape (one frame, e.g. (2, 34, 34))"
            )
        import warnings

        from neuroflow.nir import to_nir
        from neuroflow.nir.errors import NIRSemanticsWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NIRSemanticsWarning)
            graph = to_nir(source.eval(), tuple(input_shape), dt=dt if dt is not None else 1e-3)
    if dt is None:
        dt = (graph.metadata or {}).get("neuroflow_dt")
    return graph, dt


def chain(graph: nir.NIRGraph) -> list[str]:
    """The node names of a feed-forward chain from the Input to the Output, in order; a graph
    that branches or loops is refused (the chip mappers here handle chains)."""
    inputs = [n for n, v in graph.nodes.items() if isinstance(v, nir.Input)]
    if len(inputs) != 1:
        raise UnsupportedNodeError(f"the graph needs exactly one Input node, got {inputs}")
    order = [inputs[0]]
    seen = set(order)
    while True:
        nxt = consumers(graph, order[-1])
        if not nxt:
            break
        if len(nxt) > 1:
            raise UnsupportedNodeError(
                f"node {order[-1]!r} feeds {nxt}: only feed-forward chains are mapped"
            )
        if nxt[0] in seen:
            raise UnsupportedNodeError(
                f"node {nxt[0]!r} closes a loop: recurrence is only mapped on xylo"
            )
        seen.add(nxt[0])
        order.append(nxt[0])
    return order
