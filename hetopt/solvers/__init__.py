"""Solver backends behind one factory (the design card's ``solvers``).

``solve(problem, options)`` picks the backend named in ``options.backend``: ``highs`` and ``cbc``
solve the MILP formulation through PuLP, ``cpsat`` solves the CP-SAT formulation, and
``bruteforce`` enumerates every assignment (tiny instances; the tests' reference).
"""

from __future__ import annotations

from hetopt.solvers.base import SolveResult, SolverOptions, SolveStatus
from hetopt.solvers.registry import BACKENDS, available_backends, solve

__all__ = ["BACKENDS", "SolveResult", "SolveStatus", "SolverOptions", "available_backends", "solve"]
