"""Decompose an agent graph into granular operators (§3 requirement 1: a fine-grained workload
model), each with an honest resource vector and its expected executions per request.

Decomposition rules
-------------------
* decoder LLM node ``X`` (``model_execution``, or ``control`` with a ``model``): ``X.prefill`` ->
  ``X.kv_transfer`` -> ``X.decode`` (prefill only when ``output_tokens == 0``). In-edges of the
  node attach to the prefill, out-edges leave from the decode. ``X.kv_transfer`` is not
  placeable; it carries the KV cache of the prompt (formula (3), batch 1) in ``payload_bytes`` and
  costs something only when prefill and decode run on different devices. The edges around it
  carry 0 bytes, so edge-based costs never count the KV cache twice.
* encoder model node (STT, TTS, classifier, embedding): one ``ENCODER`` operator with the node id.
* ``tool_call`` node ``X``: ``X.lookup`` (network wait and bytes) -> ``X.compute`` (parsing).
* ``memory_lookup``: one scan over ``vectors * scan_fraction`` vectors.
* ``general_compute`` / ``control`` / ``observation_store`` / ``kv_cache``: one operator with the
  node's ``work``.
* ``agent`` nodes are flattened recursively; child ids become ``"agent/child"``. Edges into the
  agent go to every source of its subgraph, edges out of it leave from every sink.

Expected visits
---------------
``visits`` is how often an operator runs per request; ``max_visits`` the same with every loop at
``max_iterations``. Three steps:

1. **Flow on the acyclic graph** (back edges removed). Sources have flow 1. An operator's flow is
   ``min(sum_in p_uv * flow(u), flow(idom))`` where ``idom`` is its immediate dominator (the last
   operator every path to it passes through; a virtual root above the sources has flow 1).
   The sum is right for alternative branches (``p < 1``) that merge again; the cap makes a join
   of *parallel* branches (``p = 1`` fan-out) count once, as an AND-join that waits for all its
   inputs fires once per fork. This generalises "max when all in-edges have probability 1, else
   sum": it is also right when the branches of a ``p < 1`` split re-join through ``p = 1`` edges
   (``max`` would under-count there).
2. **Loops.** A back edge ``u -> v`` with ``k`` iterations defines the loop body: the operators
   reachable from ``v`` that reach ``u`` without passing through ``v`` (the natural loop; it
   includes the bodies of loops nested inside). A body operator is *pass-through* if it can still
   reach a true sink of the graph without taking the back edges into ``v``, else *loop-only*.
   Pass-through operators (``llm`` in the voice agent) run ``1 + k`` times their flow; loop-only
   operators (``web_search``) run only on the iterations that take the back edge,
   ``k * flow(x) * flow(v) / flow(u)`` (the ratio makes the back edge's own source run exactly
   ``k`` times per entry). If no body operator can reach a sink (the loop's last pass is the end
   of the request, as in ``a -> b -> a``), every body operator is pass-through.
3. **Nesting.** Loops with different entries multiply (an inner loop runs completely on every pass
   of the outer one: ``k`` counts iterations *per entry into the loop*); several back edges into
   the same entry add (``1 + k1 + k2``: each return re-runs the entry once).

Examples
--------
>>> from hetopt.graph.ir import GraphBuilder, Loop
>>> g = (GraphBuilder("voice")
...      .add_node("llm", "model_execution", model="llama-3-70b", input_tokens=1024,
...                output_tokens=256)
...      .add_node("search", "tool_call",
...                lookup={"latency_s": 0.35, "request_bytes": 512, "response_bytes": 20000})
...      .add_node("tts", "model_execution", model="xtts-v2", tokens=256)
...      .add_edge("llm", "search").add_edge("llm", "tts")
...      .add_edge("search", "llm", loop=Loop(expected_iterations=1.0, max_iterations=2))
...      .build())
>>> ops = decompose(g)
>>> ops.op("llm.prefill").visits, ops.op("search.lookup").visits, ops.op("tts").visits
(2.0, 1.0, 1.0)
>>> ops.op("llm.kv_transfer").payload_bytes == 327680 * 1024
True
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import networkx as nx

from hetopt.errors import InputError, UnknownNameError
from hetopt.graph.architectures import (
    BYTES_PER_ELEMENT,
    Architecture,
    load_architectures,
    unknown_model_message,
)
from hetopt.graph.ir import AgentGraph, Node, TaskKind
from hetopt.graph.operators import (
    LlmWork,
    OpEdge,
    Operator,
    OperatorGraph,
    OpKind,
    OpLoop,
    Work,
)

log = logging.getLogger(__name__)

SERIALIZATION_FLOPS_PER_BYTE = 100.0
"""Scalar work of building a request and reading a response on the host (HTTP framing, TLS,
JSON): CPython's ``json`` runs at about 30-100 cycles per byte, so ~100 operations per byte is a
generous round figure. Only matters for very large tool payloads."""

PARSE_FLOPS_PER_BYTE = 10.0
"""Default parse cost of a tool response when the node gives no ``compute`` block."""


# --------------------------------------------------------------------------------------------
# Per-node operators
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _OpSpec:
    """An operator before visits are known."""

    id: str
    kind: OpKind
    node_id: str
    llm: LlmWork | None = None
    work: Work | None = None
    payload_bytes: float = 0.0
    devices: tuple[str, ...] | None = None


@dataclass
class _Flat:
    """Flattened operator graph under construction."""

    specs: list[_OpSpec]
    edges: list[tuple[str, str, float, float]]  # src, dst, payload_bytes, probability
    backs: list[tuple[str, str, float, float, int]]  # src, dst, payload, expected, max


def _arch_of(node: Node, path: str, archs: Mapping[str, Architecture], source: str) -> Architecture:
    name = str(node.params["model"])
    key = name.strip().lower()
    if key not in archs:
        raise UnknownNameError(unknown_model_message(name, archs, f"{source}: node '{path}'"))
    return archs[key]


def _llm_ops(
    node: Node, path: str, arch: Architecture, devices: tuple[str, ...] | None, source: str
) -> tuple[list[_OpSpec], list[tuple[str, str, float, float]]]:
    p = node.params
    where = f"{source}: node '{path}'"
    precision = str(p["precision"])
    bpe = BYTES_PER_ELEMENT[precision]
    weights = arch.weight_bytes(precision)
    if arch.family == "encoder":
        if "tokens" not in p:
            raise InputError(
                f"{where}: model '{arch.name}' is an encoder (one forward pass); give 'tokens' "
                "instead of 'input_tokens'/'output_tokens'."
            )
        tokens = int(p["tokens"])
        activations = 2.0 * tokens * arch.d_model * arch.n_layers * bpe
        work = Work(
            flops=arch.forward_flops(tokens),
            mem_bytes=weights + activations,
            footprint_bytes=weights,
            precision=precision,
        )
        return [_OpSpec(path, OpKind.ENCODER, path, work=work, devices=devices)], []
    if "input_tokens" not in p:
        raise InputError(
            f"{where}: model '{arch.name}' is a decoder LLM; give 'input_tokens' and "
            "'output_tokens' instead of 'tokens'."
        )
    n_in, n_out = int(p["input_tokens"]), int(p["output_tokens"])
    llm = LlmWork(arch=arch, precision=precision, input_tokens=n_in, output_tokens=n_out)
    kv_in = arch.kv_cache_bytes(n_in, 1, precision)
    kv_full = arch.kv_cache_bytes(n_in + n_out, 1, precision)
    prefill = _OpSpec(
        f"{path}.prefill",
        OpKind.PREFILL,
        path,
        llm=llm,
        devices=devices,
        work=Work(
            flops=arch.prefill_flops(n_in),
            mem_bytes=weights + kv_in,
            footprint_bytes=weights + kv_full,
            precision=precision,
        ),
    )
    if n_out == 0:
        return [prefill], []
    kv_per_token = arch.kv_bytes_per_token(precision)
    # Each decode step reads the weights and the KV cache so far (batch 1).
    kv_read = kv_per_token * (n_out * n_in + n_out * (n_out - 1) / 2.0)
    decode = _OpSpec(
        f"{path}.decode",
        OpKind.DECODE,
        path,
        llm=llm,
        devices=devices,
        work=Work(
            flops=arch.decode_flops(n_in, n_out),
            mem_bytes=n_out * weights + kv_read,
            footprint_bytes=weights + kv_full,
            precision=precision,
        ),
    )
    transfer = _OpSpec(
        f"{path}.kv_transfer", OpKind.KV_TRANSFER, path, payload_bytes=kv_in, devices=None
    )
    edges = [(prefill.id, transfer.id, 0.0, 1.0), (transfer.id, decode.id, 0.0, 1.0)]
    return [prefill, transfer, decode], edges


def _precision_for_bytes(bpe: float) -> str:
    for name in ("fp32", "fp16", "fp8"):
        if BYTES_PER_ELEMENT[name] == bpe:
            return name
    return "fp32"


def _node_ops(
    node: Node,
    path: str,
    archs: Mapping[str, Architecture],
    devices: tuple[str, ...] | None,
    source: str,
) -> tuple[list[_OpSpec], list[tuple[str, str, float, float]]]:
    """Operators and internal edges of one non-agent node, first operator first, last last."""
    p = node.params
    if "model" in p:  # model_execution, or a control node driven by an LLM
        return _llm_ops(node, path, _arch_of(node, path, archs, source), devices, source)
    if node.kind is TaskKind.TOOL:
        lookup: Mapping[str, Any] = p["lookup"]
        request, response = float(lookup["request_bytes"]), float(lookup["response_bytes"])
        net = request + response
        look = _OpSpec(
            f"{path}.lookup",
            OpKind.TOOL_LOOKUP,
            path,
            devices=devices,
            work=Work(
                flops=SERIALIZATION_FLOPS_PER_BYTE * net,
                mem_bytes=net,
                net_bytes=net,
                static_latency_s=float(lookup["latency_s"]),
                precision="fp32",
            ),
        )
        compute: Mapping[str, Any] | None = p.get("compute")
        if compute is not None:
            cwork = Work(
                flops=float(compute["flops"]),
                mem_bytes=float(compute["mem_bytes"]),
                precision="fp32",
            )
        else:
            cwork = Work(
                flops=PARSE_FLOPS_PER_BYTE * response, mem_bytes=response, precision="fp32"
            )
        comp = _OpSpec(f"{path}.compute", OpKind.TOOL_COMPUTE, path, work=cwork, devices=devices)
        return [look, comp], [(look.id, comp.id, response, 1.0)]
    if node.kind is TaskKind.MEMORY:
        scanned = float(p["vectors"]) * float(p["scan_fraction"])
        dim, bpe = float(p["dim"]), float(p["bytes_per_element"])
        work = Work(
            flops=2.0 * dim * scanned,
            mem_bytes=dim * scanned * bpe,
            footprint_bytes=dim * float(p["vectors"]) * bpe,
            precision=_precision_for_bytes(bpe),
        )
        return [_OpSpec(path, OpKind.MEMORY_LOOKUP, path, work=work, devices=devices)], []
    kind = {
        TaskKind.COMPUTE: OpKind.COMPUTE,
        TaskKind.CONTROL: OpKind.CONTROL,
        TaskKind.OBSERVATION: OpKind.OBSERVATION,
        TaskKind.KV_CACHE: OpKind.KV_CACHE,
    }
    w: Mapping[str, Any] = p["work"]
    work = Work(
        flops=float(w["flops"]),
        mem_bytes=float(w["mem_bytes"]),
        footprint_bytes=float(w["footprint_bytes"]),
        static_latency_s=float(w["static_latency_s"]),
        precision="fp32",
    )
    return [_OpSpec(path, kind[node.kind], path, work=work, devices=devices)], []


def graph_ends(graph: AgentGraph) -> tuple[list[str], list[str]]:
    """Source nodes (no forward in-edge) and exit nodes (true sinks, else forward sinks): where
    edges into and out of an agent node attach."""
    has_fwd_in = {e.dst for e in graph.edges if not e.is_back}
    has_out = {e.src for e in graph.edges}
    has_fwd_out = {e.src for e in graph.edges if not e.is_back}
    ids = [n.id for n in graph.nodes]
    sources = [i for i in ids if i not in has_fwd_in]
    sinks = [i for i in ids if i not in has_out] or [i for i in ids if i not in has_fwd_out]
    return sources, sinks


def _flatten(
    graph: AgentGraph,
    prefix: str,
    inherited: tuple[str, ...] | None,
    archs: Mapping[str, Architecture],
    source: str,
    flat: _Flat,
) -> tuple[list[str], list[str]]:
    """Append ``graph``'s operators to ``flat``; return its entry and exit operator ids."""
    first: dict[str, list[str]] = {}
    last: dict[str, list[str]] = {}
    for node in graph.nodes:
        path = f"{prefix}{node.id}"
        devices = node.devices if node.devices is not None else inherited
        if node.kind is TaskKind.AGENT:
            assert node.subgraph is not None  # guaranteed by Node
            first[node.id], last[node.id] = _flatten(
                node.subgraph, f"{path}/", devices, archs, source, flat
            )
            continue
        specs, internal = _node_ops(node, path, archs, devices, source)
        flat.specs.extend(specs)
        flat.edges.extend(internal)
        first[node.id], last[node.id] = [specs[0].id], [specs[-1].id]
    for e in graph.edges:
        srcs, dsts = last[e.src], first[e.dst]
        if e.loop is not None:
            if len(srcs) > 1 or len(dsts) > 1:
                raise InputError(
                    f"{source}: back edge '{prefix}{e.src} -> {prefix}{e.dst}' connects an agent "
                    f"with several exits or entries ({srcs} -> {dsts}); the loop count would be "
                    "ambiguous. Give the agent's subgraph a single sink (and source), e.g. a "
                    "general_compute node that joins its branches."
                )
            flat.backs.append(
                (
                    srcs[0],
                    dsts[0],
                    e.payload_bytes,
                    e.loop.expected_iterations,
                    e.loop.max_iterations,
                )
            )
        else:
            flat.edges.extend((s, d, e.payload_bytes, e.probability) for s in srcs for d in dsts)
    sources, sinks = graph_ends(graph)
    entries = [op for n in sources for op in first[n]]
    exits = [op for n in sinks for op in last[n]]
    return entries, exits


# --------------------------------------------------------------------------------------------
# Visits
# --------------------------------------------------------------------------------------------

_ROOT = "\x00root"


def _reach(
    adj: Mapping[str, Iterable[str]], start: Iterable[str], blocked: frozenset[str] = frozenset()
) -> set[str]:
    """Nodes reachable from ``start`` (inclusive) along ``adj``, not expanding ``blocked``."""
    seen = set(start)
    queue = deque(seen)
    while queue:
        x = queue.popleft()
        if x in blocked:
            continue
        for y in adj.get(x, ()):
            if y not in seen:
                seen.add(y)
                queue.append(y)
    return seen


@dataclass(frozen=True)
class _LoopInfo:
    back_src: str
    back_dst: str
    payload_bytes: float
    expected: float
    maximum: int
    body: frozenset[str]


def _flow(order: list[str], fwd: nx.DiGraph) -> dict[str, float]:
    """Step 1: flow per pass on the acyclic graph (sum of branch flows, capped at the dominator)."""
    rooted = fwd.copy()
    for x in order:
        if fwd.in_degree(x) == 0:
            rooted.add_edge(_ROOT, x, p=1.0)
    idom = nx.immediate_dominators(rooted, _ROOT)
    flow: dict[str, float] = {_ROOT: 1.0}
    for x in order:
        total = sum(flow[u] * d["p"] for u, _, d in rooted.in_edges(x, data=True))
        flow[x] = min(total, flow[idom[x]])
    del flow[_ROOT]
    return flow


def _loop_bodies(
    order: list[str], fwd: nx.DiGraph, backs: list[tuple[str, str, float, float, int]]
) -> list[_LoopInfo]:
    succ_fwd = {x: list(fwd.successors(x)) for x in order}
    infos = []
    for i, (u, v, payload, expected, maximum) in enumerate(backs):
        # Predecessors over forward edges and every *other* back edge (so nested loops belong).
        pred: dict[str, list[str]] = {x: list(fwd.predecessors(x)) for x in order}
        for j, (bu, bv, *_rest) in enumerate(backs):
            if j != i:
                pred[bv].append(bu)
        natural = _reach(pred, [u], blocked=frozenset([v])) | {v}
        body = natural & _reach(succ_fwd, [v])
        infos.append(_LoopInfo(u, v, payload, expected, maximum, frozenset(body)))
    return infos


def _visits(
    order: list[str], fwd: nx.DiGraph, loops: list[_LoopInfo], true_sinks: list[str], use_max: bool
) -> dict[str, float]:
    """Steps 2 and 3: loop multipliers on top of the per-pass flow."""
    flow = _flow(order, fwd)
    visits = dict(flow)
    groups: dict[str, list[_LoopInfo]] = {}
    for lp in loops:
        groups.setdefault(lp.back_dst, []).append(lp)
    for entry, group in groups.items():
        # Successors over forward edges and every back edge except this group's.
        succ: dict[str, list[str]] = {x: list(fwd.successors(x)) for x in order}
        for lp in loops:
            if lp.back_dst != entry:
                succ[lp.back_src].append(lp.back_dst)
        members = frozenset().union(*(lp.body for lp in group))
        can_exit = {x for x in members if _reach(succ, [x]) & set(true_sinks)}
        if not can_exit:
            can_exit = set(members)
        for x in members:
            mine = [lp for lp in group if x in lp.body]
            ks = [float(lp.maximum) if use_max else lp.expected for lp in mine]
            if x in can_exit:
                factor = 1.0 + sum(ks)
            else:
                factor = sum(
                    k * flow[entry] / flow[lp.back_src] for k, lp in zip(ks, mine, strict=True)
                )
            visits[x] *= factor
    return visits


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def decompose(
    graph: AgentGraph,
    architectures: Mapping[str, Architecture] | None = None,
    source: str | None = None,
) -> OperatorGraph:
    """Decompose an agent graph into operators with resource vectors and expected visits.

    Parameters
    ----------
    graph
        A validated agent graph.
    architectures
        Model architectures keyed by lower-case name; the packaged table when omitted.
    source
        File name for error messages; ``graph.source`` (set by the loaders), else the graph
        name, when omitted.

    Returns
    -------
    OperatorGraph

    Raises
    ------
    UnknownNameError
        A node names a model that ``architectures`` does not know.
    InputError
        A decoder model given ``tokens`` (or an encoder given ``input_tokens``), or a back edge
        on an agent with several exits.
    """
    archs = {k.lower(): a for k, a in (architectures or load_architectures()).items()}
    where = source or graph.source or f"graph '{graph.name}'"
    flat = _Flat(specs=[], edges=[], backs=[])
    _flatten(graph, "", None, archs, where, flat)

    order = [s.id for s in flat.specs]
    fwd = nx.DiGraph()
    fwd.add_nodes_from(order)
    payloads: dict[tuple[str, str], float] = {}
    for s, d, payload, p in flat.edges:
        # Node edges are unique per node pair and operators belong to one node, so operator
        # pairs are unique too.
        payloads[(s, d)] = payload
        fwd.add_edge(s, d, p=p)
    assert nx.is_directed_acyclic_graph(fwd), "forward operator edges must be acyclic"
    topo = list(
        nx.lexicographical_topological_sort(
            fwd, key={o: i for i, o in enumerate(order)}.__getitem__
        )
    )
    loops = _loop_bodies(topo, fwd, flat.backs)
    has_out = {s for s, _ in payloads} | {b[0] for b in flat.backs}
    true_sinks = [o for o in topo if o not in has_out]
    sinks = true_sinks or [o for o in topo if fwd.out_degree(o) == 0]
    sources = [o for o in topo if fwd.in_degree(o) == 0]
    expected = _visits(topo, fwd, loops, true_sinks or sinks, use_max=False)
    worst = _visits(topo, fwd, loops, true_sinks or sinks, use_max=True)

    spec_of = {s.id: s for s in flat.specs}
    ops = tuple(
        Operator(
            id=o,
            kind=spec_of[o].kind,
            node_id=spec_of[o].node_id,
            visits=expected[o],
            max_visits=worst[o],
            llm=spec_of[o].llm,
            work=spec_of[o].work,
            payload_bytes=spec_of[o].payload_bytes,
            devices=spec_of[o].devices,
        )
        for o in topo
    )
    position = {o: i for i, o in enumerate(topo)}
    op_loops = tuple(
        OpLoop(
            back_src=lp.back_src,
            back_dst=lp.back_dst,
            payload_bytes=lp.payload_bytes,
            expected_iterations=lp.expected,
            max_iterations=lp.maximum,
            body=tuple(sorted(lp.body, key=position.__getitem__)),
        )
        for lp in loops
    )
    edges = tuple(
        OpEdge(s, d, payloads[(s, d)], fwd.edges[s, d]["p"])
        for s, d in sorted(payloads, key=lambda sd: (position[sd[0]], position[sd[1]]))
    )
    result = OperatorGraph(
        name=graph.name,
        ops=ops,
        edges=edges,
        loops=op_loops,
        sinks=tuple(sinks),
        sources=tuple(sources),
    )
    log.debug(
        "decomposed %s into %d operators, %d edges, %d loops",
        graph.name,
        len(ops),
        len(edges),
        len(op_loops),
    )
    return result
