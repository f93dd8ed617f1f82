"""What-if cost edits, checked against hand-derived numbers: prices, installed fleet, carbon."""

from __future__ import annotations

import math

import pytest

from hetopt.costs.table import CostParams
from hetopt.costs.tco import HOURS_PER_YEAR, TcoParams, annuity_payment_usd, device_tco
from hetopt.errors import InputError
from hetopt.hardware import load_catalog
from hetopt.hardware.scenario import Scenario, apply_scenario
from hetopt.hardware.spec import HardwareSpec
from hetopt.pipeline import PlanRequest, plan_agent
from hetopt.sla import Sla
from hetopt.workloads import load_workload

H100 = load_catalog().get("H100")


def test_price_scale_and_decline_scale_the_financed_capex() -> None:
    cat, inv = apply_scenario(
        load_catalog().select(["H100", "B200"]),
        Scenario(price_scale={"H100": 0.5}, years_ahead=2, price_decline_per_year=0.1),
    )
    assert inv == {}
    h = cat.get("H100")
    assert h.price_usd == pytest.approx(25_000 * 0.5 * 0.9**2)
    assert h.cloud_usd_per_h == pytest.approx(2.57 * 0.5 * 0.81)
    expected = annuity_payment_usd(h.price_usd, 0.08, 4) / (HOURS_PER_YEAR / 12)
    assert device_tco(h).capex_usd_per_h == pytest.approx(expected)


def test_installed_device_costs_its_forgone_resale_value_and_no_embodied_carbon() -> None:
    cat, inv = apply_scenario(
        load_catalog().select(["H100"]),
        Scenario(owned={"H100": 8}, owned_age_years=2.0, years_ahead=1.0),
    )
    assert inv == {"H100-owned": 8}
    owned = cat.get("H100-owned")
    assert owned.age_years == 3.0
    params = TcoParams(depreciation_per_year=0.3, interest_rate=0.08)
    t = device_tco(owned, params)
    value = 25_000 * 0.7**3  # 8,575 $ resale value at 3 years
    assert t.capex_usd_per_h == pytest.approx(value * (0.3 + 0.08) / 8760)
    assert t.power_usd_per_h == pytest.approx(0.7 * 0.40)
    assert t.opex_usd_per_h == pytest.approx(0.6)
    assert t.embodied_kgco2_per_h == 0.0
    assert t.carbon_kgco2_per_h == pytest.approx(0.7 * 0.4)
    new = device_tco(H100, params)
    assert new.total_usd_per_h > t.total_usd_per_h


def test_embodied_carbon_and_carbon_price() -> None:
    a100 = load_catalog().get("A100")
    t = device_tco(a100, TcoParams(carbon_usd_per_tonne=100.0))
    embodied = (150.0 + 2.1 * 80) / (4 * 8760)  # 318 kgCO2e over 4 years
    assert t.embodied_kgco2_per_h == pytest.approx(embodied)
    assert t.carbon_kgco2_per_h == pytest.approx(0.4 * 0.4 + embodied)
    assert t.carbon_usd_per_h == pytest.approx(t.carbon_kgco2_per_h * 0.1)
    plain = device_tco(a100)
    assert t.total_usd_per_h == pytest.approx(plain.total_usd_per_h + t.carbon_usd_per_h)
    with pytest.raises(InputError, match="carbon_usd_per_tonne"):
        TcoParams(carbon_usd_per_tonne=-1)


@pytest.mark.parametrize(
    "scenario, match",
    [
        (Scenario(price_scale={"Nope": 0.5}), "price_scale"),
        (Scenario(price_scale={"H100": 0.0}), "price_scale"),
        (Scenario(owned={"H100": -1}), "owned"),
        (Scenario(price_decline_per_year=1.0), "price_decline_per_year"),
    ],
)
def test_bad_scenarios_name_the_key(scenario: Scenario, match: str) -> None:
    with pytest.raises(InputError, match=match):
        apply_scenario(load_catalog(), scenario)


def test_brownfield_plan_keeps_installed_devices_within_their_count() -> None:
    """Installed A100s are cheap to keep: the plan uses them, never more than are installed.

    The mechanics of installed rows are tested on the roofline, where the A100 is fast enough
    to be worth keeping (the calibrated A100 is not, for this agent).
    """
    workload = load_workload("voice_agent")
    sla = Sla(ttft_s=0.25, tbt_s=0.02, e2e_s=15.0)  # the CLI's default for this agent
    costs = CostParams(model="roofline")
    hw = HardwareSpec(owned={"A100": 16}, owned_age_years=3.0)
    plan = plan_agent(PlanRequest(workload, hardware=hw, sla=sla, costs=costs)).plan
    assert plan.verified
    used = plan.devices.set_index("device")["total"].to_dict()
    assert 0 < used.get("A100-owned", 0) <= 16
    greenfield = plan_agent(PlanRequest(workload, sla=sla, costs=costs)).plan
    assert plan.tco_usd_per_hour < greenfield.tco_usd_per_hour
    # With only 2 installed, the planner keeps what fits and buys the rest.
    small = plan_agent(
        PlanRequest(
            workload,
            sla=sla,
            costs=costs,
            hardware=HardwareSpec(owned={"A100": 2}, owned_age_years=3.0),
        )
    ).plan
    assert small.devices.set_index("device")["total"].get("A100-owned", 0) <= 2
    assert small.verified and math.isfinite(small.tco_usd_per_hour)
