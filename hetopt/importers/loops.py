"""The two graph rules of an import: which edges close cycles, and branch probabilities per pass.

A LangGraph graph says which edges exist; a hetopt workload also says which edges are back
edges (each with a ``loop`` bound) and gives branch probabilities per *pass* of the acyclic
part (:mod:`hetopt.graph.decompose`). :func:`back_edges` finds the former by a depth-first walk
from the entry; :func:`pass_probabilities` turns a router's per-visit probabilities (what a
trace counts) into the latter.

Examples
--------
>>> pass_probabilities({"tools": 0.6, "answer": 0.4}, in_loop={"tools"}, end_targets=set())
{'tools': 1.0, 'answer': 1.0}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

START, END = "__start__", "__end__"
"""LangGraph's entry and exit nodes (``langgraph.graph.START`` and ``END``)."""


def back_edges(
    nodes: tuple[str, ...], edges: tuple[tuple[str, str, bool], ...]
) -> list[tuple[str, str]]:
    """Edges that close a cycle, found by a depth-first walk from ``__start__`` (then from any
    node not yet reached), in the graph's own order.

    >>> back_edges(("a", "b"), (("__start__", "a", False), ("a", "b", True), ("b", "a", False)))
    [('b', 'a')]
    """
    succ: dict[str, list[str]] = {n: [] for n in (START, *nodes, END)}
    for s, t, _ in edges:
        succ.setdefault(s, []).append(t)
    return dfs_back_edges((START, *nodes), succ)


def dfs_back_edges(
    roots: Sequence[str], succ: Mapping[str, Sequence[str]]
) -> list[tuple[str, str]]:
    """Edges into a node on the depth-first walk's stack: the walk starts at each of ``roots``
    not yet reached, in order, and follows successors in the order ``succ`` lists them (the
    LangGraph import and the trace import both find loops this way).

    >>> dfs_back_edges(["a"], {"a": ["b"], "b": ["c", "a"], "c": ["b"]})
    [('c', 'b'), ('b', 'a')]
    """
    state: dict[str, int] = {}  # 1: on the walk's stack, 2: done
    found: list[tuple[str, str]] = []
    for root in roots:
        if root in state:
            continue
        stack = [(root, iter(succ.get(root, [])))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                found.append((node, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(succ.get(nxt, []))))
    return found


def descendants(succ: Mapping[str, Sequence[str]], start: str) -> set[str]:
    """The nodes reachable from ``start`` in one step or more (``start`` itself only on a
    cycle).

    >>> sorted(descendants({"a": ["b"], "b": ["a", "c"]}, "a"))
    ['a', 'b', 'c']
    """
    seen: set[str] = set()
    todo = list(succ.get(start, ()))
    while todo:
        x = todo.pop()
        if x not in seen:
            seen.add(x)
            todo.extend(succ.get(x, ()))
    return seen


def pass_probabilities(
    per_visit: Mapping[str, float], in_loop: set[str], end_targets: set[str]
) -> dict[str, float]:
    """hetopt's edge probabilities for one routing node, from how often it picks each target.

    A workload's probabilities are per *pass* of its acyclic part; a loop's repetitions are its
    back edge's ``loop`` count, and a loop's exit is taken once per request. So the targets that
    stay in the loop share the passes that continue it (``P(t) / c`` with ``c`` their summed
    per-visit probability) and the exits share the requests (``P(x) / (1 - c)``). When the
    routing node's only exit is ``__end__`` (dropped), the loop's last pass ends the request and
    every body node runs on it (:mod:`hetopt.graph.decompose`), so the in-loop targets keep their
    per-visit probability: ``P(t) * (1 + k)`` is then the expected visits, ``k = c / (1 - c)``.

    Parameters
    ----------
    per_visit
        Target -> probability that one visit of the routing node picks it (``__end__``
        included); sums to 1.
    in_loop
        Targets from which the routing node can be reached again.
    end_targets
        Targets that are ``__end__`` (dropped from the workload).

    Returns
    -------
    dict
        Target -> probability, for the targets that are not ``__end__``.

    Examples
    --------
    >>> pass_probabilities({"researcher": 0.45, "coder": 0.3, "answer": 0.25},
    ...                    in_loop={"researcher", "coder"}, end_targets=set())
    {'researcher': 0.6, 'coder': 0.4, 'answer': 1.0}
    >>> pass_probabilities({"tools": 0.6, "__end__": 0.4}, in_loop={"tools"},
    ...                    end_targets={"__end__"})
    {'tools': 0.6}
    """
    cont = math.fsum(p for t, p in per_visit.items() if t in in_loop)
    exits = [t for t in per_visit if t not in in_loop and t not in end_targets]
    out: dict[str, float] = {}
    for t, p in per_visit.items():
        if t in end_targets:
            continue
        if t in in_loop:
            out[t] = p / cont if exits and cont > 0 else p
        else:
            out[t] = p / (1.0 - cont) if in_loop and cont < 1.0 else p
    return {t: round(min(p, 1.0), 12) for t, p in out.items()}
