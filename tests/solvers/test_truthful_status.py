"""Solvers say only what is true: CP-SAT's rounding never buys a false "optimal", time limits
hold (model building included) and a stopped solve returns its plan with its real gap.

The time-limit tests run the real backends on a generated instance too large to prove within
the limit; nothing here fakes a solver.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path

import pytest

from hetopt.cli.main import main
from hetopt.generators import hard_problem
from hetopt.plan import evaluate_choice
from hetopt.problem import PlacementProblem
from hetopt.sla import Sla
from hetopt.solvers import SolverOptions, SolveStatus, solve
from hetopt.solvers.base import MIN_SOLVE_SLICE_S, Deadline, WarmStart
from hetopt.testing import Opt, tiny_problem


def _sla(e2e_s: float) -> Sla:
    """A hard end-to-end SLA and nothing else."""
    return Sla(ttft_s=None, tbt_s=None, e2e_s=e2e_s)


def _strictly_feasible(problem: PlacementProblem, choice: tuple[int, ...]) -> bool:
    ev = evaluate_choice(problem, choice)
    sla = problem.sla.e2e_s
    return ev.feasible and (sla is None or ev.e2e_latency_s <= sla)


# --- CP-SAT at the rounding edge: hand-built instances --------------------------------------


def _chain(sla_e2e_s: float) -> PlacementProblem:
    """a -> b on one device; a cheap or fast. The cheap plan takes exactly 0.75 + 2**-21 s.

    Binary fractions, so the exact sums carry no float noise. In whole microseconds each
    cheap latency rounds up (250000.24 -> 250001 us), so a model that rounds latencies up and
    the SLA down (750000.48 -> 750000 us) loses the cheap plan when the SLA equals its latency.
    """
    eps = 2.0**-22
    return tiny_problem(
        {
            "a": [Opt("C", 0.25 + eps, dedicated=1), Opt("F", 0.1, dedicated=1)],
            "b": [Opt("C", 0.5 + eps, dedicated=1)],
        },
        {"C": 1.0, "F": 3.0},
        [("a", "b", 0.0)],
        sla=_sla(sla_e2e_s),
    )


def test_cpsat_keeps_a_plan_that_meets_the_sla_exactly() -> None:
    """Cheap plan (C + C = 2 $/h) meets the SLA with no slack: it is the optimum."""
    problem = _chain(0.75 + 2.0**-21)
    res = solve(problem, SolverOptions(backend="cpsat", time_limit_s=10))
    assert res.status is SolveStatus.OPTIMAL, res.message
    assert res.objective == pytest.approx(2.0, abs=1e-9)
    assert res.bound <= 2.0 + 1e-12
    assert res.choice is not None and _strictly_feasible(problem, res.choice)
    highs = solve(problem, SolverOptions(backend="highs", time_limit_s=10))
    assert highs.objective == pytest.approx(res.objective, abs=1e-9)


def test_cpsat_cuts_a_plan_that_misses_the_sla_by_a_nanosecond() -> None:
    """SLA 1 ns below the cheap plan's latency: the relaxed model (nanosecond steps, SLA rounded
    up) still admits the cheap plan, the exact check rejects it, and the cut leaves the fast
    plan (F + C = 4 $/h), proven optimal with a bound that does not exceed it."""
    problem = _chain(0.75 + 2.0**-21 - 1e-9)
    res = solve(problem, SolverOptions(backend="cpsat", time_limit_s=10))
    assert res.status is SolveStatus.OPTIMAL, res.message
    assert res.objective == pytest.approx(4.0, abs=1e-9)
    assert res.bound <= 4.0 + 1e-12
    assert res.choice is not None and _strictly_feasible(problem, res.choice)
    assert "cut off" in res.message


def test_cpsat_pool_that_fits_one_device_by_less_than_a_step() -> None:
    """Two pooled loads summing to 1 - 2**-31 device: one device suffices (10 $/h). Rounded up
    to 1e-6 devices each they sum to 1.000001, which would buy a second device (20 $/h)."""
    problem = tiny_problem(
        {
            "a": [Opt("P", 0.01, pool_load=0.5 - 2.0**-30)],
            "b": [Opt("P", 0.01, pool_load=0.5 + 2.0**-31)],
        },
        {"P": 10.0},
        [("a", "b", 0.0)],
    )
    res = solve(problem, SolverOptions(backend="cpsat", time_limit_s=10))
    assert res.status is SolveStatus.OPTIMAL, res.message
    assert res.objective == pytest.approx(10.0, abs=1e-9)
    assert res.pool_counts == (1,)


def test_cpsat_never_claims_infeasible_when_a_plan_meets_the_sla_exactly() -> None:
    """Only plan: latency exactly the SLA, below one microsecond of rounding."""
    eps = 2.0**-22
    problem = tiny_problem(
        {"a": [Opt("C", 0.25 + eps, dedicated=1)]}, {"C": 1.0}, sla=_sla(0.25 + eps)
    )
    res = solve(problem, SolverOptions(backend="cpsat", time_limit_s=10))
    assert res.status is SolveStatus.OPTIMAL and res.objective == pytest.approx(1.0)
    infeasible = problem.with_sla(_sla(0.25))
    assert solve(infeasible, SolverOptions(backend="cpsat")).status is SolveStatus.INFEASIBLE


# --- CP-SAT at the rounding edge: the default workload ---------------------------------------


@pytest.fixture(scope="module")
def default_problem() -> PlacementProblem:
    from hetopt.cli.compose import compose_config
    from hetopt.cli.config import request_from_config
    from hetopt.pipeline import prepare

    problem, *_ = prepare(request_from_config(compose_config([])))
    return problem


def test_cpsat_matches_highs_when_the_sla_is_the_optimum_latency(
    default_problem: PlacementProblem,
) -> None:
    """Set the SLA to exactly the latency of HiGHS's optimal plan, three times down the
    frontier: CP-SAT must return the same optimum (not a dearer plan labelled optimal)."""
    sla = 13.0
    for _ in range(3):
        p = default_problem.with_sla(replace(default_problem.sla, e2e_s=sla))
        ref = solve(p, SolverOptions(backend="highs"))
        assert ref.choice is not None
        edge = float(evaluate_choice(p, ref.choice).e2e_latency_s)
        at_edge = default_problem.with_sla(replace(default_problem.sla, e2e_s=edge))
        highs = solve(at_edge, SolverOptions(backend="highs"))
        cp = solve(at_edge, SolverOptions(backend="cpsat"))
        assert cp.bound <= highs.objective * (1 + 1e-9), (edge, cp.bound, highs.objective)
        assert cp.status is SolveStatus.OPTIMAL, (edge, cp.message)
        assert cp.objective == pytest.approx(highs.objective, rel=1e-7), edge
        assert cp.choice is not None and _strictly_feasible(at_edge, cp.choice)
        sla = edge - 1e-4


def test_issue_edge_case_through_the_cli(tmp_path: Path) -> None:
    """The issue's command: CP-SAT's plan and status agree with HiGHS's optimum."""
    sla = "sla.e2e_s=12.817487984392514"
    plans = {}
    for backend in ("highs", "cpsat"):
        assert main(["plan", f"solver={backend}", sla, f"run_dir={tmp_path / backend}"]) == 0
        plans[backend] = json.loads((tmp_path / backend / "plan.json").read_text())["solver"]
    cp, highs = plans["cpsat"], plans["highs"]
    assert cp["bound"] <= highs["objective"] * (1 + 1e-9)
    if cp["status"] == "optimal":
        assert cp["objective"] == pytest.approx(highs["objective"], rel=1e-7)
    else:
        assert cp["gap"] is not None and cp["gap"] > 0


# --- Time limits: real solves, model building counted ----------------------------------------

LIMIT_S = 1.5
MARGIN_S = 1.5


@pytest.mark.parametrize(("backend", "n_ops"), [("highs", 80), ("cbc", 80), ("cpsat", 40)])
def test_time_limit_returns_the_plan_with_its_gap(backend: str, n_ops: int) -> None:
    """Started from the fastest plan (so that a loaded machine still finds a plan in time),
    stopped at the limit: the plan, its exact value, a valid bound and the gap come back.
    (CBC proves the 40-operator instance within the limit; CP-SAT finds no plan for the
    80-operator one on a loaded machine.)"""
    hard = hard_problem(n_ops)
    t0 = time.perf_counter()
    res = solve(
        hard,
        SolverOptions(backend=backend, time_limit_s=LIMIT_S, gap_rel=1e-9),
        warm_start=WarmStart.fastest(hard),
    )
    wall = time.perf_counter() - t0
    assert wall <= LIMIT_S + MARGIN_S, wall
    assert res.status is SolveStatus.FEASIBLE, (res.status, res.message)
    assert res.has_solution and res.choice is not None
    assert _strictly_feasible(hard, res.choice)
    assert math.isfinite(res.bound) and math.isfinite(res.gap) and res.gap > 1e-9
    assert res.bound <= res.objective
    ev = evaluate_choice(hard, res.choice)
    assert res.objective == pytest.approx(ev.objective_usd_per_h, rel=1e-6)


@pytest.mark.parametrize("backend", ["highs", "cbc", "cpsat"])
def test_a_spent_budget_still_gets_the_minimum_slice(backend: str) -> None:
    """A deadline already past (model building ate the budget) is no error: the solver gets
    its minimum slice and says so; an easy instance is still solved."""
    problem = _chain(1.0)
    t0 = time.perf_counter()
    spent = Deadline(time.perf_counter() - 1.0, 1.0)  # as if building had taken 2 s of 1
    res = solve(problem, SolverOptions(backend=backend, time_limit_s=1), deadline=spent)
    assert time.perf_counter() - t0 <= MIN_SOLVE_SLICE_S + MARGIN_S
    assert res.has_solution and res.objective == pytest.approx(2.0)
    assert "used the whole time limit" in res.message


@pytest.mark.parametrize("penalty", [0.5, 3.7, 0.123456789])
def test_cpsat_soft_sla_matches_highs(default_problem: PlacementProblem, penalty: float) -> None:
    """A soft SLA whose penalty is below one cost unit per time step (0.5 $/h per second) or
    has many digits: CP-SAT must neither drop nor round up the penalty into a false optimum."""
    p = default_problem.with_sla(
        replace(default_problem.sla, e2e_s=9.0, penalty_usd_per_h_per_s=penalty)
    )
    highs = solve(p, SolverOptions(backend="highs"))
    cp = solve(p, SolverOptions(backend="cpsat"))
    assert cp.bound <= highs.objective * (1 + 1e-9)
    assert cp.status is SolveStatus.OPTIMAL, cp.message
    assert cp.objective == pytest.approx(highs.objective, rel=1e-6)


def test_render_prints_no_bound_when_none_is_known(capsys: pytest.CaptureFixture[str]) -> None:
    from rich.console import Console

    from hetopt.solvers.base import bound_text, solver_verdict

    assert bound_text(float("-inf"), float("nan")) == "no bound known, so no gap"
    assert solver_verdict("optimal", 0.00355) == "proven within 0.355% of the optimum"
    Console().print(bound_text(math.nan, math.nan))
    out = capsys.readouterr().out
    assert "inf" not in out and "nan" not in out


# --- a pool filled within a solver's feasibility tolerance ------------------------------------


@pytest.mark.parametrize("backend", ["highs", "cbc", "cpsat", "bruteforce"])
def test_a_pool_over_a_whole_number_by_1e_8_is_not_called_optimal_at_the_wrong_plan(
    backend: str,
) -> None:
    """Both operators on the shared G pool load it 2.00000005 replicas: 3 at the exact loads
    ($3.00), which a MILP tolerance of 1e-7 reads as 2 ($2.00). The optimum is A on its own Y
    ($1.20) and B on one G ($1.00): $2.20. A backend either finds it, or does not say optimal."""
    problem = tiny_problem(
        {
            "A": [Opt("G", 0.1, key="G/tp1", load=1.00000005), Opt("Y", 0.1, dedicated=1)],
            "B": [Opt("G", 0.1, key="G/tp1", load=1.0), Opt("Y", 0.1, dedicated=1)],
        },
        {"G": 1.0, "Y": 1.2},
    )
    result = solve(problem, SolverOptions(backend=backend))
    assert result.choice is not None
    exact = evaluate_choice(problem, result.choice).objective_usd_per_h
    assert result.objective == pytest.approx(exact, abs=1e-9)
    if result.status is SolveStatus.OPTIMAL:
        assert exact == pytest.approx(2.2, abs=1e-9), backend
    else:
        assert result.status is SolveStatus.FEASIBLE and "not proven optimal" in result.message
        assert result.gap > 0


@pytest.mark.parametrize("backend", ["highs", "cbc", "cpsat", "bruteforce"])
def test_a_plan_over_the_inventory_by_a_tolerance_is_never_returned(backend: str) -> None:
    """Both operators on D0's shared pool need ceil(2.00000005) = 3 D0s, one more than the
    inventory: the only plans are on D1 ($11.00 at best). A MILP tolerance that lets the pool
    hold 2 must not hand back the pooled plan: a backend finds $11.00 or returns no plan."""
    problem = tiny_problem(
        {
            "a": [Opt("D0", 0.1, key="k", load=1.0 + 5e-8), Opt("D1", 0.1, dedicated=2)],
            "b": [Opt("D0", 0.1, key="k", load=1.0), Opt("D1", 0.1, dedicated=2)],
        },
        {"D0": 1.0, "D1": 5.0},
        [("a", "b", 0.0)],
        inventory={"D0": 2},
    )
    result = solve(problem, SolverOptions(backend=backend))
    if result.choice is None:
        assert result.status is SolveStatus.ERROR and "exact loads" in result.message
        return
    ev = evaluate_choice(problem, result.choice)
    assert ev.feasible, ev.violations
    if result.status is SolveStatus.OPTIMAL:
        assert ev.objective_usd_per_h == pytest.approx(11.0, abs=1e-9)
