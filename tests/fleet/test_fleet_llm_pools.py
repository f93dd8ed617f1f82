"""Shared LLM pools across a fleet's tenants: hand-derived optima, backend agreement, the
independent verifier, and the shipped enterprise fleet under each ``costs.llm_pools`` mode."""

from __future__ import annotations

import random

import numpy as np
import pytest

from hetopt.costs.table import CostParams
from hetopt.fleet import heuristics
from hetopt.fleet.evaluate import evaluate_fleet
from hetopt.fleet.problem import FleetProblem, build_fleet_problem, fleet_from_problems
from hetopt.fleet.report import llm_pool_table, placement_table
from hetopt.fleet.solve import solve_fleet
from hetopt.fleet.verify import verify_fleet
from hetopt.sla import Sla
from hetopt.solvers.base import SolverOptions, SolveStatus
from hetopt.testing import Opt, tiny_problem

KEY = "m/fp16/decode/G/tp1/b8/ctx512x128@llm"


def _tenant(name: str, load: float = 0.5, sla_s: float | None = None) -> object:
    """One LLM decode: a G replica ($2/h) serves it at ``load`` replicas (0.1 s) on the shared
    key, or a dedicated C device ($1.5/h) at 0.2 s."""
    return tiny_problem(
        {"llm": [Opt("G", 0.1, key=KEY, load=load), Opt("C", 0.2, dedicated=1)]},
        {"G": 2.0, "C": 1.5},
        sla=Sla(ttft_s=None, tbt_s=None, e2e_s=sla_s),
        name=name,
        outside_keys=[KEY],
    )


def _fleet(n: int, load: float = 0.5, **inventory: int) -> FleetProblem:
    return fleet_from_problems(
        [_tenant(f"t{k}", load) for k in range(n)],  # type: ignore[misc]
        inventory=inventory,
        templates=["chat"] * n,
    )


# Hand-derived optima (G replica $2/h shared through the key; C $1.5/h each, own):
# * 2 tenants at 0.5: one G replica carries both (load 1.0): 2.00 $/h; apart 2 x 1.5 = 3.00.
# * 3 tenants at 0.5: all on G needs ceil(1.5) = 2 replicas (4.00), all on C 4.50; two on one
#   G replica and one on C: 2.00 + 1.50 = 3.50 $/h.
# * 3 tenants, at most 1 G: the same 3.50 (it uses one G).
# * 2 tenants at 0.6: one replica cannot carry 1.2; 2 G = 4.00 > 1 G + 1 C = 3.50 > 2 C = 3.00.
CASES = [
    (2, 0.5, {}, 2.0, 1),
    (3, 0.5, {}, 3.5, 1),
    (3, 0.5, {"G": 1}, 3.5, 1),
    (2, 0.6, {}, 3.0, 0),
]


@pytest.mark.parametrize("backend", ["highs", "cbc", "cpsat"])
@pytest.mark.parametrize(("n", "load", "inventory", "optimum", "replicas"), CASES)
def test_hand_derived_fleet_pool_optimum(
    backend: str, n: int, load: float, inventory: dict, optimum: float, replicas: int
) -> None:
    fp = _fleet(n, load, **inventory)
    assert fp.key_names == (KEY,)
    res = solve_fleet(fp, SolverOptions(backend=backend), method="monolithic", use_greedy=False)
    assert res.status is SolveStatus.OPTIMAL
    assert res.objective_usd_per_h == pytest.approx(optimum, abs=1e-6)
    assert res.evaluation is not None and res.evaluation.key_counts.tolist() == [replicas]
    assert verify_fleet(fp, res.choices, res.pool_counts, res.objective_usd_per_h) == ()


@pytest.mark.parametrize(("n", "load", "inventory", "optimum", "replicas"), CASES)
def test_exhaustive_enumeration_agrees(
    n: int, load: float, inventory: dict, optimum: float, replicas: int
) -> None:
    best = heuristics.exhaustive(_fleet(n, load, **inventory))
    assert best.objective_usd_per_h == pytest.approx(optimum, abs=1e-9)


def test_without_the_shared_key_each_tenant_rounds_alone() -> None:
    """The same two tenants with the key private to each (no fleet pool) cost 3.00 $/h: the
    pool is what saves the dollar."""
    apart = fleet_from_problems(
        [
            tiny_problem(
                {"llm": [Opt("G", 0.1, key=f"k{t}", load=0.5), Opt("C", 0.2, dedicated=1)]},
                {"G": 2.0, "C": 1.5},
                name=f"t{t}",
            )
            for t in range(2)
        ]
    )
    assert apart.n_keys == 0
    res = solve_fleet(apart, SolverOptions(), method="monolithic", use_greedy=False)
    assert res.objective_usd_per_h == pytest.approx(3.0)


def test_verifier_catches_an_undersized_fleet_pool() -> None:
    fp = _fleet(2)
    plan = ((0,), (0,))  # both tenants on the G key: load 1.0 needs one replica
    assert verify_fleet(fp, plan) == ()
    issues = verify_fleet(fp, plan, llm_pool_counts={KEY: 0})
    assert any(KEY in i and "needs 1" in i for i in issues), issues
    ev = evaluate_fleet(fp, plan, key_counts=[0])
    assert not ev.feasible and any(KEY in v for v in ev.violations)
    # A wrong objective is caught too: the pool is one $2/h replica, not two.
    assert verify_fleet(fp, plan, objective_usd_per_h=4.0)
    assert verify_fleet(fp, ((0,), (0,)), objective_usd_per_h=2.0) == ()


def test_pool_devices_count_against_the_inventory() -> None:
    """4 tenants at 0.5 fill 2 G replicas (4.00 $/h); with 1 G in stock two tenants must move
    to C: 1 G + 2 C = 2.00 + 3.00 = 5.00 $/h."""
    assert solve_fleet(_fleet(4), method="monolithic").objective_usd_per_h == pytest.approx(4.0)
    fp = _fleet(4, G=1)
    res = solve_fleet(fp, SolverOptions(), method="monolithic", use_greedy=False)
    assert res.objective_usd_per_h == pytest.approx(5.0)
    assert res.evaluation is not None
    assert res.evaluation.devices_per_type.tolist() == [1, 2]
    assert res.evaluation.key_devices_per_type.tolist() == [1, 0]
    assert any("inventory" in i for i in verify_fleet(fp, ((0,), (0,), (0,), (0,))))


def _random_fleet(seed: int) -> FleetProblem:
    """2-3 tenants of 1-2 operators; options on two shared keys (dpr 1 or 2) or dedicated."""
    rng = random.Random(seed)
    keys = {"kA": ("A", rng.choice([1, 2])), "kB": ("B", 1)}
    tenants = []
    for t in range(rng.choice([2, 3])):
        ops = {}
        for i in range(rng.choice([1, 2])):
            opts = [
                Opt(
                    dev,
                    round(rng.uniform(0.05, 0.4), 3),
                    key=k,
                    load=round(rng.uniform(0.1, 1.4), 2),
                    dpr=dpr,
                )
                for k, (dev, dpr) in keys.items()
                if rng.random() < 0.8
            ]
            opts.append(Opt("C", round(rng.uniform(0.05, 0.6), 3), dedicated=rng.choice([1, 2])))
            ops[f"op{i}"] = opts
        edges = [("op0", "op1", 0.01)] if len(ops) == 2 else []
        tenants.append(
            tiny_problem(
                ops,
                {"A": 2.0, "B": 1.2, "C": 0.9},
                edges,
                sla=Sla(ttft_s=None, tbt_s=None, e2e_s=rng.choice([None, 0.6])),
                name=f"t{t}",
                outside_keys=list(keys),
            )
        )
    inventory = {"A": rng.choice([2, 4])} if rng.random() < 0.5 else {}
    return fleet_from_problems(tenants, inventory=inventory)


@pytest.mark.parametrize("seed", range(20))
def test_backends_and_enumeration_agree_on_random_pooled_fleets(seed: int) -> None:
    fp = _random_fleet(seed)
    best = heuristics.exhaustive(fp)
    for backend in ("highs", "cbc", "cpsat"):
        res = solve_fleet(fp, SolverOptions(backend=backend), method="monolithic", use_greedy=False)
        if best.choices is None:
            assert not res.has_solution
            continue
        assert res.objective_usd_per_h == pytest.approx(best.objective_usd_per_h, rel=1e-6), backend
        assert verify_fleet(fp, res.choices, res.pool_counts, res.objective_usd_per_h) == ()


@pytest.fixture(scope="module")
def enterprise() -> dict[str, tuple[FleetProblem, object]]:
    import yaml

    from hetopt.fleet.spec import fleet_from_dict
    from hetopt.workloads import config_dir

    data = yaml.safe_load((config_dir() / "fleet" / "enterprise.yaml").read_text())
    fleet = fleet_from_dict(data, "enterprise")
    out = {}
    for mode in ("off", "buckets", "model"):
        fp = build_fleet_problem(fleet, costs=CostParams(llm_pools=mode))
        out[mode] = (fp, solve_fleet(fp, SolverOptions(), method="monolithic"))
    return out


def test_enterprise_fleet_pools_never_cost_more(enterprise: dict) -> None:
    """Pooling adds choices and never removes one, so each mode costs at most the one
    before: off (every operator its own replicas) >= buckets (a template's tenants share each
    call's replicas) >= model (every call of a model shares)."""
    cost = {}
    for mode, (fp, res) in enterprise.items():
        assert res.status is SolveStatus.OPTIMAL, mode
        assert verify_fleet(fp, res.choices, res.pool_counts, res.objective_usd_per_h) == ()
        cost[mode] = res.objective_usd_per_h
    assert enterprise["off"][0].n_keys == 0
    assert cost["off"] >= cost["buckets"] - 1e-6 >= cost["model"] - 2e-6
    assert cost["buckets"] < cost["off"] - 0.5  # the three chat tenants share replicas


def test_enterprise_pool_table_names_its_tenants(enterprise: dict) -> None:
    fp, res = enterprise["buckets"]
    pools = llm_pool_table(fp, res.choices)
    shared = pools[pools["tenants"] > 1]
    assert len(shared) >= 1
    ev = res.evaluation
    assert int(pools["replicas"].sum()) == int(ev.key_counts.sum())
    assert pools["usd_per_h"].sum() == pytest.approx(
        float(fp.key_usd_per_h() @ ev.key_counts), abs=1e-3
    )
    placed = placement_table(fp, res.choices)
    on_pools = placed[placed["llm_pool"] != ""]
    assert set(on_pools["llm_pool"]) == set(pools["llm_pool"])
    # each pool (one capacity: no aggregated serving) is the ceiling of its members' summed
    # load, summed here from the placement table
    for row in pools.itertuples():
        load = on_pools.loc[on_pools["llm_pool"] == row.llm_pool, "llm_pool_load_replicas"].sum()
        assert row.load_replicas == pytest.approx(load, abs=1e-4)
        assert row.replicas == int(np.ceil(load - 1e-9))


@pytest.mark.parametrize("aggregated", [False, True])
def test_two_tenants_on_shared_pools_cost_what_one_agent_at_their_summed_rate_costs(
    aggregated: bool,
) -> None:
    """Two chat tenants at 0.25 req/s share every LLM pool, so the fleet costs what one
    chat agent at 0.5 req/s costs, planned by the single-agent pipeline (one aggregated H100,
    1.716 $/h; or a prefill and a decode H100, 3.432 $/h). Apart (llm_pools=off) each tenant
    holds its own prefill and decode replicas."""
    from hetopt.fleet.spec import fleet_from_dict
    from hetopt.hardware.spec import HardwareSpec
    from hetopt.pipeline import PlanRequest, plan_agent
    from hetopt.workloads import Workload, load_workload_data

    hardware = HardwareSpec(devices=("H100",))
    costs = CostParams(llm_pools="buckets", aggregated=aggregated)
    fleet = fleet_from_dict(
        {"tenants": [{"workload": "chat_agent", "request_rate_per_s": 0.25, "count": 2}]}
    )
    fp = build_fleet_problem(fleet, hardware, costs)
    res = solve_fleet(fp, SolverOptions(), method="monolithic")
    assert res.status is SolveStatus.OPTIMAL
    assert verify_fleet(fp, res.choices, res.pool_counts, res.objective_usd_per_h) == ()
    workload = dict(load_workload_data("chat_agent"))
    workload["request_rate_per_s"] = 0.5
    one = plan_agent(
        PlanRequest(workload=Workload.from_mapping(workload), hardware=hardware, costs=costs)
    )
    assert res.objective_usd_per_h == pytest.approx(one.plan.tco_usd_per_hour, rel=1e-9)
    assert res.objective_usd_per_h == pytest.approx(1.716 if aggregated else 3.432, abs=1e-3)
    apart = build_fleet_problem(fleet, hardware, CostParams(llm_pools="off"))
    alone = solve_fleet(apart, SolverOptions(), method="monolithic")
    assert alone.objective_usd_per_h == pytest.approx(2 * 3.432, abs=2e-3)
