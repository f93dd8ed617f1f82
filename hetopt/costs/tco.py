"""Total cost of ownership per device-hour, and the carbon that comes with it.

The paper's TCO (section 5.1): hardware is financed over a fixed 4-year amortization at 8 %
interest, every node runs at its maximum rated TDP, electricity costs $0.40/kWh, and
datacenter/colocation fees and NRE are excluded. Owning a device for one hour therefore costs

    capex   = level monthly annuity payment on the price / hours per month
    power   = TDP (kW) x utilization_power_fraction x PUE x $/kWh
    opex    = the catalog's operating cost ($/h, the paper's Table 5 column)
    total   = capex + power + opex

Renting it costs its cloud price, which already includes power and operations. Carbon is
charged for the facility power in both modes, plus the device's embodied (manufacturing)
emissions spread over its amortisation years; ``carbon_usd_per_tonne`` puts a price on both.

An installed device (catalog ``age_years`` set: the brownfield case) has sunk capex and sunk
embodied carbon. Keeping it for another hour costs the resale value it gives up: its value after
``age_years`` of declining-balance depreciation, times (depreciation + interest) per year, i.e.
what the value falls by plus the interest the sale money would earn. Power and operations are
paid as for a new device.

The paper does not define its "operating cost" column. It is larger than TDP x $0.40/kWh for
every Table 5 device, so it may already contain power (see the reference notes, paper.md
section 10b); set ``include_operating_cost=False`` or ``usd_per_kwh=0`` to avoid counting
power twice under that reading.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from typing import Literal

import pandas as pd

from hetopt.errors import InputError
from hetopt.hardware import Device, HardwareCatalog
from hetopt.hardware.spec import HardwareSpec, resolve_catalog

logger = logging.getLogger(__name__)

HOURS_PER_YEAR = 8760.0
MONTHS_PER_YEAR = 12
HOURS_PER_MONTH = HOURS_PER_YEAR / MONTHS_PER_YEAR

TcoMode = Literal["own", "cloud"]


@dataclass(frozen=True)
class TcoParams:
    """How to turn a device's price, power and operating cost into $/h.

    Parameters
    ----------
    mode
        ``"own"``: finance the purchase and pay power and operations. ``"cloud"``: rent at
        the catalog's ``cloud_usd_per_h``.
    amortization_years
        Financing term in years (paper: 4).
    interest_rate
        Annual interest rate as a fraction, compounded monthly (paper: 0.08).
    usd_per_kwh
        Electricity price (paper: 0.40).
    pue
        Power usage effectiveness, facility power / IT power, >= 1 (paper: none, i.e. 1.0).
    include_operating_cost
        Add the catalog's ``operating_cost_usd_per_h`` in own mode.
    grid_kgco2_per_kwh
        Carbon intensity of the electricity.
    utilization_power_fraction
        Average power draw as a fraction of TDP (paper: every node at TDP, i.e. 1.0).
    carbon_usd_per_tonne
        Carbon price added to the hourly cost, per tonne of CO2e (operational and embodied;
        0: carbon is reported, not priced). Sweeping it traces the TCO-carbon Pareto frontier.
    embodied_base_kgco2, embodied_kgco2_per_gb
        Embodied emissions of a device whose catalog row leaves ``embodied_kgco2`` empty:
        base + per_gb x mem_gb. The defaults give 318 kgCO2e for an 80 GB A100, the per-GPU
        estimate of Chien et al., HotCarbon'23 (1/8 of an 8-GPU instance, host included); the
        split between base and memory is an assumption.
    depreciation_per_year
        Yearly fall in the resale value of an installed device (declining balance), for
        catalog rows with ``age_years`` (brownfield).
    """

    mode: TcoMode = "own"
    amortization_years: float = 4.0
    interest_rate: float = 0.08
    usd_per_kwh: float = 0.40
    pue: float = 1.0
    include_operating_cost: bool = True
    grid_kgco2_per_kwh: float = 0.4
    utilization_power_fraction: float = 1.0
    carbon_usd_per_tonne: float = 0.0
    embodied_base_kgco2: float = 150.0
    embodied_kgco2_per_gb: float = 2.1
    depreciation_per_year: float = 0.3

    def __post_init__(self) -> None:
        if self.mode not in ("own", "cloud"):
            raise InputError(
                f"TCO parameter 'mode' is {self.mode!r}; use 'own' (finance the hardware) or "
                "'cloud' (rent at the catalog's cloud_usd_per_h), e.g. tco.mode=own."
            )
        if not isinstance(self.include_operating_cost, bool):
            raise InputError(
                f"TCO parameter 'include_operating_cost' is {self.include_operating_cost!r}; "
                "use true or false."
            )
        _check_number(
            "amortization_years",
            self.amortization_years,
            low=0.0,
            low_inclusive=False,
            hint="a financing term in years, e.g. 4",
        )
        _check_number(
            "interest_rate",
            self.interest_rate,
            low=0.0,
            high=1.0,
            hint="an annual rate as a fraction, e.g. 0.08 for 8 %",
        )
        _check_number(
            "usd_per_kwh",
            self.usd_per_kwh,
            low=0.0,
            hint="an electricity price in $/kWh, e.g. 0.40",
        )
        _check_number(
            "pue",
            self.pue,
            low=1.0,
            hint="facility power / IT power, at least 1.0 (1.1-1.8 is typical)",
        )
        _check_number(
            "grid_kgco2_per_kwh",
            self.grid_kgco2_per_kwh,
            low=0.0,
            hint="a grid carbon intensity in kgCO2/kWh, e.g. 0.4",
        )
        _check_number(
            "utilization_power_fraction",
            self.utilization_power_fraction,
            low=0.0,
            high=1.0,
            hint="average power as a fraction of TDP, 0 to 1",
        )
        _check_number(
            "carbon_usd_per_tonne",
            self.carbon_usd_per_tonne,
            low=0.0,
            hint="a carbon price in $/tCO2e, e.g. 100",
        )
        _check_number(
            "embodied_base_kgco2",
            self.embodied_base_kgco2,
            low=0.0,
            hint="embodied kgCO2e per device, e.g. 150",
        )
        _check_number(
            "embodied_kgco2_per_gb",
            self.embodied_kgco2_per_gb,
            low=0.0,
            hint="embodied kgCO2e per GB of device memory, e.g. 2.1",
        )
        _check_number(
            "depreciation_per_year",
            self.depreciation_per_year,
            low=0.0,
            high=1.0,
            hint="yearly fall of resale value as a fraction, e.g. 0.3",
        )


def _check_number(
    name: str,
    value: object,
    *,
    low: float,
    hint: str,
    high: float | None = None,
    low_inclusive: bool = True,
) -> None:
    ok = False
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        above = value >= low if low_inclusive else value > low
        ok = above and (high is None or value <= high)
    if not ok:
        bound = f"{'>=' if low_inclusive else '>'} {low:g}"
        if high is not None:
            bound += f" and <= {high:g}"
        raise InputError(
            f"TCO parameter {name!r} is {value!r} but must be a number {bound} ({hint}). "
            f"Fix tco.{name} in your config or the TcoParams(...) call."
        )


@dataclass(frozen=True)
class DeviceTco:
    """The hourly cost of one device, itemised; components sum to ``total_usd_per_h``.

    Parameters
    ----------
    device
        Device name.
    capex_usd_per_h
        Financed purchase price per hour (own mode; 0 in cloud mode).
    power_usd_per_h
        Electricity per hour, PUE included (own mode; 0 in cloud mode).
    opex_usd_per_h
        Catalog operating cost per hour (own mode, if included; else 0).
    cloud_usd_per_h
        Rental price per hour (cloud mode; 0 in own mode).
    total_usd_per_h
        Sum of the four, plus the carbon price.
    power_kw
        Average IT power drawn (TDP x utilization_power_fraction), before PUE.
    carbon_kgco2_per_h
        ``power_kw x pue x grid_kgco2_per_kwh`` plus the embodied share.
    embodied_kgco2_per_h
        Embodied emissions spread over the amortisation years (0 for an installed device:
        they were emitted when it was made).
    carbon_usd_per_h
        The carbon price on ``carbon_kgco2_per_h`` (included in ``total_usd_per_h``).
    """

    device: str
    capex_usd_per_h: float
    power_usd_per_h: float
    opex_usd_per_h: float
    cloud_usd_per_h: float
    total_usd_per_h: float
    power_kw: float
    carbon_kgco2_per_h: float
    embodied_kgco2_per_h: float = 0.0
    carbon_usd_per_h: float = 0.0


TCO_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(DeviceTco) if f.name != "device")
"""Columns of :func:`tco_table`, in order."""


def annuity_payment_usd(
    principal_usd: float, annual_rate: float, years: float, periods_per_year: int = MONTHS_PER_YEAR
) -> float:
    """Level payment per period that repays ``principal_usd`` with interest.

    Parameters
    ----------
    principal_usd
        Amount financed.
    annual_rate
        Nominal annual interest rate as a fraction, compounded each period.
    years
        Term in years.
    periods_per_year
        Payments per year (12: monthly).

    Returns
    -------
    float
        ``P r / (1 - (1 + r)^-n)`` with ``r = annual_rate / periods_per_year`` and
        ``n = years x periods_per_year``; ``P / n`` at zero interest.

    Examples
    --------
    >>> round(annuity_payment_usd(25_000, 0.08, 4), 2)
    610.32
    """
    n_periods = years * periods_per_year
    rate = annual_rate / periods_per_year
    if rate == 0.0:
        return principal_usd / n_periods
    # 1 - (1 + r)^-n, written to stay accurate (and non-zero) for tiny rates
    discount = -math.expm1(-n_periods * math.log1p(rate))
    return principal_usd * rate / discount


def device_tco(device: Device, params: TcoParams | None = None) -> DeviceTco:
    """Hourly cost and carbon of running one ``device`` for one hour.

    Parameters
    ----------
    device
        A catalog device.
    params
        TCO assumptions; ``None`` uses the paper's (own, 4 years at 8 %, $0.40/kWh, TDP).

    Returns
    -------
    DeviceTco

    Raises
    ------
    InputError
        In cloud mode, if the device has no ``cloud_usd_per_h``.

    Examples
    --------
    >>> from hetopt.hardware import load_catalog
    >>> round(device_tco(load_catalog().get("H100")).capex_usd_per_h, 3)
    0.836
    """
    params = TcoParams() if params is None else params
    power_kw = device.tdp_w / 1000.0 * params.utilization_power_fraction
    installed = device.age_years is not None
    embodied_kg = (
        device.embodied_kgco2
        if device.embodied_kgco2 is not None
        else params.embodied_base_kgco2 + params.embodied_kgco2_per_gb * device.mem_gb
    )
    embodied = 0.0 if installed else embodied_kg / (params.amortization_years * HOURS_PER_YEAR)
    carbon = power_kw * params.pue * params.grid_kgco2_per_kwh + embodied
    carbon_usd = carbon / 1000.0 * params.carbon_usd_per_tonne

    if params.mode == "cloud":
        if device.cloud_usd_per_h is None:
            raise InputError(
                f"Device {device.name!r} has no cloud price (column 'cloud_usd_per_h' is empty "
                "in the hardware catalog), so it cannot be costed with tco.mode=cloud. Use "
                "tco.mode=own, drop the device, or add a cloud_usd_per_h value (with its source) "
                "to its catalog row."
            )
        cloud = float(device.cloud_usd_per_h)
        return DeviceTco(
            device.name,
            0.0,
            0.0,
            0.0,
            cloud,
            cloud + carbon_usd,
            power_kw,
            carbon,
            embodied,
            carbon_usd,
        )

    if installed:
        # Keeping an installed device forgoes its resale value: the value lost this year plus
        # the interest the sale money would have earned.
        value = residual_value_usd(device, params)
        capex = value * (params.depreciation_per_year + params.interest_rate) / HOURS_PER_YEAR
    else:
        # Level monthly annuity spread over the hours of a month: the paper's "financed over
        # a fixed 4-year amortization at 8 % interest", with no residual value.
        capex = (
            annuity_payment_usd(device.price_usd, params.interest_rate, params.amortization_years)
            / HOURS_PER_MONTH
        )
    power = power_kw * params.pue * params.usd_per_kwh
    opex = device.operating_cost_usd_per_h if params.include_operating_cost else 0.0
    total = capex + power + opex + carbon_usd
    return DeviceTco(
        device.name, capex, power, opex, 0.0, total, power_kw, carbon, embodied, carbon_usd
    )


def residual_value_usd(device: Device, params: TcoParams) -> float:
    """Resale value of an installed device: price x (1 - depreciation)^age (0 if new).

    Examples
    --------
    >>> from hetopt.hardware import load_catalog
    >>> old = load_catalog().get("H100").model_copy(update={"age_years": 2.0})
    >>> round(residual_value_usd(old, TcoParams(depreciation_per_year=0.5)))
    6250
    """
    if device.age_years is None:
        return 0.0
    return device.price_usd * (1.0 - params.depreciation_per_year) ** device.age_years


def tco_table(
    catalog: HardwareCatalog | Iterable[Device], params: TcoParams | None = None
) -> pd.DataFrame:
    """Itemised hourly cost and carbon for every device of a catalog.

    Parameters
    ----------
    catalog
        The devices to cost.
    params
        TCO assumptions; ``None`` uses the paper's.

    Returns
    -------
    pandas.DataFrame
        Indexed by device name (index name ``device``), with the columns of
        :data:`TCO_COLUMNS`.

    Raises
    ------
    InputError
        In cloud mode, naming every device that has no cloud price.

    Examples
    --------
    >>> from hetopt.hardware import load_catalog
    >>> table = tco_table(load_catalog().select(["H100", "B200"]))
    >>> table["capex_usd_per_h"].round(3).tolist()
    [0.836, 1.338]
    """
    params = TcoParams() if params is None else params
    devices = list(catalog)
    if params.mode == "cloud":
        unpriced = [d.name for d in devices if d.cloud_usd_per_h is None]
        if unpriced:
            raise InputError(
                f"tco.mode=cloud needs a cloud price for every device, but "
                f"{', '.join(unpriced)} {'has' if len(unpriced) == 1 else 'have'} an empty "
                "'cloud_usd_per_h' in the hardware catalog. Use tco.mode=own, leave those "
                "devices out, or add cloud_usd_per_h values (with sources) to their rows."
            )
    rows = [asdict(device_tco(device, params)) for device in devices]
    frame = pd.DataFrame.from_records(rows, columns=["device", *TCO_COLUMNS])
    logger.debug("TCO for %d devices in %s mode", len(rows), params.mode)
    return frame.set_index("device")


def resolve_hardware(
    hw: HardwareSpec, tco_params: TcoParams, progress: Callable[[str], None] | None = None
) -> tuple[HardwareCatalog, dict[str, int], dict[str, DeviceTco], dict[str, float]]:
    """The catalog a plan may use, its inventory, hourly TCO and memory per device.

    :func:`hetopt.hardware.spec.resolve_catalog` (devices kept, cloud prices, what-if scenario,
    installed devices' counts merged into the inventory) followed by each device's TCO.
    """
    catalog, inventory = resolve_catalog(hw, tco_params.mode == "cloud", progress)
    tco = {d.name: device_tco(d, tco_params) for d in catalog.devices}
    mem = {d.name: d.mem_bytes for d in catalog.devices}
    return catalog, inventory, tco, mem
