"""Recompute an assignment's devices, memory, inventory, latency and TCO from raw inputs.

Plain loops over :class:`hetopt.oracle.inputs.VerifyInputs`; see :mod:`hetopt.oracle`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from hetopt.oracle.inputs import (
    SECONDS_PER_HOUR,
    EdgeInput,
    OpInput,
    RowInput,
    VerifyInputs,
)
from hetopt.sla import Sla

LATENCY_TOL_S = 1e-6  # one CP-SAT time step: a rounded plan may meet an SLA exactly
CEIL_TOL = 1e-9  # a load of 2.0000000001 device-equivalents still fits 2 devices
MEM_REL_TOL = 1e-9


@dataclass(frozen=True)
class LlmPool:
    """Replicas shared by the exclusive rows that carry one pool key on one device type.

    Attributes
    ----------
    device
        Device type.
    members
        Operators placed on the pool.
    load
        Summed load, in replicas: ``sum rate visits / (requests_per_s max_utilization)``, of
        its busiest capacity (an aggregated replica's prefill chunks and decode slots are
        summed apart: every replica has both).
    needed, replicas
        Replicas the load needs (its ceiling) and replicas judged (published or needed).
    devices_per_replica
        ``tp x pp`` of the pool's rows.
    load_by_capacity
        The summed load of each capacity (``chunk``, ``time or slots``), which tenants of a
        fleet add up before the ceiling.
    """

    device: str
    members: tuple[str, ...]
    load: float
    needed: int
    replicas: int
    devices_per_replica: int
    load_by_capacity: Mapping[str, float] = field(default_factory=dict)

    @property
    def devices(self) -> int:
        """Devices the pool holds."""
        return self.replicas * self.devices_per_replica


@dataclass(frozen=True)
class Recomputed:
    """What an assignment implies, recomputed from raw inputs.

    Attributes
    ----------
    op_devices
        Devices each operator dedicates (0 for pooled and profiled operators).
    dedicated, pool_load, pool_needed, pooled, pool_mem_bytes
        Per device type: dedicated devices, summed pooled load (device-equivalents), pool
        devices that load needs, pool devices judged (the given ones, else the needed), summed
        pooled footprint per device.
    e2e_latency_s
        Worst end-to-end latency with loops counted per the SLA.
    tco_usd_per_h, penalty_usd_per_h, carbon_kg_per_h
        Hourly cost, soft-SLA penalty and carbon.
    violations
        Capacity, memory and inventory violations, and assignment errors.
    sla_violation
        The hard end-to-end SLA's violation ("" when met or soft).
    unpooled_usd_per_h
        The part of the TCO not paid in devices: direct (profiled) and transfer costs.
    op_footprint_bytes
        Resident bytes each non-exclusive operator adds on every device of its pool.
    llm_pools
        Per shared LLM pool (exclusive rows with the same ``pool_key`` on one device type):
        its members, summed load, the replicas that load needs and the replicas judged (the
        given ones, else the needed).
    """

    op_devices: Mapping[str, int]
    dedicated: Mapping[str, int]
    pool_load: Mapping[str, float]
    pool_needed: Mapping[str, int]
    pooled: Mapping[str, int]
    pool_mem_bytes: Mapping[str, float]
    e2e_latency_s: float
    tco_usd_per_h: float
    penalty_usd_per_h: float
    carbon_kg_per_h: float
    violations: tuple[str, ...]
    sla_violation: str = ""
    unpooled_usd_per_h: float = math.nan
    op_footprint_bytes: Mapping[str, float] = field(default_factory=dict)
    llm_pools: Mapping[str, LlmPool] = field(default_factory=dict)

    @property
    def objective_usd_per_h(self) -> float:
        """TCO plus the soft-SLA penalty."""
        return self.tco_usd_per_h + self.penalty_usd_per_h

    @property
    def feasible(self) -> bool:
        """No violation, the hard SLA included."""
        return not self.violations and not self.sla_violation

    def total(self, device: str) -> int:
        """Dedicated + pooled devices of type ``device``."""
        return self.dedicated.get(device, 0) + self.pooled.get(device, 0)


def replicas_needed(inputs: VerifyInputs, op: OpInput, row: RowInput) -> int:
    """Replicas an exclusive operator needs: ``ceil(rate visits / (requests_per_s util))``."""
    need = inputs.request_rate_per_s * op.visits / (row.requests_per_s * inputs.max_utilization)
    return math.ceil(need - CEIL_TOL)


def evaluate_assignment(
    inputs: VerifyInputs,
    assignment: Mapping[str, tuple[str, str]],
    pool_counts: Mapping[str, int] | None = None,
    sla: Sla | None = None,
    llm_pool_counts: Mapping[str, int] | None = None,
) -> Recomputed:
    """Recompute devices, memory, inventory, latency, TCO and objective of an assignment.

    Parameters
    ----------
    inputs
        The raw inputs.
    assignment
        ``{operator: (device, config)}`` for every placeable operator.
    pool_counts
        Pool devices per device type as the plan states them; None judges the minimum needed.
    sla
        The SLA to judge against (default: the inputs' own).
    llm_pool_counts
        Replicas per shared LLM pool key as the plan states them; None judges the needed.

    Returns
    -------
    Recomputed
        With NaN numbers and a violation per operator when the assignment names rows that do
        not exist.
    """
    sla = sla or inputs.sla
    rows: dict[str, RowInput] = {}
    errors = []
    for op in inputs.ops:
        device, config = assignment.get(op.name, ("", ""))
        row = inputs.row(op.name, device, config)
        if row is None:
            errors.append(f"operator '{op.name}' has no cost-table row {device} {config}")
        else:
            rows[op.name] = row
    if errors:
        nan = math.nan
        return Recomputed({}, {}, {}, {}, {}, {}, nan, nan, nan, nan, tuple(errors))
    where = {name: assignment[name][0] for name in rows}
    llm_pools, pool_issues = _llm_pools(inputs, rows, where, llm_pool_counts)
    op_devices, dedicated = _dedicated(inputs, rows, where, llm_pools)
    load, needed, mem = _pools(inputs, rows, where)
    pooled = dict(needed) if pool_counts is None else {d: int(n) for d, n in pool_counts.items()}
    violations = pool_issues + _capacity_violations(inputs, dedicated, load, needed, pooled, mem)
    latency = {name: row.latency_s for name, row in rows.items()}
    e2e = e2e_latency_s(inputs, latency, where, sla)
    devices_usd_per_h = 0.0
    carbon = 0.0
    for dev in inputs.devices:
        count = dedicated.get(dev.name, 0) + pooled.get(dev.name, 0)
        devices_usd_per_h += count * dev.usd_per_h
        carbon += count * dev.carbon_kg_per_h
    direct = 0.0
    for op in inputs.ops:
        runs_per_h = inputs.request_rate_per_s * op.visits * SECONDS_PER_HOUR
        direct += rows[op.name].direct_cost_usd * runs_per_h
    transfers = 0.0
    for edge in inputs.edges:
        if where[edge.src] != where[edge.dst]:
            transfers += edge.cost_usd_per_h
    tco = devices_usd_per_h + direct + transfers
    excess = 0.0 if sla.e2e_s is None else max(0.0, e2e - sla.e2e_s)
    penalty = 0.0 if sla.hard else (sla.penalty_usd_per_h_per_s or 0.0) * excess
    sla_violation = ""
    if sla.hard and sla.e2e_s is not None and e2e > sla.e2e_s + LATENCY_TOL_S:
        sla_violation = f"end-to-end latency {e2e:.6f} s exceeds the SLA {sla.e2e_s:.6f} s"
    return Recomputed(
        op_devices,
        dedicated,
        load,
        needed,
        pooled,
        mem,
        e2e,
        tco,
        penalty,
        carbon,
        tuple(violations),
        sla_violation,
        direct + transfers,
        {name: row.mem_per_device_bytes for name, row in rows.items() if not row.exclusive},
        llm_pools,
    )


def _llm_pools(
    inputs: VerifyInputs,
    rows: Mapping[str, RowInput],
    where: Mapping[str, str],
    published: Mapping[str, int] | None,
) -> tuple[dict[str, LlmPool], list[str]]:
    """Group exclusive rows by pool key, size each group by its summed load, and check the
    published replica counts and that the members are the same configuration."""
    members: dict[str, list[str]] = {}
    for op in inputs.ops:
        row = rows[op.name]
        if row.exclusive and row.pool_key:
            members.setdefault(row.pool_key, []).append(op.name)
    out: dict[str, LlmPool] = {}
    issues: list[str] = []
    for key, names in members.items():
        first = rows[names[0]]
        devices = {where[n] for n in names}
        shapes = {(rows[n].tp, rows[n].pp) for n in names}
        if len(devices) > 1 or len(shapes) > 1:
            issues.append(
                f"LLM pool {key} mixes device types {sorted(devices)} or tp x pp shapes "
                f"{sorted(shapes)} among {names}"
            )
        by_dim: dict[str, float] = {}  # an aggregated replica's chunk budget and decode slots
        for n in names:
            member = inputs.op(n)
            assert member is not None
            dim = "chunk" if rows[n].pool_dim == "chunk" else "time or slots"
            by_dim[dim] = by_dim.get(dim, 0.0) + (
                inputs.request_rate_per_s
                * member.visits
                / (rows[n].requests_per_s * inputs.max_utilization)
            )
        load, needed, replicas = judge_llm_pool(
            key, by_dim, published, issues, "its load", ", ".join(names)
        )
        out[key] = LlmPool(
            where[names[0]], tuple(names), load, needed, replicas, first.tp * first.pp, by_dim
        )
    for key in sorted(set(published or {}) - set(out)):
        issues.append(f"the plan lists LLM pool {key}, which no placed operator uses")
    return out, issues


def judge_llm_pool(
    key: str,
    load_by_capacity: Mapping[str, float],
    published: Mapping[str, int] | None,
    issues: list[str],
    whose: str,
    members: str = "",
) -> tuple[float, int, int]:
    """Load (busiest capacity), replicas needed (its ceiling) and replicas judged (the
    published ones, else the needed) of LLM pool ``key``; a pool too small is added to
    ``issues``, its load named as ``whose`` (and its ``members``, when given)."""
    load = max(load_by_capacity.values())
    needed = math.ceil(load - CEIL_TOL)
    replicas = needed if published is None else int(published.get(key, 0))
    if replicas < needed:
        issues.append(
            f"LLM pool {key} has {replicas} replicas but {whose} of {load:.3f} replicas"
            + (f" ({members})" if members else "")
            + f" needs {needed}"
        )
    return load, needed, replicas


def _dedicated(
    inputs: VerifyInputs,
    rows: Mapping[str, RowInput],
    where: Mapping[str, str],
    llm_pools: Mapping[str, LlmPool],
) -> tuple[dict[str, int], dict[str, int]]:
    """Devices per exclusive operator (its LLM pool's, when it has a pool key), and the sum
    per device type (each pool counted once)."""
    op_devices: dict[str, int] = {}
    per_device: dict[str, int] = {}
    for op in inputs.ops:
        row = rows[op.name]
        if row.exclusive and row.pool_key:
            op_devices[op.name] = llm_pools[row.pool_key].devices
            continue
        count = row.tp * row.pp * replicas_needed(inputs, op, row) if row.exclusive else 0
        op_devices[op.name] = count
        per_device[where[op.name]] = per_device.get(where[op.name], 0) + count
    for pool in llm_pools.values():
        per_device[pool.device] = per_device.get(pool.device, 0) + pool.devices
    return op_devices, per_device


def _pools(
    inputs: VerifyInputs, rows: Mapping[str, RowInput], where: Mapping[str, str]
) -> tuple[dict[str, float], dict[str, int], dict[str, float]]:
    """Per device type: summed pooled load, pool devices it needs, summed footprints."""
    load: dict[str, float] = {}
    needed: dict[str, int] = {}
    mem: dict[str, float] = {}
    for op in inputs.ops:
        row, device = rows[op.name], where[op.name]
        if row.exclusive:
            continue
        mem[device] = mem.get(device, 0.0) + row.mem_per_device_bytes
        if row.pooled:
            share = inputs.request_rate_per_s * op.visits * row.busy_s / inputs.max_utilization
            load[device] = load.get(device, 0.0) + share
    for device, total in load.items():
        needed[device] = max(1, math.ceil(total - CEIL_TOL))
    return load, needed, mem


def _capacity_violations(
    inputs: VerifyInputs,
    dedicated: Mapping[str, int],
    load: Mapping[str, float],
    needed: Mapping[str, int],
    pooled: Mapping[str, int],
    mem: Mapping[str, float],
) -> list[str]:
    out = []
    usable_share = 1.0 - inputs.memory_reserve_fraction
    for dev in inputs.devices:
        name = dev.name
        if pooled.get(name, 0) < needed.get(name, 0):
            out.append(
                f"pool of {name} has {pooled.get(name, 0)} devices but its pooled load of "
                f"{load.get(name, 0.0):.3f} device-equivalents needs {needed[name]}"
            )
        usable = dev.mem_bytes * usable_share
        if mem.get(name, 0.0) > usable * (1 + MEM_REL_TOL):
            out.append(
                f"pooled operators on {name} need {mem[name] / 1e9:.2f} GB per device, more "
                f"than its {usable / 1e9:.2f} GB usable ({dev.mem_bytes / 1e9:.2f} GB less the "
                f"{inputs.memory_reserve_fraction:.0%} reserve)"
            )
        total = dedicated.get(name, 0) + pooled.get(name, 0)
        if total > dev.inventory:
            out.append(
                f"plan uses {total} x {name} but the inventory has {int(dev.inventory)} "
                f"({dedicated.get(name, 0)} dedicated + {pooled.get(name, 0)} pooled)"
            )
    return out


def e2e_latency_s(
    inputs: VerifyInputs,
    latency_s: Mapping[str, float],
    where: Mapping[str, str],
    sla: Sla | None = None,
) -> float:
    """Worst end-to-end latency: the longest path to a sink, plus every loop's cycle times its
    iterations; an edge adds its transfer latency when its ends are on different devices.

    Parameters
    ----------
    inputs
        The raw inputs (edges, loops, sinks).
    latency_s
        Latency of each placeable operator as placed.
    where
        Device type of each placeable operator.
    sla
        Says how many iterations a loop counts (default: the inputs' own SLA).
    """
    forward = [e for e in inputs.edges if not e.back]
    finish = _finish_times(forward, latency_s, where, start=None)
    worst = max((finish(s) or 0.0) for s in inputs.sinks) if inputs.sinks else 0.0
    for loop in inputs.loops:
        body = set(loop.body)
        inside = [e for e in forward if e.src in body and e.dst in body]
        cycle_finish = _finish_times(inside, latency_s, where, start=loop.back_dst)
        back = next(
            e for e in inputs.edges if e.back and (e.src, e.dst) == (loop.back_src, loop.back_dst)
        )
        cycle = (cycle_finish(loop.back_src) or 0.0) + _transfer_s(back, where)
        worst += inputs.loop_iterations(loop, sla) * cycle
    return worst


def _transfer_s(edge: EdgeInput, where: Mapping[str, str]) -> float:
    return edge.latency_s if where[edge.src] != where[edge.dst] else 0.0


def _finish_times(
    edges: list[EdgeInput],
    latency_s: Mapping[str, float],
    where: Mapping[str, str],
    start: str | None,
) -> Callable[[str], float | None]:
    """Finish time of an operator over ``edges`` (a DAG): its latency after its latest input.

    With ``start``, only operators reachable from ``start`` finish (None otherwise), and
    ``start`` begins at time 0; without it every operator without inputs begins at 0.
    """
    into: dict[str, list[EdgeInput]] = {}
    for e in edges:
        into.setdefault(e.dst, []).append(e)
    memo: dict[str, float | None] = {}

    def finish(op: str) -> float | None:
        if op in memo:
            return memo[op]
        ready = None
        for e in into.get(op, []):
            before = finish(e.src)
            if before is not None:
                arrive = before + _transfer_s(e, where)
                ready = arrive if ready is None else max(ready, arrive)
        if ready is None:
            memo[op] = latency_s[op] if start is None or op == start else None
        else:
            memo[op] = latency_s[op] + ready
        return memo[op]

    return finish
