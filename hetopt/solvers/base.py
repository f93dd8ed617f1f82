"""Normalised solver outcome and options shared by every backend (pipeline stage 6).

Each backend maps its native status to :class:`SolveStatus`; an infeasible or timed-out solve is
a :class:`SolveResult` like any other, never ``None``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from hetopt.errors import InputError

Objective = Literal["cost", "latency"]


class SolveStatus(StrEnum):
    """Termination vocabulary common to all backends."""

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"  # stopped at a limit with an incumbent: see gap
    INFEASIBLE = "infeasible"
    NO_SOLUTION = "no_solution"  # stopped at a limit before finding any incumbent
    ERROR = "error"


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
        Best proven bound on the objective (``nan`` if the backend gives none).
    gap
        ``(objective - bound) / |objective|``; 0 when proven optimal.
    runtime_s
        Wall-clock solve time.
    choice
        Chosen option index per operator, or None without a solution.
    pool_counts
        Shared-pool devices per device type, or None.
    objective_kind
        ``cost`` or ``latency``.
    resolution
        Integer scaling used (CP-SAT): unit per integer step for each quantity.
    message
        Native status text and anything worth telling the user.
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

    @property
    def has_solution(self) -> bool:
        """True when a plan can be read from this result."""
        return self.choice is not None

    @property
    def proven_optimal(self) -> bool:
        """True when the backend proved optimality (within ``gap_rel``)."""
        return self.status is SolveStatus.OPTIMAL


def relative_gap(objective: float, bound: float) -> float:
    """``|objective - bound| / max(|objective|, tiny)``, or ``nan`` if either is unknown."""
    if not (math.isfinite(objective) and math.isfinite(bound)):
        return math.nan
    return abs(objective - bound) / max(abs(objective), 1e-9)
