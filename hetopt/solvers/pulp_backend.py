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
from pathlib import Path

import numpy as np

from hetopt._solverlibs import pulp  # ortools first, then pulp (see there)
from hetopt.models import milp
from hetopt.problem import PlacementProblem
from hetopt.solvers.base import (
    MIN_SOLVE_SLICE_S,
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
from hetopt.solvers.cpsat_backend import ExactCheck


def _decode(
    problem: PlacementProblem, model: milp.MilpModel
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    values = np.array([v.varValue or 0.0 for v in model.x])
    choice = []
    for i in range(problem.n_ops):
        opts = problem.options_of(i)
        choice.append(int(opts[np.argmax(values[opts])]))
    counts = tuple(int(round(v.varValue or 0.0)) for v in model.n)
    return tuple(choice), counts


def _set_start(problem: PlacementProblem, model: milp.MilpModel, warm_start: WarmStart) -> bool:
    """Give every variable of ``model`` the warm start's value; False if it names nothing."""
    chosen = warm_start.options(problem)
    if not chosen:
        return False
    for i in range(problem.n_ops):
        for o in problem.options_of(i):
            model.x[int(o)].setInitialValue(1.0 if chosen.get(i) == int(o) else 0.0)
    for j, n in warm_start.pool_counts(problem).items():
        model.n[j].setInitialValue(float(n))
    return True


_scheduler_threads: int | None = None


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


def run_highs(
    prob: pulp.LpProblem,
    options: SolverOptions,
    start: bool = False,
    on_progress: OnProgress | None = None,
    deadline: Deadline | None = None,
) -> tuple[SolveStatus, float, float, str]:
    """Solve a built PuLP model with HiGHS: status, objective, bound and HiGHS's status text.

    ``start`` passes the variables' initial values as a MIP start. ``deadline`` (default:
    ``options.time_limit_s`` from now) bounds the solve including PuLP's hand-over of the
    model. The bound is ``nan`` when HiGHS stopped before proving any.
    """
    deadline = deadline or Deadline.after(options.time_limit_s)
    import highspy

    global _scheduler_threads
    if _scheduler_threads not in (None, options.threads):
        # HiGHS keeps one thread pool per process, sized by the first solve; a solve asking for
        # another size fails with "Not Set" unless the pool is rebuilt.
        highspy.Highs.resetGlobalScheduler(True)
    _scheduler_threads = options.threads
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
    prob.solve(solver)
    h = prob.solverModel
    status = h.getModelStatus()
    info = h.getInfo()
    has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
    objective = h.getObjectiveValue() if has_solution else math.nan
    is_mip = any(v.cat == pulp.LpInteger for v in prob._variables)  # filled by the solve
    bound = info.mip_dual_bound if is_mip else objective
    if not math.isfinite(bound):
        bound = math.nan  # stopped before the root relaxation gave one: unknown, not -inf
    hm = highspy.HighsModelStatus
    if status == hm.kOptimal:
        st = SolveStatus.OPTIMAL
    elif status in (hm.kInfeasible, hm.kUnboundedOrInfeasible):
        st = SolveStatus.INFEASIBLE
    elif has_solution:
        st = SolveStatus.FEASIBLE
    elif status in (hm.kTimeLimit, hm.kIterationLimit, hm.kInterrupt):
        st = SolveStatus.NO_SOLUTION
    else:
        st = SolveStatus.ERROR
    return st, objective, bound, h.modelStatusToString(status)


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


def run_cbc(
    prob: pulp.LpProblem,
    options: SolverOptions,
    start: bool = False,
    on_progress: OnProgress | None = None,
    deadline: Deadline | None = None,
) -> tuple[SolveStatus, float, float, str]:
    """Solve a built PuLP model with CBC (``on_progress`` is not called: CBC runs as a
    separate process). ``deadline`` as for :func:`run_highs`."""
    deadline = deadline or Deadline.after(options.time_limit_s)
    nonzeros = sum(len(c) for c in prob._constraints.values())
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
        watchdog = threading.Thread(target=_stop_cbc_at, args=(deadline, tmp, done), daemon=True)
        watchdog.start()
        killed = False
        try:
            prob.solve(solver)
        except pulp.PulpSolverError:
            if deadline.remaining_s() > 0:
                raise
            killed = True
        finally:
            done.set()
            watchdog.join()
        text = log.read_text() if log.exists() else ""
    if killed:
        return (
            SolveStatus.NO_SOLUTION,
            math.nan,
            math.nan,
            f"CBC was stopped {CBC_GRACE_S:g} s past the deadline: it had not stopped by "
            f"itself (CBC checks its time limit only between nodes)",
        )
    found = _CBC_RESULT.search(text)
    result = found[1] if found else ""
    sol = prob.sol_status
    objective = pulp.value(prob.objective) if sol in (1, 2) else math.nan
    bound_match = _CBC_BOUND.search(text)
    bound = float(bound_match[1]) if bound_match else math.nan
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
    return st, float(objective), bound, result or pulp.LpSolution[sol]


def solve_milp(
    problem: PlacementProblem,
    options: SolverOptions,
    objective: Objective = "cost",
    backend: str = "highs",
    *,
    warm_start: WarmStart | None = None,
    on_progress: OnProgress | None = None,
    deadline: Deadline | None = None,
) -> SolveResult:
    """Build the MILP and solve it with HiGHS (``backend="highs"``) or CBC (``"cbc"``).

    Parameters
    ----------
    problem
        The placement problem.
    options
        Time limit, gap, threads, seed.
    objective
        ``cost`` or ``latency`` (see :func:`hetopt.models.milp.build`).
    backend
        ``highs`` or ``cbc``.
    warm_start
        A MIP start (HiGHS ``setSolution``, CBC ``mipstart``).
    on_progress
        Called at each improving solution with incumbent and bound (HiGHS only; CBC runs as a
        separate process).
    deadline
        The wall-clock budget, model building included (default: ``options.time_limit_s``
        from now).

    Returns
    -------
    SolveResult
    """
    start = time.perf_counter()
    deadline = deadline or Deadline.after(options.time_limit_s)
    model = milp.build(problem, objective)
    start_given = warm_start is not None and _set_start(problem, model, warm_start)
    note = deadline.overrun_note()
    run = run_highs if backend == "highs" else run_cbc
    status, obj, bound, message = run(model.prob, options, start_given, on_progress, deadline)
    if note:
        message = f"{message}; {note}"
    runtime = time.perf_counter() - start
    choice = counts = None
    if status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
        choice, counts = _decode(problem, model)
        # The plan at its exact value with the pools it needs: a MILP stopped at its limit may
        # hold more pool devices than its assignment needs.
        check = ExactCheck(problem, objective)
        exact = check.objective(choice)
        if exact is not None:
            obj = exact
            counts = tuple(int(v) for v in np.minimum(counts, check.evaluate(choice).pool_counts))
    if status is SolveStatus.OPTIMAL and not math.isfinite(bound):
        bound = obj
    gap = relative_gap(obj, bound)
    return SolveResult(
        backend, status, obj, bound, gap, runtime, choice, counts, objective, {}, message
    )
