"""MILP formulation of the placement problem in PuLP (solved by HiGHS or CBC).

The ``add_*`` functions write one agent's constraints; ``tag`` prefixes their names so the
fleet formulation (:mod:`hetopt.fleet.models`) can stack many agents in one model.

Variables
---------
``x[o]``      binary: option o is chosen (one per operator).
``n[j]``      integer: devices in device type j's shared pool.
``m[k]``      integer: replicas of shared LLM pool k (``tp x pp`` devices each).
``cross[e]``  in [0, 1]: edge e's endpoints run on different device types (pushed to its lower
              bound ``max_j (X[u,j] - X[v,j])`` by the objective and the latency constraints).
``f[i]``      finish time of operator i on one pass of the acyclic graph.
``g[l][i]``   finish time of operator i within one extra pass of loop l; ``cycle[l]`` its length.
``e2e``       end-to-end latency; ``slack`` its excess over the SLA (fixed to 0 when hard).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hetopt._solverlibs import pulp  # ortools first, then pulp (see there)
from hetopt.models import Objective
from hetopt.models.symmetry import twin_chains
from hetopt.models.terms import ObjectiveTerms, objective_terms
from hetopt.problem import PlacementProblem, replicas_for_load


@dataclass(frozen=True)
class MilpModel:
    """A built PuLP model and the variables needed to read a plan back."""

    prob: pulp.LpProblem
    x: list[pulp.LpVariable]
    n: list[pulp.LpVariable]
    e2e: pulp.LpVariable
    slack: pulp.LpVariable | None
    m: tuple[pulp.LpVariable, ...] = ()


def _latency(
    problem: PlacementProblem, x: list[pulp.LpVariable], op: int
) -> pulp.LpAffineExpression:
    """``t_i = sum_j x_ij t_ij``."""
    return pulp.lpSum(problem.opt_latency_s[o] * x[o] for o in problem.options_of(op))


def _on_device(
    problem: PlacementProblem, x: list[pulp.LpVariable], op: int, dev: int
) -> pulp.LpAffineExpression:
    """``X[i,j]``: 1 if operator i runs on device type j."""
    return pulp.lpSum(x[o] for o in problem.options_of(op) if problem.opt_device[o] == dev)


def add_assignment(
    prob: pulp.LpProblem, problem: PlacementProblem, x: list[pulp.LpVariable], tag: str = ""
) -> None:
    """Each operator runs in exactly one configuration on one device type: sum_o x_o = 1."""
    for i, name in enumerate(problem.ops):
        prob += pulp.lpSum(x[o] for o in problem.options_of(i)) == 1, f"{tag}assign[{name}]"


def add_pool_exists(
    prob: pulp.LpProblem, n_j: pulp.LpVariable, xs: list[pulp.LpVariable], name: str
) -> None:
    """A pool has a device as soon as anything runs in it: ``n_j >= sum_o x_o``."""
    prob += n_j >= pulp.lpSum(xs), name


def add_pool_load(
    prob: pulp.LpProblem,
    n_j: pulp.LpVariable,
    terms: list[tuple[float, pulp.LpVariable]],
    name: str,
) -> None:
    """A pool covers the load placed on it: ``n_j >= sum_o load_o x_o``."""
    prob += n_j >= pulp.lpSum(c * v for c, v in terms), name


def add_pool_memory(
    prob: pulp.LpProblem,
    terms: list[tuple[float, pulp.LpVariable]],
    mem_bytes: float,
    name: str,
) -> None:
    """Every device of a pool holds what is resident in it: ``sum_k bytes_k v_k <= mem_j``.

    Bytes are scaled to GB so the row stays well conditioned.
    """
    prob += pulp.lpSum(b / 1e9 * v for b, v in terms) <= mem_bytes / 1e9, name


def add_inventory(
    prob: pulp.LpProblem,
    terms: list[tuple[int, pulp.LpVariable]],
    n_j: pulp.LpVariable,
    limit: float | pulp.LpAffineExpression,
    name: str,
) -> None:
    """Dedicated replicas plus the pool stay within the inventory:
    ``sum_o dedicated_o x_o + n_j <= inventory_j``."""
    prob += pulp.lpSum(c * v for c, v in terms) + n_j <= limit, name


def add_llm_pools(
    prob: pulp.LpProblem,
    problem: PlacementProblem,
    x: list[pulp.LpVariable],
    m: Sequence[pulp.LpVariable],
    tag: str = "",
) -> None:
    """Each shared LLM pool covers the load placed on each of its capacities (an aggregated
    replica's decode slots and prefill chunk budget are two), ``m_k >= sum_o load_o x_o``, and
    at least each placed option's own ceiling, ``m_k >= ceil(load_o) x_o`` (implied for
    integer ``m_k``; it keeps the LP bound of replicas rounded one operator at a time)."""
    for k, name in enumerate(problem.key_names):
        opts = problem.key_options(k)
        for dim in np.unique(problem.opt_key_dim[opts]):  # type: ignore[index]
            on = [o for o in opts if problem.opt_key_dim[o] == dim]  # type: ignore[index]
            load = [(problem.opt_key_load[o], x[o]) for o in on]  # type: ignore[index]
            add_pool_load(prob, m[k], load, f"{tag}llm_load[{name},{int(dim)}]")
        for o in opts:
            floor = float(replicas_for_load(problem.opt_key_load[o]))  # type: ignore[index]
            prob += m[k] >= floor * x[o], f"{tag}llm_floor[{name},{o}]"


def add_twin_order(
    prob: pulp.LpProblem, problem: PlacementProblem, x: list[pulp.LpVariable]
) -> None:
    """Twins (interchangeable operators, :mod:`hetopt.models.symmetry`) choose options in
    order: ``sum_r r x[a, r] <= sum_r r x[b, r]`` for consecutive twins ``a, b``."""
    for chain in twin_chains(problem):
        rank = [pulp.lpSum(r * x[o] for r, o in enumerate(problem.options_of(i))) for i in chain]
        for k in range(len(chain) - 1):
            prob += rank[k] <= rank[k + 1], f"twin[{chain[k]},{chain[k + 1]}]"


def add_capacity(
    prob: pulp.LpProblem,
    problem: PlacementProblem,
    x: list[pulp.LpVariable],
    n: list[pulp.LpVariable],
    m: Sequence[pulp.LpVariable] = (),
) -> None:
    """Per device type j: its pool exists, covers its load and holds its footprints, and the
    inventory bounds dedicated, shared-LLM-pool and pooled devices (one agent's pool families,
    device by device).
    """
    for j, dev in enumerate(problem.devices):
        on_j = np.flatnonzero(problem.opt_device == j)
        pooled = [o for o in on_j if problem.opt_pooled[o]]
        for o in pooled:
            add_pool_exists(prob, n[j], [x[o]], f"pool_exists[{dev},{o}]")
        if pooled:
            load = [(problem.opt_pool_load[o], x[o]) for o in pooled]
            add_pool_load(prob, n[j], load, f"pool_load[{dev}]")
        resident = [o for o in on_j if problem.opt_pool_mem_bytes[o] > 0]
        if resident and math.isfinite(problem.device_mem_bytes[j]):
            held = [(problem.opt_pool_mem_bytes[o], x[o]) for o in resident]
            add_pool_memory(prob, held, problem.device_mem_bytes[j], f"pool_mem[{dev}]")
        if math.isfinite(problem.device_inventory[j]):
            used = [(int(problem.opt_dedicated[o]), x[o]) for o in on_j]
            used += [
                (int(problem.key_devices_per_replica[k]), m[int(k)])
                for k in np.flatnonzero(problem.key_device == j)
            ]
            add_inventory(prob, used, n[j], problem.device_inventory[j], f"inventory[{dev}]")


def add_cross_device(
    prob: pulp.LpProblem,
    problem: PlacementProblem,
    x: list[pulp.LpVariable],
    cross: list[pulp.LpVariable],
    tag: str = "",
) -> None:
    """``cross_e >= X[u,j] - X[v,j]`` for every device type j: 1 when u and v differ."""
    for e, (u, v) in enumerate(zip(problem.edge_src, problem.edge_dst, strict=True)):
        for j in range(len(problem.devices)):
            prob += (
                cross[e] >= _on_device(problem, x, u, j) - _on_device(problem, x, v, j),
                f"{tag}cross[{e},{j}]",
            )


def add_latency(
    prob: pulp.LpProblem,
    problem: PlacementProblem,
    x: list[pulp.LpVariable],
    cross: list[pulp.LpVariable],
    e2e: pulp.LpVariable,
    tag: str = "",
) -> None:
    """Finish-time potentials over the acyclic graph and each loop; e2e bounds every path.

    ``f_v >= f_u + t_v + d_uv cross_uv`` on forward edges, ``f_i >= t_i``, and
    ``e2e >= f_s + sum_l iterations_l cycle_l`` for every sink s, where
    ``cycle_l >= g_l[back_src] + d_back cross_back`` is one more pass of loop l.
    """
    lat = [_latency(problem, x, i) for i in range(problem.n_ops)]
    f = [prob.add_variable(f"{tag}f[{i}]", lowBound=0) for i in range(problem.n_ops)]
    for i in range(problem.n_ops):
        prob += f[i] >= lat[i], f"{tag}finish_start[{i}]"
    for e in problem.forward_edges:
        u, v = problem.edge_src[e], problem.edge_dst[e]
        prob += f[v] >= f[u] + lat[v] + problem.edge_latency_s[e] * cross[e], f"{tag}finish[{e}]"
    loop_terms = []
    for k, loop in enumerate(problem.loops):
        g = {i: prob.add_variable(f"{tag}g[{k},{i}]", lowBound=0) for i in loop.body_ops}
        for i in loop.body_ops:
            prob += g[i] >= lat[i], f"{tag}loop_start[{k},{i}]"
        for e in loop.body_edges:
            u, v = problem.edge_src[e], problem.edge_dst[e]
            prob += (
                g[v] >= g[u] + lat[v] + problem.edge_latency_s[e] * cross[e],
                f"{tag}loop_finish[{k},{e}]",
            )
        cycle = prob.add_variable(f"{tag}cycle[{k}]", lowBound=0)
        back = loop.back_edge
        prob += (
            cycle >= g[problem.edge_src[back]] + problem.edge_latency_s[back] * cross[back],
            f"{tag}loop_cycle[{k}]",
        )
        loop_terms.append(problem.loop_iterations(loop) * cycle)
    for s in problem.sinks:
        prob += e2e >= f[s] + pulp.lpSum(loop_terms), f"{tag}e2e[{problem.ops[s]}]"


def add_sla(
    prob: pulp.LpProblem,
    problem: PlacementProblem,
    e2e: pulp.LpVariable,
    slack: pulp.LpVariable | None,
    tag: str = "",
) -> None:
    """``e2e - slack <= T_SLA`` (slack absent when the SLA is hard)."""
    if problem.sla.e2e_s is None:
        return
    rhs = problem.sla.e2e_s
    prob += (e2e - slack if slack is not None else e2e) <= rhs, f"{tag}sla_e2e"


def cost_terms(
    terms: ObjectiveTerms,
    x: list[pulp.LpVariable],
    cross: list[pulp.LpVariable],
    slack: pulp.LpVariable | None,
) -> tuple[list[tuple[float, pulp.LpVariable]], ...]:
    """One agent's priced decisions ``(c_o x_o, c_e cross_e, lambda slack)``, zero terms left
    out; the pools' ``c_j n_j`` are added by whoever owns the pools."""
    opts = [(terms.option_usd_per_h[o], x[o]) for o in range(len(x)) if terms.option_usd_per_h[o]]
    edges = [
        (terms.edge_usd_per_h[e], cross[e]) for e in range(len(cross)) if terms.edge_usd_per_h[e]
    ]
    lam = terms.slack_usd_per_h_per_s
    soft = [(lam, slack)] if slack is not None and lam else []
    return opts, edges, soft


def add_objective(
    prob: pulp.LpProblem,
    problem: PlacementProblem,
    x: list[pulp.LpVariable],
    n: list[pulp.LpVariable],
    cross: list[pulp.LpVariable],
    slack: pulp.LpVariable | None,
    m: Sequence[pulp.LpVariable] = (),
) -> None:
    """Minimise ``sum_o c_o x_o + sum_j c_j n_j + sum_k c_k m_k + sum_e c_e cross_e + lambda
    slack`` ($/h)."""
    terms = objective_terms(problem)
    opts, edges, soft = cost_terms(terms, x, cross, slack)
    tco = (
        pulp.lpSum(c * v for c, v in opts)
        + pulp.lpSum(terms.device_usd_per_h[j] * n[j] for j in range(len(n)))
        + pulp.lpSum(terms.key_usd_per_h[k] * m[k] for k in range(len(m)))
        + pulp.lpSum(c * v for c, v in edges)
    )
    prob += tco + (soft[0][0] * soft[0][1] if soft else 0)


def build(problem: PlacementProblem, objective: Objective = "cost") -> MilpModel:
    """Build the MILP for ``problem``: variables, then one ``add_*`` per constraint family.

    Parameters
    ----------
    problem
        The placement problem.
    objective
        ``cost``: minimise TCO per hour (+ lambda x slack) under the SLA. ``latency``: minimise
        the end-to-end latency, ignoring the end-to-end SLA (used to explain an infeasible SLA).

    Returns
    -------
    MilpModel
    """
    sense = pulp.LpMinimize
    prob = pulp.LpProblem(f"hetopt_{problem.name}_{objective}".replace("-", "_"), sense)
    x = [prob.add_variable(f"x[{o}]", cat="Binary") for o in range(problem.n_options)]
    n = [
        prob.add_variable(f"n[{j}]", lowBound=0, cat="Integer") for j in range(len(problem.devices))
    ]
    cross = [
        prob.add_variable(f"cross[{e}]", lowBound=0, upBound=1)
        for e in range(len(problem.edge_src))
    ]
    m = tuple(
        prob.add_variable(f"m[{k}]", lowBound=0, cat="Integer") for k in range(problem.n_keys)
    )
    e2e = prob.add_variable("e2e", lowBound=0)
    soft = objective == "cost" and not problem.sla.hard and problem.sla.e2e_s is not None
    slack = prob.add_variable("slack", lowBound=0) if soft else None

    add_assignment(prob, problem, x)
    add_twin_order(prob, problem, x)
    add_llm_pools(prob, problem, x, m)
    add_capacity(prob, problem, x, n, m)
    add_cross_device(prob, problem, x, cross)
    add_latency(prob, problem, x, cross, e2e)
    if objective == "cost":
        add_sla(prob, problem, e2e, slack)
        add_objective(prob, problem, x, n, cross, slack, m)
    else:
        prob += e2e
    return MilpModel(prob, x, n, e2e, slack, m)
