"""The solver contract: what a backend declares, what it is given, what it gives back.

A backend (HiGHS, CBC, CP-SAT, brute force) runs a *built* model and returns a
:class:`RawSolution`: a two-level status (:class:`~hetopt.solvers.base.SolveStatus` and
:class:`~hetopt.solvers.base.Termination`), the solver's own status words, the model's objective
and bound in the model's units, and a reader for the values of its variables. Building the model
and decoding a plan from those values is the formulation's job (:mod:`hetopt.models`,
:mod:`hetopt.fleet.models`); the backend never sees a placement problem.

Each backend declares its :class:`Capabilities`, as linopy's ``Solver.features`` or cvxpy's
``can_solve``. :func:`refusal` checks a :class:`Request` against them before any model is built,
so that asking for something a backend cannot do (a fleet from brute force, an instance too large
to enumerate) is an input error naming the key and the backends that can, not a failure deep in a
solve. Hints (a warm start, progress reports) change how fast an answer comes, never the answer:
a backend without them is simply not given them (:func:`hints_for`).

Examples
--------
>>> caps = Capabilities("enumeration", max_assignments=100)
>>> refusal("bruteforce", caps, Request(fleet=True))
'solver.backend=bruteforce cannot plan a fleet'
>>> refusal("bruteforce", caps, Request(assignments=1_000))
'solver=bruteforce would enumerate 1,000 assignments (limit 100)'
>>> refusal("bruteforce", caps, Request(assignments=10)) is None
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from hetopt.models import Objective
from hetopt.problem import PlacementProblem
from hetopt.solvers.base import (
    Deadline,
    OnProgress,
    SolveResult,
    SolverOptions,
    SolveStatus,
    Termination,
    ValueReader,
    WarmStart,
)

Formulation = Literal["milp", "cpsat", "enumeration"]
"""The model a backend runs: a PuLP MILP, a CP-SAT integer model, or the enumeration of every
assignment (brute force, which needs no model)."""

WarmValues = Mapping[Any, float]
"""A warm start as a backend takes it: a start value per model variable (the formulation turns
a plan into these)."""


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared once next to it and checked before a model is built.

    Attributes
    ----------
    formulation
        The model it runs (:data:`Formulation`).
    warm_start
        Starts from a given plan (a MIP start, CP-SAT hints).
    progress
        Reports each improving incumbent and the bound while it runs.
    latency_objective
        Minimises end-to-end latency (used to explain an infeasible SLA).
    fleet
        Solves the fleet model (every tenant stacked on shared pools).
    integer_scaling
        Works on integers only, so the problem's floats are rounded and the result records
        the resolution (:mod:`hetopt.models.scaling`).
    max_assignments
        The largest instance it takes, in assignments to enumerate (None: no limit).
    """

    formulation: Formulation
    warm_start: bool = False
    progress: bool = False
    latency_objective: bool = True
    fleet: bool = False
    integer_scaling: bool = False
    max_assignments: int | None = None


@dataclass(frozen=True)
class Request:
    """What a solve needs from its backend (checked by :func:`refusal`).

    Attributes
    ----------
    objective
        ``cost`` or ``latency``.
    fleet
        A fleet model rather than one agent's.
    assignments
        The instance's number of assignments (product of options per operator), when known.
    """

    objective: Objective = "cost"
    fleet: bool = False
    assignments: int | None = None


def refusal(name: str, caps: Capabilities, request: Request) -> str | None:
    """Why backend ``name`` cannot serve ``request``, or None when it can."""
    if request.fleet and not caps.fleet:
        return f"solver.backend={name} cannot plan a fleet"
    if request.objective == "latency" and not caps.latency_objective:
        return f"solver.backend={name} cannot minimise latency"
    limit = caps.max_assignments
    if limit is not None and request.assignments is not None and request.assignments > limit:
        return (
            f"solver={name} would enumerate {request.assignments:,} assignments (limit {limit:,})"
        )
    return None


def hints_for(
    caps: Capabilities, warm_start: object | None, on_progress: OnProgress | None
) -> tuple[Any, OnProgress | None]:
    """The warm start and progress callback a backend with ``caps`` is given: each only when
    the backend takes it (a hint never changes the answer, so it is dropped, not refused).

    >>> hints_for(Capabilities("enumeration"), "start", print)
    (None, None)
    """
    return (
        warm_start if caps.warm_start else None,
        on_progress if caps.progress else None,
    )


@dataclass(frozen=True)
class RawSolution:
    """What a backend returns: the solver's answer about the model it ran, in model units.

    Attributes
    ----------
    status, termination
        The two-level status; ``optimal`` only when the solver proved its model optimal.
    solver_status_text
        The solver's own words for how it ended.
    objective
        The model's objective at the returned solution (``nan`` without one), in the model's
        units (CP-SAT: integer steps; the formulation knows the scale).
    bound
        The solver's bound on the model's optimum (``nan`` when none is known).
    runtime_s
        Wall-clock time of the run.
    value
        Reads a variable of the solution; None without one.
    """

    status: SolveStatus
    termination: Termination
    solver_status_text: str
    objective: float
    bound: float
    runtime_s: float
    value: ValueReader | None = field(default=None, repr=False, compare=False)

    @property
    def has_solution(self) -> bool:
        """True when the solver returned a solution to read."""
        return self.value is not None and self.status in (
            SolveStatus.OPTIMAL,
            SolveStatus.FEASIBLE,
        )


@dataclass(frozen=True)
class SolveCall:
    """One single-agent solve, as the registry hands it to its formulation's driver.

    Attributes
    ----------
    problem
        The placement problem.
    options
        Solver settings.
    deadline
        The wall-clock budget, model building included.
    objective
        ``cost`` or ``latency``.
    warm_start
        A plan to start from (None when the backend takes none).
    on_progress
        Called with each improving plan's exact value (None when the backend reports none).
    """

    problem: PlacementProblem
    options: SolverOptions
    deadline: Deadline
    objective: Objective = "cost"
    warm_start: WarmStart | None = None
    on_progress: OnProgress | None = None


@runtime_checkable
class Backend(Protocol):
    """A solver behind the contract: a name, its capabilities, and ``run``.

    ``run`` solves a model built for ``capabilities.formulation`` within ``deadline``
    (``deadline.slice_s()`` is its time limit), with ``options`` (gap, threads, seed,
    verbosity). A non-empty ``warm_start`` gives start values per variable; it is written
    into the model (PuLP initial values, CP-SAT hints) and stays there. ``on_progress`` is
    called with each improving incumbent in model units. It never returns None: an
    infeasible or stopped run is a :class:`RawSolution` with its status.
    """

    @property
    def name(self) -> str:
        """The name ``solver.backend`` selects it by."""
        ...

    @property
    def capabilities(self) -> Capabilities:
        """What it can do."""
        ...

    def run(
        self,
        model: Any,
        options: SolverOptions,
        deadline: Deadline,
        on_progress: OnProgress | None = None,
        warm_start: WarmValues | None = None,
    ) -> RawSolution:
        """Solve the built ``model``."""
        ...


Driver = Callable[[SolveCall, Backend], SolveResult]
"""Solves one agent with a backend of one formulation: build the model, run the backend,
decode the plan, report the exact objective."""
