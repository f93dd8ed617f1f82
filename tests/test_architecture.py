"""Structural rules: no import cycles, Hydra only at the edge (the CLI)."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parent.parent / "hetopt"


def _imports() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        out[module] = names
    return out


def test_no_import_cycles_inside_hetopt() -> None:
    graph = nx.DiGraph()
    for module, names in _imports().items():
        graph.add_node(module)
        graph.add_edges_from((module, n) for n in names if n.startswith("hetopt"))
    assert list(nx.simple_cycles(graph)) == []


def _package(module: str) -> str:
    """``hetopt.fleet.spec`` -> ``hetopt.fleet``; a top-level module is its own unit."""
    return ".".join(module.split(".")[:2])


# The solver contract (issue 16, item 1) removes this one: Objective moves into models/, and
# plan/ stops importing solvers/. Until then its cycles are the only ones allowed.
_KNOWN_CYCLE_PACKAGES = {"hetopt.models", "hetopt.solvers", "hetopt.plan"}


def test_no_import_cycles_between_packages() -> None:
    """Packages (and top-level modules) import one another one way only: no cycle through a
    third package either, such as {report, workloads, mlir} was (the root ``hetopt`` package,
    the public facade, is left out)."""
    graph = nx.DiGraph()
    for module, names in _imports().items():
        if module == "hetopt":
            continue
        for n in names:
            if n.startswith("hetopt.") and _package(n) != _package(module):
                graph.add_edge(_package(module), _package(n))
    cycles = [c for c in nx.simple_cycles(graph) if not set(c) <= _KNOWN_CYCLE_PACKAGES]
    assert cycles == []


def test_the_input_edge_imports_no_format_package() -> None:
    """``hetopt.workloads`` reads workload files through its reader registry: the packages
    that own a format (``hetopt.mlir``) register there; the input edge never imports them."""
    names = _imports()["hetopt.workloads"]
    assert not any(n.startswith(("hetopt.mlir", "hetopt.report")) for n in names)
    assert not any(
        n.startswith("hetopt.report")
        for m, ns in _imports().items()
        if m.startswith("hetopt.mlir")
        for n in ns
    )


def test_library_never_imports_hydra_or_omegaconf() -> None:
    offenders = [
        m
        for m, names in _imports().items()
        if not m.startswith("hetopt.cli")
        and any(n.split(".")[0] in ("hydra", "omegaconf") for n in names)
    ]
    assert offenders == []
