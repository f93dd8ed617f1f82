"""Evaluate a fleet assignment from the problem data alone (the fleet's independent verifier).

Per tenant it reuses the single-agent longest-path recursion of :mod:`hetopt.plan.evaluate`;
the fleet-level quantities (shared pool sizes, resident footprints, inventory, TCO) are
recomputed here with numpy, never through a formulation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hetopt.fleet.problem import FleetProblem
from hetopt.plan.evaluate import LATENCY_TOL_S, e2e_latency_s

Choices = tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class FleetEvaluation:
    """Everything a fleet assignment implies.

    Attributes
    ----------
    devices_per_type
        Dedicated replicas plus shared-pool devices per device type.
    dedicated_per_type, pool_counts
        The two parts of ``devices_per_type``.
    pool_load
        Summed pooled load per device type, in device-equivalents.
    resident_bytes
        Bytes every device of each pool holds (distinct footprints).
    tenant_e2e_s
        End-to-end latency of each tenant.
    tenant_usd_per_h
        Each tenant's dedicated devices, direct and transfer costs plus its pooled load at the
        pool's device price (pools' rounding is not attributed).
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

    @property
    def feasible(self) -> bool:
        """True when no constraint is violated."""
        return not self.violations


def evaluate_fleet(
    fp: FleetProblem, choices: Sequence[Sequence[int]], pool_counts: Sequence[int] | None = None
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
        dedicated += np.bincount(dev, weights=p.opt_dedicated[c], minlength=n_dev)
        tenant_load = np.bincount(dev, weights=p.opt_pool_load[c], minlength=n_dev)
        load += tenant_load
        in_use |= np.bincount(dev, weights=p.opt_pooled[c].astype(float), minlength=n_dev) > 0
        used_prints.update(int(k) for k in fprint[c] if k >= 0)
        cross = (dev[p.edge_src] != dev[p.edge_dst]).astype(float)
        e2e[t] = e2e_latency_s(p, p.opt_latency_s[c], cross)
        own = float(p.opt_fixed_usd_per_h()[c].sum() + p.edge_cost_usd_per_h @ cross)
        direct_usd_per_h += own
        tenant_cost[t] = own + float(fp.device_cost_usd_per_h @ tenant_load)
        sla = p.sla.e2e_s
        if sla is not None:
            excess = max(0.0, e2e[t] - sla)
            if p.sla.hard and excess > LATENCY_TOL_S:
                violations.append(
                    f"tenant '{name}': end-to-end latency {e2e[t]:.6f} s exceeds "
                    f"its SLA {sla:.6f} s"
                )
            elif not p.sla.hard:
                penalty = (p.sla.penalty_usd_per_h_per_s or 0.0) * excess
                penalty_usd_per_h += penalty
                tenant_cost[t] += penalty
    needed = np.maximum(np.ceil(load - 1e-9), in_use).astype(int)
    pools = needed if pool_counts is None else np.asarray(pool_counts, dtype=int)
    for j in np.flatnonzero(pools < needed):
        violations.append(
            f"pool of {fp.devices[j]} has {pools[j]} devices but its load needs {load[j]:.3f}"
        )
    resident = (
        np.bincount(
            fp.footprint_device[sorted(used_prints)],
            weights=fp.footprint_bytes[sorted(used_prints)],
            minlength=n_dev,
        )
        if used_prints
        else np.zeros(n_dev)
    )
    for j in np.flatnonzero(resident > fp.device_mem_bytes * (1 + 1e-9)):
        violations.append(
            f"pooled operators on {fp.devices[j]} hold {resident[j] / 1e9:.2f} GB "
            f"per device, more than its {fp.device_mem_bytes[j] / 1e9:.2f} GB"
        )
    dedicated_int = np.round(dedicated).astype(int)
    total = dedicated_int + pools
    shortage = np.maximum(0.0, total - fp.device_inventory)
    for j in np.flatnonzero(shortage > 0):
        violations.append(
            f"plan uses {total[j]} x {fp.devices[j]} but the inventory has "
            f"{int(fp.device_inventory[j])}"
        )
    tco = direct_usd_per_h + float(fp.device_cost_usd_per_h @ pools)
    carbon = float(fp.device_carbon_kg_per_h @ total)
    return FleetEvaluation(
        total,
        dedicated_int,
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
    )
