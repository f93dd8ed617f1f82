"""Brute-force backend: evaluate every assignment (the reference for tiny instances)."""

from __future__ import annotations

import itertools
import math
import time

from hetopt.errors import InputError
from hetopt.plan.evaluate import evaluate_choice
from hetopt.problem import PlacementProblem
from hetopt.solvers.base import Objective, SolveResult, SolverOptions, SolveStatus

MAX_ASSIGNMENTS = 200_000


def solve_bruteforce(
    problem: PlacementProblem, options: SolverOptions, objective: Objective = "cost"
) -> SolveResult:
    """Enumerate all assignments and keep the cheapest feasible one (ties: lowest latency).

    Raises
    ------
    InputError
        If the instance has more than :data:`MAX_ASSIGNMENTS` assignments.
    """
    per_op = [problem.options_of(i) for i in range(problem.n_ops)]
    size = math.prod(len(o) for o in per_op)
    if size > MAX_ASSIGNMENTS:
        raise InputError(
            f"solver=bruteforce would enumerate {size:,} assignments (limit "
            f"{MAX_ASSIGNMENTS:,}); use solver=highs, solver=cbc or solver=cpsat for this "
            f"workload."
        )
    start = time.perf_counter()
    best: tuple[float, float] | None = None
    best_choice: tuple[int, ...] | None = None
    best_counts: tuple[int, ...] | None = None
    for combo in itertools.product(*per_op):
        if time.perf_counter() - start > options.time_limit_s:
            break
        ev = evaluate_choice(problem, combo)
        if objective == "latency":
            if any("SLA" not in v for v in ev.violations):
                continue
            key = (ev.e2e_latency_s, ev.objective_usd_per_h)
        else:
            if ev.violations:
                continue
            key = (ev.objective_usd_per_h, ev.e2e_latency_s)
        if best is None or key < best:
            best, best_choice = key, tuple(int(c) for c in combo)
            best_counts = tuple(int(c) for c in ev.pool_counts)
    runtime = time.perf_counter() - start
    finished = runtime <= options.time_limit_s
    if best is None:
        status = SolveStatus.INFEASIBLE if finished else SolveStatus.NO_SOLUTION
        return SolveResult(
            "bruteforce",
            status,
            math.nan,
            math.nan,
            math.nan,
            runtime,
            objective_kind=objective,
            message=f"{size} assignments",
        )
    status = SolveStatus.OPTIMAL if finished else SolveStatus.FEASIBLE
    bound = best[0] if finished else math.nan
    gap = 0.0 if finished else math.nan
    return SolveResult(
        "bruteforce",
        status,
        best[0],
        bound,
        gap,
        runtime,
        best_choice,
        best_counts,
        objective,
        {},
        f"{size} assignments enumerated",
    )
