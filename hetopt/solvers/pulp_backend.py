"""HiGHS and CBC backends: the MILP formulation solved through PuLP.

PuLP's own status is misleading under a time limit (HiGHS reports ``Optimal`` for a stopped
incumbent), so the status here comes from HiGHS's model status and the CBC log, and the bound
and gap from the solver itself.
"""

from __future__ import annotations

# ortools before pulp: see hetopt/__init__.py
import ortools  # noqa: F401  isort: skip
import math
import re
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pulp

from hetopt.models import milp
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


def _decode(problem: PlacementProblem, model: milp.MilpModel) -> tuple[tuple[int, ...],
                                                                         tuple[int, ...]]:
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

    def __init__(self, *args: object, start: bool = False,
                 on_progress: OnProgress | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._start, self._on_progress = start, on_progress

    def callSolver(self, lp: pulp.LpProblem) -> None:  # noqa: N802  (PuLP's name)
        h = lp.solverModel
        if self._start:
            cols = [v for v in lp.variables() if v.varValue is not None]
            h.setSolution(len(cols), np.array([v.index for v in cols], dtype=np.int32),
                          np.array([v.varValue for v in cols], dtype=float))
        if self._on_progress is not None:
            report = self._on_progress

            def improved(event: object) -> None:
                out = event.data_out  # type: ignore[attr-defined]
                report(SolveProgress("highs", out.running_time, out.objective_function_value,
                                     out.mip_dual_bound))

            h.cbMipImprovingSolution.subscribe(improved)
        h.run()


def run_highs(prob: pulp.LpProblem, options: SolverOptions, start: bool = False,
              on_progress: OnProgress | None = None) -> tuple[SolveStatus, float, float, str]:
    """Solve a built PuLP model with HiGHS: status, objective, bound and HiGHS's status text.

    ``start`` passes the variables' initial values as a MIP start.
    """
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
    solver = _HiGHS(msg=options.verbose, timeLimit=options.time_limit_s,
                    gapRel=options.gap_rel, threads=options.threads,
                    random_seed=options.seed, mip_feasibility_tolerance=1e-9, start=start,
                    on_progress=on_progress)
    prob.solve(solver)
    h = prob.solverModel
    status = h.getModelStatus()
    info = h.getInfo()
    has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
    objective = h.getObjectiveValue() if has_solution else math.nan
    bound = info.mip_dual_bound if prob.isMIP() else objective
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


def run_cbc(prob: pulp.LpProblem, options: SolverOptions, start: bool = False,
            on_progress: OnProgress | None = None) -> tuple[SolveStatus, float, float, str]:
    """Solve a built PuLP model with CBC (``on_progress`` is not called: CBC runs as a
    separate process)."""
    with tempfile.TemporaryDirectory(prefix="hetopt-cbc-") as tmp, warnings.catch_warnings():
        # PULP_CBC_CMD (the CBC bundled with PuLP 3.3) is deprecated for PuLP 4, which needs
        # Python 3.12; this is the one place to switch to COIN_CMD + cbcbox then.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="pulp")
        log = Path(tmp) / "cbc.log"
        solver = pulp.PULP_CBC_CMD(msg=options.verbose, timeLimit=options.time_limit_s,
                                   gapRel=options.gap_rel, threads=options.threads,
                                   logPath=str(log), warmStart=start,
                                   options=[f"randomSeed {options.seed + 1}"])
        prob.solve(solver)
        text = log.read_text() if log.exists() else ""
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


def solve_milp(problem: PlacementProblem, options: SolverOptions, objective: Objective = "cost",
               backend: str = "highs", *, warm_start: WarmStart | None = None,
               on_progress: OnProgress | None = None) -> SolveResult:
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

    Returns
    -------
    SolveResult
    """
    start = time.perf_counter()
    model = milp.build(problem, objective)
    start_given = warm_start is not None and _set_start(problem, model, warm_start)
    run = run_highs if backend == "highs" else run_cbc
    status, obj, bound, message = run(model.prob, options, start_given, on_progress)
    runtime = time.perf_counter() - start
    choice = counts = None
    if status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
        choice, counts = _decode(problem, model)
    if status is SolveStatus.OPTIMAL and not math.isfinite(bound):
        bound = obj
    gap = relative_gap(obj, bound)
    return SolveResult(backend, status, obj, bound, gap, runtime, choice, counts, objective,
                       {}, message)
