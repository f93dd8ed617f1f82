"""CP-SAT formulation of the placement problem (OR-Tools), written independently of the MILP.

Same model as :mod:`hetopt.models.milp` over integers (see :mod:`hetopt.models.scaling`):
booleans ``x[o]`` choose options, ``cross[e]`` are booleans implied by the assignment, pool sizes
``n[j]`` are integers, and finish times are integer time steps. Every builder takes a
:class:`~hetopt.models.scaling.Scaling`: the conservative one (the default) gives a model whose
plans are exact-feasible, the relaxed one a model whose optimum bounds the exact optimum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from ortools.sat.python import cp_model

from hetopt.models import Objective
from hetopt.models import scaling as sc
from hetopt.models.symmetry import twin_chains
from hetopt.models.terms import ObjectiveTerms, objective_terms
from hetopt.problem import PlacementProblem

IntVar = cp_model.IntVar


@dataclass(frozen=True)
class CpsatModel:
    """A built CP-SAT model and the variables needed to read a plan back."""

    model: cp_model.CpModel
    x: list[IntVar]
    n: list[IntVar]
    objective_scale: float  # objective units per integer step
    scaling: sc.Scaling = sc.CONSERVATIVE
    m: tuple[IntVar, ...] = ()


def horizon_steps(problem: PlacementProblem, scaling: sc.Scaling = sc.CONSERVATIVE) -> int:
    """An upper bound on any finish time, in time steps: every operator at its slowest, every
    edge crossed (the domain of the finish-time variables).

    Summed in integer time steps, each term rounded as the latency constraints round it, so a
    plan of the slowest options on every operator still fits.
    """
    step = scaling.time_s
    slowest = sum(
        int(scaling.demand(float(problem.opt_latency_s[problem.options_of(i)].max()), step))
        for i in range(problem.n_ops)
    )
    return slowest + int(scaling.demand(problem.edge_latency_s, step).sum()) + 1


def add_assignment(m: cp_model.CpModel, problem: PlacementProblem, x: list[IntVar]) -> None:
    """Each operator takes exactly one option."""
    for i in range(problem.n_ops):
        m.add_exactly_one(x[o] for o in problem.options_of(i))


def add_twin_order(m: cp_model.CpModel, problem: PlacementProblem, x: list[IntVar]) -> None:
    """Twins (:mod:`hetopt.models.symmetry`) choose options in order of their rank."""
    for chain in twin_chains(problem):
        rank = [sum(r * x[o] for r, o in enumerate(problem.options_of(i))) for i in chain]
        for k in range(len(chain) - 1):
            m.add(rank[k] <= rank[k + 1])


def add_pool_exists(m: cp_model.CpModel, n_j: IntVar, x_o: IntVar) -> None:
    """A pool has a device as soon as a pooled option runs in it: ``x_o => n_j >= 1``."""
    m.add(n_j >= 1).only_enforce_if(x_o)


def add_pool_load(
    m: cp_model.CpModel, n_j: IntVar, terms: list[tuple[int, IntVar]], per_device: int
) -> None:
    """A pool covers the load placed on it: ``per_device n_j >= sum_o load_o x_o`` (integer
    load steps, ``per_device`` of them per device)."""
    m.add(per_device * n_j >= sum(c * v for c, v in terms))


def add_pool_memory(m: cp_model.CpModel, terms: list[tuple[int, IntVar]], cap: int) -> None:
    """Every device of a pool holds what is resident in it: ``sum_k mem_k v_k <= cap_j``."""
    m.add(sum(c * v for c, v in terms) <= cap)


def add_inventory(
    m: cp_model.CpModel, terms: list[tuple[int, IntVar]], n_j: IntVar, limit: int
) -> None:
    """Dedicated replicas plus the pool stay within the inventory:
    ``sum_o dedicated_o x_o + n_j <= inventory_j``."""
    m.add(sum(c * v for c, v in terms) + n_j <= limit)


def add_llm_pools(
    m: cp_model.CpModel,
    problem: PlacementProblem,
    x: list[IntVar],
    replicas: Sequence[IntVar],
    scaling: sc.Scaling = sc.CONSERVATIVE,
) -> None:
    """Each shared LLM pool covers the (rounded) load placed on each of its capacities:
    ``per_replica m_k >= sum_o load_o x_o`` in load steps, per dimension."""
    load = scaling.demand(problem.opt_key_load, scaling.load_devices)  # type: ignore[arg-type]
    per_replica = int(round(1 / scaling.load_devices))
    for k in range(problem.n_keys):
        opts = problem.key_options(k)
        for dim in np.unique(problem.opt_key_dim[opts]):  # type: ignore[index]
            on = [o for o in opts if problem.opt_key_dim[o] == dim]  # type: ignore[index]
            terms = [(int(load[o]), x[o]) for o in on if load[o]]
            add_pool_load(m, replicas[k], terms, per_replica)


def llm_pool_bounds(problem: PlacementProblem) -> list[int]:
    """Most replicas any plan needs per shared LLM pool: every operator at its heaviest option
    on it (one step of rounding spare), capped by the inventory."""
    out = []
    on = np.flatnonzero(problem.opt_key >= 0)  # type: ignore[operator]
    heaviest = (
        pd.DataFrame(
            {
                "key": problem.opt_key[on],  # type: ignore[index]
                "op": problem.opt_op[on],
                "load": problem.opt_key_load[on],  # type: ignore[index]
            }
        )
        .groupby(["key", "op"])["load"]
        .max()
    )
    per_key = heaviest.groupby(level="key").agg(["sum", "size"])
    for k in range(problem.n_keys):
        total, members = per_key.loc[k] if k in per_key.index else (0.0, 0)
        cap = problem.device_inventory[problem.key_device[k]] / problem.key_devices_per_replica[k]
        most = math.ceil(float(total) + 1e-6 * (int(members) + 1))
        out.append(int(min(most, cap)) if math.isfinite(cap) else most)
    return out


def add_capacity(
    m: cp_model.CpModel,
    problem: PlacementProblem,
    x: list[IntVar],
    n: list[IntVar],
    scaling: sc.Scaling = sc.CONSERVATIVE,
    replicas: Sequence[IntVar] = (),
) -> None:
    """Per device type j: its pool exists, covers its (rounded) load and memory, and the
    inventory bounds dedicated plus pooled devices (one agent's pool families)."""
    load = scaling.demand(problem.opt_pool_load, scaling.load_devices)
    mem = scaling.demand(problem.opt_pool_mem_bytes, scaling.mem_bytes)
    per_device = int(round(1 / scaling.load_devices))
    for j in range(len(problem.devices)):
        on_j = np.flatnonzero(problem.opt_device == j)
        for o in on_j:
            if problem.opt_pooled[o]:
                add_pool_exists(m, n[j], x[o])
        add_pool_load(m, n[j], [(int(load[o]), x[o]) for o in on_j if load[o]], per_device)
        if math.isfinite(problem.device_mem_bytes[j]):
            cap = int(scaling.budget(problem.device_mem_bytes[j], scaling.mem_bytes))
            add_pool_memory(m, [(int(mem[o]), x[o]) for o in on_j if mem[o]], cap)
        if math.isfinite(problem.device_inventory[j]):
            used = [(int(problem.opt_dedicated[o]), x[o]) for o in on_j]
            used += [
                (int(problem.key_devices_per_replica[k]), replicas[int(k)])
                for k in np.flatnonzero(problem.key_device == j)
            ]
            add_inventory(m, used, n[j], int(problem.device_inventory[j]))


def add_cross_device(
    m: cp_model.CpModel, problem: PlacementProblem, x: list[IntVar], cross: list[IntVar]
) -> None:
    """``cross[e]`` is true when the two endpoints of e run on different device types."""
    for e, (u, v) in enumerate(zip(problem.edge_src, problem.edge_dst, strict=True)):
        for j in range(len(problem.devices)):
            on_u = [x[o] for o in problem.options_of(u) if problem.opt_device[o] == j]
            on_v = [x[o] for o in problem.options_of(v) if problem.opt_device[o] == j]
            # u on j and v not on j => cross
            m.add(sum(on_u) - sum(on_v) <= cross[e])


def add_latency(
    m: cp_model.CpModel,
    problem: PlacementProblem,
    x: list[IntVar],
    cross: list[IntVar],
    horizon: int,
    scaling: sc.Scaling = sc.CONSERVATIVE,
) -> IntVar:
    """Integer finish-time potentials; returns ``e2e`` in units of time_s x iterations."""
    lat_us = scaling.demand(problem.opt_latency_s, scaling.time_s)
    edge_us = scaling.demand(problem.edge_latency_s, scaling.time_s)
    lat = [sum(int(lat_us[o]) * x[o] for o in problem.options_of(i)) for i in range(problem.n_ops)]
    f = [m.new_int_var(0, horizon, f"f{i}") for i in range(problem.n_ops)]
    for i in range(problem.n_ops):
        m.add(f[i] >= lat[i])
    for e in problem.forward_edges:
        u, v = problem.edge_src[e], problem.edge_dst[e]
        m.add(f[v] >= f[u] + lat[v] + int(edge_us[e]) * cross[e])
    per_iter = int(round(1 / scaling.iterations))
    loop_terms = []
    for k, loop in enumerate(problem.loops):
        g = {i: m.new_int_var(0, horizon, f"g{k}_{i}") for i in loop.body_ops}
        for i in loop.body_ops:
            m.add(g[i] >= lat[i])
        for e in loop.body_edges:
            u, v = problem.edge_src[e], problem.edge_dst[e]
            m.add(g[v] >= g[u] + lat[v] + int(edge_us[e]) * cross[e])
        cycle = m.new_int_var(0, horizon, f"cycle{k}")
        back = loop.back_edge
        m.add(cycle >= g[problem.edge_src[back]] + int(edge_us[back]) * cross[back])
        iters = int(scaling.demand(problem.loop_iterations(loop), scaling.iterations))
        loop_terms.append(iters * cycle)
    total_iters = sum(
        int(scaling.demand(problem.loop_iterations(lp), scaling.iterations)) for lp in problem.loops
    )
    e2e = m.new_int_var(0, horizon * (per_iter + total_iters), "e2e")
    for s in problem.sinks:
        m.add(e2e >= per_iter * f[s] + sum(loop_terms))
    return e2e


def add_sla(
    m: cp_model.CpModel,
    problem: PlacementProblem,
    e2e: IntVar,
    horizon: int,
    scaling: sc.Scaling = sc.CONSERVATIVE,
) -> list[cp_model.LinearExpr]:
    """Bound ``e2e`` by the SLA; a soft SLA returns its penalty term for the objective."""
    if problem.sla.e2e_s is None:
        return []
    per_iter = int(round(1 / scaling.iterations))
    limit = int(scaling.budget(problem.sla.e2e_s, scaling.time_s)) * per_iter
    if problem.sla.hard:
        m.add(e2e <= limit)
        return []
    # Slack in whole slack steps; lambda $/h per second costs lambda * step $/h per step.
    # Conservative: steps of its time step (1 us), at least one cost unit, so slack is never
    # free. Relaxed: the coefficient rounds down and the first step is free, so the integer
    # penalty never exceeds the exact one. Its step is one of its time steps (1 ns) when lambda
    # is a whole number of cost units per step (lambda with up to three decimals), else 1 us,
    # which keeps three more digits of lambda (the rounding loss then is at most 1e-6 $/h per
    # second of excess, and the free step costs lambda * 1e-6 $/h).
    lam = objective_terms(problem).slack_usd_per_h_per_s
    per_step = lam * scaling.time_s / scaling.cost_usd_per_h
    whole = abs(per_step - round(per_step)) <= 1e-9 * max(1.0, abs(per_step))
    step = 1 if whole or not scaling.relaxed else max(1, int(round(TIME_S_SLACK / scaling.time_s)))
    total_iters = sum(problem.loop_iterations(lp) for lp in problem.loops)
    slack = m.new_int_var(0, int(horizon * (1 + total_iters)) // step + 2, "slack_steps")
    free = per_iter * step if scaling.relaxed else 0
    m.add(e2e - per_iter * step * slack <= limit + free)
    if scaling.relaxed:
        coef = int(round(per_step)) if whole else int(scaling.cost(lam * scaling.time_s * step))
        return [coef * slack] if coef else []
    coef = max(1, int(scaling.cost(lam * scaling.time_s)))
    return [coef * slack]


TIME_S_SLACK = 1e-6
"""The unit of a soft SLA's slack in both roundings (one microsecond)."""


def cost_terms(
    terms: ObjectiveTerms, x: list[IntVar], cross: list[IntVar], scaling: sc.Scaling
) -> tuple[list[cp_model.LinearExpr], list[cp_model.LinearExpr]]:
    """One agent's priced decisions in integer cost units, ``(c_o x_o, c_e cross_e)``, zero
    terms left out; the pools' ``c_j n_j`` and the slack are added by their owners."""
    fixed = scaling.cost(terms.option_usd_per_h)
    edge_cost = scaling.cost(terms.edge_usd_per_h)
    opts = [int(fixed[o]) * x[o] for o in range(len(x)) if fixed[o]]
    edges = [int(edge_cost[e]) * cross[e] for e in range(len(cross)) if edge_cost[e]]
    return opts, edges


def add_objective(
    m: cp_model.CpModel,
    problem: PlacementProblem,
    x: list[IntVar],
    n: list[IntVar],
    cross: list[IntVar],
    e2e: IntVar,
    horizon: int,
    scaling: sc.Scaling = sc.CONSERVATIVE,
    replicas: Sequence[IntVar] = (),
) -> None:
    """Minimise ``sum_o c_o x_o + sum_j c_j n_j + sum_k c_k m_k + sum_e c_e cross_e + lambda
    slack`` in cost units, bounding ``e2e`` by the SLA on the way (:func:`add_sla`)."""
    terms = objective_terms(problem)
    opts, edges = cost_terms(terms, x, cross, scaling)
    dev_cost = scaling.cost(terms.device_usd_per_h)
    pools = [int(dev_cost[j]) * n[j] for j in range(len(n)) if dev_cost[j]]
    key_cost = scaling.cost(terms.key_usd_per_h)
    pools += [int(key_cost[k]) * replicas[k] for k in range(len(replicas)) if key_cost[k]]
    m.minimize(sum(opts + pools + edges + add_sla(m, problem, e2e, horizon, scaling)))


def build(
    problem: PlacementProblem, objective: Objective = "cost", scaling: sc.Scaling = sc.CONSERVATIVE
) -> CpsatModel:
    """Build the CP-SAT model for ``problem`` (see :func:`hetopt.models.milp.build`).

    ``scaling`` decides what the model's answer means (see :mod:`hetopt.models.scaling`).
    """
    m = cp_model.CpModel()
    x = [m.new_bool_var(f"x{o}") for o in range(problem.n_options)]
    pool_ub = [
        max(
            int(math.ceil(problem.opt_pool_load[problem.opt_device == j].sum() + 1e-9)),
            int(problem.opt_pooled[problem.opt_device == j].any()),
        )
        for j in range(len(problem.devices))
    ]
    n = [m.new_int_var(0, pool_ub[j], f"n{j}") for j in range(len(problem.devices))]
    replicas = tuple(m.new_int_var(0, ub, f"m{k}") for k, ub in enumerate(llm_pool_bounds(problem)))
    cross = [m.new_bool_var(f"cross{e}") for e in range(len(problem.edge_src))]
    horizon = horizon_steps(problem, scaling)

    add_assignment(m, problem, x)
    add_twin_order(m, problem, x)
    add_llm_pools(m, problem, x, replicas, scaling)
    add_capacity(m, problem, x, n, scaling, replicas)
    add_cross_device(m, problem, x, cross)
    e2e = add_latency(m, problem, x, cross, horizon, scaling)
    if objective == "latency":
        m.minimize(e2e)
        return CpsatModel(m, x, n, scaling.time_s * scaling.iterations, scaling, replicas)

    add_objective(m, problem, x, n, cross, e2e, horizon, scaling, replicas)
    return CpsatModel(m, x, n, scaling.cost_usd_per_h, scaling, replicas)
