"""Fleet placement problem: every tenant's placement problem on one shared set of device pools.

Each tenant keeps its own :class:`~hetopt.problem.PlacementProblem` (operators, options, edges,
loops, SLA), all indexed over the same device types. What the fleet adds is the coupling:

* **inventory**: dedicated replicas of every tenant plus the shared pools of a device type stay
  within its inventory (limited purchases, installed ``-owned`` devices);
* **shared pools**: the light (pooled) operators of all tenants on a device type share one
  pool, sized by the ceiling of their summed load;
* **shared footprints**: a pool's devices hold each distinct model or index once. Tenants of the
  same agent template share the resident copy of a pooled operator (one Whisper per pool, not
  one per customer); different templates do not;
* **shared LLM pools** (``costs.llm_pools``, :mod:`hetopt.costs.pools`): LLM options of any
  tenants whose cost-table rows carry the same ``pool_key`` are interchangeable replicas, so
  one pool of ``m_k`` replicas covers their summed load. Under the default ``buckets`` that is
  every call of one template (and a call of the same name, model and lengths in another);
  ``model`` pools every call of a model across the fleet. A key only one operator of the
  whole fleet can use keeps that operator's own replicas, as before.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import pandas as pd

from hetopt.consistency import check_inventory, check_inventory_names, check_same_devices
from hetopt.costs.table import CostParams, CostTable, build_cost_table
from hetopt.costs.tco import TcoParams, resolve_hardware
from hetopt.errors import InfeasibleError, InputError
from hetopt.fleet.spec import FleetSpec, TenantSpec
from hetopt.graph.decompose import OperatorGraph, decompose
from hetopt.hardware.spec import HardwareSpec
from hetopt.oracle import verify_inputs
from hetopt.problem import PlacementProblem, build_problem, prune_shared
from hetopt.sla import Sla

Progress = Callable[[str], None]
TableKey = Hashable


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
    key_names, key_device, key_devices_per_replica
        The fleet's shared LLM pools: pool key, device type and devices per replica.
    opt_fleet_key
        Per tenant, the fleet LLM pool of each option (-1: none); its load and capacity are
        the tenant's ``opt_key_load`` and ``opt_key_dim``.
    tenant_graphs, tenant_tables
        Per tenant, the decomposed graph and the cost-table frame its problem was built from
        (``opt_row`` indexes the frame), kept by :func:`build_fleet_problem` for the replay
        (:mod:`hetopt.replay.fleet`); empty for fleets assembled by hand.
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
    key_names: tuple[str, ...] = ()
    key_device: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    key_devices_per_replica: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    opt_fleet_key: tuple[np.ndarray, ...] = ()
    tenant_graphs: tuple[OperatorGraph, ...] = field(default=(), repr=False, compare=False)
    tenant_tables: tuple[pd.DataFrame, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.opt_fleet_key:
            none = tuple(np.full(p.n_options, -1, dtype=int) for p in self.tenants)
            object.__setattr__(self, "opt_fleet_key", none)
        if len(self.opt_fleet_key) != len(self.tenants):
            raise ValueError(
                f"opt_fleet_key has {len(self.opt_fleet_key)} entries for {len(self.tenants)} "
                f"tenants"
            )
        for name, p, fk in zip(self.tenant_names, self.tenants, self.opt_fleet_key, strict=True):
            # an option on a tenant's own LLM pool with no fleet pool would look free
            if p.opt_key is not None and ((p.opt_key >= 0) & (fk < 0)).any():
                raise ValueError(
                    f"tenant '{name}' has options on its own shared LLM pools but no fleet "
                    f"pool for them (opt_fleet_key); assemble the fleet with "
                    f"fleet_from_problems, which maps every tenant's pools onto the fleet's"
                )

    @property
    def n_keys(self) -> int:
        """Number of shared LLM pools."""
        return len(self.key_names)

    def key_usd_per_h(self) -> np.ndarray:
        """Hourly TCO of one replica of each shared LLM pool."""
        return self.key_devices_per_replica * self.device_cost_usd_per_h[self.key_device]

    def keys_on(self, j: int) -> np.ndarray:
        """Shared LLM pools on device type ``j``."""
        return np.flatnonzero(self.key_device == j)

    def key_members(self, key: int) -> list[tuple[int, np.ndarray]]:
        """``(tenant, options)`` of every tenant with options on shared LLM pool ``key``."""
        return self._members_by_key.get(key, [])

    @cached_property
    def _members_by_key(self) -> dict[int, list[tuple[int, np.ndarray]]]:
        """:meth:`key_members` of every pool, indexed in one pass over the tenants (a scan per
        pool took 11 s of the 2,000-operator fleet MILP's build)."""
        out: dict[int, list[tuple[int, np.ndarray]]] = {}
        for t, fk in enumerate(self.opt_fleet_key):
            on = np.flatnonzero(fk >= 0)
            if not len(on):
                continue
            order = on[np.argsort(fk[on], kind="stable")]
            keys, first = np.unique(fk[order], return_index=True)
            for k, opts in zip(keys, np.split(order, first[1:]), strict=True):
                out.setdefault(int(k), []).append((t, opts))
        return out

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
        tenants, prints, fkeys = [], [], []
        for name, p, fp, fk in zip(
            self.tenant_names, self.tenants, self.opt_footprint, self.opt_fleet_key, strict=True
        ):
            mask = keep[p.opt_device]
            try:
                tenants.append(p.restrict(mask))
            except InfeasibleError as exc:
                raise InfeasibleError(f"tenant '{name}': {exc}") from None
            prints.append(fp[mask])
            fkeys.append(fk[mask])
        return replace(
            self, tenants=tuple(tenants), opt_footprint=tuple(prints), opt_fleet_key=tuple(fkeys)
        )

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
    tco_params = tco or TcoParams()
    catalog, inventory, tco_by_device, mem = resolve_hardware(hardware, tco_params, say)
    graphs: dict[str, OperatorGraph] = {}
    tables: dict[tuple[str, float | None, float | None], CostTable] = {}
    templates: list[str] = []
    table_of: list[tuple[str, float | None, float | None]] = []
    say(f"costing {len(fleet.tenants)} tenants on {len(catalog.devices)} device types")
    for tenant in fleet.tenants:
        key = template_key(tenant.workload.data)
        templates.append(key)
        if key not in graphs:
            graphs[key] = decompose(tenant.workload.graph)
        tkey = (key, tenant.sla.ttft_s, tenant.sla.tbt_s)
        if tkey not in tables:
            tables[tkey] = build_cost_table(graphs[key], catalog, tenant.sla, costs)
        table_of.append(tkey)
    frames: dict[TableKey, pd.DataFrame] = {k: t.feasible() for k, t in tables.items()}
    outside, foreign = fleet_pool_keys(frames, Counter(table_of))
    n_shared = len(frozenset().union(*outside.values()))
    dominated: frozenset[str] = frozenset()
    if n_shared:
        rate: dict[TableKey, float] = {}
        for tenant, tkey in zip(fleet.tenants, table_of, strict=True):
            rate[tkey] = rate.get(tkey, 0.0) + tenant.request_rate_per_s
        dominated = fleet_dominated_keys(
            frames,
            {tkey: graphs[tkey[0]] for tkey in tables},
            rate,
            outside,
            costs.max_utilization,
        )
        say(
            f"{n_shared} LLM pool keys shared between tenants (costs.llm_pools="
            f"{costs.llm_pools}); {len(dominated)} dominated fleet-wide"
        )
    problems: list[PlacementProblem] = []
    built: dict[tuple[str, float, Sla], PlacementProblem] = {}
    for tenant, key, tkey in zip(fleet.tenants, templates, table_of, strict=True):
        pkey = (key, tenant.request_rate_per_s, tenant.sla)
        if pkey not in built:
            keys = _Keys(outside.get(tkey, frozenset()), foreign, dominated)
            built[pkey] = _tenant_problem(
                tenant, graphs[key], tables[tkey], tco_by_device, costs, keys
            )
        problems.append(replace(built[pkey], name=tenant.name))
    devices = problems[0].devices
    check_inventory(inventory)
    check_inventory_names(inventory, devices)
    usable = {d: mem.get(d, math.inf) * (1.0 - costs.memory_reserve_fraction) for d in devices}
    fp = fleet_from_problems(
        problems, name=fleet.name, inventory=inventory, mem_bytes=usable, templates=templates
    )
    # What the replay needs besides the problems (tenants of a template share one of each).
    return replace(
        fp,
        tenant_graphs=tuple(graphs[key] for key in templates),
        tenant_tables=tuple(tables[tkey].frame for tkey in table_of),
    )


@dataclass(frozen=True)
class _Keys:
    outside: frozenset[str]
    foreign: frozenset[str]
    dominated: frozenset[str] = frozenset()


def fleet_pool_keys(
    frames: Mapping[TableKey, pd.DataFrame], tenants_per_table: Mapping[TableKey, int]
) -> tuple[dict[TableKey, frozenset[str]], frozenset[str]]:
    """Which LLM pool keys more than one operator of the fleet can use.

    Parameters
    ----------
    frames
        Feasible cost-table rows per distinct table.
    tenants_per_table
        How many tenants use each table (each brings its own copy of every operator).

    Returns
    -------
    outside, foreign
        Per table, its keys that some operator other than its own can use (another tenant's
        copy, or another table's operator), and the keys two or more tables use (a table's
        dominance pruning cannot see the others' operators, so their rows are all kept).

    Examples
    --------
    >>> import pandas as pd
    >>> rows = lambda ops, keys: pd.DataFrame(
    ...     {"op": ops, "pool_key": keys, "exclusive": [True] * len(ops)})
    >>> out, foreign = fleet_pool_keys(
    ...     {"a": rows(["llm", "llm"], ["k1", "k2"]), "b": rows(["chat"], ["k2"])},
    ...     {"a": 1, "b": 1})
    >>> sorted(out["a"]), sorted(out["b"]), sorted(foreign)
    (['k2'], ['k2'], ['k2'])
    >>> sorted(fleet_pool_keys({"a": rows(["llm"], ["k1"])}, {"a": 2})[0]["a"])
    ['k1']
    """
    users: Counter[str] = Counter()
    tables_using: dict[str, set[TableKey]] = {}
    per_table: dict[TableKey, set[str]] = {}
    for tkey, frame in frames.items():
        if "pool_key" not in frame:
            continue
        rows = frame[frame["exclusive"].astype(bool) & frame["pool_key"].fillna("").ne("")]
        ops_per_key = rows.groupby("pool_key")["op"].nunique()
        per_table[tkey] = set(ops_per_key.index)
        for name, n_ops in ops_per_key.items():
            users[str(name)] += int(n_ops) * tenants_per_table[tkey]
            tables_using.setdefault(str(name), set()).add(tkey)
    shared = {k for k, n in users.items() if n > 1}
    foreign = frozenset(k for k in shared if len(tables_using[k]) > 1)
    return {t: frozenset(keys & shared) for t, keys in per_table.items()}, foreign


def fleet_dominated_keys(
    frames: Mapping[TableKey, pd.DataFrame],
    graphs: Mapping[TableKey, OperatorGraph],
    rate_per_s: Mapping[TableKey, float],
    shared: Mapping[TableKey, frozenset[str]],
    max_utilization: float,
) -> frozenset[str]:
    """Shared LLM pool keys that a kept configuration beats for *every* user in the fleet.

    A table alone cannot prune a key that another table's operators also use (it sees only
    its own), so here :func:`~hetopt.problem.prune_shared` runs once over the union of every
    table's rows on shared keys: each table's operators are distinct operators, and each row's
    load is its operator's at the summed rate of the tenants using that table (their copies
    have the same latency and load per request, so one copy per table decides dominance, and
    the summed rate gives the pool's largest possible load). Every user of a dropped key has
    an option, no slower and no heavier, on a kept key of the same device.

    Parameters
    ----------
    frames
        Feasible cost-table rows per distinct table.
    graphs
        The operator graph of each table (for the visits per request).
    rate_per_s
        Summed request rate of the tenants using each table.
    shared
        Per table, its shared keys (:func:`fleet_pool_keys`).
    max_utilization
        The utilisation cap replicas are sized at.

    Returns
    -------
    frozenset of str
        Keys whose rows every table leaves out (``build_problem(dominated_keys=...)``).
    """
    parts = []
    for n, (tkey, frame) in enumerate(frames.items()):
        keys = shared.get(tkey, frozenset())
        if not keys or "pool_key" not in frame:
            continue
        rows = frame[frame["exclusive"].astype(bool) & frame["pool_key"].isin(keys)]
        visits = {op.id: op.visits for op in graphs[tkey].ops}
        need = (
            rate_per_s[tkey]
            * rows["op"].map(visits).to_numpy(dtype=float)
            / (rows["requests_per_s"].to_numpy(dtype=float) * max_utilization)
        )
        parts.append(rows.assign(op=f"{n}:" + rows["op"].astype(str), need_=need))
    if not parts:
        return frozenset()
    union = pd.concat(parts, ignore_index=True)
    keep = prune_shared(
        union,
        np.ones(len(union), dtype=bool),
        union["need_"].to_numpy(dtype=float),
        union["devices_per_replica"].to_numpy(dtype=int),
    )
    keys = union["pool_key"].to_numpy()
    return frozenset(keys[~keep]) - frozenset(keys[keep])


def _tenant_problem(
    tenant: TenantSpec,
    graph: OperatorGraph,
    table: CostTable,
    tco_by_device: dict,
    costs: CostParams,
    keys: _Keys,
) -> PlacementProblem:
    try:
        problem = build_problem(
            graph,
            table,
            tco_by_device,
            tenant.sla,
            tenant.request_rate_per_s,
            costs,
            outside_keys=keys.outside,
            foreign_keys=keys.foreign,
            dominated_keys=keys.dominated,
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
    devices = problems[0].devices
    keys_of = _fleet_keys(problems)
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
        key_names=tuple(keys_of),
        key_device=np.array([d for d, _ in keys_of.values()], dtype=int),
        key_devices_per_replica=np.array([r for _, r in keys_of.values()], dtype=int),
        opt_fleet_key=tuple(_to_fleet_keys(p, keys_of) for p in problems),
    )


def _to_fleet_keys(p: PlacementProblem, keys_of: Mapping[str, object]) -> np.ndarray:
    """The fleet pool of each of ``p``'s options (-1: none)."""
    index = {name: k for k, name in enumerate(keys_of)}
    local = np.array([index[name] for name in p.key_names] + [-1], dtype=int)
    return local[p.opt_key]  # opt_key -1 picks the trailing -1


def _fleet_keys(problems: Sequence[PlacementProblem]) -> dict[str, tuple[int, int]]:
    """Every tenant's shared LLM pool keys, by name, with their device type and devices per
    replica (one key names one configuration, so tenants must agree on both)."""
    out: dict[str, tuple[int, int]] = {}
    for p in problems:
        for k, name in enumerate(p.key_names):
            shape = (int(p.key_device[k]), int(p.key_devices_per_replica[k]))
            if out.setdefault(name, shape) != shape:
                raise InputError(
                    f"fleet tenant '{p.name}' has LLM pool key {name} on "
                    f"{p.devices[shape[0]]} with {shape[1]} devices per replica, but another "
                    f"tenant has it on {p.devices[out[name][0]]} with {out[name][1]}; a pool "
                    f"key names one configuration. Build the tenants from one catalog."
                )
    return out
