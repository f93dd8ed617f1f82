"""TCO per device-hour: the paper's financing anchors, power, cloud mode, monotonicity."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hetopt.costs.tco import (
    HOURS_PER_MONTH,
    TCO_COLUMNS,
    TcoParams,
    annuity_payment_usd,
    device_tco,
    tco_table,
)
from hetopt.errors import InputError
from hetopt.hardware import Device, HardwareCatalog, load_catalog

CATALOG = load_catalog()
PAPER = TcoParams()  # 4 years at 8 %, $0.40/kWh, every node at TDP

# paper.md section 10b: 4-year monthly payments at 8 % APR over 8760 h/yr
CAPEX_ANCHORS_USD_PER_H = {
    "A40": 0.100,
    "A100": 0.268,
    "Gaudi3": 0.418,
    "MI300X": 0.669,
    "H100": 0.836,
    "B200": 1.338,
}


def _variant(device: Device, **changes: float) -> Device:
    return Device.model_validate({**device.model_dump(), **changes})


@pytest.mark.parametrize(("name", "capex"), list(CAPEX_ANCHORS_USD_PER_H.items()))
def test_capex_matches_paper_financing(name: str, capex: float) -> None:
    assert device_tco(CATALOG.get(name), PAPER).capex_usd_per_h == pytest.approx(capex, abs=0.002)


def test_annuity_closed_forms() -> None:
    assert annuity_payment_usd(12_000, 0.0, 1) == pytest.approx(1_000)
    # 48 payments of the level annuity repay more than the principal, by the interest
    assert 48 * annuity_payment_usd(25_000, 0.08, 4) == pytest.approx(29_295, abs=5)
    assert HOURS_PER_MONTH == 8760 / 12


def test_own_mode_components_sum_to_total() -> None:
    h100 = device_tco(CATALOG.get("H100"), PAPER)
    assert h100.device == "H100"
    assert h100.power_usd_per_h == pytest.approx(0.7 * 0.40)
    assert h100.opex_usd_per_h == 0.60
    assert h100.cloud_usd_per_h == 0.0
    assert h100.total_usd_per_h == pytest.approx(0.836 + 0.28 + 0.60, abs=0.002)
    no_opex = device_tco(CATALOG.get("H100"), TcoParams(include_operating_cost=False))
    assert no_opex.total_usd_per_h == pytest.approx(h100.total_usd_per_h - 0.60)


@pytest.mark.parametrize("name", ["A40", "Gaudi3", "B200", "L4", "Xeon-SPR"])
@pytest.mark.parametrize(("usd_per_kwh", "pue"), [(0.40, 1.0), (0.10, 1.5), (0.0, 1.2)])
def test_power_term_is_tdp_times_price_times_pue(name: str, usd_per_kwh: float, pue: float) -> None:
    device = CATALOG.get(name)
    tco = device_tco(device, TcoParams(usd_per_kwh=usd_per_kwh, pue=pue))
    assert tco.power_kw == pytest.approx(device.tdp_w / 1000)
    assert tco.power_usd_per_h == pytest.approx(device.tdp_w / 1000 * usd_per_kwh * pue)
    embodied = (150.0 + 2.1 * device.mem_gb) / (4 * 8760)  # default embodied estimate, 4 years
    assert tco.embodied_kgco2_per_h == pytest.approx(embodied)
    assert tco.carbon_kgco2_per_h == pytest.approx(device.tdp_w / 1000 * pue * 0.4 + embodied)


def test_utilization_scales_power_and_carbon() -> None:
    half = device_tco(CATALOG.get("B200"), TcoParams(utilization_power_fraction=0.5))
    assert half.power_kw == pytest.approx(0.5)
    assert half.power_usd_per_h == pytest.approx(0.20)
    assert half.carbon_kgco2_per_h - half.embodied_kgco2_per_h == pytest.approx(0.20)


def test_cloud_mode_uses_cloud_price() -> None:
    params = TcoParams(mode="cloud", pue=1.2, grid_kgco2_per_kwh=0.5)
    h100 = device_tco(CATALOG.get("H100"), params)
    assert h100.total_usd_per_h == h100.cloud_usd_per_h == 2.57
    assert h100.capex_usd_per_h == h100.power_usd_per_h == h100.opex_usd_per_h == 0.0
    assert h100.carbon_kgco2_per_h == pytest.approx(0.7 * 1.2 * 0.5 + h100.embodied_kgco2_per_h)


def test_cloud_mode_without_price_names_device_and_fix() -> None:
    with pytest.raises(InputError, match=r"'Gaudi3' has no cloud price.*tco.mode=own"):
        device_tco(CATALOG.get("Gaudi3"), TcoParams(mode="cloud"))
    with pytest.raises(InputError, match=r"Gaudi3, H200 have an empty 'cloud_usd_per_h'"):
        tco_table(CATALOG.select(["H100", "Gaudi3", "H200"]), TcoParams(mode="cloud"))


def test_tco_table_shape() -> None:
    table = tco_table(CATALOG, PAPER)
    assert table.index.name == "device"
    assert list(table.index) == list(CATALOG.names)
    assert tuple(table.columns) == TCO_COLUMNS
    parts = table[["capex_usd_per_h", "power_usd_per_h", "opex_usd_per_h", "cloud_usd_per_h"]]
    assert parts.sum(axis=1).to_numpy() == pytest.approx(table["total_usd_per_h"].to_numpy())
    assert table.loc["B200", "capex_usd_per_h"] == pytest.approx(1.338, abs=0.002)
    assert tco_table(HardwareCatalog(()), PAPER).empty


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mode", "rent"),
        ("amortization_years", 0.0),
        ("interest_rate", -0.01),
        ("usd_per_kwh", float("nan")),
        ("pue", 0.9),
        ("grid_kgco2_per_kwh", -1.0),
        ("utilization_power_fraction", 1.5),
        ("include_operating_cost", "yes"),
    ],
)
def test_bad_params_name_the_field(field: str, value: object) -> None:
    with pytest.raises(InputError, match=f"'{field}'"):
        TcoParams(**{field: value})  # type: ignore[arg-type]


_BASE = CATALOG.get("H100")
_prices = st.floats(min_value=100.0, max_value=1e6, allow_nan=False)
_kwh = st.floats(min_value=0.0, max_value=2.0, allow_nan=False)
_rates = st.floats(min_value=0.0, max_value=0.3, allow_nan=False)
_years = st.floats(min_value=0.5, max_value=10.0, allow_nan=False)


@given(p1=_prices, p2=_prices, rate=_rates, years=_years)
def test_total_increases_with_price(p1: float, p2: float, rate: float, years: float) -> None:
    low, high = sorted((p1, p2))
    params = TcoParams(interest_rate=rate, amortization_years=years)
    cost_low = device_tco(_variant(_BASE, price_usd=low), params).total_usd_per_h
    cost_high = device_tco(_variant(_BASE, price_usd=high), params).total_usd_per_h
    assert cost_low <= cost_high
    if high > low * (1 + 1e-9):
        assert cost_low < cost_high


@given(k1=_kwh, k2=_kwh, tdp_w=st.floats(min_value=10.0, max_value=2000.0))
def test_total_increases_with_electricity_price(k1: float, k2: float, tdp_w: float) -> None:
    low, high = sorted((k1, k2))
    device = _variant(_BASE, tdp_w=tdp_w)
    cost_low = device_tco(device, TcoParams(usd_per_kwh=low)).total_usd_per_h
    cost_high = device_tco(device, TcoParams(usd_per_kwh=high)).total_usd_per_h
    assert cost_low <= cost_high
    if high > low + 1e-9:
        assert cost_low < cost_high
