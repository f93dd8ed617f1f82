"""Independent plan verification (run after every solve).

``verify_plan`` reads a plan as published (its placement rows, its device table and its
totals) and re-derives each number from the raw inputs (:class:`hetopt.oracle.VerifyInputs`:
the cost table's rows, the decomposed graph, device prices, memory and inventory, the SLA) with
the deliberately simple recomputation of :mod:`hetopt.oracle`. It never calls
:func:`hetopt.models.evaluate.evaluate_choice` (which filled the plan), the problem's arrays or a
formulation, so every check can fail: tests/plan/test_verify.py mutates correct plans and
expects each mutation to be caught.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from hetopt.oracle import (
    LATENCY_TOL_S,
    SECONDS_PER_HOUR,
    Recomputed,
    RowInput,
    VerifyInputs,
    evaluate_assignment,
)
from hetopt.plan.plan import Plan
from hetopt.solvers.base import SolveResult

REL_TOL = 1e-6  # totals: the solvers' feasibility tolerance
ROW_REL_TOL = 1e-9  # numbers copied from a cost-table row


def verify_plan(plan: Plan, inputs: VerifyInputs) -> tuple[str, ...]:
    """Return every problem found with ``plan``; an empty tuple means it is verified.

    Checks, each against a recomputation from ``inputs``:

    * every placeable operator is placed once, on a feasible cost-table row, and its row in
      the plan repeats that row's latency, step, visits and pool flag;
    * an exclusive operator's count is ``tp pp ceil(rate visits / (requests_per_s
      max_utilization))``; a pooled one's is its pool's size;
    * exclusive rows with the same ``pool_key`` form one LLM pool: the plan's LLM pool table
      lists each with its members, summed load and ``replicas >= ceil(summed load)`` (an
      under-sized pool is caught), and each member counts the pool's devices;
    * each pool covers its summed load (at least one device when used) and holds its
      footprints in ``memory (1 - reserve)``; dedicated + pooled devices stay within the
      inventory; the device table's counts, prices, cost components and carbon add up;
    * the end-to-end latency over every path (loops at the SLA's iterations, transfers where
      device types change) equals the plan's and meets a hard SLA; TTFT and TBT steps meet
      their bounds;
    * TCO, cost per request and carbon equal the recomputed ones, and the solver's objective
      equals the recomputed TCO plus the soft-SLA penalty, within the solver's resolution.

    Parameters
    ----------
    plan
        The plan to check.
    inputs
        The raw inputs of the placement it answers.

    Examples
    --------
    >>> import dataclasses
    >>> from hetopt.pipeline import PlanRequest, plan_agent
    >>> from hetopt.sla import Sla
    >>> from hetopt.workloads import load_workload
    >>> out = plan_agent(PlanRequest(load_workload("worked_example"), sla=Sla(e2e_s=0.120)))
    >>> verify_plan(out.plan, out.inputs)
    ()
    >>> cheaper = dataclasses.replace(out.plan, tco_usd_per_hour=300.0)
    >>> verify_plan(cheaper, out.inputs)[0]
    'plan reports TCO 300.000000 $/h but the raw inputs give 342.000000 $/h'
    """
    issues: list[str] = []
    assignment = _read_placement(plan.placement, inputs, issues)
    if assignment is None:
        return tuple(issues)
    pools = _published_pools(plan, inputs, issues)
    llm_pools = _published_llm_pools(plan, issues)
    ev = evaluate_assignment(inputs, assignment, pools, llm_pool_counts=llm_pools)
    issues.extend(ev.violations)
    if ev.sla_violation:
        issues.append(ev.sla_violation)
    _check_rows(plan.placement, inputs, ev, issues)
    _check_llm_pools(plan.llm_pools, ev, issues)
    _check_device_table(plan.devices, inputs, ev, issues)
    _check_totals(plan, inputs, ev, issues)
    _check_phase_limits(plan, inputs, assignment, issues)
    _check_objective(plan.solve, inputs, ev, issues)
    return tuple(issues)


def _close(a: float, b: float, rel: float) -> bool:
    """Equal within ``rel`` (relative to the larger of 1 and ``|b|``); NaN equals NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return abs(a - b) <= rel * max(1.0, abs(b))


def _read_placement(
    placement: pd.DataFrame, inputs: VerifyInputs, issues: list[str]
) -> dict[str, tuple[str, str]] | None:
    """``{operator: (device, config)}`` when every operator sits once on a feasible row."""
    before = len(issues)
    assignment: dict[str, tuple[str, str]] = {}
    for rec in placement.to_dict(orient="records"):
        op, device, config = str(rec["operator"]), str(rec["device"]), str(rec["config"])
        if op in assignment:
            issues.append(f"operator '{op}' is placed twice ({assignment[op][0]} and {device})")
            continue
        assignment[op] = (device, config)
        if inputs.op(op) is None:
            issues.append(f"plan places '{op}', which is not a placeable operator of the workload")
            continue
        row = inputs.row(op, device, config)
        if row is None:
            issues.append(
                f"operator '{op}' is placed on {device} {config}, which the cost table does "
                f"not offer"
            )
        elif not row.feasible:
            issues.append(
                f"operator '{op}' is placed on {device} {config}, which the cost table marks "
                f"infeasible"
            )
    for needed in inputs.ops:
        if needed.name not in assignment:
            issues.append(f"operator '{needed.name}' has no placement")
    return assignment if len(issues) == before else None


def _published_pools(plan: Plan, inputs: VerifyInputs, issues: list[str]) -> dict[str, int]:
    """Pool devices per type from the device table, checked against ``plan.pool_counts``."""
    pools = {str(r["device"]): int(r["pooled"]) for r in plan.devices.to_dict(orient="records")}
    names = [d.name for d in inputs.devices]
    if len(plan.pool_counts) != len(names):
        issues.append(
            f"plan.pool_counts has {len(plan.pool_counts)} entries but the cost table spans "
            f"{len(names)} device types"
        )
        return pools
    for name, count in zip(names, plan.pool_counts, strict=True):
        if int(count) != pools.get(name, 0):
            issues.append(
                f"plan.pool_counts gives {int(count)} pooled {name} devices but the device "
                f"table lists {pools.get(name, 0)}"
            )
    return pools


def _published_llm_pools(plan: Plan, issues: list[str]) -> dict[str, int]:
    """Replicas per LLM pool key from the plan's LLM pool table (each key listed once)."""
    out: dict[str, int] = {}
    for rec in plan.llm_pools.to_dict(orient="records"):
        key = str(rec["pool"])
        if key in out:
            issues.append(f"the LLM pool table lists {key} twice")
        out[key] = int(rec["replicas"])
    return out


def _check_llm_pools(table: pd.DataFrame, ev: Recomputed, issues: list[str]) -> None:
    """Each published LLM pool repeats its device, members, load and devices."""
    for rec in table.to_dict(orient="records"):
        pool = ev.llm_pools.get(str(rec["pool"]))
        if pool is None:
            continue  # reported by the recomputation
        where = f"LLM pool {rec['pool']}"
        members = set(str(rec["members"]).split(";")) if rec["members"] else set()
        if members != set(pool.members):
            issues.append(
                f"{where}: the plan lists members {sorted(members)} but the placed operators "
                f"with its key are {sorted(pool.members)}"
            )
        if str(rec["device"]) != pool.device:
            issues.append(f"{where}: the plan puts it on {rec['device']}, not {pool.device}")
        if not _close(float(rec["load_replicas"]), pool.load, REL_TOL):
            issues.append(
                f"{where}: the plan gives a load of {float(rec['load_replicas']):.6g} replicas "
                f"but the raw inputs give {pool.load:.6g}"
            )
        want = int(rec["replicas"]) * pool.devices_per_replica
        if int(rec["devices"]) != want or int(rec["devices_per_replica"]) != (
            pool.devices_per_replica
        ):
            issues.append(
                f"{where}: the plan gives {int(rec['devices'])} devices but {int(rec['replicas'])}"
                f" replicas of tp x pp = {pool.devices_per_replica} are {want}"
            )


def _row_of(inputs: VerifyInputs, op: str, device: str, config: str) -> RowInput:
    row = inputs.row(op, device, config)
    assert row is not None  # _read_placement checked it
    return row


def _check_rows(
    placement: pd.DataFrame, inputs: VerifyInputs, ev: Recomputed, issues: list[str]
) -> None:
    """Each placement row repeats its cost-table row and counts its devices right."""
    for rec in placement.to_dict(orient="records"):
        op, device, config = str(rec["operator"]), str(rec["device"]), str(rec["config"])
        row = _row_of(inputs, op, device, config)
        visits = inputs.op(op).visits  # type: ignore[union-attr]  # _read_placement checked it
        where = f"operator '{op}' on {device} {config}"
        for label, published, raw in (
            ("latency", rec["latency_s"], row.latency_s),
            ("step", rec.get("step_s", row.step_s), row.step_s),
            ("visits per request", rec["visits_per_request"], visits),
        ):
            if not _close(float(published), raw, ROW_REL_TOL):
                issues.append(
                    f"{where}: the plan gives {label} {published:.6g} but the raw "
                    f"inputs give {raw:.6g}"
                )
        if bool(rec["shared_pool"]) != row.pooled:
            issues.append(
                f"{where}: the plan says shared_pool={bool(rec['shared_pool'])} but the row is "
                f"{'pooled' if row.pooled else 'exclusive' if row.exclusive else 'profiled'}"
            )
        if row.exclusive and row.pool_key:
            pool = ev.llm_pools[row.pool_key]
            want, why = (
                pool.devices,
                (f"{pool.replicas} replicas of LLM pool {row.pool_key}, tp {row.tp} x pp {row.pp}"),
            )
            if str(rec.get("llm_pool", row.pool_key)) != row.pool_key:
                issues.append(
                    f"{where}: the plan names LLM pool {rec.get('llm_pool')!r} but the row's "
                    f"pool key is {row.pool_key}"
                )
        elif row.exclusive:
            want, why = (
                ev.op_devices[op],
                (
                    f"tp {row.tp} x pp {row.pp} x ceil({inputs.request_rate_per_s:g} req/s x "
                    f"{visits:g} visits / ({row.requests_per_s:.6g} req/s x "
                    f"{inputs.max_utilization:g}))"
                ),
            )
        elif row.pooled:
            want, why = ev.pooled.get(device, 0), f"the size of the {device} pool"
        else:
            want, why = 0, "none for a profiled operator"
        if int(rec["count"]) != want:
            issues.append(
                f"{where}: the plan counts {int(rec['count'])} devices but needs {want} ({why})"
            )


def _check_device_table(
    devices: pd.DataFrame, inputs: VerifyInputs, ev: Recomputed, issues: list[str]
) -> None:
    """Per device type: counts, price, cost components and carbon of the published table."""
    published = {str(r["device"]): r for r in devices.to_dict(orient="records")}
    for name in sorted(set(published) - {d.name for d in inputs.devices}):
        issues.append(f"the device table lists {name}, which the cost table does not span")
    for dev in inputs.devices:
        total = ev.total(dev.name)
        rec: Mapping[str, Any] | None = published.get(dev.name)
        if rec is None:
            if total:
                issues.append(f"plan uses {total} x {dev.name} but its device table has no row")
            continue
        expected = {
            "dedicated": ev.dedicated.get(dev.name, 0),
            "total": total,
            "usd_per_hour_each": dev.usd_per_h,
            "usd_per_hour": total * dev.usd_per_h,
            "capex_usd_per_hour": total * dev.capex_usd_per_h,
            "power_usd_per_hour": total * dev.power_usd_per_h,
            "opex_usd_per_hour": total * dev.opex_usd_per_h,
            "carbon_kg_per_hour": total * dev.carbon_kg_per_h,
        }
        for column, want in expected.items():
            if column in rec and not _close(float(rec[column]), float(want), REL_TOL):
                issues.append(
                    f"device table, {dev.name}: {column} is {float(rec[column]):.6g} but the "
                    f"raw inputs give {float(want):.6g}"
                )
        if int(rec["dedicated"]) + int(rec["pooled"]) != int(rec["total"]):
            issues.append(
                f"device table, {dev.name}: {int(rec['dedicated'])} dedicated + "
                f"{int(rec['pooled'])} pooled is not its total {int(rec['total'])}"
            )


def _check_totals(plan: Plan, inputs: VerifyInputs, ev: Recomputed, issues: list[str]) -> None:
    """TCO, cost per request, carbon, end-to-end latency and the SLA block."""
    per_request = ev.tco_usd_per_h / (inputs.request_rate_per_s * SECONDS_PER_HOUR)
    for label, unit, published, raw in (
        ("TCO", "$/h", plan.tco_usd_per_hour, ev.tco_usd_per_h),
        ("cost per request", "$", plan.cost_usd_per_request, per_request),
        ("carbon", "kg/h", plan.carbon_kg_per_hour, ev.carbon_kg_per_h),
        ("request rate", "req/s", plan.request_rate_per_s, inputs.request_rate_per_s),
    ):
        if not _close(published, raw, REL_TOL):
            issues.append(
                f"plan reports {label} {published:.6f} {unit} but the raw inputs give "
                f"{raw:.6f} {unit}"
            )
    e2e = ev.e2e_latency_s
    if abs(plan.e2e_latency_s - e2e) > LATENCY_TOL_S:
        issues.append(
            f"plan reports end-to-end latency {plan.e2e_latency_s:.6f} s but the raw inputs "
            f"give {e2e:.6f} s"
        )
    sla = plan.sla
    if "e2e_latency_s" in sla and abs(sla["e2e_latency_s"] - e2e) > LATENCY_TOL_S:
        issues.append(
            f"the plan's SLA block gives end-to-end latency {sla['e2e_latency_s']:.6f} s but "
            f"the raw inputs give {e2e:.6f} s"
        )
    bound = inputs.sla.e2e_s
    if sla.get("e2e_sla_s", bound) != bound:
        issues.append(
            f"the plan's SLA block gives e2e_sla_s {sla['e2e_sla_s']} but the SLA is {bound}"
        )
    if sla.get("satisfied") and bound is not None and e2e > bound + LATENCY_TOL_S:
        issues.append(
            f"the plan says its SLA is satisfied but its end-to-end latency {e2e:.6f} s "
            f"exceeds the SLA {bound:.6f} s"
        )


def _check_phase_limits(
    plan: Plan,
    inputs: VerifyInputs,
    assignment: Mapping[str, tuple[str, str]],
    issues: list[str],
) -> None:
    """Modelled prefill steps meet the TTFT bound and decode steps the TBT bound."""
    for kind, bound, key in (
        ("prefill", inputs.sla.ttft_s, "worst_ttft_s"),
        ("decode", inputs.sla.tbt_s, "worst_tbt_s"),
    ):
        steps = {}
        for op in inputs.ops:
            row = _row_of(inputs, op.name, *assignment[op.name])
            if op.kind == kind and not row.profiled:
                steps[op.name] = row.step_s
        worst = max(steps.values(), default=None)
        published = plan.sla.get(key)
        if (
            worst is not None
            and published is not None
            and not _close(published, worst, ROW_REL_TOL)
        ):
            issues.append(
                f"the plan's SLA block gives {key} {published:.6g} s but the placed rows give "
                f"{worst:.6g} s"
            )
        if bound is None:
            continue
        for name, step in steps.items():
            if step > bound + LATENCY_TOL_S:
                issues.append(
                    f"operator '{name}' takes {step:.6g} s per {kind} step, more than the "
                    f"{'TTFT' if kind == 'prefill' else 'TBT'} bound {bound:g} s"
                )


def _check_objective(
    solve: SolveResult, inputs: VerifyInputs, ev: Recomputed, issues: list[str]
) -> None:
    """The solver's objective is the recomputed TCO plus penalty, within its resolution.

    CP-SAT rounds each objective coefficient to its cost step (``solve.resolution``); MILPs are
    exact up to their feasibility tolerance.
    """
    if solve.objective_kind != "cost" or not math.isfinite(solve.objective):
        return
    want = ev.objective_usd_per_h
    tol = REL_TOL * max(1.0, want)
    step = max(
        (v for k, v in solve.resolution.items() if k.endswith("cost_usd_per_h")), default=0.0
    )
    terms = len(inputs.ops) + len(inputs.devices) + len(inputs.edges) + 1
    tol += terms * step * (1 + max(ev.pooled.values(), default=0))
    if abs(solve.objective - want) > tol:
        issues.append(
            f"solver {solve.backend} reports objective {solve.objective:.6f} $/h but the raw "
            f"inputs give {want:.6f} $/h"
        )
