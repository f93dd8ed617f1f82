"""Lagrangian decomposition of the fleet: per-tenant subproblems coupled by shared pools.

Relaxing the fleet's coupling rows (inventory with multipliers ``mu_j >= 0``; shared pools
priced at their load, without the ceiling and the one-device minimum; shared footprints)
leaves one independent single-agent problem per tenant, in which a device of type ``j`` costs
``c_j + mu_j`` per hour. Identical tenants share one subproblem. For any ``mu``

    LB(mu) = sum_t bound_t(mu) - sum_j mu_j inventory_j  <=  fleet optimum,

using each subproblem's *proven* bound, so the bound stays valid when a subproblem stops early.
Subgradient steps (Polyak) on ``mu`` raise it. Every subproblem solution is kept as a column;
each round, a restricted master MIP picks one column per tenant under the exact coupling (pool
ceilings, one-device minimum, inventory, footprints), which gives a feasible fleet plan and the
upper bound. The solve stops when ``(UB - LB) / UB <= gap_rel`` or at the time limit.

Why it wins at scale: the subproblems are small and solved to optimality, so their sum is a
much stronger bound than the LP relaxation of the monolithic model (pool rounding is the only
slack), and the master only chooses among a few plans per tenant.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from hetopt._solverlibs import pulp  # ortools first, then pulp (see there)
from hetopt.fleet.evaluate import Choices, evaluate_fleet
from hetopt.fleet.problem import FleetProblem
from hetopt.problem import PlacementProblem
from hetopt.solvers import solve
from hetopt.solvers.base import (
    MIN_SOLVE_SLICE_S,
    Deadline,
    OnProgress,
    SolveProgress,
    SolverOptions,
    SolveStatus,
)
from hetopt.solvers.registry import get_backend


@dataclass(frozen=True)
class DecompositionResult:
    """What the decomposition found.

    Attributes
    ----------
    status
        ``optimal`` (gap within ``gap_rel``), ``feasible`` (time limit), ``infeasible`` (some
        tenant's SLA fits no device mix, or the master found no plan on its columns).
    objective_usd_per_h, bound_usd_per_h
        Best plan's objective and the best Lagrangian bound.
    choices
        The best plan (None without one).
    iterations, subproblems
        Subgradient rounds and single-agent solves performed.
    infeasible_tenant
        Name of a tenant whose subproblem is infeasible (then the fleet is too).
    """

    status: SolveStatus
    objective_usd_per_h: float
    bound_usd_per_h: float
    choices: Choices | None
    iterations: int
    subproblems: int
    infeasible_tenant: str | None = None


def priced(p: PlacementProblem, price_usd_per_h: np.ndarray) -> PlacementProblem:
    """The tenant's relaxed subproblem: devices at ``price``, pooled load paid linearly."""
    return replace(
        p,
        device_cost_usd_per_h=price_usd_per_h,
        opt_direct_usd_per_h=p.opt_direct_usd_per_h
        + p.opt_pool_load * price_usd_per_h[p.opt_device],
        opt_pool_load=np.zeros_like(p.opt_pool_load),
        opt_pooled=np.zeros_like(p.opt_pooled),
        opt_pool_mem_bytes=np.zeros_like(p.opt_pool_mem_bytes),
    )


@dataclass(frozen=True)
class _Column:
    choice: tuple[int, ...]
    own_usd_per_h: float  # dedicated, direct, transfer and soft-SLA penalty
    dedicated: np.ndarray
    load: np.ndarray
    pooled_on: np.ndarray
    prints: frozenset[int]


def _column(fp: FleetProblem, t: int, choice: tuple[int, ...]) -> _Column:
    p = fp.tenants[t]
    c = np.asarray(choice, dtype=int)
    dev = p.opt_device[c]
    n = fp.n_devices
    single = replace(
        fp,
        tenants=(p,),
        tenant_names=(fp.tenant_names[t],),
        tenant_class=np.zeros(1, dtype=int),
        tenant_template=(fp.tenant_template[t],),
        opt_footprint=(fp.opt_footprint[t],),
    )
    ev = evaluate_fleet(single, (choice,))
    own = ev.objective_usd_per_h - float(fp.device_cost_usd_per_h @ ev.pool_counts)
    return _Column(
        tuple(int(o) for o in choice),
        own,
        np.bincount(dev, weights=p.opt_dedicated[c], minlength=n),
        np.bincount(dev, weights=p.opt_pool_load[c], minlength=n),
        np.bincount(dev, weights=p.opt_pooled[c].astype(float), minlength=n) > 0,
        frozenset(int(k) for k in fp.opt_footprint[t][c] if k >= 0),
    )


def _build_master(
    fp: FleetProblem, columns: dict[int, list[_Column]], relax: bool
) -> tuple[pulp.LpProblem, list[list[pulp.LpVariable]], dict[int, pulp.LpConstraint]]:
    """The restricted master over the columns: one column per tenant, exact coupling rows."""
    prob = pulp.LpProblem("hetopt_fleet_master", pulp.LpMinimize)
    lam: list[list[pulp.LpVariable]] = []
    cost = []
    cat = "Continuous" if relax else "Binary"
    inventory_rows: dict[int, pulp.LpConstraint] = {}
    for t in range(fp.n_tenants):
        cols = columns[int(fp.tenant_class[t])]
        lt = [
            prob.add_variable(f"l[{t},{k}]", lowBound=0, upBound=1, cat=cat)
            for k in range(len(cols))
        ]
        prob += pulp.lpSum(lt) == 1, f"one[{t}]"
        cost += [(v, col.own_usd_per_h) for v, col in zip(lt, cols, strict=True)]
        lam.append(lt)
    n = [
        prob.add_variable(f"n[{j}]", lowBound=0, cat="Continuous" if relax else "Integer")
        for j in range(fp.n_devices)
    ]
    for j, dev in enumerate(fp.devices):
        load_terms, ded_terms = [], []
        for t, lt in enumerate(lam):
            cols = columns[int(fp.tenant_class[t])]
            on = [v for v, col in zip(lt, cols, strict=True) if col.pooled_on[j]]
            if on:
                prob += n[j] >= pulp.lpSum(on), f"exists[{dev},{t}]"
            load_terms += [(v, col.load[j]) for v, col in zip(lt, cols, strict=True) if col.load[j]]
            ded_terms += [
                (v, col.dedicated[j]) for v, col in zip(lt, cols, strict=True) if col.dedicated[j]
            ]
        if load_terms:
            prob += n[j] >= pulp.LpAffineExpression(load_terms), f"load[{dev}]"
        if math.isfinite(fp.device_inventory[j]):
            row = pulp.LpAffineExpression(ded_terms) + n[j] <= fp.device_inventory[j]
            prob.addConstraint(row, f"inventory[{dev}]")
            inventory_rows[j] = row
        if fp.memory_may_bind(j):
            keys = [int(k) for k in np.flatnonzero(fp.footprint_device == j)]
            z = {k: prob.add_variable(f"z[{k}]", lowBound=0, upBound=1, cat=cat) for k in keys}
            for t, lt in enumerate(lam):
                cols = columns[int(fp.tenant_class[t])]
                for v, col in zip(lt, cols, strict=True):
                    for k in col.prints & set(keys):
                        prob += z[k] >= v, f"res[{k},{v.name}]"
            prob += (
                pulp.lpSum(fp.footprint_bytes[k] / 1e9 * z[k] for k in z)
                <= fp.device_mem_bytes[j] / 1e9,
                f"mem[{dev}]",
            )
    for cls in np.unique(fp.tenant_class):
        members = np.flatnonzero(fp.tenant_class == cls)
        for a, b in zip(members[:-1], members[1:], strict=True):
            prob += (
                (
                    pulp.lpSum(k * v for k, v in enumerate(lam[a]))
                    <= pulp.lpSum(k * v for k, v in enumerate(lam[b]))
                ),
                f"sym[{a},{b}]",
            )
    prob += pulp.LpAffineExpression(cost) + pulp.lpSum(
        fp.device_cost_usd_per_h[j] * n[j] for j in range(fp.n_devices)
    )
    return prob, lam, inventory_rows


def _master_prices(
    fp: FleetProblem,
    columns: dict[int, list[_Column]],
    options: SolverOptions,
    deadline: Deadline | None = None,
) -> np.ndarray | None:
    """Inventory prices ``mu_j >= 0``: the duals of the master LP's inventory rows."""
    prob, _, rows = _build_master(fp, columns, relax=True)
    highs = replace(options, backend="highs")
    status = (
        get_backend("highs").run(prob, highs, deadline or Deadline.after(highs.time_limit_s)).status
    )
    if status is not SolveStatus.OPTIMAL:
        return None
    mu = np.zeros(fp.n_devices)
    for j, row in rows.items():
        if row.pi is not None:
            mu[j] = max(0.0, -float(row.pi))
    return mu


def _master(
    fp: FleetProblem,
    columns: dict[int, list[_Column]],
    options: SolverOptions,
    incumbent: Choices | None,
    deadline: Deadline | None = None,
) -> Choices | None:
    """Pick one column per tenant under the exact coupling (restricted master MIP)."""
    prob, lam, _ = _build_master(fp, columns, relax=False)
    start = False
    if incumbent is not None:
        for t, lt in enumerate(lam):
            cols = columns[int(fp.tenant_class[t])]
            hit = [k for k, col in enumerate(cols) if col.choice == incumbent[t]]
            if not hit:
                break
            for k, v in enumerate(lt):
                v.setInitialValue(1.0 if k == hit[0] else 0.0)
        else:
            start = True
    highs = replace(options, backend="highs")
    values = {v: v.varValue for v in prob.variables() if v.varValue is not None} if start else None
    raw = get_backend("highs").run(
        prob, highs, deadline or Deadline.after(highs.time_limit_s), None, values
    )
    status = raw.status
    if status not in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
        return None
    out = []
    for t, lt in enumerate(lam):
        cols = columns[int(fp.tenant_class[t])]
        k = int(np.argmax([v.varValue or 0.0 for v in lt]))
        out.append(cols[k].choice)
    return tuple(out)


def solve_decomposed(
    fp: FleetProblem,
    options: SolverOptions,
    *,
    start: Choices | None = None,
    deadline_s: float | None = None,
    on_progress: OnProgress | None = None,
    progress: Callable[[str], None] | None = None,
    max_iterations: int = 50,
) -> DecompositionResult:
    """Run the decomposition (see the module docstring).

    Parameters
    ----------
    fp
        The fleet problem.
    options
        ``backend`` solves the subproblems (``highs``, ``cbc`` or ``cpsat``); ``gap_rel`` is the
        stopping gap; ``time_limit_s`` bounds the whole run unless ``deadline_s`` is given.
    start
        A feasible plan (the greedy) to seed the columns and the incumbent.
    deadline_s
        ``time.perf_counter()`` value at which to stop.
    on_progress
        Called with the incumbent and bound after every round.
    progress
        Optional callback receiving one line per round.
    max_iterations
        Subgradient rounds at most.
    """
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    deadline = deadline_s if deadline_s is not None else t0 + options.time_limit_s
    sub_options = replace(options, threads=1, gap_rel=min(options.gap_rel, 1e-6))
    sub_cap_s = max(1.0, options.time_limit_s / 4)

    def until(cap_s: float) -> Deadline:
        """The sooner of ``cap_s`` from now and the run's deadline."""
        return Deadline(min(time.perf_counter() + cap_s, deadline), cap_s)

    classes = [int(c) for c in np.unique(fp.tenant_class)]
    rep = {c: int(np.flatnonzero(fp.tenant_class == c)[0]) for c in classes}
    count = {c: int((fp.tenant_class == c).sum()) for c in classes}
    finite = np.isfinite(fp.device_inventory)
    # Without binding inventory or memory, the first round's plan needs no master re-solves.
    coupled = bool(finite.any()) or any(fp.memory_may_bind(j) for j in range(fp.n_devices))
    inventory = np.where(finite, fp.device_inventory, 0.0)
    columns: dict[int, list[_Column]] = {c: [] for c in classes}

    def add_column(c: int, choice: tuple[int, ...]) -> _Column:
        for col in columns[c]:
            if col.choice == choice:
                return col
        col = _column(fp, rep[c], choice)
        columns[c].append(col)
        return col

    best_choices: Choices | None = None
    best_ub = math.inf
    if start is not None:
        ev = evaluate_fleet(fp, start)
        if ev.feasible:
            best_choices, best_ub = start, ev.objective_usd_per_h
            for t, choice in enumerate(start):
                add_column(int(fp.tenant_class[t]), tuple(choice))
    mu = np.zeros(fp.n_devices)
    best_lb = -math.inf
    current: dict[int, tuple[tuple[int, ...], float]] = {}
    prev_mu: np.ndarray | None = None
    theta, stall = 1.0, 0
    best_mu = mu.copy()
    subproblems = 0
    iteration = 0
    for iteration in range(1, max_iterations + 1):
        price = fp.device_cost_usd_per_h + mu
        complete = True  # every class solved at this round's prices: the bound is valid
        for c in classes:
            if time.perf_counter() >= deadline and (best_choices is not None or iteration > 1):
                complete = False  # out of time: this round gives no bound
                break
            if c in current and prev_mu is not None:
                col = next(col for col in columns[c] if col.choice == current[c][0])
                used = (col.dedicated > 0) | (col.load > 0)
                dmu = mu - prev_mu
                if not (dmu < -1e-12).any() and not (used & (np.abs(dmu) > 1e-12)).any():
                    continue  # still optimal: only unused devices got dearer
            res = solve(priced(fp.tenants[rep[c]], price), sub_options, deadline=until(sub_cap_s))
            subproblems += 1
            if not res.has_solution:
                if res.status is SolveStatus.INFEASIBLE:
                    return DecompositionResult(
                        SolveStatus.INFEASIBLE,
                        math.nan,
                        best_lb,
                        None,
                        iteration,
                        subproblems,
                        fp.tenant_names[rep[c]],
                    )
                current.pop(c, None)
                continue
            assert res.choice is not None
            add_column(c, res.choice)
            bound = res.bound if math.isfinite(res.bound) else -math.inf
            current[c] = (res.choice, bound)
        if iteration == 1 and finite.any():
            # Escape columns: each class's plan without the limited types its first plan uses,
            # so the master can move tenants off a scarce type at their true cost.
            for c in classes:
                if c not in current or time.perf_counter() >= deadline:
                    continue
                col = next(col for col in columns[c] if col.choice == current[c][0])
                scarce = finite & ((col.dedicated > 0) | (col.load > 0))
                if not scarce.any():
                    continue
                p = fp.tenants[rep[c]]
                keep = ~scarce[p.opt_device]
                if not all(keep[p.opt_op == i].any() for i in range(p.n_ops)):
                    continue
                alt = solve(priced(p.restrict(keep), price), sub_options, deadline=until(sub_cap_s))
                subproblems += 1
                if alt.choice is not None:
                    kept = np.flatnonzero(keep)
                    add_column(c, tuple(int(kept[o]) for o in alt.choice))
        if complete and len(current) == len(classes):
            lb = sum(count[c] * current[c][1] for c in classes) - float(mu @ inventory)
            best_lb = max(best_lb, lb)
        else:
            lb = -math.inf
        if time.perf_counter() < deadline:
            plan = tuple(
                current[int(fp.tenant_class[t])][0] if int(fp.tenant_class[t]) in current else None
                for t in range(fp.n_tenants)
            )
            candidates: list[Choices] = []
            if all(c is not None for c in plan):
                candidates.append(plan)  # type: ignore[arg-type]
            for cand in candidates:
                ev = evaluate_fleet(fp, cand)
                if ev.feasible and ev.objective_usd_per_h < best_ub:
                    best_ub, best_choices = ev.objective_usd_per_h, cand
            if coupled or iteration == 1:
                master = _master(fp, columns, options, best_choices, until(10.0))
                if master is not None:
                    ev = evaluate_fleet(fp, master)
                    if ev.feasible and ev.objective_usd_per_h < best_ub - 1e-9:
                        best_ub, best_choices = ev.objective_usd_per_h, master
        gap = (best_ub - best_lb) / max(abs(best_ub), 1e-9)
        say(
            f"round {iteration}: bound {best_lb:.3f} $/h, plan {best_ub:.3f} $/h, gap "
            f"{gap:.3%}, {subproblems} subproblems"
        )
        if on_progress is not None and math.isfinite(best_ub):
            on_progress(SolveProgress("decomposition", time.perf_counter() - t0, best_ub, best_lb))
        if gap <= options.gap_rel or not finite.any() or time.perf_counter() >= deadline:
            break
        # Next prices: the master LP's inventory duals (column generation), smoothed towards
        # the prices of the best bound so far (Wentges); a Polyak subgradient step when the
        # LP gives none.
        if lb >= best_lb - 1e-9:
            best_mu = mu.copy()
        prev_mu = mu
        duals = _master_prices(
            fp, columns, options, until(max(deadline - time.perf_counter(), MIN_SOLVE_SLICE_S))
        )
        if duals is not None and not np.allclose(duals, mu):
            mu = 0.5 * duals + 0.5 * best_mu
            if np.allclose(mu, prev_mu):
                mu = duals
        else:
            usage = np.zeros(fp.n_devices)
            for c in classes:
                if c in current:
                    col = next(col for col in columns[c] if col.choice == current[c][0])
                    usage += count[c] * (col.dedicated + col.load)
            g = np.where(finite, usage - inventory, 0.0)
            g = np.where((mu <= 0) & (g < 0), 0.0, g)
            if not (np.abs(g) > 1e-9).any():
                break
            if lb < best_lb - 1e-9:
                stall += 1
                if stall >= 2:
                    theta, stall = theta / 2, 0
            target = best_ub if math.isfinite(best_ub) else max(lb, 0.0) * 1.05 + 1.0
            step = theta * max(target - lb, 1e-6) / float(g @ g)
            mu = np.maximum(0.0, mu + step * g)
    if best_choices is None:
        return DecompositionResult(
            SolveStatus.NO_SOLUTION, math.nan, best_lb, None, iteration, subproblems
        )
    gap = (best_ub - best_lb) / max(abs(best_ub), 1e-9)
    status = SolveStatus.OPTIMAL if gap <= options.gap_rel else SolveStatus.FEASIBLE
    return DecompositionResult(status, best_ub, best_lb, best_choices, iteration, subproblems)
