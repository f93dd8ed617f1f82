"""Fleet planning: hand-derived optima, backend agreement, baselines, decomposition bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hetopt.errors import InfeasibleError, InputError
from hetopt.fleet import heuristics
from hetopt.fleet.decomposition import solve_decomposed
from hetopt.fleet.evaluate import evaluate_fleet
from hetopt.fleet.problem import FleetProblem, fleet_from_problems
from hetopt.fleet.solve import explain_shortage, solve_fleet
from hetopt.fleet.verify import verify_fleet
from hetopt.generators import random_problem
from hetopt.sla import Sla
from hetopt.solvers.base import SolverOptions, SolveStatus
from hetopt.testing import Opt, tiny_problem


def _tenant(name: str) -> object:
    """llm: 2 x G (0.1 s) or 30 x C (2 s); tool: pooled on C (load 0.6, 0.05 s) or on G (load
    0.1, 0.01 s); crossing llm -> tool costs 0.5 s; SLA 1 s end to end."""
    return tiny_problem(
        {
            "llm": [Opt("G", 0.1, dedicated=2), Opt("C", 2.0, dedicated=30)],
            "tool": [Opt("C", 0.05, pool_load=0.6), Opt("G", 0.01, pool_load=0.1)],
        },
        {"G": 10.0, "C": 1.0},
        [("llm", "tool", 0.5)],
        sla=Sla(ttft_s=None, tbt_s=None, e2e_s=1.0),
        name=name,
    )


def two_tenants(**inventory: int) -> FleetProblem:
    """Two identical tenants (one template) sharing G and C pools."""
    return fleet_from_problems(
        [_tenant("a"), _tenant("b")],
        name="pair",  # type: ignore[list-item]
        inventory=inventory,
        templates=["t", "t"],
    )


# Hand-derived optima:
# * unlimited: both LLMs on 2 G (40 $/h); both tools on C, load 1.2 -> 2 C (2 $/h): 42 $/h.
#   Moving one tool to G costs a G device (10 $/h) for a saving of at most one C (1 $/h).
# * at most 1 C: tools cannot both go to C (2 devices); one on C and one on G = 1 C + 1 G
#   (11 $/h), both on G = load 0.2 -> 1 G (10 $/h): 50 $/h.
# * at most 3 G: only one LLM fits on G and the other misses its SLA on C (2 s > 1 s):
#   infeasible, G short by exactly 1.
CASES = [({}, 42.0, (4, 2)), ({"C": 1}, 50.0, (5, 0))]


@pytest.mark.parametrize("backend", ["highs", "cbc", "cpsat"])
@pytest.mark.parametrize(("inventory", "optimum", "devices"), CASES)
def test_hand_derived_fleet_optimum(
    backend: str, inventory: dict, optimum: float, devices: tuple[int, int]
) -> None:
    fp = two_tenants(**inventory)
    res = solve_fleet(fp, SolverOptions(backend=backend, time_limit_s=30), method="monolithic")
    assert res.status is SolveStatus.OPTIMAL
    assert res.objective_usd_per_h == pytest.approx(optimum, abs=1e-4)
    assert res.verified
    assert res.evaluation is not None
    assert tuple(res.evaluation.devices_per_type) == devices


@pytest.mark.parametrize(("inventory", "optimum", "devices"), CASES)
def test_exhaustive_and_decomposition_reach_the_hand_optimum(
    inventory: dict, optimum: float, devices: tuple[int, int]
) -> None:
    fp = two_tenants(**inventory)
    ex = heuristics.exhaustive(fp)
    assert ex.proven_optimal and ex.objective_usd_per_h == pytest.approx(optimum)
    dec = solve_decomposed(fp, SolverOptions(time_limit_s=20, gap_rel=1e-6))
    assert dec.objective_usd_per_h == pytest.approx(optimum)
    # The Lagrangian bound is valid: below the optimum. Unlimited, it is exactly the per-tenant
    # optimum with pools paid linearly: 2 x (20 + 0.6 x 1) = 41.2.
    assert dec.bound_usd_per_h <= optimum + 1e-9
    if not inventory:
        assert dec.bound_usd_per_h == pytest.approx(41.2)


def test_shortage_names_the_pool_and_the_missing_devices() -> None:
    fp = two_tenants(G=3)
    res = solve_fleet(fp, SolverOptions(time_limit_s=30), method="monolithic")
    assert res.status is SolveStatus.INFEASIBLE and not res.has_solution
    err = explain_shortage(fp)
    assert isinstance(err, InfeasibleError)
    assert "G: short by 1 (has 3, needs 4)" in str(err)
    assert "+hardware.inventory.G=4" in str(err)
    assert explain_shortage(two_tenants()) is None  # nothing short when feasible


def test_greedy_and_heft_are_feasible_and_never_below_the_optimum() -> None:
    for inventory, optimum, _ in CASES:
        fp = two_tenants(**inventory)
        for method in (heuristics.greedy, heuristics.heft):
            res = method(fp)
            assert res.choices is not None
            ev = evaluate_fleet(fp, res.choices)
            assert ev.feasible
            assert res.objective_usd_per_h == pytest.approx(ev.objective_usd_per_h)
            assert res.objective_usd_per_h >= optimum - 1e-9


def test_homogeneous_baseline_is_the_best_single_type() -> None:
    fp = two_tenants()

    def exact(only: FleetProblem) -> tuple:
        r = solve_fleet(only, SolverOptions(time_limit_s=10), method="monolithic")
        return r.choices, str(r.status)

    res = heuristics.homogeneous(fp, exact)
    # Everything on G: 4 G for the LLMs + 1 G pool for both tools (load 0.2) = 50 $/h; on C
    # the LLMs miss the SLA.
    assert res.objective_usd_per_h == pytest.approx(50.0)
    assert res.detail == "all on G"


def test_identical_tenants_share_footprints_and_a_symmetry_class() -> None:
    fp = two_tenants()
    assert list(fp.tenant_class) == [0, 0]
    distinct = fleet_from_problems([_tenant("a"), _tenant("b")])  # type: ignore[list-item]
    assert list(distinct.tenant_class) == [0, 1]


@pytest.mark.parametrize("seed", range(6))
def test_random_fleets_all_backends_agree_with_enumeration(seed: int) -> None:
    rng = np.random.default_rng(seed)
    tenants = [
        random_problem(100 * seed + k, n_ops=2, n_devices=2, with_loop=False) for k in range(2)
    ]
    renamed = [type(t)(**{**t.__dict__, "name": f"t{k}"}) for k, t in enumerate(tenants)]
    inventory = {"D0": int(rng.integers(2, 6))} if seed % 2 else {}
    fp = fleet_from_problems(renamed, inventory=inventory, mem_bytes={"D0": 12e9, "D1": 12e9})
    try:
        ex = heuristics.exhaustive(fp)
    except InputError:
        pytest.skip("too many assignments to enumerate")
    results = {
        b: solve_fleet(fp, SolverOptions(backend=b, time_limit_s=30), method="monolithic")
        for b in ("highs", "cbc", "cpsat")
    }
    if ex.choices is None:
        assert all(r.status is SolveStatus.INFEASIBLE for r in results.values())
        return
    for backend, r in results.items():
        assert r.status is SolveStatus.OPTIMAL, backend
        assert r.verified, backend
        assert r.objective_usd_per_h == pytest.approx(ex.objective_usd_per_h, abs=1e-4), backend
        assert r.choices is not None
        assert verify_fleet(fp, r.choices, r.pool_counts, r.objective_usd_per_h) == (), backend


def test_evaluation_flags_inventory_and_sla_violations() -> None:
    fp = two_tenants(G=3)
    all_g = tuple((0, 3) for _ in range(2))  # llm on G (2 each) + tool on G: 5 G > 3
    ev = evaluate_fleet(fp, all_g)
    assert any("inventory has 3" in v for v in ev.violations)
    assert ev.shortage[0] == 2
    slow = ((1, 2), (0, 2))  # tenant a's llm on C: 2 s > 1 s
    ev = evaluate_fleet(two_tenants(), slow)
    assert any("tenant 'a'" in v and "exceeds its SLA" in v for v in ev.violations)


def test_time_limited_solve_returns_the_start_with_its_gap() -> None:
    fp = two_tenants()
    res = solve_fleet(fp, SolverOptions(time_limit_s=30), method="decomposition")
    assert res.has_solution and res.verified
    assert res.objective_usd_per_h == pytest.approx(42.0)
    assert math.isfinite(res.gap) and res.gap == pytest.approx((42.0 - 41.2) / 42.0, abs=1e-6)
    assert res.status is SolveStatus.FEASIBLE  # gap above gap_rel: marked, not optimal
