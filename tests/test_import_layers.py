"""The import-layer contract: a part of neuroflow imports only parts of lower layers, and no
module takes part in an import cycle.

Every ``import`` statement counts, function-local ones too (a lower layer reaching up inside a
function is still a dependency on the higher one). The checker reads the source with ``ast`` and
imports nothing; it is tested on a small synthetic package with deliberate violations.

Layers, highest first; a unit (a top-level module or subpackage of ``neuroflow``) may import the
units of strictly lower layers only. A part that does not exist yet is simply absent; a new unit
must be given a layer here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LAYERS: list[set[str]] = [
    {"__main__"},
    {"cli"},
    {"train", "emulator", "lsm"},
    {"energy", "nir"},
    {"experiment"},
    {"config"},
    {"models", "data"},
    {"layers", "encoding", "rram"},
    {"neurons"},
    {"viz"},
    {"registry", "parallel", "allocator"},
    {"errors"},
]
#: units restricted further than their layer: plotting takes plain tensors and dicts only
ONLY: dict[str, set[str]] = {"viz": {"errors"}}

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "neuroflow"


# ---------------------------------------------------------------------------------------------
# the checker


def module_names(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package (packages by their
    ``__init__.py``)."""
    root = package_dir.parent
    names = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[tuple[str, int]]:
    """``(imported module, line)`` for every import in ``path`` of a module in ``modules``.

    ``from a.b import c`` names module ``a.b.c`` when that is a module, else ``a.b``; relative
    imports are resolved against the file's package. Imports of modules that do not exist (a
    lazily imported optional part) are left out, as are the implicit imports of parent packages.
    """
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                for alias in node.names
            ]
        else:
            continue
        found.update((t, node.lineno) for t in targets if t in modules and t != module)
    return found


def import_graph(package_dir: Path) -> dict[str, set[tuple[str, int]]]:
    modules = module_names(package_dir)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def unit(module: str) -> str:
    """``neuroflow.data.events.nmnist`` -> ``data``; the package root itself -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_violations(
    graph: dict[str, set[tuple[str, int]]],
    layers: list[set[str]],
    only: dict[str, set[str]] | None = None,
) -> list[str]:
    """One line per import that breaks the layering (or a unit without a layer)."""
    rank = {name: i for i, layer in enumerate(layers) for name in layer}
    rank[""] = -1  # the package root may re-export anything
    only = only or {}
    problems = []
    for name in sorted({unit(m) for m in graph} - set(rank)):
        problems.append(f"unit {name!r} has no layer: add it to LAYERS")
    for module, targets in sorted(graph.items()):
        src = unit(module)
        for target, line in sorted(targets):
            dst = unit(target)
            if dst == src or src not in rank or dst not in rank:
                continue
            allowed = rank[dst] > rank[src] and (src not in only or dst in only[src])
            if not allowed:
                problems.append(f"{module} (line {line}) imports {target}: {src} may not use {dst}")
    return problems


def import_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def unit_edges(graph: dict[str, set[tuple[str, int]]]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for module, targets in graph.items():
        for target, _ in targets:
            if unit(target) != unit(module) and unit(module) and unit(target):
                edges.setdefault(unit(module), set()).add(unit(target))
    return edges


def module_edges(graph: dict[str, set[tuple[str, int]]]) -> dict[str, set[str]]:
    return {module: {t for t, _ in targets} for module, targets in graph.items()}


# ---------------------------------------------------------------------------------------------
# neuroflow itself


@pytest.fixture(scope="module")
def graph():
    return import_graph(PACKAGE_DIR)


def test_neuroflow_follows_its_import_layers(graph):
    assert layer_violations(graph, LAYERS, ONLY) == []


def test_no_import_cycles_between_parts(graph):
    assert import_cycles(unit_edges(graph)) == []


def test_no_import_cycles_between_modules(graph):
    assert import_cycles(module_edges(graph)) == []


# ---------------------------------------------------------------------------------------------
# the checker on a synthetic package with deliberate violations


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_checker_finds_upward_and_function_local_imports(tmp_path):
    package = _package(
        tmp_path,
        {
            "__init__.py": "",
            "top.py": "from pkg.low import helper\n",
            "low/__init__.py": "from .core import helper\n",
            # a lower layer reaching up inside a function, through a relative import
            "low/core.py": "def helper():\n    from ..top import x\n    return x\n",
            "plot.py": "import pkg.mid\n",  # plot may use 'base' only, though mid is lower
            "mid.py": "import pkg.base\n",
            "base.py": "",
        },
    )
    layers = [{"top"}, {"low"}, {"plot"}, {"mid"}, {"base"}]
    problems = layer_violations(import_graph(package), layers, {"plot": {"base"}})
    assert problems == [
        "pkg.low.core (line 2) imports pkg.top: low may not use top",
        "pkg.plot (line 1) imports pkg.mid: plot may not use mid",
    ]
    assert layer_violations(import_graph(package), [{"top"}, {"low"}], {}) == [
        "unit 'base' has no layer: add it to LAYERS",
        "unit 'mid' has no layer: add it to LAYERS",
        "unit 'plot' has no layer: add it to LAYERS",
        "pkg.low.core (line 2) imports pkg.top: low may not use top",
    ]


def test_checker_finds_cycles_and_ignores_missing_modules(tmp_path):
    package = _package(
        tmp_path,
        {
            "__init__.py": "",
            "a/__init__.py": "from pkg.a.one import f\n",
            "a/one.py": "def f():\n    from pkg.b import g\n    from pkg.a.absent import h\n",
            "b.py": "from pkg.a import f as g\n",
            "c.py": "import pkg.b\n",
        },
    )
    graph = import_graph(package)
    assert ("pkg.a.absent", 3) not in graph["pkg.a.one"]  # an optional part not written yet
    assert import_cycles(unit_edges(graph)) == [["a", "b"]]
    assert import_cycles(module_edges(graph)) == [["pkg.a", "pkg.a.one", "pkg.b"]]
    assert layer_violations(graph, [{"c"}, {"b"}, {"a"}]) == [
        "pkg.a.one (line 2) imports pkg.b: a may not use b"
    ]
