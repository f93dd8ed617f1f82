"""The verifier can fail: it passes every solver's correct plan and catches every mutation.

Correct plans come from the real pipeline (``plan_agent``) for several workloads and every
backend. Each mutation changes what a plan publishes (a device count, a latency, a price, a
total, a placement) and restates the totals that depend on it, so that the lie is consistent
and only the recomputation from raw inputs can expose it. Two mutations (a pool that overflows
device memory, an inventory exceeded) are whole plans assembled by ``make_plan`` for an
assignment the solver would never pick, so every number in them is self-consistent.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hetopt.costs.table import CostTable
from hetopt.generators import random_problem
from hetopt.oracle import SECONDS_PER_HOUR, VerifyInputs
from hetopt.pipeline import HardwareSpec, PlanOutcome, PlanRequest, plan_agent, prepare
from hetopt.plan import Plan, evaluate_choice, make_plan, verify_plan
from hetopt.sla import Sla
from hetopt.solvers import SolverOptions, solve
from hetopt.workloads import Workload, load_workload, load_workload_data

MILP_CP = ("highs", "cbc", "cpsat")


def _rag_with_two_indexes() -> Workload:
    """rag_agent with a second 15 GB vector index: both fit a 43 GB device, not a 22 GB L4."""
    w = load_workload_data("rag_agent")
    w["name"] = "rag_two_indexes"
    w["nodes"]["vector_db_2"] = dict(w["nodes"]["vector_db"])
    w["edges"] = [
        *w["edges"],
        {"src": "embed", "dst": "vector_db_2", "payload_bytes": 3072},
        {"src": "vector_db_2", "dst": "llm", "payload_bytes": 20480},
    ]
    return Workload.from_mapping(w, "rag_two_indexes")


def _request(name: str, sla: Sla, backend: str, **kw: Any) -> PlanRequest:
    workload = _rag_with_two_indexes() if name == "rag_two_indexes" else load_workload(name)
    return PlanRequest(workload, sla=sla, solver=SolverOptions(backend=backend), baselines=(), **kw)


# case -> (workload, SLA, backends, extra PlanRequest fields)
CASES: dict[str, tuple[str, Sla, tuple[str, ...], dict[str, Any]]] = {
    "worked_example (profile)": (
        "worked_example",
        Sla(e2e_s=0.120),
        (*MILP_CP, "bruteforce"),
        {},
    ),
    "voice_agent (loop, pools)": ("voice_agent", Sla(e2e_s=15.0), MILP_CP, {}),
    "chat_agent (small)": ("chat_agent", Sla(), ("highs", "cpsat", "bruteforce"), {}),
    "coding_agent (loop at expected iterations)": (
        "coding_agent",
        Sla(e2e_s=100.0, loop_iterations="expected"),
        MILP_CP,
        {},
    ),
    "voice_agent (soft SLA)": (
        "voice_agent",
        Sla(e2e_s=12.0, penalty_usd_per_h_per_s=0.2),
        MILP_CP,
        {},
    ),
    "voice_agent (inventory)": ("voice_agent", Sla(e2e_s=15.0), MILP_CP, {"inventory": True}),
    "rag_two_indexes (footprints)": ("rag_two_indexes", Sla(), MILP_CP, {}),
    "mixed_sizes (shared LLM pools)": ("mixed_sizes", Sla(), MILP_CP, {}),
}
RUNS = [(case, backend) for case, (_, _, backends, _) in CASES.items() for backend in backends]


@functools.cache
def _capped_inventory() -> dict[str, int]:
    """One device fewer than the unconstrained voice plan uses of its busiest type."""
    free = plan_agent(_request("voice_agent", Sla(e2e_s=15.0), "highs")).plan
    used = free.devices.set_index("device")["total"].to_dict()
    busiest = max(used, key=used.get)
    return {busiest: int(used[busiest]) - 1}


def _case_request(case: str, backend: str) -> PlanRequest:
    name, sla, _, extra = CASES[case]
    if extra.get("inventory"):
        return _request(name, sla, backend, hardware=HardwareSpec(inventory=_capped_inventory()))
    return _request(name, sla, backend)


@functools.cache
def _outcome(case: str, backend: str) -> PlanOutcome:
    return plan_agent(_case_request(case, backend))


@pytest.mark.parametrize(("case", "backend"), RUNS)
def test_every_solvers_correct_plan_verifies(case: str, backend: str) -> None:
    out = _outcome(case, backend)
    assert out.plan.verified, out.plan.violations
    assert verify_plan(out.plan, out.inputs) == ()


def test_soft_sla_case_pays_a_penalty() -> None:
    """The soft-SLA case really exercises the penalty: the plan misses the 12 s target."""
    plan = _outcome("voice_agent (soft SLA)", "highs").plan
    assert plan.e2e_latency_s > 12.0
    assert plan.solve.objective > plan.tco_usd_per_hour + 0.1


# --- mutations --------------------------------------------------------------------------------

Mutation = Callable[[PlanOutcome, PlanRequest], Plan | None]
Checked = tuple[Plan, VerifyInputs]  # a plan and the inputs to verify it against


def _restated(
    plan: Plan,
    *,
    devices: pd.DataFrame | None = None,
    placement: pd.DataFrame | None = None,
    pool_counts: tuple[int, ...] | None = None,
    tco_usd_per_hour: float | None = None,
    e2e_latency_s: float | None = None,
) -> Plan:
    """``plan`` with some fields replaced and every total that depends on them restated."""
    devices = plan.devices if devices is None else devices
    tco = plan.tco_usd_per_hour if tco_usd_per_hour is None else tco_usd_per_hour
    tco += float(devices["usd_per_hour"].sum() - plan.devices["usd_per_hour"].sum())
    carbon = plan.carbon_kg_per_hour + float(
        devices["carbon_kg_per_hour"].sum() - plan.devices["carbon_kg_per_hour"].sum()
    )
    e2e = plan.e2e_latency_s if e2e_latency_s is None else e2e_latency_s
    bound = plan.sla["e2e_sla_s"]
    return dataclasses.replace(
        plan,
        devices=devices,
        placement=plan.placement if placement is None else placement,
        pool_counts=plan.pool_counts if pool_counts is None else pool_counts,
        tco_usd_per_hour=tco,
        cost_usd_per_request=tco / (plan.request_rate_per_s * SECONDS_PER_HOUR),
        carbon_kg_per_hour=carbon,
        e2e_latency_s=e2e,
        sla={
            **plan.sla,
            "e2e_latency_s": e2e,
            "satisfied": bound is None or e2e <= bound,
        },
        solve=dataclasses.replace(
            plan.solve, objective=plan.solve.objective + tco - plan.tco_usd_per_hour
        ),
    )


def _recount(plan: Plan, device: str, extra_dedicated: int, extra_pooled: int) -> pd.DataFrame:
    """The device table with ``device``'s counts changed and its $/h, costs, carbon scaled."""
    frame = plan.devices.copy()
    k = frame.index[frame["device"] == device][0]
    old = int(frame.at[k, "total"])
    new = old + extra_dedicated + extra_pooled
    frame.at[k, "dedicated"] += extra_dedicated
    frame.at[k, "pooled"] += extra_pooled
    frame.at[k, "total"] = new
    frame.at[k, "usd_per_hour"] = new * frame.at[k, "usd_per_hour_each"]
    for column in ("capex_usd_per_hour", "power_usd_per_hour", "opex_usd_per_hour"):
        frame.at[k, column] *= new / old
    frame.at[k, "carbon_kg_per_hour"] *= new / old
    return frame


def one_dedicated_device_fewer(out: PlanOutcome, request: PlanRequest) -> Plan | None:
    plan = out.plan
    rows = plan.placement[~plan.placement["shared_pool"] & (plan.placement["count"] > 0)]
    if rows.empty:
        return None
    k = rows.index[0]
    placement = plan.placement.copy()
    placement.at[k, "count"] -= 1
    devices = _recount(plan, str(placement.at[k, "device"]), -1, 0)
    return _restated(plan, devices=devices, placement=placement)


def one_llm_pool_replica_fewer(out: PlanOutcome, request: PlanRequest) -> Plan | None:
    """A shared LLM pool under-sized by one replica, every count and total restated."""
    plan = out.plan
    shared = plan.llm_pools[plan.llm_pools["members"].str.contains(";")]
    if shared.empty:
        return None
    k = shared.index[0]
    dpr = int(shared.at[k, "devices_per_replica"])
    pools = plan.llm_pools.copy()
    pools.at[k, "replicas"] -= 1
    pools.at[k, "devices"] -= dpr
    placement = plan.placement.copy()
    placement.loc[placement["llm_pool"] == shared.at[k, "pool"], "count"] -= dpr
    devices = _recount(plan, str(shared.at[k, "device"]), -dpr, 0)
    return dataclasses.replace(
        _restated(plan, devices=devices, placement=placement), llm_pools=pools
    )


def one_pool_device_fewer(out: PlanOutcome, request: PlanRequest) -> Plan | None:
    plan = out.plan
    pooled = plan.devices[plan.devices["pooled"] > 0]
    if pooled.empty:
        return None
    device = str(pooled["device"].iloc[0])
    placement = plan.placement.copy()
    on_pool = placement["shared_pool"] & (placement["device"] == device)
    placement.loc[on_pool, "count"] -= 1
    j = [d.name for d in out.inputs.devices].index(device)
    counts = tuple(n - (i == j) for i, n in enumerate(plan.pool_counts))
    devices = _recount(plan, device, 0, -1)
    return _restated(plan, devices=devices, placement=placement, pool_counts=counts)


def one_latency_higher(out: PlanOutcome, request: PlanRequest) -> Plan | None:
    """The slowest operator's row says it takes longer, enough to miss the SLA."""
    plan = out.plan
    bound = plan.sla["e2e_sla_s"]
    bump = max(bound - plan.e2e_latency_s, 0.0) + 0.01 if bound is not None else 1.0
    placement = plan.placement.copy()
    k = placement["latency_s"].idxmax()
    placement.at[k, "latency_s"] += bump
    return _restated(plan, placement=placement, e2e_latency_s=plan.e2e_latency_s + bump)


def one_price_changed(out: PlanOutcome, request: PlanRequest) -> Plan | None:
    plan = out.plan
    if plan.devices.empty:
        return None  # profiled plans price operators, not devices
    devices = plan.devices.copy()
    devices.loc[0, "usd_per_hour_each"] *= 0.8
    devices.loc[0, "usd_per_hour"] = devices.loc[0, "total"] * devices.loc[0, "usd_per_hour_each"]
    return _restated(plan, devices=devices)


def tco_changed(out: PlanOutcome, request: PlanRequest) -> Plan | None:
    return _restated(out.plan, tco_usd_per_hour=out.plan.tco_usd_per_hour * 0.9)


def e2e_latency_changed(out: PlanOutcome, request: PlanRequest) -> Plan | None:
    return _restated(out.plan, e2e_latency_s=out.plan.e2e_latency_s * 0.9)


def operator_moved_without_recount(out: PlanOutcome, request: PlanRequest) -> Plan | None:
    """An operator moves to another device's feasible row; counts and costs stay as they were
    (an exclusive operator if there is one, so the old device visibly loses its replicas)."""
    plan = out.plan
    placement = plan.placement.copy()
    exclusive = placement[~placement["shared_pool"] & (placement["count"] > 0)]
    k = exclusive.index[0] if len(exclusive) else placement.index[-1]
    op, device = placement.at[k, "operator"], placement.at[k, "device"]
    rows = out.table.feasible()
    others = rows[(rows["op"] == op) & (rows["device"] != device)]
    if others.empty:
        return None
    new = others.iloc[0]
    for column in ("device", "config", "latency_s", "step_s"):
        placement.at[k, column] = new[column]
    return dataclasses.replace(plan, placement=placement)


def _forged(out: PlanOutcome, choice: list[int], request: PlanRequest) -> tuple[Plan, list[str]]:
    """A whole, self-consistent plan (``make_plan``) for ``choice`` on ``request``'s problem,
    and what the old evaluator finds wrong with it."""
    problem, table, _, tco = prepare(request)
    ev = evaluate_choice(problem, tuple(choice))
    result = dataclasses.replace(
        out.plan.solve,
        choice=tuple(choice),
        pool_counts=tuple(int(n) for n in ev.pool_counts),
        objective=ev.objective_usd_per_h,
    )
    return make_plan(problem, table, result, ev, tco, 1.0), list(ev.violations)


def pool_memory_overflow(out: PlanOutcome, request: PlanRequest) -> Plan | None:
    """Both 15 GB indexes in one L4 pool (21.6 GB usable)."""
    problem = out.problem
    indexes = [i for i, op in enumerate(problem.ops) if op.startswith("vector_db")]
    if len(indexes) < 2 or "L4" not in problem.devices:
        return None
    l4 = problem.devices.index("L4")
    choice = list(out.plan.choice)
    for i in indexes:
        choice[i] = next(o for o in problem.options_of(i) if problem.opt_device[o] == l4)
    plan, wrong = _forged(out, choice, request)
    assert any("GB" in v for v in wrong), wrong
    return plan


def inventory_exceeded(out: PlanOutcome, request: PlanRequest) -> Plan | None:
    """The unconstrained optimum, published whole against the capped inventory."""
    if not out.problem.device_inventory.min() < math.inf:
        return None
    free = plan_agent(dataclasses.replace(request, hardware=HardwareSpec()))
    plan, wrong = _forged(out, list(free.plan.choice), request)
    assert any("inventory" in v for v in wrong), wrong
    return plan


def slower_row_breaks_the_sla(out: PlanOutcome, request: PlanRequest) -> Checked | None:
    """The plan unchanged, but the cost table says its slowest operator is slower by more than
    the whole hard SLA: every path through it now misses the SLA."""
    bound = out.inputs.sla.e2e_s
    if bound is None or not out.inputs.sla.hard:
        return None
    plan = out.plan
    row = plan.placement.loc[plan.placement["latency_s"].idxmax()]
    rows = out.inputs.rows.copy()
    at = (rows["op"] == row["operator"]) & (rows["device"] == row["device"])
    rows.loc[at & (rows["config"] == row["config"]), "latency_s"] += bound + 0.01
    return plan, dataclasses.replace(out.inputs, rows=rows)


def _against_own_inputs(mutate: Mutation) -> Callable[[PlanOutcome, PlanRequest], Checked | None]:
    def checked(out: PlanOutcome, request: PlanRequest) -> Checked | None:
        plan = mutate(out, request)
        return None if plan is None else (plan, out.inputs)

    return checked


# mutation -> (what it returns to verify, a word the verifier's messages must contain)
MUTATIONS: dict[str, tuple[Callable[[PlanOutcome, PlanRequest], Checked | None], str]] = {
    "one dedicated device fewer": (
        _against_own_inputs(one_dedicated_device_fewer),
        "devices but needs",
    ),
    "one pool device fewer": (_against_own_inputs(one_pool_device_fewer), "pool of"),
    "one shared LLM pool replica fewer": (
        _against_own_inputs(one_llm_pool_replica_fewer),
        "replicas but its load of",
    ),
    "one operator's latency higher in its row (misses the SLA)": (
        _against_own_inputs(one_latency_higher),
        "the plan gives latency",
    ),
    "one operator slower in the cost table (misses the SLA)": (
        slower_row_breaks_the_sla,
        "exceeds the SLA",
    ),
    "one device price changed": (_against_own_inputs(one_price_changed), "usd_per_hour_each"),
    "TCO total changed": (_against_own_inputs(tco_changed), "TCO"),
    "end-to-end latency changed": (_against_own_inputs(e2e_latency_changed), "end-to-end latency"),
    "operator moved without recounting": (
        _against_own_inputs(operator_moved_without_recount),
        "",
    ),
    "pool footprints overflow memory": (_against_own_inputs(pool_memory_overflow), "GB per device"),
    "inventory exceeded": (_against_own_inputs(inventory_exceeded), "but the inventory has"),
}


def _trials(name: str) -> list[tuple[str, tuple[str, ...]]]:
    """``(run, verifier messages)`` for every plan the mutation applies to."""
    mutate, _ = MUTATIONS[name]
    out_list = []
    for case, backend in RUNS:
        mutated = mutate(_outcome(case, backend), _case_request(case, backend))
        if mutated is not None:
            out_list.append((f"{case} / {backend}", verify_plan(*mutated)))
    return out_list


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_mutation_is_caught_on_every_plan(name: str) -> None:
    word = MUTATIONS[name][1]
    trials = _trials(name)
    assert trials, f"mutation '{name}' applied to no plan"
    missed = [(run, found) for run, found in trials if not any(word in v for v in found)]
    assert missed == []


def test_catch_rate_is_100_percent(capsys: pytest.CaptureFixture[str]) -> None:
    caught = applied = 0
    for name, (_, word) in MUTATIONS.items():
        for _, found in _trials(name):
            applied += 1
            caught += any(word in v for v in found)
    with capsys.disabled():
        print(f"\nverifier catch rate: {caught}/{applied} mutated plans")
    assert caught == applied > 0


def test_under_sized_llm_pool_is_named_with_its_load() -> None:
    out = _outcome("mixed_sizes (shared LLM pools)", "highs")
    request = _case_request("mixed_sizes (shared LLM pools)", "highs")
    mutated = one_llm_pool_replica_fewer(out, request)
    assert mutated is not None
    pool = mutated.llm_pools[mutated.llm_pools["members"].str.contains(";")].iloc[0]
    found = verify_plan(mutated, out.inputs)
    message = next(v for v in found if v.startswith(f"LLM pool {pool['pool']} has"))
    needed = int(pool["replicas"]) + 1
    assert f"has {int(pool['replicas'])} replicas but its load of" in message
    assert message.endswith(f"needs {needed}") and pool["members"].replace(";", ", ") in message


def test_messages_name_the_operator_and_both_numbers() -> None:
    out = _outcome("voice_agent (loop, pools)", "highs")
    mutated = one_dedicated_device_fewer(out, _case_request("voice_agent (loop, pools)", "highs"))
    assert mutated is not None
    found = verify_plan(mutated, out.inputs)
    row = out.plan.placement[~out.plan.placement["shared_pool"]].iloc[0]
    message = next(v for v in found if row["operator"] in v)
    assert f"counts {int(row['count']) - 1} devices but needs {int(row['count'])}" in message
    assert row["device"] in message


# --- random small instances -------------------------------------------------------------------


def _tiny_table(inputs: VerifyInputs) -> CostTable:
    """The tiny instance's rows with the display columns ``make_plan`` reads."""
    frame = inputs.rows.assign(
        devices_per_replica=inputs.rows["tp"] * inputs.rows["pp"],
        batch=1,
        binding="",
        cost_model="tiny",
        error_band="",
    )
    return CostTable(frame, tuple(d.name for d in inputs.devices))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 100_000), n_ops=st.integers(2, 4))
def test_every_solvers_plan_of_a_random_instance_verifies(seed: int, n_ops: int) -> None:
    problem = random_problem(seed, n_ops=n_ops, llm_pools=seed % 2 == 1)
    inputs = problem.raw_inputs
    assert inputs is not None
    table = _tiny_table(inputs)
    for backend in ("highs", "cbc", "cpsat", "bruteforce"):
        result = solve(problem, SolverOptions(backend=backend, time_limit_s=20))
        if not result.has_solution:
            continue
        assert result.choice is not None
        ev = evaluate_choice(problem, result.choice, result.pool_counts)
        plan = make_plan(problem, table, result, ev, {}, 0.0)
        assert verify_plan(plan, inputs) == (), (backend, seed, n_ops)
        lie = dataclasses.replace(plan, tco_usd_per_hour=plan.tco_usd_per_hour + 0.5)
        assert any("TCO" in v for v in verify_plan(lie, inputs))
