"""A solved fleet: the registry's :class:`~hetopt.solvers.base.SolveResult` seen under the
fleet's names, with the independent re-evaluation of its plan."""

from __future__ import annotations

import math
from dataclasses import dataclass

from hetopt.fleet.evaluate import Choices, FleetEvaluation
from hetopt.solvers.base import SolveResult, SolveStatus, Termination, relative_gap


@dataclass(frozen=True)
class FleetResult:
    """A solved fleet: the registry's :class:`~hetopt.solvers.base.SolveResult` and the
    independent re-evaluation of its plan, under the fleet's names.

    Attributes
    ----------
    solve
        The result in the vocabulary every backend shares: ``status`` (``optimal`` only when
        proven within ``gap_rel`` of the bound), ``termination``, ``solver_status_text``, the
        plan per tenant (``tenant_choices``), and the fleet's timings.
    evaluation
        The independent re-evaluation of the plan (None without one).
    """

    solve: SolveResult
    evaluation: FleetEvaluation | None

    @property
    def backend(self) -> str:
        """``highs``, ``cbc``, ``cpsat``, or ``decomposition/<backend>``."""
        return self.solve.backend

    @property
    def status(self) -> SolveStatus:
        """``optimal``, ``feasible``, ``infeasible`` or ``no_solution``."""
        return self.solve.status

    @property
    def termination(self) -> Termination:
        """Why the search stopped."""
        return self.solve.termination

    @property
    def objective_usd_per_h(self) -> float:
        """The plan's exact objective (``nan`` without a plan)."""
        return self.solve.objective

    @property
    def bound_usd_per_h(self) -> float:
        """The proven lower bound on the fleet optimum (``nan`` when none is known)."""
        return self.solve.bound

    @property
    def gap(self) -> float:
        """Relative gap between plan and bound (``nan`` when the bound is unknown)."""
        return self.solve.gap

    @property
    def choices(self) -> Choices | None:
        """Per tenant the option of each operator."""
        return self.solve.tenant_choices

    @property
    def pool_counts(self) -> tuple[int, ...] | None:
        """Shared-pool devices per type."""
        return self.solve.pool_counts

    @property
    def build_s(self) -> float:
        """Model-building wall-clock time."""
        return self.solve.build_s

    @property
    def solve_s(self) -> float:
        """Solver wall-clock time."""
        return self.solve.runtime_s - self.solve.build_s

    @property
    def first_feasible_s(self) -> float:
        """Time from the call to the first verified plan (the greedy start, or the solver's
        first incumbent when the greedy found none)."""
        return self.solve.first_feasible_s

    @property
    def start_usd_per_h(self) -> float:
        """Objective of the greedy start (``nan`` if it found none)."""
        return self.solve.start_objective

    @property
    def message(self) -> str:
        """Solver status text and notes."""
        return self.solve.message

    @property
    def has_solution(self) -> bool:
        """True when a plan can be read from this result."""
        return self.choices is not None

    @property
    def verified(self) -> bool:
        """True when the plan passed the independent re-evaluation."""
        return self.evaluation is not None and self.evaluation.feasible


def fleet_result(
    backend: str,
    status: SolveStatus,
    termination: Termination,
    status_text: str,
    objective: float,
    bound: float,
    choices: Choices | None,
    evaluation: FleetEvaluation | None,
    gap_rel: float,
    message: str,
    times: tuple[float, float, float, float],
) -> FleetResult:
    """The fleet's :class:`SolveResult`: the plan's objective, its gap to the bound, and a
    status that claims only what the gap proves."""
    build_s, solve_s, first_s, start_obj = times
    gap = relative_gap(objective, bound)
    if choices is not None:
        status = proven_status(gap, gap_rel)
    if status is SolveStatus.OPTIMAL:
        termination = Termination.OPTIMAL
    elif termination is Termination.OPTIMAL or (
        status is not SolveStatus.INFEASIBLE and termination is Termination.INFEASIBLE
    ):
        termination = Termination.INEXACT  # the solver decided its model, not the fleet
    result = SolveResult(
        backend,
        status,
        objective,
        bound,
        gap,
        build_s + solve_s,
        None,
        None if evaluation is None else tuple(int(v) for v in evaluation.pool_counts),
        "cost",
        {},
        message,
        termination,
        status_text,
        tenant_choices=choices,
        build_s=build_s,
        first_feasible_s=first_s,
        start_objective=start_obj,
    )
    return FleetResult(result, evaluation)


def proven_status(gap: float, gap_rel: float) -> SolveStatus:
    """``optimal`` when the plan is proven within ``gap_rel`` of a known bound, else
    ``feasible`` (a plan whose distance from the optimum is unknown or larger).

    >>> proven_status(0.001, 0.005), proven_status(float("nan"), 0.005)
    (<SolveStatus.OPTIMAL: 'optimal'>, <SolveStatus.FEASIBLE: 'feasible'>)
    """
    if math.isfinite(gap) and gap <= gap_rel + 1e-9:
        return SolveStatus.OPTIMAL
    return SolveStatus.FEASIBLE
