"""One factory for every backend: ``solve(problem, options)``.

Each backend's module (and its solver library: PuLP, OR-Tools) is imported on the backend's
first call, so importing :mod:`hetopt.solvers` loads no solver.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from functools import partial

from hetopt.errors import UnknownNameError
from hetopt.problem import PlacementProblem
from hetopt.solvers.base import (
    Deadline,
    Objective,
    OnProgress,
    SolveResult,
    SolverOptions,
    WarmStart,
)

Backend = Callable[..., SolveResult]


def _on_first_call(module: str, function: str) -> Backend:
    """``hetopt.solvers.<module>.<function>``, imported when the backend first runs."""

    def run(*args: object, **kwargs: object) -> SolveResult:
        backend: Backend = getattr(importlib.import_module(f"hetopt.solvers.{module}"), function)
        return backend(*args, **kwargs)

    run.__name__ = run.__qualname__ = function
    return run


BACKENDS: dict[str, Backend] = {
    "highs": partial(_on_first_call("pulp_backend", "solve_milp"), backend="highs"),
    "cbc": partial(_on_first_call("pulp_backend", "solve_milp"), backend="cbc"),
    "cpsat": _on_first_call("cpsat_backend", "solve_cpsat"),
    "bruteforce": _on_first_call("bruteforce", "solve_bruteforce"),
}


def available_backends() -> tuple[str, ...]:
    """Names accepted by ``solver.backend``."""
    return tuple(BACKENDS)


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
        A previous plan to hint the search with (HiGHS, CBC and CP-SAT; ``bruteforce`` ignores
        it). A hint changes how fast a proof comes, never the optimum.
    on_progress
        Called with the incumbent and bound each time the backend improves them (HiGHS and
        CP-SAT).
    deadline
        The wall-clock budget, model building included; default ``options.time_limit_s`` from
        the call. A caller solving many problems under one limit passes its own.

    Returns
    -------
    SolveResult
        Never None: infeasible or timed-out solves carry their status.
    """
    try:
        backend = BACKENDS[options.backend.lower()]
    except KeyError:
        close = difflib.get_close_matches(options.backend, BACKENDS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise UnknownNameError(
            f"Unknown solver backend 'solver.backend={options.backend}'. Choose one of "
            f"{list(BACKENDS)} (e.g. `solver=cpsat`).{hint}"
        ) from None
    if options.backend.lower() == "bruteforce":
        return backend(problem, options, objective)
    return backend(
        problem,
        options,
        objective,
        warm_start=warm_start,
        on_progress=on_progress,
        deadline=deadline,
    )
