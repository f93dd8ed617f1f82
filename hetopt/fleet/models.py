"""Fleet formulations: every tenant's single-agent model stacked, coupled by shared pools.

Per tenant ``t`` the MILP (:mod:`hetopt.models.milp`) and CP-SAT (:mod:`hetopt.models.cpsat`)
builders add their assignment, cross-device, latency and SLA constraints unchanged (with a
``t<k>.`` name prefix). The fleet adds, per device type ``j``:

* ``n_j >= sum_t sum_o load_o x_o`` and ``n_j >= X[t,i,j]`` for each pooled operator (a pool
  exists and covers every tenant's pooled load);
* ``z_k >= x_o`` and ``sum_k bytes_k z_k <= mem_j`` for the distinct footprints ``k`` on ``j``,
  only where they could overflow one device;
* ``sum_t sum_o dedicated_o x_o + n_j <= inventory_j (+ short_j)``; the elastic ``short_j`` is
  used to explain an inventory that cannot host the fleet;
* symmetry breaking among identical tenants ``a < b`` of one class: the option index of their
  first operator is non-decreasing, ``sum_o o x[a,o] <= sum_o o x[b,o]`` (any plan can be
  permuted into that order, so no optimum is lost).

The objective is the fleet TCO: every tenant's dedicated and direct costs, transfer costs and
soft-SLA penalties, plus the shared pools.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from ortools.sat.python import cp_model

from hetopt._solverlibs import pulp  # ortools first, then pulp (see there)
from hetopt.fleet.problem import FleetProblem
from hetopt.models import cpsat, milp
from hetopt.models import scaling as sc
from hetopt.solvers.base import Deadline

FleetObjective = Literal["cost", "shortage"]


class BuildInterrupted(Exception):  # noqa: N818  (a signal, not an error)
    """Model building passed its deadline; the caller falls back on a plan it already has."""


def _check(deadline: Deadline | None) -> None:
    if deadline is not None and deadline.expired:
        raise BuildInterrupted


@dataclass(frozen=True)
class FleetMilp:
    """A built fleet MILP and the variables a plan is read from."""

    prob: pulp.LpProblem
    x: list[list[pulp.LpVariable]]
    n: list[pulp.LpVariable]
    short: list[pulp.LpVariable] | None


@dataclass(frozen=True)
class FleetCpsat:
    """A built fleet CP-SAT model and the variables a plan is read from."""

    model: cp_model.CpModel
    x: list[list[cp_model.IntVar]]
    n: list[cp_model.IntVar]
    objective_scale: float
    scaling: sc.Scaling = sc.CONSERVATIVE


def _pooled_groups(fp: FleetProblem, j: int) -> list[tuple[int, int, np.ndarray]]:
    """``(tenant, operator, options)`` of every operator with a pooled option on ``j``."""
    out = []
    for t, p in enumerate(fp.tenants):
        on_j = np.flatnonzero((p.opt_device == j) & p.opt_pooled)
        for i in np.unique(p.opt_op[on_j]):
            out.append((t, int(i), on_j[p.opt_op[on_j] == i]))
    return out


def _symmetric_pairs(fp: FleetProblem) -> list[tuple[int, int]]:
    """Consecutive tenants of each class of identical tenants."""
    pairs: list[tuple[int, int]] = []
    for cls in np.unique(fp.tenant_class):
        members = np.flatnonzero(fp.tenant_class == cls)
        pairs.extend((int(a), int(b)) for a, b in zip(members[:-1], members[1:], strict=True))
    return pairs


def build_milp(
    fp: FleetProblem, objective: FleetObjective = "cost", deadline: Deadline | None = None
) -> FleetMilp:
    """Build the fleet MILP (PuLP; solved by HiGHS or CBC).

    Parameters
    ----------
    fp
        The fleet problem.
    objective
        ``cost``: fleet TCO under every tenant's SLA and the inventory. ``shortage``: the
        fewest extra devices (over all types) that would let the fleet meet its SLAs, used to
        say which pools are short and by how much.
    deadline
        Stop building (:class:`BuildInterrupted`) once it has passed: a fleet of thousands of
        operators takes seconds to build.
    """
    prob = pulp.LpProblem(f"hetopt_fleet_{objective}", pulp.LpMinimize)
    n_dev = fp.n_devices
    x: list[list[pulp.LpVariable]] = []
    cost_terms = []
    for t, p in enumerate(fp.tenants):
        _check(deadline)
        tag = f"t{t}."
        xt = [prob.add_variable(f"x[{t},{o}]", cat="Binary") for o in range(p.n_options)]
        cross = [
            prob.add_variable(f"{tag}cross[{e}]", lowBound=0, upBound=1)
            for e in range(len(p.edge_src))
        ]
        e2e = prob.add_variable(f"{tag}e2e", lowBound=0)
        soft = not p.sla.hard and p.sla.e2e_s is not None and objective == "cost"
        slack = prob.add_variable(f"{tag}slack", lowBound=0) if soft else None
        milp.add_assignment(prob, p, xt, tag)
        milp.add_cross_device(prob, p, xt, cross, tag)
        milp.add_latency(prob, p, xt, cross, e2e, tag)
        milp.add_sla(prob, p, e2e, slack, tag)
        fixed = p.opt_fixed_usd_per_h()
        cost_terms += [(fixed[o], xt[o]) for o in range(p.n_options) if fixed[o]]
        cost_terms += [
            (p.edge_cost_usd_per_h[e], cross[e])
            for e in range(len(cross))
            if p.edge_cost_usd_per_h[e]
        ]
        if slack is not None and p.sla.penalty_usd_per_h_per_s:
            cost_terms.append((p.sla.penalty_usd_per_h_per_s, slack))
        x.append(xt)
    n = [prob.add_variable(f"n[{j}]", lowBound=0, cat="Integer") for j in range(n_dev)]
    short = (
        [prob.add_variable(f"short[{j}]", lowBound=0) for j in range(n_dev)]
        if objective == "shortage"
        else None
    )
    for j, dev in enumerate(fp.devices):
        _check(deadline)
        groups = _pooled_groups(fp, j)
        for t, i, opts in groups:
            prob += n[j] >= pulp.lpSum(x[t][o] for o in opts), f"pool_exists[{dev},{t},{i}]"
        if groups:
            prob += (
                n[j]
                >= pulp.lpSum(
                    fp.tenants[t].opt_pool_load[o] * x[t][o] for t, _, opts in groups for o in opts
                ),
                f"pool_load[{dev}]",
            )
        if fp.memory_may_bind(j):
            keys = np.flatnonzero(fp.footprint_device == j)
            z = {int(k): prob.add_variable(f"z[{k}]", cat="Binary") for k in keys}
            for t, prints in enumerate(fp.opt_footprint):
                for o in np.flatnonzero(np.isin(prints, keys)):
                    prob += z[int(prints[o])] >= x[t][o], f"resident[{t},{o}]"
            prob += (
                pulp.lpSum(fp.footprint_bytes[k] / 1e9 * z[k] for k in z)
                <= fp.device_mem_bytes[j] / 1e9,
                f"pool_mem[{dev}]",
            )
        if math.isfinite(fp.device_inventory[j]):
            used = pulp.lpSum(
                int(p.opt_dedicated[o]) * x[t][o]
                for t, p in enumerate(fp.tenants)
                for o in np.flatnonzero((p.opt_device == j) & (p.opt_dedicated > 0))
            )
            rhs = fp.device_inventory[j] + (short[j] if short is not None else 0)
            prob += used + n[j] <= rhs, f"inventory[{dev}]"
    for a, b in _symmetric_pairs(fp):
        opts = fp.tenants[a].options_of(0)
        prob += (
            (
                pulp.lpSum(int(o) * x[a][o] for o in opts)
                <= pulp.lpSum(int(o) * x[b][o] for o in opts)
            ),
            f"symmetry[{a},{b}]",
        )
    if short is not None:
        prob += pulp.lpSum(short)
    else:
        prob += pulp.LpAffineExpression([(v, c) for c, v in cost_terms]) + pulp.lpSum(
            fp.device_cost_usd_per_h[j] * n[j] for j in range(n_dev)
        )
    return FleetMilp(prob, x, n, short)


def build_cpsat(
    fp: FleetProblem, scaling: sc.Scaling = sc.CONSERVATIVE, deadline: Deadline | None = None
) -> FleetCpsat:
    """Build the fleet CP-SAT model (integer-scaled as in :mod:`hetopt.models.scaling`).

    ``scaling`` conservative: its plans are exact-feasible; relaxed: its optimum and bound are
    lower bounds on the exact fleet optimum. ``deadline`` as for :func:`build_milp`.
    """
    m = cp_model.CpModel()
    n_dev = fp.n_devices
    x: list[list[cp_model.IntVar]] = []
    terms: list = []
    per_device = int(round(1 / scaling.load_devices))
    for p in fp.tenants:
        _check(deadline)
        xt = [m.new_bool_var("") for _ in range(p.n_options)]
        cross = [m.new_bool_var("") for _ in range(len(p.edge_src))]
        horizon = cpsat._horizon_us(p, scaling)
        cpsat.add_assignment(m, p, xt)
        cpsat.add_cross_device(m, p, xt, cross)
        e2e = cpsat.add_latency(m, p, xt, cross, horizon, scaling)
        terms.extend(cpsat.add_sla(m, p, e2e, horizon, scaling))
        fixed = scaling.cost(p.opt_fixed_usd_per_h())
        edge_cost = scaling.cost(p.edge_cost_usd_per_h)
        terms += [int(fixed[o]) * xt[o] for o in range(p.n_options) if fixed[o]]
        terms += [int(edge_cost[e]) * cross[e] for e in range(len(cross)) if edge_cost[e]]
        x.append(xt)
    n = []
    for j in range(n_dev):
        _check(deadline)
        groups = _pooled_groups(fp, j)
        total = sum(float(fp.tenants[t].opt_pool_load[opts].max()) for t, _, opts in groups)
        ub = max(int(math.ceil(total + 1e-9)), int(bool(groups)))
        if math.isfinite(fp.device_inventory[j]):
            ub = min(ub, int(fp.device_inventory[j]))
        nj = m.new_int_var(0, ub, f"n{j}")
        n.append(nj)
        load_terms = []
        for t, _, opts in groups:
            p = fp.tenants[t]
            load = scaling.demand(p.opt_pool_load[opts], scaling.load_devices)
            load_terms += [int(load[k]) * x[t][o] for k, o in enumerate(opts) if load[k]]
            for o in opts:
                m.add(nj >= 1).only_enforce_if(x[t][o])
        if load_terms:
            m.add(per_device * nj >= sum(load_terms))
        if fp.memory_may_bind(j):
            keys = np.flatnonzero(fp.footprint_device == j)
            z = {int(k): m.new_bool_var(f"z{k}") for k in keys}
            for t, prints in enumerate(fp.opt_footprint):
                for o in np.flatnonzero(np.isin(prints, keys)):
                    m.add_implication(x[t][o], z[int(prints[o])])
            mem = scaling.demand(fp.footprint_bytes, scaling.mem_bytes)
            m.add(
                sum(int(mem[k]) * z[k] for k in z)
                <= int(scaling.budget(fp.device_mem_bytes[j], scaling.mem_bytes))
            )
        if math.isfinite(fp.device_inventory[j]):
            m.add(
                sum(
                    int(p.opt_dedicated[o]) * x[t][o]
                    for t, p in enumerate(fp.tenants)
                    for o in np.flatnonzero((p.opt_device == j) & (p.opt_dedicated > 0))
                )
                + nj
                <= int(fp.device_inventory[j])
            )
    for a, b in _symmetric_pairs(fp):
        opts = fp.tenants[a].options_of(0)
        m.add(sum(int(o) * x[a][o] for o in opts) <= sum(int(o) * x[b][o] for o in opts))
    dev_cost = scaling.cost(fp.device_cost_usd_per_h)
    terms += [int(dev_cost[j]) * n[j] for j in range(n_dev) if dev_cost[j]]
    m.minimize(sum(terms))
    return FleetCpsat(m, x, n, scaling.cost_usd_per_h, scaling)
