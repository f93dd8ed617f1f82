"""Fleet-wide pruning of shared LLM pool configurations (``fleet_dominated_keys``).

A table alone keeps every configuration another table also uses (it cannot see that table's
operators). The fleet-wide pruning sees every user, so it may drop a configuration only when a
kept one beats it for all of them; it must never change the fleet optimum.
"""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

import hetopt.fleet.problem as fleet_problem
from hetopt.costs.table import CostParams
from hetopt.fleet.generator import synthetic_devices, synthetic_fleet
from hetopt.fleet.problem import fleet_dominated_keys
from hetopt.fleet.solve import solve_fleet
from hetopt.hardware.spec import HardwareSpec
from hetopt.solvers.base import SolverOptions, SolveStatus

FAST = "m/fp16/decode/G/tp1/b8/ctx1x1"  # 10 req/s per replica, 0.1 s
SLOW = "m/fp16/decode/G/tp1/b4/ctx1x1"  # 5 req/s per replica, 0.2 s (unless overridden)


def _table(slow_latency_s: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "op": ["llm", "llm"],
            "pool_key": [FAST, SLOW],
            "exclusive": [True, True],
            "requests_per_s": [10.0, 5.0],
            "devices_per_replica": [1, 1],
            "latency_s": [0.1, slow_latency_s],
        }
    )


def _graph() -> SimpleNamespace:
    return SimpleNamespace(ops=[SimpleNamespace(id="llm", visits=1.0)])


def _dominated(b_slow_latency_s: float) -> frozenset[str]:
    frames = {"a": _table(0.2), "b": _table(b_slow_latency_s)}
    shared = {"a": frozenset({FAST, SLOW}), "b": frozenset({FAST, SLOW})}
    return fleet_dominated_keys(
        frames, {"a": _graph(), "b": _graph()}, {"a": 1.0, "b": 3.0}, shared, 0.8
    )


def test_a_configuration_beaten_for_every_table_is_dropped() -> None:
    """Both tables' operators are faster and lighter on FAST (same replica size): SLOW goes,
    although each table alone had to keep it (the other table also uses it)."""
    assert _dominated(0.2) == frozenset({SLOW})


def test_a_configuration_one_table_needs_is_kept() -> None:
    """Table b's operator is faster on SLOW: no kept configuration beats SLOW for it."""
    assert _dominated(0.05) == frozenset()


@pytest.mark.parametrize("seed", [1, 4])
def test_fleet_pruning_keeps_the_optimum(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A synthetic fleet whose tenants share pools across tables: the same proven optimum with
    and without the fleet-wide pruning, on fewer options (hand-checked on seeds 1-5; these two
    drop the most)."""
    fleet = synthetic_fleet(40, seed)
    names, rows = synthetic_devices(6, seed)
    hardware = HardwareSpec(devices=names, extra_rows=rows)
    options = SolverOptions(backend="highs", time_limit_s=60, gap_rel=1e-6)
    costs = CostParams(llm_pools="buckets")
    pruned = fleet_problem.build_fleet_problem(fleet, hardware, costs)
    monkeypatch.setattr(fleet_problem, "fleet_dominated_keys", lambda *a, **k: frozenset())
    full = fleet_problem.build_fleet_problem(fleet, hardware, costs)
    assert pruned.n_options < full.n_options and pruned.n_keys < full.n_keys
    a = solve_fleet(pruned, options, method="monolithic")
    b = solve_fleet(full, options, method="monolithic")
    assert a.status is SolveStatus.OPTIMAL and b.status is SolveStatus.OPTIMAL
    assert a.objective_usd_per_h == pytest.approx(b.objective_usd_per_h, rel=1e-9)


def test_a_fleet_without_pool_map_refuses_tenants_with_their_own_pools() -> None:
    """Options on a tenant's own LLM pool need a fleet pool, else they would look free."""
    from dataclasses import replace

    from hetopt.fleet.problem import fleet_from_problems
    from hetopt.testing import Opt, tiny_problem

    ops = {"llm": [Opt("G", 0.1, key="g", load=0.2), Opt("G", 0.2, dedicated=1)]}
    fp = fleet_from_problems(
        [tiny_problem(ops, {"G": 10.0}, name=n, outside_keys=frozenset({"g"})) for n in "ab"]
    )
    assert fp.n_keys == 1
    with pytest.raises(ValueError, match="tenant 'a' has options on its own shared LLM pools"):
        replace(fp, opt_fleet_key=())


def test_pareto_front_keeps_a_beating_option_for_every_dropped_one() -> None:
    """Random groups with ties: every dropped option has a kept one of its group no slower and
    no dearer, and no kept option is beaten by another kept one (checked pair by pair)."""
    import numpy as np

    from hetopt.problem import pareto_front

    rng = np.random.default_rng(7)
    for _ in range(50):
        n = int(rng.integers(1, 40))
        group = rng.integers(0, 4, n)
        lat = rng.integers(1, 6, n) / 10.0  # ties on purpose
        cost = rng.integers(1, 6, n).astype(float)
        keep = pareto_front(group, lat, cost)
        for a in range(n):
            same = [b for b in range(n) if group[b] == group[a] and b != a and keep[b]]
            beats = [b for b in same if lat[b] <= lat[a] and cost[b] <= cost[a]]
            if not keep[a]:
                assert beats, (a, group, lat, cost, keep)
            else:
                assert not [b for b in beats if lat[b] < lat[a] or cost[b] < cost[a]]
    assert pareto_front(np.zeros(0, dtype=int), np.zeros(0), np.zeros(0)).tolist() == []
