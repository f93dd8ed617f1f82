"""CP-SAT backend: the CP-SAT formulation solved by OR-Tools."""

from __future__ import annotations

import math
import time

from ortools.sat.python import cp_model

from hetopt.models import cpsat
from hetopt.models.scaling import RESOLUTION
from hetopt.problem import PlacementProblem
from hetopt.solvers.base import (
    Objective,
    OnProgress,
    SolveProgress,
    SolveResult,
    SolverOptions,
    SolveStatus,
    WarmStart,
    relative_gap,
)

STATUS_MAP = {
    cp_model.OPTIMAL: SolveStatus.OPTIMAL,
    cp_model.FEASIBLE: SolveStatus.FEASIBLE,
    cp_model.INFEASIBLE: SolveStatus.INFEASIBLE,
    cp_model.UNKNOWN: SolveStatus.NO_SOLUTION,
    cp_model.MODEL_INVALID: SolveStatus.ERROR,
}


class _Reporter(cp_model.CpSolverSolutionCallback):
    """Passes each new incumbent and the bound at that moment to ``on_progress``."""

    def __init__(self, on_progress: OnProgress, scale: float) -> None:
        super().__init__()
        self._on_progress, self._scale = on_progress, scale

    def on_solution_callback(self) -> None:
        self._on_progress(SolveProgress("cpsat", self.wall_time,
                                        self.objective_value * self._scale,
                                        self.best_objective_bound * self._scale))


def add_hints(built: cpsat.CpsatModel, problem: PlacementProblem, warm_start: WarmStart) -> int:
    """Hint the chosen option of each operator (and the others off) and the pool sizes."""
    chosen = warm_start.options(problem)
    for i, o in chosen.items():
        for other in problem.options_of(i):
            built.model.add_hint(built.x[int(other)], int(other) == o)
    for j, n in warm_start.pool_counts(problem).items():
        built.model.add_hint(built.n[j], n)
    return len(chosen)


def solve_cpsat(problem: PlacementProblem, options: SolverOptions,
                objective: Objective = "cost", *, warm_start: WarmStart | None = None,
                on_progress: OnProgress | None = None) -> SolveResult:
    """Build the CP-SAT model and solve it.

    Parameters
    ----------
    problem
        The placement problem.
    options
        ``time_limit_s``, ``gap_rel``, ``threads`` (CP-SAT workers), ``seed``, ``verbose``.
    objective
        ``cost`` or ``latency``.
    warm_start
        Hints for the search (``add_hint``); CP-SAT repairs a hint that is no longer feasible.
    on_progress
        Called at each improving solution with the incumbent and bound.

    Returns
    -------
    SolveResult
        Objective and bound are scaled back to $/h (or seconds); ``resolution`` records the
        integer steps used.
    """
    start = time.perf_counter()
    built = cpsat.build(problem, objective)
    if warm_start is not None:
        add_hints(built, problem, warm_start)
    solver = cp_model.CpSolver()
    p = solver.parameters
    p.max_time_in_seconds = options.time_limit_s
    p.num_workers = options.threads
    p.random_seed = options.seed
    p.relative_gap_limit = options.gap_rel
    p.log_search_progress = options.verbose
    reporter = None if on_progress is None else _Reporter(on_progress, built.objective_scale)
    code = solver.solve(built.model, reporter)
    status = STATUS_MAP.get(code, SolveStatus.ERROR)
    runtime = time.perf_counter() - start
    choice = counts = None
    objective_value = bound = math.nan
    if status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
        choice_list = []
        for i in range(problem.n_ops):
            opts = problem.options_of(i)
            choice_list.append(int(next(o for o in opts if solver.value(built.x[o]))))
        choice = tuple(choice_list)
        counts = tuple(int(solver.value(v)) for v in built.n)
        objective_value = solver.objective_value * built.objective_scale
        bound = solver.best_objective_bound * built.objective_scale
    return SolveResult("cpsat", status, objective_value, bound,
                       relative_gap(objective_value, bound), runtime, choice, counts, objective,
                       dict(RESOLUTION), solver.status_name(code))
