"""CP-SAT backend: the CP-SAT formulation solved by OR-Tools, answered for the exact problem.

CP-SAT works on integers, so the problem's floats are rounded (:mod:`hetopt.models.scaling`).
Rounded one way (latencies up, SLA down) the model's plans are feasible but its optimum can be
dearer than the exact one: a plan meeting the SLA by less than a microsecond is lost. Rounded
the other way (latencies down, SLA up, costs down, at nanosecond resolution) its optimum is a
lower bound on the exact optimum, but its plan may miss the SLA by a few nanoseconds.

So the backend solves the relaxed model and checks its plan with the exact evaluation
(:func:`hetopt.plan.evaluate.evaluate_choice`). A plan that passes is kept, and it is proven
optimal when the relaxed model proved it optimal. A plan that fails is cut off (a no-good cut
on its assignment: it is infeasible for the exact problem, so the model stays a relaxation) and
the relaxed model is solved again. Without an exact-feasible plan, the conservative model gives
one. The objective reported is always the exact evaluation's, the bound always the relaxed
model's, and the status ``optimal`` only when the two meet within ``gap_rel``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace

from ortools.sat.python import cp_model

from hetopt.models import cpsat
from hetopt.models import scaling as sc
from hetopt.plan.evaluate import Evaluation, evaluate_choice
from hetopt.problem import PlacementProblem
from hetopt.solvers.base import (
    Deadline,
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
    """Passes each new incumbent and the bound at that moment to ``on_progress``.

    The incumbent is reported at its exact value, and only when the exact evaluation accepts
    it; the bound only when it is valid for the exact problem (the relaxed model's).
    """

    def __init__(
        self, on_progress: OnProgress, built: cpsat.CpsatModel, check: ExactCheck, elapsed_s: float
    ) -> None:
        super().__init__()
        self._on_progress, self._built, self._check = on_progress, built, check
        self._elapsed_s = elapsed_s

    def on_solution_callback(self) -> None:
        choice = _read_choice(self._check.problem, self._built, self.value)
        value = self._check.objective(choice)
        if value is None:
            return
        bound = (
            self.best_objective_bound * self._built.objective_scale
            if self._built.scaling.relaxed
            else math.nan
        )
        self._on_progress(SolveProgress("cpsat", self._elapsed_s + self.wall_time, value, bound))


def add_hints(built: cpsat.CpsatModel, problem: PlacementProblem, warm_start: WarmStart) -> int:
    """Hint the chosen option of each operator (and the others off) and the pool sizes."""
    chosen = warm_start.options(problem)
    for i, o in chosen.items():
        for other in problem.options_of(i):
            built.model.add_hint(built.x[int(other)], int(other) == o)
    for j, n in warm_start.pool_counts(problem).items():
        built.model.add_hint(built.n[j], n)
    return len(chosen)


MAX_CUTS = 50
"""Relaxed-model plans cut off for missing the exact SLA before the conservative model is asked
for a plan (each cut raises the bound; the near-miss plans are few)."""


class ExactCheck:
    """The exact problem's verdict on a choice: its objective, or None when infeasible.

    Every backend reports the objective of its plan from here, not its own model's value.
    """

    def __init__(self, problem: PlacementProblem, objective: Objective) -> None:
        self.problem = problem
        self.kind = objective
        # The latency objective ignores the SLA (it finds the fastest plan).
        self._judged = (
            problem if objective == "cost" else problem.with_sla(replace(problem.sla, e2e_s=None))
        )

    def evaluate(self, choice: tuple[int, ...]) -> Evaluation:
        return evaluate_choice(self._judged, choice)

    def objective(self, choice: tuple[int, ...]) -> float | None:
        ev = self.evaluate(choice)
        sla = self._judged.sla
        # Strict: evaluate_choice forgives one microsecond of latency (the conservative model's
        # step), a relaxed-model plan gets no such allowance.
        if not ev.feasible or (sla.e2e_s is not None and sla.hard and ev.e2e_latency_s > sla.e2e_s):
            return None
        return ev.objective_usd_per_h if self.kind == "cost" else ev.e2e_latency_s


def _read_choice(
    problem: PlacementProblem, built: cpsat.CpsatModel, value: Callable[[cp_model.IntVar], int]
) -> tuple[int, ...]:
    """The chosen option of each operator; ``value`` is ``solver.value`` or a callback's."""
    return tuple(
        int(next(o for o in problem.options_of(i) if value(built.x[o])))
        for i in range(problem.n_ops)
    )


def _solver(options: SolverOptions, time_limit_s: float) -> cp_model.CpSolver:
    solver = cp_model.CpSolver()
    p = solver.parameters
    p.max_time_in_seconds = time_limit_s
    p.num_workers = options.threads
    p.random_seed = options.seed
    # Half the gap: the exact objective and the relaxed bound differ by the rounding too.
    p.relative_gap_limit = options.gap_rel / 2
    p.log_search_progress = options.verbose
    return solver


def solve_cpsat(
    problem: PlacementProblem,
    options: SolverOptions,
    objective: Objective = "cost",
    *,
    warm_start: WarmStart | None = None,
    on_progress: OnProgress | None = None,
    deadline: Deadline | None = None,
) -> SolveResult:
    """Solve ``problem`` with CP-SAT, and say only what holds for the exact problem.

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
        Called at each improving exact-feasible solution with its exact value and the bound.
    deadline
        The wall-clock budget, model building included (default: ``options.time_limit_s``
        from now).

    Returns
    -------
    SolveResult
        ``objective`` is the exact evaluation of the plan; ``bound`` the relaxed model's, a
        valid lower bound on the exact optimum; ``status`` is ``optimal`` only when they meet
        within ``gap_rel``. ``resolution`` records the integer steps of both roundings.
    """
    start = time.perf_counter()
    deadline = deadline or Deadline.after(options.time_limit_s)
    check = ExactCheck(problem, objective)
    relaxed = cpsat.build(problem, objective, sc.RELAXED)
    if warm_start is not None:
        add_hints(relaxed, problem, warm_start)
    notes = [deadline.overrun_note()] if deadline.expired else []
    best: tuple[float, tuple[int, ...]] | None = None
    bound = math.nan
    proven_infeasible = False
    last_relaxed: tuple[int, ...] | None = None
    native = ""
    cuts = 0
    while True:
        # Until an exact-feasible plan is in hand, keep half the time for the conservative model.
        solver = _solver(options, deadline.slice_s(0.5 if cuts else 1.0))
        reporter = (
            None
            if on_progress is None
            else _Reporter(on_progress, relaxed, check, time.perf_counter() - start)
        )
        code = solver.solve(relaxed.model, reporter)
        native = solver.status_name(code)
        status = STATUS_MAP.get(code, SolveStatus.ERROR)
        if status is SolveStatus.INFEASIBLE:
            # The relaxed model holds every exact-feasible plan but those cut (all infeasible).
            proven_infeasible = True
            break
        # The relaxed model's bound holds for the exact problem, with or without a plan.
        round_bound = solver.best_objective_bound * relaxed.objective_scale
        if status is not SolveStatus.INFEASIBLE and math.isfinite(round_bound):
            bound = round_bound if not math.isfinite(bound) else max(bound, round_bound)
        if status not in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
            break
        choice = _read_choice(problem, relaxed, solver.value)
        value = check.objective(choice)
        if value is not None:
            best = (value, choice)
            break
        last_relaxed = choice
        cuts += 1
        if cuts > MAX_CUTS or deadline.expired:
            break
        # This assignment misses the exact SLA (or capacity) by the rounding: cut it off.
        relaxed.model.add(sum(relaxed.x[o] for o in choice) <= problem.n_ops - 1)
    if cuts:
        notes.append(
            f"{cuts} plan(s) of the relaxed integer model missed the exact constraints "
            f"by the rounding and were cut off"
        )
    if best is None and not proven_infeasible:
        conservative = cpsat.build(problem, objective, sc.CONSERVATIVE)
        if last_relaxed is not None:
            for i, o in enumerate(last_relaxed):
                for other in problem.options_of(i):
                    conservative.model.add_hint(conservative.x[int(other)], int(other) == o)
        elif warm_start is not None:
            add_hints(conservative, problem, warm_start)
        solver = _solver(options, deadline.slice_s())
        code = solver.solve(conservative.model)
        native = solver.status_name(code)
        if STATUS_MAP.get(code) in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
            choice = _read_choice(problem, conservative, solver.value)
            value = check.objective(choice)
            if value is not None:
                best = (value, choice)
                notes.append(
                    "plan from the conservative integer model (latencies rounded up "
                    "to 1 us, the SLA down)"
                )
    runtime = time.perf_counter() - start
    resolution = {
        **{f"relaxed_{k}": v for k, v in sc.RELAXED.resolution.items()},
        **sc.CONSERVATIVE.resolution,
    }
    if best is None:
        if proven_infeasible:
            st = SolveStatus.INFEASIBLE
        elif last_relaxed is not None:
            st = SolveStatus.NO_SOLUTION
            notes.append(
                "no plan found that meets the exact constraints: the plans CP-SAT "
                "found miss the SLA by less than its rounding; solver=highs decides "
                "such a case exactly"
            )
        else:
            # Only the relaxed model's infeasibility proves the exact problem infeasible.
            st = (
                SolveStatus.ERROR
                if STATUS_MAP.get(code) is SolveStatus.ERROR
                else SolveStatus.NO_SOLUTION
            )
        return SolveResult(
            "cpsat",
            st,
            math.nan,
            bound,
            math.nan,
            runtime,
            None,
            None,
            objective,
            resolution,
            "; ".join([native, *notes]),
        )
    value, choice = best
    gap = relative_gap(value, bound)
    st = (
        SolveStatus.OPTIMAL
        if math.isfinite(gap) and gap <= options.gap_rel
        else SolveStatus.FEASIBLE
    )
    if st is SolveStatus.FEASIBLE and not deadline.expired and cuts > MAX_CUTS:
        notes.append(f"stopped after {MAX_CUTS} cuts")
    ev = evaluate_choice(problem, choice)
    counts = tuple(int(v) for v in ev.pool_counts)
    return SolveResult(
        "cpsat",
        st,
        value,
        bound,
        gap,
        runtime,
        choice,
        counts,
        objective,
        resolution,
        "; ".join([native, *notes]),
    )
