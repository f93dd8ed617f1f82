"""The path walker: a request's route through the placed graph, unrolled into instances.

A request's path is fixed by a short sequence of discrete decisions drawn when it arrives:
which branch it takes where edges carry probabilities, and how many passes each loop makes
(binomial, mean ``expected_iterations``, at most ``max_iterations``) every time the loop is
entered. :func:`unroll` turns those decisions into one operator *instance* per pass, each with
the instances it waits for (an operator fed by parallel branches waits for all of them,
AND-join), the transfer time of each of those edges and the link it queues on. It is a pure
function of the placed graph (:class:`PathGraph`) and the decisions; :class:`PathSampler` draws
the decisions and caches the paths already unrolled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import networkx as nx
import numpy as np

from hetopt.problem import LoopSpec, PlacementProblem

Decision = tuple[Any, ...]
"""``("binomial", n, p)`` (a loop's passes) or ``("choice", weights)`` (a branch)."""
Decide = Callable[[Decision], int]
Context = tuple[tuple[int, int], ...]
"""The pass each enclosing loop is on: ``((loop, pass), ...)`` in loop order."""
Dep = tuple[int, float, int]
"""What an instance waits for: ``(instance, transfer s, link or -1)``."""


@dataclass(frozen=True)
class RequestPath:
    """One request's unrolled path.

    Attributes
    ----------
    ops
        Operator of each instance, in a topological order of the instances.
    deps
        Per instance, the instances it waits for with the transfer time and link of each edge.
    predicted_s
        The planner's latency for this path (longest finish over the instances).
    passes
        Loop passes taken (back edges followed).
    chain
        True when each instance waits for the one before it only (runs in one process).
    tokens
        Tokens of the path's LLM phases (prompt tokens of a prefill, generated of a decode).
    """

    ops: list[int]
    deps: list[list[Dep]]
    predicted_s: float
    passes: int
    chain: bool
    tokens: float


@dataclass(frozen=True)
class PathGraph:
    """The placed graph as the walker reads it.

    Attributes
    ----------
    out
        Forward edges leaving each operator.
    probability
        Probability of each edge (1: always taken; below 1: one of its source's alternatives).
    sources
        Operators no forward edge enters (a request starts at all of them).
    loops, in_loop, loop_only, back_of
        The loops; the loops each operator is in; the loops it runs *only* on passes that go
        round again (it cannot reach the end of the request without that loop's back edge);
        the loop whose back edge leaves each operator.
    edge_dst, transfer_s, edge_link
        Each edge's destination, transfer time on this placement (0 between operators on the
        same device type) and link pool (-1: none).
    op_latency_s, op_tokens
        Each operator's planned latency of one execution and its tokens.
    """

    out: dict[int, list[int]]
    probability: np.ndarray
    sources: tuple[int, ...]
    loops: tuple[LoopSpec, ...]
    in_loop: tuple[frozenset[int], ...]
    loop_only: tuple[frozenset[int], ...]
    back_of: dict[int, int]
    edge_dst: np.ndarray
    transfer_s: np.ndarray
    edge_link: np.ndarray
    op_latency_s: np.ndarray
    op_tokens: np.ndarray


def path_graph(
    problem: PlacementProblem,
    cross: np.ndarray,
    op_latency_s: np.ndarray,
    op_tokens: np.ndarray,
    edge_link: np.ndarray,
) -> PathGraph:
    """The :class:`PathGraph` of ``problem`` under a placement.

    Parameters
    ----------
    problem
        The placement problem (edges, loops, sinks).
    cross
        1.0 for each edge whose endpoints run on different device types, else 0.0.
    op_latency_s, op_tokens
        Per operator, its planned latency of one execution and its tokens.
    edge_link
        Per edge, the link pool its transfers queue on (-1: none).
    """
    fwd = problem.forward_edges
    out: dict[int, list[int]] = {}
    for e in fwd:
        out.setdefault(int(problem.edge_src[e]), []).append(int(e))
    prob = (
        problem.edge_probability
        if problem.edge_probability is not None
        else np.ones(len(problem.edge_src))
    )
    g = nx.DiGraph()
    g.add_nodes_from(range(problem.n_ops))
    g.add_edges_from((int(problem.edge_src[e]), int(problem.edge_dst[e])) for e in fwd)
    in_loop = tuple(
        frozenset(k for k, lp in enumerate(problem.loops) if i in lp.body_ops)
        for i in range(problem.n_ops)
    )
    return PathGraph(
        out=out,
        probability=prob,
        sources=tuple(v for v in g.nodes if g.in_degree(v) == 0),
        loops=problem.loops,
        in_loop=in_loop,
        loop_only=_loop_only(problem, g),
        back_of={int(problem.edge_src[lp.back_edge]): k for k, lp in enumerate(problem.loops)},
        edge_dst=problem.edge_dst,
        transfer_s=problem.edge_latency_s * cross,
        edge_link=edge_link,
        op_latency_s=op_latency_s,
        op_tokens=op_tokens,
    )


def _loop_only(problem: PlacementProblem, forward: nx.DiGraph) -> tuple[frozenset[int], ...]:
    """Per operator, the loops ``k`` it runs only on passes that go round ``k`` again.

    An operator is loop-only for loop ``k`` when it cannot reach the end of the request without
    loop ``k``'s own back edge (other loops' back edges may be taken).
    """
    sinks = set(problem.sinks)
    only: list[set[int]] = [set() for _ in range(problem.n_ops)]
    for k, lp in enumerate(problem.loops):
        gk = forward.copy()
        gk.add_edges_from(
            (int(problem.edge_src[o.back_edge]), int(problem.edge_dst[o.back_edge]))
            for j, o in enumerate(problem.loops)
            if j != k
        )
        for i in lp.body_ops:
            if i not in sinks and not nx.descendants(gk, i) & sinks:
                only[i].add(k)
    return tuple(frozenset(x) for x in only)


def draw(rng: np.random.Generator, decision: Decision) -> int:
    """Draw one decision: a binomial count of loop passes, or the index of a branch.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> draw(rng, ("choice", (0.0, 1.0))), 0 <= draw(rng, ("binomial", 6, 0.5)) <= 6
    (1, True)
    """
    if decision[0] == "binomial":
        return int(rng.binomial(decision[1], decision[2]))
    return int(rng.choice(len(decision[1]), p=np.asarray(decision[1])))


class _Unrolling:
    """The state of one :func:`unroll`: instances made so far and loop budgets drawn."""

    def __init__(self, g: PathGraph, decide: Decide) -> None:
        self.g = g
        self.decide = decide
        self.inst_op: list[int] = []
        self.deps: list[list[Dep]] = []
        self.index: dict[tuple[int, Context], int] = {}
        self.budget: dict[tuple[int, Context], int] = {}  # passes of a loop entered in a context
        self.taken: dict[tuple[int, Context], int] = {}  # passes of it taken so far
        self.passes = 0
        # The loops that enclose each loop: their body strictly contains its body and they
        # enter elsewhere; its passes are drawn afresh in each of their passes (the planner's
        # loops with different entries multiply). Loops with one entry (several back edges
        # into one head) count their passes independently, as the planner adds them.
        bodies = [frozenset(lp.body_ops) for lp in g.loops]
        heads = [int(g.edge_dst[lp.back_edge]) for lp in g.loops]
        self.outer = [
            frozenset(j for j, b in enumerate(bodies) if bodies[k] < b and heads[j] != heads[k])
            for k in range(len(bodies))
        ]
        # loops whose entry lies in each loop's body and whose body does not contain it: an
        # operator of one of these has not left that body for good (its back edge leads there)
        self.returns_to = [
            frozenset(j for j, h in enumerate(heads) if h in a and j != k and not a < bodies[j])
            for k, a in enumerate(bodies)
        ]

    def outer_ctx(self, k: int, ctx: Context) -> Context:
        """The passes of loop ``k``'s enclosing loops in ``ctx``: the context its budget is
        drawn in."""
        return tuple(ji for ji in ctx if ji[0] in self.outer[k])

    def iterations(self, k: int) -> int:
        """Passes loop ``k`` makes this time it is entered (a binomial decision)."""
        lp = self.g.loops[k]
        if lp.max_iterations <= 0 or lp.expected_iterations <= 0:
            return 0
        return self.decide(
            ("binomial", lp.max_iterations, min(1.0, lp.expected_iterations / lp.max_iterations))
        )

    def context(self, v: int, keep: dict[int, int]) -> Context:
        """``v``'s context, keeping the passes of ``keep``; loops entered here draw passes."""
        full = tuple((k, keep.get(k, 0)) for k in sorted(self.g.in_loop[v]))
        for k in self.g.in_loop[v] - keep.keys():
            key = (k, self.outer_ctx(k, full))
            if key not in self.budget:
                self.budget[key] = self.iterations(k)
        return full

    def instance(self, v: int, ctx: Context) -> int:
        """The instance of operator ``v`` in context ``ctx``, made on first use."""
        key = (v, ctx)
        if key not in self.index:
            self.index[key] = len(self.inst_op)
            self.inst_op.append(v)
            self.deps.append([])
        return self.index[key]

    def remaining(self, k: int, ctx: Context, cdict: dict[int, int]) -> bool:
        """True while loop ``k`` still has passes left in context ``ctx``."""
        return cdict[k] < self.budget[(k, self.outer_ctx(k, ctx))]

    def entering(self, u: int, v: int) -> frozenset[int]:
        """The loops whose part that runs only on passes that go round again ``u -> v``
        enters."""
        g = self.g
        return (g.loop_only[v] - g.loop_only[u]) & g.in_loop[u]

    def goes_round(self, u: int, v: int, ctx: Context, cdict: dict[int, int]) -> bool:
        """True when ``u -> v`` goes round loops that all have passes left."""
        entering = self.entering(u, v)
        return bool(entering) and all(self.remaining(k, ctx, cdict) for k in entering)

    def link(self, me: int, e: int, v: int, vctx: Context) -> tuple[int, Context]:
        """Make ``v``'s instance in ``vctx`` wait for instance ``me`` over edge ``e``."""
        dep = self.instance(v, vctx)
        self.deps[dep].append((me, float(self.g.transfer_s[e]), int(self.g.edge_link[e])))
        return v, vctx

    def forward(self, u: int, ctx: Context) -> list[tuple[int, Context]]:
        """Follow ``u``'s forward edges in context ``ctx``; returns the instances reached."""
        g, me, cdict = self.g, self.index[(u, ctx)], dict(ctx)
        edges = g.out.get(u, [])
        alternatives = [e for e in edges if g.probability[e] < 1.0]
        chosen = None
        if alternatives:
            # While some alternatives go round loops with passes left, the choice is among
            # those, so that each loop makes the passes it drew (the planner counts a loop's
            # passes apart from the branch). Otherwise it is among all of them at their
            # probabilities, and one into a spent loop ends this path, as the planner's
            # per-pass probability says.
            going = [e for e in alternatives if self.goes_round(u, int(g.edge_dst[e]), ctx, cdict)]
            pool = going if 0 < len(going) < len(alternatives) else alternatives
            weights = g.probability[pool]
            chosen = pool[self.decide(("choice", tuple(weights / weights.sum())))]
        reached = []
        for e in edges:
            if g.probability[e] < 1.0 and e != chosen:
                continue
            v = int(g.edge_dst[e])
            # into the part of a loop that only runs when the loop goes round again
            if not all(self.remaining(k, ctx, cdict) for k in self.entering(u, v)):
                continue
            # out of a loop: only once its passes are used up
            leaving = {
                k
                for k in (g.in_loop[u] - g.in_loop[v]) - g.loop_only[u]
                if not self.returns_to[k] & g.in_loop[v]
            }
            if any(self.remaining(k, ctx, cdict) for k in leaving):
                continue
            keep = {k: i for k, i in cdict.items() if k in g.in_loop[v]}
            reached.append(self.link(me, e, v, self.context(v, keep)))
        return reached

    def back(self, u: int, ctx: Context) -> tuple[int, Context] | None:
        """Go round the loop whose back edge leaves ``u`` once more, if it has passes left."""
        k = self.g.back_of.get(u)
        if k is None or not self.remaining(k, ctx, dict(ctx)):
            return None
        e = self.g.loops[k].back_edge
        v = int(self.g.edge_dst[e])
        key = (k, self.outer_ctx(k, ctx))
        self.taken[key] = self.taken.get(key, 0) + 1
        passes = dict(ctx)
        passes[k] += 1
        for j in self.g.in_loop[v] - passes.keys():
            # a loop that shares the entry v but not u keeps the passes it has made so far
            passes[j] = self.taken.get((j, self.outer_ctx(j, ctx)), 0)
        vctx = tuple((j, passes[j]) for j in sorted(self.g.in_loop[v]))
        self.passes += 1
        return self.link(self.index[(u, ctx)], e, v, vctx)

    def walk(self) -> RequestPath:
        """Unroll the whole request, breadth first from the sources."""
        queue: list[tuple[int, Context]] = []
        for s in self.g.sources:
            c = self.context(s, {})
            self.instance(s, c)
            queue.append((s, c))
        seen: set[tuple[int, Context]] = set()
        while queue:
            u, ctx = queue.pop(0)
            if (u, ctx) in seen:
                continue
            seen.add((u, ctx))
            queue += self.forward(u, ctx)
            again = self.back(u, ctx)
            if again is not None:
                queue.append(again)
        return self.path()

    def path(self) -> RequestPath:
        """The :class:`RequestPath` of the instances made."""
        inst_op, deps = self.inst_op, self.deps
        finish = [0.0] * len(inst_op)
        for n in range(len(inst_op)):  # instances are created in a topological order
            ready = max((finish[d] + lat for d, lat, _ in deps[n]), default=0.0)
            finish[n] = ready + float(self.g.op_latency_s[inst_op[n]])
        # A chain (each instance waits for the one before it only) runs in one process.
        chain = all(
            len(deps[n]) == (1 if n else 0) and (n == 0 or deps[n][0][0] == n - 1)
            for n in range(len(inst_op))
        )
        return RequestPath(
            inst_op,
            deps,
            max(finish),
            self.passes,
            chain,
            float(self.g.op_tokens[inst_op].sum()),
        )


def unroll(g: PathGraph, decide: Decide) -> RequestPath:
    """Unroll one request's path through ``g``, taking each decision from ``decide``.

    Parameters
    ----------
    g
        The placed graph.
    decide
        Called with each :data:`Decision` in the order the walk meets them; returns the value
        taken (the number of passes, or the index of the branch).

    Returns
    -------
    RequestPath
        The instances (one per operator per loop pass), their dependencies, the planner's
        latency for this path and the number of loop passes taken.
    """
    return _Unrolling(g, decide).walk()


class Sampler(Protocol):
    """What the simulation draws each request's path from (:class:`PathSampler`, or a fleet's
    sampler that first picks the tenant, :mod:`hetopt.replay.fleet`)."""

    def sample(self, rng: np.random.Generator) -> RequestPath:
        """A request's unrolled path, drawn with ``rng``."""


class PathSampler:
    """Draws requests' paths, caching each unrolled path by the decisions that led to it.

    Paths are determined by a short sequence of discrete decisions (loop passes, branch
    choices), so they are kept in a trie of decisions: a request whose decisions were seen
    before reuses that path instead of walking the graph again. The random draws are the same
    either way.
    """

    def __init__(self, g: PathGraph) -> None:
        self.g = g
        self._trie: dict[str, Any] = {}

    def sample(self, rng: np.random.Generator) -> RequestPath:
        """A request's unrolled path, drawn with ``rng``."""
        node = self._trie
        drawn: list[int] = []
        while "path" not in node:
            if "kind" not in node:  # unexplored: walk the graph with these decisions first
                return self._walk(rng, drawn)
            value = draw(rng, node["kind"])
            drawn.append(value)
            node = node["children"].setdefault(value, {})
        path: RequestPath = node["path"]
        return path

    def _walk(self, rng: np.random.Generator, prefix: list[int]) -> RequestPath:
        decisions: list[tuple[Decision, int]] = []
        queue = list(prefix)

        def decide(kind: Decision) -> int:
            value = queue.pop(0) if queue else draw(rng, kind)
            decisions.append((kind, value))
            return value

        path = unroll(self.g, decide)
        node = self._trie
        for kind, value in decisions:
            node["kind"] = kind
            node = node.setdefault("children", {}).setdefault(value, {})
        node["path"] = path
        return path
