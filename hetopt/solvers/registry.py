"""One registry for every backend, serving both ``solve(problem, options)`` and the fleet.

Backends load when first asked for (OR-Tools and PuLP take most of a second to import), so
importing :mod:`hetopt.solvers` for its data types loads no solver. A request is checked
against the backend's declared :class:`~hetopt.solvers.backend.Capabilities` before any model
is built (:func:`require`). A single agent is then solved by the driver of the backend's
formulation: build the model, run the backend, decode the plan, report the exact objective.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterator, Mapping

from hetopt.errors import InputError, UnknownNameError
from hetopt.models import Objective
from hetopt.problem import PlacementProblem
from hetopt.solvers.backend import (
    Backend,
    Driver,
    Formulation,
    Request,
    SolveCall,
    hints_for,
    refusal,
)
from hetopt.solvers.base import (
    Deadline,
    OnProgress,
    SolveResult,
    SolverOptions,
    WarmStart,
)


def _highs() -> Backend:
    from hetopt.solvers.pulp_backend import HighsBackend

    return HighsBackend()


def _cbc() -> Backend:
    from hetopt.solvers.pulp_backend import CbcBackend

    return CbcBackend()


def _cpsat() -> Backend:
    from hetopt.solvers.cpsat_backend import CpsatBackend

    return CpsatBackend()


def _bruteforce() -> Backend:
    from hetopt.solvers.bruteforce import BruteforceBackend

    return BruteforceBackend()


_LOADERS: dict[str, Callable[[], Backend]] = {
    "highs": _highs,
    "cbc": _cbc,
    "cpsat": _cpsat,
    "bruteforce": _bruteforce,
}


class _Registry(Mapping[str, Backend]):
    """``{name: backend}``, each backend loaded on first access."""

    def __init__(self, loaders: Mapping[str, Callable[[], Backend]]) -> None:
        self._loaders = dict(loaders)
        self._loaded: dict[str, Backend] = {}

    def __getitem__(self, name: str) -> Backend:
        if name not in self._loaded:
            self._loaded[name] = self._loaders[name]()
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaders)

    def __len__(self) -> int:
        return len(self._loaders)


BACKENDS: Mapping[str, Backend] = _Registry(_LOADERS)
"""Every backend by its ``solver.backend`` name (loaded on first access)."""


def available_backends() -> tuple[str, ...]:
    """Names accepted by ``solver.backend``.

    >>> available_backends()
    ('highs', 'cbc', 'cpsat', 'bruteforce')
    """
    return tuple(BACKENDS)


def get_backend(name: str) -> Backend:
    """The backend called ``name`` (any case).

    Raises
    ------
    UnknownNameError
        When no backend has that name; the message lists them and the closest.
    """
    key = name.lower()
    if key not in BACKENDS:
        close = difflib.get_close_matches(name, list(BACKENDS), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise UnknownNameError(
            f"Unknown solver backend 'solver.backend={name}'. Choose one of "
            f"{list(BACKENDS)} (e.g. `solver=cpsat`).{hint}"
        )
    return BACKENDS[key]


def require(name: str, request: Request, alternative: str = "") -> Backend:
    """The backend called ``name``, checked to serve ``request`` before anything is built.

    Parameters
    ----------
    name
        ``solver.backend``.
    request
        What the solve needs (objective, fleet, instance size).
    alternative
        A further fix to suggest, besides the backends that can serve the request.

    Raises
    ------
    UnknownNameError
        Unknown backend.
    InputError
        The backend's capabilities do not cover the request; the message names
        ``solver.backend`` and the backends whose capabilities do.

    Examples
    --------
    >>> require("bruteforce", Request(fleet=True))
    Traceback (most recent call last):
    ...
    hetopt.errors.InputError: solver.backend=bruteforce cannot plan a fleet. Use a backend ...
    """
    backend = get_backend(name)
    why = refusal(backend.name, backend.capabilities, request)
    if why is None:
        return backend
    able = [
        f"solver={n}" for n in BACKENDS if refusal(n, BACKENDS[n].capabilities, request) is None
    ]
    fix = f"Use a backend that can: {', '.join(able)}" if able else "No backend can"
    raise InputError(f"{why}. {fix}{alternative}.")


def _milp_driver() -> Driver:
    from hetopt.solvers.pulp_backend import solve_milp

    return solve_milp


def _cpsat_driver() -> Driver:
    from hetopt.solvers.cpsat_backend import solve_cpsat

    return solve_cpsat


def _enumeration_driver() -> Driver:
    from hetopt.solvers.bruteforce import solve_enumerated

    return solve_enumerated


DRIVERS: dict[Formulation, Callable[[], Driver]] = {
    "milp": _milp_driver,
    "cpsat": _cpsat_driver,
    "enumeration": _enumeration_driver,
}
"""The single-agent driver of each formulation (loaded when used)."""


def assignments(problem: PlacementProblem) -> int:
    """How many assignments the problem has (what enumeration would visit).

    >>> from hetopt.testing import CONFORMANCE
    >>> assignments(CONFORMANCE["worked_example"].build())
    4
    """
    return math.prod(len(problem.options_of(i)) for i in range(problem.n_ops))


def solve(
    problem: PlacementProblem,
    options: SolverOptions,
    objective: Objective = "cost",
    *,
    warm_start: WarmStart | None = None,
    on_progress: OnProgress | None = None,
    deadline: Deadline | None = None,
) -> SolveResult:
    """Solve ``problem`` with the backend named in ``options.backend``.

    Parameters
    ----------
    problem
        The placement problem.
    options
        Solver settings; ``options.backend`` picks the backend.
    objective
        ``cost`` (TCO under the SLA) or ``latency`` (fastest plan, SLA ignored).
    warm_start
        A previous plan to hint the search with (backends that declare ``warm_start``: HiGHS,
        CBC and CP-SAT; the others are not given it). A hint changes how fast a proof comes,
        never the optimum.
    on_progress
        Called with the incumbent and bound each time the backend improves them (backends
        that declare ``progress``: HiGHS and CP-SAT).
    deadline
        The wall-clock budget, model building included; default ``options.time_limit_s`` from
        the call. A caller solving many problems under one limit passes its own.

    Returns
    -------
    SolveResult
        Never None: infeasible or timed-out solves carry their status and termination.

    Raises
    ------
    UnknownNameError
        Unknown ``solver.backend``.
    InputError
        The backend cannot serve the request (e.g. brute force on a large instance).
    """
    size = assignments(problem)
    backend = require(
        options.backend, Request(objective, fleet=False, assignments=size), " for this workload"
    )
    caps = backend.capabilities
    warm_start, on_progress = hints_for(caps, warm_start, on_progress)
    call = SolveCall(
        problem,
        options,
        deadline or Deadline.after(options.time_limit_s),
        objective,
        warm_start,
        on_progress,
    )
    return DRIVERS[caps.formulation]()(call, backend)
