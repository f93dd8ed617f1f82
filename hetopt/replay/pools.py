"""The pools a plan holds, their sizing rule, and the first-come-first-served queue.

Every operator the plan places runs in one pool:

* an LLM phase (an *exclusive* option) gets its own replicas of ``tp x pp`` devices, each with
  ``batch`` slots, as many replicas as the planner dedicated;
* the light operators placed on a device type share that type's pool of single devices, one
  slot each, as many as the plan's pool count;
* a *profiled* operator (measured latency, no device) holds nothing and waits its latency.

Transfers long enough to matter (KV caches) queue on a *link* pool per (sending, receiving)
device type, with one link per sending device. Pools are sized with the planner's own rule,
:func:`hetopt.problem.replicas_for_load`, which :class:`PoolSizing` applies at any rate.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hetopt.graph.decompose import OperatorGraph, OpKind
from hetopt.plan.plan import Plan
from hetopt.problem import PlacementProblem, replicas_for_load
from hetopt.replay.control import busy_slots

LINK_QUEUE_MIN_S = 1e-4  # shorter transfers (small payloads) do not queue on links


@dataclass(frozen=True)
class PoolSizing:
    """The planner's sizing rule for one pool, as a function of the request rate.

    An exclusive pool needs ``ceil(rate x visits / (replica throughput x u))`` replicas; a shared
    pool ``ceil(rate x sum(visits x busy_s) / u)`` devices, at least one
    (:func:`hetopt.problem.replicas_for_load`). ``per_rate`` holds the rate-independent part
    (``visits / throughput`` or ``sum(visits x busy_s)``).

    Examples
    --------
    One operator of 0.1 s per request on a shared pool at a cap of 0.8:

    >>> sizing = PoolSizing(per_rate=0.1, minimum=1)
    >>> sizing.replicas(25.0, 0.8), sizing.replicas(50.0, 0.8), sizing.replicas(0.0, 0.8)
    (4, 7, 1)
    """

    per_rate: float
    minimum: int

    def replicas(self, rate_per_s: float, utilization: float) -> int:
        """Replicas (or devices of a shared pool) needed at ``rate_per_s``."""
        return int(replicas_for_load(rate_per_s * self.per_rate / utilization, self.minimum))


@dataclass(frozen=True)
class PoolSpec:
    """One pool the plan holds.

    Attributes
    ----------
    name
        ``<operator> (<device> <config>)`` for an LLM phase's replicas, the pool key for an
        LLM pool shared by several operators (and ``<key> (prefill chunks)`` for the chunk
        lane of an aggregated one, which holds no devices of its own), ``<device> shared
        pool`` for a device type's shared pool.
    device
        Index of its device type in the problem.
    slots_per_replica, devices_per_replica
        Concurrent jobs and devices of one replica (1 and 1 in a shared pool).
    replicas
        Replicas the plan holds (at least one).
    sizing
        The planner's rule for it, which the controller applies at the rate it measures.
    """

    name: str
    device: int
    slots_per_replica: int
    devices_per_replica: int
    replicas: int
    sizing: PoolSizing

    @property
    def planned_devices(self) -> int:
        """Devices the plan holds for this pool."""
        return self.replicas * self.devices_per_replica

    @property
    def slots(self) -> int:
        """Concurrent jobs the plan's replicas serve."""
        return self.replicas * self.slots_per_replica


@dataclass(frozen=True)
class OpSpec:
    """How one operator runs in the replay.

    Attributes
    ----------
    name, pool, pool_id
        The operator, its pool's name and index (None and -1: a profiled cost, no pool).
    hold_s, static_s, latency_s
        Time it holds a slot, time it then waits holding nothing (an external API), and their
        sum, the planner's latency of one execution.
    is_prefill
        An LLM prefill placed on a device: its end is the request's first token.
    step_s
        A decode's time per generated token at the planned batch; else 0.
    tokens
        Prompt tokens of a prefill, generated tokens of a decode; else 0.
    """

    name: str
    pool: str | None
    pool_id: int
    hold_s: float
    static_s: float
    latency_s: float
    is_prefill: bool
    step_s: float
    tokens: float


@dataclass(frozen=True)
class _Placed:
    """What the chosen cost-table row says about one operator."""

    pool_id: int
    hold_s: float
    static_s: float
    step_s: float  # the row's time per token (NaN or 0 where it has none)
    on_device: bool  # False: a profiled cost


def plan_pools(
    plan: Plan, problem: PlacementProblem, table: pd.DataFrame
) -> tuple[list[PoolSpec], list[_Placed]]:
    """The pools ``plan`` holds, in order of first use, and where each operator runs."""
    choice = np.asarray(plan.choice, dtype=int)
    dev = problem.opt_device[choice]
    pools: dict[str, tuple[int, int, int, int]] = {}  # device, slots/replica, dpr, replicas
    per_rate: dict[str, float] = {}
    # Every LLM pool runs the plan's replicas; a pool of two or more members is one queue
    # under its key, a pool of one member keeps the operator's own name.
    records = plan.llm_pools.to_dict(orient="records")
    replicas_of = {str(r["pool"]): int(r["replicas"]) for r in records}
    shared = {str(r["pool"]) for r in records if ";" in str(r["members"])}
    placed: list[_Placed] = []
    for i, o in enumerate(choice):
        row = table.loc[problem.opt_row[o]]
        if row["config"] == "profiled":
            placed.append(_Placed(-1, 0.0, float(row["latency_s"]), 0.0, False))
            continue
        visits = float(problem.op_visits[i])
        device = problem.devices[dev[i]]
        if bool(row["exclusive"]):
            dpr = int(row["devices_per_replica"])
            key = row.get("pool_key")
            key = key if isinstance(key, str) and key in replicas_of else ""
            replicas = max(replicas_of[key] if key else int(problem.opt_dedicated[o]) // dpr, 1)
            if key in shared and row.get("pool_dim") == "chunk":
                # An aggregated replica's prefill chunk budget: a lane of one prompt per
                # replica beside its decode slots, on the same devices (counted once, there).
                pool, dpr = f"{key} (prefill chunks)", 0
            elif key in shared:
                pool = key
            else:
                pool = f"{problem.ops[i]} ({device} {row['config']})"
            pools.setdefault(pool, (int(dev[i]), int(row["batch"]), dpr, replicas))
            per_rate[pool] = per_rate.get(pool, 0.0) + visits / float(row["requests_per_s"])
            hold, static = float(row["latency_s"]), 0.0
        else:
            pool = f"{device} shared pool"
            pools.setdefault(pool, (int(dev[i]), 1, 1, max(int(plan.pool_counts[dev[i]]), 1)))
            per_rate[pool] = per_rate.get(pool, 0.0) + visits * float(row["busy_s"])
            hold, static = float(row["busy_s"]), float(row["static_s"] or 0.0)
        step = float(row["step_s"]) if pd.notna(row["step_s"]) else 0.0
        placed.append(_Placed(list(pools).index(pool), hold, static, step, True))
    specs = [
        PoolSpec(name, device, slots, dpr, replicas, PoolSizing(per_rate[name], 1))
        for name, (device, slots, dpr, replicas) in pools.items()
    ]
    return specs, placed


def op_specs(
    plan: Plan, problem: PlacementProblem, table: pd.DataFrame, graph: OperatorGraph
) -> tuple[list[OpSpec], list[PoolSpec]]:
    """One :class:`OpSpec` per operator and one :class:`PoolSpec` per pool the plan holds.

    The operator's kind (prefill, decode) and tokens come from the decomposed ``graph``.
    """
    pools, placed = plan_pools(plan, problem, table)
    ops = []
    for name, where in zip(problem.ops, placed, strict=True):
        op = graph.op(name)
        tokens = float(op.tokens_per_visit)
        ops.append(
            OpSpec(
                name,
                pools[where.pool_id].name if where.pool_id >= 0 else None,
                where.pool_id,
                where.hold_s,
                where.static_s,
                where.hold_s + where.static_s,
                where.on_device and op.kind is OpKind.PREFILL,
                where.step_s if where.on_device and op.kind is OpKind.DECODE else 0.0,
                tokens,
            )
        )
    return ops, pools


def devices_held(pools: Sequence[PoolSpec], devices: Sequence[str]) -> dict[str, int]:
    """Devices the plan holds per device type, over all of its pools."""
    held: dict[str, int] = {}
    for s in pools:
        name = devices[s.device]
        held[name] = held.get(name, 0) + s.planned_devices
    return held


@dataclass(frozen=True)
class Links:
    """The link pools transfers queue on.

    Attributes
    ----------
    edge_link
        Per edge, the link its transfers queue on (-1: none, the transfer runs at full
        bandwidth whatever else is in flight).
    names, capacities
        Per link, ``link <sending> -> <receiving>`` and its number of links (one per sending
        device the plan holds).
    """

    edge_link: np.ndarray
    names: tuple[str, ...]
    capacities: tuple[int, ...]


def plan_links(
    problem: PlacementProblem,
    device_of_op: np.ndarray,
    cross: np.ndarray,
    pools: Sequence[PoolSpec],
    contention: bool,
) -> Links:
    """Link pools per (sending, receiving) device type for the transfers that queue.

    A transfer queues when ``contention`` is on and it takes at least
    :data:`LINK_QUEUE_MIN_S` (a KV cache rather than a small payload).
    """
    sending = np.zeros(len(problem.devices))
    for s in pools:
        sending[s.device] += s.planned_devices
    edge_link = np.full(len(problem.edge_src), -1)
    link_keys: dict[tuple[int, int], int] = {}
    for e in range(len(problem.edge_src)):
        if contention and problem.edge_latency_s[e] * cross[e] >= LINK_QUEUE_MIN_S:
            key = (int(device_of_op[problem.edge_src[e]]), int(device_of_op[problem.edge_dst[e]]))
            edge_link[e] = link_keys.setdefault(key, len(link_keys))
    return Links(
        edge_link,
        tuple(f"link {problem.devices[a]} -> {problem.devices[b]}" for a, b in link_keys),
        tuple(max(int(sending[a]), 1) for a, _ in link_keys),
    )


class FcfsPool:
    """``capacity`` identical servers taking work first come, first served.

    SimPy delivers arrivals at a pool in time order, so the start of each job is exactly
    ``max(now, earliest free server)`` (the multi-server Lindley recursion): one timeout per
    job instead of SimPy's request/hold/release events, which is what lets an hour of a busy
    agent replay in seconds. Busy intervals are kept for the utilisation series.

    Parameters
    ----------
    capacity
        Servers (slots).
    devices
        Devices it holds throughout (0 for a link).

    Examples
    --------
    >>> pool = FcfsPool(1)
    >>> pool.admit(0.0, 2.0), pool.admit(1.0, 2.0)
    (0.0, 1.0)
    """

    prefix_hits = 0  # no router, so no prefix-cache hits

    def __init__(self, capacity: int, devices: int = 0) -> None:
        self.capacity = capacity
        self.devices = devices
        self.free_at = [0.0] * capacity  # a heap of the times each server becomes free
        self.arrived: list[float] = []
        self.starts: list[float] = []
        self.ends: list[float] = []

    def admit(self, now: float, service_s: float) -> float:
        """Queue a job arriving ``now``; return its waiting time."""
        start = max(now, heapq.heappop(self.free_at))
        heapq.heappush(self.free_at, start + service_s)
        self.arrived.append(now)
        self.starts.append(start)
        self.ends.append(start + service_s)
        return start - now

    def busy_fraction(self, times: np.ndarray) -> np.ndarray:
        """Share of servers busy at each of ``times``."""
        return busy_slots(self.starts, self.ends, times) / self.capacity

    def service_times(self) -> np.ndarray:
        """Time each job held a server, in order of arrival."""
        return np.subtract(self.ends, self.starts)

    def capacity_slots(self, times: np.ndarray) -> np.ndarray:
        """Servers at each of ``times`` (always all of them)."""
        return np.full(len(times), self.capacity)

    def devices_held(self, times: np.ndarray) -> np.ndarray:
        """Devices paid for at each of ``times``."""
        return np.full(len(times), float(self.devices))

    def device_seconds(self, horizon_s: float) -> float:
        """Device-seconds held between 0 and ``horizon_s``."""
        return self.devices * horizon_s
