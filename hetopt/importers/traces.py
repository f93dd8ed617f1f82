"""Derive a hetopt workload from OpenTelemetry GenAI traces: graph, branches, loops, sizes, arrivals.

Why one module: the derivation rules below are one chain (span roles -> node visits -> graph
-> workload fields), and this docstring states them in one place next to the code that applies
them; split, each half would need the other's private visit and profile types.

Conventions read
----------------
A trace is one agent request; its root span is the request. Spans are recognised by the
OpenTelemetry GenAI semantic conventions and, where those say nothing, by OpenInference's:

* **node**: a span with ``graph.node.name`` (OpenInference's ``GRAPH_NODE_NAME``; LangGraph's
  ``langgraph_node`` metadata; ``langgraph.node`` is accepted too). Its value is the node's id.
  ``langgraph.step`` (LangGraph's super-step), when present, orders the nodes and makes nodes of
  one step parallel; otherwise the start time orders them.
* **LLM call**: ``gen_ai.operation.name`` ``chat``, ``text_completion`` or ``generate_content``
  (or ``openinference.span.kind=LLM``), which must carry ``gen_ai.request.model`` (or
  ``gen_ai.response.model``), ``gen_ai.usage.input_tokens`` and ``gen_ai.usage.output_tokens``.
* **tool or retrieval call**: ``gen_ai.operation.name`` ``execute_tool`` or ``retrieval`` (or
  OpenInference ``TOOL`` / ``RETRIEVER``); its duration is its latency.
* **nested agent**: node spans below a node span (usually under an ``invoke_agent`` span) are
  that node's subgraph; the node becomes ``kind: agent`` with a ``subgraph``.

Other spans (routing functions, runnable sequences) are transparent: their children count for
the nearest node above them.

Derivation rules
----------------
* The graph: the nodes seen and the transitions between consecutive nodes of each run of a graph
  (a request for the top level, one visit of the parent node for a subgraph).
* Loops: a depth-first search from the first node, following successors in the order they were
  first seen, marks an edge into a node on the search stack as a back edge; it gets
  ``loop: {expected_iterations: mean traversals per run, max_iterations: observed maximum}``.
* Branches: the share of visits of ``s`` followed by each successor ``d`` (and by the end of
  the run), ``count(s -> d) / visits(s)``, is what a trace counts; hetopt's edge probabilities
  are per pass of the acyclic part, so the shares go through
  :func:`hetopt.importers.loops.pass_probabilities` (the one home of that conversion, shared
  with the LangGraph importer's ``branches`` annotation): successors from which ``s`` is reached
  again share the passes that continue the loop, the others share the loop's exits. Written
  only when below 1.
* Sizes: an LLM node's calls give its model (the most frequent) and its token counts. With at
  most :data:`EXACT_BUCKETS` distinct ``(input, output)`` pairs each pair is a size bucket
  weighted by its share; with at least :data:`MIN_CALLS_FOR_BUCKETS` calls they are cut into
  :data:`QUANTILE_BUCKETS` equal-count bins by total tokens, each bucket the bin's mean input
  and output (so the weighted mean equals the sample mean); otherwise the means. A node at
  either end of a back edge gets the means (hetopt does not split a node that closes a loop
  into buckets).
* Tools: a node whose visits call tools or retrievers is ``kind: tool_call`` with ``latency_s``
  the mean per visit of the summed call durations; its coefficient of variation is reported, and
  the visit-weighted mean over tool nodes is suggested as ``replay.tool_latency_cv``. Retrieval is
  written as a tool call too: a trace shows its latency, not its index. Request and response
  bytes are not in the GenAI conventions: :data:`DEFAULT_REQUEST_BYTES` and
  :data:`DEFAULT_RESPONSE_BYTES`; every edge carries :data:`DEFAULT_PAYLOAD_BYTES`.
* A node with neither is ``general_compute`` with a small fixed work. A node that runs a
  subgraph is an agent and one that calls an LLM an LLM node, whatever else it calls; the
  other calls are then only in ``profile.json``.
* Arrivals: root span start times, from the first; the rate is ``(n - 1) / span``, and the
  inter-arrival coefficient of variation is compared with a Poisson process's 1 (within three
  standard errors, ``3 / sqrt(n - 1)``).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hetopt.errors import InputError
from hetopt.importers.loops import descendants, dfs_back_edges, pass_probabilities
from hetopt.importers.otlp import SpanRecord, read_otlp_json

__all__ = [
    "DEFAULT_PAYLOAD_BYTES",
    "EdgeProfile",
    "GraphProfile",
    "NodeProfile",
    "TraceProfile",
    "derive_workload",
    "profile_traces",
]

EXACT_BUCKETS = 4
QUANTILE_BUCKETS = 3
MIN_CALLS_FOR_BUCKETS = 30
DEFAULT_PAYLOAD_BYTES = 2048.0
DEFAULT_REQUEST_BYTES = 1024.0
DEFAULT_RESPONSE_BYTES = 4096.0
GENERAL_WORK = {"flops": 1.0e5, "mem_bytes": 1.0e5}

_NODE_KEYS = ("graph.node.name", "langgraph.node")
_OP = "gen_ai.operation.name"
_OI_KIND = "openinference.span.kind"
_MODEL_KEYS = ("gen_ai.request.model", "gen_ai.response.model")
_IN, _OUT = "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"
_LLM_OPS = ("chat", "text_completion", "generate_content")
_TOOL_OPS = ("execute_tool", "retrieval")
_END = "__end__"


def _conventions() -> tuple[str, str, str, str]:
    """The OpenInference node attribute and the LLM, tool and retriever span kinds."""
    from openinference.semconv.trace import OpenInferenceSpanKindValues as Kind
    from openinference.semconv.trace import SpanAttributes

    return (
        SpanAttributes.GRAPH_NODE_NAME,
        Kind.LLM.value,
        Kind.TOOL.value,
        Kind.RETRIEVER.value,
    )


@dataclass(frozen=True)
class EdgeProfile:
    """A transition seen in the traces.

    Attributes
    ----------
    src, dst
        Node ids.
    count
        Times taken.
    probability
        Per-pass probability (see the module docstring); 1.0 for a back edge.
    loop_counts
        For a back edge: traversals in each run of the graph; empty otherwise.
    """

    src: str
    dst: str
    count: int
    probability: float
    loop_counts: tuple[int, ...] = ()

    @property
    def is_back(self) -> bool:
        """Whether the edge closes a loop."""
        return bool(self.loop_counts)


@dataclass(frozen=True)
class NodeProfile:
    """What the traces say about one node.

    Attributes
    ----------
    name
        The node id (``graph.node.name``).
    visits
        Times the node ran.
    models
        Model of each LLM call.
    tokens
        ``(input_tokens, output_tokens)`` of each LLM call.
    tool_latency_s
        Per visit that called tools or retrievers: the summed call durations.
    tools
        Tool and retriever names called.
    subgraph
        The nested graph, for a node that runs an agent.
    """

    name: str
    visits: int
    models: tuple[str, ...] = ()
    tokens: tuple[tuple[int, int], ...] = ()
    tool_latency_s: tuple[float, ...] = ()
    tools: tuple[str, ...] = ()
    subgraph: GraphProfile | None = None

    @property
    def kind(self) -> str:
        """``agent``, ``model_execution``, ``tool_call`` or ``general_compute``."""
        if self.subgraph is not None:
            return "agent"
        if self.tokens:
            return "model_execution"
        return "tool_call" if self.tool_latency_s else "general_compute"

    @property
    def model(self) -> str | None:
        """The most frequent model (first seen on ties)."""
        return Counter(self.models).most_common(1)[0][0] if self.models else None

    @property
    def latency_cv(self) -> float:
        """Coefficient of variation of the per-visit tool latency (0 with fewer than 2)."""
        xs = self.tool_latency_s
        if len(xs) < 2 or statistics.fmean(xs) <= 0:
            return 0.0
        return statistics.stdev(xs) / statistics.fmean(xs)


@dataclass(frozen=True)
class GraphProfile:
    """A graph as the traces show it: its nodes in order of first visit, its edges, its runs."""

    nodes: tuple[NodeProfile, ...]
    edges: tuple[EdgeProfile, ...]
    runs: int

    def node(self, name: str) -> NodeProfile:
        """The node called ``name``."""
        return next(n for n in self.nodes if n.name == name)


@dataclass(frozen=True)
class TraceProfile:
    """Everything derived from a trace set.

    Attributes
    ----------
    name
        The workload's name.
    graph
        The top-level graph.
    arrivals_s
        Request start times, seconds from the first.
    spans
        Spans read.
    source
        The trace files, for messages.
    """

    name: str
    graph: GraphProfile
    arrivals_s: tuple[float, ...]
    spans: int
    source: str = "<traces>"

    @property
    def requests(self) -> int:
        """Requests (traces) seen."""
        return len(self.arrivals_s)

    @property
    def rate_per_s(self) -> float:
        """Arrival rate: ``(n - 1)`` gaps over the time from first to last arrival."""
        span = self.arrivals_s[-1] - self.arrivals_s[0] if self.arrivals_s else 0.0
        return (self.requests - 1) / span if span > 0 else 1.0

    @property
    def interarrival_cv(self) -> float:
        """Coefficient of variation of the gaps between arrivals (1 for a Poisson process)."""
        gaps = [b - a for a, b in zip(self.arrivals_s, self.arrivals_s[1:], strict=False)]
        if len(gaps) < 2 or statistics.fmean(gaps) <= 0:
            return float("nan")
        return statistics.stdev(gaps) / statistics.fmean(gaps)

    @property
    def poisson_fits(self) -> bool:
        """Whether the gaps' CV is within three standard errors (``3/sqrt(n-1)``) of 1."""
        cv = self.interarrival_cv
        return not math.isnan(cv) and abs(cv - 1.0) <= 3.0 / math.sqrt(self.requests - 1)

    @property
    def tool_latency_cv(self) -> float:
        """Visit-weighted mean CV of the tool nodes' latencies (for ``replay.tool_latency_cv``)."""
        tools = [n for n in _all_nodes(self.graph) if n.kind == "tool_call"]
        visits = sum(len(n.tool_latency_s) for n in tools)
        if not visits:
            return 0.0
        return sum(n.latency_cv * len(n.tool_latency_s) for n in tools) / visits

    def workload_data(self) -> dict[str, Any]:
        """The workload mapping (the workload file format) that :func:`load_workload` reads."""
        return {
            "name": self.name,
            "description": (
                f"Derived by hetopt profile from {self.requests} traced requests "
                f"({self.spans} spans) in {self.source}."
            ),
            "request_rate_per_s": round(self.rate_per_s, 6),
            **_graph_data(self.graph),
        }

    def annotations(self) -> dict[str, Any]:
        """What these traces measured, as annotations of the agent's LangGraph graph
        (:func:`hetopt.importers.from_langgraph`, ``traces=``; an annotation file's ``traces:``
        key): the request rate, each node's kind and parameters (a nested agent's under its
        ``subgraph``; ``assumed`` says which of a node's fields are defaults rather than
        measured), each routing node's share of visits per successor (``__end__`` for the end
        of a run), and each loop's bound.

        Examples
        --------
        A router that picked the tool on one of its two visits and ended the run on the other:

        >>> from hetopt.importers.otlp import SpanRecord as S
        >>> llm = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "llama-3-8b",
        ...        "gen_ai.usage.input_tokens": 512, "gen_ai.usage.output_tokens": 64}
        >>> def node(i, name, at):
        ...     return S("t", i, "r", name, at, at + 1, {"graph.node.name": name})
        >>> spans = [S("t", "r", "", "invoke_agent", 0, 9), node("a1", "agent", 0),
        ...          S("t", "l1", "a1", "chat", 0, 1, llm), node("t1", "tool", 2),
        ...          S("t", "x", "t1", "search", 2, 3, {"gen_ai.operation.name": "execute_tool"}),
        ...          node("a2", "agent", 4), S("t", "l2", "a2", "chat", 4, 5, llm)]
        >>> notes = derive_workload(spans, "demo").annotations()
        >>> notes["nodes"]["agent"]["model"], notes["branches"], notes["loops"]
        ('llama-3-8b', {'agent': {'tool': 0.5, '__end__': 0.5}}, {'tool -> agent': {'expected_iterations': 1.0, 'max_iterations': 1}})
        """
        return {"request_rate_per_s": round(self.rate_per_s, 6), **_graph_notes(self.graph)}

    def summary(self) -> dict[str, Any]:
        """The numbers behind the workload, as JSON-ready data (``profile.json``)."""
        return {
            "name": self.name,
            "source": self.source,
            "requests": self.requests,
            "spans": self.spans,
            "rate_per_s": self.rate_per_s,
            "interarrival_cv": self.interarrival_cv,
            "poisson_fits": self.poisson_fits,
            "tool_latency_cv": self.tool_latency_cv,
            "graph": _graph_summary(self.graph),
        }


def _all_nodes(graph: GraphProfile) -> Iterable[NodeProfile]:
    for n in graph.nodes:
        yield n
        if n.subgraph is not None:
            yield from _all_nodes(n.subgraph)


def _graph_summary(graph: GraphProfile) -> dict[str, Any]:
    nodes = {}
    for n in graph.nodes:
        entry: dict[str, Any] = {"kind": n.kind, "visits": n.visits}
        if n.tokens:
            entry |= {
                "model": n.model,
                "models": dict(Counter(n.models)),
                "calls": len(n.tokens),
                "mean_input_tokens": statistics.fmean(t[0] for t in n.tokens),
                "mean_output_tokens": statistics.fmean(t[1] for t in n.tokens),
            }
        if n.tool_latency_s:
            entry |= {
                "tools": sorted(set(n.tools)),
                "mean_latency_s": statistics.fmean(n.tool_latency_s),
                "latency_cv": n.latency_cv,
            }
        if n.subgraph is not None:
            entry["subgraph"] = _graph_summary(n.subgraph)
        nodes[n.name] = entry
    edges = [
        {"src": e.src, "dst": e.dst, "count": e.count, "probability": e.probability}
        | (
            {
                "loop_mean": statistics.fmean(e.loop_counts),
                "loop_max": max(e.loop_counts),
            }
            if e.is_back
            else {}
        )
        for e in graph.edges
    ]
    return {"runs": graph.runs, "nodes": nodes, "edges": edges}


# --------------------------------------------------------------------------------------------
# Writing the workload mapping
# --------------------------------------------------------------------------------------------


def size_fields(tokens: Sequence[tuple[int, int]], bucketed: bool = True) -> dict[str, Any]:
    """The token fields of an LLM node: exact buckets, quantile buckets, or the means.

    Examples
    --------
    >>> size_fields([(512, 128)] * 4 + [(2048, 512)])
    {'size_buckets': [{'input_tokens': 512, 'output_tokens': 128, 'weight': 0.8}, {'input_tokens': 2048, 'output_tokens': 512, 'weight': 0.2}]}
    >>> size_fields([(100, 10), (300, 30)], bucketed=False)
    {'input_tokens': 200, 'output_tokens': 20}
    """
    distinct = Counter(tokens)
    if len(distinct) == 1:
        (n_in, n_out), _ = distinct.most_common(1)[0]
        return {"input_tokens": n_in, "output_tokens": n_out}
    n = len(tokens)
    if bucketed and len(distinct) <= EXACT_BUCKETS:
        buckets = [
            {"input_tokens": i, "output_tokens": o, "weight": c / n}
            for (i, o), c in sorted(distinct.items())
        ]
        return {"size_buckets": buckets}
    if bucketed and n >= MIN_CALLS_FOR_BUCKETS:
        ordered = sorted(tokens, key=lambda t: (t[0] + t[1], t))
        cuts = [round(k * n / QUANTILE_BUCKETS) for k in range(QUANTILE_BUCKETS + 1)]
        buckets = []
        for a, b in zip(cuts, cuts[1:], strict=False):
            part = ordered[a:b]
            buckets.append(
                {
                    "input_tokens": max(1, round(statistics.fmean(t[0] for t in part))),
                    "output_tokens": round(statistics.fmean(t[1] for t in part)),
                    "weight": len(part) / n,
                }
            )
        return {"size_buckets": buckets}
    return {
        "input_tokens": max(1, round(statistics.fmean(t[0] for t in tokens))),
        "output_tokens": round(statistics.fmean(t[1] for t in tokens)),
    }


def _node_data(node: NodeProfile, closes_loop: bool) -> dict[str, Any]:
    kind = node.kind
    if kind == "agent":
        assert node.subgraph is not None
        return {"kind": "agent", "subgraph": _graph_data(node.subgraph)}
    if kind == "model_execution":
        return {
            "kind": kind,
            "model": node.model,
            **size_fields(node.tokens, bucketed=not closes_loop),
        }
    if kind == "tool_call":
        return {
            "kind": kind,
            "lookup": {
                "latency_s": round(statistics.fmean(node.tool_latency_s), 6),
                "request_bytes": DEFAULT_REQUEST_BYTES,
                "response_bytes": DEFAULT_RESPONSE_BYTES,
            },
        }
    return {"kind": kind, "work": dict(GENERAL_WORK)}


def _graph_data(graph: GraphProfile) -> dict[str, Any]:
    on_back = {x for e in graph.edges if e.is_back for x in (e.src, e.dst)}
    nodes = {n.name: _node_data(n, n.name in on_back) for n in graph.nodes}
    edges = []
    for e in graph.edges:
        edge: dict[str, Any] = {"src": e.src, "dst": e.dst, "payload_bytes": DEFAULT_PAYLOAD_BYTES}
        if e.is_back:
            edge["loop"] = {
                "expected_iterations": round(statistics.fmean(e.loop_counts), 6),
                "max_iterations": max(e.loop_counts),
            }
        elif e.probability < 1.0:  # floored to 6 digits: the branches never sum above 1
            edge["probability"] = math.floor(e.probability * 1e6) / 1e6
        edges.append(edge)
    return {"nodes": nodes, "edges": edges}


def _flat_work() -> str:
    return ", ".join(f"{k} {v:g}" for k, v in GENERAL_WORK.items())


def _graph_notes(graph: GraphProfile) -> dict[str, Any]:
    """``nodes``, ``branches`` (share of visits per successor) and ``loops`` of one graph, in
    the LangGraph importer's annotation format."""
    data = _graph_data(graph)
    nodes: dict[str, Any] = {}
    for n in graph.nodes:
        if n.subgraph is not None:
            nodes[n.name] = {"kind": "agent", "subgraph": _graph_notes(n.subgraph)}
            continue
        nodes[n.name] = dict(data["nodes"][n.name])
        if n.kind == "tool_call":
            nodes[n.name]["assumed"] = (
                f"request_bytes {DEFAULT_REQUEST_BYTES:g} and response_bytes "
                f"{DEFAULT_RESPONSE_BYTES:g} are defaults (traces carry no byte counts)"
            )
        elif n.kind == "general_compute":
            nodes[n.name]["assumed"] = (
                f"its work {_flat_work()} is a default (the traces show no LLM or tool call "
                "under it)"
            )
    out_edges: dict[str, list[EdgeProfile]] = defaultdict(list)
    for e in graph.edges:
        out_edges[e.src].append(e)
    branches: dict[str, dict[str, float]] = {}
    for n in graph.nodes:
        shares = {e.dst: e.count / n.visits for e in out_edges[n.name]} if n.visits else {}
        end = 1.0 - math.fsum(shares.values())
        if end > 1e-9:
            shares[_END] = end
        if len(shares) > 1 and abs(math.fsum(shares.values()) - 1.0) <= 1e-9:
            branches[n.name] = shares
    loops = {f"{e['src']} -> {e['dst']}": e["loop"] for e in data["edges"] if "loop" in e}
    return {"nodes": nodes, "branches": branches, "loops": loops}


# --------------------------------------------------------------------------------------------
# Reading the span trees
# --------------------------------------------------------------------------------------------


@dataclass
class _Visit:
    """One node span and what ran under it."""

    name: str
    order: tuple[float, float]  # (step, start)
    models: list[str] = field(default_factory=list)
    tokens: list[tuple[int, int]] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
    tool_s: float = 0.0
    sub: list[_Visit] = field(default_factory=list)


@dataclass
class _Acc:
    """A graph's visits, accumulated over its runs."""

    runs: list[list[list[str]]] = field(default_factory=list)  # run -> step groups -> names
    visits: dict[str, list[_Visit]] = field(default_factory=dict)
    subs: dict[str, _Acc] = field(default_factory=dict)


class _Reader:
    """Classifies spans and walks each request's span tree."""

    def __init__(self, spans: Sequence[SpanRecord]) -> None:
        self.node_key, self.oi_llm, self.oi_tool, self.oi_retriever = _conventions()
        self.children: dict[tuple[str, str], list[SpanRecord]] = defaultdict(list)
        for s in spans:
            if s.parent_id:
                self.children[(s.trace_id, s.parent_id)].append(s)

    def node_name(self, s: SpanRecord) -> str | None:
        for key in (self.node_key, *_NODE_KEYS):
            if key in s.attributes:
                return str(s.attributes[key])
        return None

    def role(self, s: SpanRecord) -> str:
        op = s.attributes.get(_OP)
        kind = s.attributes.get(_OI_KIND)
        if self.node_name(s) is not None:
            return "node"
        if op in _LLM_OPS or kind == self.oi_llm:
            return "llm"
        if op in _TOOL_OPS or kind in (self.oi_tool, self.oi_retriever):
            return "tool"
        return "other"

    def kids(self, s: SpanRecord) -> list[SpanRecord]:
        return self.children.get((s.trace_id, s.span_id), [])

    def visits_under(self, s: SpanRecord) -> list[_Visit]:
        """The node visits below ``s`` (not below those nodes), ordered."""
        out: list[_Visit] = []
        stack = list(self.kids(s))
        while stack:
            c = stack.pop()
            if self.role(c) == "node":
                out.append(self.visit(c))
            else:
                stack += self.kids(c)
        return sorted(out, key=lambda v: (v.order, v.name))

    def visit(self, s: SpanRecord) -> _Visit:
        step = s.attributes.get("langgraph.step")
        name = self.node_name(s) or s.name
        v = _Visit(name, (float(step) if isinstance(step, int) else s.start_s, s.start_s))
        stack = list(self.kids(s))
        while stack:
            c = stack.pop()
            role = self.role(c)
            if role == "node":
                v.sub.append(self.visit(c))
            elif role == "llm":
                v.models.append(_llm_model(c))
                v.tokens.append((_token_count(c, _IN), _token_count(c, _OUT)))
            elif role == "tool":
                v.tools.append(_tool_name(c))
                v.tool_s += max(c.duration_s, 0.0)
            else:
                stack += self.kids(c)
        v.sub.sort(key=lambda x: (x.order, x.name))
        return v


def _llm_model(s: SpanRecord) -> str:
    for key in _MODEL_KEYS:
        if s.attributes.get(key):
            return str(s.attributes[key])
    raise InputError(
        f"{s.source}: LLM span '{s.name}' (span {s.span_id}) has no model: found attributes "
        f"{sorted(s.attributes)}; missing gen_ai.request.model (or gen_ai.response.model). "
        f"Record the model on every chat span (OpenTelemetry GenAI semantic conventions)."
    )


def _token_count(s: SpanRecord, key: str) -> int:
    value = s.attributes.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InputError(
            f"{s.source}: LLM span '{s.name}' (span {s.span_id}) has {key}={value!r}: found "
            f"attributes {sorted(s.attributes)}; missing a non-negative {key}. Record the "
            f"usage on every chat span (OpenTelemetry GenAI semantic conventions)."
        )
    return int(value)


def _tool_name(s: SpanRecord) -> str:
    for key in ("gen_ai.tool.name", "gen_ai.data_source.id", "tool.name"):
        if s.attributes.get(key):
            return str(s.attributes[key])
    return s.name


def _steps(visits: Sequence[_Visit]) -> list[list[str]]:
    """Node names grouped by step (visits of one step run in parallel)."""
    groups: list[list[str]] = []
    last: float | None = None
    for v in visits:
        if v.order[0] != last or not groups:
            groups.append([])
        groups[-1].append(v.name)
        last = v.order[0]
    return groups


def _accumulate(acc: _Acc, visits: Sequence[_Visit]) -> None:
    acc.runs.append(_steps(visits))
    for v in visits:
        acc.visits.setdefault(v.name, []).append(v)
        if v.sub:
            _accumulate(acc.subs.setdefault(v.name, _Acc()), v.sub)


def _transitions(run: Sequence[Sequence[str]]) -> Counter[tuple[str, str]]:
    return Counter((a, b) for g, h in zip(run, run[1:], strict=False) for a in g for b in h)


def _branch_probabilities(
    acc: _Acc, counts: Counter[tuple[str, str]], succ: Mapping[str, Sequence[str]]
) -> dict[tuple[str, str], float]:
    """Per-pass probability of every edge (the workload format's), from per-visit frequencies.

    The per-visit share of each successor (and of ending the run) goes through
    :func:`hetopt.importers.loops.pass_probabilities`, the one home of that conversion.
    """

    ends = Counter(name for run in acc.runs if run for name in run[-1])
    out: dict[tuple[str, str], float] = {}
    for src, dsts in succ.items():
        visits = len(acc.visits[src])
        per_visit = {d: counts[(src, d)] / visits for d in dsts}
        if ends[src]:
            per_visit[_END] = ends[src] / visits
        in_loop = {d for d in dsts if d == src or src in descendants(succ, d)}
        for d, p in pass_probabilities(per_visit, in_loop, {_END}).items():
            out[(src, d)] = p
    return out


def _graph(acc: _Acc) -> GraphProfile:
    order = list(acc.visits)  # first visit order
    counts: Counter[tuple[str, str]] = Counter()
    per_run = [_transitions(run) for run in acc.runs]
    for c in per_run:
        counts.update(c)
    succ: dict[str, list[str]] = defaultdict(list)
    for a, b in counts:  # insertion order: first seen
        succ[a].append(b)
    back = set(dfs_back_edges(order, succ))
    probability = _branch_probabilities(acc, counts, succ)
    edges = []
    for (a, b), n in counts.items():
        if (a, b) in back:
            edges.append(EdgeProfile(a, b, n, 1.0, tuple(c[(a, b)] for c in per_run)))
        else:
            edges.append(EdgeProfile(a, b, n, probability[(a, b)]))
    nodes = []
    for name in order:
        vs = acc.visits[name]
        nodes.append(
            NodeProfile(
                name=name,
                visits=len(vs),
                models=tuple(m for v in vs for m in v.models),
                tokens=tuple(t for v in vs for t in v.tokens),
                tool_latency_s=tuple(v.tool_s for v in vs if v.tools),
                tools=tuple(t for v in vs for t in v.tools),
                subgraph=_graph(acc.subs[name]) if name in acc.subs else None,
            )
        )
    return GraphProfile(tuple(nodes), tuple(edges), len(acc.runs))


# --------------------------------------------------------------------------------------------
# Checks and the entry points
# --------------------------------------------------------------------------------------------


def _check_parents(spans: Sequence[SpanRecord], source: str) -> None:
    first: dict[tuple[str, str], SpanRecord] = {}
    for s in spans:
        seen = first.setdefault((s.trace_id, s.span_id), s)
        if seen is not s:
            raise InputError(
                f"{source}: span {s.span_id} of trace {s.trace_id} ('{s.name}') is there twice "
                f"({seen.source} and {s.source}). Each span counts once; give each export once "
                f"(overlapping exports or a file named twice would count its requests twice)."
            )
    ids = set(first)
    orphans = [s for s in spans if s.parent_id and (s.trace_id, s.parent_id) not in ids]
    if orphans:
        o = orphans[0]
        raise InputError(
            f"{source}: {len(orphans)} of {len(spans)} spans have a parent that is not in the "
            f"files (first: span '{o.name}' {o.span_id} in trace {o.trace_id}, parent "
            f"{o.parent_id}, {o.source}). Missing spans make the graph wrong; export every "
            f"span of each trace (and give all files of a split export)."
        )


def _check_conventions(spans: Sequence[SpanRecord], reader: _Reader, source: str) -> None:
    roles = Counter(reader.role(s) for s in spans)
    if roles["node"] and (roles["llm"] or roles["tool"]):
        return
    keys = Counter(k for s in spans for k in s.attributes)
    found = ", ".join(f"{k} ({n})" for k, n in keys.most_common(8)) or "no attributes"
    genai = sorted(k for k in keys if k.startswith("gen_ai."))
    missing = []
    if not roles["node"]:
        missing.append(f"{reader.node_key} (the agent graph's node on each node span)")
    if not (roles["llm"] or roles["tool"]):
        missing.append(
            "GenAI LLM or tool spans (gen_ai.operation.name=chat|execute_tool with "
            "gen_ai.request.model, gen_ai.usage.input_tokens, gen_ai.usage.output_tokens)"
        )
    conventions = (
        f"GenAI attributes {genai}"
        if genai
        else "no GenAI (gen_ai.*) attributes: unknown conventions"
    )
    raise InputError(
        f"{source}: found {len(spans)} spans with attributes {found}; {conventions}. Missing: "
        f"{'; and '.join(missing)}. hetopt profile reads OpenTelemetry GenAI semantic "
        f"conventions with OpenInference's graph.node.name; instrument the agent so (see "
        f"examples/traces/otel_callback.py for LangGraph)."
    )


def derive_workload(
    spans: Sequence[SpanRecord], name: str = "traced_agent", source: str = "<traces>"
) -> TraceProfile:
    """Derive a :class:`TraceProfile` from spans (see the module docstring for the rules).

    Raises
    ------
    InputError
        No spans, spans whose parent is missing, no node spans or no GenAI LLM/tool spans
        (naming what was found and what is missing), or an LLM span without model or usage.

    Examples
    --------
    >>> from hetopt.importers.otlp import SpanRecord as S
    >>> def llm(t, i, p, at, n_in):
    ...     return S(t, i, p, "chat", at, at + 1, {"gen_ai.operation.name": "chat",
    ...              "gen_ai.request.model": "llama-3-8b", "gen_ai.usage.input_tokens": n_in,
    ...              "gen_ai.usage.output_tokens": 64})
    >>> spans = [S("t1", "r", "", "invoke_agent", 0, 3), S("t1", "a", "r", "agent", 0, 1,
    ...          {"graph.node.name": "agent"}), llm("t1", "l", "a", 0, 512),
    ...          S("t2", "r", "", "invoke_agent", 4, 9), S("t2", "a", "r", "agent", 4, 5,
    ...          {"graph.node.name": "agent"}), llm("t2", "l", "a", 4, 1024)]
    >>> p = derive_workload(spans, "demo")
    >>> p.requests, p.rate_per_s, p.workload_data()["nodes"]
    (2, 0.25, {'agent': {'kind': 'model_execution', 'model': 'llama-3-8b', 'size_buckets': [{'input_tokens': 512, 'output_tokens': 64, 'weight': 0.5}, {'input_tokens': 1024, 'output_tokens': 64, 'weight': 0.5}]}})
    """
    if not spans:
        raise InputError(
            f"{source}: no spans found. Give OTLP JSON trace exports that hold the agent's "
            f"spans (resourceSpans -> scopeSpans -> spans)."
        )
    _check_parents(spans, source)
    reader = _Reader(spans)
    _check_conventions(spans, reader, source)
    roots = sorted((s for s in spans if s.is_root), key=lambda s: s.start_s)
    acc = _Acc()
    for root in roots:
        visits = [reader.visit(root)] if reader.role(root) == "node" else reader.visits_under(root)
        if visits:
            _accumulate(acc, visits)
    t0 = roots[0].start_s
    return TraceProfile(
        name=name,
        graph=_graph(acc),
        arrivals_s=tuple(r.start_s - t0 for r in roots),
        spans=len(spans),
        source=source,
    )


def profile_traces(paths: Sequence[str | Path], name: str | None = None) -> TraceProfile:
    """Read OTLP JSON trace files and derive their :class:`TraceProfile`, checked loadable.

    ``name`` defaults to the first file's name without ``.json`` and ``.otlp``.

    Raises
    ------
    InputError
        As :func:`~hetopt.importers.otlp.read_otlp_json` and :func:`derive_workload`.
    """
    from hetopt.workloads import Workload

    if not paths:
        raise InputError("hetopt profile needs at least one OTLP JSON trace file.")
    source = ", ".join(str(p) for p in paths)
    stem = Path(paths[0]).name.removesuffix(".json").removesuffix(".otlp").replace(".", "_")
    profile = derive_workload(read_otlp_json(paths), name or stem or "traced_agent", source)
    Workload.from_mapping(profile.workload_data(), f"workload derived from {source}")
    return profile
