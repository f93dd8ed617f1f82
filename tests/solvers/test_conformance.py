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


def test_near_equal_shared_configurations_keep_one() -> None:
    """Two configurations of one pool family that differ by 1e-13 in load: the pruning keeps
    exactly one of them for each operator, never neither."""
    import numpy as np
    import pandas as pd

    from hetopt.problem import prune_shared

    frame = pd.DataFrame(
        {
            "op": ["x", "y", "x", "y"],
            "pool_key": [
                "m/fp16/decode/H100/tp1/pp2/b32/ctx1x1",
                "m/fp16/decode/H100/tp1/pp2/b32/ctx1x1",
                "m/fp16/decode/H100/tp2/b32/ctx1x1",
                "m/fp16/decode/H100/tp2/b32/ctx1x1",
            ],
            "latency_s": [0.1, 0.1, 0.1, 0.1],
        }
    )
    load = np.array([0.5, 0.5, 0.5 * (1 - 1e-13), 0.5])
    keep = prune_shared(frame, np.ones(4, dtype=bool), load, np.array([2, 2, 2, 2]))
    assert keep[[0, 2]].sum() >= 1 and keep[[1, 3]].sum() >= 1
