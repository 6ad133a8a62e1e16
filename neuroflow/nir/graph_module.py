"""Run an imported NIR graph: a DAG of layers and neurons, with fan-in, fan-out and recurrence.

NIR edges are identities and a node with several incoming edges receives their sum. A graph
without cycles runs node by node over the whole sequence (each stateless layer sees all ``T x B``
frames at once, each neuron layer its ``[T, B, ...]`` sequence, on the fused kernel where it can).
In a graph with cycles (a recurrent layer is written as a neuron node plus an Affine back onto
itself) only the nodes of each cycle run step by step, together; an edge that closes a cycle
carries its source's output of the previous step (zero at the first), as nirtorch, snnTorch's
``RLeaky`` and SpikingJelly's importer do. The layers before and after a cycle still run on whole
sequences.
"""

from __future__ import annotations

import torch
from torch import nn

from neuroflow.nir.errors import NIRShapeError
from neuroflow.nir.neurons import Delay, NIRNeuron, SinabsNeuron

#: modules with a time dimension and a state; every other module is applied to folded ``[T*B, ...]``
STATEFUL = (NIRNeuron, SinabsNeuron, Delay)


def _order(nodes: list[str], edges: list[tuple[str, str]], inputs: list[str]):
    """``(topological order, back edges)``: a depth-first search from the inputs (then from any
    node not reached) marks each edge that closes a cycle as a back edge; the rest are ordered."""
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        succ[a].append(b)
    state: dict[str, int] = {}
    back: set[tuple[str, str]] = set()
    for root in [*inputs, *nodes]:
        if root in state:
            continue
        stack = [(root, iter(succ[root]))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                back.add((node, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(succ[nxt])))
    forward = [e for e in edges if e not in back]
    indegree = {n: 0 for n in nodes}
    for _, b in forward:
        indegree[b] += 1
    ready = [n for n in nodes if indegree[n] == 0]
    order = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for a, b in forward:
            if a == n:
                indegree[b] -= 1
                if indegree[b] == 0:
                    ready.append(b)
    return order, sorted(back)


def _plan(order: list[str], edges: list[tuple[str, str]], back_edges: list[tuple[str, str]]):
    """Groups of nodes to run in turn: a node alone (run on the whole sequence) or the nodes of
    one cycle (stepped through time together), each group after every group that feeds it.

    Nodes joined by a back edge are in one cycle with every node on a forward path between them
    (the strongly connected component); groups are ordered topologically."""
    position = {n: i for i, n in enumerate(order)}
    succ: dict[str, set[str]] = {n: set() for n in order}
    pred: dict[str, set[str]] = {n: set() for n in order}
    for a, b in edges:
        succ[a].add(b)
        pred[b].add(a)

    def reach(start: str, nxt) -> set[str]:
        seen, stack = {start}, [start]
        while stack:
            for m in nxt[stack.pop()]:
                if m not in seen:
                    seen.add(m)
                    stack.append(m)
        return seen

    group_of: dict[str, int] = {}
    groups: list[set[str]] = []
    for _, b in back_edges:
        component = reach(b, succ) & reach(b, pred)
        ids = {group_of[n] for n in component if n in group_of}
        for i in ids:
            component |= groups[i]
        groups.append(component)
        for n in component:
            group_of[n] = len(groups) - 1
    final = {id(g): sorted(g, key=position.__getitem__) for g in groups}
    plan, done = [], set()
    for n in order:  # a cycle runs where its last member stands: every outside input is ready
        if n in done:
            continue
        if n in group_of:
            members = final[id(groups[group_of[n]])]
            if n != members[-1]:
                continue
            plan.append(members)
            done.update(members)
        else:
            plan.append([n])
            done.add(n)
    return plan


class NIRGraphModule(nn.Module):
    """An imported NIR graph as a module: ``[T, B, *input_shape]`` -> ``[T, B, *output_shape]``.

    With several Input nodes, pass a dict ``{input name: tensor}``; with several Output nodes the
    result is a dict ``{output name: tensor}``. Each call starts from a fresh state;
    ``state=`` (a dict returned by an earlier call with ``return_state=True``) continues it.

    Attributes: ``graph`` (the ``nir.NIRGraph`` it runs, sub-graphs inlined),
    ``original_graph`` (the graph as read, which :func:`neuroflow.nir.to_nir` writes back),
    ``layers`` (``nn.ModuleDict``; :meth:`layer` finds a node's module by name), ``order``,
    ``back_edges``, ``dt``.
    """

    def __init__(
        self,
        graph,
        layers: dict[str, nn.Module],
        inputs: list[str],
        outputs: list[str],
        input_shapes: dict[str, tuple[int, ...] | None],
        dt: float,
        source: str = "graph",
    ):
        super().__init__()
        self.graph = graph
        self.dt = float(dt)
        self.source = source
        self.node_names = list(graph.nodes)
        # ModuleDict keys may not contain "."; keep a mapping
        self._keys = {name: f"n{i}" for i, name in enumerate(self.node_names)}
        self.layers = nn.ModuleDict({self._keys[n]: m for n, m in layers.items()})
        self.inputs, self.outputs = list(inputs), list(outputs)
        self.input_shapes = dict(input_shapes)
        edges = [(str(a), str(b)) for a, b in graph.edges]
        self.order, self.back_edges = _order(self.node_names, edges, self.inputs)
        back = set(self.back_edges)
        self.preds = {
            n: [a for a, b in edges if b == n and (a, b) not in back] for n in self.node_names
        }
        self.back_preds = {
            n: [a for a, b in edges if b == n and (a, b) in back] for n in self.node_names
        }
        self.plan = _plan(self.order, edges, self.back_edges)

    def layer(self, name: str) -> nn.Module | None:
        """The module of node ``name`` (``None`` for Input / Output nodes)."""
        key = self._keys[name]
        return self.layers[key] if key in self.layers else None

    # ------------------------------------------------------------------------------ running
    def _inputs_dict(self, x) -> dict[str, torch.Tensor]:
        if isinstance(x, dict):
            missing = [n for n in self.inputs if n not in x]
            if missing:
                raise NIRShapeError(
                    f"{self.source}: inputs {missing} missing; the graph's inputs are {self.inputs}"
                )
            xs = dict(x)
        else:
            if len(self.inputs) != 1:
                raise NIRShapeError(
                    f"{self.source}: the graph has inputs {self.inputs}: pass a dict of tensors"
                )
            xs = {self.inputs[0]: x}
        for name, t in xs.items():
            if not isinstance(t, torch.Tensor) or t.dim() < 2:
                got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise NIRShapeError(
                    f"{self.source}: input {name!r} must be a tensor [T, B, ...], got {got}"
                )
            want = self.input_shapes.get(name)
            if want is not None and tuple(t.shape[2:]) != tuple(want):
                raise NIRShapeError(
                    f"{self.source}: input {name!r} must have shape "
                    f"[T, B, {', '.join(map(str, want))}], got {list(t.shape)}"
                )
        return xs

    def _run_node(self, name: str, x: torch.Tensor, state: dict, new_state: dict) -> torch.Tensor:
        module = self.layer(name)
        if module is None:
            return x
        try:
            if isinstance(module, STATEFUL):
                y, new_state[name] = module(x, state.get(name), return_state=True)
                return y
            steps, batch = x.shape[0], x.shape[1]
            y = module(x.reshape(steps * batch, *x.shape[2:]))
            return y.reshape(steps, batch, *y.shape[1:])
        except RuntimeError as exc:
            raise NIRShapeError(
                f"{self.source}: node {name!r} ({type(module).__name__}) cannot take input of "
                f"shape [T, B, {', '.join(map(str, x.shape[2:]))}]: {' '.join(str(exc).split())}"
            ) from None

    def _gather(self, name: str, values: dict, prev: dict | None):
        parts = [values[a] for a in self.preds[name] if a in values]
        if prev is not None:
            parts += [prev[a] for a in self.back_preds[name] if a in prev]
        if not parts:
            return None
        total = parts[0]
        for p in parts[1:]:
            total = total + p
        return total

    def forward(self, x, state: dict | None = None, return_state: bool = False):
        """``x [T, B, *input_shape]`` (or a dict by input name) -> output ``[T, B, ...]``."""
        xs = self._inputs_dict(x)
        state = {} if state is None else state
        new_state: dict = {}
        values: dict[str, torch.Tensor] = {}
        previous = state.get("__previous_outputs__", {})
        new_previous: dict[str, torch.Tensor] = {}
        for group in self.plan:
            if len(group) == 1 and not self.back_preds[group[0]]:
                name = group[0]
                inp = xs[name] if name in xs else self._gather(name, values, None)
                if inp is not None:
                    values[name] = self._run_node(name, inp, state, new_state)
            else:
                self._run_cycle(group, xs, values, state, new_state, previous, new_previous)
        if self.back_edges:
            new_state["__previous_outputs__"] = new_previous
        out = {n: values[n] for n in self.outputs}
        result = out[self.outputs[0]] if len(self.outputs) == 1 else out
        return (result, new_state) if return_state else result

    def _run_cycle(self, group, xs, values, state, new_state, previous, new_previous) -> None:
        """Step the nodes of one cycle through time; their inputs from outside it are complete
        sequences already, edges that close the cycle carry the previous step's output."""
        members = set(group)
        steps = next(iter(xs.values())).shape[0]
        prev = {n: previous[n] for n in group if n in previous}
        node_state = {n: state[n] for n in group if n in state}
        collected: dict[str, list[torch.Tensor]] = {n: [] for n in group}
        for t in range(steps):
            now: dict[str, torch.Tensor] = {}
            for name in group:
                parts = [xs[name][t : t + 1]] if name in xs else []
                parts += [
                    now[a] if a in members else values[a][t : t + 1]
                    for a in self.preds[name]
                    if a in now or (a not in members and a in values)
                ]
                parts += [prev[a] for a in self.back_preds[name] if a in prev]
                if not parts:
                    continue
                inp = parts[0]
                for extra in parts[1:]:
                    inp = inp + extra
                step_state: dict = {}
                now[name] = self._run_node(name, inp, node_state, step_state)
                node_state.update(step_state)
                collected[name].append(now[name])
            prev = now
        values.update({n: torch.cat(v, 0) for n, v in collected.items() if v})
        new_state.update(node_state)
        new_previous.update(prev)
