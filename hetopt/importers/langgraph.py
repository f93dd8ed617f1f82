"""Read a LangGraph graph's structure into a hetopt workload mapping (:func:`from_langgraph`).

What LangGraph says, hetopt takes from it; what it cannot say comes from annotations, and what
neither says is a default that is listed in :attr:`ImportResult.assumptions` (the CLI prints
them and writes them at the top of the imported workload YAML). Nothing is guessed silently.

Structure is read through LangGraph's public drawing API only: ``CompiledStateGraph.get_graph()``
returns a ``langchain_core.runnables.graph.Graph`` whose ``nodes`` (``id``, ``data``,
``metadata``) and ``edges`` (``source``, ``target``, ``conditional``) are documented; a node whose
``data`` is itself a compiled graph (``langgraph.pregel.Pregel``) is a subgraph added with
``add_node``, read the same way. The mapping:

* ``__start__`` and ``__end__`` are dropped (a workload's entry is its source nodes).
* an edge is an edge; an edge that closes a cycle (found by a depth-first walk from the entry)
  is a back edge with a ``loop`` bound (``loops`` annotation, else a default assumption).
* the targets of a conditional edge are branches. The ``branches`` annotation gives, per visit
  of the routing node, how often it picks each target (what a trace counts); the importer turns
  that into hetopt's per-pass probabilities (:func:`pass_probabilities`). Without it the targets
  are taken as equally likely (an assumption).
* a compiled subgraph node is ``kind: agent`` with its own ``subgraph``.
* a node's kind and parameters come from the annotation file's ``nodes``, then from a ``hetopt``
  key in the node's LangGraph metadata (``add_node(..., metadata={"hetopt": {...}})``), then
  from defaults: a ``ToolNode`` is a ``tool_call`` with a default lookup, anything else a small
  ``general_compute`` step (both assumptions).

``langgraph`` is imported only inside the functions that need it (it is the ``agents`` extra).

Why one module: the order in which annotations, node metadata, traces and defaults stand in
for what the code cannot say is one rule, applied node by node, branch by branch and loop by
loop by one converter over the structure read here; split, the reader and the converter would
share the private ``_Structure`` and the assumption list across modules.

The graph rules (back edges, per-visit to per-pass probabilities) are in
:mod:`hetopt.importers.loops`; reading the user's Python file is :mod:`hetopt.importers.pyfile`.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from hetopt.errors import InputError
from hetopt.importers.loops import END, START, back_edges, descendants, pass_probabilities
from hetopt.inputs import did_you_mean
from hetopt.workloads import Workload

EXTRA_HINT = "pip install -e '.[agents]' (or pip install 'hetopt[agents]')"

DEFAULT_PAYLOAD_BYTES = 2048.0
DEFAULT_RATE_PER_S = 1.0
DEFAULT_LOOP = {"expected_iterations": 1.0, "max_iterations": 3}
DEFAULT_STEP = {"kind": "general_compute", "work": {"flops": 1.0e6, "mem_bytes": 1.0e6}}
DEFAULT_TOOL = {
    "kind": "tool_call",
    "lookup": {"latency_s": 0.5, "request_bytes": 512, "response_bytes": 4096},
}
TOP_KEYS = (
    "name",
    "description",
    "request_rate_per_s",
    "sla",
    "baselines",
    "nodes",
    "branches",
    "loops",
    "edges",
    "default_payload_bytes",
)
"""Keys of an annotation file (and, but for the workload-level ones, of a subgraph's entry)."""
SUB_KEYS = ("nodes", "branches", "loops", "edges", "default_payload_bytes")
NODE_ENTRY_KEYS = ("subgraph",)
EDGE_ENTRY_KEYS = ("payload_bytes",)


@dataclass(frozen=True)
class ImportResult:
    """A LangGraph graph read as a hetopt workload.

    Attributes
    ----------
    workload
        The workload mapping (the workload file format), ready for
        :meth:`hetopt.workloads.Workload.from_mapping`.
    assumptions
        One line per default that stood in for a missing annotation.
    source
        What was imported (``workload file my_agent.py:graph``), for messages.
    annotations
        Where the annotations came from (``annotation file my_agent.hetopt.yaml``); None: none.
    """

    workload: dict[str, Any]
    assumptions: tuple[str, ...] = ()
    source: str = "<langgraph graph>"
    annotations: str | None = field(default=None, compare=False)

    def to_workload(self) -> Workload:
        """The typed :class:`~hetopt.workloads.Workload` (validated)."""
        return Workload.from_mapping(self.workload, self.source)

    def to_yaml(self) -> str:
        """The workload as YAML, with where it came from and every assumption as comments."""
        lines = [f"# Imported by hetopt from {self.source}."]
        lines.append(f"# Annotations: {self.annotations or 'none'}.")
        if self.assumptions:
            lines.append("# Assumptions (defaults where neither the code nor annotations say):")
            lines += [f"#   - {a}" for a in self.assumptions]
        else:
            lines.append(
                "# Assumptions: none; every number came from annotations or node metadata."
            )
        body = yaml.safe_dump(self.workload, sort_keys=False, default_flow_style=None, width=100)
        return "\n".join(lines) + "\n" + body


# --------------------------------------------------------------------------------------------
# Reading the LangGraph structure
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Structure:
    """One (sub)graph as read from ``get_graph()``: nodes in order, edges, subgraphs, tools."""

    nodes: tuple[str, ...]
    edges: tuple[tuple[str, str, bool], ...]  # source, target, conditional
    metadata: Mapping[str, Mapping[str, Any]]
    subgraphs: Mapping[str, Any]  # node -> its compiled graph
    tool_nodes: frozenset[str]


def require_langgraph(source: str) -> None:
    """Refuse, naming the extra, when LangGraph is not installed."""
    if importlib.util.find_spec("langgraph") is None:
        raise InputError(
            f"{source}: reading a LangGraph graph needs the langgraph package, which is not "
            f"installed. Install hetopt's agents extra: {EXTRA_HINT}."
        )


def is_langgraph_graph(obj: Any) -> bool:
    """Whether ``obj`` is a LangGraph graph hetopt can read (compiled, or a ``StateGraph``)."""
    from langgraph.graph import StateGraph
    from langgraph.pregel import Pregel

    return isinstance(obj, Pregel | StateGraph)


def _structure(graph: Any, source: str) -> _Structure:
    from langgraph.graph import StateGraph
    from langgraph.prebuilt import ToolNode
    from langgraph.pregel import Pregel

    try:
        compiled = graph.compile() if isinstance(graph, StateGraph) else graph
        drawn = compiled.get_graph()  # public: langchain_core.runnables.graph.Graph
    except Exception as exc:  # LangGraph refuses to compile or draw it: the user's graph
        raise InputError(
            f"{source}: LangGraph could not compile or draw the graph: {type(exc).__name__}: "
            f"{exc}. Check that it compiles and that `graph.get_graph()` works."
        ) from None
    nodes, metadata, subgraphs, tools = [], {}, {}, set()
    for node in drawn.nodes.values():
        if node.id in (START, END):
            continue
        nodes.append(node.id)
        metadata[node.id] = dict(node.metadata or {})
        if isinstance(node.data, Pregel):
            subgraphs[node.id] = node.data
        elif isinstance(node.data, ToolNode):
            tools.add(node.id)
    edges: list[tuple[str, str, bool]] = []
    seen: set[tuple[str, str]] = set()
    for e in drawn.edges:
        pair = (e.source, e.target)
        if pair in seen:  # a plain edge and a branch to the same node: it always runs
            edges = [x if (x[0], x[1]) != pair else (*pair, False) for x in edges]
            continue
        seen.add(pair)
        edges.append((e.source, e.target, bool(e.conditional)))
    return _Structure(tuple(nodes), tuple(edges), metadata, subgraphs, frozenset(tools))


# --------------------------------------------------------------------------------------------
# Annotations
# --------------------------------------------------------------------------------------------


def _edge_key(text: Any, where: str) -> tuple[str, str]:
    src, sep, dst = str(text).partition("->")
    if not sep or not src.strip() or not dst.strip():
        raise InputError(
            f"{where}: {text!r} is not an edge; write it as 'source -> target' (e.g. "
            f"'tools -> agent')."
        )
    return src.strip(), dst.strip()


def _check_keys(data: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = [str(k) for k in data if k not in allowed]
    if unknown:
        hint = did_you_mean(unknown[0], allowed)
        raise InputError(f"{where}: unknown key(s) {unknown}.{hint} Allowed keys: {list(allowed)}.")


def _mapping(value: Any, where: str, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError(
            f"{where}: '{what}' must be a mapping, got {type(value).__name__} {value!r}."
        )
    return {str(k): v for k, v in value.items()}


def _unknown_node(name: str, known: tuple[str, ...], where: str, what: str) -> InputError:
    return InputError(
        f"{where}: {what} names node '{name}', which the LangGraph graph does not have."
        f"{did_you_mean(name, known)} Its nodes: {list(known)}. Fix the name, or remove the entry."
    )


# --------------------------------------------------------------------------------------------
# The conversion, one (sub)graph at a time
# --------------------------------------------------------------------------------------------


@dataclass
class _Converter:
    """Turns one :class:`_Structure` and its annotations into ``{nodes, edges}``."""

    where: str  # the annotation file (or the graph), for messages
    prefix: str  # "researcher/" inside a subgraph, for messages and assumptions
    assumptions: list[str]
    default_payload: Any = None  # the enclosing graph's default_payload_bytes, inherited
    observed: Mapping[str, Any] = field(default_factory=dict)  # what traces measured here

    def convert(self, graph: Any, notes: Mapping[str, Any]) -> dict[str, Any]:
        st = _structure(graph, self._at(""))
        _check_keys(notes, TOP_KEYS if not self.prefix else SUB_KEYS, self._at(""))
        node_notes = _mapping(notes.get("nodes"), self._at(""), "nodes")
        for name in node_notes:
            if name not in st.nodes:
                raise _unknown_node(self.prefix + name, st.nodes, self.where, "'nodes'")
        seen = self.observed.get("nodes") or {}
        unknown = [n for n in seen if n not in st.nodes]
        if seen and not self.prefix and len(unknown) == len(seen):
            raise InputError(
                f"{self.where}: the traces' nodes {sorted(seen)} and the LangGraph graph's "
                f"nodes {list(st.nodes)} have none in common, so the traces are not of this "
                "agent. Name traces of this graph (or remove 'traces')."
            )
        if unknown:
            self.assumptions.append(
                f"{self._at('')}: the traces show node(s) {[self.prefix + n for n in unknown]} "
                f"that the LangGraph graph does not have (its nodes: {list(st.nodes)}); their "
                "numbers are not used."
            )
        backs = back_edges(st.nodes, st.edges)
        payloads, self.default_payload = self._payloads(st, notes)
        nodes = {self._id(n): self._node(n, st, node_notes.get(n)) for n in st.nodes}
        edges = self._edges(st, backs, notes, payloads)
        self._note_entries(st)
        return {"nodes": nodes, "edges": edges}

    def _note_entries(self, st: _Structure) -> None:
        """Say where the drawn graph's entry differs from the agent's: a branch at the start, or
        nodes no edge reaches (a conditional edge drawn without its targets)."""
        if any(s == START and c for s, _, c in st.edges):
            self.assumptions.append(
                f"{self._at('')}: the graph starts with a conditional edge; a workload has no "
                "branch before its first node, so every entry node runs once per request."
            )
        reached = {t for s, t, _ in st.edges if s == START}
        reached |= {x for n in reached if n in st.nodes for x in _reachability(st)[n]}
        hidden = [n for n in st.nodes if n not in reached]
        if hidden:
            self.assumptions.append(
                f"{self._at('')}: no edge from the start reaches {[self.prefix + n for n in hidden]} "
                "(a conditional edge without a path map or a Literal return type hides its "
                "targets from LangGraph's drawing); each is taken as an entry that runs once per "
                "request. Give add_conditional_edges its targets, e.g. "
                "add_conditional_edges('a', route, ['b', 'c'])."
            )

    def _at(self, what: str) -> str:
        inside = f" (subgraph '{self.prefix[:-1]}')" if self.prefix else ""
        return f"{self.where}{inside}{': ' + what if what else ''}"

    @staticmethod
    def _id(name: str) -> str:
        from hetopt.graph.params import NODE_ID_PATTERN

        if NODE_ID_PATTERN.match(name):
            return name
        return "".join(c if c.isalnum() or c in "_-" else "_" for c in name) or "node"

    def _node(self, name: str, st: _Structure, note: Any) -> dict[str, Any]:
        label = f"node '{self.prefix}{name}'"
        note = _mapping(note, self._at(label), name)
        meta = st.metadata.get(name, {}).get("hetopt")
        meta = _mapping(meta, f"{self.where}: {label}: LangGraph metadata", "hetopt")
        traced = dict((self.observed.get("nodes") or {}).get(name) or {})
        traced_sub = traced.pop("subgraph", None)
        traced_default = traced.pop("assumed", None)
        declared = note.get("kind", meta.get("kind"))
        if (declared is not None and traced.get("kind") != declared) or (
            traced.get("kind") == "agent" and name not in st.subgraphs
        ):
            traced = {}  # the annotations or the code say it is another kind of node
        if traced and traced_default and not any(k in note or k in meta for k in traced):
            self.assumptions.append(f"{label} (from the traces): {traced_default}.")
        params = {
            **traced,
            **meta,
            **{k: v for k, v in note.items() if k not in NODE_ENTRY_KEYS},
        }
        if self._id(name) != name:
            self.assumptions.append(
                f"{label} is '{self._id(name)}' in the workload (node ids use letters, digits, "
                "'_' and '-')."
            )
        if name in st.subgraphs:
            sub_notes = _mapping(note.get("subgraph"), self._at(label), "subgraph")
            child = _Converter(
                self.where,
                f"{self.prefix}{name}/",
                self.assumptions,
                self.default_payload,
                traced_sub if isinstance(traced_sub, Mapping) else {},
            )
            params.setdefault("kind", "agent")
            params["subgraph"] = child.convert(st.subgraphs[name], sub_notes)
            return params
        if "subgraph" in note:
            raise InputError(
                f"{self._at(label)}: has 'subgraph', but in the LangGraph graph it is not a "
                "compiled subgraph. Remove 'subgraph', or add the compiled graph as the node."
            )
        if "kind" not in params:
            default = DEFAULT_TOOL if name in st.tool_nodes else DEFAULT_STEP
            fix = (
                "annotate its lookup (latency_s, request_bytes, response_bytes)"
                if name in st.tool_nodes
                else "if it calls a model, annotate its kind, model and tokens"
            )
            what = "a ToolNode" if name in st.tool_nodes else "plain code"
            self.assumptions.append(
                f"{label}: no annotation; taken as {what}: {_flat(default)}; {fix}."
            )
            params = {**default, **params}
        return params

    def _edges(
        self,
        st: _Structure,
        backs: list[tuple[str, str]],
        notes: Mapping[str, Any],
        payloads: Mapping[tuple[str, str], Any],
    ) -> list[dict[str, Any]]:
        probs = self._branches(st, notes)
        loops = self._loops(st, backs, notes)
        order = {n: i for i, n in enumerate(st.nodes)}
        inner = [(s, t) for s, t, _ in st.edges if START not in (s, t) and END not in (s, t)]
        out = []
        for s, t in sorted(inner, key=lambda e: (order[e[0]], order[e[1]])):
            edge: dict[str, Any] = {"src": self._id(s), "dst": self._id(t)}
            default = (
                DEFAULT_PAYLOAD_BYTES if self.default_payload is None else self.default_payload
            )
            edge["payload_bytes"] = _plain(payloads.get((s, t), default))
            if (s, t) in loops:
                edge["loop"] = loops[(s, t)]
            elif probs.get((s, t), 1.0) < 1.0:
                edge["probability"] = probs[(s, t)]
            out.append(edge)
        return out

    def _branches(self, st: _Structure, notes: Mapping[str, Any]) -> dict[tuple[str, str], float]:
        given = _mapping(notes.get("branches"), self._at(""), "branches")
        targets: dict[str, list[str]] = {}
        for s, t, cond in st.edges:
            if cond and s != START:
                targets.setdefault(s, []).append(t)
        for src in given:
            if src not in targets:
                if src not in st.nodes:
                    raise _unknown_node(self.prefix + src, st.nodes, self.where, "'branches'")
                raise InputError(
                    f"{self._at('branches')}: node '{self.prefix}{src}' has no conditional edges "
                    f"(nodes that branch: {sorted(targets)}). Remove its entry."
                )
        reach = _reachability(st)
        seen = self.observed.get("branches") or {}
        out: dict[tuple[str, str], float] = {}
        for src, ts in targets.items():
            traced = seen.get(src)
            if src not in given and traced is not None and sorted(traced) == sorted(ts):
                per_visit = {t: float(traced[t]) for t in ts}
            else:
                if src not in given and traced is not None:
                    self.assumptions.append(
                        f"branches of node '{self.prefix}{src}': the traces saw it go to "
                        f"{sorted(traced)}, not to each of its targets {sorted(ts)}; their shares "
                        "are not used."
                    )
                per_visit = self._per_visit(src, ts, given.get(src))
            in_loop = {t for t in ts if t != END and src in reach[t]}
            probs = pass_probabilities(per_visit, in_loop, {END})
            branchy = [p for p in probs.values() if p < 1.0]
            if math.fsum(branchy) > 1.0 + 1e-9:
                probs = {t: p for t, p in per_visit.items() if t != END}
                self.assumptions.append(
                    f"branches of node '{self.prefix}{src}': its targets in the loop and its exits "
                    "both split; the workload format has one split per pass, so the per-visit "
                    "probabilities are used as they are (an approximation)."
                )
            out.update({(src, t): p for t, p in probs.items()})
        return out

    def _per_visit(self, src: str, targets: list[str], given: Any) -> dict[str, float]:
        label = f"branches of node '{self.prefix}{src}'"
        if given is None:
            share = 1.0 / len(targets)
            self.assumptions.append(
                f"{label}: no annotation; each of {targets} taken as equally likely "
                f"({share:.3g} per visit)."
            )
            return dict.fromkeys(targets, share)
        given = _mapping(given, self._at(label), src)
        names = {
            ("__end__" if str(k) in ("END", "__end__") else str(k)): v for k, v in given.items()
        }
        for t in names:
            if t not in targets:
                raise InputError(
                    f"{self._at(label)}: '{t}' is not one of its targets {targets}."
                    f"{did_you_mean(t, targets)} Fix the name."
                )
        missing = [t for t in targets if t not in names]
        values = {}
        for t, v in names.items():
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 1:
                raise InputError(
                    f"{self._at(label)}: the probability of '{t}' must be a number in (0, 1], "
                    f"got {v!r}."
                )
            values[t] = float(v)
        total = math.fsum(values.values())
        if missing or abs(total - 1.0) > 1e-3:
            raise InputError(
                f"{self._at(label)}: give every target {targets} a probability (per visit of "
                f"'{src}'), summing to 1; got {values} (sum {total:g})"
                + (f", missing {missing}" if missing else "")
                + ". Use '__end__' for the graph's end."
            )
        return {t: values[t] / total for t in targets}

    def _loops(
        self, st: _Structure, backs: list[tuple[str, str]], notes: Mapping[str, Any]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        given = _mapping(notes.get("loops"), self._at(""), "loops")
        parsed: dict[tuple[str, str], Any] = {}
        for key, value in given.items():
            pair = _edge_key(key, self._at("loops"))
            for end in pair:
                if end not in st.nodes:
                    raise _unknown_node(self.prefix + end, st.nodes, self.where, f"loop '{key}'")
            if pair not in backs:
                shown = [f"{s} -> {t}" for s, t in backs]
                raise InputError(
                    f"{self._at('loops')}: '{key}' is not an edge that closes a cycle; the "
                    f"graph's back edges are {shown}. Name one of them."
                )
            parsed[pair] = _mapping(value, self._at(f"loop '{key}'"), key)
        seen = self.observed.get("loops") or {}
        out = {}
        for pair in backs:
            if pair in parsed:
                out[pair] = parsed[pair]
                continue
            if f"{pair[0]} -> {pair[1]}" in seen:
                out[pair] = dict(seen[f"{pair[0]} -> {pair[1]}"])
                continue
            self.assumptions.append(
                f"loop '{self.prefix}{pair[0]} -> {self.prefix}{pair[1]}': no annotation; taken "
                f"{DEFAULT_LOOP['expected_iterations']:g} time(s) per request on average, at "
                f"most {DEFAULT_LOOP['max_iterations']}."
            )
            out[pair] = dict(DEFAULT_LOOP)
        return out

    def _payloads(
        self, st: _Structure, notes: Mapping[str, Any]
    ) -> tuple[dict[tuple[str, str], Any], Any]:
        given = _mapping(notes.get("edges"), self._at(""), "edges")
        pairs = {(s, t) for s, t, _ in st.edges}
        out = {}
        for key, value in given.items():
            pair = _edge_key(key, self._at("edges"))
            for end in pair:
                if end not in st.nodes:
                    raise _unknown_node(self.prefix + end, st.nodes, self.where, f"edge '{key}'")
            if pair not in pairs:
                raise InputError(
                    f"{self._at('edges')}: the LangGraph graph has no edge '{key}'. Its edges: "
                    f"{[f'{s} -> {t}' for s, t in sorted(pairs) if START not in (s, t) and END not in (s, t)]}."
                )
            entry = _mapping(value, self._at(f"edge '{key}'"), key)
            _check_keys(entry, EDGE_ENTRY_KEYS, self._at(f"edge '{key}'"))
            out[pair] = entry.get("payload_bytes", DEFAULT_PAYLOAD_BYTES)
        inner = [p for p in pairs if START not in p and END not in p]
        default = notes.get("default_payload_bytes", self.default_payload)
        if default is None and any(p not in out for p in inner):
            self.assumptions.append(
                f"{self.where}: edges without a payload annotation carry "
                f"{DEFAULT_PAYLOAD_BYTES:g} bytes (default_payload_bytes)."
            )
        return out, default


def _reachability(st: _Structure) -> dict[str, set[str]]:
    """Node -> the nodes reachable from it (over every edge, ``__end__`` excluded)."""
    succ: dict[str, list[str]] = {n: [] for n in st.nodes}
    for s, t, _ in st.edges:
        if s in succ and t in succ:
            succ[s].append(t)
    return {n: descendants(succ, n) for n in st.nodes}


def _plain(value: Any) -> Any:
    """A whole float as an int (``2048`` rather than ``2048.0`` in the YAML)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _flat(data: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(data), default_flow_style=True, width=1000).strip()


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def from_langgraph(
    graph: Any,
    annotations: Mapping[str, Any] | None = None,
    name: str | None = None,
    *,
    source: str = "LangGraph graph",
    annotations_source: str | None = None,
    traces: Mapping[str, Any] | None = None,
) -> ImportResult:
    """Read a LangGraph graph into a hetopt workload.

    Parameters
    ----------
    graph
        A compiled LangGraph graph (``StateGraph(...).compile()``) or a ``StateGraph``.
    annotations
        What the code cannot say (the annotation file's mapping): ``nodes`` (kind, model,
        tokens, lookup, ... per node; ``subgraph:`` for a compiled subgraph's own annotations),
        ``branches`` (per routing node: target -> probability per visit), ``loops``
        (``"src -> dst"``: ``{expected_iterations, max_iterations}``), ``edges``
        (``"src -> dst"``: ``{payload_bytes}``), ``default_payload_bytes``, and the workload's
        ``name``, ``description``, ``request_rate_per_s``, ``sla``, ``baselines``.
    name
        The workload's name when the annotations give none.
    source
        What is being imported, for messages (``workload file my_agent.py:graph``).
    annotations_source
        Where the annotations came from, for messages (the annotation file).
    traces
        What traces of the agent measured, in the annotations' format
        (:meth:`hetopt.importers.traces.TraceProfile.annotations`): used where neither the
        annotations nor the nodes' metadata say (they win), before any default. Traced node
        parameters are dropped for a node the code or annotations give another kind; traced
        branch shares only when the traces saw every target of the routing node.

    Returns
    -------
    ImportResult
        The workload mapping (validated) and the assumptions made.

    Raises
    ------
    InputError
        ``graph`` is not a LangGraph graph; an annotation names an unknown node or edge, or is
        malformed; the resulting workload is invalid.

    Examples
    --------
    >>> from typing import TypedDict
    >>> from langgraph.graph import StateGraph, START, END
    >>> class S(TypedDict):
    ...     x: int
    >>> b = StateGraph(S)
    >>> _ = b.add_node("step", lambda s: s).add_edge(START, "step").add_edge("step", END)
    >>> result = from_langgraph(b.compile(), name="one_step")
    >>> result.workload["nodes"]["step"]["kind"], len(result.assumptions)
    ('general_compute', 2)
    """
    require_langgraph(source)
    if not is_langgraph_graph(graph):
        raise InputError(
            f"{source} is a {type(graph).__module__}.{type(graph).__qualname__}, not a LangGraph "
            "graph. Point hetopt at the compiled graph (the object `StateGraph(...).compile()` "
            "returns)."
        )
    where = f"{annotations_source} (for {source})" if annotations_source else source
    notes = _mapping(annotations, where, "annotations")
    assumptions: list[str] = []
    observed = dict(traces or {})
    body = _Converter(where, "", assumptions, observed=observed).convert(graph, notes)
    rate = notes.get("request_rate_per_s", observed.get("request_rate_per_s"))
    if rate is None:
        rate = DEFAULT_RATE_PER_S
        assumptions.append(
            f"request_rate_per_s: not annotated; {DEFAULT_RATE_PER_S:g} request per second "
            "(set it in the annotations or with workload.request_rate_per_s=...)."
        )
    workload: dict[str, Any] = {
        "name": str(notes.get("name") or name or "langgraph_agent"),
        "description": str(notes.get("description") or f"Imported from {source}."),
        "request_rate_per_s": rate,
    }
    for key in ("sla", "baselines"):
        if notes.get(key) is not None:
            workload[key] = notes[key]
    workload.update(body)
    unique = tuple(dict.fromkeys(assumptions))  # the payload default is said once
    result = ImportResult(workload, unique, source, annotations_source)
    try:
        result.to_workload()  # refuses an invalid workload now, naming the source
    except InputError as exc:
        origin = f"{annotations_source} or the nodes'" if annotations_source else "the nodes'"
        raise type(exc)(
            f"{exc} (The imported workload's fields come from {origin} LangGraph metadata "
            "(their 'hetopt' key); fix them there.)"
        ) from None
    return result
