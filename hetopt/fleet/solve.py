"""Solve a fleet: greedy first plan, then the exact formulation warm-started from it.

The greedy plan (:func:`hetopt.fleet.heuristics.greedy`) arrives in well under a second and is
verified, so a feasible plan exists before any model is built. The MILP (HiGHS or CBC) or
CP-SAT model then starts from it and returns a plan with a proven bound: the LP-based bound of
HiGHS or CBC, or CP-SAT's. Its gap is always reported, and every plan is re-verified by
:func:`hetopt.fleet.evaluate.evaluate_fleet`.

When no plan fits the inventory, :func:`explain_shortage` solves the elastic model (the fewest
extra devices, SLAs kept) and says which pools are short and by how much.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from ortools.sat.python import cp_model

from hetopt.errors import InfeasibleError, InputError
from hetopt.fleet import heuristics
from hetopt.fleet.decomposition import solve_decomposed
from hetopt.fleet.evaluate import Choices, FleetEvaluation, evaluate_fleet
from hetopt.fleet.models import (
    BuildInterrupted,
    FleetCpsat,
    FleetMilp,
    build_cpsat,
    build_milp,
)
from hetopt.fleet.problem import FleetProblem
from hetopt.models import scaling as sc
from hetopt.solvers.base import (
    Deadline,
    OnProgress,
    SolveProgress,
    SolverOptions,
    SolveStatus,
    relative_gap,
)
from hetopt.solvers.cpsat_backend import STATUS_MAP
from hetopt.solvers.pulp_backend import run_cbc, run_highs

FLEET_BACKENDS = ("highs", "cbc", "cpsat")


@dataclass(frozen=True)
class FleetResult:
    """A solved fleet.

    Attributes
    ----------
    backend
        ``highs``, ``cbc``, ``cpsat`` (or a heuristic's name when the solver added nothing).
    status
        ``optimal`` (proven within ``gap_rel`` of the bound; ``gap`` says how close),
        ``feasible`` (a plan further from the bound, or with no bound known: stopped at the
        time limit), ``infeasible`` or ``no_solution``.
    objective_usd_per_h, bound_usd_per_h, gap
        The plan's exact objective, the proven lower bound on the fleet optimum (``nan`` when
        none is known) and their relative gap (``nan`` then too).
    choices, pool_counts
        Per tenant the option of each operator; shared-pool devices per type.
    evaluation
        The independent re-evaluation of the plan.
    build_s, solve_s
        Model-building and solver wall-clock time.
    first_feasible_s
        Time from the call to the first verified plan (the greedy start, or the solver's first
        incumbent when the greedy found none).
    start_usd_per_h
        Objective of the greedy start (``nan`` if it found none).
    message
        Solver status text.
    """

    backend: str
    status: SolveStatus
    objective_usd_per_h: float
    bound_usd_per_h: float
    gap: float
    choices: Choices | None
    pool_counts: tuple[int, ...] | None
    evaluation: FleetEvaluation | None
    build_s: float
    solve_s: float
    first_feasible_s: float
    start_usd_per_h: float
    message: str = ""

    @property
    def has_solution(self) -> bool:
        """True when a plan can be read from this result."""
        return self.choices is not None

    @property
    def verified(self) -> bool:
        """True when the plan passed the independent re-evaluation."""
        return self.evaluation is not None and self.evaluation.feasible


def _set_milp_start(model: FleetMilp, fp: FleetProblem, choices: Choices) -> None:
    for xt, choice in zip(model.x, choices, strict=True):
        chosen = set(choice)
        for o, var in enumerate(xt):
            var.setInitialValue(1.0 if o in chosen else 0.0)
    ev = evaluate_fleet(fp, choices)
    for j, var in enumerate(model.n):
        var.setInitialValue(float(ev.pool_counts[j]))


def _pick(fp: FleetProblem, values: list[np.ndarray]) -> Choices:
    out = []
    for p, vals in zip(fp.tenants, values, strict=True):
        out.append(
            tuple(
                int(opts[np.argmax(vals[opts])])
                for opts in (p.options_of(i) for i in range(p.n_ops))
            )
        )
    return tuple(out)


Method = Literal["auto", "monolithic", "decomposition"]
AUTO_DECOMPOSE_OPTIONS = 20_000


def solve_fleet(
    fp: FleetProblem,
    options: SolverOptions | None = None,
    *,
    method: Method = "auto",
    warm_start: Choices | None = None,
    use_greedy: bool = True,
    on_progress: OnProgress | None = None,
    progress: Callable[[str], None] | None = None,
) -> FleetResult:
    """Plan the fleet: cheapest placement, configurations and pool sizes for all tenants.

    Parameters
    ----------
    fp
        The fleet problem.
    options
        ``backend`` (``highs``, ``cbc`` or ``cpsat``), time limit, gap, threads, seed.
    method
        ``monolithic`` solves the whole fleet model with ``options.backend``;
        ``decomposition`` runs :mod:`hetopt.fleet.decomposition` (the backend solves its
        subproblems); ``auto`` decomposes fleets with more than 20,000 options.
    warm_start
        A previous plan of this fleet (e.g. a neighbouring what-if point) to start from; when
        given together with the greedy plan, the cheaper feasible one is used.
    use_greedy
        Run the greedy heuristic first (the first feasible plan and the default MIP start).
    on_progress
        Called with incumbent and bound as the solver improves them (HiGHS, CP-SAT).
    progress
        Optional callback receiving one short line per stage.

    Returns
    -------
    FleetResult
        Status ``infeasible`` when no plan exists (see :func:`explain_shortage`).
    """
    options = options or SolverOptions()
    say = progress or (lambda _msg: None)
    backend = options.backend.lower()
    if backend not in FLEET_BACKENDS:
        raise InputError(
            f"Fleet planning supports solver.backend in {list(FLEET_BACKENDS)}, "
            f"got '{options.backend}' (bruteforce: `hetopt.fleet.heuristics."
            f"exhaustive` for tiny fleets)."
        )
    t0 = time.perf_counter()
    start: Choices | None = None
    start_obj = math.nan
    first = math.nan
    if use_greedy:
        say(f"greedy start for {fp.n_tenants} tenants, {fp.n_ops} operators")
        g = heuristics.greedy(fp)
        if g.choices is not None:
            start, start_obj, first = g.choices, g.objective_usd_per_h, time.perf_counter() - t0
    if warm_start is not None:
        ev = evaluate_fleet(fp, warm_start)
        if ev.feasible and not ev.objective_usd_per_h >= start_obj:
            start, start_obj = warm_start, ev.objective_usd_per_h
            if not math.isfinite(first):
                first = time.perf_counter() - t0
    if method == "auto":
        method = "decomposition" if fp.n_options > AUTO_DECOMPOSE_OPTIONS else "monolithic"
    if method == "decomposition":
        return _decomposed(fp, options, start, start_obj, first, t0, on_progress, say)
    if method != "monolithic":
        raise InputError(
            f"fleet method must be 'auto', 'monolithic' or 'decomposition', got {method!r}."
        )
    say(f"building the {backend} model: {fp.n_options:,} options, {fp.n_devices} device types")
    t_build = time.perf_counter()
    first_seen: list[float] = []

    def report(p: SolveProgress) -> None:
        if not first_seen:
            first_seen.append(time.perf_counter() - t0)
        if on_progress is not None:
            on_progress(p)

    deadline = Deadline(t0 + options.time_limit_s, options.time_limit_s)
    notes: list[str] = []
    status, bound, message = SolveStatus.NO_SOLUTION, math.nan, ""
    choices: Choices | None = None
    # With a plan in hand, building stops at the deadline; without one, the solver gets its
    # minimum slice after the build, however long that took.
    build_deadline = deadline if start is not None else None
    interrupted = False
    try:
        if backend == "cpsat":
            # The relaxed rounding: its bound is valid for the exact fleet (see
            # hetopt.models.scaling); its plan is checked against the exact evaluation below.
            cp = build_cpsat(fp, sc.RELAXED, build_deadline)
        else:
            model = build_milp(fp, deadline=build_deadline)
        if build_deadline is not None and deadline.expired:
            raise BuildInterrupted
    except BuildInterrupted:
        interrupted = True
        notes.append(
            f"the time limit solver.time_limit_s={options.time_limit_s:g} passed while "
            f"building the {backend} model ({time.perf_counter() - t0:.1f} s with the "
            f"greedy start), so the greedy start is returned with no bound; raise the "
            f"limit or use fleet.method=decomposition"
        )
    build_s = time.perf_counter() - t_build
    if interrupted:
        pass  # the greedy start stands, with no bound (the note above says why)
    elif backend == "cpsat":
        if start is not None:
            _hint_cpsat(cp, start)
        notes.append(deadline.overrun_note("the greedy start and building the model"))
        say("solving with cpsat")
        status, _, bound, choices, _, message = _run_cpsat(
            cp, fp, options, deadline.slice_s(), report
        )
        if choices is not None and not _exact_feasible(fp, choices):
            notes.append(
                "the relaxed integer model's plan misses an SLA or a capacity by its rounding"
            )
            choices = None
            if not deadline.expired:
                say("re-solving with the conservative rounding")
                try:
                    safe = build_cpsat(fp, sc.CONSERVATIVE, build_deadline)
                    if start is not None:
                        _hint_cpsat(safe, start)
                    _, _, _, choices, _, _ = _run_cpsat(
                        safe, fp, options, deadline.slice_s(), lambda _p: None
                    )
                except BuildInterrupted:
                    pass  # out of time: choices stays None, reported as no solution
                if choices is not None and not _exact_feasible(fp, choices):
                    choices = None
            status = SolveStatus.FEASIBLE if choices is not None else SolveStatus.NO_SOLUTION
    else:
        if start is not None:
            _set_milp_start(model, fp, start)
        notes.append(deadline.overrun_note("the greedy start and building the model"))
        say(f"solving with {backend}")
        run = run_highs if backend == "highs" else run_cbc
        status, _, bound, message = run(model.prob, options, start is not None, report, deadline)
        if status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
            choices = _pick(fp, [np.array([v.varValue or 0.0 for v in xt]) for xt in model.x])
    solve_s = time.perf_counter() - t_build - build_s
    if first_seen and not math.isfinite(first):
        first = first_seen[0]
    if status is SolveStatus.OPTIMAL and not math.isfinite(bound):
        bound = math.nan  # a solver that proves optimality reports its bound; never invent one
    evaluation = None
    obj = math.nan
    if choices is not None:
        # The pools the plan needs, not the solver's: a MILP stopped early may hold spare
        # devices, and the relaxed CP-SAT model rounds loads down.
        evaluation = evaluate_fleet(fp, choices)
        if not evaluation.feasible and start is not None:
            # A solver's tolerance should never give an infeasible plan; keep the verified start.
            notes.append("the solver's plan failed verification, the greedy start is returned")
            choices = start
            evaluation = evaluate_fleet(fp, choices)
        elif start is not None and start_obj < evaluation.objective_usd_per_h - 1e-9:
            # HiGHS may drop a MIP start it cannot complete and stop at the time limit with
            # a worse incumbent of its own; the start stays the better plan.
            notes.append("the solver's incumbent was worse than its start, the start is kept")
            choices = start
            evaluation = evaluate_fleet(fp, choices)
    elif start is not None and status is not SolveStatus.INFEASIBLE:
        # Time limit before the solver reported its own plan: the start is the incumbent.
        if not interrupted:
            notes.append(
                "no plan of the solver's own by the time limit: the greedy start is returned"
            )
        choices, evaluation = start, evaluate_fleet(fp, start)
    if evaluation is not None:
        obj = evaluation.objective_usd_per_h  # always the exact value, never the solver's
    gap = relative_gap(obj, bound)
    if choices is not None:
        status = proven_status(gap, options.gap_rel)
    message = "; ".join(n for n in [message, *notes] if n)
    return FleetResult(
        backend,
        status,
        obj,
        bound,
        gap,
        choices,
        None if evaluation is None else tuple(int(v) for v in evaluation.pool_counts),
        evaluation,
        build_s,
        solve_s,
        first,
        start_obj,
        message,
    )


def proven_status(gap: float, gap_rel: float) -> SolveStatus:
    """``optimal`` when the plan is proven within ``gap_rel`` of a known bound, else
    ``feasible`` (a plan whose distance from the optimum is unknown or larger)."""
    if math.isfinite(gap) and gap <= gap_rel + 1e-9:
        return SolveStatus.OPTIMAL
    return SolveStatus.FEASIBLE


def _hint_cpsat(cp: FleetCpsat, choices: Choices) -> None:
    for xt, choice in zip(cp.x, choices, strict=True):
        chosen = set(choice)
        for o, var in enumerate(xt):
            cp.model.add_hint(var, o in chosen)


def _exact_feasible(fp: FleetProblem, choices: Choices) -> bool:
    """The exact evaluation accepts the plan, with no latency allowance (a relaxed-rounding
    plan may exceed an SLA by nanoseconds, which :func:`evaluate_fleet` forgives)."""
    ev = evaluate_fleet(fp, choices)
    if not ev.feasible:
        return False
    return all(
        p.sla.e2e_s is None or not p.sla.hard or e2e <= p.sla.e2e_s
        for p, e2e in zip(fp.tenants, ev.tenant_e2e_s, strict=True)
    )


def _decomposed(
    fp: FleetProblem,
    options: SolverOptions,
    start: Choices | None,
    start_obj: float,
    first: float,
    t0: float,
    on_progress: OnProgress | None,
    say: Callable[[str], None],
) -> FleetResult:
    t_solve = time.perf_counter()
    res = solve_decomposed(
        fp,
        options,
        start=start,
        deadline_s=t0 + options.time_limit_s,
        on_progress=on_progress,
        progress=say,
    )
    solve_s = time.perf_counter() - t_solve
    evaluation = None if res.choices is None else evaluate_fleet(fp, res.choices)
    status = res.status
    if res.infeasible_tenant is not None:
        message = f"tenant '{res.infeasible_tenant}' meets its SLA on no device mix"
    else:
        message = f"{res.iterations} rounds, {res.subproblems} subproblems"
    if not math.isfinite(first) and res.choices is not None:
        first = time.perf_counter() - t0
    # No complete round by the deadline: no bound is known (not -inf).
    bound = res.bound_usd_per_h if math.isfinite(res.bound_usd_per_h) else math.nan
    gap = relative_gap(res.objective_usd_per_h, bound)
    if res.choices is not None:
        status = proven_status(gap, options.gap_rel)
    return FleetResult(
        f"decomposition/{options.backend.lower()}",
        status,
        res.objective_usd_per_h,
        bound,
        gap,
        res.choices,
        None if evaluation is None else tuple(int(v) for v in evaluation.pool_counts),
        evaluation,
        0.0,
        solve_s,
        first,
        start_obj,
        message,
    )


def _run_cpsat(
    cp: FleetCpsat,
    fp: FleetProblem,
    options: SolverOptions,
    time_limit_s: float,
    report: OnProgress,
) -> tuple[SolveStatus, float, float, Choices | None, tuple[int, ...] | None, str]:
    solver = cp_model.CpSolver()
    p = solver.parameters
    p.max_time_in_seconds = time_limit_s
    p.num_workers = options.threads
    p.random_seed = options.seed
    p.relative_gap_limit = options.gap_rel
    p.log_search_progress = options.verbose

    class _Cb(cp_model.CpSolverSolutionCallback):
        def on_solution_callback(self) -> None:
            report(
                SolveProgress(
                    "cpsat",
                    self.wall_time,
                    self.objective_value * cp.objective_scale,
                    self.best_objective_bound * cp.objective_scale,
                )
            )

    code = solver.solve(cp.model, _Cb())
    status = STATUS_MAP.get(code, SolveStatus.ERROR)
    if status is SolveStatus.INFEASIBLE and not cp.scaling.relaxed:
        status = SolveStatus.NO_SOLUTION  # the conservative model may cut every exact plan
    if status not in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
        # Without a plan, the relaxed model's bound still holds (e.g. for the greedy start).
        bound = solver.best_objective_bound * cp.objective_scale
        keep = cp.scaling.relaxed and status is SolveStatus.NO_SOLUTION and math.isfinite(bound)
        return (status, math.nan, bound if keep else math.nan, None, None, solver.status_name(code))
    choices = _pick(fp, [np.array([solver.value(v) for v in xt], dtype=float) for xt in cp.x])
    pools = tuple(int(solver.value(v)) for v in cp.n)
    return (
        status,
        solver.objective_value * cp.objective_scale,
        solver.best_objective_bound * cp.objective_scale,
        choices,
        pools,
        solver.status_name(code),
    )


def explain_shortage(
    fp: FleetProblem, options: SolverOptions | None = None
) -> InfeasibleError | None:
    """Why the fleet has no plan: the pools short of devices and by how much, or the tenant
    whose SLA no device meets.

    Solves the elastic fleet MILP: every tenant's SLA kept, the inventory allowed to be
    exceeded, the total excess minimised. Its answer is the smallest purchase that makes the
    fleet feasible. Returns None when nothing is short (the fleet is feasible).
    """
    options = options or SolverOptions()
    model = build_milp(fp, objective="shortage")
    status, _, _, message = run_highs(model.prob, replace(options, backend="highs"))
    if status not in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
        from hetopt.pipeline import explain_infeasible
        from hetopt.solvers import solve

        for cls in np.unique(fp.tenant_class):
            t = int(np.flatnonzero(fp.tenant_class == cls)[0])
            alone = fp.tenants[t]
            if solve(alone, options).status is SolveStatus.INFEASIBLE:
                why = explain_infeasible(alone, options)
                return InfeasibleError(
                    f"Fleet '{fp.name}': tenant '{fp.tenant_names[t]}' has no plan even with "
                    f"unlimited devices. {why} Set it in the fleet file as the tenant's "
                    f"sla: {{e2e_s: ...}}.",
                    tightest_e2e_s=why.tightest_e2e_s,
                )
        return InfeasibleError(
            f"Fleet '{fp.name}' has no plan even with unlimited devices ({message}): the "
            f"pooled operators' resident models do not fit device memory together. Add "
            f"devices with more memory or split the fleet."
        )
    assert model.short is not None
    short = [
        (fp.devices[j], math.ceil((v.varValue or 0.0) - 1e-6), int(fp.device_inventory[j]))
        for j, v in enumerate(model.short)
        if (v.varValue or 0.0) > 1e-6
    ]
    if not short:
        return None
    pools = "; ".join(
        f"{dev}: short by {s} (has {have}, needs {have + s})" for dev, s, have in short
    )
    fixes = " ".join(f"+hardware.inventory.{dev}={have + s}" for dev, s, have in short)
    return InfeasibleError(
        f"The inventory cannot host fleet '{fp.name}' ({fp.n_tenants} tenants) within their "
        f"SLAs. Pools short of devices, with the fewest extra devices that make it feasible: "
        f"{pools}. Raise the inventory ({fixes}), add other device types, lower the request "
        f"rates or relax the SLAs.",
    )
