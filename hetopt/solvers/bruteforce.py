"""Brute-force backend: evaluate every assignment (the reference for tiny instances).

Each assignment is judged by the independent recomputation of :mod:`hetopt.oracle` from the
problem's raw inputs (cost-table rows, graph, device prices), not by the problem's arrays or a
formulation, so a formulation that agrees with it agrees with an independent oracle.

Examples
--------
>>> from hetopt.solvers.base import SolverOptions
>>> from hetopt.testing import CONFORMANCE
>>> res = solve_bruteforce(CONFORMANCE["two_stage_sla_0.25"].build(), SolverOptions())
>>> res.status, res.objective
(<SolveStatus.OPTIMAL: 'optimal'>, 5.0)
"""

from __future__ import annotations

import itertools
import math
import time

from hetopt.errors import InputError
from hetopt.oracle import evaluate_assignment
from hetopt.problem import PlacementProblem
from hetopt.solvers.base import Objective, SolveResult, SolverOptions, SolveStatus

MAX_ASSIGNMENTS = 200_000
TIE_REL_TOL = 1e-12  # sums in another order differ in the last bits; keep the first of equals


def solve_bruteforce(
    problem: PlacementProblem, options: SolverOptions, objective: Objective = "cost"
) -> SolveResult:
    """Enumerate all assignments and keep the cheapest feasible one (ties: lowest latency).

    The options enumerated are the problem's; each assignment is judged from
    ``problem.raw_inputs`` against ``problem.sla``.

    Raises
    ------
    InputError
        If the instance has more than :data:`MAX_ASSIGNMENTS` assignments, or carries no raw
        inputs.
    """
    raw = problem.raw_inputs
    if raw is None:
        raise InputError(
            f"solver=bruteforce judges plans from the raw inputs (cost table, graph, prices), "
            f"and problem '{problem.name}' carries none; build it with "
            f"hetopt.pipeline.prepare or hetopt.testing.tiny_problem, or use solver=highs."
        )
    per_op = [problem.options_of(i) for i in range(problem.n_ops)]
    size = math.prod(len(o) for o in per_op)
    if size > MAX_ASSIGNMENTS:
        raise InputError(
            f"solver=bruteforce would enumerate {size:,} assignments (limit "
            f"{MAX_ASSIGNMENTS:,}); use solver=highs, solver=cbc or solver=cpsat for this "
            f"workload."
        )
    names = [
        (problem.devices[problem.opt_device[o]], problem.opt_config[o])
        for o in range(problem.n_options)
    ]
    start = time.perf_counter()
    best: tuple[float, float] | None = None
    best_choice: tuple[int, ...] | None = None
    best_counts: tuple[int, ...] | None = None
    for combo in itertools.product(*per_op):
        if time.perf_counter() - start > options.time_limit_s:
            break
        assignment = {op: names[o] for op, o in zip(problem.ops, combo, strict=True)}
        ev = evaluate_assignment(raw, assignment, sla=problem.sla)
        if ev.violations or (objective == "cost" and ev.sla_violation):
            continue
        if objective == "latency":
            key = (ev.e2e_latency_s, ev.objective_usd_per_h)
        else:
            key = (ev.objective_usd_per_h, ev.e2e_latency_s)
        if best is None or _better(key, best):
            best, best_choice = key, tuple(int(c) for c in combo)
            best_counts = tuple(ev.pooled.get(d, 0) for d in problem.devices)
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


def _better(key: tuple[float, float], best: tuple[float, float]) -> bool:
    """Lexicographically smaller, counting values within :data:`TIE_REL_TOL` as equal."""
    for new, old in zip(key, best, strict=True):
        if abs(new - old) > TIE_REL_TOL * max(1.0, abs(old)):
            return new < old
    return False
