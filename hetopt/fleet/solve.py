"""Solve a fleet: greedy first plan, then the exact formulation warm-started from it.

The greedy plan (:func:`hetopt.fleet.heuristics.greedy`) arrives in well under a second and is
verified, so a feasible plan exists before any model is built. The MILP (HiGHS or CBC) or
CP-SAT model then starts from it and returns a plan with a proven bound: the LP-based bound of
HiGHS or CBC, or CP-SAT's. Its gap is always reported, and every plan is re-verified by
:func:`hetopt.fleet.evaluate.evaluate_fleet`.

The backend comes from the same registry as a single agent's (:mod:`hetopt.solvers.registry`),
checked to declare ``fleet`` before anything is built; the result is the same
:class:`~hetopt.solvers.base.SolveResult`, seen through :class:`FleetResult` together with the
plan's re-evaluation.

When no plan fits the inventory, :func:`explain_shortage` solves the elastic model (the fewest
extra devices, SLAs kept) and says which pools are short and by how much.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from hetopt.errors import InfeasibleError, InputError
from hetopt.fleet import heuristics
from hetopt.fleet.decomposition import solve_decomposed
from hetopt.fleet.evaluate import Choices, evaluate_fleet
from hetopt.fleet.models import BuildInterrupted, build_cpsat, build_milp
from hetopt.fleet.problem import FleetProblem
from hetopt.fleet.result import FleetResult, fleet_result, proven_status
from hetopt.models import scaling as sc
from hetopt.models.solution import read_choice
from hetopt.solvers.backend import Backend, RawSolution, Request
from hetopt.solvers.base import (
    Deadline,
    OnProgress,
    SolveProgress,
    SolverOptions,
    SolveStatus,
    Termination,
    ValueReader,
)
from hetopt.solvers.registry import get_backend, require, solve

__all__ = [
    "AUTO_DECOMPOSE_OPTIONS",
    "FLEET_REQUEST",
    "FleetResult",
    "Method",
    "explain_shortage",
    "proven_status",
    "solve_fleet",
]


@dataclass(frozen=True)
class _FleetRequest:
    """What a fleet asks of its backend, and the fix offered when it cannot."""

    request: Request = Request(fleet=True)
    alternative: str = (
        " (for a tiny fleet, `hetopt.fleet.heuristics.exhaustive` enumerates every plan)"
    )

    def check(self, name: str) -> Backend:
        """The backend called ``name``, refused (InputError) unless it can plan a fleet."""
        return require(name, self.request, self.alternative)


FLEET_REQUEST = _FleetRequest()


Method = Literal["auto", "monolithic", "decomposition"]
AUTO_DECOMPOSE_OPTIONS = 20_000


@dataclass(frozen=True)
class _Start:
    """The plan the search starts from (the cheaper of the greedy plan and a given one)."""

    choices: Choices | None
    objective: float
    first_s: float


def _start(
    fp: FleetProblem,
    use_greedy: bool,
    warm_start: Choices | None,
    t0: float,
    say: Callable[[str], None],
) -> _Start:
    choices: Choices | None = None
    obj = first = math.nan
    if use_greedy:
        say(f"greedy start for {fp.n_tenants} tenants, {fp.n_ops} operators")
        g = heuristics.greedy(fp)
        if g.choices is not None:
            choices, obj, first = g.choices, g.objective_usd_per_h, time.perf_counter() - t0
    if warm_start is not None:
        ev = evaluate_fleet(fp, warm_start)
        if ev.feasible and not ev.objective_usd_per_h >= obj:
            choices, obj = warm_start, ev.objective_usd_per_h
            if not math.isfinite(first):
                first = time.perf_counter() - t0
    return _Start(choices, obj, first)


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
        ``backend`` (one whose capabilities declare ``fleet``: ``highs``, ``cbc`` or
        ``cpsat``), time limit, gap, threads, seed.
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

    Raises
    ------
    InputError
        A backend that cannot plan a fleet (``bruteforce``), or an unknown ``method``.
    """
    options = options or SolverOptions()
    say = progress or (lambda _msg: None)
    backend = FLEET_REQUEST.check(options.backend)
    t0 = time.perf_counter()
    start = _start(fp, use_greedy, warm_start, t0, say)
    if method == "auto":
        method = "decomposition" if fp.n_options > AUTO_DECOMPOSE_OPTIONS else "monolithic"
    if method == "decomposition":
        return _decomposed(fp, options, start, t0, on_progress, say)
    if method != "monolithic":
        raise InputError(
            f"fleet method must be 'auto', 'monolithic' or 'decomposition', got {method!r}."
        )
    run = _Monolithic(fp, backend, options, start, t0, on_progress, say)
    run.solve()
    return run.settle()


# --- The monolithic solve ------------------------------------------------------------------


@dataclass(frozen=True)
class _Built:
    """A built fleet model as the backend and the decoder see it."""

    model: Any
    x: list[list[Any]]
    n: list[Any]
    objective_scale: float  # objective units ($/h) per model unit
    rounded: bool  # integer-scaled (CP-SAT): its plan is checked against the exact fleet
    relaxed: bool  # the model's bound holds for the exact fleet
    hint_pools: bool  # the start gives pool sizes too (the MILP's start is a full assignment)
    m: list[Any] = field(default_factory=list)  # shared LLM pools' replicas

    def start_values(self, fp: FleetProblem, choices: Choices) -> dict[Any, float]:
        """Start values for ``choices``: every option on or off, and the pools it needs."""
        out: dict[Any, float] = {}
        for xt, choice in zip(self.x, choices, strict=True):
            chosen = set(choice)
            for o, var in enumerate(xt):
                out[var] = 1.0 if o in chosen else 0.0
        if self.hint_pools:
            ev = evaluate_fleet(fp, choices)
            out.update({var: float(ev.pool_counts[j]) for j, var in enumerate(self.n)})
            out.update({var: float(ev.key_counts[k]) for k, var in enumerate(self.m)})
        return out

    def decode(self, fp: FleetProblem, value: ValueReader) -> Choices:
        """Per tenant the chosen option of each operator."""
        return tuple(read_choice(p, xt, value) for p, xt in zip(fp.tenants, self.x, strict=True))


def _build(
    fp: FleetProblem, backend: Backend, scaling: sc.Scaling, deadline: Deadline | None
) -> _Built:
    """The fleet model of ``backend``'s formulation (CP-SAT: rounded by ``scaling``)."""
    if backend.capabilities.formulation == "cpsat":
        cp = build_cpsat(fp, scaling, deadline)
        return _Built(
            cp.model, cp.x, cp.n, cp.objective_scale, True, cp.scaling.relaxed, False, cp.m
        )
    m = build_milp(fp, deadline=deadline)
    return _Built(m.prob, m.x, m.n, 1.0, False, True, True, m.m)


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


@dataclass
class _Monolithic:
    """One monolithic fleet solve: build, run the backend, decode, then keep the better of
    the solver's plan and the start (:meth:`settle`)."""

    fp: FleetProblem
    backend: Backend
    options: SolverOptions
    start: _Start
    t0: float
    on_progress: OnProgress | None
    say: Callable[[str], None]
    status: SolveStatus = SolveStatus.NO_SOLUTION
    bound: float = math.nan
    raw: RawSolution | None = None
    choices: Choices | None = None
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False
    build_s: float = 0.0
    solve_s: float = 0.0
    first_seen_s: float = math.nan

    def solve(self) -> None:
        """Build the model, then run the backend on it (from the start, if any)."""
        fp, name = self.fp, self.backend.name
        self.say(
            f"building the {name} model: {fp.n_options:,} options, {fp.n_devices} device types"
        )
        t_build = time.perf_counter()
        deadline = Deadline(self.t0 + self.options.time_limit_s, self.options.time_limit_s)
        # With a plan in hand, building stops at the deadline; without one, the solver gets its
        # minimum slice after the build, however long that took.
        build_deadline = deadline if self.start.choices is not None else None
        # CP-SAT: the relaxed rounding, whose bound is valid for the exact fleet (see
        # hetopt.models.scaling); its plan is checked against the exact evaluation below.
        built = self._build(sc.RELAXED, build_deadline)
        if build_deadline is not None and deadline.expired:
            built = None
        self.build_s = time.perf_counter() - t_build
        if built is None:
            self.interrupted = True
            self.notes.append(
                f"the time limit solver.time_limit_s={self.options.time_limit_s:g} passed while "
                f"building the {name} model ({time.perf_counter() - self.t0:.1f} s with the "
                f"greedy start), so the greedy start is returned with no bound; raise the "
                f"limit or use fleet.method=decomposition"
            )
            return  # the greedy start stands, with no bound (the note says why)
        self.notes.append(deadline.overrun_note("the greedy start and building the model"))
        self.say(f"solving with {name}")
        self._run(built, deadline, self._report(built))
        if built.rounded and self.choices is not None and not _exact_feasible(fp, self.choices):
            self._conservative(build_deadline, deadline)
        self.solve_s = time.perf_counter() - t_build - self.build_s

    def _build(self, scaling: sc.Scaling, build_deadline: Deadline | None) -> _Built | None:
        """The model, or None when building passed ``build_deadline``."""
        try:
            return _build(self.fp, self.backend, scaling, build_deadline)
        except BuildInterrupted:
            return None

    def _report(self, built: _Built) -> OnProgress:
        """Progress in $/h, noting when the solver's first incumbent came."""

        def report(p: SolveProgress) -> None:
            if not math.isfinite(self.first_seen_s):
                self.first_seen_s = time.perf_counter() - self.t0
            if self.on_progress is not None:
                scale = built.objective_scale
                self.on_progress(
                    SolveProgress(p.backend, p.elapsed_s, p.incumbent * scale, p.bound * scale)
                )

        return report

    def _run(self, built: _Built, deadline: Deadline, report: OnProgress | None) -> None:
        start = self.start.choices
        caps = self.backend.capabilities
        raw = self.backend.run(
            built.model,
            self.options,
            deadline,
            report if caps.progress else None,
            built.start_values(self.fp, start) if start is not None and caps.warm_start else None,
        )
        self.raw, self.status = raw, raw.status
        if raw.status is SolveStatus.INFEASIBLE and not built.relaxed:
            self.status = SolveStatus.NO_SOLUTION  # the conservative model may cut every plan
        bound = raw.bound * built.objective_scale
        if raw.has_solution and raw.value is not None:
            self.choices = built.decode(self.fp, raw.value)
        if not built.rounded or self.choices is not None:
            self.bound = bound
        elif built.relaxed and self.status is SolveStatus.NO_SOLUTION and math.isfinite(bound):
            self.bound = bound  # without a plan, the relaxed model's bound still holds

    def _conservative(self, build_deadline: Deadline | None, deadline: Deadline) -> None:
        """The relaxed plan misses an SLA or a capacity by its rounding: ask the conservative
        model for a plan (the relaxed run's bound stays)."""
        self.notes.append(
            "the relaxed integer model's plan misses an SLA or a capacity by its rounding"
        )
        self.choices = None
        first, bound = self.raw, self.bound
        if not deadline.expired:
            self.say("re-solving with the conservative rounding")
            safe = self._build(sc.CONSERVATIVE, build_deadline)
            if safe is not None:  # else out of time: no solution
                self._run(safe, deadline, lambda _p: None)
                if self.choices is not None and not _exact_feasible(self.fp, self.choices):
                    self.choices = None
        self.raw, self.bound = first, bound
        self.status = SolveStatus.FEASIBLE if self.choices is not None else SolveStatus.NO_SOLUTION

    def settle(self) -> FleetResult:
        """The verified plan: the solver's, or the start where the solver's is missing,
        unverified or worse."""
        fp, start = self.fp, self.start
        choices, notes = self.choices, self.notes
        evaluation = None
        if choices is not None:
            # The pools the plan needs, not the solver's: a MILP stopped early may hold spare
            # devices, and the relaxed CP-SAT model rounds loads down.
            evaluation = evaluate_fleet(fp, choices)
            if not evaluation.feasible and start.choices is not None:
                # A solver's tolerance should never give an infeasible plan; keep the start.
                notes.append("the solver's plan failed verification, the greedy start is returned")
                choices, evaluation = start.choices, evaluate_fleet(fp, start.choices)
            elif (
                start.choices is not None
                and start.objective < evaluation.objective_usd_per_h - 1e-9
            ):
                # HiGHS may drop a MIP start it cannot complete and stop at the time limit with
                # a worse incumbent of its own; the start stays the better plan.
                notes.append("the solver's incumbent was worse than its start, the start is kept")
                choices, evaluation = start.choices, evaluate_fleet(fp, start.choices)
        elif start.choices is not None and self.status is not SolveStatus.INFEASIBLE:
            # Time limit before the solver reported its own plan: the start is the incumbent.
            if not self.interrupted:
                notes.append(
                    "no plan of the solver's own by the time limit: the greedy start is returned"
                )
            choices, evaluation = start.choices, evaluate_fleet(fp, start.choices)
        first = start.first_s if math.isfinite(start.first_s) else self.first_seen_s
        text = self.raw.solver_status_text if self.raw is not None else ""
        return fleet_result(
            self.backend.name,
            self.status,
            _termination(self.raw),
            text,
            math.nan if evaluation is None else evaluation.objective_usd_per_h,
            self.bound,
            choices,
            evaluation,
            self.options.gap_rel,
            "; ".join(n for n in [text, *notes] if n),
            (self.build_s, self.solve_s, first, start.objective),
        )


def _termination(raw: RawSolution | None) -> Termination:
    """Why the fleet solve stopped, before :func:`_result` knows whether it is proven: the
    solver's reason (the time limit when building left it no run)."""
    return Termination.TIME_LIMIT if raw is None else raw.termination


def _decomposed(
    fp: FleetProblem,
    options: SolverOptions,
    start: _Start,
    t0: float,
    on_progress: OnProgress | None,
    say: Callable[[str], None],
) -> FleetResult:
    t_solve = time.perf_counter()
    res = solve_decomposed(
        fp,
        options,
        start=start.choices,
        deadline_s=t0 + options.time_limit_s,
        on_progress=on_progress,
        progress=say,
    )
    solve_s = time.perf_counter() - t_solve
    evaluation = None if res.choices is None else evaluate_fleet(fp, res.choices)
    if res.infeasible_tenant is not None:
        message = f"tenant '{res.infeasible_tenant}' meets its SLA on no device mix"
    else:
        message = f"{res.iterations} rounds, {res.subproblems} subproblems"
    first = start.first_s
    if not math.isfinite(first) and res.choices is not None:
        first = time.perf_counter() - t0
    # No complete round by the deadline: no bound is known (not -inf).
    bound = res.bound_usd_per_h if math.isfinite(res.bound_usd_per_h) else math.nan
    if res.status is SolveStatus.INFEASIBLE:
        termination = Termination.INFEASIBLE
    elif time.perf_counter() >= t0 + options.time_limit_s:
        termination = Termination.TIME_LIMIT
    else:
        termination = Termination.ITERATION_LIMIT
    return fleet_result(
        f"decomposition/{options.backend.lower()}",
        res.status,
        termination,
        message,
        res.objective_usd_per_h,
        bound,
        res.choices,
        evaluation,
        options.gap_rel,
        message,
        (0.0, solve_s, first, start.objective),
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
    highs = replace(options, backend="highs")
    raw = get_backend("highs").run(model.prob, highs, Deadline.after(highs.time_limit_s))
    if not raw.has_solution:
        from hetopt.pipeline import explain_infeasible

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
            f"Fleet '{fp.name}' has no plan even with unlimited devices ({raw.solver_status_text}): the "
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
