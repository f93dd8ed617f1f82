"""Fleet placement problem: every tenant's placement problem on one shared set of device pools.

Each tenant keeps its own :class:`~hetopt.problem.PlacementProblem` (operators, options, edges,
loops, SLA), all indexed over the same device types. What the fleet adds is the coupling:

* **inventory**: dedicated replicas of every tenant plus the shared pools of a device type stay
  within its inventory (limited purchases, installed ``-owned`` devices);
* **shared pools**: the light (pooled) operators of all tenants on a device type share one
  pool, sized by the ceiling of their summed load;
* **shared footprints**: a pool's devices hold each distinct model or index once. Tenants of the
  same agent template share the resident copy of a pooled operator (one Whisper per pool, not
  one per customer); different templates do not.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from hetopt.consistency import check_inventory, check_inventory_names, check_same_devices
from hetopt.costs.table import CostParams, CostTable, build_cost_table
from hetopt.costs.tco import TcoParams, resolve_hardware
from hetopt.errors import InfeasibleError, InputError
from hetopt.fleet.spec import FleetSpec, TenantSpec
from hetopt.graph.decompose import OperatorGraph, decompose
from hetopt.hardware.spec import HardwareSpec
from hetopt.oracle import verify_inputs
from hetopt.problem import PlacementProblem, build_problem
from hetopt.sla import Sla

Progress = Callable[[str], None]


@dataclass(frozen=True)
class FleetProblem:
    """Solver-agnostic fleet placement data.

    Attributes
    ----------
    name
        Fleet name.
    tenant_names
        One name per tenant.
    tenants
        Each tenant's placement problem over ``devices``; their own inventories and memory are
        unlimited, because the fleet arrays below hold the shared limits.
    tenant_class
        Identical tenants (same template, rate and SLA) share a class number.
    tenant_template
        Template key of each tenant (a hash of its workload mapping).
    devices, device_cost_usd_per_h, device_carbon_kg_per_h, device_mem_bytes, device_inventory
        Device types and their hourly TCO, carbon, usable memory and inventory (``inf``: any).
    opt_footprint
        Per tenant, the shared-footprint index of each option (-1: holds nothing resident).
    footprint_device, footprint_bytes
        Device type and resident bytes of each shared footprint.
    """

    name: str
    tenant_names: tuple[str, ...]
    tenants: tuple[PlacementProblem, ...]
    tenant_class: np.ndarray
    tenant_template: tuple[str, ...]
    devices: tuple[str, ...]
    device_cost_usd_per_h: np.ndarray
    device_carbon_kg_per_h: np.ndarray
    device_mem_bytes: np.ndarray
    device_inventory: np.ndarray
    opt_footprint: tuple[np.ndarray, ...]
    footprint_device: np.ndarray
    footprint_bytes: np.ndarray

    @property
    def n_tenants(self) -> int:
        """Number of tenants."""
        return len(self.tenants)

    @property
    def n_ops(self) -> int:
        """Placeable operators over all tenants."""
        return sum(p.n_ops for p in self.tenants)

    @property
    def n_options(self) -> int:
        """Candidate options over all tenants."""
        return sum(p.n_options for p in self.tenants)

    @property
    def n_devices(self) -> int:
        """Number of device types."""
        return len(self.devices)

    def memory_may_bind(self, j: int) -> bool:
        """True when every footprint that could land on device type ``j`` might not fit."""
        on_j = self.footprint_device == j
        return bool(
            math.isfinite(self.device_mem_bytes[j])
            and self.footprint_bytes[on_j].sum() > self.device_mem_bytes[j]
        )

    def restrict_devices(self, keep: np.ndarray) -> FleetProblem:
        """A copy whose tenants only keep options on device types where ``keep`` is true.

        Raises
        ------
        InfeasibleError
            If some tenant's operator has no option left.
        """
        keep = np.asarray(keep, dtype=bool)
        tenants, prints = [], []
        for name, p, fp in zip(self.tenant_names, self.tenants, self.opt_footprint, strict=True):
            mask = keep[p.opt_device]
            try:
                tenants.append(p.restrict(mask))
            except InfeasibleError as exc:
                raise InfeasibleError(f"tenant '{name}': {exc}") from None
            prints.append(fp[mask])
        return replace(self, tenants=tuple(tenants), opt_footprint=tuple(prints))

    def with_inventory(self, inventory: np.ndarray) -> FleetProblem:
        """A copy with another inventory per device type."""
        return replace(self, device_inventory=np.asarray(inventory, dtype=float))


def template_key(workload: object) -> str:
    """A short, stable key for a workload mapping (identical mappings, identical keys)."""
    text = json.dumps(workload, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def build_fleet_problem(
    fleet: FleetSpec,
    hardware: HardwareSpec | None = None,
    costs: CostParams | None = None,
    tco: TcoParams | None = None,
    progress: Progress | None = None,
) -> FleetProblem:
    """Cost every tenant on the shared catalog and assemble the fleet problem.

    Cost tables depend on the template and the per-phase SLA only, so tenants that share them
    share one table; only the rate-dependent sizing is redone per tenant.

    Parameters
    ----------
    fleet
        The tenants.
    hardware
        Catalog, device selection, inventory and what-if edits (installed devices become
        ``<name>-owned`` types with their count as inventory).
    costs, tco
        Cost-model and TCO settings.
    progress
        Optional callback receiving one short line per stage.

    Raises
    ------
    InfeasibleError
        If some tenant's operator fits no device within its per-phase SLA; names the tenant.
    """
    say = progress or (lambda _msg: None)
    hardware = hardware or HardwareSpec()
    costs = costs or CostParams()
    if costs.llm_pools != "off" or costs.aggregated:
        # The fleet's formulations, decomposition and heuristics price LLM replicas per
        # operator; shared LLM pools (hetopt.costs.pools) and aggregated serving, which lives
        # in them, are single-agent plans' for now.
        say(
            f"costs.llm_pools={costs.llm_pools}"
            + (" and costs.aggregated=true apply" if costs.aggregated else " applies")
            + " to single-agent plans; a fleet gives each tenant's LLM operators their own "
            "replicas (llm_pools=off, disaggregated)"
        )
        costs = replace(costs, llm_pools="off", aggregated=False)
    tco_params = tco or TcoParams()
    catalog, inventory, tco_by_device, mem = resolve_hardware(hardware, tco_params, say)
    graphs: dict[str, OperatorGraph] = {}
    tables: dict[tuple[str, float | None, float | None], CostTable] = {}
    problems: list[PlacementProblem] = []
    built: dict[tuple[str, float, Sla], PlacementProblem] = {}
    templates: list[str] = []
    say(f"costing {len(fleet.tenants)} tenants on {len(catalog.devices)} device types")
    for tenant in fleet.tenants:
        key = template_key(tenant.workload.data)
        templates.append(key)
        if key not in graphs:
            graphs[key] = decompose(tenant.workload.graph)
        graph = graphs[key]
        tkey = (key, tenant.sla.ttft_s, tenant.sla.tbt_s)
        if tkey not in tables:
            tables[tkey] = build_cost_table(graph, catalog, tenant.sla, costs)
        pkey = (key, tenant.request_rate_per_s, tenant.sla)
        if pkey not in built:
            built[pkey] = _tenant_problem(tenant, graph, tables[tkey], tco_by_device, costs)
        problems.append(replace(built[pkey], name=tenant.name))
    devices = problems[0].devices
    check_inventory(inventory)
    check_inventory_names(inventory, devices)
    usable = {d: mem.get(d, math.inf) * (1.0 - costs.memory_reserve_fraction) for d in devices}
    return fleet_from_problems(
        problems, name=fleet.name, inventory=inventory, mem_bytes=usable, templates=templates
    )


def _tenant_problem(
    tenant: TenantSpec,
    graph: OperatorGraph,
    table: CostTable,
    tco_by_device: dict,
    costs: CostParams,
) -> PlacementProblem:
    try:
        problem = build_problem(
            graph, table, tco_by_device, tenant.sla, tenant.request_rate_per_s, costs
        )
        # The raw inputs again, for the independent check (hetopt.fleet.verify).
        raw = verify_inputs(
            graph, table, tco_by_device, tenant.sla, tenant.request_rate_per_s, costs
        )
        return replace(problem, raw_inputs=raw)
    except InfeasibleError as exc:
        raise InfeasibleError(f"Fleet tenant '{tenant.name}': {exc}") from None


def fleet_from_problems(
    problems: Sequence[PlacementProblem],
    *,
    name: str = "fleet",
    inventory: Mapping[str, int] | None = None,
    mem_bytes: Mapping[str, float] | None = None,
    templates: Sequence[str] | None = None,
) -> FleetProblem:
    """Assemble a fleet from placement problems built elsewhere (e.g. by hand in tests).

    Parameters
    ----------
    problems
        One problem per tenant, all over the same device types in the same order; their
        names become the tenant names.
    inventory, mem_bytes
        Fleet-wide devices available and usable memory per device type (default unlimited).
    templates
        Template key per tenant: tenants with the same key share resident footprints and,
        with the same data, a symmetry class (default: every tenant its own template).
    """
    check_same_devices([p.devices for p in problems])
    pooled = [p.name for p in problems if p.n_keys]
    if pooled:
        raise InputError(
            f"fleet tenants {pooled} have shared LLM pools (costs.llm_pools); a fleet prices "
            f"LLM replicas per operator. Build the tenants' problems with "
            f"CostParams(llm_pools='off')."
        )
    devices = problems[0].devices
    keys = tuple(templates) if templates is not None else tuple(p.name for p in problems)
    prints: dict[tuple[str, str, int], int] = {}
    sizes: list[float] = []
    where: list[int] = []
    opt_footprint = []
    for key, p in zip(keys, problems, strict=True):
        idx = np.full(p.n_options, -1, dtype=int)
        for o in np.flatnonzero(p.opt_pool_mem_bytes > 0):
            fkey = (key, p.ops[p.opt_op[o]], int(p.opt_device[o]))
            k = prints.setdefault(fkey, len(sizes))
            if k == len(sizes):
                sizes.append(0.0)
                where.append(int(p.opt_device[o]))
            sizes[k] = max(sizes[k], float(p.opt_pool_mem_bytes[o]))
            idx[o] = k
        opt_footprint.append(idx)
    classes: dict[tuple[str, float, Sla], int] = {}
    tenant_class = np.array(
        [
            classes.setdefault((k, p.request_rate_per_s, p.sla), len(classes))
            for k, p in zip(keys, problems, strict=True)
        ],
        dtype=int,
    )
    first = problems[0]
    unlimited = [
        replace(
            p,
            device_inventory=np.full(len(devices), math.inf),
            device_mem_bytes=np.full(len(devices), math.inf),
        )
        for p in problems
    ]
    return FleetProblem(
        name=name,
        tenant_names=tuple(p.name for p in problems),
        tenants=tuple(unlimited),
        tenant_class=tenant_class,
        tenant_template=keys,
        devices=devices,
        device_cost_usd_per_h=first.device_cost_usd_per_h,
        device_carbon_kg_per_h=first.device_carbon_kg_per_h,
        device_mem_bytes=np.array(
            [(mem_bytes or {}).get(d, math.inf) for d in devices], dtype=float
        ),
        device_inventory=np.array([float((inventory or {}).get(d, math.inf)) for d in devices]),
        opt_footprint=tuple(opt_footprint),
        footprint_device=np.array(where, dtype=int),
        footprint_bytes=np.array(sizes, dtype=float),
    )
