"""MILP (HiGHS, CBC) and CP-SAT agree with each other and with brute-force enumeration."""

from __future__ import annotations

import math

import pytest

from hetopt.generators import random_problem
from hetopt.plan import evaluate_choice
from hetopt.solvers import SolverOptions, SolveStatus, solve

SEEDS = range(40)


@pytest.mark.parametrize("pools", [False, True], ids=["dedicated", "llm_pools"])
@pytest.mark.parametrize("seed", SEEDS)
def test_backends_agree_with_bruteforce(seed: int, pools: bool) -> None:
    """With ``llm_pools`` the brute force sizes shared LLM pools through the independent
    oracle (grouping rows by their ``pool_key``), the formulations through ``m_k``."""
    problem = random_problem(seed + (500 if pools else 0), llm_pools=pools)
    reference = solve(problem, SolverOptions(backend="bruteforce"))
    assert reference.status in (SolveStatus.OPTIMAL, SolveStatus.INFEASIBLE)
    for backend in ("highs", "cbc", "cpsat"):
        result = solve(problem, SolverOptions(backend=backend, time_limit_s=20))
        if reference.status is SolveStatus.INFEASIBLE:
            assert result.status is SolveStatus.INFEASIBLE, backend
            continue
        assert result.status is SolveStatus.OPTIMAL, (backend, result.message)
        assert result.choice is not None
        ev = evaluate_choice(problem, result.choice, result.pool_counts)
        assert ev.feasible, (backend, ev.violations)
        assert ev.objective_usd_per_h == pytest.approx(reference.objective, rel=1e-9), backend


def test_random_llm_pool_instances_share_keys() -> None:
    """The agreement test above exercises shared pools, most of its instances have one, and
    some pools carry load on both capacities (an aggregated replica's chunks and slots)."""
    problems = [random_problem(seed + 500, llm_pools=True) for seed in SEEDS]
    assert sum(p.n_keys > 0 for p in problems) >= len(SEEDS) // 2
    two_dims = [
        p
        for p in problems
        if any(len(set(p.opt_key_dim[p.key_options(k)])) == 2 for k in range(p.n_keys))  # type: ignore[index]
    ]
    assert len(two_dims) >= 5


@pytest.mark.parametrize("seed", range(10))
def test_latency_objective_agrees(seed: int) -> None:
    problem = random_problem(seed + 100)
    values = {}
    for backend in ("highs", "cpsat", "bruteforce"):
        result = solve(problem, SolverOptions(backend=backend), objective="latency")
        if result.status is SolveStatus.INFEASIBLE:
            values[backend] = math.inf
            continue
        assert result.choice is not None
        values[backend] = evaluate_choice(problem, result.choice).e2e_latency_s
    assert values["highs"] == pytest.approx(values["bruteforce"], abs=2e-6)
    assert values["cpsat"] == pytest.approx(values["bruteforce"], abs=2e-6)
