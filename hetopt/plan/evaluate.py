"""Evaluate one assignment directly from the problem data, without any formulation.

This is the independent recomputation behind :func:`hetopt.plan.verify.verify_plan` and the
brute-force backend: device counts are ceilings of summed loads, the end-to-end latency is a
longest-path recursion over the graph in topological order, and TCO is a sum of $/h.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np

from hetopt.problem import PlacementProblem, replicas_for_load

LATENCY_TOL_S = 1e-6  # one CP-SAT time step: rounding may meet an SLA exactly


@dataclass(frozen=True)
class Evaluation:
    """Everything a plan implies, recomputed from raw problem data.

    Attributes
    ----------
    devices_per_type
        Dedicated + pooled devices per device type.
    pool_counts
        Pooled devices per device type (ceiling of the summed pooled load).
    e2e_latency_s
        Worst source-to-sink latency with loops unrolled per the SLA.
    tco_usd_per_h
        Devices x $/h + profiled costs + cross-device transfer costs.
    objective_usd_per_h
        TCO plus the soft-SLA penalty.
    violations
        Human-readable constraint violations (empty when feasible).
    """

    devices_per_type: np.ndarray
    pool_counts: np.ndarray
    op_latency_s: np.ndarray
    cross: np.ndarray
    e2e_latency_s: float
    tco_usd_per_h: float
    objective_usd_per_h: float
    carbon_kg_per_h: float
    violations: tuple[str, ...]

    @property
    def feasible(self) -> bool:
        """True when no constraint is violated."""
        return not self.violations


def _longest_finish(
    problem: PlacementProblem,
    lat: np.ndarray,
    cross: np.ndarray,
    nodes: set[int] | None,
    edges: list[int],
    start: int | None = None,
) -> dict[int, float]:
    g = nx.DiGraph()
    g.add_nodes_from(range(problem.n_ops) if nodes is None else nodes)
    for e in edges:
        g.add_edge(int(problem.edge_src[e]), int(problem.edge_dst[e]), e=e)
    finish: dict[int, float] = {}
    for v in nx.topological_sort(g):
        preds = [
            finish[u] + problem.edge_latency_s[d["e"]] * cross[d["e"]]
            for u, _, d in g.in_edges(v, data=True)
            if u in finish
        ]
        if start is not None and v != start and not preds:
            continue  # not reachable from the loop entry
        finish[v] = lat[v] + max(preds, default=0.0)
    return finish


def e2e_latency_s(problem: PlacementProblem, lat: np.ndarray, cross: np.ndarray) -> float:
    """Worst path latency: one acyclic pass plus every loop's cycle times its iterations."""
    finish = _longest_finish(problem, lat, cross, None, list(problem.forward_edges))
    extra = 0.0
    for loop in problem.loops:
        back = loop.back_edge
        entry = int(problem.edge_dst[back])
        body = _longest_finish(
            problem, lat, cross, set(loop.body_ops), list(loop.body_edges), start=entry
        )
        cycle = body[int(problem.edge_src[back])] + problem.edge_latency_s[back] * cross[back]
        extra += problem.loop_iterations(loop) * cycle
    return max(finish[s] for s in problem.sinks) + extra


def evaluate_choice(
    problem: PlacementProblem,
    choice: tuple[int, ...] | np.ndarray,
    pool_counts: tuple[int, ...] | np.ndarray | None = None,
) -> Evaluation:
    """Recompute capacity, memory, inventory, SLA and TCO of an assignment.

    Parameters
    ----------
    problem
        The placement problem.
    choice
        Option index per operator.
    pool_counts
        Pooled devices per type as the solver reported them; None uses the minimum needed.

    Returns
    -------
    Evaluation
    """
    choice = np.asarray(choice, dtype=int)
    n_dev = len(problem.devices)
    violations: list[str] = []
    for i, o in enumerate(choice):
        if problem.opt_op[o] != i:
            violations.append(f"option {o} does not belong to operator '{problem.ops[i]}'")
    dev = problem.opt_device[choice]
    load = np.bincount(dev, weights=problem.opt_pool_load[choice], minlength=n_dev)
    in_use = np.bincount(dev, weights=problem.opt_pooled[choice].astype(float), minlength=n_dev)
    needed = replicas_for_load(load, in_use > 0).astype(int)
    pools = needed if pool_counts is None else np.asarray(pool_counts, dtype=int)
    for j in np.flatnonzero(pools < needed):
        violations.append(
            f"pool of {problem.devices[j]} has {pools[j]} devices but its load needs {load[j]:.3f}"
        )
    mem = np.bincount(dev, weights=problem.opt_pool_mem_bytes[choice], minlength=n_dev)
    for j in np.flatnonzero(mem > problem.device_mem_bytes * (1 + 1e-9)):
        violations.append(
            f"pooled operators on {problem.devices[j]} need {mem[j] / 1e9:.2f} GB "
            f"per device, more than its {problem.device_mem_bytes[j] / 1e9:.2f} GB"
        )
    dedicated = np.bincount(dev, weights=problem.opt_dedicated[choice], minlength=n_dev).astype(int)
    total = dedicated + pools
    for j in np.flatnonzero(total > problem.device_inventory):
        violations.append(
            f"plan uses {total[j]} x {problem.devices[j]} but the inventory has "
            f"{int(problem.device_inventory[j])}"
        )
    lat = problem.opt_latency_s[choice]
    cross = (dev[problem.edge_src] != dev[problem.edge_dst]).astype(float)
    e2e = e2e_latency_s(problem, lat, cross)
    sla = problem.sla.e2e_s
    excess = 0.0 if sla is None else max(0.0, e2e - sla)
    if sla is not None and problem.sla.hard and e2e > sla + LATENCY_TOL_S:
        violations.append(f"end-to-end latency {e2e:.6f} s exceeds the SLA {sla:.6f} s")
    tco = float(
        problem.opt_fixed_usd_per_h()[choice].sum()
        + problem.device_cost_usd_per_h @ pools
        + problem.edge_cost_usd_per_h @ cross
    )
    penalty = (problem.sla.penalty_usd_per_h_per_s or 0.0) * excess if not problem.sla.hard else 0.0
    carbon = float(problem.device_carbon_kg_per_h @ total)
    return Evaluation(total, pools, lat, cross, e2e, tco, tco + penalty, carbon, tuple(violations))
