"""The pool groups' neighbourhood search (``hetopt.fleet.neighbourhood``).

Hand-derived cases anchor it (exhaustive enumeration confirms each optimum): a swap of two
operators between two pools, where no single move makes the plan cheaper, and identical tenants
started in the order the MILP's symmetry rows forbid. On a seeded fleet every plan it returns
passes the independent verifier and never costs more than its start.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from hetopt.costs.table import CostParams
from hetopt.fleet.evaluate import evaluate_fleet
from hetopt.fleet.generator import synthetic_devices, synthetic_fleet
from hetopt.fleet.heuristics import exhaustive, greedy
from hetopt.fleet.neighbourhood import GroupSearch, canonical, pool_groups
from hetopt.fleet.problem import FleetProblem, build_fleet_problem, fleet_from_problems
from hetopt.fleet.verify import verify_fleet
from hetopt.hardware.spec import HardwareSpec
from hetopt.solvers.base import SolverOptions
from hetopt.testing import Opt, tiny_problem

OPTIONS = SolverOptions(time_limit_s=20)


def _all(fp: FleetProblem) -> list[np.ndarray]:
    return [np.ones(p.n_options, dtype=bool) for p in fp.tenants]


def _swap_fleet() -> FleetProblem:
    """Four tenants, one LLM each, on pool g or pool h (10 $/h a replica on either): a and b
    load 0.6 of a replica, c and d 0.4, on both pools.

    Start {a, b} on g (1.2: 2 replicas) and {c, d} on h (0.8: 1 replica): 30 $/h. Moving one
    operator alone never helps (a to h makes h 1.4, 2 replicas; c to g makes g 1.6); the
    optimum pairs a big and a small load on each pool, 1.0 each: 20 $/h.
    """

    def tenant(name: str, load: float) -> object:
        ops = {"llm": [Opt("G", 0.1, key="g", load=load), Opt("G", 0.1, key="h", load=load)]}
        return tiny_problem(ops, {"G": 10.0}, outside_keys={"g", "h"}, name=name)

    tenants = [tenant("a", 0.6), tenant("b", 0.6), tenant("c", 0.4), tenant("d", 0.4)]
    return fleet_from_problems(tenants)  # type: ignore[arg-type]


def test_two_pools_are_refilled_by_a_swap() -> None:
    fp = _swap_fleet()
    start = ((0,), (0,), (1,), (1,))
    assert evaluate_fleet(fp, start).objective_usd_per_h == pytest.approx(30.0)
    search = GroupSearch(fp, _all(fp), OPTIONS, time.perf_counter() + 10)
    plan = search.search(start, time.perf_counter() + 10)
    ev = evaluate_fleet(fp, plan)
    assert ev.objective_usd_per_h == pytest.approx(20.0)
    best = exhaustive(fp)
    assert best.objective_usd_per_h == pytest.approx(20.0)


def test_identical_tenants_out_of_symmetry_order_still_search() -> None:
    """Two identical tenants: pool g (10 $/h a replica, load 0.6) or 8 $/h on their own.
    Both on g need 2 replicas (20); one on g and one alone pay 18; both alone 16, the
    optimum. The start (alone, g) breaks the MILP's symmetry order (option 1 before 0)."""

    def tenant(name: str) -> object:
        ops = {"llm": [Opt("G", 0.1, key="g", load=0.6), Opt("H", 0.1, dedicated=1)]}
        return tiny_problem(ops, {"G": 10.0, "H": 8.0}, outside_keys={"g"}, name=name)

    fp = fleet_from_problems([tenant("a"), tenant("b")], templates=["t", "t"])  # type: ignore[list-item]
    start = ((1,), (0,))
    assert canonical(fp, start) == ((0,), (1,))
    search = GroupSearch(fp, _all(fp), OPTIONS, time.perf_counter() + 10)
    plan = search.search(start, time.perf_counter() + 10)
    assert evaluate_fleet(fp, plan).objective_usd_per_h == pytest.approx(16.0)
    assert exhaustive(fp).objective_usd_per_h == pytest.approx(16.0)


def test_groups_are_the_tenants_pools_link() -> None:
    fp = _swap_fleet()
    assert [g.tolist() for g in pool_groups(fp)] == [[0, 1, 2, 3]]


def test_a_start_outside_the_candidates_is_returned_unchanged() -> None:
    fp = _swap_fleet()
    masks = [np.array([True, False]) for _ in range(4)]
    start = ((0,), (0,), (1,), (1,))
    search = GroupSearch(fp, masks, OPTIONS, time.perf_counter() + 10)
    assert not search.covers(start)
    assert search.search(start, time.perf_counter() + 10) == start


@pytest.mark.parametrize("seed", [1, 2])
def test_seeded_fleet_plans_verify_and_never_cost_more(seed: int) -> None:
    names, rows = synthetic_devices(8, seed)
    fp = build_fleet_problem(
        synthetic_fleet(120, seed),
        HardwareSpec(devices=names, extra_rows=rows),
        CostParams(llm_pools="buckets"),
    )
    start = greedy(fp).choices
    assert start is not None
    before = evaluate_fleet(fp, start).objective_usd_per_h
    masks = []
    for t, p in enumerate(fp.tenants):
        # the start's options and two more per operator: every tenant of a class the same
        mask = np.zeros(p.n_options, dtype=bool)
        for i in range(p.n_ops):
            mask[p.options_of(i)[:2]] = True
        for u in np.flatnonzero(fp.tenant_class == fp.tenant_class[t]):
            mask[list(start[u])] = True
        masks.append(mask)
    search = GroupSearch(fp, masks, OPTIONS, time.perf_counter() + 30)
    assert search.ready
    plan = search.search(start, time.perf_counter() + 20)
    ev = evaluate_fleet(fp, plan)
    assert ev.feasible
    assert ev.objective_usd_per_h <= before + 1e-9
    assert verify_fleet(fp, plan, objective_usd_per_h=ev.objective_usd_per_h) == ()


def test_groups_that_trade_the_inventory_are_solved_together() -> None:
    """Tenant a (pool g) and tenant b (pool h) are in different groups but share the one D
    device (1 $/h). a: D or a replica of g (10 $/h); b: D or a replica of h (30 $/h). Start
    a on D, b on h: 31 $/h. Freeing a alone costs more (g 10 + h 30 = 40); freeing b alone
    finds D taken. Together, a on g and b on D: 11 $/h, the optimum."""

    def tenant(name: str, key: str, device: str) -> object:
        ops = {"llm": [Opt("D", 0.1, dedicated=1), Opt(device, 0.1, key=key, load=0.2)]}
        return tiny_problem(ops, {"D": 1.0, "G": 10.0, "H": 30.0}, outside_keys={key}, name=name)

    fp = fleet_from_problems(
        [tenant("a", "g", "G"), tenant("b", "h", "H")],  # type: ignore[list-item]
        inventory={"D": 1},
    )
    assert len(pool_groups(fp)) == 2
    start = ((0,), (1,))
    assert evaluate_fleet(fp, start).objective_usd_per_h == pytest.approx(31.0)
    search = GroupSearch(fp, _all(fp), OPTIONS, time.perf_counter() + 10)
    plan = search.search(start, time.perf_counter() + 15)
    assert plan == ((1,), (0,))
    assert evaluate_fleet(fp, plan).objective_usd_per_h == pytest.approx(11.0)
    assert exhaustive(fp).objective_usd_per_h == pytest.approx(11.0)
