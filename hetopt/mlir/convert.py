"""Agent graph <-> MLIR module, exact both ways.

An :class:`~hetopt.graph.ir.AgentGraph` becomes one ``func.func`` per graph (nested agents get
their own function, called with ``agent.call``). The request is the function's argument (the
paper's ``input.query``); a node with no forward in-edge takes it. Every other in-edge is an
``agent.edge`` op carrying ``payload_bytes`` and ``probability``, and the node op takes the
edges' results as operands: the SSA use-def chains are the graph's forward edges. Back edges,
which SSA cannot express, are ``agent.back_edge`` ops after the body naming their ``target``.
The agent's exits (its true sinks, else its forward sinks) are returned: edges out of a
nested agent leave from them.

>>> from hetopt.workloads import load_workload
>>> from hetopt.graph.ir import agent_graph_from_dict
>>> g = load_workload("voice_agent").graph
>>> text = export_graph(g)
>>> '"llm.call"' in text and '"agent.back_edge"' in text
True
>>> agent_graph_from_dict(import_workload(text)) == g
True

Node kinds map to ops as follows (attributes are the node's fields, flattened):

=====================  ====================================================
node                    op
=====================  ====================================================
model_execution         ``llm.call`` (decoder LLM) or ``model.encode`` (encoder)
tool_call               ``tool.invoke``
memory_lookup           ``memory.load``
observation_store       ``memory.store``
kv_cache                ``memory.kv_cache``
general_compute         ``compute.run``
control                 ``control.route`` (work), ``control.llm``, ``control.encode``
agent                   ``agent.call`` of the subgraph's function
=====================  ====================================================

``description`` and ``devices`` are optional attributes; ``node_order`` on each function keeps
the node list's order so that the round trip is exact (hand-written files may leave it out).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import networkx as nx
from torch_mlir import ir
from torch_mlir.dialects import func

from hetopt.errors import InputError
from hetopt.graph.decompose import graph_ends
from hetopt.graph.ir import AgentGraph, Edge, Node, TaskKind
from hetopt.inputs import MAX_YAML_BYTES, read_text_input
from hetopt.mlir.dialect import agent_context, parse_module, verify

WORK = ("flops", "mem_bytes", "footprint_bytes", "static_latency_s")
LOOKUP = ("latency_s", "request_bytes", "response_bytes")
MEMORY = ("vectors", "dim", "bytes_per_element", "scan_fraction", "top_k")
_INTS = {
    "input_tokens",
    "output_tokens",
    "tokens",
    "vectors",
    "dim",
    "top_k",
    "index",
    "max_iterations",
}
_SLA_KEYS = ("e2e_s", "ttft_s", "tbt_s", "loop_iterations")


def op_name_of(node: Node) -> str:
    """The op a node becomes."""
    p = node.params
    model = "model" in p
    decoder = "input_tokens" in p
    return {
        TaskKind.MODEL: "llm.call" if decoder else "model.encode",
        TaskKind.TOOL: "tool.invoke",
        TaskKind.MEMORY: "memory.load",
        TaskKind.OBSERVATION: "memory.store",
        TaskKind.KV_CACHE: "memory.kv_cache",
        TaskKind.COMPUTE: "compute.run",
        TaskKind.CONTROL: ("control.llm" if decoder else "control.encode")
        if model
        else "control.route",
        TaskKind.AGENT: "agent.call",
    }[node.kind]


_KIND_OF_OP = {
    "llm.call": TaskKind.MODEL,
    "model.encode": TaskKind.MODEL,
    "tool.invoke": TaskKind.TOOL,
    "memory.load": TaskKind.MEMORY,
    "memory.store": TaskKind.OBSERVATION,
    "memory.kv_cache": TaskKind.KV_CACHE,
    "compute.run": TaskKind.COMPUTE,
    "control.route": TaskKind.CONTROL,
    "control.llm": TaskKind.CONTROL,
    "control.encode": TaskKind.CONTROL,
    "agent.call": TaskKind.AGENT,
}
"""High-level (not yet decomposed) node ops."""


# --------------------------------------------------------------------------------------------
# Attributes
# --------------------------------------------------------------------------------------------


def attr(value: Any, integer: bool = False) -> ir.Attribute:
    """A builtin attribute for a Python value (``integer`` forces i64)."""
    if isinstance(value, bool):
        return ir.BoolAttr.get(value)
    if isinstance(value, str):
        return ir.StringAttr.get(value)
    if integer or isinstance(value, int):
        return ir.IntegerAttr.get(ir.IntegerType.get_signless(64), int(value))
    if isinstance(value, float):
        return ir.FloatAttr.get_f64(value)
    if isinstance(value, Mapping):
        return ir.DictAttr.get({str(k): attr(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return ir.ArrayAttr.get([attr(v) for v in value])
    raise TypeError(f"no MLIR attribute for {value!r}")


def py(a: ir.Attribute) -> Any:
    """The Python value of a builtin attribute (strings, numbers, arrays, dictionaries)."""
    if isinstance(a, ir.StringAttr):
        return a.value
    if isinstance(a, ir.BoolAttr):
        return a.value
    if isinstance(a, ir.IntegerAttr):
        return a.value
    if isinstance(a, ir.FloatAttr):
        return a.value
    if isinstance(a, ir.ArrayAttr):
        return [py(x) for x in a]
    if isinstance(a, ir.DictAttr):
        return {named.name: py(named.attr) for named in a}
    if isinstance(a, ir.FlatSymbolRefAttr):
        return a.value
    if isinstance(a, ir.UnitAttr):
        return True
    raise TypeError(f"unsupported attribute {a}")


def attrs_of(op: ir.Operation) -> dict[str, Any]:
    """All attributes of an op as Python values (types are skipped)."""
    return {
        name: py(op.attributes[name])
        for name in op.attributes
        if not isinstance(op.attributes[name], ir.TypeAttr)
    }


def _node_attrs(node: Node) -> dict[str, ir.Attribute]:
    p = node.params
    a: dict[str, ir.Attribute] = {"node": attr(node.id)}
    for key, value in p.items():
        if key in ("lookup", "work"):
            for k, v in value.items():
                a[k] = attr(float(v))
        elif key == "compute":
            for k, v in value.items():
                a[f"compute_{k}"] = attr(float(v))
        elif key in ("model", "precision", "description"):
            a[key] = attr(str(value))
        else:
            a[key] = attr(value, integer=True) if key in _INTS else attr(float(value))
    if node.devices is not None:
        a["devices"] = attr(list(node.devices))
    return a


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------


def _emit_graph(
    graph: AgentGraph, symbol: str, module: ir.Module, meta: Mapping[str, ir.Attribute]
) -> None:
    msg = ir.Type.parse("!agent.msg")
    fwd = nx.DiGraph()
    fwd.add_nodes_from(graph.node_ids)
    fwd.add_edges_from((e.src, e.dst) for e in graph.edges if not e.is_back)
    position = {n: i for i, n in enumerate(graph.node_ids)}
    order = list(nx.lexicographical_topological_sort(fwd, key=position.__getitem__))
    sinks = graph_ends(graph)[1]
    with ir.InsertionPoint(module.body):
        fn = func.FuncOp(symbol, ir.FunctionType.get([msg], [msg] * len(sinks)))
    fn.attributes["agent.graph"] = ir.UnitAttr.get()
    fn.attributes["node_order"] = attr(list(graph.node_ids))
    if graph.description:
        fn.attributes["description"] = attr(graph.description)
    for key, value in meta.items():
        fn.attributes[key] = value
    block = fn.add_entry_block()
    request = block.arguments[0]
    results: dict[str, ir.Value] = {}
    by_dst: dict[str, list[tuple[int, Edge]]] = {}
    for i, e in enumerate(graph.edges):
        if not e.is_back:
            by_dst.setdefault(e.dst, []).append((i, e))
    with ir.InsertionPoint(block):
        for node_id in order:
            node = graph.node(node_id)
            inputs = []
            for i, e in by_dst.get(node_id, []):
                inputs.append(
                    ir.Operation.create(
                        "agent.edge",
                        results=[msg],
                        operands=[results[e.src]],
                        attributes={
                            "index": attr(i, integer=True),
                            "payload_bytes": attr(e.payload_bytes),
                            "probability": attr(e.probability),
                        },
                    ).result
                )
            attributes = _node_attrs(node)
            if node.kind is TaskKind.AGENT:
                assert node.subgraph is not None
                callee = f"{symbol}/{node.id}"
                _emit_graph(node.subgraph, callee, module, {})
                attributes["callee"] = ir.FlatSymbolRefAttr.get(callee)
            results[node_id] = ir.Operation.create(
                op_name_of(node), results=[msg], operands=inputs or [request], attributes=attributes
            ).result
        for i, e in enumerate(graph.edges):
            if e.is_back:
                assert e.loop is not None
                ir.Operation.create(
                    "agent.back_edge",
                    operands=[results[e.src]],
                    attributes={
                        "index": attr(i, integer=True),
                        "target": attr(e.dst),
                        "payload_bytes": attr(e.payload_bytes),
                        "expected_iterations": attr(e.loop.expected_iterations),
                        "max_iterations": attr(e.loop.max_iterations, integer=True),
                    },
                )
        func.ReturnOp([results[n] for n in sinks])


def export_module(graph: AgentGraph, workload: Mapping[str, Any] | None = None) -> ir.Module:
    """The graph as a verified module in the current :func:`agent_context`.

    ``workload`` may carry ``request_rate_per_s`` and an ``sla`` mapping; they become
    attributes of the top function so that an MLIR file is a complete workload.
    """
    meta: dict[str, ir.Attribute] = {}
    workload = workload or {}
    if workload.get("request_rate_per_s") is not None:
        meta["request_rate_per_s"] = attr(float(workload["request_rate_per_s"]))
    sla = {k: v for k, v in dict(workload.get("sla") or {}).items() if v is not None}
    if sla:
        meta["sla"] = attr({k: float(v) for k, v in sla.items()})
    module = ir.Module.create()
    _emit_graph(graph, graph.name, module, meta)
    verify(module, f"graph '{graph.name}'")
    return module


def export_graph(graph: AgentGraph, workload: Mapping[str, Any] | None = None) -> str:
    """The graph as MLIR text (see :func:`export_module`)."""
    with agent_context():
        return str(export_module(graph, workload))


# --------------------------------------------------------------------------------------------
# Import
# --------------------------------------------------------------------------------------------


def _functions(module: ir.Module) -> dict[str, ir.Operation]:
    out = {}
    for op in module.body.operations:
        if op.operation.name == "func.func":
            out[ir.StringAttr(op.attributes["sym_name"]).value] = op.operation
    return out


def top_function(module: ir.Module, source: str = "<mlir>") -> ir.Operation:
    """The module's top agent graph: the one function no ``agent.call`` calls.

    Raises
    ------
    InputError
        There is none, or more than one.
    """
    functions = _functions(module)
    called = {
        attrs_of(op.operation)["callee"]
        for fn in functions.values()
        for op in fn.regions[0].blocks[0].operations
        if op.operation.name == "agent.call"
    }
    tops = [n for n in functions if n not in called]
    if len(tops) != 1:
        raise InputError(
            f"{source}: expected exactly one top-level agent function (one that no "
            f"agent.call calls), found {tops or 'none'}. Keep one graph per file."
        )
    return functions[tops[0]]


def _source_node(value: ir.Value, where: str) -> tuple[str | None, ir.Operation | None]:
    """(node id, edge op) feeding an operand; ``(None, None)`` for the request argument."""
    owner = value.owner
    if isinstance(owner, ir.Block):
        return None, None
    op = owner.operation if hasattr(owner, "operation") else owner
    if op.name == "agent.edge":
        src = op.operands[0].owner
        if isinstance(src, ir.Block):
            raise InputError(
                f"{where}: an agent.edge starts at the request argument; edges "
                "must start at a node op."
            )
        return attrs_of(src.operation)["node"], op
    raise InputError(
        f"{where}: operand of '{op.name}' must be an agent.edge result or the "
        "request argument. Insert an agent.edge between the two nodes."
    )


def _node_dict(op_name: str, a: dict[str, Any], where: str) -> dict[str, Any]:
    kind = _KIND_OF_OP[op_name]
    out: dict[str, Any] = {"kind": kind.value}
    for key in ("description", "devices"):
        if key in a:
            out[key] = a[key]
    if op_name in ("llm.call", "control.llm"):
        out.update({k: a[k] for k in ("model", "precision", "input_tokens", "output_tokens")})
    elif op_name in ("model.encode", "control.encode"):
        out.update({k: a[k] for k in ("model", "precision", "tokens")})
    elif op_name == "tool.invoke":
        out["lookup"] = {k: a[k] for k in LOOKUP}
        compute = {k[len("compute_") :]: v for k, v in a.items() if k.startswith("compute_")}
        if compute:
            out["compute"] = compute
    elif op_name == "memory.load":
        out.update({k: a[k] for k in MEMORY})
    elif op_name != "agent.call":
        out["work"] = {k: a[k] for k in WORK}
    return out


def _graph_dict(
    fn: ir.Operation, functions: Mapping[str, ir.Operation], source: str, stack: tuple[str, ...]
) -> dict[str, Any]:
    fa = attrs_of(fn)
    name = fa["sym_name"]
    where = f"{source}: func @{name}"
    nodes: dict[str, dict[str, Any]] = {}
    edges: list[tuple[int, dict[str, Any]]] = []
    for op in fn.regions[0].blocks[0].operations:
        op = op.operation
        a = attrs_of(op)
        if op.name in ("agent.edge", "func.return"):
            continue
        if op.name == "agent.back_edge":
            owner = op.operands[0].owner
            if isinstance(owner, ir.Block) or owner.operation.name not in _KIND_OF_OP:
                raise InputError(
                    f"{where}: agent.back_edge #{a['index']} must take a node "
                    "op's result (the loop's last node)."
                )
            src = attrs_of(owner.operation)["node"]
            edges.append(
                (
                    a["index"],
                    {
                        "src": src,
                        "dst": a["target"],
                        "payload_bytes": a["payload_bytes"],
                        "loop": {
                            "expected_iterations": a["expected_iterations"],
                            "max_iterations": a["max_iterations"],
                        },
                    },
                )
            )
            continue
        if op.name not in _KIND_OF_OP:
            raise InputError(
                f"{where}: op '{op.name}' is not an agent-graph node. A workload file holds "
                f"the high-level ops {sorted(_KIND_OF_OP)}; decomposed ops come from "
                "`hetopt compile`, not from input files."
            )
        node_id = a["node"]
        if node_id in nodes:
            raise InputError(
                f"{where}: node '{node_id}' appears twice. Node names must be unique in a graph."
            )
        node = _node_dict(op.name, a, f"{where}: node '{node_id}'")
        if op.name == "agent.call":
            callee = a["callee"]
            if callee not in functions:
                raise InputError(
                    f"{where}: node '{node_id}' calls @{callee}, which the module "
                    f"does not define. Functions: {sorted(functions)}."
                )
            if callee in stack:
                raise InputError(
                    f"{where}: node '{node_id}' calls @{callee} recursively; "
                    "nested agents must form a tree."
                )
            sub = _graph_dict(functions[callee], functions, source, (*stack, callee))
            node["subgraph"] = {
                k: v for k, v in sub.items() if k in ("name", "description", "nodes", "edges")
            }
        nodes[node_id] = node
        for value in op.operands:
            src, edge = _source_node(value, f"{where}: node '{node_id}'")
            if edge is None:
                continue
            ea = attrs_of(edge)
            edges.append(
                (
                    ea.get("index", 10**9 + len(edges)),
                    {
                        "src": src,
                        "dst": node_id,
                        "payload_bytes": ea["payload_bytes"],
                        "probability": ea["probability"],
                    },
                )
            )
    order = fa.get("node_order") or list(nodes)
    if sorted(order) != sorted(nodes):
        raise InputError(
            f"{where}: node_order {order} does not list the function's nodes "
            f"{sorted(nodes)}. Fix it or remove the attribute."
        )
    out: dict[str, Any] = {
        "name": name.rsplit("/", 1)[-1] if stack else name,
        "nodes": {n: nodes[n] for n in order},
        "edges": [e for _, e in sorted(edges, key=lambda t: t[0])],
    }
    if "description" in fa:
        out["description"] = fa["description"]
    if "request_rate_per_s" in fa:
        out["request_rate_per_s"] = fa["request_rate_per_s"]
    if "sla" in fa:
        out["sla"] = dict(fa["sla"])
    return out


def import_workload(text: str, source: str = "<mlir>") -> dict[str, Any]:
    """Read an agent module (text) into the workload dict format of
    :func:`hetopt.graph.ir.agent_graph_from_dict`.

    The top graph is the one function no ``agent.call`` calls. MLIR parses and verifies the
    module first, so unknown ops, missing attributes and wrong operand types are MLIR's errors.

    Raises
    ------
    InputError
        Malformed or unverifiable MLIR, or a module that is not an agent graph; the message
        names the file, line and op.
    """
    with agent_context():
        module = parse_module(text, source)
        top = top_function(module, source)
        name = attrs_of(top)["sym_name"]
        return _graph_dict(top, _functions(module), source, (name,))


def import_agent_graph(text: str, source: str = "<mlir>") -> AgentGraph:
    """Read an agent module (text) into an :class:`AgentGraph`."""
    from hetopt.graph.ir import agent_graph_from_dict

    return agent_graph_from_dict(import_workload(text, source), source)


def top_body(module: ir.Module) -> ir.Block:
    """The block of the module's top agent function (see :func:`top_function`)."""
    return top_function(module).regions[0].blocks[0]


def users_of(value: ir.Value) -> list[ir.Operation]:
    """The distinct operations that use ``value``, in use order."""
    seen: list[ir.Operation] = []
    for use in value.uses:
        owner = use.owner.operation
        if all(owner != s for s in seen):
            seen.append(owner)
    return seen


def read_mlir_workload(path: Path) -> dict[str, Any]:
    """Read an MLIR workload file (the reader :mod:`hetopt.mlir` registers for ``.mlir``).

    Raises
    ------
    InputError
        A file that is missing, empty, binary, not UTF-8, nested too deep, or not a valid agent
        module, naming the file.
    """
    source = read_text_input(path, "workload file", MAX_YAML_BYTES)
    _check_mlir_nesting(source, path)
    return import_workload(source, str(path))


MAX_MLIR_NESTING = 256  # regions/blocks deep; an agent graph needs a handful


def _check_mlir_nesting(text: str, path: Path) -> None:
    """Refuse MLIR nested deeper than :data:`MAX_MLIR_NESTING` before MLIR's recursive parser
    runs out of stack (5,000 nested modules crash the process with a segmentation fault).

    Braces inside string literals and comments are not counted.

    Examples
    --------
    >>> _check_mlir_nesting('module { func.func @f() { "x{{{" } }', Path("a.mlir"))
    """
    depth = 0
    in_string = escaped = False
    for number, line in enumerate(text.splitlines(), start=1):
        for k, ch in enumerate(line):
            if in_string:
                escaped = ch == "\\" and not escaped
                if ch == '"' and not escaped:
                    in_string = False
            elif ch == '"':
                in_string = True
            elif line.startswith("//", k):
                break  # a comment runs to the end of the line
            elif ch in "{(":
                depth += 1
                if depth > MAX_MLIR_NESTING:
                    raise InputError(
                        f"workload file {path}: line {number} is nested more than "
                        f"{MAX_MLIR_NESTING} levels deep; an agent graph needs a few. Flatten "
                        f"it (a nested agent is an agent.call to another func.func)."
                    )
            elif ch in "})":
                depth -= 1
