"""Placement problem: plain arrays and index sets, no solver imports (pipeline stage 4).

``build_problem`` turns an operator graph and its cost table into the data every formulation
reads: per option (operator x device x configuration) its latency, the devices it dedicates, the
load and memory it adds to a shared pool and its direct cost; per edge the latency and cost paid
when its endpoints run on different device types; loops with their iteration counts.

Two kinds of operators share hardware differently:

* **exclusive** (LLM prefill and decode) hold model weights and KV caches, so each gets whole
  replicas of ``tp x pp`` devices: ``tp pp ceil(rate visits / (replica throughput max_util))``;
* **pooled** (STT, TTS, tools, vector search, filters) are light, so every operator placed on a
  device type shares one pool of that type whose size is the ceiling of their summed load
  (fluid approximation of bin packing, checked by the replay) and whose devices hold all of
  their footprints.

Exclusive options of *different* operators whose cost-table rows carry the same ``pool_key``
(:mod:`hetopt.costs.pools`: one model, phase, device, configuration and context class) are
interchangeable replicas: a **shared LLM pool** (index set ``K``, ``key_*`` arrays) whose size
``m_k = ceil(sum of the loads placed on it)`` is a decision of the model, so size buckets,
calls of one model and their phases round up once, together, instead of each on its own. A key
only one operator can use stays a constant ``opt_dedicated``, so a workload without shared keys
builds exactly the problem it built before shared pools.

Why one module: the problem's arrays, the sizing rule every consumer shares
(:func:`replicas_for_load`) and the prunings that decide which options reach the arrays are
one contract. A pruning is valid only against the exact cost and latency the arrays encode,
and its proof reads them; split apart, a change to one could silently void the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from hetopt.consistency import (
    check_every_op_placeable,
    check_inventory,
    check_inventory_names,
    check_request_rate,
)
from hetopt.costs.pools import key_family
from hetopt.costs.table import CostParams, CostTable, Profile
from hetopt.costs.tco import DeviceTco
from hetopt.errors import InfeasibleError
from hetopt.graph.decompose import OperatorGraph
from hetopt.oracle.inputs import VerifyInputs
from hetopt.sla import Sla

SECONDS_PER_HOUR = 3600.0
LOAD_TOL = 1e-9
"""A load this little above a whole number needs no extra replica or device (float rounding)."""


def replicas_for_load(load: float | np.ndarray, minimum: float | np.ndarray = 0) -> np.ndarray:
    """The planner's sizing rule: whole replicas (or pooled devices) that carry ``load``.

    ``load`` counts replicas' worth of work at the utilisation cap (``rate x visits /
    (replica throughput x max_util)`` for an LLM phase, the summed ``rate x visits x busy_s /
    max_util`` of a shared pool); the rule is its ceiling, at least ``minimum``. The planner sizes
    every pool with it, and the replay's controller re-sizes pools with it.

    Examples
    --------
    >>> replicas_for_load(np.array([2.0, 2.0 + 1e-12, 2.1, 0.0]), 1).tolist()
    [2.0, 2.0, 3.0, 1.0]
    """
    return np.maximum(np.ceil(np.asarray(load, dtype=float) - LOAD_TOL), minimum)


@dataclass(frozen=True)
class LoopSpec:
    """A bounded loop: extra passes over ``body_ops`` (in topological order), closed by ``back_edge``."""

    back_edge: int
    body_ops: tuple[int, ...]
    body_edges: tuple[int, ...]
    expected_iterations: float
    max_iterations: int


@dataclass(frozen=True)
class PlacementProblem:
    """Solver-agnostic placement data; every array is indexed by option, edge or device.

    Attributes
    ----------
    ops, devices
        Operator ids and device-type names (index sets ``V`` and ``H``).
    op_visits
        Expected executions of each operator per request.
    op_kind
        Operator kind from the decomposed graph (``prefill``, ``decode``, ``encoder``,
        ``tool_lookup``, ...); read it instead of parsing operator names.
    op_tokens
        Tokens per visit: the prompt for a prefill, the generated tokens for a decode, 0
        otherwise (:attr:`hetopt.graph.decompose.Operator.tokens_per_visit`).
    device_cost_usd_per_h, device_carbon_kg_per_h, device_mem_bytes, device_inventory
        Hourly TCO, carbon, usable memory and how many devices are available (``inf``: any).
    opt_op, opt_device, opt_config, opt_row
        Owner operator, device, configuration label and cost-table row of each option.
    opt_latency_s
        ``t_ij`` of each option.
    opt_dedicated
        Whole devices the option dedicates (exclusive operators).
    opt_pooled
        True when the option runs in its device type's shared pool, which then needs at least
        one device however small the load.
    opt_pool_load
        Device-equivalents the option adds to its device type's shared pool.
    opt_pool_mem_bytes
        Resident bytes the option adds on every device of that pool.
    opt_direct_usd_per_h
        Cost not tied to devices (profiled costs), in $/h at the request rate.
    key_names, key_device, key_devices_per_replica
        Shared LLM pools: pool key, device type and devices per replica (``tp x pp``).
    opt_key
        The shared pool an option adds its load to (-1: none).
    opt_key_dim
        Which capacity of its pool's replicas the option loads: 0 (time, or an aggregated
        replica's decode slots) or 1 (an aggregated replica's prefill chunk budget); a pool
        needs ``ceil`` of its busiest dimension's summed load.
    opt_key_load
        Replicas' worth of load of an exclusive option, ``rate visits / (replica throughput
        max_util)``: what its shared pool (or its own replicas) must carry; 0 on other options.
    edge_src, edge_dst, edge_is_back
        Operator indices of each edge; back edges close loops.
    edge_probability
        Branch probability of each edge (None: all 1); the replay samples paths with it.
    edge_latency_s, edge_cost_usd_per_h
        Paid when the edge's endpoints run on different device types.
    sinks
        Operators whose finish time ends a request.
    loops
        Bounded loops, counted ``iterations`` times in the end-to-end latency.
    sla
        The SLA (``sla.e2e_s`` bounds the end-to-end latency).
    raw_inputs
        The raw inputs the arrays were built from, for the independent recomputation
        (:mod:`hetopt.oracle`) that the brute-force backend optimises against; set by
        ``hetopt.pipeline.prepare`` and :mod:`hetopt.testing`, None elsewhere.
    """

    name: str
    request_rate_per_s: float
    ops: tuple[str, ...]
    op_visits: np.ndarray
    devices: tuple[str, ...]
    device_cost_usd_per_h: np.ndarray
    device_carbon_kg_per_h: np.ndarray
    device_mem_bytes: np.ndarray
    device_inventory: np.ndarray
    opt_op: np.ndarray
    opt_device: np.ndarray
    opt_config: tuple[str, ...]
    opt_row: np.ndarray
    opt_latency_s: np.ndarray
    opt_dedicated: np.ndarray
    opt_pooled: np.ndarray
    opt_pool_load: np.ndarray
    opt_pool_mem_bytes: np.ndarray
    opt_direct_usd_per_h: np.ndarray
    edge_src: np.ndarray
    edge_dst: np.ndarray
    edge_is_back: np.ndarray
    edge_latency_s: np.ndarray
    edge_cost_usd_per_h: np.ndarray
    sinks: tuple[int, ...]
    loops: tuple[LoopSpec, ...]
    sla: Sla
    edge_probability: np.ndarray | None = None
    op_kind: tuple[str, ...] = ()
    op_tokens: np.ndarray | None = None
    key_names: tuple[str, ...] = ()
    key_device: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    key_devices_per_replica: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    opt_key: np.ndarray | None = None
    opt_key_load: np.ndarray | None = None
    opt_key_dim: np.ndarray | None = None
    raw_inputs: VerifyInputs | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Problems written by hand (tests, hetopt.testing) may leave the kinds out: their
        # operators are generic compute steps without tokens.
        if not self.op_kind:
            object.__setattr__(self, "op_kind", ("compute",) * len(self.ops))
        if self.op_tokens is None:
            object.__setattr__(self, "op_tokens", np.zeros(len(self.ops)))
        if self.opt_key is None:
            object.__setattr__(self, "opt_key", np.full(len(self.opt_op), -1, dtype=int))
        if self.opt_key_load is None:
            object.__setattr__(self, "opt_key_load", np.zeros(len(self.opt_op)))
        if self.opt_key_dim is None:
            object.__setattr__(self, "opt_key_dim", np.zeros(len(self.opt_op), dtype=int))

    @property
    def n_keys(self) -> int:
        """Number of shared LLM pools."""
        return len(self.key_names)

    def key_options(self, key: int) -> np.ndarray:
        """Option indices that add load to shared pool ``key``."""
        return np.flatnonzero(self.opt_key == key)

    def key_usd_per_h(self) -> np.ndarray:
        """Hourly cost of one replica of each shared pool: ``tp pp`` devices at their price."""
        return self.key_devices_per_replica * self.device_cost_usd_per_h[self.key_device]

    def ops_of_kind(self, kind: str) -> np.ndarray:
        """Indices of the operators of ``kind`` (e.g. ``prefill``)."""
        return np.flatnonzero(np.array(self.op_kind) == kind)

    @property
    def n_ops(self) -> int:
        """Number of placeable operators."""
        return len(self.ops)

    @property
    def n_options(self) -> int:
        """Number of candidate options."""
        return len(self.opt_op)

    def options_of(self, op: int) -> np.ndarray:
        """Option indices of operator ``op``."""
        return np.flatnonzero(self.opt_op == op)

    def opt_fixed_usd_per_h(self) -> np.ndarray:
        """Per-option cost that does not depend on other choices: dedicated devices + direct."""
        return (
            self.opt_dedicated * self.device_cost_usd_per_h[self.opt_device]
            + self.opt_direct_usd_per_h
        )

    @property
    def forward_edges(self) -> np.ndarray:
        """Indices of edges that are not loop back edges."""
        return np.flatnonzero(~self.edge_is_back)

    def restrict(self, keep: np.ndarray) -> PlacementProblem:
        """A copy with only the options where ``keep`` is true (e.g. one device type).

        Raises
        ------
        InfeasibleError
            If an operator loses all of its options.
        """
        keep = np.asarray(keep, dtype=bool)
        missing = [self.ops[i] for i in range(self.n_ops) if not keep[self.opt_op == i].any()]
        if missing:
            raise InfeasibleError(f"operators {missing} have no option left after restriction")
        return replace(
            self,
            opt_op=self.opt_op[keep],
            opt_device=self.opt_device[keep],
            opt_config=tuple(c for c, k in zip(self.opt_config, keep, strict=True) if k),
            opt_row=self.opt_row[keep],
            opt_latency_s=self.opt_latency_s[keep],
            opt_dedicated=self.opt_dedicated[keep],
            opt_pooled=self.opt_pooled[keep],
            opt_pool_load=self.opt_pool_load[keep],
            opt_pool_mem_bytes=self.opt_pool_mem_bytes[keep],
            opt_direct_usd_per_h=self.opt_direct_usd_per_h[keep],
            opt_key=self.opt_key[keep],  # type: ignore[index]
            opt_key_load=self.opt_key_load[keep],  # type: ignore[index]
            opt_key_dim=self.opt_key_dim[keep],  # type: ignore[index]
        )

    def with_sla(self, sla: Sla) -> PlacementProblem:
        """A copy with another end-to-end SLA (per-phase limits are already in the options)."""
        return replace(self, sla=sla)

    def loop_iterations(self, loop: LoopSpec) -> float:
        """Iterations of ``loop`` counted in the end-to-end latency, per ``sla.loop_iterations``."""
        if self.sla.loop_iterations == "max":
            return float(loop.max_iterations)
        return loop.expected_iterations


def pareto_front(group: np.ndarray, latency_s: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """True on the options that no other option of their group beats: no slower, no dearer.

    Options are taken cheapest first (then fastest, then in order); one is kept only when it
    is faster than every option of its group taken before it, so of equal options the first
    stays. The planner's rule for options whose cost is their own, on one device type (which
    fixes their transfers and pools): cost-table pruning, relaxed subproblems, SLA repair.

    Examples
    --------
    >>> pareto_front(np.array([0, 0, 0, 1]), np.array([0.1, 0.2, 0.05, 0.3]),
    ...              np.array([10.0, 20.0, 30.0, 1.0])).tolist()
    [True, False, True, True]
    """
    if not len(group):
        return np.zeros(0, dtype=bool)
    order = np.lexsort((latency_s, cost, group))
    g, lat = group[order], latency_s[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    before = np.full(len(lat), np.inf)  # fastest of the group taken before each option
    for a, b in zip(starts, np.r_[starts[1:], len(lat)], strict=True):
        before[a + 1 : b] = np.minimum.accumulate(lat[a : b - 1])
    keep = np.empty(len(order), dtype=bool)
    keep[order] = lat < before - 1e-15
    return keep


def _prune_dominated(
    frame: pd.DataFrame, cost_usd_per_h: pd.Series, candidates: np.ndarray
) -> np.ndarray:
    """Keep, per (operator, device), only ``candidates`` on the latency/cost Pareto front.

    An exclusive option that is both slower and no cheaper than another option of the same
    operator on the same device type can never be optimal: the device type (which fixes the
    edge and pool interactions) is the same, so only latency and cost differ. Options of a
    shared LLM pool are not candidates: their cost depends on what else shares the pool
    (:func:`prune_shared` prunes them).
    """
    keep = np.ones(len(frame), dtype=bool)
    idx = np.flatnonzero(candidates)
    group = pd.MultiIndex.from_arrays(
        [frame["op"].to_numpy()[idx], frame["device"].to_numpy()[idx]]
    ).factorize()[0]
    keep[idx] = pareto_front(
        group,
        frame["latency_s"].to_numpy(dtype=float)[idx],
        cost_usd_per_h.to_numpy(dtype=float)[idx],
    )
    return keep


def prune_shared(
    frame: pd.DataFrame,
    shared: np.ndarray,
    load: np.ndarray,
    dpr: np.ndarray,
    protected: frozenset[str] = frozenset(),
    outside: frozenset[str] = frozenset(),
) -> np.ndarray:
    """Drop shared-pool configurations that a kept configuration of the same family beats
    for every operator that could use them.

    Configuration ``c'`` beats ``c`` (same model, phase, device and context class) when every
    operator with an option at ``c`` also has one at ``c'``, no slower, and either

    * **lighter**: ``c'``'s replicas divide ``c``'s (``dpr_c = r dpr_c'``) with
      ``dpr_c' load'_i <= dpr_c load_i``. For any set of operators ``dpr_c' ceil(L') <=
      dpr_c' ceil(r L) <= dpr_c ceil(L)``, and ``ceil(a + b) <= ceil(a) + ceil(b)`` when
      ``c'`` already carries others; or
    * **cheap**: ``dpr_c' B_c' <= dpr_c``, where ``B_c'`` is the most replicas ``c'``'s pool
      can ever need (the ceiling of every operator's load at ``c'`` summed, per capacity). Any
      plan using ``c`` pays at least one replica of ``dpr_c`` devices for it, and moving its
      operators to ``c'`` adds at most ``dpr_c' B_c'`` devices. This is what prunes light
      pools: when all the family's operators fit one replica, only the fastest configurations
      of the smallest replica survive. It needs ``B_c'`` to count every user, so it is not
      used for keys in ``outside`` (a fleet's other tenants also load them).

    Moving every operator from ``c`` to ``c'`` then never costs more, needs more devices of
    the type, or breaks the SLA. Configurations are visited cheapest first and one is dropped
    only when a configuration already *kept* beats it, so two that beat each other (equal ones,
    or near-equal ones within rounding) never drop each other, and moving several dropped
    configurations' operators to kept ones adds up. No optimum is lost.

    Keys in ``protected`` are never dropped (they may still beat others): their pool is shared
    with operators outside this problem (another fleet tenant's cost table), which the
    dominance above cannot see.
    """
    keep = np.ones(len(frame), dtype=bool)
    idx = np.flatnonzero(shared)
    if not len(idx):
        return keep
    keys = frame["pool_key"].to_numpy()[idx]
    guarded = np.array([k in protected for k in keys], dtype=bool)  # once, not per family
    others = np.array([k in outside for k in keys], dtype=bool)
    parts = [key_family(k) for k in keys]
    chunk = (
        (frame["pool_dim"].to_numpy()[idx] == "chunk")
        if "pool_dim" in frame
        else np.zeros(len(idx), dtype=bool)
    )
    # Codes in order of first appearance: a family's configurations keep their table order.
    family = pd.factorize(pd.Series([f for f, _ in parts], dtype=object))[0]
    config = pd.factorize(pd.Series(keys, dtype=object))[0]
    op_code = pd.factorize(pd.Series(frame["op"].to_numpy()[idx], dtype=object))[0]
    lat = frame["latency_s"].to_numpy(dtype=float)[idx]
    by_family = np.argsort(family, kind="stable")
    for at in np.split(by_family, np.flatnonzero(np.diff(family[by_family])) + 1):
        configs, ci = np.unique(config[at], return_inverse=True)
        if len(configs) < 2:
            continue
        names, oi = np.unique(op_code[at], return_inverse=True)
        pos = idx[at]
        t = np.full((len(configs), len(names)), np.inf)
        w = np.full((len(configs), len(names)), np.inf)
        d = np.zeros(len(configs), dtype=int)
        per_dim = np.zeros((len(configs), 2))
        t[ci, oi] = lat[at]
        d[ci] = dpr[pos]
        w[ci, oi] = d[ci] * load[pos]
        np.add.at(per_dim, (ci, chunk[at].astype(int)), load[pos])
        most = replicas_for_load(per_dim.max(axis=1))  # B_c: every user at once
        open_to_all = np.ones(len(configs), dtype=bool)
        open_to_all[ci] = ~others[at]
        has = np.isfinite(t)
        # beats[a, b]: a may take every operator of b (see the docstring)
        covers = (~has[None, :, :] | has[:, None, :]).all(axis=2)
        faster = (~has[None, :, :] | (t[:, None, :] <= t[None, :, :])).all(axis=2)
        lighter = (~has[None, :, :] | (w[:, None, :] <= w[None, :, :])).all(axis=2)
        divides = (d[None, :] % d[:, None]) == 0
        cheap = open_to_all[:, None] & ((d * most)[:, None] <= d[None, :])
        beats = covers & faster & ((lighter & divides) | cheap)
        np.fill_diagonal(beats, False)
        fixed = np.zeros(len(configs), dtype=bool)  # protected: never dropped
        fixed[ci] = guarded[at]
        mean_t = np.where(has, t, 0.0).sum(axis=1) / np.maximum(has.sum(axis=1), 1)
        kept: list[int] = []
        for b in np.lexsort((mean_t, d * most)):
            if not fixed[b] and kept and beats[kept, b].any():
                continue
            kept.append(int(b))
        dropped = np.setdiff1d(np.arange(len(configs)), kept)
        keep[pos[np.isin(ci, dropped)]] = False
    return keep


def _shared_keys(
    frame: pd.DataFrame,
    keys: np.ndarray | None,
    exclusive: np.ndarray,
    keep: np.ndarray,
    also: frozenset[str] = frozenset(),
) -> np.ndarray:
    """True on exclusive rows (among ``keep``) whose pool key two or more operators can use,
    or that is in ``also`` (keys shared with operators outside this problem)."""
    if keys is None:
        return np.zeros(len(frame), dtype=bool)
    live = keep & exclusive & (keys != "")
    users = pd.Series(frame["op"].to_numpy()[live]).groupby(keys[live]).nunique()
    many = set(users.index[users.to_numpy() > 1]) | also
    return live & np.array([k in many for k in keys], dtype=bool)


def _contract_transfers(graph: OperatorGraph) -> list[tuple[str, str, float, bool, float]]:
    """Edges between placeable operators; non-placeable transfer operators become edges.

    A KV transfer ``prefill -> kv -> decode`` turns into one edge ``prefill -> decode`` whose
    payload is the KV cache, so its latency is paid exactly when the two phases run on
    different device types.
    """
    placeable = {op.id for op in graph.ops if op.placeable}
    payload = {op.id: op.payload_bytes for op in graph.ops if not op.placeable}
    outs: dict[str, list[tuple[str, float, float]]] = {}
    for e in graph.edges:
        outs.setdefault(e.src, []).append((e.dst, e.payload_bytes, e.probability))

    def resolve(dst: str, bytes_: float, p: float) -> list[tuple[str, float, float]]:
        if dst in placeable:
            return [(dst, bytes_, p)]
        return [hit for nxt, _, q in outs.get(dst, []) for hit in resolve(nxt, payload[dst], p * q)]

    edges: list[tuple[str, str, float, bool, float]] = []
    for e in graph.edges:
        if e.src in placeable:
            edges.extend(
                (e.src, dst, b, False, p)
                for dst, b, p in resolve(e.dst, e.payload_bytes, e.probability)
            )
    for lp in graph.loops:
        edges.append((lp.back_src, lp.back_dst, lp.payload_bytes, True, 1.0))
    return edges


def build_problem(
    graph: OperatorGraph,
    table: CostTable,
    device_tco: dict[str, DeviceTco],
    sla: Sla,
    request_rate_per_s: float,
    params: CostParams | None = None,
    device_mem_bytes: dict[str, float] | None = None,
    inventory: dict[str, int] | None = None,
    profile: Profile | None = None,
    outside_keys: frozenset[str] = frozenset(),
    foreign_keys: frozenset[str] = frozenset(),
    dominated_keys: frozenset[str] = frozenset(),
) -> PlacementProblem:
    """Assemble the placement problem from the cost table (pipeline stage 4).

    Parameters
    ----------
    graph
        Decomposed operator graph (visits, edges, loops).
    table
        Candidate configurations; infeasible rows are dropped here.
    device_tco
        Hourly TCO per device name; devices missing from it (profiled ones) cost nothing per
        hour because their cost is in the profile.
    sla
        The SLA; its per-phase limits were already applied by the cost table.
    request_rate_per_s
        Requests entering the agent per second.
    params
        Cost-model knobs (utilisation cap, fabric).
    device_mem_bytes
        Usable memory per device, for pooled operators' footprints.
    inventory
        Available devices per name; omitted names are unlimited.
    profile
        Measured transfer latencies and costs that override the fabric model.
    outside_keys
        Pool keys that operators outside this problem also use (a fleet's other tenants):
        they are shared pools here even with one operator, so their replicas are counted
        where the fleet sums every tenant's load.
    foreign_keys
        The outside keys that some *other* cost table also uses: their configurations are
        kept even when dominated here (:func:`prune_shared`).
    dominated_keys
        Pool keys whose configurations a fleet-wide :func:`prune_shared` over every table that
        uses them dropped: their rows are left out.

    Raises
    ------
    InfeasibleError
        If an operator has no feasible configuration on any device; the message says why, per
        device.
    """
    params = params or CostParams()
    check_request_rate(request_rate_per_s)
    inventory = dict(inventory or {})
    check_inventory(inventory)
    check_inventory_names(inventory, table.devices)
    ops = tuple(op.id for op in graph.ops if op.placeable)
    op_index = {name: i for i, name in enumerate(ops)}
    visits = np.array([graph.op(name).visits for name in ops], dtype=float)
    devices = table.devices
    dev_index = {name: j for j, name in enumerate(devices)}
    cost_h = np.array([device_tco[d].total_usd_per_h if d in device_tco else 0.0 for d in devices])
    carbon_h = np.array(
        [device_tco[d].carbon_kgco2_per_h if d in device_tco else 0.0 for d in devices]
    )
    mem_bytes = np.array(
        [
            (device_mem_bytes or {}).get(d, math.inf) * (1.0 - params.memory_reserve_fraction)
            for d in devices
        ]
    )
    inv = np.array([float(inventory.get(d, math.inf)) for d in devices])

    frame = table.feasible()
    check_every_op_placeable(ops, table, set(frame["op"]))
    rate_visits = request_rate_per_s * frame["op"].map(dict(zip(ops, visits, strict=True)))
    rate_visits_arr = rate_visits.to_numpy(dtype=float)
    exclusive = frame["exclusive"].to_numpy(dtype=bool)
    need = rate_visits_arr / (
        frame["requests_per_s"].to_numpy(dtype=float) * params.max_utilization
    )
    replicas = np.where(exclusive, replicas_for_load(need), 0.0)
    dedicated = (replicas * frame["devices_per_replica"].to_numpy(dtype=float)).astype(int)
    direct = frame["direct_cost_usd"].to_numpy(dtype=float) * rate_visits_arr * SECONDS_PER_HOUR
    pool_load = np.where(
        exclusive,
        0.0,
        rate_visits_arr * frame["busy_s"].to_numpy(dtype=float) / params.max_utilization,
    )
    pool_mem = np.where(exclusive, 0.0, frame["mem_per_device_bytes"].to_numpy(dtype=float))
    pooled = ~exclusive & (frame["config"] != "profiled").to_numpy(dtype=bool)
    dev_of = frame["device"].map(dev_index).to_numpy(dtype=int)
    dpr = frame["devices_per_replica"].to_numpy(dtype=int)
    keys = frame["pool_key"].fillna("").to_numpy(dtype=object) if "pool_key" in frame else None
    live = (
        np.array([k not in dominated_keys for k in keys], dtype=bool)
        if keys is not None and dominated_keys
        else np.ones(len(frame), dtype=bool)
    )
    shared = _shared_keys(frame, keys, exclusive, live, outside_keys)
    fixed = pd.Series(np.where(shared, 0, dedicated) * cost_h[dev_of] + direct, index=frame.index)
    keep = live & _prune_dominated(frame, fixed, exclusive & ~shared & live)
    keep &= prune_shared(frame, shared, need, dpr, foreign_keys, outside_keys)
    # a key may lose all but one operator
    shared = _shared_keys(frame, keys, exclusive, keep, outside_keys)
    pos = np.flatnonzero(keep)
    frame = frame.iloc[pos]
    dedicated = np.where(shared, 0, dedicated)
    key_names = tuple(dict.fromkeys(keys[pos][shared[pos]])) if keys is not None else ()
    key_index = {k: n for n, k in enumerate(key_names)}
    first_of: dict[str, int] = {}
    for n, k in enumerate(keys[pos] if keys is not None else ()):
        first_of.setdefault(k, n)
    first = [first_of[k] for k in key_names]
    opt_key = np.array(
        [key_index[k] if sh else -1 for k, sh in zip(keys[pos], shared[pos], strict=True)]
        if keys is not None
        else [-1] * len(pos),
        dtype=int,
    )

    edges = _contract_transfers(graph)
    link_bw = params.link_bw_bytes_per_s
    e_lat, e_cost = [], []
    for src, dst, payload, _, _ in edges:
        override = profile.transfers.get(f"{src}->{dst}") if profile is not None else None
        if override is not None:
            e_lat.append(override["latency_s"])
            flow = request_rate_per_s * min(graph.op(src).visits, graph.op(dst).visits)
            e_cost.append(override["cost_usd"] * flow * SECONDS_PER_HOUR)
        else:
            e_lat.append(payload / link_bw + params.link_latency_s)
            e_cost.append(0.0)
    edge_src = np.array([op_index[s] for s, *_ in edges], dtype=int)
    edge_dst = np.array([op_index[d] for _, d, *_ in edges], dtype=int)
    is_back = np.array([b for _, _, _, b, _ in edges], dtype=bool)

    loops = []
    for lp in graph.loops:
        body = tuple(op_index[o] for o in lp.body if o in op_index)
        members = set(body)
        back = next(
            k
            for k, (s, d, _, b, _) in enumerate(edges)
            if b and s == lp.back_src and d == lp.back_dst
        )
        body_edges = tuple(
            k
            for k, (s, d, _, b, _) in enumerate(edges)
            if not b and op_index[s] in members and op_index[d] in members
        )
        loops.append(LoopSpec(back, body, body_edges, lp.expected_iterations, lp.max_iterations))

    return PlacementProblem(
        name=graph.name,
        request_rate_per_s=request_rate_per_s,
        ops=ops,
        op_visits=visits,
        op_kind=tuple(graph.op(name).kind.value for name in ops),
        op_tokens=np.array([graph.op(name).tokens_per_visit for name in ops], dtype=float),
        devices=devices,
        device_cost_usd_per_h=cost_h,
        device_carbon_kg_per_h=carbon_h,
        device_mem_bytes=mem_bytes,
        device_inventory=inv,
        opt_op=frame["op"].map(op_index).to_numpy(dtype=int),
        opt_device=dev_of[pos],
        opt_config=tuple(frame["config"]),
        opt_row=frame.index.to_numpy(dtype=int),
        opt_latency_s=frame["latency_s"].to_numpy(dtype=float),
        opt_dedicated=dedicated[pos],
        opt_pooled=pooled[pos],
        opt_pool_load=pool_load[pos],
        opt_pool_mem_bytes=pool_mem[pos],
        opt_direct_usd_per_h=direct[pos],
        key_names=key_names,
        key_device=np.array([dev_of[pos][f] for f in first], dtype=int),
        key_devices_per_replica=np.array([dpr[pos][f] for f in first], dtype=int),
        opt_key=opt_key,
        opt_key_load=np.where(exclusive[pos], need[pos], 0.0),
        opt_key_dim=(
            (frame["pool_dim"] == "chunk").to_numpy(dtype=int)
            if "pool_dim" in frame
            else np.zeros(len(pos), dtype=int)
        ),
        edge_src=edge_src,
        edge_dst=edge_dst,
        edge_is_back=is_back,
        edge_latency_s=np.array(e_lat, dtype=float),
        edge_cost_usd_per_h=np.array(e_cost, dtype=float),
        sinks=tuple(op_index[s] for s in graph.sinks if s in op_index),
        loops=tuple(loops),
        sla=sla,
        edge_probability=np.array([p for *_, p in edges], dtype=float),
    )
