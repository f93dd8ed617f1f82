"""CP-SAT backend: the CP-SAT formulation solved by OR-Tools, answered for the exact problem.

CP-SAT works on integers, so the problem's floats are rounded (:mod:`hetopt.models.scaling`).
Rounded one way (latencies up, SLA down) the model's plans are feasible but its optimum can be
dearer than the exact one: a plan meeting the SLA by less than a microsecond is lost. Rounded
the other way (latencies down, SLA up, costs down, at nanosecond resolution) its optimum is a
lower bound on the exact optimum, but its plan may miss the SLA by a few nanoseconds.

So the backend solves the relaxed model and checks its plan with the exact evaluation
(:func:`hetopt.models.evaluate.evaluate_choice`). A plan that passes is kept, and it is proven
optimal when the relaxed model proved it optimal. A plan that fails is cut off (a no-good cut
on its assignment: it is infeasible for the exact problem, so the model stays a relaxation) and
the relaxed model is solved again. Without an exact-feasible plan, the conservative model gives
one. The objective reported is always the exact evaluation's, the bound always the relaxed
model's, and the status ``optimal`` only when the two meet within ``gap_rel``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

from ortools.sat.python import cp_model

from hetopt.models import cpsat
from hetopt.models import scaling as sc
from hetopt.models.solution import read_choice, start_values
from hetopt.problem import PlacementProblem
from hetopt.solvers.backend import Backend, Capabilities, RawSolution, SolveCall, WarmValues
from hetopt.solvers.base import (
    Deadline,
    OnProgress,
    SolveProgress,
    SolveResult,
    SolverOptions,
    SolveStatus,
    Termination,
    WarmStart,
    relative_gap,
)
from hetopt.solvers.exact import ExactCheck

_STATUS = {
    cp_model.OPTIMAL: (SolveStatus.OPTIMAL, Termination.OPTIMAL),
    # Only a time limit is set, so a stop without a proof is the time limit.
    cp_model.FEASIBLE: (SolveStatus.FEASIBLE, Termination.TIME_LIMIT),
    cp_model.INFEASIBLE: (SolveStatus.INFEASIBLE, Termination.INFEASIBLE),
    cp_model.UNKNOWN: (SolveStatus.NO_SOLUTION, Termination.TIME_LIMIT),
    cp_model.MODEL_INVALID: (SolveStatus.ERROR, Termination.ERROR),
}


class _Reporter(cp_model.CpSolverSolutionCallback):
    """Passes each new incumbent, in model units, and a reader of its values to
    ``on_progress``."""

    def __init__(self, on_progress: OnProgress) -> None:
        super().__init__()
        self._on_progress = on_progress

    def on_solution_callback(self) -> None:
        self._on_progress(
            SolveProgress(
                "cpsat", self.wall_time, self.objective_value, self.best_objective_bound, self.value
            )
        )


@dataclass(frozen=True)
class CpsatBackend:
    """OR-Tools CP-SAT on a built :class:`cp_model.CpModel` (integers only)."""

    name: str = "cpsat"
    capabilities: Capabilities = Capabilities(
        "cpsat", warm_start=True, progress=True, fleet=True, integer_scaling=True
    )

    def run(
        self,
        model: cp_model.CpModel,
        options: SolverOptions,
        deadline: Deadline,
        on_progress: OnProgress | None = None,
        warm_start: WarmValues | None = None,
    ) -> RawSolution:
        """Solve ``model`` for ``deadline.slice_s()`` seconds, within ``options.gap_rel``;
        ``warm_start`` is added to the model's hints (CP-SAT repairs a hint that breaks a
        constraint)."""
        t0 = time.perf_counter()
        for var, value in (warm_start or {}).items():
            model.add_hint(var, int(round(value)))
        solver = cp_model.CpSolver()
        p = solver.parameters
        p.max_time_in_seconds = deadline.slice_s()
        p.num_workers = options.threads
        p.random_seed = options.seed
        p.relative_gap_limit = options.gap_rel
        p.log_search_progress = options.verbose
        code = solver.solve(model, None if on_progress is None else _Reporter(on_progress))
        status, termination = _STATUS.get(code, (SolveStatus.ERROR, Termination.ERROR))
        found = status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE)
        return RawSolution(
            status,
            termination,
            solver.status_name(code),
            solver.objective_value if found else math.nan,
            solver.best_objective_bound,
            time.perf_counter() - t0,
            solver.value if found else None,
        )


MAX_CUTS = 50
"""Relaxed-model plans cut off for missing the exact SLA before the conservative model is asked
for a plan (each cut raises the bound; the near-miss plans are few)."""


def _hints(problem: PlacementProblem, built: cpsat.CpsatModel, warm_start: WarmStart) -> WarmValues:
    """Hint the chosen option of each operator (and the others off) and the pool sizes."""
    return start_values(
        problem,
        built.x,
        built.n,
        warm_start.options(problem),
        warm_start.pool_counts(problem),
        every_operator=False,
        replicas=built.m,
    )


def _exact_progress(
    on_progress: OnProgress | None,
    built: cpsat.CpsatModel,
    check: ExactCheck,
    elapsed_s: float,
) -> OnProgress | None:
    """Pass on each incumbent at its exact value, only when the exact evaluation accepts it;
    the bound only when it holds for the exact problem (the relaxed model's)."""
    if on_progress is None:
        return None
    report = on_progress

    def exact(p: SolveProgress) -> None:
        assert p.values is not None
        value = check.objective(read_choice(check.problem, built.x, p.values))
        if value is None:
            return
        bound = p.bound * built.objective_scale if built.scaling.relaxed else math.nan
        report(SolveProgress("cpsat", elapsed_s + p.elapsed_s, value, bound))

    return exact


@dataclass
class _Search:
    """What the relaxed model's rounds found (see :func:`solve_cpsat`)."""

    best: tuple[float, tuple[int, ...]] | None = None
    bound: float = math.nan
    proven_infeasible: bool = False
    last_relaxed: tuple[int, ...] | None = None
    last: RawSolution | None = None
    cuts: int = 0


def _relaxed_rounds(
    call: SolveCall, backend: Backend, options: SolverOptions, start: float
) -> _Search:
    """Solve the relaxed model, cutting off plans that miss the exact constraints, until one
    passes the exact check, the model is infeasible, or time or cuts run out."""
    problem, objective, deadline = call.problem, call.objective, call.deadline
    warm_start, on_progress = call.warm_start, call.on_progress
    check = ExactCheck(problem, objective)
    relaxed = cpsat.build(problem, objective, sc.RELAXED)
    hints = _hints(problem, relaxed, warm_start) if warm_start is not None else None
    found = _Search()
    while True:
        # Until an exact-feasible plan is in hand, keep half the time for the conservative model.
        raw = backend.run(
            relaxed.model,
            options,
            deadline.portion(0.5 if found.cuts else 1.0),
            _exact_progress(on_progress, relaxed, check, time.perf_counter() - start),
            hints,
        )
        hints = None  # written into the model, which keeps them for the next round
        found.last = raw
        if raw.status is SolveStatus.INFEASIBLE:
            # The relaxed model holds every exact-feasible plan but those cut (all infeasible).
            found.proven_infeasible = True
            return found
        # The relaxed model's bound holds for the exact problem, with or without a plan.
        round_bound = raw.bound * relaxed.objective_scale
        if math.isfinite(round_bound):
            found.bound = (
                round_bound if not math.isfinite(found.bound) else max(found.bound, round_bound)
            )
        if not raw.has_solution or raw.value is None:
            return found
        choice = read_choice(problem, relaxed.x, raw.value)
        value = check.objective(choice)
        if value is not None:
            found.best = (value, choice)
            return found
        found.last_relaxed = choice
        found.cuts += 1
        if found.cuts > MAX_CUTS or deadline.expired:
            return found
        # This assignment misses the exact SLA (or capacity) by the rounding: cut it off.
        relaxed.model.add(sum(relaxed.x[o] for o in choice) <= problem.n_ops - 1)


def _conservative(
    call: SolveCall, backend: Backend, options: SolverOptions, found: _Search
) -> str | None:
    """Ask the conservative model for a plan (into ``found.best``); a note when it gives one."""
    problem, objective, warm_start = call.problem, call.objective, call.warm_start
    conservative = cpsat.build(problem, objective, sc.CONSERVATIVE)
    hints: WarmValues | None
    if found.last_relaxed is not None:
        chosen = dict(enumerate(found.last_relaxed))
        hints = start_values(
            problem, conservative.x, conservative.n, chosen, {}, every_operator=False
        )
    elif warm_start is not None:
        hints = _hints(problem, conservative, warm_start)
    else:
        hints = None
    raw = backend.run(conservative.model, options, call.deadline, None, hints)
    found.last = raw
    if not raw.has_solution or raw.value is None:
        return None
    choice = read_choice(problem, conservative.x, raw.value)
    value = ExactCheck(problem, objective).objective(choice)
    if value is None:
        return None
    found.best = (value, choice)
    return "plan from the conservative integer model (latencies rounded up to 1 us, the SLA down)"


def solve_cpsat(call: SolveCall, backend: Backend) -> SolveResult:
    """Solve ``call.problem`` with CP-SAT, and say only what holds for the exact problem.

    ``call.warm_start`` becomes hints (CP-SAT repairs a hint that is no longer feasible);
    ``call.on_progress`` gets each improving exact-feasible solution at its exact value, with
    the relaxed model's bound.

    Returns
    -------
    SolveResult
        ``objective`` is the exact evaluation of the plan; ``bound`` the relaxed model's, a
        valid lower bound on the exact optimum; ``status`` is ``optimal`` only when they meet
        within ``gap_rel``. ``resolution`` records the integer steps of both roundings.
    """
    start = time.perf_counter()
    # Half the gap: the exact objective and the relaxed bound differ by the rounding too.
    model_options = replace(call.options, gap_rel=call.options.gap_rel / 2)
    notes = [call.deadline.overrun_note()] if call.deadline.expired else []
    found = _relaxed_rounds(call, backend, model_options, start)
    if found.cuts:
        notes.append(
            f"{found.cuts} plan(s) of the relaxed integer model missed the exact constraints "
            f"by the rounding and were cut off"
        )
    if found.best is None and not found.proven_infeasible:
        note = _conservative(call, backend, model_options, found)
        if note:
            notes.append(note)
    return _result(call, found, notes, start)


def _result(call: SolveCall, found: _Search, notes: list[str], start: float) -> SolveResult:
    """The exact problem's result from what the rounds found."""
    problem, objective, options, deadline = (
        call.problem,
        call.objective,
        call.options,
        call.deadline,
    )
    assert found.last is not None
    native = found.last.solver_status_text
    runtime = time.perf_counter() - start
    resolution = {
        **{f"relaxed_{k}": v for k, v in sc.RELAXED.resolution.items()},
        **sc.CONSERVATIVE.resolution,
    }
    cut_out = found.cuts > MAX_CUTS and not deadline.expired
    if found.best is None:
        if found.proven_infeasible:
            st, why = SolveStatus.INFEASIBLE, Termination.INFEASIBLE
        elif found.last_relaxed is not None:
            st = SolveStatus.NO_SOLUTION
            why = Termination.ITERATION_LIMIT if cut_out else _unproven(found.last)
            notes.append(
                "no plan found that meets the exact constraints: the plans CP-SAT "
                "found miss the SLA by less than its rounding; solver=highs decides "
                "such a case exactly"
            )
        else:
            # Only the relaxed model's infeasibility proves the exact problem infeasible.
            st = (
                SolveStatus.ERROR
                if found.last.status is SolveStatus.ERROR
                else SolveStatus.NO_SOLUTION
            )
            why = _unproven(found.last)
        return SolveResult(
            "cpsat",
            st,
            math.nan,
            found.bound,
            math.nan,
            runtime,
            None,
            None,
            objective,
            resolution,
            "; ".join([native, *notes]),
            why,
            native,
        )
    value, choice = found.best
    gap = relative_gap(value, found.bound)
    optimal = math.isfinite(gap) and gap <= options.gap_rel
    st = SolveStatus.OPTIMAL if optimal else SolveStatus.FEASIBLE
    if optimal:
        why = Termination.OPTIMAL
    elif cut_out:
        why = Termination.ITERATION_LIMIT
        notes.append(f"stopped after {MAX_CUTS} cuts")
    else:
        why = _unproven(found.last)
    ev = ExactCheck(problem, objective).evaluate(choice)  # pools do not depend on the SLA
    counts = tuple(int(v) for v in ev.pool_counts)
    return SolveResult(
        "cpsat",
        st,
        value,
        found.bound,
        gap,
        runtime,
        choice,
        counts,
        objective,
        resolution,
        "; ".join([native, *notes]),
        why,
        native,
    )


def _unproven(raw: RawSolution) -> Termination:
    """Why a solve without a proof for the exact problem stopped: the solver's own reason,
    or :attr:`Termination.INEXACT` when the solver decided its (rounded) model."""
    if raw.termination in (Termination.OPTIMAL, Termination.INFEASIBLE):
        return Termination.INEXACT
    return raw.termination
