"""What a fleet is: many agent applications (tenants), each with its own load and SLA.

A fleet file lists tenants; each names a workload (a shipped name, a YAML or an MLIR file, or an
inline mapping) and may override its request rate and SLA::

    name: enterprise
    tenants:
      - {name: support, workload: voice_agent, request_rate_per_s: 4.0, sla: {e2e_s: 12.0}}
      - {name: search, workload: rag_agent, request_rate_per_s: 20.0, count: 3}

``count`` stamps out identical copies (``search#0``, ``search#1``, ...): the same application
deployed for several customers. Identical tenants are recognised by the planner, which breaks
their symmetry.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from hetopt.errors import InputError
from hetopt.inputs import unknown_keys_message
from hetopt.sla import Sla, check_bounds
from hetopt.workloads import Workload


@dataclass(frozen=True)
class TenantSpec:
    """One agent application of the fleet.

    Attributes
    ----------
    name
        Unique tenant name.
    workload
        The tenant's agent (:class:`~hetopt.workloads.Workload`).
    request_rate_per_s
        Requests per second entering this tenant's agent (the fleet file's rate, else the
        workload's own).
    sla
        The tenant's SLA (per-phase limits and end-to-end bound).
    """

    name: str
    workload: Workload
    request_rate_per_s: float
    sla: Sla

    def __post_init__(self) -> None:
        if not (self.request_rate_per_s > 0 and math.isfinite(self.request_rate_per_s)):
            raise InputError(
                f"fleet tenant '{self.name}': request_rate_per_s must be a positive "
                f"number, got {self.request_rate_per_s!r}."
            )
        if self.workload.profile is not None:
            raise InputError(
                f"fleet tenant '{self.name}': workload "
                f"'{self.workload.name}' carries a measured profile for its "
                f"own devices; fleets are costed on the hardware catalog. Use a "
                f"catalog workload (`hetopt list`)."
            )


@dataclass(frozen=True)
class FleetSpec:
    """A fleet workload: tenants sharing device pools.

    Attributes
    ----------
    name
        Fleet name (used in outputs).
    tenants
        The tenants, in a fixed order.
    """

    name: str
    tenants: tuple[TenantSpec, ...]

    def __post_init__(self) -> None:
        if not self.tenants:
            raise InputError(
                f"fleet '{self.name}' has no tenants; list at least one under 'tenants:'."
            )
        names = [t.name for t in self.tenants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InputError(
                f"fleet '{self.name}': tenant names {dupes} appear more than once; "
                f"tenant names must be unique (use count: N for copies)."
            )


_TENANT_KEYS = {"name", "workload", "request_rate_per_s", "sla", "count"}
MAX_TENANTS = 10_000  # tenants after count expansion, far above any fleet benchmarked
_SLA_KEYS = {f.name for f in fields(Sla)}


def _refuse_unknown_keys(given: Iterable[Any], valid: set[str], unknown_what: str) -> None:
    """Raise :class:`InputError` if ``given`` holds keys outside ``valid``.

    The message is ``unknown_what``, the unknown keys (with the closest valid ones), then the
    valid keys.
    """
    unknown = sorted(str(k) for k in set(given) - valid)
    if unknown:
        raise InputError(
            f"{unknown_what} {unknown_keys_message(unknown, sorted(valid))}; valid keys: "
            f"{sorted(valid)}."
        )


def tenant_sla(
    base: Sla, workload: Workload | None, override: Mapping[str, Any] | None, where: str
) -> Sla:
    """The tenant's SLA: ``override`` keys, else the workload's ``sla`` defaults for the keys
    the base SLA leaves null (:meth:`~hetopt.workloads.Workload.effective_sla`; none when
    ``workload`` is None), else ``base``."""
    values = dataclasses.asdict(base if workload is None else workload.effective_sla(base))
    if override is not None and not isinstance(override, Mapping):
        raise InputError(
            f"{where}: 'sla' must be a mapping such as {{e2e_s: 12.0}}, got {override!r}."
        )
    override = dict(override or {})
    _refuse_unknown_keys(override, _SLA_KEYS, f"{where}: unknown SLA key(s)")
    check_bounds(override, f"{where}: sla")
    values.update(override)
    try:
        return Sla(**values)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None


def fleet_from_dict(
    data: Mapping[str, Any], source: str = "<fleet>", base_sla: Sla | None = None
) -> FleetSpec:
    """Build a :class:`FleetSpec` from the fleet file format.

    Parameters
    ----------
    data
        ``{name, tenants: [{name, workload, request_rate_per_s?, sla?, count?}, ...]}``.
    source
        Where the data came from, for error messages.
    base_sla
        SLA defaults (the ``sla`` config group); tenants' and workloads' SLA keys refine it.

    Raises
    ------
    InputError
        Naming the tenant and key at fault.
    """
    from hetopt.workloads import load_workload_data

    base_sla = base_sla or Sla()
    if not isinstance(data, Mapping) or not isinstance(data.get("tenants"), list):
        raise InputError(
            f"{source}: a fleet needs a 'tenants:' list of "
            f"{{name, workload, request_rate_per_s, sla, count}} entries."
        )
    tenants: list[TenantSpec] = []
    cache: dict[str, Mapping[str, Any]] = {}
    typed: dict[tuple[int, float], Workload] = {}
    for k, entry in enumerate(data["tenants"]):
        where = f"{source}: tenants[{k}]"
        if not isinstance(entry, Mapping):
            raise InputError(f"{where} must be a mapping with keys {sorted(_TENANT_KEYS)}.")
        _refuse_unknown_keys(entry, _TENANT_KEYS, f"{where}: unknown key(s)")
        wl = entry.get("workload")
        if isinstance(wl, str):
            if wl not in cache:
                try:
                    cache[wl] = load_workload_data(wl)
                except InputError as exc:
                    raise InputError(f"{where}: {exc}") from None
            workload = cache[wl]
        elif isinstance(wl, Mapping):
            workload = wl
        else:
            raise InputError(
                f"{where}: 'workload' must be a shipped workload name, a file path "
                f"or an inline mapping, got {wl!r}."
            )
        name = str(entry.get("name") or workload.get("name") or f"tenant{k}")
        where = f"{source}: tenant '{name}'"
        rate = entry.get("request_rate_per_s", workload.get("request_rate_per_s"))
        if not isinstance(rate, int | float) or isinstance(rate, bool):
            raise InputError(
                f"{where}: request_rate_per_s must be a number (requests per second), got {rate!r}."
            )
        if not (rate > 0 and math.isfinite(rate)):
            raise InputError(
                f"{where}: request_rate_per_s must be a positive number (requests per second), "
                f"got {rate!r}."
            )
        count = entry.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise InputError(f"{where}: count must be a whole number >= 1, got {count!r}.")
        if len(tenants) + count > MAX_TENANTS:
            raise InputError(
                f"{where}: count {count} makes the fleet more than {MAX_TENANTS:,} "
                f"tenants, beyond what hetopt plans. Lower count, or raise the "
                f"request_rate_per_s of fewer tenants instead."
            )
        # One typed workload per mapping and rate: tenants of a template share its graph.
        key = (id(workload), float(rate))
        if key not in typed:
            origin = f"workload '{wl}'" if isinstance(wl, str) else "inline workload"
            typed[key] = Workload.from_mapping(
                workload, f"{where}: {origin}", request_rate_per_s=float(rate)
            )
        sla = tenant_sla(base_sla, typed[key], entry.get("sla"), where)
        for c in range(count):
            tenants.append(
                TenantSpec(name if count == 1 else f"{name}#{c}", typed[key], float(rate), sla)
            )
    names = [t.name for t in tenants]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(
            f"{source}: tenant names {dupes} appear more than once; tenant names "
            f"must be unique (use count: N for copies)."
        )
    return FleetSpec(str(data.get("name") or "fleet"), tuple(tenants))


def scale_rates(fleet: FleetSpec, factor: float) -> FleetSpec:
    """The same fleet with every tenant's request rate multiplied by ``factor``."""
    return replace(
        fleet,
        tenants=tuple(
            replace(t, request_rate_per_s=t.request_rate_per_s * factor) for t in fleet.tenants
        ),
    )
