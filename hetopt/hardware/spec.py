"""Which devices a plan may use: the ``hardware`` config group as an immutable record.

:class:`HardwareSpec` names the catalog, the devices kept from it, the inventory and the what-if
edits; :func:`resolve_catalog` turns it into the catalog and inventory every later stage reads.
The hourly TCO of those devices is a cost-model matter, added by
:func:`hetopt.costs.tco.resolve_hardware` (the hardware package never imports the cost model).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hetopt.errors import InputError
from hetopt.hardware.catalog import HardwareCatalog, load_catalog
from hetopt.hardware.scenario import Scenario, apply_scenario

log = logging.getLogger(__name__)
Progress = Callable[[str], None]


def check_inventory(inventory: Mapping[str, Any]) -> None:
    """Every ``hardware.inventory`` count is a whole number >= 0, else an :class:`InputError`
    naming the key (rather than a capacity shortfall found by the solver).

    Examples
    --------
    >>> check_inventory({"H100": 8})
    >>> check_inventory({"H100": 2.5})
    Traceback (most recent call last):
    ...
    hetopt.errors.InputError: hardware.inventory.H100 must be a whole number of devices >= 0, got 2.5. Set it with e.g. `+hardware.inventory.H100=8`, or drop the key for no limit.
    """
    for name, count in inventory.items():
        if (
            isinstance(count, bool)
            or not isinstance(count, int | float)
            or not math.isfinite(count)
            or count < 0
            or float(count) != int(count)
        ):
            raise InputError(
                f"hardware.inventory.{name} must be a whole number of devices >= 0, got "
                f"{count!r}. Set it with e.g. `+hardware.inventory.{name}=8`, or drop the key "
                f"for no limit."
            )


@dataclass(frozen=True)
class HardwareSpec(Scenario):
    """Which devices to consider (the Hydra ``hardware`` group).

    Attributes
    ----------
    catalog_path
        CSV catalog to read; None reads the packaged one.
    devices
        Names to keep from the catalog; None keeps all.
    inventory
        Devices available per name; absent names are unlimited (the paper's assumption).
    extra_rows
        Extra catalog rows (same columns as the CSV) to add devices without editing files.

    The what-if edits (price multipliers, installed fleet, years ahead) are the fields it
    inherits from :class:`~hetopt.hardware.scenario.Scenario`.
    """

    catalog_path: str | None = None
    devices: tuple[str, ...] | None = None
    inventory: Mapping[str, int] = field(default_factory=dict)
    extra_rows: tuple[Mapping[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.inventory, Mapping):
            raise InputError(
                f"hardware.inventory must map device names to counts "
                f"({{H100: 8}}), got {self.inventory!r}."
            )
        check_inventory(self.inventory)


def resolve_catalog(
    hw: HardwareSpec, cloud: bool, progress: Progress | None = None
) -> tuple[HardwareCatalog, dict[str, int]]:
    """The catalog a plan may use and its inventory.

    Reads the catalog, keeps ``hw.devices``, drops devices without a cloud price when renting
    (``cloud``, i.e. ``tco.mode=cloud``), applies the what-if scenario (prices, installed
    fleet) and merges the installed devices' counts into ``hw.inventory``.
    """
    say = progress or (lambda _msg: None)
    catalog = load_catalog(hw.catalog_path, extra_rows=hw.extra_rows)
    if hw.devices is not None:
        catalog = catalog.select(hw.devices)
    if cloud:
        rentable = [d for d in catalog.devices if d.cloud_usd_per_h is not None]
        dropped = sorted(set(catalog.names) - {d.name for d in rentable})
        if not rentable:
            raise InputError(
                f"tco.mode=cloud but none of the devices {list(catalog.names)} has a "
                f"cloud_usd_per_h in the catalog. Add cloud prices or use tco.mode=own."
            )
        if dropped:
            say(f"tco.mode=cloud: leaving out {dropped} (no cloud price in the catalog)")
            log.warning("tco.mode=cloud: devices without a cloud price left out: %s", dropped)
        catalog = catalog.select(tuple(d.name for d in rentable))
        if hw.owned:
            raise InputError(
                "hardware.owned (installed devices) needs tco.mode=own: a "
                "rented device is not owned. Drop hardware.owned or set "
                "tco.mode=own."
            )
    catalog, installed = apply_scenario(catalog, hw)
    return catalog, {**dict(hw.inventory), **installed}
