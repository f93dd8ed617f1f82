"""The decomposed workload's data types: operators, their work vectors, edges and loops.

:func:`hetopt.graph.decompose.decompose` builds an :class:`OperatorGraph` from an agent graph;
everything downstream (cost table, placement problem, replay, MLIR) reads these frozen records.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from enum import StrEnum

import networkx as nx

from hetopt.errors import UnknownNameError
from hetopt.graph.architectures import BYTES_PER_ELEMENT, Architecture

__all__ = [
    "BYTES_PER_ELEMENT",
    "LlmWork",
    "OpEdge",
    "OpKind",
    "OpLoop",
    "Operator",
    "OperatorGraph",
    "Work",
]


class OpKind(StrEnum):
    """Operator kinds after decomposition."""

    PREFILL = "prefill"
    DECODE = "decode"
    KV_TRANSFER = "kv_transfer"
    ENCODER = "encoder"
    TOOL_LOOKUP = "tool_lookup"
    TOOL_COMPUTE = "tool_compute"
    MEMORY_LOOKUP = "memory_lookup"
    COMPUTE = "compute"
    CONTROL = "control"
    OBSERVATION = "observation"
    KV_CACHE = "kv_cache"


@dataclass(frozen=True)
class LlmWork:
    """What an LLM phase needs for the serving model: the architecture and the sequence lengths.

    Attributes
    ----------
    arch
        Model architecture.
    precision
        Weight/KV precision (a key of :data:`BYTES_PER_ELEMENT`).
    input_tokens, output_tokens
        Prompt length and generated tokens of one request.
    """

    arch: Architecture
    precision: str
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Work:
    """Honest resource vector of one execution of an operator (θ_i of §3.1).

    Attributes
    ----------
    flops
        Floating-point (or scalar) operations.
    mem_bytes
        Memory traffic (bytes read + written).
    net_bytes
        Bytes sent and received over the network.
    footprint_bytes
        Resident memory while deployed (weights, an index).
    static_latency_s
        Latency no device can shorten (l_i of §3.1), e.g. an external API's response time.
    precision
        Arithmetic precision of the FLOPs.
    """

    flops: float = 0.0
    mem_bytes: float = 0.0
    net_bytes: float = 0.0
    footprint_bytes: float = 0.0
    static_latency_s: float = 0.0
    precision: str = "fp16"


@dataclass(frozen=True)
class Operator:
    """One placeable (or transfer) step of the decomposed workload.

    Attributes
    ----------
    id
        ``"<node path>.<phase>"`` (``llm.prefill``, ``web_search.lookup``) or the node path for
        single-operator nodes (``stt``); nested agents prefix ``"agent/"``.
    kind
        Operator kind.
    node_id
        Path of the agent-graph node it came from (``"researcher/search"``).
    visits
        Expected executions per request.
    max_visits
        Executions per request with every loop at ``max_iterations``; never below ``visits``
        (left at its default it equals ``visits``).
    llm
        Architecture and sequence lengths, for ``PREFILL`` and ``DECODE``.
    work
        Resource vector of one execution. For ``PREFILL``/``DECODE`` it is the batch-1 figure
        (a serving model should use ``llm`` and batch); ``None`` for ``KV_TRANSFER``.
    payload_bytes
        ``KV_TRANSFER`` only: KV-cache bytes of ``input_tokens`` (formula (3), batch 1).
    devices
        Placement restriction inherited from the node (and its enclosing agents).
    """

    id: str
    kind: OpKind
    node_id: str
    visits: float
    max_visits: float = 0.0
    llm: LlmWork | None = None
    work: Work | None = None
    payload_bytes: float = 0.0
    devices: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.max_visits < self.visits:
            object.__setattr__(self, "max_visits", self.visits)

    @property
    def placeable(self) -> bool:
        """False only for ``KV_TRANSFER``: it runs on the link between prefill and decode."""
        return self.kind is not OpKind.KV_TRANSFER

    @property
    def tokens_per_visit(self) -> int:
        """Tokens one execution handles: the prompt for a prefill, the generated tokens for a
        decode, 0 for every other kind (the one home of this rule)."""
        if self.llm is None:
            return 0
        if self.kind is OpKind.PREFILL:
            return self.llm.input_tokens
        return self.llm.output_tokens if self.kind is OpKind.DECODE else 0


@dataclass(frozen=True)
class OpEdge:
    """A forward dependency between operators, carrying ``payload_bytes`` per traversal."""

    src: str
    dst: str
    payload_bytes: float
    probability: float = 1.0  # branch probability of the node-level edge it comes from


@dataclass(frozen=True)
class OpLoop:
    """A back edge in operator space and the loop it closes.

    Attributes
    ----------
    back_src, back_dst
        Operator ids of the back edge (last operator of the source node -> first operator of
        the destination node, e.g. ``web_search.compute -> llm.prefill``).
    payload_bytes
        Bytes on the back edge per traversal.
    expected_iterations, max_iterations
        Times the back edge is taken per entry into the loop (expected, worst case).
    body
        Operators of the loop, ``back_dst`` to ``back_src`` inclusive, in topological order: the
        forward paths ``back_dst ~> back_src`` plus the bodies of loops nested inside.
    """

    back_src: str
    back_dst: str
    payload_bytes: float
    expected_iterations: float
    max_iterations: int
    body: tuple[str, ...]


@dataclass(frozen=True)
class OperatorGraph:
    """The decomposed workload: operators, forward edges (a DAG) and bounded loops.

    Attributes
    ----------
    name
        Workload name.
    ops
        Operators in decomposition order (a topological order of the forward edges).
    edges
        Forward edges only; the graph they form is acyclic.
    loops
        One entry per back edge.
    sinks
        True sinks: operators with no outgoing edge at all, back edges included (the forward
        sinks if no operator qualifies, as in ``a -> b -> a``).
    sources
        Operators with no forward in-edge.
    """

    name: str
    ops: tuple[Operator, ...]
    edges: tuple[OpEdge, ...]
    loops: tuple[OpLoop, ...]
    sinks: tuple[str, ...]
    sources: tuple[str, ...]

    @functools.cached_property
    def _index(self) -> dict[str, Operator]:
        return {o.id: o for o in self.ops}

    def op(self, id: str) -> Operator:
        """The operator with this id.

        Raises
        ------
        UnknownNameError
            No such operator; the message lists the closest ids.
        """
        try:
            return self._index[id]
        except KeyError:
            close = difflib.get_close_matches(id, list(self._index), n=3)
            hint = f" Did you mean {close}?" if close else ""
            raise UnknownNameError(
                f"graph '{self.name}': no operator '{id}'.{hint} Operators: {list(self._index)}."
            ) from None

    def topological_order(self) -> tuple[str, ...]:
        """Operator ids in a deterministic topological order of the forward edges."""
        position = {o.id: i for i, o in enumerate(self.ops)}
        return tuple(
            nx.lexicographical_topological_sort(self.to_networkx(), key=position.__getitem__)
        )

    def to_networkx(self, include_back_edges: bool = False) -> nx.DiGraph:
        """The operator graph as a :class:`networkx.DiGraph`.

        Parameters
        ----------
        include_back_edges
            Add the loops' back edges too (attribute ``back=True``; the graph is then cyclic).

        Returns
        -------
        networkx.DiGraph
            Node attribute ``op`` (the :class:`Operator`); edge attributes ``payload_bytes`` and
            ``back``.
        """
        g = nx.DiGraph(name=self.name)
        for o in self.ops:
            g.add_node(o.id, op=o)
        for e in self.edges:
            g.add_edge(e.src, e.dst, payload_bytes=e.payload_bytes, back=False)
        if include_back_edges:
            for lp in self.loops:
                g.add_edge(
                    lp.back_src,
                    lp.back_dst,
                    payload_bytes=lp.payload_bytes,
                    back=True,
                    expected_iterations=lp.expected_iterations,
                    max_iterations=lp.max_iterations,
                )
        return g


def tokens_per_request(graph: OperatorGraph) -> float:
    """LLM tokens one request moves through ``graph``: every operator's tokens per visit times
    its visits (the denominator of $/Mtok)."""
    return float(sum(op.tokens_per_visit * op.visits for op in graph.ops))
