"""The exact problem's verdict on a plan, which every backend reports its objective from.

A model's own objective can differ from the exact problem's: CP-SAT rounds to integers, and a
MILP stopped at its limit may hold more pool devices than its plan needs. So each single-agent
solve reads its plan back and reports the exact evaluation.

The evaluation is :func:`hetopt.models.evaluate.evaluate_choice`, the formulations' own pricing;
the independent check of a finished plan is :mod:`hetopt.oracle` (through
:func:`hetopt.plan.verify.verify_plan`).
"""

from __future__ import annotations

from dataclasses import replace

from hetopt.models import Objective
from hetopt.models.evaluate import Evaluation, evaluate_choice
from hetopt.problem import PlacementProblem


class ExactCheck:
    """The exact problem's verdict on a choice: its objective, or None when infeasible.

    Every backend reports the objective of its plan from here, not its own model's value.
    """

    def __init__(self, problem: PlacementProblem, objective: Objective) -> None:
        self.problem = problem
        self.kind = objective
        # The latency objective ignores the SLA (it finds the fastest plan).
        self._judged = (
            problem if objective == "cost" else problem.with_sla(replace(problem.sla, e2e_s=None))
        )

    def evaluate(self, choice: tuple[int, ...]) -> Evaluation:
        """The evaluation of ``choice`` (the SLA dropped for the latency objective)."""
        return evaluate_choice(self._judged, choice)

    def objective(self, choice: tuple[int, ...]) -> float | None:
        """The exact objective of ``choice``, or None when it breaks a constraint."""
        ev = self.evaluate(choice)
        sla = self._judged.sla
        # Strict: evaluate_choice forgives one microsecond of latency (the conservative model's
        # step), a relaxed-model plan gets no such allowance.
        if not ev.feasible or (sla.e2e_s is not None and sla.hard and ev.e2e_latency_s > sla.e2e_s):
            return None
        return ev.objective_usd_per_h if self.kind == "cost" else ev.e2e_latency_s
