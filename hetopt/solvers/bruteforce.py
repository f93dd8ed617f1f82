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
from dataclasses import dataclass, replace
from typing import Any

from hetopt.errors import InputError
from hetopt.models import Objective
from hetopt.models.solution import read_choice, read_counts
from hetopt.oracle import evaluate_assignment
from hetopt.problem import PlacementProblem
from hetopt.solvers.backend import Backend, Capabilities, RawSolution, SolveCall, WarmValues
from hetopt.solvers.base import (
    Deadline,
    OnProgress,
    SolveResult,
    SolverOptions,
    SolveStatus,
    Termination,
    relative_gap,
)

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


# --- The backend contract around the enumeration above ------------------------------------


@dataclass(frozen=True)
class Enumeration:
    """Brute force's "model": the problem and objective, nothing built. Its variables are named
    like a formulation's, ``("x", o)`` per option and ``("n", j)`` per pool, so that a plan is
    read back with the same decoder (:func:`hetopt.models.solution.read_choice`)."""

    problem: PlacementProblem
    objective: Objective = "cost"

    @property
    def x(self) -> list[tuple[str, int]]:
        """One variable per option."""
        return [("x", o) for o in range(self.problem.n_options)]

    @property
    def n(self) -> list[tuple[str, int]]:
        """One variable per device type's pool."""
        return [("n", j) for j in range(len(self.problem.devices))]


_TERMINATION = {
    SolveStatus.OPTIMAL: Termination.OPTIMAL,
    SolveStatus.INFEASIBLE: Termination.INFEASIBLE,
    SolveStatus.FEASIBLE: Termination.TIME_LIMIT,
    SolveStatus.NO_SOLUTION: Termination.TIME_LIMIT,
}


@dataclass(frozen=True)
class BruteforceBackend:
    """Enumerates every assignment of an :class:`Enumeration` (tiny instances; the tests'
    reference). No start, no progress, no fleet."""

    name: str = "bruteforce"
    capabilities: Capabilities = Capabilities("enumeration", max_assignments=MAX_ASSIGNMENTS)

    def run(
        self,
        model: Enumeration,
        options: SolverOptions,
        deadline: Deadline,
        on_progress: OnProgress | None = None,
        warm_start: WarmValues | None = None,
    ) -> RawSolution:
        """Enumerate within ``deadline``; the best assignment's variables read 1 (its options)
        and its pool sizes."""
        limit_s = min(options.time_limit_s, deadline.slice_s())
        res = solve_bruteforce(
            model.problem, replace(options, time_limit_s=limit_s), model.objective
        )
        values: dict[Any, float] = {}
        if res.choice is not None:
            values.update({("x", o): 1.0 for o in res.choice})
            values.update({("n", j): float(c) for j, c in enumerate(res.pool_counts or ())})
        return RawSolution(
            res.status,
            _TERMINATION.get(res.status, Termination.ERROR),
            res.message,
            res.objective,
            res.bound,
            res.runtime_s,
            (lambda var: values.get(var, 0.0)) if res.choice is not None else None,
        )


def solve_enumerated(call: SolveCall, backend: Backend) -> SolveResult:
    """Solve ``call.problem`` by enumeration (brute force takes no start and reports no
    progress)."""
    problem, objective = call.problem, call.objective
    model = Enumeration(problem, objective)
    raw = backend.run(model, call.options, call.deadline)
    choice = counts = None
    if raw.has_solution and raw.value is not None:
        choice = read_choice(problem, model.x, raw.value)
        counts = read_counts(model.n, raw.value)
    return SolveResult(
        backend.name,
        raw.status,
        raw.objective,
        raw.bound,
        relative_gap(raw.objective, raw.bound),
        raw.runtime_s,
        choice,
        counts,
        objective,
        {},
        raw.solver_status_text,
        raw.termination,
        raw.solver_status_text,
    )
