"""The pools' ceilings as a correction to the decomposition's bound (``hetopt.fleet.ceilings``).

Hand-derived anchors fix the correction where it closes the gap, where pools fill exactly and
where identical tenants are aggregated; a binding SLA exercises the hinge ``s_t``; on random
pooled fleets ``LB + C`` never exceeds the enumerated optimum, for the fluid split and for a
split taken from a plan.
"""

from __future__ import annotations

import random
import time

import numpy as np
import pytest

from hetopt.fleet.ceilings import CeilingBound, ceiling_bound
from hetopt.fleet.decomposition import KeySplit, key_split, priced, solve_decomposed
from hetopt.fleet.heuristics import exhaustive
from hetopt.fleet.problem import FleetProblem, fleet_from_problems
from hetopt.problem import PlacementProblem
from hetopt.sla import Sla
from hetopt.solvers import solve
from hetopt.solvers.base import SolverOptions, SolveStatus
from hetopt.testing import Opt, tiny_problem

OPTIONS = SolverOptions(gap_rel=1e-9, time_limit_s=20)


def _bounds(
    fp: FleetProblem, split: KeySplit | None = None, limit_s: float = 20.0
) -> tuple[float, CeilingBound] | None:
    """The decomposition's first bound at list prices (``mu = 0``) and the ceilings'
    correction, from the inputs the decomposition computes; None when a tenant's relaxed
    subproblem has no plan."""
    split = key_split(fp) if split is None else split
    price = fp.device_cost_usd_per_h
    cost, pay, bound = [], [], []
    for t, p in enumerate(fp.tenants):
        pay_t = split.option_usd_per_h(fp, t, price)
        sub = priced(p, price, pay_t)
        res = solve(sub, OPTIONS)
        if not res.has_solution:
            return None
        cost.append(sub.opt_fixed_usd_per_h())
        pay.append(pay_t)
        bound.append(res.bound)
    deadline = time.perf_counter() + limit_s
    corr = ceiling_bound(fp, cost, pay, bound, fp.key_usd_per_h(), deadline, OPTIONS)
    return float(sum(bound)), corr


def _llm(name: str, load: float, sla: Sla | None = None) -> PlacementProblem:
    """An LLM on pool g (10 $/h a replica) at ``load``, or on a dedicated H (8 $/h)."""
    ops = {"llm": [Opt("G", 0.1, key="g", load=load), Opt("H", 0.1, dedicated=1)]}
    return tiny_problem(ops, {"G": 10.0, "H": 8.0}, sla=sla, outside_keys={"g"}, name=name)


def test_the_correction_closes_the_gap_of_a_half_empty_pool() -> None:
    """Loads 0.6: g pays 6 $/h fluidly, so each bound is 6 and LB = 12. rho_A = 0, rho_B =
    8 - 6 = 2. Both on g: 2 replicas, 20 - 12 = 8 of waste; one each way: 10 - 6 + 2 = 6;
    both dedicated: 2 + 2 = 4, the least. LB + C = 16, the optimum (both dedicated)."""
    fp = fleet_from_problems([_llm("a", 0.6), _llm("b", 0.6)])
    out = _bounds(fp)
    assert out is not None
    lb, corr = out
    assert lb == pytest.approx(12.0)
    assert corr.usd_per_h == pytest.approx(4.0, abs=1e-6)
    assert (corr.families, corr.closed) == (1, 1)
    assert lb + corr.usd_per_h == pytest.approx(16.0, abs=1e-6)
    assert exhaustive(fp).objective_usd_per_h == pytest.approx(16.0)


def test_pools_that_fill_exactly_add_nothing() -> None:
    """Loads 0.5: both on g fill one replica, paid 5 + 5 = 10 fluidly: the start's waste is 0,
    so C = 0 and LB = 10 is the optimum."""
    fp = fleet_from_problems([_llm("a", 0.5), _llm("b", 0.5)])
    out = _bounds(fp)
    assert out is not None
    lb, corr = out
    assert corr == CeilingBound(0.0, 0, 0)
    assert lb == pytest.approx(10.0)
    assert exhaustive(fp).objective_usd_per_h == pytest.approx(10.0)


@pytest.mark.parametrize("templates", [None, ["t", "t", "t"]])
def test_identical_tenants_aggregate_to_the_same_correction(templates: list[str] | None) -> None:
    """Three tenants at load 0.5 (pay 5, bound 5, LB 15, rho_B = 3). With a of them on g:
    a = 3: 2 replicas, 20 - 15 = 5 (the start); a = 2: 10 - 10 + 3 = 3; a = 1: 10 - 5 + 6 =
    11; a = 0: 9. C = 3 whether the tenants are one class (one count y in [0, 3]) or three,
    and LB + C = 18, the optimum (two on g, one dedicated)."""
    fp = fleet_from_problems([_llm(n, 0.5) for n in "abc"], templates=templates)
    assert len(np.unique(fp.tenant_class)) == (1 if templates else 3)
    out = _bounds(fp)
    assert out is not None
    lb, corr = out
    assert lb == pytest.approx(15.0)
    assert corr.usd_per_h == pytest.approx(3.0, abs=1e-6)
    assert (corr.families, corr.closed) == (1, 1)
    assert exhaustive(fp).objective_usd_per_h == pytest.approx(18.0)


def test_a_binding_sla_shrinks_the_charges_by_the_hinge() -> None:
    """Two operators in a chain, each on g (load 0.6, 0.6 s, pays 6) or a dedicated H (8 $/h,
    0.1 s), under a 1 s SLA: one operator at least is dedicated, bound 14 = 12 + s with s = 2,
    LB = 28. rho_B = max(0, 2 - 2) = 0 and every waste is >= 0 with none on g: C = 0. The
    optimum dedicates all four (32 $/h); without the hinge (rho_B = 2) all-dedicated would
    be charged 8 and LB + C = 36 would overshoot it."""
    sla = Sla(ttft_s=None, tbt_s=None, e2e_s=1.0)

    def tenant(name: str) -> PlacementProblem:
        opts = [Opt("G", 0.6, key="g", load=0.6), Opt("H", 0.1, dedicated=1)]
        return tiny_problem(
            {"a": opts, "b": opts},
            {"G": 10.0, "H": 8.0},
            [("a", "b", 0.0)],
            sla=sla,
            outside_keys={"g"},
            name=name,
        )

    fp = fleet_from_problems([tenant("x"), tenant("y")])
    out = _bounds(fp)
    assert out is not None
    lb, corr = out
    assert lb == pytest.approx(28.0)
    assert corr.usd_per_h == pytest.approx(0.0, abs=1e-9)
    assert exhaustive(fp).objective_usd_per_h == pytest.approx(32.0)


def test_families_left_at_the_deadline_add_nothing() -> None:
    fp = fleet_from_problems([_llm("a", 0.6), _llm("b", 0.6)])
    out = _bounds(fp, limit_s=-1.0)
    assert out is not None
    assert out[1] == CeilingBound(0.0, 1, 0)


def _pool_options(
    rng: random.Random,
    keys: dict[str, tuple[str, int]],
    direct_usd_per_h: list[float],
    dims: list[str] | None = None,
) -> list[Opt]:
    """An option on each of ``keys`` with probability 0.7, at random latency and load (and
    capacity, when ``dims`` is given)."""
    out = []
    for k, (dev, dpr) in keys.items():
        if rng.random() < 0.7:
            latency_s = round(rng.uniform(0.05, 0.4), 3)
            load = round(rng.uniform(0.1, 1.4), 2)
            dim = rng.choice(dims) if dims else ""
            direct = rng.choice(direct_usd_per_h)
            out.append(
                Opt(dev, latency_s, key=k, load=load, dpr=dpr, dim=dim, direct_usd_per_h=direct)
            )
    return out


def _random_fleet(seed: int) -> FleetProblem:
    """2-4 tenants of 1-3 operators (6 at most), each on some of 2-3 shared pools at random
    loads, or dedicated; sometimes a chain under an SLA that binds."""
    rng = random.Random(seed)
    pools = {"g": ("A", 1), "h": ("B", 2), "k": ("A", 1)}
    keys = dict(list(pools.items())[: rng.choice([2, 3])])
    n_tenants = rng.choice([2, 3, 4])
    tenants = []
    for t in range(n_tenants):
        ops: dict[str, list[Opt]] = {}
        for i in range(rng.choice([1, 2, 3][: max(1, 6 // n_tenants)])):
            opts = _pool_options(rng, keys, [0.0, 0.5])
            opts.append(Opt("C", round(rng.uniform(0.05, 0.6), 3), dedicated=rng.choice([1, 2])))
            ops[f"op{i}"] = opts
        names = list(ops)
        edges = [(a, b, 0.01) for a, b in zip(names[:-1], names[1:], strict=False)]
        tenants.append(
            tiny_problem(
                ops,
                {"A": 2.0, "B": 1.2, "C": 0.9},
                edges,
                sla=Sla(ttft_s=None, tbt_s=None, e2e_s=rng.choice([None, 0.5, 0.7])),
                name=f"t{t}",
                outside_keys=list(keys),
            )
        )
    return fleet_from_problems(tenants)


@pytest.mark.parametrize("seed", range(16))
def test_the_corrected_bound_stays_below_the_optimum(seed: int) -> None:
    fp = _random_fleet(seed)
    best = exhaustive(fp)
    splits = [key_split(fp)] + ([key_split(fp, best.choices)] if best.choices else [])
    for split in splits:
        out = _bounds(fp, split)
        if out is None:
            assert best.choices is None
            continue
        lb, corr = out
        assert corr.usd_per_h >= 0.0
        assert corr.closed <= corr.families
        if best.choices is not None:
            assert lb + corr.usd_per_h <= best.objective_usd_per_h + 1e-6


def test_the_decomposition_proves_a_ceiling_bound_optimum() -> None:
    """Two tenants, an LLM each: pool g (10 $/h a replica, load 0.6) or 8 $/h on their own.
    The fluid bound is 12 (each pays 6 of g); both on g need 2 replicas (20), one each way 18,
    both on their own 16, the optimum. Only the ceilings' correction (4) proves it."""

    def tenant(name: str) -> object:
        ops = {"llm": [Opt("G", 0.1, key="g", load=0.6), Opt("H", 0.1, dedicated=1)]}
        return tiny_problem(ops, {"G": 10.0, "H": 8.0}, outside_keys={"g"}, name=name)

    fp = fleet_from_problems([tenant("a"), tenant("b")])  # type: ignore[list-item]
    res = solve_decomposed(fp, SolverOptions(time_limit_s=20, gap_rel=1e-6))
    assert res.objective_usd_per_h == pytest.approx(16.0)
    assert res.bound_usd_per_h == pytest.approx(16.0)
    assert res.status is SolveStatus.OPTIMAL


def _rich_fleet(seed: int) -> FleetProblem:
    """Like :func:`_random_fleet`, plus what the whole decomposition meets: classes of
    identical tenants, aggregated pools' two capacities, light pooled options, edge costs,
    soft SLAs and a finite inventory (so the inventory prices move)."""
    rng = random.Random(seed)
    pools = {"g": ("A", 1), "h": ("B", 2), "k": ("A", 1)}
    keys = dict(list(pools.items())[: rng.choice([1, 2, 3])])
    sizes = [rng.choice([1, 2]) for _ in range(rng.choice([1, 2, 3]))]
    while sum(sizes) > 4:
        sizes = [s for s in sizes[:-1] + [sizes[-1] - 1] if s > 0]
    soft = rng.random() < 0.4
    tenants, templates = [], []
    for c, size in enumerate(sizes):
        ops: dict[str, list[Opt]] = {}
        for i in range(rng.choice([1, 2, 3][: max(1, 5 // sum(sizes))])):
            opts = _pool_options(rng, keys, [0.0, 0.3], ["", "", "chunk", "slots"])
            opts.append(Opt("C", round(rng.uniform(0.05, 0.6), 3), dedicated=rng.choice([1, 2])))
            if rng.random() < 0.5:
                load = round(rng.uniform(0.1, 0.7), 2)
                opts.append(Opt("C", round(rng.uniform(0.05, 0.6), 3), pool_load=load))
            ops[f"op{i}"] = opts
        names = list(ops)
        edges = [(a, b, 0.01) for a, b in zip(names[:-1], names[1:], strict=False)]
        e2e = rng.choice([None, 0.5, 0.7])
        penalty = rng.choice([1.0, 10.0]) if soft and e2e else None
        sla = Sla(ttft_s=None, tbt_s=None, e2e_s=e2e, penalty_usd_per_h_per_s=penalty)
        for m in range(size):
            tenants.append(
                tiny_problem(
                    ops,
                    {"A": 2.0, "B": 1.2, "C": 0.9},
                    edges,
                    edge_cost_usd_per_h=[rng.choice([0.0, 0.2]) for _ in edges],
                    sla=sla,
                    name=f"c{c}m{m}",
                    outside_keys=list(keys),
                )
            )
            templates.append(f"c{c}")
    inventory = (
        {rng.choice(["A", "B", "C"]): rng.choice([1, 2, 3, 4])} if rng.random() < 0.6 else None
    )
    return fleet_from_problems(tenants, templates=templates, inventory=inventory)


@pytest.mark.parametrize("seed", [40, 41, 43, 47, 52, 58, 61, 66])
def test_the_decomposition_bound_stays_below_the_optimum_on_random_fleets(seed: int) -> None:
    """The whole run, ceilings and inventory prices included: its bound never passes the
    exhaustive optimum and its plan is never cheaper than it."""
    fp = _rich_fleet(seed)
    best = exhaustive(fp)
    res = solve_decomposed(fp, SolverOptions(time_limit_s=2.4, threads=1, gap_rel=1e-6))
    if best.choices is None:
        assert res.choices is None or res.status is not SolveStatus.OPTIMAL
        return
    assert res.bound_usd_per_h <= best.objective_usd_per_h + 1e-6
    if res.choices is not None:
        assert res.objective_usd_per_h >= best.objective_usd_per_h - 1e-6
