"""CP-SAT formulation of the placement problem (OR-Tools), written independently of the MILP.

Same model as :mod:`hetopt.models.milp` over integers (see :mod:`hetopt.models.scaling`):
booleans ``x[o]`` choose options, ``cross[e]`` are booleans implied by the assignment, pool sizes
``n[j]`` are integers, and finish times are integer microseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from hetopt.models import scaling as sc
from hetopt.problem import PlacementProblem
from hetopt.solvers.base import Objective

IntVar = cp_model.IntVar


@dataclass(frozen=True)
class CpsatModel:
    """A built CP-SAT model and the variables needed to read a plan back."""

    model: cp_model.CpModel
    x: list[IntVar]
    n: list[IntVar]
    objective_scale: float  # objective units per integer step


def _horizon_us(problem: PlacementProblem) -> int:
    """An upper bound on any finish time: every operator at its slowest, every edge crossed.

    Summed in integer steps, each term rounded up as the latency constraints round it, so a
    plan of the slowest options on every operator still fits.
    """
    slowest = sum(int(sc.up(float(problem.opt_latency_s[problem.options_of(i)].max()),
                            sc.TIME_S)) for i in range(problem.n_ops))
    return slowest + int(sc.up(problem.edge_latency_s, sc.TIME_S).sum()) + 1


def add_assignment(m: cp_model.CpModel, problem: PlacementProblem, x: list[IntVar]) -> None:
    """Each operator takes exactly one option."""
    for i in range(problem.n_ops):
        m.add_exactly_one(x[o] for o in problem.options_of(i))


def add_capacity(m: cp_model.CpModel, problem: PlacementProblem, x: list[IntVar],
                 n: list[IntVar]) -> None:
    """Pools exist and cover their (rounded-up) load and memory; all within the inventory."""
    load = sc.up(problem.opt_pool_load, sc.LOAD_DEVICES)
    mem = sc.up(problem.opt_pool_mem_bytes, sc.MEM_BYTES)
    per_device = int(round(1 / sc.LOAD_DEVICES))
    for j in range(len(problem.devices)):
        on_j = np.flatnonzero(problem.opt_device == j)
        for o in on_j:
            if problem.opt_pooled[o]:
                m.add(n[j] >= 1).only_enforce_if(x[o])
        m.add(per_device * n[j] >= sum(int(load[o]) * x[o] for o in on_j if load[o]))
        if math.isfinite(problem.device_mem_bytes[j]):
            cap = int(sc.down(problem.device_mem_bytes[j], sc.MEM_BYTES))
            m.add(sum(int(mem[o]) * x[o] for o in on_j if mem[o]) <= cap)
        if math.isfinite(problem.device_inventory[j]):
            m.add(sum(int(problem.opt_dedicated[o]) * x[o] for o in on_j)
                  + n[j] <= int(problem.device_inventory[j]))


def add_cross_device(m: cp_model.CpModel, problem: PlacementProblem, x: list[IntVar],
                     cross: list[IntVar]) -> None:
    """``cross[e]`` is true when the two endpoints of e run on different device types."""
    for e, (u, v) in enumerate(zip(problem.edge_src, problem.edge_dst, strict=True)):
        for j in range(len(problem.devices)):
            on_u = [x[o] for o in problem.options_of(u) if problem.opt_device[o] == j]
            on_v = [x[o] for o in problem.options_of(v) if problem.opt_device[o] == j]
            # u on j and v not on j => cross
            m.add(sum(on_u) - sum(on_v) <= cross[e])


def add_latency(m: cp_model.CpModel, problem: PlacementProblem, x: list[IntVar],
                cross: list[IntVar], horizon: int) -> IntVar:
    """Integer finish-time potentials; returns ``e2e`` in units of TIME_S x ITERATIONS."""
    lat_us = sc.up(problem.opt_latency_s, sc.TIME_S)
    edge_us = sc.up(problem.edge_latency_s, sc.TIME_S)
    lat = [sum(int(lat_us[o]) * x[o] for o in problem.options_of(i))
           for i in range(problem.n_ops)]
    f = [m.new_int_var(0, horizon, f"f{i}") for i in range(problem.n_ops)]
    for i in range(problem.n_ops):
        m.add(f[i] >= lat[i])
    for e in problem.forward_edges:
        u, v = problem.edge_src[e], problem.edge_dst[e]
        m.add(f[v] >= f[u] + lat[v] + int(edge_us[e]) * cross[e])
    per_iter = int(round(1 / sc.ITERATIONS))
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
        iters = int(sc.nearest(problem.loop_iterations(loop), sc.ITERATIONS))
        loop_terms.append(iters * cycle)
    total_iters = sum(int(sc.nearest(problem.loop_iterations(lp), sc.ITERATIONS))
                      for lp in problem.loops)
    e2e = m.new_int_var(0, horizon * (per_iter + total_iters), "e2e")
    for s in problem.sinks:
        m.add(e2e >= per_iter * f[s] + sum(loop_terms))
    return e2e


def add_sla(m: cp_model.CpModel, problem: PlacementProblem, e2e: IntVar,
            horizon: int) -> list[cp_model.LinearExpr]:
    """Bound ``e2e`` by the SLA; a soft SLA returns its penalty term for the objective."""
    if problem.sla.e2e_s is None:
        return []
    per_iter = int(round(1 / sc.ITERATIONS))
    limit = int(sc.down(problem.sla.e2e_s, sc.TIME_S)) * per_iter
    if problem.sla.hard:
        m.add(e2e <= limit)
        return []
    # Slack in whole microseconds; lambda $/h per second costs lambda * TIME_S $/h per
    # microsecond (at least one cost unit, so slack is never free).
    total_iters = sum(problem.loop_iterations(lp) for lp in problem.loops)
    slack_us = m.new_int_var(0, int(horizon * (1 + total_iters)), "slack_us")
    m.add(e2e - per_iter * slack_us <= limit)
    penalty = problem.sla.penalty_usd_per_h_per_s or 0.0
    coef = max(1, int(sc.nearest(penalty * sc.TIME_S, sc.COST_USD_PER_H)))
    return [coef * slack_us]


def build(problem: PlacementProblem, objective: Objective = "cost") -> CpsatModel:
    """Build the CP-SAT model for ``problem`` (see :func:`hetopt.models.milp.build`)."""
    m = cp_model.CpModel()
    x = [m.new_bool_var(f"x{o}") for o in range(problem.n_options)]
    pool_ub = [max(int(math.ceil(problem.opt_pool_load[problem.opt_device == j].sum() + 1e-9)),
                   int(problem.opt_pooled[problem.opt_device == j].any()))
               for j in range(len(problem.devices))]
    n = [m.new_int_var(0, pool_ub[j], f"n{j}") for j in range(len(problem.devices))]
    cross = [m.new_bool_var(f"cross{e}") for e in range(len(problem.edge_src))]
    horizon = _horizon_us(problem)

    add_assignment(m, problem, x)
    add_capacity(m, problem, x, n)
    add_cross_device(m, problem, x, cross)
    e2e = add_latency(m, problem, x, cross, horizon)
    if objective == "latency":
        m.minimize(e2e)
        return CpsatModel(m, x, n, sc.TIME_S * sc.ITERATIONS)

    fixed = sc.nearest(problem.opt_fixed_usd_per_h(), sc.COST_USD_PER_H)
    dev_cost = sc.nearest(problem.device_cost_usd_per_h, sc.COST_USD_PER_H)
    edge_cost = sc.nearest(problem.edge_cost_usd_per_h, sc.COST_USD_PER_H)
    terms = ([int(fixed[o]) * x[o] for o in range(problem.n_options) if fixed[o]]
             + [int(dev_cost[j]) * n[j] for j in range(len(problem.devices)) if dev_cost[j]]
             + [int(edge_cost[e]) * cross[e] for e in range(len(cross)) if edge_cost[e]])
    terms.extend(add_sla(m, problem, e2e, horizon))
    m.minimize(sum(terms))
    return CpsatModel(m, x, n, sc.COST_USD_PER_H)
