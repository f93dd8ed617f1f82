"""Warm starts change how fast a proof comes, never the optimum; progress reports are sane."""

from __future__ import annotations

import math

import pytest

from hetopt.costs.tco import TcoParams
from hetopt.pipeline import PlanRequest, prepare
from hetopt.solvers import SolverOptions, SolveStatus, solve
from hetopt.solvers.base import SolveProgress, WarmStart
from hetopt.workloads import load_workload

BACKENDS = ("highs", "cbc", "cpsat")


@pytest.fixture(scope="module")
def problems():  # type: ignore[no-untyped-def]
    """The coding agent at two electricity prices: neighbouring sweep points."""
    out = []
    for usd_per_kwh in (0.2, 0.8):
        req = PlanRequest(load_workload("coding_agent"), tco=TcoParams(usd_per_kwh=usd_per_kwh))
        out.append(prepare(req)[0])
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_warm_start_from_a_neighbour_keeps_the_optimum(problems, backend: str) -> None:  # type: ignore[no-untyped-def]
    first, second = problems
    options = SolverOptions(backend=backend)
    cold = solve(second, options)
    neighbour = solve(first, options)
    warm = solve(second, options, warm_start=WarmStart.from_result(first, neighbour))
    assert cold.status is warm.status is SolveStatus.OPTIMAL
    assert warm.objective == pytest.approx(cold.objective, rel=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_stale_or_partial_hint_is_harmless(problems, backend: str) -> None:  # type: ignore[no-untyped-def]
    problem = problems[0]
    cold = solve(problem, SolverOptions(backend=backend))
    # Every operator pinned to its most expensive option (a poor start), one operator unknown,
    # and a device that does not exist.
    assignment = {}
    for i, op in enumerate(problem.ops[1:], start=1):
        opts = problem.options_of(i)
        o = int(opts[-1])
        assignment[op] = (problem.devices[problem.opt_device[o]], problem.opt_config[o])
    hint = WarmStart(assignment | {"no.such.op": ("X", "y")}, {"NoSuchDevice": 3})
    assert hint.options(problem) and 0 not in hint.options(problem)
    warm = solve(problem, SolverOptions(backend=backend), warm_start=hint)
    assert warm.status is SolveStatus.OPTIMAL
    assert warm.objective == pytest.approx(cold.objective, rel=1e-6)


@pytest.mark.parametrize("backend", ["highs", "cpsat"])
def test_progress_reports_incumbent_above_bound(problems, backend: str) -> None:  # type: ignore[no-untyped-def]
    reports: list[SolveProgress] = []
    res = solve(problems[1], SolverOptions(backend=backend), on_progress=reports.append)
    assert reports, "no progress reported"
    last = reports[-1]
    assert last.incumbent == pytest.approx(res.objective, rel=1e-6)
    for r in reports:
        assert r.elapsed_s >= 0
        if math.isfinite(r.bound):
            assert r.bound <= r.incumbent + 1e-6 * abs(r.incumbent)
    incumbents = [r.incumbent for r in reports]
    assert incumbents == sorted(incumbents, reverse=True)  # each report improves
