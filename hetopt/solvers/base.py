"""Normalised solver outcome and options shared by every backend (pipeline stage 6).

Each backend maps its native status to :class:`SolveStatus`; an infeasible or timed-out solve is
a :class:`SolveResult` like any other, never ``None``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from hetopt.errors import InputError
from hetopt.models import Objective
from hetopt.problem import PlacementProblem

__all__ = [
    "MIN_SOLVE_SLICE_S",
    "Deadline",
    "Objective",
    "OnProgress",
    "SolveProgress",
    "SolveResult",
    "SolveStatus",
    "SolverOptions",
    "Termination",
    "WarmStart",
    "ValueReader",
    "bound_text",
    "relative_gap",
    "solver_verdict",
]


class SolveStatus(StrEnum):
    """What a solve has to show, in one vocabulary for every backend (the coarse level).

    ``optimal`` is printed only when proven for the exact problem (within ``gap_rel``).
    """

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"  # stopped at a limit with an incumbent: see gap
    INFEASIBLE = "infeasible"
    NO_SOLUTION = "no_solution"  # stopped at a limit before finding any incumbent
    ERROR = "error"


class Termination(StrEnum):
    """Why the solve stopped (the fine level, as linopy's ``TerminationCondition``).

    :class:`SolveStatus` says what a result has; this says why the search ended. The solver's
    own words stay in :attr:`SolveResult.solver_status_text`.

    >>> Termination("time_limit") is Termination.TIME_LIMIT
    True
    """

    OPTIMAL = "optimal"
    """Proven optimal for the exact problem, within ``gap_rel``."""
    INFEASIBLE = "infeasible"
    """Proven to have no plan."""
    INFEASIBLE_OR_UNBOUNDED = "infeasible_or_unbounded"
    """HiGHS's presolve found no plan without deciding which of the two holds."""
    TIME_LIMIT = "time_limit"
    """The time limit (model building included) passed first."""
    ITERATION_LIMIT = "iteration_limit"
    """An iteration limit passed first: HiGHS's, or the rounds of CP-SAT's exact check."""
    INTERRUPTED = "interrupted"
    """The solver was stopped from outside (a process killed past the deadline, Ctrl-C)."""
    INEXACT = "inexact"
    """The solver decided its model, but the model approximates the exact problem (integer
    rounding, a start kept over the solver's plan), so the exact optimum is not proven."""
    ERROR = "error"
    """The solver failed."""
    UNKNOWN = "unknown"
    """The solver gave no reason (e.g. a result read back from a saved plan)."""


@dataclass(frozen=True)
class SolverOptions:
    """Backend-independent solver settings (the Hydra ``solver`` group).

    Attributes
    ----------
    backend
        ``highs``, ``cbc`` (MILP via PuLP), ``cpsat`` (OR-Tools) or ``bruteforce``.
    time_limit_s
        Wall-clock limit; on reaching it the best plan found is returned with its gap.
    gap_rel
        Relative optimality gap at which a solve counts as proven optimal.
    threads
        Worker threads (CP-SAT workers, CBC threads).
    seed
        Random seed, for reproducible runs.
    verbose
        Let the backend print its log.
    """

    backend: str = "highs"
    time_limit_s: float = 60.0
    gap_rel: float = 1e-6
    threads: int = 2
    seed: int = 0
    verbose: bool = False

    def __post_init__(self) -> None:
        if not self.time_limit_s > 0:
            raise InputError(f"solver.time_limit_s must be > 0 seconds, got {self.time_limit_s}.")
        if not 0 <= self.gap_rel < 1:
            raise InputError(f"solver.gap_rel must be in [0, 1), got {self.gap_rel}.")
        if self.threads < 1:
            raise InputError(f"solver.threads must be >= 1, got {self.threads}.")


MIN_SOLVE_SLICE_S = 0.2
"""The least time a solver is given, even when building its model used the whole limit (but
never more than the whole limit): a solver given nothing returns nothing, while 0.2 s is enough
to return its start or a first plan. A solve can thus overrun ``time_limit_s`` by this slice
plus the time to read its answer back."""


@dataclass(frozen=True)
class Deadline:
    """A wall-clock budget counted from the start of a solve, model building included.

    Attributes
    ----------
    end_s
        ``time.perf_counter()`` value at which the budget runs out.
    limit_s
        The budget it was made from (for messages).

    Examples
    --------
    >>> import time
    >>> spent = Deadline(time.perf_counter() - 1.0, 5.0)  # building took longer than 5 s
    >>> spent.expired, spent.slice_s() == MIN_SOLVE_SLICE_S
    (True, True)
    >>> Deadline.after(0.01).slice_s() <= 0.01  # never more than the whole limit
    True
    """

    end_s: float
    limit_s: float

    @classmethod
    def after(cls, limit_s: float) -> Deadline:
        """A deadline ``limit_s`` seconds from now."""
        return cls(time.perf_counter() + limit_s, limit_s)

    def remaining_s(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.end_s - time.perf_counter())

    @property
    def expired(self) -> bool:
        """True once the budget is spent."""
        return self.remaining_s() <= 0.0

    def slice_s(self, share: float = 1.0) -> float:
        """The time limit for the next solver call: ``share`` of what is left, at least
        :data:`MIN_SOLVE_SLICE_S` (or the whole limit, when that is shorter)."""
        return max(self.remaining_s() * share, min(MIN_SOLVE_SLICE_S, self.limit_s), 1e-3)

    def portion(self, share: float) -> Deadline:
        """A deadline ``share`` of the remaining time from now (same ``limit_s``), for a solve
        that must leave time for a later one."""
        return Deadline(time.perf_counter() + self.remaining_s() * share, self.limit_s)

    def overrun_note(self, what: str = "building the model") -> str:
        """A sentence for the result's message when ``what`` used the whole budget, else ''."""
        if not self.expired:
            return ""
        return (
            f"{what} used the whole time limit of {self.limit_s:g} s; the solver got only "
            f"its minimum slice of {min(MIN_SOLVE_SLICE_S, self.limit_s):g} s"
        )


@dataclass(frozen=True)
class SolveResult:
    """What a backend found, in one vocabulary.

    Attributes
    ----------
    backend
        Backend name.
    status
        Normalised termination status.
    objective
        Objective of the returned solution ($/h for ``cost``, seconds for ``latency``);
        ``nan`` without a solution.
    bound
        Best proven bound on the objective of the exact problem (``nan`` if none is known).
    gap
        ``(objective - bound) / |objective|`` (``nan`` when the bound is unknown).
    runtime_s
        Wall-clock solve time.
    choice
        Chosen option index per operator, or None without a solution.
    pool_counts
        Shared-pool devices per device type, or None.
    objective_kind
        ``cost`` or ``latency``.
    resolution
        Integer scaling used (CP-SAT): unit per integer step for each quantity. The status and
        bound hold for the exact problem all the same (see :mod:`hetopt.models.scaling`).
    message
        Native status text and anything worth telling the user.
    termination
        Why the search stopped (the fine level of the status); never None.
    solver_status_text
        The solver's own status words (HiGHS ``Time limit reached``, CBC ``Stopped on time
        limit``, CP-SAT ``FEASIBLE``), or a bracketed note when the solver gave none.
    tenant_choices
        A fleet's plan: per tenant, the option of each operator (None for a single agent,
        whose plan is ``choice``).
    build_s
        Model-building share of ``runtime_s`` where it was measured apart (the fleet), else 0.
    first_feasible_s
        Time from the call to the first verified plan (the fleet; ``nan`` when unknown).
    start_objective
        Objective of the start the search began from (the fleet's greedy plan; ``nan`` if
        none).
    """

    backend: str
    status: SolveStatus
    objective: float
    bound: float
    gap: float
    runtime_s: float
    choice: tuple[int, ...] | None = None
    pool_counts: tuple[int, ...] | None = None
    objective_kind: Objective = "cost"
    resolution: dict[str, float] = field(default_factory=dict)
    message: str = ""
    termination: Termination = Termination.UNKNOWN
    solver_status_text: str = ""
    tenant_choices: tuple[tuple[int, ...], ...] | None = None
    build_s: float = 0.0
    first_feasible_s: float = math.nan
    start_objective: float = math.nan

    def __post_init__(self) -> None:
        # A result made without a reason (e.g. read back from plan.json) takes the one its
        # status implies.
        if self.termination is Termination.UNKNOWN:
            implied = {
                SolveStatus.OPTIMAL: Termination.OPTIMAL,
                SolveStatus.INFEASIBLE: Termination.INFEASIBLE,
            }.get(self.status, Termination.UNKNOWN)
            object.__setattr__(self, "termination", implied)

    @property
    def choices(self) -> tuple[tuple[int, ...], ...] | None:
        """The plan per tenant: a fleet's ``tenant_choices``, or ``(choice,)`` for a single
        agent (a fleet of one); None without a solution."""
        if self.tenant_choices is not None:
            return self.tenant_choices
        return None if self.choice is None else (self.choice,)

    @property
    def has_solution(self) -> bool:
        """True when a plan can be read from this result."""
        return self.choices is not None

    @property
    def proven_optimal(self) -> bool:
        """True when the backend proved optimality (within ``gap_rel``)."""
        return self.status is SolveStatus.OPTIMAL


def _named_assignment(
    problem: PlacementProblem, choice: tuple[int, ...]
) -> dict[str, tuple[str, str]]:
    """``{operator: (device, config)}`` of a choice of one option per operator."""
    return {
        problem.ops[i]: (problem.devices[problem.opt_device[o]], problem.opt_config[o])
        for i, o in enumerate(choice)
    }


@dataclass(frozen=True)
class WarmStart:
    """A plan to start the search from: a previous solve's choices, by name.

    Neighbouring sweep points share operators, devices and configurations, so one point's plan
    is a good first incumbent for the next even when its costs differ. Names that the new
    problem lacks are ignored; backends without hints (``bruteforce``) ignore the whole thing.

    Attributes
    ----------
    assignment
        ``{operator: (device, config)}``.
    pools
        Shared-pool devices per device type.
    """

    assignment: Mapping[str, tuple[str, str]]
    pools: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_result(cls, problem: PlacementProblem, result: SolveResult) -> WarmStart | None:
        """The warm start that reproduces ``result`` (None without a solution)."""
        if result.choice is None:
            return None
        pools = {d: int(n) for d, n in zip(problem.devices, result.pool_counts or (), strict=False)}
        return cls(_named_assignment(problem, result.choice), pools)

    @classmethod
    def fastest(cls, problem: PlacementProblem) -> WarmStart:
        """Every operator on its lowest-latency option; no pool sizes.

        A start any instance has; the solvers repair it where it breaks a limit.

        Parameters
        ----------
        problem
            The placement problem.

        Returns
        -------
        WarmStart
            The first fastest option of each operator, by name.

        Examples
        --------
        >>> from hetopt.testing import CONFORMANCE
        >>> problem = CONFORMANCE["worked_example"].build()
        >>> start = WarmStart.fastest(problem)
        >>> len(start.assignment) == problem.n_ops, start.pools
        (True, {})
        """
        choice = tuple(
            int(o[np.argmin(problem.opt_latency_s[o])])
            for o in (problem.options_of(i) for i in range(problem.n_ops))
        )
        return cls(_named_assignment(problem, choice))

    def options(self, problem: PlacementProblem) -> dict[int, int]:
        """``{operator index: option index}`` for the operators whose choice still exists."""
        wanted = {(op, *self.assignment[op]) for op in problem.ops if op in self.assignment}
        out: dict[int, int] = {}
        for o in range(problem.n_options):
            i = int(problem.opt_op[o])
            key = (problem.ops[i], problem.devices[problem.opt_device[o]], problem.opt_config[o])
            if key in wanted:
                out[i] = o
        return out

    def pool_counts(self, problem: PlacementProblem) -> dict[int, int]:
        """``{device index: pool devices}`` for the device types the problem has."""
        return {j: int(self.pools[d]) for j, d in enumerate(problem.devices) if d in self.pools}


ValueReader = Callable[[Any], float]
"""Reads one variable of a solved model (``solver.value`` for CP-SAT, ``varValue`` for PuLP);
what a formulation decodes its plan from."""


@dataclass(frozen=True)
class SolveProgress:
    """One report of a running solve: the incumbent and bound so far (objective units).

    ``values`` reads the incumbent's variables, during the call only (CP-SAT; None from
    HiGHS), so that a formulation can decode and check the plan before passing it on.
    """

    backend: str
    elapsed_s: float
    incumbent: float
    bound: float
    values: ValueReader | None = field(default=None, repr=False, compare=False)

    @property
    def gap(self) -> float:
        """Relative gap between incumbent and bound."""
        return relative_gap(self.incumbent, self.bound)


OnProgress = Callable[[SolveProgress], None]


def bound_text(bound: float, gap: float, unit: str = "", fmt: str = ",.6g") -> str:
    """``bound 7.6 $/h, gap 0.36%`` when a bound is known; otherwise says that none is.

    >>> bound_text(9.5, 0.05, " $/h")
    'bound 9.5 $/h, gap 5.000%'
    >>> bound_text(float("-inf"), float("nan"))
    'no bound known, so no gap'
    """
    if not (math.isfinite(bound) and math.isfinite(gap)):
        return "no bound known, so no gap"
    return f"bound {bound:{fmt}}{unit}, gap {gap:.3%}"


def solver_verdict(status: object, gap: float) -> str:
    """How a solve ended, claiming no more than was proven.

    >>> solver_verdict("optimal", 0.0)
    'proven optimal'
    >>> solver_verdict("optimal", 0.00355)
    'proven within 0.355% of the optimum'
    >>> solver_verdict("optimal", 4.1e-8)
    'proven within a relative gap of 4.1e-08'
    >>> solver_verdict("feasible", float("nan"))
    'best plan found, not proven optimal'
    """
    st = str(status)
    if st == "optimal":
        if math.isfinite(gap) and gap >= 1e-5:
            return f"proven within {gap:.3%} of the optimum"
        if math.isfinite(gap) and gap > 1e-9:
            return f"proven within a relative gap of {gap:.1e}"
        return "proven optimal"
    if st == "feasible":
        return "best plan found, not proven optimal"
    return st.replace("_", " ")


def relative_gap(objective: float, bound: float) -> float:
    """``|objective - bound| / max(|objective|, tiny)``, or ``nan`` if either is unknown."""
    if not (math.isfinite(objective) and math.isfinite(bound)):
        return math.nan
    return abs(objective - bound) / max(abs(objective), 1e-9)
