"""What-if edits of a hardware catalog: price changes and an installed (brownfield) fleet.

Applied after the catalog is loaded and before it is costed, so every later stage (cost table,
placement, verifier, replay) sees ordinary devices:

* ``price_scale`` multiplies a device's purchase and cloud price (``{"B200": 0.7}``: 30 % off);
* ``years_ahead`` with ``price_decline_per_year`` plans for a later year, when new hardware
  costs less;
* ``owned`` adds, per device type, a row ``<name>-owned`` for the devices already installed,
  with ``age_years`` set and an inventory of that many. The TCO model costs such a device at
  what keeping it costs (its resale value forgone, power, operations) with no embodied carbon.
  The planner then chooses how many installed devices to keep (the rest are retired) and what
  to buy new.

Installed and new devices of one type form separate pools, so an operator's shared pool does not
mix them; that can cost at most one device per pool over a mixed pool.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hetopt.errors import InputError
from hetopt.hardware.catalog import HardwareCatalog

OWNED_SUFFIX = "-owned"


@dataclass(frozen=True)
class Scenario:
    """Price and fleet edits (fields of the ``hardware`` config group).

    Attributes
    ----------
    price_scale
        Multiplier on the price of each named device (purchase and cloud).
    owned
        Devices already installed, per device type.
    owned_age_years
        Age of the installed devices today.
    years_ahead
        Plan for this many years from now: installed devices are older, new ones cheaper.
    price_decline_per_year
        Yearly fall of new-hardware prices (compounded over ``years_ahead``).
    """

    price_scale: Mapping[str, float] = field(default_factory=dict)
    owned: Mapping[str, int] = field(default_factory=dict)
    owned_age_years: float = 0.0
    years_ahead: float = 0.0
    price_decline_per_year: float = 0.0

    @property
    def is_identity(self) -> bool:
        """True when the scenario changes nothing."""
        return (
            not self.owned
            and self.years_ahead == 0.0
            and all(v == 1.0 for v in self.price_scale.values())
        )


def apply_scenario(
    catalog: HardwareCatalog, scenario: Scenario
) -> tuple[HardwareCatalog, dict[str, int]]:
    """Return the edited catalog and the inventory of its installed rows.

    Parameters
    ----------
    catalog
        The loaded (and selected) catalog.
    scenario
        The edits.

    Returns
    -------
    tuple
        ``(catalog, inventory)``: new devices re-priced, one ``<name>-owned`` row per installed
        type appended; ``inventory`` maps each such row to its installed count.

    Raises
    ------
    InputError
        If a name is not in the catalog, or a number is out of range.

    Examples
    --------
    >>> from hetopt.hardware import load_catalog
    >>> cat, inv = apply_scenario(load_catalog().select(["H100", "B200"]),
    ...                           Scenario(price_scale={"B200": 0.5}, owned={"H100": 8},
    ...                                    owned_age_years=2.0))
    >>> cat.get("B200").price_usd / load_catalog().get("B200").price_usd, inv
    (0.5, {'H100-owned': 8})
    >>> cat.get("H100-owned").age_years
    2.0
    """
    for key, mapping in (("price_scale", scenario.price_scale), ("owned", scenario.owned)):
        unknown = sorted(set(mapping) - set(catalog.names))
        if unknown:
            raise InputError(
                f"hardware.{key} names {unknown}, which are not among the devices "
                f"considered {list(catalog.names)}. Fix the names or add the "
                f"devices to hardware.devices."
            )
    bad = {k: v for k, v in scenario.price_scale.items() if not v > 0}
    if bad:
        raise InputError(
            f"hardware.price_scale must be > 0 for every device, got {bad} (0.7 = 30 % off)."
        )
    neg = {k: v for k, v in scenario.owned.items() if int(v) != v or v < 0}
    if neg:
        raise InputError(f"hardware.owned counts must be whole numbers >= 0, got {neg}.")
    for key in ("owned_age_years", "years_ahead"):
        if not getattr(scenario, key) >= 0:
            raise InputError(f"hardware.{key} must be >= 0 years, got {getattr(scenario, key)}.")
    if not 0 <= scenario.price_decline_per_year < 1:
        raise InputError(
            f"hardware.price_decline_per_year must be in [0, 1), got "
            f"{scenario.price_decline_per_year}."
        )
    if scenario.is_identity:
        return catalog, {}
    decline = (1.0 - scenario.price_decline_per_year) ** scenario.years_ahead
    devices = []
    for d in catalog.devices:
        scale = scenario.price_scale.get(d.name, 1.0) * decline
        cloud = None if d.cloud_usd_per_h is None else d.cloud_usd_per_h * scale
        devices.append(
            d.model_copy(update={"price_usd": d.price_usd * scale, "cloud_usd_per_h": cloud})
        )
    inventory = {}
    for name, count in scenario.owned.items():
        if count <= 0:
            continue
        d = catalog.get(name)
        owned_name = name + OWNED_SUFFIX
        devices.append(
            d.model_copy(
                update={
                    "name": owned_name,
                    "age_years": scenario.owned_age_years + scenario.years_ahead,
                    "notes": f"{int(count)} installed {name} (brownfield). " + (d.notes or ""),
                }
            )
        )
        inventory[owned_name] = int(count)
    return HardwareCatalog(tuple(devices)), inventory
