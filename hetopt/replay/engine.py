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

import gc
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
from hetopt.graph.decompose import OperatorGraph
from hetopt.plan.plan import Plan
from hetopt.problem import PlacementProblem
from hetopt.replay.arrivals import ArrivalSpec, arrival_times
from hetopt.replay.control import (
    DROP_QUEUE,
    ControllerConfig,
    FailureSpec,
    PoolSizing,
    ReplicaPool,
    RouterConfig,
    busy_slots,
    check_failures,
)
from hetopt.replay.metrics import (
    PoolLoad,
    attainment,
    pool_loads,
    sla_flags,
    sla_summary,
    sliding_windows,
)

Progress = Callable[[str], None]
LINK_QUEUE_MIN_S = 1e-4  # shorter transfers (small payloads) do not queue on links


@dataclass(frozen=True)
class ReplayConfig:
    """Replay settings (the Hydra ``replay`` group).

    Attributes
    ----------
    duration_s
        Simulated time during which requests arrive; in-flight requests then drain for up to
        ``drain_s``.
    warmup_s
        Requests arriving before this are simulated but left out of every statistic: latency
        percentiles, SLA attainment and per-stage and per-pool waits count only the requests
        (and their jobs) arriving in ``[warmup_s, duration_s)``; utilisation, devices held and
        pool load are measured over that time window. The request counts and the money held
        cover the whole replay.
    seed
        Seed of every random draw: the same seed gives the same replay.
    service
        ``deterministic`` service times, or ``exponential`` ones with the same means (for
        checking against queueing formulas).
    tool_latency_cv
        Coefficient of variation of static latencies (external APIs), lognormal; 0 = fixed.
    sample_s
        Interval of the utilisation time series.
    link_contention
        Queue transfers of 0.1 ms or more (KV caches) first come, first served on a link pool
        per (sending, receiving) device type, one link per sending device; False lets every
        transfer run at full bandwidth at once.
    router, controller, failures
        Fast-path routing, slow-path re-planning and injected device failures
        (:mod:`hetopt.replay.control`).
    """

    arrivals: ArrivalSpec = field(default_factory=ArrivalSpec)
    duration_s: float = 300.0
    warmup_s: float = 0.0
    drain_s: float = 600.0
    seed: int = 0
    service: str = "deterministic"
    tool_latency_cv: float = 0.0
    sample_s: float = 1.0
    link_contention: bool = True
    router: RouterConfig = field(default_factory=RouterConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    failures: tuple[FailureSpec, ...] = ()

    @property
    def dynamic(self) -> bool:
        """True when routing, admission control, re-planning or failures are in play.

        Otherwise every pool is one first-come-first-served queue over all of its slots, which
        is exactly what a least-loaded router over always-available replicas amounts to, and the
        replay takes that faster path.
        """
        return (
            self.router.policy != "least_loaded"
            or self.router.max_wait_s is not None
            or self.controller.enabled
            or bool(self.failures)
        )

    def __post_init__(self) -> None:
        if not self.duration_s > 0 or self.warmup_s < 0 or self.warmup_s >= self.duration_s:
            raise InputError(
                "replay.duration_s must be > 0 and replay.warmup_s in [0, duration_s)."
            )
        if self.service not in ("deterministic", "exponential"):
            raise InputError("replay.service must be 'deterministic' or 'exponential'.")
        if self.tool_latency_cv < 0 or not self.sample_s > 0 or self.drain_s < 0:
            raise InputError(
                "replay.tool_latency_cv and replay.drain_s must be >= 0, replay.sample_s > 0."
            )


@dataclass(frozen=True)
class ReplayResult:
    """Everything the replay measured, as tidy tables.

    Attributes
    ----------
    requests
        One row per request: arrival, finish, status (``completed``, ``dropped`` with a
        ``drop_reason``, or ``in_flight`` at the end), end-to-end latency, the planner's
        prediction for its path, TTFT (arrival to the end of the first prefill), worst time
        between tokens, tokens, loop passes, the failure that hit it (-1: none), and whether
        it met each SLA bound and all of them (``meets_ttft``, ``meets_tbt``, ``meets_e2e``,
        ``meets_sla``; see :mod:`hetopt.replay.metrics`).
    stages
        Per operator, over the jobs of requests arriving after the warm-up: executions, mean
        and p99 queueing delay, mean service time.
    pools
        Per pool (an LLM phase's replicas, a device type's shared pool, or a link between two
        device types, ``device`` = ``link``): slots, planned and held devices, mean
        utilisation, mean queueing delay, and jobs arriving per second against the jobs per
        second its slots can serve over the measured window (``arrival_rate_per_s``,
        ``capacity_per_s``, ``offered_load``; above 1 the pool is overloaded) and in its
        busiest window of ``controller.window_s`` (``busiest_window_load``, from
        ``busiest_window_from_s``).
    utilisation
        Pool utilisation over time (``time_s``, ``pool``, ``busy_fraction``).
    capacity
        Devices held per pool over time, with the measured arrival rate (``time_s``, ``pool``,
        ``devices_held``, ``rate_per_s``).
    decisions
        The controller's re-plans: time, reason, measured rate, pool, replicas before/after.
    failures
        Per injected failure: devices named and lost, replicas lost, recovery time, requests
        affected and SLA attainment (every bound) before, during and after.
    summary
        Counts (``arrived = completed + dropped + in_flight_at_end``), drops by reason, latency
        percentiles, the SLA bounds with attainment per bound and overall
        (:func:`hetopt.replay.metrics.sla_summary`), the overloaded pools, $/request and
        $/Mtok of the capacity actually held against the static plan and a static plan sized
        for the peak (``peak_static_usd``), events and wall time.
    """

    requests: pd.DataFrame
    stages: pd.DataFrame
    pools: pd.DataFrame
    utilisation: pd.DataFrame
    capacity: pd.DataFrame
    decisions: pd.DataFrame
    failures: pd.DataFrame
    summary: dict[str, Any]


@dataclass
class _Op:
    name: str
    pool: str | None
    pool_id: int  # -1: no pool (profiled cost)
    hold_s: float
    static_s: float
    latency_s: float  # planner's latency for one execution (hold + static)
    is_prefill: bool
    step_s: float  # decode: time per generated token at the planned batch; else 0
    tokens: float  # prompt tokens of a prefill, generated tokens of a decode


class _State:
    """What one request carries through the replay."""

    __slots__ = ("arrived", "first_token", "tbt_s", "drop", "failure", "affinity")

    def __init__(self, arrived: float) -> None:
        self.arrived = arrived
        self.first_token = math.nan
        self.tbt_s = 0.0
        self.drop = ""
        self.failure = -1
        self.affinity: dict[int, int] | None = None  # kv_aware: prefill pool -> replica


@dataclass
class _PoolSpec:
    name: str
    device: int
    slots_per_replica: int
    devices_per_replica: int
    replicas: int
    per_rate: float  # the planner's sizing rule, see PoolSizing
    minimum: int


@dataclass(frozen=True)
class _Path:
    """One request's unrolled path."""

    ops: list[int]
    deps: list[list[tuple[int, float, int]]]  # (instance, transfer s, link or -1)
    predicted_s: float
    passes: int
    chain: bool
    tokens: float


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


def _draw(rng: np.random.Generator, kind: tuple[Any, ...]) -> int:
    if kind[0] == "binomial":
        return int(rng.binomial(kind[1], kind[2]))
    return int(rng.choice(len(kind[1]), p=np.asarray(kind[1])))


class _Walker:
    """Samples a request's path and unrolls it into operator instances with dependencies."""

    def __init__(
        self,
        problem: PlacementProblem,
        cross: np.ndarray,
        op_lat: np.ndarray,
        op_tokens: np.ndarray,
        edge_link: np.ndarray,
    ) -> None:
        self.p = problem
        self.cross = cross
        self.op_lat = op_lat
        self.edge_link = edge_link
        self.op_tokens = op_tokens
        fwd = problem.forward_edges
        self.out: dict[int, list[int]] = {}
        for e in fwd:
            self.out.setdefault(int(problem.edge_src[e]), []).append(int(e))
        self.prob = (
            problem.edge_probability
            if problem.edge_probability is not None
            else np.ones(len(problem.edge_src))
        )
        g = nx.DiGraph()
        g.add_nodes_from(range(problem.n_ops))
        g.add_edges_from((int(problem.edge_src[e]), int(problem.edge_dst[e])) for e in fwd)
        self.sources = [v for v in g.nodes if g.in_degree(v) == 0]
        sinks = set(problem.sinks)
        self.loops = problem.loops
        self.in_loop = [
            frozenset(k for k, lp in enumerate(problem.loops) if i in lp.body_ops)
            for i in range(problem.n_ops)
        ]
        # An operator is loop-only for loop k when it cannot reach the end of the request
        # without loop k's own back edge (other loops' back edges may be taken): it runs only
        # on the passes that go round k again.
        only: list[set[int]] = [set() for _ in range(problem.n_ops)]
        for k, lp in enumerate(problem.loops):
            gk = g.copy()
            gk.add_edges_from(
                (int(problem.edge_src[o.back_edge]), int(problem.edge_dst[o.back_edge]))
                for j, o in enumerate(problem.loops)
                if j != k
            )
            for i in lp.body_ops:
                if i not in sinks and not nx.descendants(gk, i) & sinks:
                    only[i].add(k)
        self.loop_only = [frozenset(x) for x in only]
        self.back_of = {
            int(problem.edge_src[lp.back_edge]): k for k, lp in enumerate(problem.loops)
        }
        self._trie: dict[str, Any] = {}

    def _iterations(self, k: int, decide: Callable[[tuple[Any, ...]], int]) -> int:
        lp = self.loops[k]
        if lp.max_iterations <= 0 or lp.expected_iterations <= 0:
            return 0
        return decide(
            ("binomial", lp.max_iterations, min(1.0, lp.expected_iterations / lp.max_iterations))
        )

    def sample(self, rng: np.random.Generator) -> _Path:
        """A request's unrolled path, drawn with ``rng``.

        Paths are determined by a short sequence of discrete decisions (loop passes, branch
        choices), so they are cached in a trie of decisions: a request whose decisions were
        seen before reuses that path instead of walking the graph again.
        """
        node = self._trie
        drawn: list[int] = []
        while "path" not in node:
            if "kind" not in node:  # unexplored: walk the graph with these decisions first
                return self._walk(rng, drawn)
            value = _draw(rng, node["kind"])
            drawn.append(value)
            node = node["children"].setdefault(value, {})
        return node["path"]

    def _walk(self, rng: np.random.Generator, prefix: list[int]) -> _Path:
        decisions: list[tuple[tuple[Any, ...], int]] = []
        queue = list(prefix)

        def decide(kind: tuple[Any, ...]) -> int:
            value = queue.pop(0) if queue else _draw(rng, kind)
            decisions.append((kind, value))
            return value

        path = self.unroll(decide)
        node = self._trie
        for kind, value in decisions:
            node["kind"] = kind
            node = node.setdefault("children", {}).setdefault(value, {})
        node["path"] = path
        return path

    def unroll(self, decide: Callable[[tuple[Any, ...]], int]) -> _Path:
        """Instances (op per instance), their dependencies (dep, transfer s), the planner's
        latency for this path and the number of loop passes taken."""
        inst_op: list[int] = []
        deps: list[list[tuple[int, float, int]]] = []
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

            def remaining(
                k: int, ctx: tuple[tuple[int, int], ...] = ctx, cdict: dict[int, int] = cdict
            ) -> bool:
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
                deps[dep].append(
                    (me, float(self.p.edge_latency_s[e] * self.cross[e]), int(self.edge_link[e]))
                )
                queue.append((v, vctx))
            k = self.back_of.get(u)
            if k is not None and remaining(k):
                lp = self.loops[k]
                v = int(self.p.edge_dst[lp.back_edge])
                vctx = tuple((j, i + 1 if j == k else i) for j, i in ctx if j in self.in_loop[v])
                passes += 1
                dep = get(v, vctx)
                deps[dep].append(
                    (
                        me,
                        float(self.p.edge_latency_s[lp.back_edge] * self.cross[lp.back_edge]),
                        int(self.edge_link[lp.back_edge]),
                    )
                )
                queue.append((v, vctx))
        finish = [0.0] * len(inst_op)
        for n in range(len(inst_op)):  # instances are created in a topological order
            ready = max((finish[d] + lat for d, lat, _ in deps[n]), default=0.0)
            finish[n] = ready + float(self.op_lat[inst_op[n]])
        # A chain (each instance waits for the one before it only) runs in one process.
        chain = all(
            len(deps[n]) == (1 if n else 0) and (n == 0 or deps[n][0][0] == n - 1)
            for n in range(len(inst_op))
        )
        return _Path(
            inst_op, deps, max(finish), passes, chain, float(self.op_tokens[inst_op].sum())
        )


def _op_tokens(graph: OperatorGraph | None, name: str) -> float:
    if graph is None:
        return 0.0
    op = graph.op(name)
    if op.llm is None:
        return 0.0
    return float(op.llm.input_tokens if op.kind.value == "prefill" else op.llm.output_tokens)


def _build_ops(
    plan: Plan, problem: PlacementProblem, table: pd.DataFrame, graph: OperatorGraph | None
) -> tuple[list[_Op], list[_PoolSpec]]:
    """One :class:`_Op` per operator and one :class:`_PoolSpec` per pool the plan holds."""
    choice = np.asarray(plan.choice, dtype=int)
    dev = problem.opt_device[choice]
    specs: dict[str, _PoolSpec] = {}
    ops: list[_Op] = []
    for i, o in enumerate(choice):
        row = table.loc[problem.opt_row[o]]
        name = problem.ops[i]
        device = problem.devices[dev[i]]
        tokens = _op_tokens(graph, name)
        if row["config"] == "profiled":
            lat = float(row["latency_s"])
            ops.append(_Op(name, None, -1, 0.0, lat, lat, False, 0.0, tokens))
            continue
        visits = float(problem.op_visits[i])
        if bool(row["exclusive"]):
            dpr = int(row["devices_per_replica"])
            pool = f"{name} ({device} {row['config']})"
            specs[pool] = _PoolSpec(
                pool,
                int(dev[i]),
                int(row["batch"]),
                dpr,
                max(int(problem.opt_dedicated[o]) // dpr, 1),
                visits / float(row["requests_per_s"]),
                1,
            )
            hold, static = float(row["latency_s"]), 0.0
        else:
            pool = f"{device} shared pool"
            spec = specs.setdefault(
                pool,
                _PoolSpec(pool, int(dev[i]), 1, 1, max(int(plan.pool_counts[dev[i]]), 1), 0.0, 1),
            )
            spec.per_rate += visits * float(row["busy_s"])
            hold, static = float(row["busy_s"]), float(row["static_s"] or 0.0)
        step = float(row["step_s"]) if name.endswith("decode") and pd.notna(row["step_s"]) else 0.0
        ops.append(
            _Op(
                name,
                pool,
                list(specs).index(pool),
                hold,
                static,
                hold + static,
                name.endswith("prefill"),
                step,
                tokens,
            )
        )
    return ops, list(specs.values())


def pool_sizing(
    plan: Plan, problem: PlacementProblem, table: pd.DataFrame
) -> dict[str, tuple[int, PoolSizing]]:
    """Each pool of ``plan`` with its replicas and the planner's sizing rule for it.

    At the plan's own rate and utilisation cap the rule gives back the plan's counts; the
    controller applies it at the rate it measures.
    """
    _, specs = _build_ops(plan, problem, table, None)
    return {s.name: (s.replicas, PoolSizing(s.per_rate, s.minimum)) for s in specs}


def replay(
    plan: Plan,
    problem: PlacementProblem,
    table: pd.DataFrame,
    config: ReplayConfig,
    progress: Progress | None = None,
    graph: OperatorGraph | None = None,
) -> ReplayResult:
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
        Arrivals, horizon, seed, service-time model, router, controller and failures.
    progress
        Optional callback receiving short status lines.
    graph
        The decomposed graph, for token counts ($/Mtok); None leaves $/Mtok out.

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
    ops, specs = _build_ops(plan, problem, table, graph)
    dynamic = config.dynamic
    router, ctl = config.router, config.controller
    devices_held: dict[str, int] = {}
    for s in specs:
        name = problem.devices[s.device]
        devices_held[name] = devices_held.get(name, 0) + s.replicas * s.devices_per_replica
    check_failures(config.failures, devices_held, replaced=ctl.enabled)
    # The static path queues on one FCFS pool per pool; the routed path on replicas.
    fast = [] if dynamic else [_FcfsPool(s.replicas * s.slots_per_replica) for s in specs]
    rpools = (
        [
            ReplicaPool(
                s.name,
                problem.devices[s.device],
                s.slots_per_replica,
                s.devices_per_replica,
                s.replicas,
                PoolSizing(s.per_rate, s.minimum),
                router.policy,
                rng,
                bool(config.failures),
            )
            for s in specs
        ]
        if dynamic
        else []
    )
    # Transfers long enough to matter queue on a link pool per (sending, receiving) device
    # type, with one link per sending device.
    sending = np.zeros(len(problem.devices))
    for s in specs:
        sending[s.device] += s.replicas * s.devices_per_replica
    edge_link = np.full(len(problem.edge_src), -1)
    link_keys: dict[tuple[int, int], int] = {}
    for e in range(len(problem.edge_src)):
        if config.link_contention and problem.edge_latency_s[e] * cross[e] >= LINK_QUEUE_MIN_S:
            key = (int(dev[problem.edge_src[e]]), int(dev[problem.edge_dst[e]]))
            edge_link[e] = link_keys.setdefault(key, len(link_keys))
    links = [_FcfsPool(max(int(sending[a]), 1)) for a, _ in link_keys]
    link_names = [f"link {problem.devices[a]} -> {problem.devices[b]}" for a, b in link_keys]
    link_waits: list[tuple[int, float, float]] = []  # link, wait, request arrival
    walker = _Walker(
        problem,
        cross,
        np.array([op.latency_s for op in ops]),
        np.array([op.tokens for op in ops]),
        edge_link,
    )
    exp_service = config.service == "exponential"
    cv = config.tool_latency_cv
    sigma = math.sqrt(math.log(1 + cv * cv)) if cv > 0 else 0.0
    kv_aware = router.policy == "kv_aware"
    reuse = router.prefix_reuse_fraction

    stage_rows: list[tuple[int, float, float, float]] = []  # op, wait, service, arrival
    req_rows: list[dict[str, Any]] = []

    def service_of(op: _Op) -> tuple[float, float]:
        service = op.hold_s
        if exp_service and service > 0:
            service = float(rng.exponential(service))
        static = 0.0
        if op.static_s > 0:
            static = op.static_s * (
                float(rng.lognormal(-sigma * sigma / 2, sigma)) if sigma else 1.0
            )
        return service, static

    def finish_op(op: _Op, st: _State, service: float) -> None:
        if op.is_prefill and st.first_token != st.first_token:  # NaN: first prefill
            st.first_token = env.now
        if op.step_s:
            tbt = op.step_s * service / op.hold_s
            if tbt > st.tbt_s:
                st.tbt_s = tbt

    def run_op(op_i: int, st: _State) -> Any:
        """One operator on the static plan: one FCFS queue per pool."""
        op = ops[op_i]
        service, static = service_of(op)
        wait = fast[op.pool_id].admit(env.now, service) if op.pool_id >= 0 else 0.0
        yield env.timeout(wait + service + static)
        stage_rows.append((op_i, wait, service + static, st.arrived))
        finish_op(op, st, service)

    def run_op_routed(op_i: int, st: _State) -> Any:
        """One operator through the router, with admission control and failure retries."""
        op = ops[op_i]
        if st.drop:
            return
        service, static = service_of(op)
        t0 = env.now
        if op.pool_id < 0:
            yield env.timeout(service)
        tries = 0
        while op.pool_id >= 0:
            pool = rpools[op.pool_id]
            prefer = None
            if kv_aware and op.is_prefill:
                if st.affinity is None:
                    st.affinity = {}
                prefer = st.affinity.get(op.pool_id)
            r, wait, held = pool.admit(
                env.now,
                service,
                prefer,
                reuse * service if prefer is not None else 0.0,
                router.max_wait_s,
                env.active_process,
            )
            if r < 0:
                st.drop = "queue_timeout" if r == DROP_QUEUE else "no_capacity"
                if r != DROP_QUEUE and pool.last_failure >= 0:
                    st.failure = pool.last_failure  # the pool is empty because of it
                return
            if st.affinity is not None:
                st.affinity[op.pool_id] = r
            try:
                yield env.timeout(wait + held)
            except simpy.Interrupt as stop:  # the replica failed under this job: retry
                st.failure = stop.cause if isinstance(stop.cause, int) else 0
                tries += 1
                if tries > router.max_retries:
                    st.drop = "device_failure"
                    return
                continue
            service = held
            break
        if static > 0:
            yield env.timeout(static)
        stage_rows.append(
            (op_i, max(env.now - t0 - service - static, 0.0), service + static, st.arrived)
        )
        finish_op(op, st, service)

    run = run_op_routed if dynamic else run_op

    def link_wait(link: int, transfer_s: float, arrived: float) -> float:
        """Queue a transfer starting now on ``link`` for a request that arrived at
        ``arrived``; return its wait."""
        wait = links[link].admit(env.now, transfer_s)
        link_waits.append((link, wait, arrived))
        return wait

    def transfer(after: Any, transfer_s: float, link: int, arrived: float) -> Any:
        """A transfer over a contended link, starting when its source finishes."""
        yield after
        yield env.timeout(link_wait(link, transfer_s, arrived) + transfer_s)

    def instance(
        n: int, op_i: int, deps: list[tuple[int, float, int]], done: list[Any], st: _State
    ) -> Any:
        if deps:
            queued = [
                env.process(transfer(done[d], lat, link, st.arrived))
                for d, lat, link in deps
                if link >= 0
            ]
            yield simpy.AllOf(env, [done[d] for d, _, _ in deps] + queued)
            extra = (
                max((float(done[d].value) + lat for d, lat, link in deps if link < 0), default=0.0)
                - env.now
            )
            if extra > 0 and not st.drop:
                yield env.timeout(extra)
        yield from run(op_i, st)
        done[n].succeed(env.now)

    def request(rid: int) -> Any:
        path = walker.sample(rng)
        arrived_at = float(env.now)
        st = _State(arrived_at)
        row: dict[str, Any] = {
            "request": rid,
            "arrival_s": arrived_at,
            "predicted_s": path.predicted_s,
            "loop_passes": path.passes,
            "tokens": path.tokens,
            "status": "in_flight",
            "done_s": math.nan,
            "drop_reason": "",
            "failure": -1,
        }
        req_rows.append(row)
        if path.chain:
            for n, op_i in enumerate(path.ops):
                if n and path.deps[n][0][1] > 0:
                    _, lat, link = path.deps[n][0]
                    yield env.timeout(
                        lat + (link_wait(link, lat, arrived_at) if link >= 0 else 0.0)
                    )
                yield from run(op_i, st)
                if st.drop:
                    break
        else:
            done = [env.event() for _ in path.ops]
            for n, op_i in enumerate(path.ops):
                env.process(instance(n, op_i, path.deps[n], done, st))
            yield simpy.AllOf(env, done)
        row["failure"] = st.failure
        if st.drop:
            row.update(status="dropped", done_s=env.now, drop_reason=st.drop)
        else:
            row.update(
                status="completed",
                done_s=env.now,
                e2e_s=env.now - arrived_at,
                ttft_s=st.first_token - arrived_at,
                tbt_s=st.tbt_s,
            )

    def source() -> Any:
        for rid, t in enumerate(arrivals):
            yield env.timeout(max(float(t) - env.now, 0.0))
            env.process(request(rid))

    decisions: list[dict[str, Any]] = []
    failure_rows: list[dict[str, Any]] = []
    utilization = ctl.target_utilization or 0.8

    def activate_later(pool: ReplicaPool, r: int) -> Any:
        yield env.timeout(ctl.provision_s)
        pool.activate(r)

    needed: list[list[tuple[float, int]]] = [[] for _ in rpools]

    def replan(reason: str) -> None:
        now = env.now
        window = min(ctl.window_s, now)
        seen = np.searchsorted(arrivals, now, side="right") - np.searchsorted(
            arrivals, now - window, side="right"
        )
        rate = seen / window if window > 0 else float(config.arrivals.rate_per_s)
        for p, pool in enumerate(rpools):
            live = len(pool.live())
            need = pool.sizing.replicas(rate * (1 + ctl.margin), utilization)
            history = [(t, n) for t, n in needed[p] if t > now - ctl.scale_down_cooldown_s]
            needed[p] = [*history, (now, need)]
            target = max(n for _, n in needed[p])  # shrink only after the cooldown
            if target > live:
                for _ in range(target - live):
                    r = pool.add(now, now + ctl.provision_s)
                    if ctl.provision_s > 0:
                        env.process(activate_later(pool, r))
            elif target < live:
                pool.drain(live - target, now)
            decisions.append(
                {
                    "time_s": now,
                    "reason": reason,
                    "rate_per_s": rate,
                    "pool": pool.name,
                    "replicas_before": live,
                    "replicas_needed": need,
                    "replicas_after": target,
                }
            )

    def controller() -> Any:
        while True:
            yield env.timeout(ctl.interval_s)
            if env.now >= config.duration_s:
                return
            replan("periodic")

    def failure(k: int, spec: FailureSpec) -> Any:
        yield env.timeout(spec.at_s)
        now = env.now
        devices = [
            (p, r)
            for p, pool in enumerate(rpools)
            if pool.device == spec.device
            for r in pool.live()
            for _ in range(pool.devices_per_replica)
        ]
        picked = rng.choice(len(devices), size=min(spec.count, len(devices)), replace=False)
        hit = sorted({devices[int(x)] for x in picked})
        victims: dict[int, Any] = {}
        for p, r in hit:
            for proc in rpools[p].fail(r, now, k):
                victims[id(proc)] = proc
        for proc in victims.values():
            if proc.is_alive:
                proc.interrupt(k)
        # Fewer devices than the drill names can be live when it fires (the controller shrank
        # the pools, or an earlier failure took some): the row keeps both counts.
        row = {
            "failure": k,
            "device": spec.device,
            "at_s": now,
            "devices_requested": spec.count,
            "devices_failed": len(picked),
            "replicas_lost": len(hit),
            "pools_hit": "; ".join(sorted({rpools[p].name for p, _ in hit})),
            "jobs_interrupted": len(victims),
            "recovered_at_s": math.nan,
        }
        failure_rows.append(row)
        if ctl.enabled:
            yield env.timeout(ctl.detect_s)
            replan(f"failure {k} detected")
            row["recovered_at_s"] = env.now + ctl.provision_s

    def report_progress() -> Any:
        step = max(config.duration_s / 20, config.sample_s)
        while env.now < config.duration_s:
            yield env.timeout(step)
            assert progress is not None
            progress(
                f"replayed {min(env.now, config.duration_s):,.0f} of "
                f"{config.duration_s:,.0f} simulated s, {len(req_rows):,} of "
                f"{len(arrivals):,} requests"
            )

    env.process(source())
    if progress is not None:
        env.process(report_progress())
    if dynamic and ctl.enabled:
        env.process(controller())
    for k, spec in enumerate(config.failures):
        env.process(failure(k, spec))
    wall = time.perf_counter()
    if progress:
        progress(f"replaying {len(arrivals):,} requests over {config.duration_s:g} s")
    # Hundreds of thousands of live request rows make Python's cyclic collector rescan the
    # heap over and over; collect young objects only while the simulation runs.
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 1_000_000, 1_000_000)
    try:
        env.run(until=config.duration_s + config.drain_s)
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
    wall = time.perf_counter() - wall

    grid = np.arange(0.0, config.duration_s, config.sample_s)
    rate_series = (
        np.diff(np.searchsorted(arrivals, np.append(grid, config.duration_s))) / config.sample_s
    )
    util_rows, cap_rows = [], []
    held_s = np.zeros(len(problem.devices))
    for k, s in enumerate(specs):
        if dynamic:
            busy, held = rpools[k].busy_fraction(grid), rpools[k].devices_held(grid)
            held_s[s.device] += rpools[k].device_seconds(config.duration_s)
        else:
            planned = s.replicas * s.devices_per_replica
            busy, held = fast[k].busy_fraction(grid), np.full(len(grid), float(planned))
            held_s[s.device] += planned * config.duration_s
        util_rows += [(float(t), s.name, float(b)) for t, b in zip(grid, busy, strict=True)]
        cap_rows += [
            (float(t), s.name, float(h), float(r))
            for t, h, r in zip(grid, held, rate_series, strict=True)
        ]
    lo, hi = config.warmup_s, config.duration_s
    measured_waits = pd.DataFrame(link_waits, columns=["link", "wait_s", "arrival_s"])
    measured_waits = measured_waits[measured_waits["arrival_s"] >= lo]
    waits = measured_waits.groupby("link")["wait_s"]
    mean_wait, transfers = waits.mean(), waits.size()
    link_stats = [
        (name, lp.capacity, float(mean_wait.get(k, math.nan)), int(transfers.get(k, 0)))
        for k, (name, lp) in enumerate(zip(link_names, links, strict=True))
    ]
    for name, lp in zip(link_names, links, strict=True):
        util_rows += [
            (float(t), name, float(b)) for t, b in zip(grid, lp.busy_fraction(grid), strict=True)
        ]
    # jobs arriving at each pool against what its slots serve, whole window and busiest window
    loads: list[tuple[str, tuple[PoolLoad, PoolLoad]]] = []
    for k, s in enumerate(specs):
        if dynamic:
            loads.append(
                (
                    s.name,
                    pool_loads(
                        rpools[k].arrived,
                        rpools[k].demand,
                        grid,
                        rpools[k].capacity_slots(grid),
                        lo,
                        hi,
                        ctl.window_s,
                    ),
                )
            )
        else:
            loads.append(
                (
                    s.name,
                    pool_loads(
                        fast[k].arrived,
                        np.subtract(fast[k].ends, fast[k].starts),
                        grid,
                        np.full(len(grid), fast[k].capacity),
                        lo,
                        hi,
                        ctl.window_s,
                    ),
                )
            )
    loads += [
        (
            name,
            pool_loads(
                lp.arrived,
                np.subtract(lp.ends, lp.starts),
                grid,
                np.full(len(grid), lp.capacity),
                lo,
                hi,
                ctl.window_s,
            ),
        )
        for name, lp in zip(link_names, links, strict=True)
    ]
    planned_device_usd_h = sum(
        s.replicas * s.devices_per_replica * problem.device_cost_usd_per_h[s.device] for s in specs
    )
    other_usd_h = max(plan.tco_usd_per_hour - planned_device_usd_h, 0.0)
    held_usd = (
        float(problem.device_cost_usd_per_h @ held_s) / 3600
        + other_usd_h * config.duration_s / 3600
    )
    # What a static plan would hold to cover the busiest window (the alternative to a
    # controller): every pool sized by the planner's rule at the peak windowed arrival rate,
    # with the controller's margin. Windows are full and inside the replay, so a replay
    # shorter than window_s takes its whole length as the window.
    edges, win = sliding_windows(0.0, config.duration_s, ctl.window_s)
    counts = np.searchsorted(arrivals, edges + win) - np.searchsorted(arrivals, edges)
    peak_rate = float(counts.max() / win) if len(arrivals) else 0.0
    peak_usd_h = other_usd_h + sum(
        PoolSizing(s.per_rate, s.minimum).replicas(peak_rate * (1 + ctl.margin), utilization)
        * s.devices_per_replica
        * problem.device_cost_usd_per_h[s.device]
        for s in specs
    )
    extra = {
        "capacity_usd": held_usd,
        "peak_rate_per_s": peak_rate,
        "peak_static_usd": peak_usd_h * config.duration_s / 3600,
        "peak_sizing_margin": ctl.margin,
        "device_hours_held": float(held_s.sum() / 3600),
        "prefix_hits": sum(p.prefix_hits for p in rpools) if dynamic else 0,
        "router": router.policy if dynamic else "least_loaded (one FCFS queue per pool)",
        "controller": ctl.enabled and dynamic,
    }
    return _result(
        plan,
        problem,
        config,
        ops,
        specs,
        req_rows,
        stage_rows,
        util_rows,
        cap_rows,
        decisions,
        failure_rows,
        len(arrivals),
        wall,
        extra,
        link_stats,
        loads,
    )


def _quantile(values: pd.Series, q: float) -> float:
    values = values.dropna()
    return float(values.quantile(q)) if len(values) else math.nan


def _result(
    plan: Plan,
    problem: PlacementProblem,
    config: ReplayConfig,
    ops: list[_Op],
    specs: list[_PoolSpec],
    req_rows: list[dict[str, Any]],
    stage_rows: list[tuple[int, float, float, float]],
    util_rows: list[tuple[float, str, float]],
    cap_rows: list[tuple[float, str, float, float]],
    decisions: list[dict[str, Any]],
    failure_rows: list[dict[str, Any]],
    arrived: int,
    wall_s: float,
    extra: dict[str, Any],
    link_stats: list[tuple[str, int, float, int]],
    loads: list[tuple[str, tuple[PoolLoad, PoolLoad]]],
) -> ReplayResult:
    """Tables and summary; every statistic counts only what arrived after the warm-up."""
    lo, hi = config.warmup_s, config.duration_s
    requests = pd.DataFrame(
        req_rows,
        columns=[
            "request",
            "arrival_s",
            "done_s",
            "status",
            "drop_reason",
            "failure",
            "e2e_s",
            "ttft_s",
            "tbt_s",
            "predicted_s",
            "loop_passes",
            "tokens",
        ],
    )
    requests["gap"] = requests["e2e_s"] / requests["predicted_s"] - 1
    requests = pd.concat([requests, sla_flags(requests, problem.sla)], axis=1)
    stages_raw = pd.DataFrame(stage_rows, columns=["op", "wait_s", "service_s", "arrival_s"])
    stages_raw = stages_raw[stages_raw["arrival_s"] >= lo]
    stages_raw["operator"] = [ops[i].name for i in stages_raw["op"]]
    stages_raw["pool"] = [ops[i].pool or "-" for i in stages_raw["op"]]
    stages = (
        stages_raw.groupby(["operator", "pool"], sort=False)
        .agg(
            executions=("wait_s", "size"),
            mean_wait_s=("wait_s", "mean"),
            p50_wait_s=("wait_s", lambda w: float(np.quantile(w, 0.5))),
            p90_wait_s=("wait_s", lambda w: float(np.quantile(w, 0.9))),
            p99_wait_s=("wait_s", lambda w: float(np.quantile(w, 0.99))),
            mean_service_s=("service_s", "mean"),
        )
        .reset_index()
    )
    util = pd.DataFrame(util_rows, columns=["time_s", "pool", "busy_fraction"])
    capacity = pd.DataFrame(cap_rows, columns=["time_s", "pool", "devices_held", "rate_per_s"])
    in_window = util[(util["time_s"] >= lo) & (util["time_s"] < hi)]
    pools = pd.DataFrame(
        {
            "pool": [s.name for s in specs],
            "device": [problem.devices[s.device] for s in specs],
            "slots": [s.replicas * s.slots_per_replica for s in specs],
            "planned_devices": [s.replicas * s.devices_per_replica for s in specs],
        }
    )
    links = pd.DataFrame(link_stats, columns=["pool", "slots", "mean_wait_s", "transfers"])
    pools["mean_devices_held"] = pools["pool"].map(
        capacity[capacity["time_s"] >= lo].groupby("pool")["devices_held"].mean()
    )
    pools["mean_utilisation"] = pools["pool"].map(in_window.groupby("pool")["busy_fraction"].mean())
    pools["mean_wait_s"] = pools["pool"].map(stages_raw.groupby("pool")["wait_s"].mean())
    if len(links):
        links["device"] = "link"
        links["mean_utilisation"] = links["pool"].map(
            in_window.groupby("pool")["busy_fraction"].mean()
        )
        pools = pd.concat([pools, links.drop(columns="transfers")], ignore_index=True)
    load = dict(loads)
    pools["arrival_rate_per_s"] = [load[p][0].arrival_rate_per_s for p in pools["pool"]]
    pools["capacity_per_s"] = [load[p][0].capacity_per_s for p in pools["pool"]]
    pools["offered_load"] = [load[p][0].offered_load for p in pools["pool"]]
    pools["busiest_window_load"] = [load[p][1].offered_load for p in pools["pool"]]
    pools["busiest_window_from_s"] = [load[p][1].from_s for p in pools["pool"]]
    overloaded = [(name, max(pair, key=lambda pl: pl.offered_load)) for name, pair in loads]
    measured = requests[requests["arrival_s"] >= lo]
    done = measured[measured["status"] == "completed"]
    e2e = done["e2e_s"].to_numpy(dtype=float)
    hours = config.duration_s / 3600
    status = requests["status"].value_counts()
    completed_all = int(status.get("completed", 0))
    tokens_done = float(requests.loc[requests["status"] == "completed", "tokens"].sum())
    held_usd = extra["capacity_usd"]
    failures = pd.DataFrame(
        failure_rows,
        columns=[
            "failure",
            "device",
            "at_s",
            "devices_requested",
            "devices_failed",
            "replicas_lost",
            "pools_hit",
            "jobs_interrupted",
            "recovered_at_s",
        ],
    )
    if len(failures):
        hit = requests.groupby("failure")["status"].agg(
            affected="size", affected_dropped=lambda s: int((s == "dropped").sum())
        )
        failures = failures.join(hit, on="failure")
        failures[["affected", "affected_dropped"]] = (
            failures[["affected", "affected_dropped"]].fillna(0).astype(int)
        )
        ends = failures["recovered_at_s"].fillna(hi).clip(upper=hi)
        failures["attainment_before"] = [attainment(requests, lo, t) for t in failures["at_s"]]
        failures["attainment_during"] = [
            attainment(requests, max(a, lo), b) for a, b in zip(failures["at_s"], ends, strict=True)
        ]
        failures["attainment_after"] = [attainment(requests, max(b, lo), hi) for b in ends]
    drops = requests.loc[requests["status"] == "dropped", "drop_reason"].value_counts()
    summary: dict[str, Any] = {
        "arrived": arrived,
        "completed": completed_all,
        "dropped": int(status.get("dropped", 0)),
        "in_flight_at_end": int(status.get("in_flight", 0)),
        "dropped_by_reason": {str(k): int(v) for k, v in drops.items()},
        "affected_by_failures": int((requests["failure"] >= 0).sum()),
        "warmup_s": lo,
        "measured_requests": len(measured),
        "e2e_p50_s": float(np.quantile(e2e, 0.5)) if len(e2e) else math.nan,
        "e2e_p90_s": float(np.quantile(e2e, 0.9)) if len(e2e) else math.nan,
        "e2e_p99_s": float(np.quantile(e2e, 0.99)) if len(e2e) else math.nan,
        "ttft_p99_s": _quantile(done["ttft_s"], 0.99),
        "tbt_p99_s": _quantile(done["tbt_s"].where(done["tbt_s"] > 0), 0.99),
        "planned_e2e_s": plan.e2e_latency_s,
        **sla_summary(requests, problem.sla, lo, hi),
        "gap_p50": float(done["gap"].median()) if len(done) else math.nan,
        "gap_p99": float(done["gap"].quantile(0.99)) if len(done) else math.nan,
        "overloaded_pools": [
            {
                "pool": name,
                "from_s": pl.from_s,
                "to_s": pl.to_s,
                "arrival_rate_per_s": pl.arrival_rate_per_s,
                "capacity_per_s": pl.capacity_per_s,
                "offered_load": pl.offered_load,
            }
            for name, pl in overloaded
            if pl.overloaded
        ],
        "tco_usd_per_hour": plan.tco_usd_per_hour,
        "static_plan_usd": plan.tco_usd_per_hour * hours,
        "usd_per_request": held_usd / completed_all if completed_all else math.nan,
        "usd_per_mtok": held_usd / tokens_done * 1e6 if tokens_done else math.nan,
        "planned_usd_per_request": plan.cost_usd_per_request,
        "planned_usd_per_mtok": plan.cost_usd_per_million_tokens,
        **extra,
        "replans": len({d["time_s"] for d in decisions}),
        "wall_s": wall_s,
        "requests_per_wall_s": arrived / wall_s if wall_s > 0 else math.nan,
        "stage_executions": len(stages_raw),
    }
    return ReplayResult(
        requests,
        stages,
        pools,
        util,
        capacity,
        pd.DataFrame(
            decisions,
            columns=[
                "time_s",
                "reason",
                "rate_per_s",
                "pool",
                "replicas_before",
                "replicas_needed",
                "replicas_after",
            ],
        ),
        failures,
        summary,
    )
