"""Every backend reaches the hand-derived optimum of every conformance instance."""

from __future__ import annotations

import pytest

from hetopt.plan import evaluate_choice
from hetopt.solvers import SolverOptions, SolveStatus, available_backends, solve
from hetopt.testing import CONFORMANCE


@pytest.mark.parametrize("backend", available_backends())
@pytest.mark.parametrize("name", sorted(CONFORMANCE))
def test_backend_hits_hand_derived_optimum(backend: str, name: str) -> None:
    inst = CONFORMANCE[name]
    problem = inst.build()
    result = solve(problem, SolverOptions(backend=backend, time_limit_s=20))
    if inst.objective_usd_per_h is None:
        assert result.status is SolveStatus.INFEASIBLE
        assert not result.has_solution
        return
    assert result.status is SolveStatus.OPTIMAL, result.message
    assert result.choice is not None
    ev = evaluate_choice(problem, result.choice, result.pool_counts)
    assert ev.feasible, ev.violations
    assert ev.objective_usd_per_h == pytest.approx(inst.objective_usd_per_h, rel=1e-9, abs=1e-9)
    assert result.objective == pytest.approx(inst.objective_usd_per_h, rel=1e-6, abs=1e-3)
    if inst.devices is not None:
        chosen = {
            problem.ops[i]: problem.devices[problem.opt_device[o]]
            for i, o in enumerate(result.choice)
        }
        assert chosen == inst.devices, inst.why
