"""Discrete-event replay of a plan on SimPy.

Every request walks the agent graph the plan placed:

* its path is sampled first: branch choices by their probabilities, and each loop's
  iterations (binomial, mean ``expected_iterations``, at most ``max_iterations``) every time the
  loop is entered; the walk unrolls loops into one operator *instance* per pass, and an operator
  fed by parallel branches waits for all of them (AND-join);
* an LLM phase holds one of its replicas' batch slots (``replicas x batch`` slots in all) for
  its batch latency, which is how continuous batching and batched prefill serve requests at the
  planned step time without simulating tokens one by one;
* a light operator holds one device of its device type's shared pool for its busy time, then
  waits out its static latency (an external API) without holding anything;
* an edge between different device types waits its transfer time (KV cache or payload over the
  fabric).

Each instance's queueing delay and service time are recorded, so the result says where the time
went; each request's latency is compared with the planner's prediction for the same path.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import simpy

from hetopt.errors import InputError
from hetopt.plan.plan import Plan
from hetopt.problem import PlacementProblem
from hetopt.replay.arrivals import ArrivalSpec, arrival_times

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ReplayConfig:
    """Replay settings (the Hydra ``replay`` group).

    Attributes
    ----------
    duration_s
        Simulated time during which requests arrive; in-flight requests then drain for up to
        ``drain_s``.
    warmup_s
        Requests arriving before this are simulated but left out of the statistics.
    seed
        Seed of every random draw: the same seed gives the same replay.
    service
        ``deterministic`` service times, or ``exponential`` ones with the same means (for
        checking against queueing formulas).
    tool_latency_cv
        Coefficient of variation of static latencies (external APIs), lognormal; 0 = fixed.
    sample_s
        Interval of the utilisation time series.
    """

    arrivals: ArrivalSpec = field(default_factory=ArrivalSpec)
    duration_s: float = 300.0
    warmup_s: float = 0.0
    drain_s: float = 600.0
    seed: int = 0
    service: str = "deterministic"
    tool_latency_cv: float = 0.0
    sample_s: float = 1.0

    def __post_init__(self) -> None:
        if not self.duration_s > 0 or self.warmup_s < 0 or self.warmup_s >= self.duration_s:
            raise InputError("replay.duration_s must be > 0 and replay.warmup_s in "
                             "[0, duration_s).")
        if self.service not in ("deterministic", "exponential"):
            raise InputError("replay.service must be 'deterministic' or 'exponential'.")
        if self.tool_latency_cv < 0 or not self.sample_s > 0 or self.drain_s < 0:
            raise InputError("replay.tool_latency_cv and replay.drain_s must be >= 0, "
                             "replay.sample_s > 0.")


@dataclass(frozen=True)
class ReplayResult:
    """Everything the replay measured, as tidy tables.

    Attributes
    ----------
    requests
        One row per request: arrival, finish, status (``completed`` or ``in_flight`` at the
        end), end-to-end latency, the planner's prediction for its path, TTFT, iterations.
    stages
        Per operator: executions, mean and p99 queueing delay, mean service time.
    pools
        Per pool (an LLM phase's replicas, or a device type's shared pool): slots, mean
        utilisation, mean queueing delay.
    utilisation
        Pool utilisation over time (``time_s``, ``pool``, ``busy_fraction``).
    summary
        Counts, latency percentiles, SLA attainment, $/request, events and wall time.
    """

    requests: pd.DataFrame
    stages: pd.DataFrame
    pools: pd.DataFrame
    utilisation: pd.DataFrame
    summary: dict[str, Any]


@dataclass
class _Op:
    name: str
    pool: str | None
    hold_s: float
    static_s: float
    latency_s: float  # planner's latency for one execution (hold + static)
    is_prefill: bool


@dataclass(frozen=True)
class _Path:
    """One request's unrolled path."""

    ops: list[int]
    deps: list[list[tuple[int, float]]]
    predicted_s: float
    passes: int
    chain: bool


class _FcfsPool:
    """``capacity`` identical servers taking work first come, first served.

    SimPy delivers arrivals at a pool in time order, so the start of each job is exactly
    ``max(now, earliest free server)`` (the multi-server Lindley recursion): one timeout per
    job instead of SimPy's request/hold/release events, which is what lets an hour of a busy
    agent replay in seconds. Busy intervals are kept for the utilisation series.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.free_at = [0.0] * capacity  # a heap of the times each server becomes free
        self.starts: list[float] = []
        self.ends: list[float] = []

    def admit(self, now: float, service_s: float) -> float:
        """Queue a job arriving ``now``; return its waiting time."""
        start = max(now, heapq.heappop(self.free_at))
        heapq.heappush(self.free_at, start + service_s)
        self.starts.append(start)
        self.ends.append(start + service_s)
        return start - now

    def busy_fraction(self, times: np.ndarray) -> np.ndarray:
        """Share of servers busy at each of ``times``."""
        starts, ends = np.sort(self.starts), np.sort(self.ends)
        busy = np.searchsorted(starts, times, side="right") - np.searchsorted(ends, times,
                                                                            side="right")
        return busy / self.capacity


def _draw(rng: np.random.Generator, kind: tuple[Any, ...]) -> int:
    if kind[0] == "binomial":
        return int(rng.binomial(kind[1], kind[2]))
    return int(rng.choice(len(kind[1]), p=np.asarray(kind[1])))


class _Walker:
    """Samples a request's path and unrolls it into operator instances with dependencies."""

    def __init__(self, problem: PlacementProblem, cross: np.ndarray) -> None:
        self.p = problem
        self.cross = cross
        fwd = problem.forward_edges
        self.out: dict[int, list[int]] = {}
        for e in fwd:
            self.out.setdefault(int(problem.edge_src[e]), []).append(int(e))
        self.prob = (problem.edge_probability if problem.edge_probability is not None
                     else np.ones(len(problem.edge_src)))
        g = nx.DiGraph()
        g.add_nodes_from(range(problem.n_ops))
        g.add_edges_from((int(problem.edge_src[e]), int(problem.edge_dst[e])) for e in fwd)
        self.sources = [v for v in g.nodes if g.in_degree(v) == 0]
        sinks = set(problem.sinks)
        self.loops = problem.loops
        self.in_loop = [frozenset(k for k, lp in enumerate(problem.loops) if i in lp.body_ops)
                        for i in range(problem.n_ops)]
        # An operator is loop-only for loop k when it cannot reach the end of the request
        # without loop k's own back edge (other loops' back edges may be taken): it runs only
        # on the passes that go round k again.
        only: list[set[int]] = [set() for _ in range(problem.n_ops)]
        for k, lp in enumerate(problem.loops):
            gk = g.copy()
            gk.add_edges_from((int(problem.edge_src[o.back_edge]), int(problem.edge_dst[o.back_edge]))
                              for j, o in enumerate(problem.loops) if j != k)
            for i in lp.body_ops:
                if i not in sinks and not nx.descendants(gk, i) & sinks:
                    only[i].add(k)
        self.loop_only = [frozenset(x) for x in only]
        self.back_of = {int(problem.edge_src[lp.back_edge]): k
                        for k, lp in enumerate(problem.loops)}
        self._trie: dict[str, Any] = {}

    def _iterations(self, k: int, decide: Callable[[tuple[Any, ...]], int]) -> int:
        lp = self.loops[k]
        if lp.max_iterations <= 0 or lp.expected_iterations <= 0:
            return 0
        return decide(("binomial", lp.max_iterations,
                       min(1.0, lp.expected_iterations / lp.max_iterations)))

    def sample(self, rng: np.random.Generator, op_lat: np.ndarray) -> _Path:
        """A request's unrolled path, drawn with ``rng``.

        Paths are determined by a short sequence of discrete decisions (loop passes, branch
        choices), so they are cached in a trie of decisions: a request whose decisions were
        seen before reuses that path instead of walking the graph again.
        """
        node = self._trie
        drawn: list[int] = []
        while "path" not in node:
            if "kind" not in node:  # unexplored: walk the graph with these decisions first
                return self._walk(rng, op_lat, drawn)
            value = _draw(rng, node["kind"])
            drawn.append(value)
            node = node["children"].setdefault(value, {})
        return node["path"]

    def _walk(self, rng: np.random.Generator, op_lat: np.ndarray, prefix: list[int]) -> _Path:
        decisions: list[tuple[tuple[Any, ...], int]] = []
        queue = list(prefix)

        def decide(kind: tuple[Any, ...]) -> int:
            value = queue.pop(0) if queue else _draw(rng, kind)
            decisions.append((kind, value))
            return value

        path = self.unroll(decide, op_lat)
        node = self._trie
        for kind, value in decisions:
            node["kind"] = kind
            node = node.setdefault("children", {}).setdefault(value, {})
        node["path"] = path
        return path

    def unroll(self, decide: Callable[[tuple[Any, ...]], int], op_lat: np.ndarray) -> _Path:
        """Instances (op per instance), their dependencies (dep, transfer s), the planner's
        latency for this path and the number of loop passes taken."""
        inst_op: list[int] = []
        deps: list[list[tuple[int, float]]] = []
        index: dict[tuple[int, tuple[tuple[int, int], ...]], int] = {}
        budget: dict[tuple[int, tuple[tuple[int, int], ...]], int] = {}
        passes = 0

        def ctx_for(v: int, keep: dict[int, int]) -> tuple[tuple[int, int], ...]:
            full = tuple((k, keep.get(k, 0)) for k in sorted(self.in_loop[v]))
            for k in self.in_loop[v] - keep.keys():  # loops entered here: sample their passes
                key = (k, tuple(ji for ji in full if ji[0] != k))
                if key not in budget:
                    budget[key] = self._iterations(k, decide)
            return full

        def get(v: int, ctx: tuple[tuple[int, int], ...]) -> int:
            key = (v, ctx)
            if key not in index:
                index[key] = len(inst_op)
                inst_op.append(v)
                deps.append([])
            return index[key]

        queue: list[tuple[int, tuple[tuple[int, int], ...]]] = []
        for s in self.sources:
            c = ctx_for(s, {})
            get(s, c)
            queue.append((s, c))
        seen: set[tuple[int, tuple[tuple[int, int], ...]]] = set()
        while queue:
            u, ctx = queue.pop(0)
            if (u, ctx) in seen:
                continue
            seen.add((u, ctx))
            me = index[(u, ctx)]
            cdict = dict(ctx)

            def remaining(k: int, ctx: tuple[tuple[int, int], ...] = ctx,
                          cdict: dict[int, int] = cdict) -> bool:
                """True while loop k still has passes left in this context."""
                return cdict[k] < budget[(k, tuple(ji for ji in ctx if ji[0] != k))]

            edges = self.out.get(u, [])
            alternatives = [e for e in edges if self.prob[e] < 1.0]
            chosen = None
            if alternatives:
                weights = self.prob[alternatives]
                chosen = alternatives[decide(("choice", tuple(weights / weights.sum())))]
            for e in edges:
                if self.prob[e] < 1.0 and e != chosen:
                    continue
                v = int(self.p.edge_dst[e])
                # into the part of a loop that only runs when the loop goes round again
                entering = (self.loop_only[v] - self.loop_only[u]) & self.in_loop[u]
                if entering and not all(remaining(k) for k in entering):
                    continue
                # out of a loop: only once its passes are used up
                leaving = (self.in_loop[u] - self.in_loop[v]) - self.loop_only[u]
                if any(remaining(k) for k in leaving):
                    continue
                keep = {k: i for k, i in cdict.items() if k in self.in_loop[v]}
                vctx = ctx_for(v, keep)
                dep = get(v, vctx)
                deps[dep].append((me, float(self.p.edge_latency_s[e] * self.cross[e])))
                queue.append((v, vctx))
            k = self.back_of.get(u)
            if k is not None and remaining(k):
                lp = self.loops[k]
                v = int(self.p.edge_dst[lp.back_edge])
                vctx = tuple((j, i + 1 if j == k else i) for j, i in ctx if j in self.in_loop[v])
                passes += 1
                dep = get(v, vctx)
                deps[dep].append((me, float(self.p.edge_latency_s[lp.back_edge]
                                            * self.cross[lp.back_edge])))
                queue.append((v, vctx))
        finish = [0.0] * len(inst_op)
        for n in range(len(inst_op)):  # instances are created in a topological order
            ready = max((finish[d] + lat for d, lat in deps[n]), default=0.0)
            finish[n] = ready + float(op_lat[inst_op[n]])
        # A chain (each instance waits for the one before it only) runs in one process.
        chain = all(len(deps[n]) == (1 if n else 0) and (n == 0 or deps[n][0][0] == n - 1)
                    for n in range(len(inst_op)))
        return _Path(inst_op, deps, max(finish), passes, chain)


def replay(plan: Plan, problem: PlacementProblem, table: pd.DataFrame, config: ReplayConfig,
           progress: Progress | None = None) -> ReplayResult:
    """Replay request traffic through ``plan``.

    Parameters
    ----------
    plan
        A verified plan.
    problem
        The placement problem it answers (device counts, latencies, edges, loops).
    table
        The cost table frame (per-option batch, tp x pp, busy and static times).
    config
        Arrivals, horizon, seed and service-time model.
    progress
        Optional callback receiving short status lines.

    Returns
    -------
    ReplayResult
    """
    rng = np.random.default_rng(config.seed)
    arrivals = arrival_times(config.arrivals, config.duration_s, rng)
    env = simpy.Environment()
    choice = np.asarray(plan.choice, dtype=int)
    dev = problem.opt_device[choice]
    cross = (dev[problem.edge_src] != dev[problem.edge_dst]).astype(float)

    pools: dict[str, _FcfsPool] = {}
    slots: dict[str, int] = {}
    ops: list[_Op] = []
    for i, o in enumerate(choice):
        row = table.loc[problem.opt_row[o]]
        name = problem.ops[i]
        device = problem.devices[dev[i]]
        if row["config"] == "profiled":
            ops.append(_Op(name, None, 0.0, float(row["latency_s"]), float(row["latency_s"]),
                           False))
            continue
        if bool(row["exclusive"]):
            replicas = int(problem.opt_dedicated[o]) // int(row["devices_per_replica"])
            pool = f"{name} ({device} {row['config']})"
            slots[pool] = max(replicas * int(row["batch"]), 1)
            hold, static = float(row["latency_s"]), 0.0
        else:
            pool = f"{device} shared pool"
            slots[pool] = max(int(plan.pool_counts[dev[i]]), 1)
            hold, static = float(row["busy_s"]), float(row["static_s"] or 0.0)
        ops.append(_Op(name, pool, hold, static, hold + static, name.endswith("prefill")))
    for pool, cap in slots.items():
        pools[pool] = _FcfsPool(cap)
    op_lat = np.array([op.latency_s for op in ops])
    walker = _Walker(problem, cross)
    exp_service = config.service == "exponential"
    cv = config.tool_latency_cv
    sigma = math.sqrt(math.log(1 + cv * cv)) if cv > 0 else 0.0

    stage_rows: list[tuple[int, float, float]] = []  # op, wait, service
    req_rows: list[dict[str, Any]] = []

    def run_op(op_i: int, first_token: list[float]) -> Any:
        op = ops[op_i]
        start = env.now
        service = op.hold_s
        if exp_service and service > 0:
            service = float(rng.exponential(service))
        wait = pools[op.pool].admit(start, service) if op.pool is not None else 0.0
        static = 0.0
        if op.static_s > 0:
            static = op.static_s * (float(rng.lognormal(-sigma * sigma / 2, sigma))
                                    if sigma else 1.0)
        yield env.timeout(wait + service + static)
        stage_rows.append((op_i, wait, service + static))
        if op.is_prefill and math.isnan(first_token[0]):
            first_token[0] = env.now

    def instance(n: int, op_i: int, deps: list[tuple[int, float]], done: list[Any],
                 first_token: list[float]) -> Any:
        if deps:
            yield simpy.AllOf(env, [done[d] for d, _ in deps])
            extra = max(float(done[d].value) + lat for d, lat in deps) - env.now
            if extra > 0:
                yield env.timeout(extra)
        yield from run_op(op_i, first_token)
        done[n].succeed(env.now)

    def request(rid: int, t_arrival: float) -> Any:
        path = walker.sample(rng, op_lat)
        first = [math.nan]
        arrived_at = float(env.now)
        row: dict[str, Any] = {"request": rid, "arrival_s": arrived_at,
                               "predicted_s": path.predicted_s, "loop_passes": path.passes,
                               "status": "in_flight", "done_s": math.nan}
        req_rows.append(row)
        if path.chain:
            for n, op_i in enumerate(path.ops):
                if n and path.deps[n][0][1] > 0:
                    yield env.timeout(path.deps[n][0][1])
                yield from run_op(op_i, first)
        else:
            done = [env.event() for _ in path.ops]
            for n, op_i in enumerate(path.ops):
                env.process(instance(n, op_i, path.deps[n], done, first))
            yield simpy.AllOf(env, done)
        row.update(status="completed", done_s=env.now, e2e_s=env.now - arrived_at,
                   ttft_s=first[0] - arrived_at)

    def source() -> Any:
        for rid, t in enumerate(arrivals):
            yield env.timeout(max(float(t) - env.now, 0.0))
            env.process(request(rid, float(t)))

    env.process(source())
    wall = time.perf_counter()
    if progress:
        progress(f"replaying {len(arrivals):,} requests over {config.duration_s:g} s")
    env.run(until=config.duration_s + config.drain_s)
    wall = time.perf_counter() - wall
    grid = np.arange(0.0, config.duration_s, config.sample_s)
    util_rows = [(float(t), name, float(b)) for name, pool in pools.items()
                 for t, b in zip(grid, pool.busy_fraction(grid), strict=True)]
    return _result(plan, problem, config, ops, slots, req_rows, stage_rows, util_rows,
                   len(arrivals), wall)


def _result(plan: Plan, problem: PlacementProblem, config: ReplayConfig, ops: list[_Op],
            slots: dict[str, int], req_rows: list[dict[str, Any]],
            stage_rows: list[tuple[int, float, float]], util_rows: list[tuple[float, str, float]],
            arrived: int, wall_s: float) -> ReplayResult:
    requests = pd.DataFrame(req_rows, columns=["request", "arrival_s", "done_s", "status",
                                               "e2e_s", "ttft_s", "predicted_s", "loop_passes"])
    requests["gap"] = requests["e2e_s"] / requests["predicted_s"] - 1
    stages_raw = pd.DataFrame(stage_rows, columns=["op", "wait_s", "service_s"])
    stages_raw["operator"] = [ops[i].name for i in stages_raw["op"]]
    stages_raw["pool"] = [ops[i].pool or "-" for i in stages_raw["op"]]
    stages = stages_raw.groupby(["operator", "pool"], sort=False).agg(
        executions=("wait_s", "size"), mean_wait_s=("wait_s", "mean"),
        p99_wait_s=("wait_s", lambda w: float(np.quantile(w, 0.99))),
        mean_service_s=("service_s", "mean")).reset_index()
    util = pd.DataFrame(util_rows, columns=["time_s", "pool", "busy_fraction"])
    in_window = util[(util["time_s"] >= config.warmup_s) & (util["time_s"] < config.duration_s)]
    pools = pd.DataFrame({"pool": list(slots), "slots": list(slots.values())})
    pools["mean_utilisation"] = pools["pool"].map(in_window.groupby("pool")["busy_fraction"]
                                                  .mean())
    pools["mean_wait_s"] = pools["pool"].map(stages_raw.groupby("pool")["wait_s"].mean())
    measured = requests[requests["arrival_s"] >= config.warmup_s]
    done = measured[measured["status"] == "completed"]
    e2e = done["e2e_s"].to_numpy(dtype=float)
    sla = problem.sla.e2e_s
    hours = config.duration_s / 3600
    completed_all = int((requests["status"] == "completed").sum())
    summary: dict[str, Any] = {
        "arrived": arrived,
        "completed": completed_all,
        "in_flight_at_end": int((requests["status"] == "in_flight").sum()),
        "measured_requests": len(measured),
        "e2e_p50_s": float(np.quantile(e2e, 0.5)) if len(e2e) else math.nan,
        "e2e_p90_s": float(np.quantile(e2e, 0.9)) if len(e2e) else math.nan,
        "e2e_p99_s": float(np.quantile(e2e, 0.99)) if len(e2e) else math.nan,
        "ttft_p99_s": float(done["ttft_s"].quantile(0.99)) if len(done) else math.nan,
        "planned_e2e_s": plan.e2e_latency_s,
        "sla_e2e_s": sla,
        "sla_attainment": (float((e2e <= sla + 1e-9).mean()) if sla and len(e2e) else math.nan),
        "gap_p50": float(done["gap"].median()) if len(done) else math.nan,
        "gap_p99": float(done["gap"].quantile(0.99)) if len(done) else math.nan,
        "tco_usd_per_hour": plan.tco_usd_per_hour,
        "usd_per_request": (plan.tco_usd_per_hour * hours / completed_all
                            if completed_all else math.nan),
        "planned_usd_per_request": plan.cost_usd_per_request,
        "wall_s": wall_s,
        "requests_per_wall_s": arrived / wall_s if wall_s > 0 else math.nan,
        "stage_executions": len(stages_raw),
    }
    return ReplayResult(requests, stages, pools, util, summary)
