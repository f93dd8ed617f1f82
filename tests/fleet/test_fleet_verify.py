"""The fleet's independent check (built on the single-agent recomputation) passes every
solver's fleet plan and catches mutated ones (random fleets: tests/fleet/test_fleet.py)."""

from __future__ import annotations

import pytest

from hetopt.fleet.plan import FleetRequest, plan_fleet
from hetopt.fleet.problem import FleetProblem, fleet_from_problems
from hetopt.fleet.solve import solve_fleet
from hetopt.fleet.spec import fleet_from_dict
from hetopt.fleet.verify import verify_fleet
from hetopt.pipeline import HardwareSpec
from hetopt.sla import Sla
from hetopt.solvers.base import SolverOptions
from hetopt.testing import Opt, tiny_problem


def _tenant(name: str) -> object:
    """As in test_fleet.py: llm on 2 G (0.1 s) or 30 C (2 s); tool pooled on C or G."""
    return tiny_problem(
        {
            "llm": [Opt("G", 0.1, dedicated=2), Opt("C", 2.0, dedicated=30)],
            "tool": [
                Opt("C", 0.05, pool_load=0.6, pool_mem_bytes=6e9),
                Opt("G", 0.01, pool_load=0.1, pool_mem_bytes=6e9),
            ],
        },
        {"G": 10.0, "C": 1.0},
        [("llm", "tool", 0.5)],
        sla=Sla(ttft_s=None, tbt_s=None, e2e_s=1.0),
        name=name,
    )


def _pair(templates: list[str], **inventory: int) -> FleetProblem:
    return fleet_from_problems(
        [_tenant("a"), _tenant("b")],  # type: ignore[list-item]
        name="pair",
        inventory=inventory,
        mem_bytes={"G": 10e9, "C": 10e9},
        templates=templates,
    )


@pytest.mark.parametrize("backend", ["highs", "cbc", "cpsat"])
def test_every_backends_fleet_plan_verifies(backend: str) -> None:
    fp = _pair(["t", "t"])
    res = solve_fleet(fp, SolverOptions(backend=backend, time_limit_s=30), method="monolithic")
    assert res.choices is not None and res.verified
    assert verify_fleet(fp, res.choices, res.pool_counts, res.objective_usd_per_h) == ()


def test_mutated_fleet_plans_are_caught() -> None:
    fp = _pair(["t", "t"])
    res = solve_fleet(fp, SolverOptions(time_limit_s=30), method="monolithic")
    assert res.choices is not None and res.pool_counts is not None
    # Optimum: both llm on 2 G, both tools in one C pool (load 1.2 -> 2 C): 42 $/h.
    assert res.objective_usd_per_h == pytest.approx(42.0)
    fewer = tuple(
        n - 1 if d == "C" else n for d, n in zip(fp.devices, res.pool_counts, strict=True)
    )
    assert any("shared pool of C has 1" in v for v in verify_fleet(fp, res.choices, fewer))
    cheaper = verify_fleet(fp, res.choices, res.pool_counts, 40.0)
    assert any("reports objective 40.000000" in v and "42.000000" in v for v in cheaper)
    slow = ((1, 2), res.choices[1])  # tenant a's llm on 30 C: 2 s > 1 s
    assert any("tenant 'a'" in v and "exceeds the SLA" in v for v in verify_fleet(fp, slow))
    capped = _pair(["t", "t"], C=1)
    assert any("inventory has 1" in v for v in verify_fleet(capped, res.choices))


def test_shared_footprints_count_once_per_template() -> None:
    """Both tools in one C pool: one 6 GB copy for one template fits 10 GB, two do not."""
    both_on_c = ((0, 2), (0, 2))
    assert verify_fleet(_pair(["t", "t"]), both_on_c) == ()
    found = verify_fleet(_pair(["t", "u"]), both_on_c)
    assert any("holds 12.00 GB per device, more than its 10.00 GB" in v for v in found)


def test_catalog_fleet_plan_passes_the_independent_check() -> None:
    spec = fleet_from_dict(
        {
            "name": "two",
            "tenants": [
                {"name": "voice", "workload": "voice_agent", "request_rate_per_s": 1.0},
                {"name": "rag", "workload": "rag_agent", "request_rate_per_s": 2.0},
            ],
        },
        "test",
    )
    out = plan_fleet(FleetRequest(spec, HardwareSpec(devices=("L4", "A100", "H100")), baselines=()))
    assert out.result.verified
    assert out.violations == ()
    assert out.problem.tenants[0].raw_inputs is not None


def test_a_plan_the_independent_check_rejects_is_reported_unverified() -> None:
    """What verify_fleet finds reaches the outcome's verdict and fleet_plan.json's summary."""
    from hetopt.fleet.plan import FleetOutcome
    from hetopt.fleet.report import summary

    fp = _pair(["a", "b"])
    res = solve_fleet(fp, SolverOptions(time_limit_s=30), method="monolithic")
    assert res.verified
    clean = FleetOutcome(fp, res, ())
    flagged = FleetOutcome(fp, res, (), ("pool of L4 has 0 devices but its load needs 0.3",))
    assert clean.verified and not flagged.verified
    info = summary(fp, res, (), flagged.violations)
    assert info["verified"] is False
    assert info["violations"] == list(flagged.violations)
    assert summary(fp, res)["verified"] is True
