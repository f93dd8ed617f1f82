"""Evaluate one assignment directly from the problem data, without any formulation.

It prices with the formulations' own :func:`hetopt.models.terms.objective_terms` (hence its home
in ``models``), fills a plan's numbers (:func:`hetopt.plan.plan.make_plan`) and gives every backend's
solve its exact objective (:mod:`hetopt.solvers.exact`): device
counts are ceilings of summed loads, the end-to-end latency is a longest-path recursion over
the graph in topological order, and TCO is a sum of $/h. The verifier and the brute-force
backend do not use it: they recompute from raw inputs (:mod:`hetopt.oracle`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np

from hetopt.models.terms import objective_terms
from hetopt.problem import PlacementProblem, replicas_for_load

LATENCY_TOL_S = 1e-6  # one CP-SAT time step: rounding may meet an SLA exactly


@dataclass(frozen=True)
class Evaluation:
    """Everything a plan implies, recomputed from raw problem data.

    Attributes
    ----------
    devices_per_type
        Dedicated + pooled devices per device type (shared LLM pools count as dedicated).
    pool_counts
        Pooled devices per device type (ceiling of the summed pooled load).
    key_counts
        Replicas per shared LLM pool: the ceiling of its summed load (0 when unused).
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
    key_counts: np.ndarray
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


@dataclass(frozen=True)
class DeviceUse:
    """What a choice asks of each device type, before pools are rounded to whole devices.

    Attributes
    ----------
    dedicated
        Devices dedicated to exclusive operators, per type (shared LLM pools not included).
    pool_load
        Summed load of pooled operators, in device-equivalents, per type.
    pooled
        True where some pooled operator runs (its pool needs at least one device).
    key_load
        Summed load per shared LLM pool and capacity (``[key, dim]``), in replicas.
    """

    dedicated: np.ndarray
    pool_load: np.ndarray
    pooled: np.ndarray
    key_load: np.ndarray


def device_use(problem: PlacementProblem, choice: np.ndarray) -> DeviceUse:
    """Dedicated devices, pooled load per device type and load per shared LLM pool of one
    agent's ``choice``."""
    n_dev = len(problem.devices)
    dev = problem.opt_device[choice]
    return DeviceUse(
        dedicated=np.bincount(dev, weights=problem.opt_dedicated[choice], minlength=n_dev),
        pool_load=np.bincount(dev, weights=problem.opt_pool_load[choice], minlength=n_dev),
        pooled=np.bincount(dev, weights=problem.opt_pooled[choice].astype(float), minlength=n_dev)
        > 0,
        key_load=key_loads(problem, choice),
    )


KEY_DIMS = 2
"""Capacities of an LLM replica: time (or an aggregated replica's decode slots), and an
aggregated replica's prefill chunk budget."""


def key_loads(
    problem: PlacementProblem,
    choice: Sequence[int] | np.ndarray,
    opt_key: np.ndarray | None = None,
    n_keys: int | None = None,
) -> np.ndarray:
    """Summed load of ``choice`` per shared LLM pool and capacity, ``[key, dim]``; the pools
    are ``problem``'s own unless ``opt_key`` maps its options to ``n_keys`` others (a
    fleet's)."""
    c = np.asarray(choice, dtype=int)
    keys = problem.opt_key if opt_key is None else opt_key
    n = problem.n_keys if n_keys is None else n_keys
    key = keys[c]  # type: ignore[index]
    on = key >= 0
    flat = key[on] * KEY_DIMS + problem.opt_key_dim[c][on]  # type: ignore[index]
    load = np.bincount(
        flat,
        weights=problem.opt_key_load[c][on],  # type: ignore[index]
        minlength=n * KEY_DIMS,
    )
    return load.reshape(n, KEY_DIMS)


def key_counts(problem: PlacementProblem, choice: Sequence[int] | np.ndarray) -> np.ndarray:
    """Replicas each shared LLM pool needs for ``choice``: the ceiling of its summed load."""
    return _replicas(key_loads(problem, choice))


def _replicas(key_load: np.ndarray) -> np.ndarray:
    """Replicas per pool from its ``[key, dim]`` loads: the busiest capacity's ceiling."""
    return replicas_for_load(key_load.max(axis=1) if len(key_load) else np.zeros(0)).astype(int)


def held_devices(
    problem: PlacementProblem, choice: Sequence[int] | np.ndarray, key_counts: np.ndarray
) -> np.ndarray:
    """Devices each operator's exclusive replicas occupy: its own, or its whole shared LLM
    pool's (``key_counts`` replicas of ``tp x pp``); 0 for pooled and profiled operators."""
    c = np.asarray(choice, dtype=int)
    key = problem.opt_key[c]  # type: ignore[index]
    on = key >= 0
    out = problem.opt_dedicated[c].astype(int)
    out[on] = key_counts[key[on]] * problem.key_devices_per_replica[key[on]]
    return out


def key_devices(problem: PlacementProblem, key_counts: np.ndarray) -> np.ndarray:
    """Devices per device type held by shared LLM pools of ``key_counts`` replicas."""
    return np.bincount(
        problem.key_device,
        weights=key_counts * problem.key_devices_per_replica,
        minlength=len(problem.devices),
    )


def size_pools(
    devices: tuple[str, ...],
    load: np.ndarray,
    pooled: np.ndarray,
    pool_counts: tuple[int, ...] | np.ndarray | Sequence[int] | None,
) -> tuple[np.ndarray, list[str]]:
    """Pool sizes (the solver's, or the fewest that cover ``load``) and pools too small.

    A pool needs ``max(ceil(load_j), 1 if anything pooled runs on j)`` devices.
    """
    needed = replicas_for_load(load, pooled).astype(int)
    pools = needed if pool_counts is None else np.asarray(pool_counts, dtype=int)
    violations = [
        f"pool of {devices[j]} has {pools[j]} devices but its load needs {load[j]:.3f}"
        for j in np.flatnonzero(pools < needed)
    ]
    return pools, violations


def check_pool_memory(
    devices: tuple[str, ...], held_bytes: np.ndarray, mem_bytes: np.ndarray, verb: str = "need"
) -> list[str]:
    """Pools whose devices must hold more bytes than they have."""
    return [
        f"pooled operators on {devices[j]} {verb} {held_bytes[j] / 1e9:.2f} GB "
        f"per device, more than its {mem_bytes[j] / 1e9:.2f} GB"
        for j in np.flatnonzero(held_bytes > mem_bytes * (1 + 1e-9))
    ]


def count_devices(
    devices: tuple[str, ...], dedicated: np.ndarray, pools: np.ndarray, inventory: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Devices per type (dedicated + pooled), the shortage against the inventory, and one
    violation per type that exceeds it."""
    total = np.round(dedicated).astype(int) + pools
    shortage = np.maximum(0.0, total - inventory)
    violations = [
        f"plan uses {total[j]} x {devices[j]} but the inventory has {int(inventory[j])}"
        for j in np.flatnonzero(shortage > 0)
    ]
    return total, shortage, violations


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
    use = device_use(problem, choice)
    pools, short_pools = size_pools(problem.devices, use.pool_load, use.pooled, pool_counts)
    violations += short_pools
    keys = _replicas(use.key_load)  # the loads device_use summed already
    dedicated = use.dedicated + key_devices(problem, keys)
    mem = np.bincount(dev, weights=problem.opt_pool_mem_bytes[choice], minlength=n_dev)
    violations += check_pool_memory(problem.devices, mem, problem.device_mem_bytes)
    total, _, over = count_devices(problem.devices, dedicated, pools, problem.device_inventory)
    violations += over
    lat = problem.opt_latency_s[choice]
    cross = (dev[problem.edge_src] != dev[problem.edge_dst]).astype(float)
    e2e = e2e_latency_s(problem, lat, cross)
    sla = problem.sla.e2e_s
    excess = 0.0 if sla is None else max(0.0, e2e - sla)
    if sla is not None and problem.sla.hard and e2e > sla + LATENCY_TOL_S:
        violations.append(f"end-to-end latency {e2e:.6f} s exceeds the SLA {sla:.6f} s")
    terms = objective_terms(problem)
    tco = terms.tco_usd_per_h(choice, pools, cross, keys)
    penalty = terms.penalty_usd_per_h(excess)
    carbon = float(problem.device_carbon_kg_per_h @ total)
    return Evaluation(
        total, pools, keys, lat, cross, e2e, tco, tco + penalty, carbon, tuple(violations)
    )
