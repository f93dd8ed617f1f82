"""Agent graph IR: the paper's Table 1 task types as a directed, possibly cyclic, hierarchical graph.

An :class:`AgentGraph` is a set of :class:`Node` (one :class:`TaskKind` each, with validated and
frozen parameters) and :class:`Edge` (payload bytes, branch probability, and a :class:`Loop`
when the edge is a back edge). Every cycle must contain a back edge with a bound (§3.1: "cycles
are allowed if runtime planning bounds them"); ``agent`` nodes nest a whole subgraph (§2.4).

Graphs come from YAML (the Hydra ``workload`` group files), from a plain dict, or from
:class:`GraphBuilder` in code; the three produce equal objects.

Examples
--------
>>> g = (GraphBuilder("tiny")
...      .add_node("llm", "model_execution", model="llama-3-8b", input_tokens=128,
...                output_tokens=16)
...      .add_node("search", "tool_call",
...                lookup={"latency_s": 0.3, "request_bytes": 256, "response_bytes": 4096})
...      .add_edge("llm", "search", payload_bytes=256)
...      .add_edge("search", "llm", payload_bytes=4096,
...                loop=Loop(expected_iterations=1.0, max_iterations=2))
...      .build())
>>> g.node("llm").params["precision"]
'fp16'

Why one module: the IR's frozen types and the reader of their YAML/dict form validate one
schema; the key lists and messages the reader checks are the types' own fields, kept beside
them so that a field added to a type is a key the reader knows.
"""

from __future__ import annotations

import difflib
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from hetopt.errors import InputError, UnknownNameError
from hetopt.graph.architectures import read_yaml_file
from hetopt.graph.buckets import expand_size_buckets
from hetopt.graph.params import (  # noqa: F401  (TaskKind is re-exported)
    NODE_ID_PATTERN,
    PARAM_KEYS,
    TaskKind,
    as_devices,
    as_integer,
    as_kind,
    as_mapping,
    as_number,
    check_known_keys,
    normalize_params,
)

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# The IR
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loop:
    """Bound on a back edge (§3.1: cycles allowed when bounded).

    Attributes
    ----------
    expected_iterations
        Expected times the back edge is taken each time the loop is entered (per request when
        the loop's entry runs once per request). Drives expected cost.
    max_iterations
        Worst-case times; drives worst-case latency and ``max_visits``.
    """

    expected_iterations: float
    max_iterations: int

    def __post_init__(self) -> None:
        where = "loop"
        object.__setattr__(
            self,
            "expected_iterations",
            as_number(self.expected_iterations, where, "expected_iterations"),
        )
        object.__setattr__(
            self, "max_iterations", as_integer(self.max_iterations, where, "max_iterations")
        )
        if self.expected_iterations > self.max_iterations:
            raise InputError(
                f"loop: expected_iterations {self.expected_iterations:g} exceeds max_iterations "
                f"{self.max_iterations}. Raise max_iterations or lower expected_iterations."
            )


@dataclass(frozen=True)
class Edge:
    """A dependency ``src -> dst`` carrying ``payload_bytes`` per traversal.

    Attributes
    ----------
    src, dst
        Node ids in the same graph.
    payload_bytes
        Bytes sent along the edge each time it is taken.
    probability
        Probability the edge is taken after ``src`` runs, in (0, 1]. Several edges with
        probability 1 leaving one node run in parallel; edges below 1 are alternative branches.
    loop
        Set when this is a back edge; then the edge closes a cycle and is taken
        ``loop.expected_iterations`` times per entry into the loop.
    """

    src: str
    dst: str
    payload_bytes: float = 0.0
    probability: float = 1.0
    loop: Loop | None = None

    def __post_init__(self) -> None:
        where = f"edge '{self.src} -> {self.dst}'"
        object.__setattr__(self, "src", str(self.src))
        object.__setattr__(self, "dst", str(self.dst))
        object.__setattr__(
            self, "payload_bytes", as_number(self.payload_bytes, where, "payload_bytes")
        )
        object.__setattr__(
            self,
            "probability",
            as_number(self.probability, where, "probability", strict=True, maximum=1.0),
        )

    @property
    def is_back(self) -> bool:
        """True for a back edge (one with a :class:`Loop`)."""
        return self.loop is not None


@dataclass(frozen=True)
class Node:
    """One task of the agent graph.

    Attributes
    ----------
    id
        Unique within its graph.
    kind
        Table 1 task type.
    params
        Validated, defaults-filled, immutable parameters (see :data:`PARAM_KEYS`).
    subgraph
        The nested graph of an ``agent`` node; ``None`` otherwise.
    devices
        Device names this node may be placed on; ``None`` allows every device. Not checked
        against a hardware catalog here.
    """

    id: str
    kind: TaskKind
    params: Mapping[str, Any]
    subgraph: AgentGraph | None = None
    devices: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        where = f"node '{self.id}'"
        kind = as_kind(self.kind, where)
        object.__setattr__(self, "kind", kind)
        if not isinstance(self.params, Mapping):
            raise InputError(f"{where}: params must be a mapping, got {self.params!r}.")
        object.__setattr__(self, "params", normalize_params(kind, self.params, where))
        object.__setattr__(self, "devices", as_devices(self.devices, where))
        if kind is TaskKind.AGENT and not isinstance(self.subgraph, AgentGraph):
            raise InputError(
                f"{where}: an agent node needs 'subgraph: {{nodes: ..., edges: ...}}'. Add the "
                "nested graph, or give the node another kind."
            )
        if kind is not TaskKind.AGENT and self.subgraph is not None:
            raise InputError(
                f"{where}: only agent nodes have a subgraph, but this node is {kind.value}. Set "
                "'kind: agent' or remove 'subgraph'."
            )


@dataclass(frozen=True)
class AgentGraph:
    """A directed, possibly cyclic, hierarchical agent graph (§2.4).

    Validated on construction (see :meth:`validate`).

    Attributes
    ----------
    name
        Graph (workload) name.
    nodes
        Tasks, in file order.
    edges
        Dependencies; back edges carry a :class:`Loop`.
    description
        Free text.
    source
        File (or other origin) the graph was read from, for error messages downstream; not
        part of equality.
    """

    name: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    description: str = ""
    source: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "edges", tuple(self.edges))
        self.validate()

    def node(self, id: str) -> Node:
        """The node with this id.

        Raises
        ------
        UnknownNameError
            No such node; the message lists the ids and the closest one.
        """
        for n in self.nodes:
            if n.id == id:
                return n
        raise UnknownNameError(_unknown_node(self.node_ids, id, f"graph '{self.name}'"))

    @property
    def node_ids(self) -> tuple[str, ...]:
        """Node ids in order."""
        return tuple(n.id for n in self.nodes)

    def to_networkx(self) -> nx.DiGraph:
        """The graph as a :class:`networkx.DiGraph` (cyclic when it has back edges).

        Node attributes: ``kind``, ``params``, ``subgraph``, ``devices``. Edge attributes:
        ``payload_bytes``, ``probability``, ``loop`` and ``back`` (``True`` for back edges).
        """
        g = nx.DiGraph(name=self.name)
        for n in self.nodes:
            g.add_node(n.id, kind=n.kind, params=n.params, subgraph=n.subgraph, devices=n.devices)
        for e in self.edges:
            g.add_edge(
                e.src,
                e.dst,
                payload_bytes=e.payload_bytes,
                probability=e.probability,
                loop=e.loop,
                back=e.is_back,
            )
        return g

    def validate(self, source: str | None = None) -> None:
        """Check the structure; raise :class:`InputError` on the first problem.

        Checks: at least one node; unique, well-formed node ids; edge endpoints exist; no
        duplicate edge; payloads >= 0; probabilities in (0, 1]; a back edge has probability 1
        and closes a cycle; every cycle contains a back edge (a ``loop`` bound). Subgraphs are
        validated when their agent node is built.

        Parameters
        ----------
        source
            File name for messages; the graph name when omitted.
        """
        where = source if source is not None else (self.source or f"graph '{self.name}'")
        _validate_structure(self.nodes, self.edges, where)


def _validate_structure(nodes: Sequence[Node], edges: Sequence[Edge], where: str) -> None:
    """The checks of :meth:`AgentGraph.validate`, on plain sequences."""
    if not nodes:
        raise InputError(f"{where}: the graph has no nodes. Add at least one under 'nodes'.")
    seen: list[str] = []
    for n in nodes:
        if not isinstance(n, Node):
            raise InputError(f"{where}: nodes must be Node objects, got {n!r}.")
        if not NODE_ID_PATTERN.match(n.id):
            raise InputError(
                f"{where}: node id {n.id!r} may only use letters, digits, '_' and '-' ('.' "
                "and '/' are reserved for operator ids). Rename the node."
            )
        if n.id in seen:
            raise InputError(f"{where}: node id '{n.id}' is used twice. Rename one of them.")
        seen.append(n.id)
    forward = nx.DiGraph()
    forward.add_nodes_from(seen)
    pairs: set[tuple[str, str]] = set()
    for e in edges:
        label = f"{where}: edge '{e.src} -> {e.dst}'"
        for end in (e.src, e.dst):
            if end not in seen:
                raise UnknownNameError(f"{label}: {_unknown_node(seen, end)}")
        if (e.src, e.dst) in pairs:
            raise InputError(f"{label} appears twice. Merge the two edges into one.")
        pairs.add((e.src, e.dst))
        as_number(e.payload_bytes, label, "payload_bytes")
        as_number(e.probability, label, "probability", strict=True, maximum=1.0)
        if e.loop is not None:
            if not isinstance(e.loop, Loop):
                raise InputError(f"{label}: loop must be a Loop, got {e.loop!r}.")
            if e.probability != 1.0:
                raise InputError(
                    f"{label} is a back edge (it has 'loop') with probability "
                    f"{e.probability:g}. Drop 'probability'; 'loop.expected_iterations' "
                    "already says how often the loop repeats."
                )
        else:
            forward.add_edge(e.src, e.dst)
    shares: dict[str, list[Edge]] = {}
    for e in edges:
        if e.loop is None and float(e.probability) < 1.0:
            shares.setdefault(e.src, []).append(e)
    for src, branch in shares.items():
        total = math.fsum(float(e.probability) for e in branch)
        if total > 1.0 + 1e-6:
            terms = " + ".join(f"{float(e.probability):g} ({e.dst})" for e in branch)
            raise InputError(
                f"{where}: the alternative branches leaving node '{src}' have probabilities "
                f"{terms} = {total:g}. A request takes at most one of them, so they must sum "
                f"to 1 (or less, when some requests take none). Fix the probabilities."
            )
    if not nx.is_directed_acyclic_graph(forward):
        cycle = [u for u, _ in nx.find_cycle(forward)]
        path = " -> ".join([*cycle, cycle[0]])
        raise InputError(
            f"{where}: unbounded cycle {path} (nodes {cycle}). Every cycle needs a bound: add "
            "'loop: {expected_iterations: <mean>, max_iterations: <worst case>}' to its back "
            f"edge (e.g. '{cycle[-1]} -> {cycle[0]}')."
        )
    for e in edges:
        if e.loop is not None and e.src != e.dst and not nx.has_path(forward, e.dst, e.src):
            raise InputError(
                f"{where}: edge '{e.src} -> {e.dst}' has 'loop' but '{e.dst}' does not lead "
                f"back to '{e.src}' through forward edges, so it closes no cycle. Remove "
                "'loop', or point the edge at a node upstream of its source."
            )


def _unknown_node(ids: Sequence[str], id: str, where: str | None = None) -> str:
    ids = list(ids)
    close = difflib.get_close_matches(id, ids, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    prefix = f"{where}: " if where else ""
    return f"{prefix}no node '{id}'.{hint} Nodes: {ids}."


# --------------------------------------------------------------------------------------------
# Builders: dict / YAML / code
# --------------------------------------------------------------------------------------------

NODE_KEYS = ("kind", "devices", "subgraph")
EDGE_KEYS = ("src", "dst", "payload_bytes", "probability", "loop")
LOOP_KEYS = ("expected_iterations", "max_iterations")
SUBGRAPH_KEYS = ("nodes", "edges", "description", "name")
WORKLOAD_KEYS = (
    "name",
    "description",
    "request_rate_per_s",
    "sla",
    "baselines",
    "profile",
    "nodes",
    "edges",
)
"""Top-level keys of a workload file (the graph's and the plan's)."""


def _loop_from_dict(raw: Any, where: str) -> Loop:
    loop = as_mapping(raw, where, "loop", LOOP_KEYS)
    for key in LOOP_KEYS:
        if key not in loop:
            raise InputError(
                f"{where}: field 'loop.{key}' is missing. Write 'loop: {{expected_iterations: "
                "<mean>, max_iterations: <worst case>}}'."
            )
    expected = as_number(loop["expected_iterations"], where, "loop.expected_iterations")
    maximum = as_integer(loop["max_iterations"], where, "loop.max_iterations")
    if expected > maximum:
        raise InputError(
            f"{where}: loop.expected_iterations {expected:g} exceeds loop.max_iterations "
            f"{maximum}. Raise max_iterations or lower expected_iterations."
        )
    return Loop(expected_iterations=expected, max_iterations=maximum)


def _node_from_dict(node_id: str, raw: Any, source: str, prefix: str) -> Node:
    where = f"{source}: node '{prefix}{node_id}'"
    if not isinstance(raw, Mapping):
        raise InputError(
            f"{where} must be a mapping with at least 'kind', got {type(raw).__name__} {raw!r}. "
            "Write it as 'id: {kind: ..., ...}'."
        )
    if "kind" not in raw:
        raise InputError(
            f"{where}: field 'kind' is missing. Use one of {[k.value for k in TaskKind]}."
        )
    kind = as_kind(raw["kind"], where)
    subgraph = None
    if "subgraph" in raw:
        if kind is not TaskKind.AGENT:
            raise InputError(
                f"{where}: only agent nodes have 'subgraph', but this node is {kind.value}. Set "
                "'kind: agent' or remove 'subgraph'."
            )
        sub = raw["subgraph"]
        if not isinstance(sub, Mapping):
            raise InputError(
                f"{where}: field 'subgraph' must be a mapping with 'nodes' and 'edges', got "
                f"{type(sub).__name__}."
            )
        check_known_keys(sub, SUBGRAPH_KEYS, where, "field 'subgraph'")
        subgraph = _graph_from_dict(
            sub, source, f"{prefix}{node_id}/", name=str(sub.get("name", node_id))
        )
    elif kind is TaskKind.AGENT:
        raise InputError(
            f"{where}: an agent node needs 'subgraph: {{nodes: ..., edges: ...}}'. Add the "
            "nested graph, or give the node another kind."
        )
    params = {k: v for k, v in raw.items() if k not in NODE_KEYS}
    return Node(
        id=node_id,
        kind=kind,
        params=normalize_params(kind, params, where),
        subgraph=subgraph,
        devices=as_devices(raw.get("devices"), where),
    )


def _edge_from_dict(raw: Any, index: int, source: str, prefix: str) -> Edge:
    where = f"{source}: edge #{index + 1}"
    if not isinstance(raw, Mapping):
        raise InputError(
            f"{where} must be a mapping like '{{src: a, dst: b, payload_bytes: 1024}}', got "
            f"{raw!r}."
        )
    for key in ("src", "dst"):
        if key not in raw or isinstance(raw[key], bool) or not isinstance(raw[key], str | int):
            raise InputError(f"{where}: field '{key}' is missing or not a node id. Got {raw!r}.")
    where = f"{source}: edge '{prefix}{raw['src']} -> {prefix}{raw['dst']}'"
    check_known_keys(raw, EDGE_KEYS, where, "the edge")
    loop = _loop_from_dict(raw["loop"], where) if raw.get("loop") is not None else None
    return Edge(
        src=str(raw["src"]),
        dst=str(raw["dst"]),
        payload_bytes=as_number(raw.get("payload_bytes", 0.0), where, "payload_bytes"),
        probability=as_number(
            raw.get("probability", 1.0), where, "probability", strict=True, maximum=1.0
        ),
        loop=loop,
    )


def _graph_from_dict(data: Mapping[str, Any], source: str, prefix: str, name: str) -> AgentGraph:
    where = f"{source}: subgraph '{prefix[:-1]}'" if prefix else source
    raw_nodes = data.get("nodes")
    if (
        raw_nodes is None
        or not isinstance(raw_nodes, Mapping | Sequence)
        or isinstance(raw_nodes, str)
        or not raw_nodes
    ):
        raise InputError(
            f"{where}: 'nodes' is missing or empty. Give a mapping 'nodes: {{id: {{kind: ..., "
            "...}}, ...}}'."
        )
    nodes: list[Node] = []
    if isinstance(raw_nodes, Mapping):
        items = [(str(k), v) for k, v in raw_nodes.items()]
    else:  # also accept a list of {id: ..., kind: ...}
        items = []
        for i, item in enumerate(raw_nodes):
            if not isinstance(item, Mapping) or "id" not in item:
                raise InputError(
                    f"{where}: node #{i + 1} has no 'id'. Write nodes as a mapping from id to "
                    "fields, or give each list item an 'id'."
                )
            items.append((str(item["id"]), {k: v for k, v in item.items() if k != "id"}))
    for node_id, raw in items:
        nodes.append(_node_from_dict(node_id, raw, source, prefix))
    raw_edges = data.get("edges") or []
    if not isinstance(raw_edges, Sequence) or isinstance(raw_edges, str):
        raise InputError(
            f"{where}: 'edges' must be a list of '{{src: ..., dst: ...}}' mappings, got "
            f"{type(raw_edges).__name__}."
        )
    edges = [_edge_from_dict(raw, i, source, prefix) for i, raw in enumerate(raw_edges)]
    description = str(data.get("description") or "")
    graph_name = str(name)
    # Validate with the file name first, so messages name it; the constructor re-validates.
    _validate_structure(nodes, edges, where)
    return AgentGraph(
        name=graph_name,
        nodes=tuple(nodes),
        edges=tuple(edges),
        description=description.strip(),
        source=source,
    )


def agent_graph_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> AgentGraph:
    """Build an :class:`AgentGraph` from the workload dict format.

    Top-level keys other than ``name``, ``description``, ``nodes`` and ``edges`` (the plan's
    ``request_rate_per_s``, ``sla``, ``baselines``, ``profile``) are ignored here; a key that is
    none of :data:`WORKLOAD_KEYS`, or an unknown key inside a node or edge, is an error that
    suggests the closest valid key.

    Parameters
    ----------
    data
        ``{name, description, nodes: {id: {kind, ...}}, edges: [{src, dst, ...}]}``. Any
        mapping works (a Hydra ``DictConfig`` too).
    source
        File name (or other origin) used in error messages.

    Returns
    -------
    AgentGraph

    Raises
    ------
    InputError
        Any malformed node, edge or structure; the message names ``source`` and the node/edge.

    Examples
    --------
    >>> g = agent_graph_from_dict({
    ...     "name": "one_llm",
    ...     "nodes": {"llm": {"kind": "model_execution", "model": "llama-3-8b",
    ...                       "input_tokens": 1000, "output_tokens": 500}},
    ... })
    >>> g.node("llm").kind
    <TaskKind.MODEL: 'model_execution'>
    """
    if not isinstance(data, Mapping):
        raise InputError(
            f"{source}: expected a mapping with 'name', 'nodes' and 'edges', got "
            f"{type(data).__name__}. Check the file's top level."
        )
    check_known_keys(data, WORKLOAD_KEYS, source, "the workload's top level")
    name = data.get("name")
    if name is None:
        name = Path(source).stem if source and not source.startswith("<") else "graph"
    # LLM calls with a request-size histogram or trace become one node per size bucket.
    data = expand_size_buckets(data, source)
    return _graph_from_dict(data, source, "", name=str(name))


def load_agent_graph(path: str | Path) -> AgentGraph:
    """Read an agent graph from a YAML workload file.

    Parameters
    ----------
    path
        YAML file in the format of :func:`agent_graph_from_dict`.

    Returns
    -------
    AgentGraph

    Raises
    ------
    InputError
        Unreadable file, malformed YAML (with line and column), or an invalid graph; messages
        name the file.
    """
    path = Path(path)
    data = read_yaml_file(path)
    return agent_graph_from_dict(data, source=str(path))


class GraphBuilder:
    """Build an :class:`AgentGraph` in code; the result equals the one loaded from YAML.

    Examples
    --------
    >>> g = (GraphBuilder("pipeline")
    ...      .add_node("embed", "model_execution", model="bge-base-en", tokens=256)
    ...      .add_node("db", "memory_lookup", vectors=1_000_000, dim=768, top_k=5)
    ...      .add_edge("embed", "db", payload_bytes=3072)
    ...      .build())
    >>> [n.id for n in g.nodes]
    ['embed', 'db']
    """

    def __init__(self, name: str, description: str = "") -> None:
        self.name = name
        self.description = description
        self._nodes: list[Node] = []
        self._edges: list[Edge] = []

    def add_node(
        self,
        id: str,
        kind: TaskKind | str,
        *,
        devices: Sequence[str] | None = None,
        subgraph: AgentGraph | Mapping[str, Any] | None = None,
        **params: Any,
    ) -> GraphBuilder:
        """Add a node; ``params`` are the same fields as in YAML (e.g. ``model=``,
        ``input_tokens=``, ``lookup={...}``, ``work={...}``)."""
        where = f"graph '{self.name}': node '{id}'"
        task_kind = as_kind(kind, where)
        if isinstance(subgraph, Mapping):
            subgraph = _graph_from_dict(
                subgraph, f"graph '{self.name}'", f"{id}/", name=str(subgraph.get("name", id))
            )
        self._nodes.append(
            Node(
                id=id,
                kind=task_kind,
                params=normalize_params(task_kind, params, where),
                subgraph=subgraph,
                devices=as_devices(devices, where),
            )
        )
        return self

    def add_edge(
        self,
        src: str,
        dst: str,
        *,
        payload_bytes: float = 0.0,
        probability: float = 1.0,
        loop: Loop | Mapping[str, Any] | None = None,
    ) -> GraphBuilder:
        """Add an edge; pass ``loop`` (a :class:`Loop` or its fields) to make it a back edge."""
        where = f"graph '{self.name}': edge '{src} -> {dst}'"
        if isinstance(loop, Mapping):
            loop = _loop_from_dict(loop, where)
        self._edges.append(
            Edge(src=src, dst=dst, payload_bytes=payload_bytes, probability=probability, loop=loop)
        )
        return self

    def build(self) -> AgentGraph:
        """Validate and return the graph."""
        return AgentGraph(
            name=self.name,
            nodes=tuple(self._nodes),
            edges=tuple(self._edges),
            description=self.description,
        )
