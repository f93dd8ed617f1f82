"""Evaluate a fleet assignment from the problem data (the solver's exact check of a fleet plan).

Per tenant it reuses the single agent's accounting of :mod:`hetopt.models.evaluate` (device use,
longest-path latency) and prices it with :func:`hetopt.models.terms.objective_terms`; the pools
are then sized, and the inventory counted, by the same functions a single agent's plan uses.
Only the resident footprints (one copy per template) are fleet-specific. The independent check,
with its own code from the raw inputs, is :func:`hetopt.fleet.verify.verify_fleet`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from hetopt.fleet.problem import FleetProblem
from hetopt.models.evaluate import (
    KEY_DIMS,
    LATENCY_TOL_S,
    check_pool_memory,
    count_devices,
    device_use,
    e2e_latency_s,
    key_loads,
    size_pools,
)
from hetopt.models.terms import objective_terms
from hetopt.problem import replicas_for_load

Choices = tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class FleetEvaluation:
    """Everything a fleet assignment implies.

    Attributes
    ----------
    devices_per_type
        Dedicated replicas, shared-pool devices and shared LLM pools' devices per device type.
    dedicated_per_type, key_devices_per_type, pool_counts
        The three parts of ``devices_per_type``: operators' own replicas, shared LLM pools'
        replicas and shared (light-operator) pools, per device type.
    key_counts, key_load
        Replicas of each shared LLM pool, and its summed load per capacity (``[key, dim]``).
    pool_load
        Summed pooled load per device type, in device-equivalents.
    resident_bytes
        Bytes every device of each pool holds (distinct footprints).
    tenant_e2e_s
        End-to-end latency of each tenant.
    tenant_usd_per_h
        Each tenant's dedicated devices, direct and transfer costs plus its pooled load at the
        pool's device price and its load on shared LLM pools (busiest capacity) at the
        replica's price (pools' rounding is not attributed).
    tco_usd_per_h, objective_usd_per_h, carbon_kg_per_h
        Fleet TCO, TCO plus soft-SLA penalties, and carbon.
    shortage
        Devices missing per type to satisfy the inventory (0 where it holds).
    violations
        Human-readable constraint violations (empty when feasible).
    """

    devices_per_type: np.ndarray
    dedicated_per_type: np.ndarray
    pool_counts: np.ndarray
    pool_load: np.ndarray
    resident_bytes: np.ndarray
    tenant_e2e_s: np.ndarray
    tenant_usd_per_h: np.ndarray
    tco_usd_per_h: float
    objective_usd_per_h: float
    carbon_kg_per_h: float
    shortage: np.ndarray
    violations: tuple[str, ...]
    key_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    key_load: np.ndarray = field(default_factory=lambda: np.zeros((0, KEY_DIMS)))
    key_devices_per_type: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))

    @property
    def feasible(self) -> bool:
        """True when no constraint is violated."""
        return not self.violations


def fleet_key_load(fp: FleetProblem, t: int, choice: Sequence[int] | np.ndarray) -> np.ndarray:
    """Tenant ``t``'s load on each shared LLM pool of the fleet, per capacity (``[key, dim]``)."""
    return key_loads(fp.tenants[t], choice, fp.opt_fleet_key[t], fp.n_keys)


def evaluate_fleet(
    fp: FleetProblem,
    choices: Sequence[Sequence[int]],
    pool_counts: Sequence[int] | None = None,
    key_counts: Sequence[int] | None = None,
) -> FleetEvaluation:
    """Recompute pools, memory, inventory, every tenant's SLA and the fleet TCO.

    Parameters
    ----------
    fp
        The fleet problem.
    choices
        Per tenant, the option index of each of its operators.
    pool_counts
        Shared-pool devices per type as a solver reported them; None uses the minimum needed.
    key_counts
        Replicas per shared LLM pool as a solver reported them; None uses the minimum needed.
    """
    n_dev = fp.n_devices
    violations: list[str] = []
    if len(choices) != fp.n_tenants:
        raise ValueError(f"{len(choices)} choices for {fp.n_tenants} tenants")
    dedicated = np.zeros(n_dev)
    load = np.zeros(n_dev)
    in_use = np.zeros(n_dev, dtype=bool)
    used_prints: set[int] = set()
    e2e = np.zeros(fp.n_tenants)
    tenant_cost = np.zeros(fp.n_tenants)
    key_load = np.zeros((fp.n_keys, KEY_DIMS))
    key_usd = fp.key_usd_per_h()
    direct_usd_per_h = penalty_usd_per_h = 0.0
    for t, (p, fprint, choice) in enumerate(
        zip(fp.tenants, fp.opt_footprint, choices, strict=True)
    ):
        c = np.asarray(choice, dtype=int)
        name = fp.tenant_names[t]
        if len(c) != p.n_ops or (p.opt_op[c] != np.arange(p.n_ops)).any():
            violations.append(f"tenant '{name}': the choice does not pick one option per operator")
            continue
        dev = p.opt_device[c]
        use = device_use(p, c)
        dedicated += use.dedicated
        load += use.pool_load
        mine = fleet_key_load(fp, t, c)
        key_load += mine
        in_use |= use.pooled
        used_prints.update(int(k) for k in fprint[c] if k >= 0)
        cross = (dev[p.edge_src] != dev[p.edge_dst]).astype(float)
        e2e[t] = e2e_latency_s(p, p.opt_latency_s[c], cross)
        terms = objective_terms(p)
        own = terms.own_usd_per_h(c, cross)
        direct_usd_per_h += own
        tenant_cost[t] = (
            own
            + float(fp.device_cost_usd_per_h @ use.pool_load)
            + float(key_usd @ mine.max(axis=1, initial=0.0))
        )
        sla = p.sla.e2e_s
        if sla is not None:
            excess = max(0.0, e2e[t] - sla)
            if p.sla.hard and excess > LATENCY_TOL_S:
                violations.append(
                    f"tenant '{name}': end-to-end latency {e2e[t]:.6f} s exceeds "
                    f"its SLA {sla:.6f} s"
                )
            elif not p.sla.hard:
                penalty = terms.penalty_usd_per_h(excess)
                penalty_usd_per_h += penalty
                tenant_cost[t] += penalty
    pools, short_pools = size_pools(fp.devices, load, in_use, pool_counts)
    violations += short_pools
    keys, short_keys = _size_keys(fp, key_load, key_counts)
    violations += short_keys
    key_devices = np.bincount(
        fp.key_device, weights=keys * fp.key_devices_per_replica, minlength=n_dev
    ).astype(int)
    resident = (
        np.bincount(
            fp.footprint_device[sorted(used_prints)],
            weights=fp.footprint_bytes[sorted(used_prints)],
            minlength=n_dev,
        )
        if used_prints
        else np.zeros(n_dev)
    )
    violations += check_pool_memory(fp.devices, resident, fp.device_mem_bytes, verb="hold")
    total, shortage, over = count_devices(
        fp.devices, dedicated + key_devices, pools, fp.device_inventory
    )
    violations += over
    tco = direct_usd_per_h + float(fp.device_cost_usd_per_h @ pools) + float(key_usd @ keys)
    carbon = float(fp.device_carbon_kg_per_h @ total)
    return FleetEvaluation(
        total,
        np.round(dedicated).astype(int),
        pools,
        load,
        resident,
        e2e,
        tenant_cost,
        tco,
        tco + penalty_usd_per_h,
        carbon,
        shortage,
        tuple(violations),
        keys,
        key_load,
        key_devices,
    )


def _size_keys(
    fp: FleetProblem, key_load: np.ndarray, key_counts: Sequence[int] | None
) -> tuple[np.ndarray, list[str]]:
    """Replicas per shared LLM pool (the solver's, or the fewest covering its busiest
    capacity) and the pools too small."""
    busiest = key_load.max(axis=1, initial=0.0)
    needed = replicas_for_load(busiest).astype(int)
    keys = needed if key_counts is None else np.asarray(key_counts, dtype=int)
    short = [
        f"LLM pool {fp.key_names[k]} has {keys[k]} replicas but its load of {busiest[k]:.3f} "
        f"replicas needs {needed[k]}"
        for k in np.flatnonzero(keys < needed)
    ]
    return keys, short
