"""Fleet baselines and warm starts: greedy, HEFT-style list scheduling, homogeneous, exhaustive.

* :func:`greedy` places tenants one by one, largest first, on what is left of the inventory:
  each operator takes its cheapest option (a pooled option pays its load at the device's hourly
  price; an option on a shared LLM pool pays the replicas it adds to the load already placed
  there, ``key_usd (ceil(L_k + load) - ceil(L_k))``); while the tenant misses its SLA, the swap
  with the most latency saved per dollar is made. It is the planner's first feasible plan and
  MIP start.
* :func:`heft` is HEFT (Topcuoglu et al., 2002) adapted to cost under a deadline: operators are
  taken in decreasing upward rank; the SLA is spread over them in proportion to their
  mean-latency finish times (deadline distribution); each takes the cheapest option that
  finishes within its sub-deadline, or, when none does, HEFT's earliest-finish option.
* :func:`homogeneous` is the best plan that puts every tenant on one device type (each type
  solved exactly by the fleet MILP), the usual "buy one kind of accelerator" answer.
* :func:`exhaustive` enumerates every assignment of a tiny fleet, the reference optimum.

Why one module: the placers share one inventory and pool bookkeeping (``_Placed``,
:class:`KeyLoad`) and one option pricing, so every baseline charges shared pools and shared
LLM pools the same way.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import networkx as nx
import numpy as np

from hetopt.errors import InfeasibleError, InputError
from hetopt.fleet.evaluate import Choices, evaluate_fleet, fleet_key_load
from hetopt.fleet.problem import FleetProblem
from hetopt.models.evaluate import LATENCY_TOL_S
from hetopt.problem import PlacementProblem, pareto_front, replicas_for_load

EXHAUSTIVE_LIMIT = 200_000


@dataclass(frozen=True)
class HeuristicResult:
    """A baseline's plan (or why it has none) and how long it took.

    Attributes
    ----------
    method
        ``greedy``, ``heft``, ``homogeneous`` or ``exhaustive``.
    choices
        Per tenant, the option of each operator; None when the method found no feasible plan.
    objective_usd_per_h
        Fleet objective of the plan (``nan`` without one).
    runtime_s
        Wall-clock time.
    detail
        What the method did or why it failed (e.g. the device type a homogeneous plan uses).
    proven_optimal
        True only for a completed exhaustive enumeration.
    """

    method: str
    choices: Choices | None
    objective_usd_per_h: float
    runtime_s: float
    detail: str = ""
    proven_optimal: bool = False

    @classmethod
    def without_plan(
        cls, method: str, runtime_s: float, detail: str, proven_optimal: bool = False
    ) -> HeuristicResult:
        """The result of a method that found no feasible plan (objective ``nan``).

        Parameters
        ----------
        method
            The method's name.
        runtime_s
            Wall-clock time spent.
        detail
            Why there is no plan.
        proven_optimal
            True when the search was complete (so no plan exists).

        Returns
        -------
        HeuristicResult
        """
        return cls(method, None, math.nan, runtime_s, detail, proven_optimal=proven_optimal)


class TenantLatency:
    """Fast end-to-end latency of one tenant's assignment (same recursion as the verifier)."""

    def __init__(self, p: PlacementProblem) -> None:
        self.p = p
        g = nx.DiGraph()
        g.add_nodes_from(range(p.n_ops))
        fwd = [int(e) for e in p.forward_edges]
        g.add_edges_from((int(p.edge_src[e]), int(p.edge_dst[e])) for e in fwd)
        self.order = list(nx.topological_sort(g))
        self.preds: list[list[tuple[int, int]]] = [[] for _ in range(p.n_ops)]
        for e in fwd:
            self.preds[int(p.edge_dst[e])].append((int(p.edge_src[e]), e))
        self.loops = []
        for loop in p.loops:
            body = set(loop.body_ops)
            lg = nx.DiGraph()
            lg.add_nodes_from(body)
            lg.add_edges_from((int(p.edge_src[e]), int(p.edge_dst[e])) for e in loop.body_edges)
            preds: dict[int, list[tuple[int, int]]] = {v: [] for v in body}
            for e in loop.body_edges:
                preds[int(p.edge_dst[e])].append((int(p.edge_src[e]), int(e)))
            self.loops.append(
                (
                    list(nx.topological_sort(lg)),
                    preds,
                    int(p.edge_dst[loop.back_edge]),
                    int(p.edge_src[loop.back_edge]),
                    int(loop.back_edge),
                    p.loop_iterations(loop),
                )
            )
        self.sinks = list(p.sinks)
        self.edge_lat = p.edge_latency_s.tolist()

    def finish(self, lat: list[float], dev: list[int]) -> list[float]:
        """Finish time of every operator on one acyclic pass."""
        f = [0.0] * len(lat)
        el = self.edge_lat
        for v in self.order:
            best = 0.0
            for u, e in self.preds[v]:
                t = f[u] + (el[e] if dev[u] != dev[v] else 0.0)
                if t > best:
                    best = t
            f[v] = lat[v] + best
        return f

    def e2e(self, lat: list[float], dev: list[int]) -> float:
        """Worst path latency, loops unrolled per the SLA."""
        f = self.finish(lat, dev)
        el = self.edge_lat
        extra = 0.0
        for order, preds, entry, back_src, back, iters in self.loops:
            g: dict[int, float] = {}
            for v in order:
                hits = [g[u] + (el[e] if dev[u] != dev[v] else 0.0) for u, e in preds[v] if u in g]
                if v != entry and not hits:
                    continue
                g[v] = lat[v] + max(hits, default=0.0)
            cycle = g[back_src] + (el[back] if dev[back_src] != dev[entry] else 0.0)
            extra += iters * cycle
        return max(f[s] for s in self.sinks) + extra


def option_cost_usd_per_h(p: PlacementProblem, price: np.ndarray) -> np.ndarray:
    """Standalone $/h of each option: dedicated devices, direct cost, pooled load at list price
    (an option on a shared LLM pool of the fleet adds what :class:`KeyLoad` charges)."""
    return (
        p.opt_dedicated * price[p.opt_device]
        + p.opt_direct_usd_per_h
        + p.opt_pool_load * price[p.opt_device]
    )


class KeyLoad:
    """The load placed so far on the fleet's shared LLM pools, and what joining them costs.

    Parameters
    ----------
    fp
        The fleet problem.
    price
        Hourly price of each device type (a replica of pool ``k`` costs ``dpr_k price_j``).
    """

    def __init__(self, fp: FleetProblem, price: np.ndarray) -> None:
        self.fp = fp
        self.load = np.zeros((fp.n_keys, 2))
        self.replica_usd_per_h = fp.key_devices_per_replica * price[fp.key_device]
        self._devices = np.zeros(fp.n_devices)  # devices per type at ``load``

    def add(self, key_load: np.ndarray) -> None:
        """Place ``key_load`` (``[key, dim]``) on the pools."""
        self._devices = self.devices_with(key_load)
        self.load = self.load + key_load

    def devices_with(self, key_load: np.ndarray) -> np.ndarray:
        """Devices per type the pools hold once ``key_load`` is added (only the pools it
        touches are re-sized)."""
        rows = np.flatnonzero(key_load.any(axis=1))
        if not len(rows):
            return self._devices
        now = self.load[rows]
        added = self.replicas(now + key_load[rows]) - self.replicas(now)
        return self._devices + np.bincount(
            self.fp.key_device[rows],
            weights=added * self.fp.key_devices_per_replica[rows],
            minlength=self.fp.n_devices,
        )

    def replicas(self, load: np.ndarray | None = None) -> np.ndarray:
        """Replicas each pool needs for ``load`` (default: the load placed so far)."""
        busiest = (self.load if load is None else load).max(axis=1, initial=0.0)
        return replicas_for_load(busiest)

    def devices(self) -> np.ndarray:
        """Devices per type the pools hold for the load placed so far."""
        return self._devices

    def added_replicas(self, t: int, extra: np.ndarray | None = None) -> np.ndarray:
        """Per option of tenant ``t``: the replicas its load adds to its pool, on top of the
        load placed so far (plus ``extra``, ``[key, dim]``); 0 off the pools."""
        p, key = self.fp.tenants[t], self.fp.opt_fleet_key[t]
        out = np.zeros(p.n_options)
        on = np.flatnonzero(key >= 0)
        if not len(on):
            return out
        base = self.load if extra is None else self.load + extra
        k, dim = key[on], p.opt_key_dim[on]  # type: ignore[index]
        after = base[k].copy()
        after[np.arange(len(on)), dim] += p.opt_key_load[on]  # type: ignore[index]
        now = replicas_for_load(base[k].max(axis=1))
        out[on] = replicas_for_load(after.max(axis=1)) - now
        return out

    def marginal_usd_per_h(self, t: int, extra: np.ndarray | None = None) -> np.ndarray:
        """Per option of tenant ``t``: ``key_usd (ceil(L_k + load) - ceil(L_k))``."""
        key = self.fp.opt_fleet_key[t]
        return _per_option(key, self.replica_usd_per_h) * self.added_replicas(t, extra)

    def fluid_usd_per_h(self, t: int) -> np.ndarray:
        """Per option of tenant ``t``: its load at the replica's price (no rounding)."""
        p, key = self.fp.tenants[t], self.fp.opt_fleet_key[t]
        return _per_option(key, self.replica_usd_per_h) * p.opt_key_load


def _per_option(key: np.ndarray, per_key: np.ndarray) -> np.ndarray:
    """``per_key`` of each option's shared LLM pool (0 off the pools)."""
    out = np.zeros(len(key))
    on = key >= 0
    out[on] = per_key[key[on]]
    return out


@dataclass(frozen=True)
class KeyPricing:
    """A tenant's options on the fleet's shared LLM pools, for a placer that prices them one
    operator at a time: fleet pool, capacity, load and replica price of each option."""

    key: np.ndarray
    dim: np.ndarray
    load: np.ndarray
    replica_usd_per_h: np.ndarray
    base: np.ndarray  # [key, dim] load placed before this tenant

    def marginal(self, opts: np.ndarray, extra: dict[tuple[int, int], float]) -> np.ndarray:
        """``key_usd (ceil(L + load) - ceil(L))`` of ``opts`` given the base load plus
        ``extra`` (this tenant's operators placed so far); 0 off the pools."""
        out = np.zeros(len(opts))
        on = np.flatnonzero(self.key[opts] >= 0)
        if not len(on):
            return out
        o = opts[on]
        k = self.key[o]
        row = self.base[k]  # fancy indexing: a copy
        for (kk, d), v in extra.items():
            row[k == kk, d] += v
        now = replicas_for_load(row.max(axis=1))
        row[np.arange(len(o)), self.dim[o]] += self.load[o]
        out[on] = self.replica_usd_per_h[k] * (replicas_for_load(row.max(axis=1)) - now)
        return out


def meets_sla(p: PlacementProblem, e2e: float) -> bool:
    """Whether end-to-end latency ``e2e`` keeps tenant ``p``'s SLA (a soft SLA always does)."""
    return p.sla.e2e_s is None or not p.sla.hard or e2e <= p.sla.e2e_s + LATENCY_TOL_S


def repair_sla(
    p: PlacementProblem,
    lat_eval: TenantLatency,
    choice: list[int],
    allowed: np.ndarray,
    cost: np.ndarray,
) -> list[int] | None:
    """Swap options until the tenant meets its hard SLA, most seconds saved per dollar first.

    A soft SLA swaps while a second saved is worth more than it costs. Returns None when no
    swap helps and the SLA is still missed.
    """
    if p.sla.e2e_s is None:
        return choice
    lat = p.opt_latency_s
    dev_of = p.opt_device
    # a swap to an option its device's front beats never scores higher (same transfers)
    on = np.flatnonzero(allowed)
    front = np.zeros(p.n_options, dtype=bool)
    front[on] = pareto_front(p.opt_op[on] * len(p.devices) + dev_of[on], lat[on], cost[on])
    per_op = [np.flatnonzero(front & (p.opt_op == i)) for i in range(p.n_ops)]
    while True:
        lats = [float(lat[o]) for o in choice]
        devs = [int(dev_of[o]) for o in choice]
        cur = lat_eval.e2e(lats, devs)
        if p.sla.hard and cur <= p.sla.e2e_s + LATENCY_TOL_S:
            return choice
        if not p.sla.hard and cur <= p.sla.e2e_s:
            return choice
        best, best_score = None, 0.0
        for i in range(p.n_ops):
            old = choice[i]
            for o in per_op[i]:
                if o == old or lat[o] > lat[old] + 1e-12 and dev_of[o] == dev_of[old]:
                    continue
                lats[i], devs[i] = float(lat[o]), int(dev_of[o])
                gain = cur - lat_eval.e2e(lats, devs)
                if gain > 1e-9:
                    extra = float(cost[o] - cost[old])
                    if not p.sla.hard:
                        worth = (p.sla.penalty_usd_per_h_per_s or 0.0) * min(
                            gain, cur - p.sla.e2e_s
                        )
                        if worth <= extra:
                            continue
                    score = gain / max(extra, 1e-9)
                    if score > best_score:
                        best, best_score = (i, int(o)), score
            lats[i], devs[i] = float(lat[old]), int(dev_of[old])
        if best is None:
            return choice if not p.sla.hard else None
        choice[best[0]] = best[1]


def _usage(
    fp: FleetProblem, t: int, choice: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Tenant ``t``'s dedicated devices and pooled load per type, the types it pools an
    operator on, and its load on the shared LLM pools (``[key, dim]``)."""
    p, n_dev = fp.tenants[t], fp.n_devices
    c = np.asarray(choice, dtype=int)
    return (
        np.bincount(p.opt_device[c], weights=p.opt_dedicated[c], minlength=n_dev),
        np.bincount(p.opt_device[c], weights=p.opt_pool_load[c], minlength=n_dev),
        np.bincount(p.opt_device[c], weights=p.opt_pooled[c].astype(float), minlength=n_dev) > 0,
        fleet_key_load(fp, t, c),
    )


TenantPlacer = Callable[
    [PlacementProblem, TenantLatency, np.ndarray, np.ndarray, "KeyPricing | None"],
    list[int] | None,
]
"""``(problem, latency, allowed, cost, keys)``: a tenant's plan among ``allowed`` options at
``cost`` per option (shared LLM pools at their marginal cost before the tenant), or None.
``keys`` lets a placer re-price the pools as its own operators fill them."""


RETRIES = 8


def _place_fleet(fp: FleetProblem, placer: TenantPlacer, method: str) -> HeuristicResult:
    """Place tenants largest first on the remaining inventory with ``placer``.

    When a tenant finds no room, the pass starts again with the device types that ran out
    priced higher (x2 per retry), so that earlier tenants leave them to those that need them.
    The plan is always costed at the true prices.
    """
    start = time.perf_counter()
    price = fp.device_cost_usd_per_h.copy()
    final: Choices | None = None
    detail = ""
    attempt = 0
    for attempt in range(RETRIES):  # noqa: B007  (reported below)
        final, exhausted, detail = _place_pass(fp, placer, price)
        if final is not None or not exhausted.any():
            break
        price = np.where(exhausted, price * 2.0, price)
    runtime = time.perf_counter() - start
    if final is None:
        return HeuristicResult.without_plan(method, runtime, detail)
    ev = evaluate_fleet(fp, final)
    if not ev.feasible:
        return HeuristicResult.without_plan(method, runtime, "; ".join(ev.violations[:3]))
    return HeuristicResult(
        method,
        final,
        ev.objective_usd_per_h,
        runtime,
        f"{fp.n_tenants} tenants placed largest first"
        + (f" ({attempt} re-pricing passes)" if attempt else ""),
    )


def _place_pass(
    fp: FleetProblem, placer: TenantPlacer, price: np.ndarray
) -> tuple[Choices | None, np.ndarray, str]:
    """One largest-first pass at ``price``: the plan, or the exhausted types and why not."""
    n_dev = fp.n_devices
    state = _Placed(n_dev, KeyLoad(fp, price))
    demand = [
        float((option_cost_usd_per_h(p, price) + state.keys.fluid_usd_per_h(t)).min() * p.n_ops)
        for t, p in enumerate(fp.tenants)
    ]
    order = sorted(range(fp.n_tenants), key=lambda t: -demand[t])
    choices: list[tuple[int, ...] | None] = [None] * fp.n_tenants
    cache: dict[tuple[int, bytes, bytes], list[int] | None] = {}
    lat_evals: dict[int, TenantLatency] = {}
    for t in order:
        p = fp.tenants[t]
        cls = int(fp.tenant_class[t])
        if cls not in lat_evals:
            lat_evals[cls] = TenantLatency(p)
        banned = np.zeros(n_dev, dtype=bool)
        placed = None
        for _ in range(n_dev + 1):
            allowed = ~banned[p.opt_device] & state.fits(fp, t)
            cost = option_cost_usd_per_h(p, price) + state.keys.marginal_usd_per_h(t)
            key = (cls, allowed.tobytes(), cost.tobytes())
            if key not in cache:
                cache[key] = placer(p, lat_evals[cls], allowed, cost, state.pricing(fp, t))
            choice = cache[key]
            if choice is None:
                break
            use = _usage(fp, t, choice)
            over = np.flatnonzero(state.total(use) > fp.device_inventory + 1e-9)
            if not len(over):
                placed = choice
                state.add(use)
                break
            banned[over] = True
        if placed is None:
            exhausted = np.isfinite(fp.device_inventory) & (
                banned | (state.taken() >= 0.9 * fp.device_inventory)
            )
            return (
                None,
                exhausted,
                (
                    f"could not place tenant '{fp.tenant_names[t]}' on the "
                    f"remaining inventory within its SLA"
                ),
            )
        choices[t] = tuple(placed)
    return tuple(c for c in choices if c is not None), np.zeros(n_dev, dtype=bool), ""


class _Placed:
    """What a pass has placed so far: dedicated devices, pooled load and pools in use per
    device type, and the load on the shared LLM pools."""

    def __init__(self, n_dev: int, keys: KeyLoad) -> None:
        self.dedicated = np.zeros(n_dev)
        self.load = np.zeros(n_dev)
        self.in_use = np.zeros(n_dev, dtype=bool)
        self.keys = keys

    def taken(self) -> np.ndarray:
        """Devices per type held so far (dedicated, pools, shared LLM pools)."""
        pools = np.maximum(np.ceil(self.load - 1e-9), self.in_use)
        return self.dedicated + pools + self.keys.devices()

    def fits(self, fp: FleetProblem, t: int) -> np.ndarray:
        """Options of tenant ``t`` that fit what is left on their own: their dedicated devices,
        a pool grown by their load, the replicas they add to a shared LLM pool."""
        p = fp.tenants[t]
        free = (fp.device_inventory - self.taken())[p.opt_device]
        held = self.keys.added_replicas(t) * _per_option(
            fp.opt_fleet_key[t], fp.key_devices_per_replica
        )
        pool_after = np.maximum(np.ceil(self.load[p.opt_device] + p.opt_pool_load - 1e-9), 1.0)
        others = (self.dedicated + self.keys.devices())[p.opt_device]
        pool_fits = others + pool_after <= fp.device_inventory[p.opt_device]
        allowed = p.opt_dedicated + held <= free + 1e-9
        return allowed & (~p.opt_pooled | pool_fits)

    def total(self, use: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
        """Devices per type held once a tenant's ``use`` (:func:`_usage`) is added."""
        ded, ld, used, key_load = use
        pools = np.maximum(np.ceil(self.load + ld - 1e-9), self.in_use | used)
        return self.dedicated + ded + pools + self.keys.devices_with(key_load)

    def add(self, use: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> None:
        """Place a tenant's ``use``."""
        ded, ld, used, key_load = use
        self.dedicated += ded
        self.load += ld
        self.in_use |= used
        self.keys.add(key_load)

    def pricing(self, fp: FleetProblem, t: int) -> KeyPricing | None:
        """Tenant ``t``'s options on the shared LLM pools for a placer (None: it has none)."""
        key = fp.opt_fleet_key[t]
        if not (key >= 0).any():
            return None
        p = fp.tenants[t]
        return KeyPricing(
            key,
            p.opt_key_dim,  # type: ignore[arg-type]
            p.opt_key_load,  # type: ignore[arg-type]
            self.keys.replica_usd_per_h,
            self.keys.load.copy(),
        )


def _greedy_tenant(
    p: PlacementProblem,
    lat_eval: TenantLatency,
    allowed: np.ndarray,
    cost: np.ndarray,
    keys: KeyPricing | None = None,
) -> list[int] | None:
    """Cheapest allowed option per operator, in order; an option on a shared LLM pool is
    re-priced by the replicas it adds given the load this tenant's earlier operators put
    there (O(options) in all); then :func:`repair_sla`."""
    masked = np.where(allowed, cost, np.inf)
    choice = []
    mine: dict[tuple[int, int], float] = {}
    for i in range(p.n_ops):
        opts = p.options_of(i)
        here = masked[opts]
        if keys is not None and mine:
            pooled = keys.key[opts] >= 0
            if pooled.any():
                marginal = keys.marginal(opts[pooled], mine)
                base = keys.marginal(opts[pooled], {})
                here = here.copy()
                here[pooled] += marginal - base
        best = opts[np.argmin(here)]
        if not allowed[best]:
            return None
        choice.append(int(best))
        if keys is not None and keys.key[best] >= 0:
            slot = (int(keys.key[best]), int(keys.dim[best]))
            mine[slot] = mine.get(slot, 0.0) + float(keys.load[best])
    return repair_sla(p, lat_eval, choice, allowed, cost)


def greedy(fp: FleetProblem) -> HeuristicResult:
    """Cheapest option per operator, SLA repaired by best latency per dollar; tenants largest
    first on the remaining inventory."""
    return _place_fleet(fp, _greedy_tenant, "greedy")


def _heft_tenant(
    p: PlacementProblem,
    lat_eval: TenantLatency,
    allowed: np.ndarray,
    cost: np.ndarray,
    keys: KeyPricing | None = None,
) -> list[int] | None:
    per_op = [np.flatnonzero(allowed & (p.opt_op == i)) for i in range(p.n_ops)]
    if any(len(o) == 0 for o in per_op):
        return None
    mean_lat = [float(p.opt_latency_s[o].mean()) for o in per_op]
    n_types = len(set(p.opt_device[allowed].tolist()))
    p_cross = 1.0 - 1.0 / max(n_types, 1)
    # Upward rank over forward edges (reverse topological order).
    succs: list[list[tuple[int, int]]] = [[] for _ in range(p.n_ops)]
    for v, preds in enumerate(lat_eval.preds):
        for u, e in preds:
            succs[u].append((v, e))
    rank = [0.0] * p.n_ops
    for v in reversed(lat_eval.order):
        rank[v] = mean_lat[v] + max(
            (p_cross * lat_eval.edge_lat[e] + rank[w] for w, e in succs[v]), default=0.0
        )
    deadline = [math.inf] * p.n_ops
    if p.sla.e2e_s is not None:
        apart = list(range(p.n_ops))  # every edge crossing: a pessimistic mean plan
        mean_finish = lat_eval.finish(mean_lat, apart)
        ratio = p.sla.e2e_s / max(lat_eval.e2e(mean_lat, apart), 1e-12)
        deadline = [ratio * f for f in mean_finish]
    finish = [0.0] * p.n_ops
    dev = [-1] * p.n_ops
    choice = [-1] * p.n_ops
    for v in sorted(range(p.n_ops), key=lambda i: -rank[i]):
        best_fit, best_fit_cost, best_eft, best_eft_time = -1, math.inf, -1, math.inf
        for o in per_op[v]:
            d = int(p.opt_device[o])
            ready = max(
                (
                    finish[u] + (lat_eval.edge_lat[e] if dev[u] != d else 0.0)
                    for u, e in lat_eval.preds[v]
                    if choice[u] >= 0
                ),
                default=0.0,
            )
            eft = ready + float(p.opt_latency_s[o])
            if eft <= deadline[v] and cost[o] < best_fit_cost:
                best_fit, best_fit_cost = int(o), float(cost[o])
            if eft < best_eft_time:
                best_eft, best_eft_time = int(o), eft
        pick = best_fit if best_fit >= 0 else best_eft
        choice[v], dev[v] = pick, int(p.opt_device[pick])
        finish[v] = (
            best_eft_time
            if best_fit < 0
            else (
                max(
                    (
                        finish[u] + (lat_eval.edge_lat[e] if dev[u] != dev[v] else 0.0)
                        for u, e in lat_eval.preds[v]
                        if choice[u] >= 0
                    ),
                    default=0.0,
                )
                + float(p.opt_latency_s[pick])
            )
        )
    return repair_sla(p, lat_eval, choice, allowed, cost)


def heft(fp: FleetProblem) -> HeuristicResult:
    """HEFT list scheduling adapted to cost under each tenant's deadline (see module doc)."""
    return _place_fleet(fp, _heft_tenant, "heft")


def homogeneous(
    fp: FleetProblem, solve: Callable[[FleetProblem], tuple[Choices | None, str]]
) -> HeuristicResult:
    """The cheapest feasible plan that runs every tenant on a single device type.

    Parameters
    ----------
    fp
        The fleet problem.
    solve
        Exact solver for a restricted fleet: returns its choices (None if infeasible) and a
        status word.
    """
    start = time.perf_counter()
    best: tuple[float, Choices, str] | None = None
    tried = []
    for j, dev in enumerate(fp.devices):
        try:
            only = fp.restrict_devices(np.arange(fp.n_devices) == j)
        except InfeasibleError:
            tried.append(f"{dev}: cannot run every operator")
            continue
        sub, status = solve(only)
        if sub is None:
            tried.append(f"{dev}: {status}")
            continue
        # Back from the restricted problem's option indices to the fleet's.
        choices = tuple(
            tuple(int(np.flatnonzero(p.opt_device == j)[o]) for o in c)
            for p, c in zip(fp.tenants, sub, strict=True)
        )
        ev = evaluate_fleet(fp, choices)
        if not ev.feasible:
            tried.append(f"{dev}: {ev.violations[0]}")
            continue
        if best is None or ev.objective_usd_per_h < best[0]:
            best = (ev.objective_usd_per_h, choices, dev)
        tried.append(f"{dev}: {ev.objective_usd_per_h:.2f} $/h")
    runtime = time.perf_counter() - start
    if best is None:
        return HeuristicResult.without_plan(
            "homogeneous",
            runtime,
            "no single device type hosts the fleet (" + "; ".join(tried) + ")",
        )
    return HeuristicResult("homogeneous", best[1], best[0], runtime, f"all on {best[2]}")


def exhaustive(fp: FleetProblem, limit: int = EXHAUSTIVE_LIMIT) -> HeuristicResult:
    """Enumerate every assignment of the fleet and keep the cheapest feasible one.

    Raises
    ------
    InputError
        If the fleet has more than ``limit`` assignments.
    """
    per_op = [(t, p.options_of(i)) for t, p in enumerate(fp.tenants) for i in range(p.n_ops)]
    size = math.prod(len(o) for _, o in per_op)
    if size > limit:
        raise InputError(
            f"exhaustive enumeration of this fleet would visit {size:,} "
            f"assignments (limit {limit:,}); use the MILP or CP-SAT planner."
        )
    start = time.perf_counter()
    best: tuple[float, Choices] | None = None
    bounds = np.cumsum([0] + [p.n_ops for p in fp.tenants])
    for combo in itertools.product(*(o for _, o in per_op)):
        choices = tuple(
            tuple(int(c) for c in combo[bounds[t] : bounds[t + 1]]) for t in range(fp.n_tenants)
        )
        ev = evaluate_fleet(fp, choices)
        if ev.feasible and (best is None or ev.objective_usd_per_h < best[0] - 1e-12):
            best = (ev.objective_usd_per_h, choices)
    runtime = time.perf_counter() - start
    if best is None:
        return HeuristicResult.without_plan(
            "exhaustive", runtime, f"{size} assignments, none feasible", proven_optimal=True
        )
    return HeuristicResult(
        "exhaustive",
        best[1],
        best[0],
        runtime,
        f"{size:,} assignments enumerated",
        proven_optimal=True,
    )
