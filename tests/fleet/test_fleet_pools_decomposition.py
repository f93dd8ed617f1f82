"""Shared LLM pools across fleet tenants: the decomposition and the heuristics are pool-aware."""

from __future__ import annotations

import numpy as np
import pytest

from hetopt.fleet import heuristics
from hetopt.fleet.decomposition import key_split, priced, solve_decomposed
from hetopt.fleet.evaluate import evaluate_fleet
from hetopt.fleet.problem import FleetProblem, fleet_from_problems
from hetopt.fleet.solve import solve_fleet
from hetopt.fleet.verify import verify_fleet
from hetopt.solvers.base import SolverOptions, SolveStatus
from hetopt.testing import Opt, tiny_problem


def _tenant(name: str, load: float) -> object:
    # prefill and decode of one call share pool "g" (one G per replica, 10 $/h); each could
    # instead take its own C (3 $/h): pooled, both tenants fit one G replica.
    ops = {
        "prefill": [Opt("G", 0.1, key="g", load=load), Opt("C", 0.2, dedicated=1)],
        "decode": [Opt("G", 0.1, key="g", load=load), Opt("C", 0.2, dedicated=1)],
    }
    return tiny_problem(ops, {"G": 10.0, "C": 3.0}, [("prefill", "decode", 0.0)], name=name)


def _pair(load: float = 0.25, templates: list[str] | None = None) -> FleetProblem:
    return fleet_from_problems(
        [_tenant("a", load), _tenant("b", load)],  # type: ignore[list-item]
        name="pooled",
        templates=templates,
    )


def _verified(fp: FleetProblem, choices: object) -> None:
    ev = evaluate_fleet(fp, choices)  # type: ignore[arg-type]
    problems = verify_fleet(
        fp,
        choices,  # type: ignore[arg-type]
        objective_usd_per_h=ev.objective_usd_per_h,
        llm_pool_counts={n: int(c) for n, c in zip(fp.key_names, ev.key_counts, strict=True) if c},
    )
    assert problems == (), problems


def test_two_tenants_half_a_replica_each_share_one_replica() -> None:
    fp = _pair()
    assert fp.n_keys == 1
    ev = evaluate_fleet(fp, ((0, 2), (0, 2)))  # every operator on the pool
    assert ev.key_counts.tolist() == [1] and ev.tco_usd_per_h == pytest.approx(10.0)
    mono = solve_fleet(fp, SolverOptions(time_limit_s=20), method="monolithic")
    cp = solve_fleet(fp, SolverOptions(backend="cpsat", time_limit_s=20), method="monolithic")
    dec = solve_decomposed(fp, SolverOptions(time_limit_s=20, gap_rel=1e-6))
    assert mono.objective_usd_per_h == pytest.approx(10.0)
    assert cp.objective_usd_per_h == pytest.approx(10.0)
    assert dec.objective_usd_per_h == pytest.approx(10.0)
    assert dec.bound_usd_per_h <= 10.0 + 1e-6
    assert dec.status is SolveStatus.OPTIMAL
    _verified(fp, dec.choices)


@pytest.mark.parametrize("templates", [None, ["t", "t"]])
def test_decomposition_through_solve_fleet_agrees_with_monolithic(
    templates: list[str] | None,
) -> None:
    fp = _pair(0.3, templates)
    mono = solve_fleet(fp, SolverOptions(time_limit_s=20), method="monolithic")
    dec = solve_fleet(fp, SolverOptions(time_limit_s=20, gap_rel=1e-6), method="decomposition")
    assert dec.verified and mono.verified
    assert dec.objective_usd_per_h == pytest.approx(mono.objective_usd_per_h)
    assert dec.bound_usd_per_h <= mono.objective_usd_per_h + 1e-6


def test_greedy_and_heft_plans_verify_and_the_decomposition_improves_them() -> None:
    fp = _pair()
    for method in (heuristics.greedy, heuristics.heft):
        res = method(fp)
        assert res.choices is not None
        _verified(fp, res.choices)
        # the first operator on the pool pays a whole replica (10 $/h > a C at 3 $/h), so the
        # greedy keeps a C per operator (12 $/h); a free-looking pool would have cost nothing
        assert res.objective_usd_per_h == pytest.approx(12.0)
        dec = solve_decomposed(fp, SolverOptions(time_limit_s=20, gap_rel=1e-6), start=res.choices)
        assert dec.objective_usd_per_h == pytest.approx(10.0)
        _verified(fp, dec.choices)


def test_greedy_counts_pool_replicas_against_the_inventory() -> None:
    # one G only: a pool of 2 replicas (loads 0.75 per tenant) does not fit, C does
    fp = _pair(0.375).with_inventory(np.array([1.0, np.inf]))
    res = heuristics.greedy(fp)
    assert res.choices is not None
    ev = evaluate_fleet(fp, res.choices)
    assert ev.feasible and ev.devices_per_type[0] <= 1
    _verified(fp, res.choices)
    ex = heuristics.exhaustive(fp)
    assert res.objective_usd_per_h >= ex.objective_usd_per_h - 1e-9
    dec = solve_decomposed(fp, SolverOptions(time_limit_s=20, gap_rel=1e-6), start=res.choices)
    assert dec.objective_usd_per_h == pytest.approx(ex.objective_usd_per_h)
    assert dec.bound_usd_per_h <= ex.objective_usd_per_h + 1e-6
    _verified(fp, dec.choices)


def test_subproblem_drops_the_tenant_pools_and_pays_the_split() -> None:
    fp = _pair(0.2)
    split = key_split(fp, ((0, 2), (0, 2)))
    price = fp.device_cost_usd_per_h
    sub = priced(fp.tenants[0], price, split.option_usd_per_h(fp, 0, price))
    assert sub.n_keys == 0 and (sub.opt_key == -1).all()
    # four operators share one replica: each pays a quarter of it (alpha = 0)
    assert sub.opt_direct_usd_per_h[[0, 2]].tolist() == pytest.approx([2.5, 2.5])


def test_two_capacity_pool_split_stays_a_bound() -> None:
    # aggregated serving: prefill loads the chunk budget, decode the slots; one replica covers
    # max(0.6, 0.6) per tenant pair, so charging both capacities fully would overshoot.
    def tenant(name: str) -> object:
        ops = {
            "prefill": [Opt("G", 0.1, key="g", load=0.3, dim="chunk"), Opt("C", 0.2, dedicated=1)],
            "decode": [Opt("G", 0.1, key="g", load=0.3), Opt("C", 0.2, dedicated=1)],
        }
        return tiny_problem(ops, {"G": 10.0, "C": 6.0}, [("prefill", "decode", 0.0)], name=name)

    fp = fleet_from_problems([tenant("a"), tenant("b")])  # type: ignore[list-item]
    ex = heuristics.exhaustive(fp)
    assert ex.objective_usd_per_h == pytest.approx(10.0)
    for start in (None, heuristics.greedy(fp).choices):
        dec = solve_decomposed(fp, SolverOptions(time_limit_s=20, gap_rel=1e-6), start=start)
        assert dec.bound_usd_per_h <= ex.objective_usd_per_h + 1e-6
        assert dec.objective_usd_per_h == pytest.approx(ex.objective_usd_per_h)
        _verified(fp, dec.choices)
