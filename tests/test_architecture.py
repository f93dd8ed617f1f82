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


# The pipeline of ARCHITECTURE.md, top to bottom: a package may import packages of its own
# layer or above it, never one below. Every package and top-level module of hetopt is listed,
# so a new one has to be placed deliberately.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "atomic", "inputs", "plotting", "_solverlibs"),  # foundation: errors, writes, reads
    ("sla", "graph", "hardware"),  # data tables: SLA, agent graphs, device catalog
    ("costs",),  # cost table: step model, roofline, TCO
    ("workloads", "importers"),  # the input edge: typed Workload; graphs read from code
    ("consistency", "oracle"),  # check_* rules; the independent evaluator of raw inputs
    ("problem", "testing", "generators"),  # placement problem (+ tiny and generated instances)
    ("models",),  # formulations
    ("solvers",),  # backends behind one contract
    ("plan",),  # plan + independent verifier
    ("pipeline", "melange"),  # plan_agent: the single-agent pipeline; Mélange's ILP as input
    ("fleet",),  # many agents on shared pools
    ("mlir", "replay", "deploy"),  # verification stages; plans out as deployments
    ("report",),  # tables, figures, paper reproductions, what-if studies
    ("sweeps",),  # sweep bookkeeping
    ("cli",),  # Hydra edge
)


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _package_edges() -> set[tuple[str, str]]:
    edges = set()
    for module, names in _imports().items():
        src = _package(module)
        for name in names:
            if name.startswith("hetopt.") and _package(name) != src and src:
                edges.add((src, _package(name)))
    return edges


def test_every_package_is_placed_in_a_layer() -> None:
    placed = {p for layer in LAYERS for p in layer}
    present = {_package(m) for m in _imports()} - {""}
    assert sorted(present - placed) == []


def test_no_package_imports_a_later_package() -> None:
    rank = {p: k for k, layer in enumerate(LAYERS) for p in layer}
    upward = sorted(
        f"hetopt.{src} imports hetopt.{dst}, which comes later in the pipeline"
        for src, dst in _package_edges()
        if src in rank and dst in rank and rank[dst] > rank[src]
    )
    assert upward == []


def test_no_import_cycles_between_packages() -> None:
    graph = nx.DiGraph(sorted(_package_edges()))
    assert sorted(map(sorted, nx.simple_cycles(graph))) == []
