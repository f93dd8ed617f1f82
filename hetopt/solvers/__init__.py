"""Solver backends behind one contract (the design card's ``solvers``).

``solve(problem, options)`` picks the backend named in ``options.backend`` from one registry
(:mod:`hetopt.solvers.registry`): ``highs`` and ``cbc`` run the MILP formulation through PuLP,
``cpsat`` runs the CP-SAT formulation, and ``bruteforce`` enumerates every assignment (tiny
instances; the tests' reference). Each declares its capabilities
(:class:`~hetopt.solvers.backend.Capabilities`), checked before a model is built; the fleet
solves through the same registry. Importing this package loads no solver: OR-Tools and PuLP
load with the first backend used (OR-Tools first, see :mod:`hetopt.solvers.pulp_backend`).
"""

from __future__ import annotations

from hetopt.solvers.backend import Backend, Capabilities, RawSolution, Request
from hetopt.solvers.base import SolveResult, SolverOptions, SolveStatus, Termination
from hetopt.solvers.registry import BACKENDS, available_backends, get_backend, require, solve

__all__ = [
    "BACKENDS",
    "Backend",
    "Capabilities",
    "RawSolution",
    "Request",
    "SolveResult",
    "SolveStatus",
    "SolverOptions",
    "Termination",
    "available_backends",
    "get_backend",
    "require",
    "solve",
]
