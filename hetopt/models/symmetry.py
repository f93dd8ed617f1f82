"""Interchangeable operators, whose order the formulations may fix (symmetry breaking).

Two operators are **twins** when swapping them changes nothing: the same visits, kind and
tokens, the same options in the same order (device, configuration, latency, devices, pool
loads and footprints, direct cost, LLM pool key and load), the same edges to the same other
operators with the same latency, cost and probability, the same loops and both sinks or
neither. Mélange's slices (:mod:`hetopt.melange`) are twins. The slices of an LLM call
(``size_slices``) are not, one operator at a time: each slice's prefill feeds its own decode, so
they are interchangeable only as prefill-decode pairs, which this does not detect. Any plan can be permuted among twins, so requiring each twin's chosen option to come no
earlier in the common option order than its predecessor's cuts off only copies of plans: the
optimum is kept, and the solver no longer explores ``k!`` orderings of ``k`` twins.

Examples
--------
>>> from hetopt.testing import Opt, tiny_problem
>>> twins = {f"s{k}": [Opt("A", 1.0, key="A", load=0.5), Opt("B", 1.0, key="B", load=0.2)]
...          for k in range(3)}
>>> twin_chains(tiny_problem({**twins, "other": [Opt("A", 1.0, dedicated=1)]}, {"A": 1, "B": 2}))
[[0, 1, 2]]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hetopt.problem import PlacementProblem


def _options(problem: PlacementProblem, op: int) -> tuple[Any, ...]:
    p = problem
    return tuple(
        (
            int(p.opt_device[o]),
            p.opt_config[o],
            float(p.opt_latency_s[o]),
            int(p.opt_dedicated[o]),
            bool(p.opt_pooled[o]),
            float(p.opt_pool_load[o]),
            float(p.opt_pool_mem_bytes[o]),
            float(p.opt_direct_usd_per_h[o]),
            int(p.opt_key[o]),  # type: ignore[index]
            float(p.opt_key_load[o]),  # type: ignore[index]
            int(p.opt_key_dim[o]),  # type: ignore[index]
        )
        for o in p.options_of(op)
    )


def twin_chains(problem: PlacementProblem) -> list[list[int]]:
    """Groups (of two or more) of interchangeable operators, each in index order."""
    p = problem
    prob = p.edge_probability if p.edge_probability is not None else np.ones(len(p.edge_src))
    ins: dict[int, list[tuple[Any, ...]]] = {i: [] for i in range(p.n_ops)}
    outs: dict[int, list[tuple[Any, ...]]] = {i: [] for i in range(p.n_ops)}
    for e, (u, v) in enumerate(zip(p.edge_src, p.edge_dst, strict=True)):
        what = (
            float(p.edge_latency_s[e]),
            float(p.edge_cost_usd_per_h[e]),
            float(prob[e]),
            bool(p.edge_is_back[e]),
        )
        outs[int(u)].append((int(v), *what))
        ins[int(v)].append((int(u), *what))
    loops = {i: tuple(k for k, lp in enumerate(p.loops) if i in lp.body_ops) for i in ins}
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i in range(p.n_ops):
        signature = (
            float(p.op_visits[i]),
            p.op_kind[i],
            float(p.op_tokens[i]),  # type: ignore[index]
            _options(p, i),
            tuple(sorted(ins[i])),
            tuple(sorted(outs[i])),
            loops[i],
            i in p.sinks,
        )
        groups.setdefault(signature, []).append(i)
    # A twin that is an endpoint of another's edge is not interchangeable with it: the
    # signatures already differ then (the edge names the other operator).
    return [ops for ops in groups.values() if len(ops) > 1]
