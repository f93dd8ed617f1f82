"""HiGHS and CBC backends: the MILP formulation solved through PuLP.

PuLP's own status is misleading under a time limit (HiGHS reports ``Optimal`` for a stopped
incumbent), so the status here comes from HiGHS's model status and the CBC log, and the bound
and gap from the solver itself.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hetopt._solverlibs import pulp  # ortools first, then pulp (see there)
from hetopt.models import milp
from hetopt.models.solution import read_choice, read_counts, start_values
from hetopt.solvers.backend import Backend, Capabilities, RawSolution, SolveCall, WarmValues
from hetopt.solvers.base import (
    MIN_SOLVE_SLICE_S,
    Deadline,
    OnProgress,
    SolveProgress,
    SolveResult,
    SolverOptions,
    SolveStatus,
    Termination,
    relative_gap,
)
from hetopt.solvers.exact import ExactCheck


class _HiGHS(pulp.HiGHS):
    """PuLP's HiGHS with a MIP start (PuLP passes none to highspy) and progress reports."""

    def __init__(
        self,
        *args: object,
        start: bool = False,
        on_progress: OnProgress | None = None,
        deadline: Deadline | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._start, self._on_progress, self._deadline = start, on_progress, deadline

    def buildSolverModel(self, lp: pulp.LpProblem) -> None:  # noqa: N802  (PuLP's name)
        """PuLP's hand-over, in bulk: PuLP sets integrality one column at a time, which costs
        seconds on a fleet model (HiGHS rescans per call); here it is one call per kind."""
        import highspy

        inf = highspy.kHighsInf
        h = lp.solverModel
        variables = lp.variables()
        sign = -1.0 if lp.sense == pulp.LpMaximize else 1.0
        n = len(variables)
        idx = np.arange(n, dtype=np.int32)
        h.addVars(
            n,
            np.array([-inf if v.lowBound is None else v.lowBound for v in variables], dtype=float),
            np.array([inf if v.upBound is None else v.upBound for v in variables], dtype=float),
        )
        h.changeColsCost(
            n, idx, np.array([sign * lp.objective.get(v, 0.0) for v in variables], dtype=float)
        )
        for i, v in enumerate(variables):
            v.index = i
        if self.mip:
            integer = np.array(
                [v.index for v in variables if v.cat == pulp.LpInteger], dtype=np.int32
            )
            if len(integer):
                h.changeColsIntegrality(
                    len(integer),
                    integer,
                    np.full(len(integer), int(highspy.HighsVarType.kInteger), dtype=np.uint8),
                )
        lower: list[float] = []
        upper: list[float] = []
        starts: list[int] = []
        index: list[int] = []
        value: list[float] = []
        for i, constraint in enumerate(lp._constraints.values()):
            constraint.index = i
            starts.append(len(index))
            for var, coef in constraint.items():
                if coef != 0:
                    index.append(var.index)
                    value.append(coef)
            lb, ub = constraint.getLb(), constraint.getUb()
            lower.append(-inf if lb is None else lb)
            upper.append(inf if ub is None else ub)
        if starts:
            h.addRows(
                len(starts),
                np.array(lower, dtype=float),
                np.array(upper, dtype=float),
                len(index),
                np.array(starts, dtype=np.int32),
                np.array(index, dtype=np.int32),
                np.array(value, dtype=float),
            )

    def actualSolve(self, lp: pulp.LpProblem) -> int:  # noqa: N802  (PuLP's name)
        """PuLP's sequence, minus two of its four full rescans of the model's variables."""
        self.createAndConfigureSolver(lp)
        self.buildSolverModel(lp)
        self.callSolver(lp)
        status, sol_status = self.findSolutionValues(lp)
        for var in lp._variables:
            var.modified = False
        for constraint in lp._constraints.values():
            constraint.modifier = False
        lp.assignStatus(status, sol_status)
        return int(status)

    def callSolver(self, lp: pulp.LpProblem) -> None:  # noqa: N802  (PuLP's name)
        h = lp.solverModel
        if self._deadline is not None:
            # PuLP hands the model to highspy row by row, which takes seconds on a large
            # model: the time limit is what is left after that.
            h.setOptionValue("time_limit", self._deadline.slice_s())
        if self._start:
            cols = [v for v in lp.variables() if v.varValue is not None]
            h.setSolution(
                len(cols),
                np.array([v.index for v in cols], dtype=np.int32),
                np.array([v.varValue for v in cols], dtype=float),
            )
        if self._on_progress is not None:
            report = self._on_progress

            def improved(event: object) -> None:
                out = event.data_out  # type: ignore[attr-defined]
                report(
                    SolveProgress(
                        "highs", out.running_time, out.objective_function_value, out.mip_dual_bound
                    )
                )

            h.cbMipImprovingSolution.subscribe(improved)
        h.run()


def _pulp_value(var: pulp.LpVariable) -> float:
    return float(var.varValue or 0.0)


def _apply_start(warm_start: WarmValues | None) -> bool:
    """Write the start values into the model's variables; True when there are any."""
    for var, value in (warm_start or {}).items():
        var.setInitialValue(value)
    return bool(warm_start)


def _highs_termination(name: str, has_solution: bool) -> Termination:
    """HiGHS's model status (``HighsModelStatus`` member name) as a :class:`Termination`."""
    known = {
        "kOptimal": Termination.OPTIMAL,
        "kInfeasible": Termination.INFEASIBLE,
        "kUnboundedOrInfeasible": Termination.INFEASIBLE_OR_UNBOUNDED,
        "kTimeLimit": Termination.TIME_LIMIT,
        "kIterationLimit": Termination.ITERATION_LIMIT,
        "kInterrupt": Termination.INTERRUPTED,
    }
    return known.get(name, Termination.UNKNOWN if has_solution else Termination.ERROR)


@dataclass(frozen=True)
class HighsBackend:
    """HiGHS (through PuLP's highspy interface) on a built :class:`pulp.LpProblem`.

    The status comes from HiGHS's model status, not PuLP's (PuLP says ``Optimal`` for an
    incumbent stopped at the time limit); the bound is HiGHS's MIP dual bound.
    """

    name: str = "highs"
    capabilities: Capabilities = Capabilities("milp", warm_start=True, progress=True, fleet=True)

    def run(
        self,
        model: pulp.LpProblem,
        options: SolverOptions,
        deadline: Deadline,
        on_progress: OnProgress | None = None,
        warm_start: WarmValues | None = None,
    ) -> RawSolution:
        """Solve ``model``; the time limit is what ``deadline`` leaves after PuLP's hand-over."""
        import highspy

        t0 = time.perf_counter()
        start = _apply_start(warm_start)
        # Pool loads of light operators are 1e-7..1e-3 device-equivalents. With HiGHS's default
        # mip_feasibility_tolerance (1e-6) HiGHS 1.12 proved a suboptimal plan "optimal" on the
        # shipped coding agent (12.14 vs 10.98 $/h, found by CBC and CP-SAT); 1e-9 restores it.
        solver = _HiGHS(
            msg=options.verbose,
            timeLimit=deadline.slice_s(),
            gapRel=options.gap_rel,
            threads=options.threads,
            random_seed=options.seed,
            mip_feasibility_tolerance=1e-9,
            start=start,
            on_progress=on_progress,
            deadline=deadline,
        )
        model.solve(solver)
        h = model.solverModel
        model_status = h.getModelStatus()
        if model_status == highspy.HighsModelStatus.kNotset:
            # HiGHS keeps one thread pool per process, sized by the first solve; a solve asking
            # for another size fails with "Not Set" until the pool is rebuilt. Rebuilding it
            # only then keeps no record of the size here and costs nothing otherwise (always
            # rebuilding costs about 3 ms a solve).
            highspy.Highs.resetGlobalScheduler(True)
            _apply_start(warm_start)  # the failed run wrote its values over the start
            model.solve(solver)
            h = model.solverModel
            model_status = h.getModelStatus()
        info = h.getInfo()
        has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
        objective = h.getObjectiveValue() if has_solution else math.nan
        is_mip = any(v.cat == pulp.LpInteger for v in model._variables)  # filled by the solve
        bound = info.mip_dual_bound if is_mip else objective
        if not math.isfinite(bound):
            bound = math.nan  # stopped before the root relaxation gave one: unknown, not -inf
        termination = _highs_termination(model_status.name, has_solution)
        if termination is Termination.OPTIMAL:
            st = SolveStatus.OPTIMAL
        elif termination in (Termination.INFEASIBLE, Termination.INFEASIBLE_OR_UNBOUNDED):
            st = SolveStatus.INFEASIBLE
        elif has_solution:
            st = SolveStatus.FEASIBLE
        elif termination in (
            Termination.TIME_LIMIT,
            Termination.ITERATION_LIMIT,
            Termination.INTERRUPTED,
        ):
            st = SolveStatus.NO_SOLUTION
        else:
            st = SolveStatus.ERROR
        return RawSolution(
            st,
            termination,
            h.modelStatusToString(model_status),
            objective,
            bound,
            time.perf_counter() - t0,
            _pulp_value if has_solution else None,
        )


_CBC_RESULT = re.compile(r"^Result - (.*)$", re.M)
_CBC_OBJ = re.compile(r"^Objective value:\s+(\S+)", re.M)
_CBC_BOUND = re.compile(r"^Lower bound:\s+(\S+)", re.M)


CBC_HANDOVER_S_PER_MNZ = 2.0
"""Seconds PuLP and CBC take to write, read and preprocess a model, per million nonzeros
(measured on the synthetic fleet); taken off CBC's time limit, which counts branching only."""
CBC_GRACE_S = 1.0
"""How long past the deadline CBC may run before it is stopped: CBC checks its own limit only
between nodes, so its root relaxation of a large model can run for many seconds past it."""


def _stop_cbc_at(deadline: Deadline, tmp: str, done: threading.Event) -> None:
    """Kill the CBC process this call started (a child of this process whose command line
    names ``tmp``) once the deadline plus the grace has passed and it is still running."""
    if done.wait(max(deadline.end_s + CBC_GRACE_S - time.perf_counter(), 0.0)):
        return
    me = os.getpid()
    while not done.wait(0.1):  # PuLP may still be writing the model when the time is up
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except (OSError, ValueError, IndexError):
                continue
            if ppid == me and tmp in cmdline and "cbc" in cmdline:
                with contextlib.suppress(OSError):
                    os.kill(int(entry.name), signal.SIGKILL)


def _cbc_termination(result: str, sol: int) -> Termination:
    """CBC's ``Result -`` line (and PuLP's solution status) as a :class:`Termination`."""
    text = result.lower()
    if sol == pulp.LpSolutionOptimal:
        return Termination.OPTIMAL
    if sol == pulp.LpSolutionInfeasible or "infeasible" in text:
        return Termination.INFEASIBLE
    if "time" in text:
        return Termination.TIME_LIMIT
    if "iteration" in text or "node" in text or "solutions" in text:
        return Termination.ITERATION_LIMIT
    if "ctrl-c" in text or "user" in text:
        return Termination.INTERRUPTED
    return Termination.ERROR if "abandoned" in text else Termination.UNKNOWN


@dataclass(frozen=True)
class CbcBackend:
    """CBC (PuLP's bundled ``cbc`` process) on a built :class:`pulp.LpProblem`.

    CBC runs as a separate process, so it reports no progress; its status, objective and
    bound are read from its log.
    """

    name: str = "cbc"
    capabilities: Capabilities = Capabilities("milp", warm_start=True, fleet=True)

    def run(
        self,
        model: pulp.LpProblem,
        options: SolverOptions,
        deadline: Deadline,
        on_progress: OnProgress | None = None,
        warm_start: WarmValues | None = None,
    ) -> RawSolution:
        """Solve ``model``; CBC's limit is what ``deadline`` leaves after writing the model."""
        t0 = time.perf_counter()
        start = _apply_start(warm_start)
        nonzeros = sum(len(c) for c in model._constraints.values())
        handover_s = CBC_HANDOVER_S_PER_MNZ * nonzeros / 1e6
        limit_s = max(deadline.remaining_s() - handover_s, min(MIN_SOLVE_SLICE_S, deadline.limit_s))
        with tempfile.TemporaryDirectory(prefix="hetopt-cbc-") as tmp, warnings.catch_warnings():
            # PULP_CBC_CMD (the CBC bundled with PuLP 3.3) is deprecated for PuLP 4, which needs
            # Python 3.12; this is the one place to switch to COIN_CMD + cbcbox then.
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="pulp")
            log = Path(tmp) / "cbc.log"
            solver = pulp.PULP_CBC_CMD(
                msg=options.verbose,
                timeLimit=round(limit_s, 2),
                gapRel=options.gap_rel,
                threads=options.threads,
                logPath=str(log),
                warmStart=start,
                options=[f"randomSeed {options.seed + 1}"],
            )
            solver.tmpDir = tmp  # so the watchdog knows its own CBC by the file names
            done = threading.Event()
            watchdog = threading.Thread(
                target=_stop_cbc_at, args=(deadline, tmp, done), daemon=True
            )
            watchdog.start()
            killed = False
            try:
                model.solve(solver)
            except pulp.PulpSolverError:
                if deadline.remaining_s() > 0:
                    raise
                killed = True
            finally:
                done.set()
                watchdog.join()
            text = log.read_text() if log.exists() else ""
        if killed:
            return RawSolution(
                SolveStatus.NO_SOLUTION,
                Termination.INTERRUPTED,
                f"CBC was stopped {CBC_GRACE_S:g} s past the deadline: it had not stopped by "
                f"itself (CBC checks its time limit only between nodes)",
                math.nan,
                math.nan,
                time.perf_counter() - t0,
            )
        found = _CBC_RESULT.search(text)
        result = found[1] if found else ""
        sol = model.sol_status
        objective = pulp.value(model.objective) if sol in (1, 2) else math.nan
        bound_match = _CBC_BOUND.search(text)
        bound = float(bound_match[1]) if bound_match else math.nan
        termination = _cbc_termination(result, sol)
        if sol == pulp.LpSolutionOptimal:
            st = SolveStatus.OPTIMAL
            if not math.isfinite(bound):
                bound = float(objective)
        elif sol == pulp.LpSolutionInfeasible or "infeasible" in result.lower():
            st = SolveStatus.INFEASIBLE
        elif sol == pulp.LpSolutionIntegerFeasible:
            st = SolveStatus.FEASIBLE
        elif "time" in result.lower() or "stopped" in result.lower():
            st = SolveStatus.NO_SOLUTION
        else:
            st = SolveStatus.ERROR
        has_solution = st in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE)
        return RawSolution(
            st,
            termination,
            result or pulp.LpSolution[sol],
            float(objective),
            bound,
            time.perf_counter() - t0,
            _pulp_value if has_solution else None,
        )


def solve_milp(call: SolveCall, backend: Backend) -> SolveResult:
    """Build the MILP, solve it with a MILP backend (:class:`HighsBackend`,
    :class:`CbcBackend`), and read the plan back at its exact value.

    ``call.warm_start`` becomes a MIP start (HiGHS ``setSolution``, CBC ``mipstart``);
    ``call.on_progress`` gets each improving solution's incumbent and bound (HiGHS).
    """
    start = time.perf_counter()
    problem, options, objective = call.problem, call.options, call.objective
    deadline, warm_start = call.deadline, call.warm_start
    model = milp.build(problem, objective)
    values = (
        start_values(
            problem,
            model.x,
            model.n,
            warm_start.options(problem),
            warm_start.pool_counts(problem),
            every_operator=True,
            replicas=model.m,
        )
        if warm_start is not None
        else {}
    )
    note = deadline.overrun_note()
    raw = backend.run(model.prob, options, deadline, call.on_progress, values)
    status, obj, bound, message = raw.status, raw.objective, raw.bound, raw.solver_status_text
    if note:
        message = f"{message}; {note}"
    runtime = time.perf_counter() - start
    choice = counts = None
    exact: float | None = None
    if raw.has_solution and raw.value is not None:
        choice = read_choice(problem, model.x, raw.value)
        counts = read_counts(model.n, raw.value)
        # The plan at its exact value with the pools it needs: a MILP stopped at its limit may
        # hold more pool devices than its assignment needs.
        check = ExactCheck(problem, objective)
        exact = check.objective(choice)
        if exact is not None:
            obj = exact
            counts = tuple(int(v) for v in np.minimum(counts, check.evaluate(choice).pool_counts))
    termination = raw.termination
    broken = () if choice is None or exact is not None else check.evaluate(choice).violations
    if broken:
        # The solver's plan breaks a capacity or inventory constraint at the exact loads: its
        # feasibility tolerance (CBC's 1e-7) let a pool or an inventory hold a load just above
        # what it can. No plan is returned rather than one that does not fit. (A plan that
        # meets the SLA only within the evaluator's microsecond is kept, as before.)
        why = "; ".join(broken)
        message = (
            f"{message}; the solver's plan does not fit at the exact loads ({why}), which its "
            f"feasibility tolerance let through: no plan returned. Try solver=highs or cpsat"
        )
        status, termination, choice, counts = SolveStatus.ERROR, Termination.INEXACT, None, None
        obj, bound = math.nan, math.nan
    if status is SolveStatus.OPTIMAL and not math.isfinite(bound):
        bound = obj
    gap = relative_gap(obj, bound)
    if status is SolveStatus.OPTIMAL and gap > options.gap_rel:
        # The solver proved its model's optimum within its own feasibility tolerance (CBC
        # accepts a pool load 1e-8 above a whole number as fitting), but the plan at its
        # exact value costs more: what is proven is the bound, not this plan.
        status, termination = SolveStatus.FEASIBLE, Termination.INEXACT
        message = (
            f"{message}; the solver's optimum needed more devices at its exact loads "
            f"(within the solver's feasibility tolerance): not proven optimal"
        )
    return SolveResult(
        backend.name,
        status,
        obj,
        bound,
        gap,
        runtime,
        choice,
        counts,
        objective,
        {},
        message,
        termination,
        raw.solver_status_text,
    )
