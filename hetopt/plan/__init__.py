"""Plans: assembly from a solve (with the formulations' evaluation, re-exported here) and the
independent verification of the plan as published (:func:`verify_plan`)."""

from hetopt.models.evaluate import Evaluation, evaluate_choice
from hetopt.plan.plan import Baseline, Plan, make_plan
from hetopt.plan.verify import verify_plan

__all__ = ["Baseline", "Evaluation", "Plan", "evaluate_choice", "make_plan", "verify_plan"]
