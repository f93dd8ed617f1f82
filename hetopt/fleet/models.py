"""Fleet formulations: every tenant's single-agent model stacked, coupled by shared pools.

Per tenant ``t`` the MILP (:mod:`hetopt.models.milp`) and CP-SAT (:mod:`hetopt.models.cpsat`)
builders add their assignment, cross-device, latency and SLA constraints unchanged (with a
``t<k>.`` name prefix). The fleet adds, per device type ``j``:

* ``n_j >= sum_t sum_o load_o x_o`` and ``n_j >= X[t,i,j]`` for each pooled operator (a pool
  exists and covers every tenant's pooled load);
* ``z_k >= x_o`` and ``sum_k bytes_k z_k <= mem_j`` for the distinct footprints ``k`` on ``j``,
  only where they could overflow one device;
* per shared LLM pool ``k`` (:class:`~hetopt.fleet.problem.FleetProblem` ``key_*``), an integer
  ``m_k >= sum_t sum_o load_o x_o`` on each of its capacities, and ``m_k >= ceil(load_o) x_o``;
* ``sum_t sum_o dedicated_o x_o + sum_k dpr_k m_k + n_j <= inventory_j (+ short_j)``; the
  elastic ``short_j`` is used to explain an inventory that cannot host the fleet;
* symmetry breaking among identical tenants ``a < b`` of one class: the option index of their
  first operator is non-decreasing, ``sum_o o x[a,o] <= sum_o o x[b,o]`` (any plan can be
  permuted into that order, so no optimum is lost).

The objective is the fleet TCO: every tenant's dedicated and direct costs, transfer costs and
soft-SLA penalties (priced by :func:`hetopt.models.terms.objective_terms`), plus the shared
pools and the shared LLM pools' replicas. Pool, memory and inventory rows are written by the single agent's row writers
(``milp.add_pool_load``, ``cpsat.add_inventory``, ...), so a rule has one home.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from ortools.sat.python import cp_model

from hetopt._solverlibs import pulp  # ortools first, then pulp (see there)
from hetopt.fleet.problem import FleetProblem
from hetopt.models import cpsat, milp
from hetopt.models import scaling as sc
from hetopt.models.evaluate import KEY_DIMS
from hetopt.models.terms import objective_terms
from hetopt.problem import replicas_for_load
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
    m: list[pulp.LpVariable]


@dataclass(frozen=True)
class FleetCpsat:
    """A built fleet CP-SAT model and the variables a plan is read from."""

    model: cp_model.CpModel
    x: list[list[cp_model.IntVar]]
    n: list[cp_model.IntVar]
    objective_scale: float
    scaling: sc.Scaling = sc.CONSERVATIVE
    m: list[cp_model.IntVar] = field(default_factory=list)


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


def add_tenants_milp(
    prob: pulp.LpProblem,
    fp: FleetProblem,
    objective: FleetObjective,
    deadline: Deadline | None,
) -> tuple[list[list[pulp.LpVariable]], list[tuple[float, pulp.LpVariable]]]:
    """Every tenant's own families (assignment, cross-device, latency, SLA), as one agent's
    MILP writes them; returns the choice variables and every tenant's priced decisions."""
    x: list[list[pulp.LpVariable]] = []
    priced: list[tuple[float, pulp.LpVariable]] = []
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
        opts, edges, penalty = milp.cost_terms(objective_terms(p), xt, cross, slack)
        priced += opts + edges + penalty
        x.append(xt)
    return x, priced


def add_shared_pools_milp(
    prob: pulp.LpProblem, fp: FleetProblem, x: list[list[pulp.LpVariable]], n_j: Any, j: int
) -> None:
    """``n_j >= X[t,i,j]`` for every tenant's pooled operator and ``n_j >= sum_t sum_o
    load_o x_o``: one pool per device type, shared by all tenants."""
    dev = fp.devices[j]
    groups = _pooled_groups(fp, j)
    for t, i, opts in groups:
        milp.add_pool_exists(prob, n_j, [x[t][o] for o in opts], f"pool_exists[{dev},{t},{i}]")
    if groups:
        load = [(fp.tenants[t].opt_pool_load[o], x[t][o]) for t, _, opts in groups for o in opts]
        milp.add_pool_load(prob, n_j, load, f"pool_load[{dev}]")


def add_footprints_milp(
    prob: pulp.LpProblem, fp: FleetProblem, x: list[list[pulp.LpVariable]], j: int
) -> None:
    """``z_k >= x_o`` and ``sum_k bytes_k z_k <= mem_j``: each distinct footprint is held once
    per device, written only where the footprints could overflow one device."""
    if not fp.memory_may_bind(j):
        return
    keys = np.flatnonzero(fp.footprint_device == j)
    z = {int(k): prob.add_variable(f"z[{k}]", cat="Binary") for k in keys}
    for t, prints in enumerate(fp.opt_footprint):
        for o in np.flatnonzero(np.isin(prints, keys)):
            prob += z[int(prints[o])] >= x[t][o], f"resident[{t},{o}]"
    held = [(fp.footprint_bytes[k], z[k]) for k in z]
    milp.add_pool_memory(prob, held, fp.device_mem_bytes[j], f"pool_mem[{fp.devices[j]}]")


def add_llm_pools_milp(
    prob: pulp.LpProblem, fp: FleetProblem, x: list[list[pulp.LpVariable]], m_k: Any, k: int
) -> None:
    """Shared LLM pool ``k`` covers every tenant's load on each of its capacities,
    ``m_k >= sum_t sum_o load_o x_o``, and each placed option's own ceiling,
    ``m_k >= ceil(load_o) x_o`` (implied for integer ``m_k``; it keeps the LP bound of
    replicas rounded one operator at a time)."""
    name = fp.key_names[k]
    members = fp.key_members(k)
    for dim in range(KEY_DIMS):
        load = [
            (fp.tenants[t].opt_key_load[o], x[t][o])  # type: ignore[index]
            for t, opts in members
            for o in opts
            if fp.tenants[t].opt_key_dim[o] == dim  # type: ignore[index]
        ]
        if load:
            milp.add_pool_load(prob, m_k, load, f"llm_load[{name},{dim}]")
    for t, opts in members:
        for o in opts:
            floor = float(replicas_for_load(fp.tenants[t].opt_key_load[o]))  # type: ignore[index]
            prob += m_k >= floor * x[t][o], f"llm_floor[{name},{t},{o}]"


def add_inventory_milp(
    prob: pulp.LpProblem,
    fp: FleetProblem,
    x: list[list[pulp.LpVariable]],
    n_j: Any,
    short_j: Any,
    j: int,
    m: list[Any] | None = None,
) -> None:
    """``sum_t sum_o dedicated_o x_o + sum_k dpr_k m_k + n_j <= inventory_j (+ short_j)``."""
    if not math.isfinite(fp.device_inventory[j]):
        return
    milp.add_inventory(
        prob,
        _dedicated_terms(fp, x, j, m),
        n_j,
        fp.device_inventory[j] + (short_j if short_j is not None else 0),
        f"inventory[{fp.devices[j]}]",
    )


def add_symmetry_milp(prob: pulp.LpProblem, fp: FleetProblem, x: list[list[Any]]) -> None:
    """``sum_o o x[a,o] <= sum_o o x[b,o]`` for consecutive identical tenants ``a < b``."""
    for a, b in _symmetric_pairs(fp):
        opts = fp.tenants[a].options_of(0)
        prob += (
            (
                pulp.lpSum(int(o) * x[a][o] for o in opts)
                <= pulp.lpSum(int(o) * x[b][o] for o in opts)
            ),
            f"symmetry[{a},{b}]",
        )


def build_milp(
    fp: FleetProblem, objective: FleetObjective = "cost", deadline: Deadline | None = None
) -> FleetMilp:
    """Build the fleet MILP (PuLP; solved by HiGHS or CBC): one ``add_*`` per family.

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
    x, priced = add_tenants_milp(prob, fp, objective, deadline)
    n = [prob.add_variable(f"n[{j}]", lowBound=0, cat="Integer") for j in range(n_dev)]
    m = [prob.add_variable(f"m[{k}]", lowBound=0, cat="Integer") for k in range(fp.n_keys)]
    for k in range(fp.n_keys):
        _check(deadline)
        add_llm_pools_milp(prob, fp, x, m[k], k)
    short = (
        [prob.add_variable(f"short[{j}]", lowBound=0) for j in range(n_dev)]
        if objective == "shortage"
        else None
    )
    for j in range(n_dev):
        _check(deadline)
        add_shared_pools_milp(prob, fp, x, n[j], j)
        add_footprints_milp(prob, fp, x, j)
        add_inventory_milp(prob, fp, x, n[j], short[j] if short is not None else None, j, m)
    add_symmetry_milp(prob, fp, x)
    if short is not None:
        prob += pulp.lpSum(short)
    else:
        # sum_t (sum_o c_o x_o + sum_e c_e cross_e + lambda_t slack_t) + sum_j c_j n_j
        #   + sum_k c_k m_k
        key_usd = fp.key_usd_per_h()
        prob += (
            pulp.LpAffineExpression([(v, c) for c, v in priced])
            + pulp.lpSum(fp.device_cost_usd_per_h[j] * n[j] for j in range(n_dev))
            + pulp.lpSum(float(key_usd[k]) * m[k] for k in range(fp.n_keys))
        )
    return FleetMilp(prob, x, n, short, m)


def _dedicated_terms(
    fp: FleetProblem, x: list[list[Any]], j: int, m: list[Any] | None = None
) -> list[tuple[int, Any]]:
    """``(dedicated_o, x[t,o])`` of every tenant's option that dedicates devices of type j,
    and ``(dpr_k, m_k)`` of every shared LLM pool on j."""
    keys = [(int(fp.key_devices_per_replica[k]), m[k]) for k in fp.keys_on(j)] if m else []
    return [
        (int(p.opt_dedicated[o]), x[t][o])
        for t, p in enumerate(fp.tenants)
        for o in np.flatnonzero((p.opt_device == j) & (p.opt_dedicated > 0))
    ] + keys


def add_tenants_cpsat(
    m: cp_model.CpModel, fp: FleetProblem, scaling: sc.Scaling, deadline: Deadline | None
) -> tuple[list[list[cp_model.IntVar]], list[Any]]:
    """Every tenant's own families as one agent's CP-SAT model writes them; returns the choice
    variables and every tenant's priced decisions (soft-SLA slack, options, edges)."""
    x: list[list[cp_model.IntVar]] = []
    terms: list[Any] = []
    for p in fp.tenants:
        _check(deadline)
        xt = [m.new_bool_var("") for _ in range(p.n_options)]
        cross = [m.new_bool_var("") for _ in range(len(p.edge_src))]
        horizon = cpsat.horizon_steps(p, scaling)
        cpsat.add_assignment(m, p, xt)
        cpsat.add_cross_device(m, p, xt, cross)
        e2e = cpsat.add_latency(m, p, xt, cross, horizon, scaling)
        terms.extend(cpsat.add_sla(m, p, e2e, horizon, scaling))
        opts, edges = cpsat.cost_terms(objective_terms(p), xt, cross, scaling)
        terms += opts + edges
        x.append(xt)
    return x, terms


def add_shared_pool_cpsat(
    m: cp_model.CpModel,
    fp: FleetProblem,
    x: list[list[cp_model.IntVar]],
    j: int,
    scaling: sc.Scaling,
) -> cp_model.IntVar:
    """The pool of device type j: ``x_o => n_j >= 1`` for every pooled option of every tenant
    and ``per_device n_j >= sum_t sum_o load_o x_o``; returns ``n_j``, bounded by the most
    load its options could bring and by the inventory."""
    groups = _pooled_groups(fp, j)
    total = sum(float(fp.tenants[t].opt_pool_load[opts].max()) for t, _, opts in groups)
    ub = max(int(math.ceil(total + 1e-9)), int(bool(groups)))
    if math.isfinite(fp.device_inventory[j]):
        ub = min(ub, int(fp.device_inventory[j]))
    nj = m.new_int_var(0, ub, f"n{j}")
    load_terms: list[tuple[int, cp_model.IntVar]] = []
    for t, _, opts in groups:
        load = scaling.demand(fp.tenants[t].opt_pool_load[opts], scaling.load_devices)
        load_terms += [(int(load[k]), x[t][o]) for k, o in enumerate(opts) if load[k]]
        for o in opts:
            cpsat.add_pool_exists(m, nj, x[t][o])
    if load_terms:
        cpsat.add_pool_load(m, nj, load_terms, int(round(1 / scaling.load_devices)))
    return nj


def add_footprints_cpsat(
    m: cp_model.CpModel,
    fp: FleetProblem,
    x: list[list[cp_model.IntVar]],
    j: int,
    scaling: sc.Scaling,
) -> None:
    """``x_o => z_k`` and ``sum_k mem_k z_k <= mem_j`` where footprints could overflow."""
    if not fp.memory_may_bind(j):
        return
    keys = np.flatnonzero(fp.footprint_device == j)
    z = {int(k): m.new_bool_var(f"z{k}") for k in keys}
    for t, prints in enumerate(fp.opt_footprint):
        for o in np.flatnonzero(np.isin(prints, keys)):
            m.add_implication(x[t][o], z[int(prints[o])])
    mem = scaling.demand(fp.footprint_bytes, scaling.mem_bytes)
    cap = int(scaling.budget(fp.device_mem_bytes[j], scaling.mem_bytes))
    cpsat.add_pool_memory(m, [(int(mem[k]), z[k]) for k in z], cap)


def add_llm_pool_cpsat(
    m: cp_model.CpModel,
    fp: FleetProblem,
    x: list[list[cp_model.IntVar]],
    k: int,
    scaling: sc.Scaling,
) -> cp_model.IntVar:
    """Shared LLM pool ``k``: ``per_replica m_k >= sum_t sum_o load_o x_o`` in load steps, per
    capacity; returns ``m_k``, bounded by every member at its heaviest option on the pool and
    by the inventory."""
    members = fp.key_members(k)
    most = 0.0
    terms: list[list[tuple[int, cp_model.IntVar]]] = [[] for _ in range(KEY_DIMS)]
    for t, opts in members:
        p = fp.tenants[t]
        loads = p.opt_key_load[opts]  # type: ignore[index]
        most += float(pd.Series(loads).groupby(p.opt_op[opts]).max().sum())
        steps = scaling.demand(loads, scaling.load_devices)
        for o, step in zip(opts, steps, strict=True):
            if step:
                terms[int(p.opt_key_dim[o])].append((int(step), x[t][o]))  # type: ignore[index]
    ub = math.ceil(most + 1e-6 * (len(members) + 1))
    cap = fp.device_inventory[fp.key_device[k]] / fp.key_devices_per_replica[k]
    if math.isfinite(cap):
        ub = min(ub, int(cap))
    m_k = m.new_int_var(0, ub, f"m{k}")
    for dim_terms in terms:
        if dim_terms:
            cpsat.add_pool_load(m, m_k, dim_terms, int(round(1 / scaling.load_devices)))
    return m_k


def add_inventory_cpsat(
    m: cp_model.CpModel,
    fp: FleetProblem,
    x: list[list[cp_model.IntVar]],
    n_j: Any,
    j: int,
    keys: list[cp_model.IntVar] | None = None,
) -> None:
    """``sum_t sum_o dedicated_o x_o + sum_k dpr_k m_k + n_j <= inventory_j``."""
    if math.isfinite(fp.device_inventory[j]):
        cpsat.add_inventory(m, _dedicated_terms(fp, x, j, keys), n_j, int(fp.device_inventory[j]))


def add_symmetry_cpsat(m: cp_model.CpModel, fp: FleetProblem, x: list[list[Any]]) -> None:
    """``sum_o o x[a,o] <= sum_o o x[b,o]`` for consecutive identical tenants ``a < b``."""
    for a, b in _symmetric_pairs(fp):
        opts = fp.tenants[a].options_of(0)
        m.add(sum(int(o) * x[a][o] for o in opts) <= sum(int(o) * x[b][o] for o in opts))


def build_cpsat(
    fp: FleetProblem, scaling: sc.Scaling = sc.CONSERVATIVE, deadline: Deadline | None = None
) -> FleetCpsat:
    """Build the fleet CP-SAT model (integer-scaled as in :mod:`hetopt.models.scaling`).

    ``scaling`` conservative: its plans are exact-feasible; relaxed: its optimum and bound are
    lower bounds on the exact fleet optimum. ``deadline`` as for :func:`build_milp`.
    """
    m = cp_model.CpModel()
    x, terms = add_tenants_cpsat(m, fp, scaling, deadline)
    keys = []
    for k in range(fp.n_keys):
        _check(deadline)
        keys.append(add_llm_pool_cpsat(m, fp, x, k, scaling))
    n = []
    for j in range(fp.n_devices):
        _check(deadline)
        nj = add_shared_pool_cpsat(m, fp, x, j, scaling)
        n.append(nj)
        add_footprints_cpsat(m, fp, x, j, scaling)
        add_inventory_cpsat(m, fp, x, nj, j, keys)
    add_symmetry_cpsat(m, fp, x)
    # sum_t (options, edges, slack) + sum_j c_j n_j, in integer cost units
    dev_cost = scaling.cost(fp.device_cost_usd_per_h)
    terms += [int(dev_cost[j]) * n[j] for j in range(fp.n_devices) if dev_cost[j]]
    key_cost = scaling.cost(fp.key_usd_per_h())
    terms += [int(key_cost[k]) * keys[k] for k in range(fp.n_keys) if key_cost[k]]
    m.minimize(sum(terms))
    return FleetCpsat(m, x, n, scaling.cost_usd_per_h, scaling, keys)
