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


def test_library_never_imports_hydra_or_omegaconf() -> None:
    offenders = [
        m
        for m, names in _imports().items()
        if not m.startswith("hetopt.cli")
        and any(n.split(".")[0] in ("hydra", "omegaconf") for n in names)
    ]
    assert offenders == []
