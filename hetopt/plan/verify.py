"""Independent plan verification (run after every solve).

``verify_plan`` recomputes device counts, memory, inventory, the end-to-end latency and the TCO
of a plan from the problem data with numpy and networkx (:mod:`hetopt.plan.evaluate`), never
through a formulation, and checks them against what the plan and the solver claim.
"""

from __future__ import annotations

import math

from hetopt.models.scaling import COST_USD_PER_H
from hetopt.plan.evaluate import LATENCY_TOL_S, evaluate_choice
from hetopt.plan.plan import Plan
from hetopt.problem import PlacementProblem

REL_TOL = 1e-6


def verify_plan(plan: Plan, problem: PlacementProblem) -> tuple[str, ...]:
    """Return every problem found with ``plan``; an empty tuple means it is verified.

    Checks: each operator has one of its own options; pools cover their load and memory; the
    inventory holds; the end-to-end SLA holds (when hard); the plan's TCO and latency equal the
    recomputed ones; and the solver's objective equals the recomputed objective, within the
    solver's integer resolution.

    Parameters
    ----------
    plan
        The plan to check.
    problem
        The placement problem it answers.
    """
    ev = evaluate_choice(problem, plan.choice, plan.pool_counts)
    issues = list(ev.violations)
    if abs(ev.tco_usd_per_h - plan.tco_usd_per_hour) > REL_TOL * max(1.0, ev.tco_usd_per_h):
        issues.append(
            f"plan reports TCO {plan.tco_usd_per_hour:.6f} $/h but the recomputed TCO "
            f"is {ev.tco_usd_per_h:.6f} $/h"
        )
    if abs(ev.e2e_latency_s - plan.e2e_latency_s) > LATENCY_TOL_S:
        issues.append(
            f"plan reports end-to-end latency {plan.e2e_latency_s:.6f} s but the "
            f"recomputed latency is {ev.e2e_latency_s:.6f} s"
        )
    solve = plan.solve
    if solve.objective_kind == "cost" and math.isfinite(solve.objective):
        # CP-SAT rounds each objective coefficient to COST_USD_PER_H; MILPs are exact up to
        # their feasibility tolerance.
        terms = problem.n_ops + len(problem.devices) + len(problem.edge_src) + 1
        tol = REL_TOL * max(1.0, ev.objective_usd_per_h)
        if solve.resolution:
            tol += terms * COST_USD_PER_H * (1 + max(plan.pool_counts, default=0))
        if abs(solve.objective - ev.objective_usd_per_h) > tol:
            issues.append(
                f"solver {solve.backend} reports objective {solve.objective:.6f} $/h "
                f"but the plan recomputes to {ev.objective_usd_per_h:.6f} $/h"
            )
    return tuple(issues)
