"""Independent verification of a fleet plan, built on the single-agent recomputation.

Each tenant's assignment is recomputed from its raw inputs by
:func:`hetopt.oracle.evaluate_assignment` (dedicated devices, pooled load, footprints,
latency over every path, direct and transfer costs, soft-SLA penalty); the fleet adds only
what the tenants share, in plain loops:

The shared limits are the fleet's own inputs (``fp.device_inventory`` and
``fp.device_mem_bytes``: the inventory and the usable memory per device type); prices, loads,
footprints and latencies come from each tenant's raw inputs.

* a device type's pool covers the summed pooled load of every tenant (ceiling, at least one
  device once used);
* an LLM pool (every tenant's exclusive rows with one ``pool_key``, grouped by that string)
  covers the summed load of every tenant on each of its capacities (ceiling of the busiest);
  a key only one operator uses is thereby that operator's own replicas;
* its devices hold each distinct footprint once: tenants of one template share the resident
  copy of an operator, as the fleet formulation assumes;
* dedicated + pooled devices stay within the fleet's inventory;
* the fleet's objective is every tenant's dedicated devices at its own $/h, direct and
  transfer costs and penalty, plus the shared pools at the first tenant's $/h (tenants built
  from one catalog agree on prices; hand-built ones may not).

It never calls :func:`hetopt.fleet.evaluate.evaluate_fleet` or a formulation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from hetopt.fleet.problem import FleetProblem
from hetopt.oracle import CEIL_TOL, MEM_REL_TOL, LlmPool, evaluate_assignment
from hetopt.oracle.recompute import judge_llm_pool

REL_TOL = 1e-6


def verify_fleet(
    fp: FleetProblem,
    choices: Sequence[Sequence[int]],
    pool_counts: Sequence[int] | None = None,
    objective_usd_per_h: float | None = None,
    llm_pool_counts: Mapping[str, int] | None = None,
) -> tuple[str, ...]:
    """Every problem found with a fleet plan; an empty tuple means it is verified.

    Parameters
    ----------
    fp
        The fleet problem; each tenant's problem must carry its raw inputs.
    choices
        Per tenant, the option of each operator (read as operator -> device, configuration).
    pool_counts
        Shared-pool devices per device type as the plan states them; None judges the minimum.
    objective_usd_per_h
        The plan's stated objective, checked against the recomputed one when given.
    llm_pool_counts
        Replicas per LLM pool key as the plan states them; None judges the minimum.
    """
    issues: list[str] = []
    dedicated: dict[str, int] = {}
    load: dict[str, float] = {}
    used: set[str] = set()
    resident: dict[tuple[str, str, str], float] = {}
    llm = _LlmPools()
    objective = 0.0
    for t, (name, p, choice) in enumerate(zip(fp.tenant_names, fp.tenants, choices, strict=True)):
        inputs = p.raw_inputs
        if inputs is None:
            return (f"tenant '{name}' carries no raw inputs to verify against",)
        assignment = {
            p.ops[i]: (p.devices[p.opt_device[o]], p.opt_config[o]) for i, o in enumerate(choice)
        }
        ev = evaluate_assignment(inputs, assignment)
        issues.extend(f"tenant '{name}': {v}" for v in ev.violations)
        if ev.sla_violation:
            issues.append(f"tenant '{name}': {ev.sla_violation}")
        if math.isnan(ev.tco_usd_per_h):
            continue
        own = dict(ev.dedicated)
        for name, pool in ev.llm_pools.items():  # counted once for the fleet, below
            own[pool.device] -= pool.devices
            llm.add(name, pool)
        for device, count in own.items():
            dedicated[device] = dedicated.get(device, 0) + count
        for device, share in ev.pool_load.items():
            load[device] = load.get(device, 0.0) + share
            used.add(device)
        for op, footprint in ev.op_footprint_bytes.items():
            key = (fp.tenant_template[t], op, assignment[op][0])
            resident[key] = max(resident.get(key, 0.0), footprint)
        objective += ev.unpooled_usd_per_h + ev.penalty_usd_per_h
        for device, count in own.items():
            objective += count * inputs.device(device).usd_per_h  # type: ignore[union-attr]
    stated = None if pool_counts is None else dict(zip(fp.devices, pool_counts, strict=True))
    prices = fp.tenants[0].raw_inputs
    assert prices is not None  # checked in the loop above
    for device, count in llm.devices(llm_pool_counts, issues).items():
        dedicated[device] = dedicated.get(device, 0) + count
        objective += count * prices.device(device).usd_per_h  # type: ignore[union-attr]
    for j, name in enumerate(fp.devices):
        dev = prices.device(name)
        assert dev is not None  # every tenant spans the fleet's device types
        needed = max(1, math.ceil(load[name] - CEIL_TOL)) if name in used else 0
        pools = needed if stated is None else int(stated.get(name, 0))
        if pools < needed:
            issues.append(
                f"shared pool of {name} has {pools} devices but the tenants' pooled load of "
                f"{load[name]:.3f} device-equivalents needs {needed}"
            )
        held = sum(b for (_, _, device), b in resident.items() if device == name)
        usable = float(fp.device_mem_bytes[j])
        if held > usable * (1 + MEM_REL_TOL):
            issues.append(
                f"shared pool of {name} holds {held / 1e9:.2f} GB per device, more than its "
                f"{usable / 1e9:.2f} GB usable"
            )
        total = dedicated.get(name, 0) + pools
        if total > fp.device_inventory[j]:
            issues.append(
                f"fleet uses {total} x {name} but the inventory has {int(fp.device_inventory[j])}"
            )
        objective += pools * dev.usd_per_h
    if objective_usd_per_h is not None and not _close(objective_usd_per_h, objective):
        issues.append(
            f"fleet plan reports objective {objective_usd_per_h:.6f} $/h but its tenants' raw "
            f"inputs give {objective:.6f} $/h"
        )
    return tuple(issues)


class _LlmPools:
    """Every tenant's LLM pools by key: summed load per capacity, device and replica size."""

    def __init__(self) -> None:
        self.load: dict[str, dict[str, float]] = {}
        self.shape: dict[str, tuple[str, int]] = {}
        self.members: dict[str, list[str]] = {}

    def add(self, key: str, pool: LlmPool) -> None:
        by_dim = self.load.setdefault(key, {})
        for dim, share in pool.load_by_capacity.items():
            by_dim[dim] = by_dim.get(dim, 0.0) + share
        self.shape.setdefault(key, (pool.device, pool.devices_per_replica))
        self.members.setdefault(key, []).extend(pool.members)

    def devices(self, stated: Mapping[str, int] | None, issues: list[str]) -> dict[str, int]:
        """Devices per type the pools hold (stated replicas, else the needed ones); too
        small or unused stated pools are added to ``issues``."""
        out: dict[str, int] = {}
        for key, by_dim in self.load.items():
            _, _, replicas = judge_llm_pool(key, by_dim, stated, issues, "the tenants' load")
            device, size = self.shape[key]
            out[device] = out.get(device, 0) + replicas * size
        for key in sorted(set(stated or {}) - set(self.load)):
            issues.append(f"the plan lists LLM pool {key}, which no tenant's operator uses")
        return out


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= REL_TOL * max(1.0, abs(b))
