"""The SimPy simulation of a plan: requests, operators, transfers, controller and failures.

:class:`Simulation` holds the pools and the records; its generator methods are the SimPy
processes:

* :meth:`Simulation.source` starts one :meth:`Simulation.request` per arrival;
* a request samples its path (:mod:`hetopt.replay.paths`) and runs its instances in order when
  they form a chain, or one :meth:`Simulation.instance` process each, which waits for the
  instances it depends on and their transfers (AND-join);
* an operator runs on the static plan's first-come-first-served pools
  (:meth:`Simulation.run_static`), or through the router with admission control and failure
  retries (:meth:`Simulation.run_routed`);
* :meth:`Simulation.controller` re-plans pool sizes every ``interval_s``, and each
  :meth:`Simulation.failure` takes devices out of service at its time.

The simulation only writes down what happened (:class:`Records`); :mod:`hetopt.replay.accounting`
turns that into tables.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from hetopt.replay.config import ReplayConfig
from hetopt.replay.control import DROP_QUEUE, FailureSpec, ReplicaPool
from hetopt.replay.paths import Dep, Sampler
from hetopt.replay.pools import FcfsPool, OpSpec, PoolSpec

Progress = Callable[[str], None]
Process = Generator[simpy.Event, Any, None]  # a SimPy process: a generator of events


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
class Records:
    """What the simulation wrote down, row by row.

    Attributes
    ----------
    requests
        One dict per request, in order of arrival (updated when it ends).
    stages
        ``(operator, wait s, service s, request arrival s)`` per operator execution.
    link_waits
        ``(link, wait s, request arrival s)`` per queued transfer.
    decisions
        The controller's re-plans, one dict per pool per re-plan.
    failures
        One dict per injected failure.
    wall_s
        Wall-clock time the simulation took.
    """

    requests: list[dict[str, Any]] = field(default_factory=list)
    stages: list[tuple[int, float, float, float]] = field(default_factory=list)
    link_waits: list[tuple[int, float, float]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = math.nan


class Simulation:
    """One replay of a plan on SimPy (see the module docstring).

    Parameters
    ----------
    config
        Replay settings.
    devices
        Device-type names of the problem.
    ops, pools
        How each operator runs and the pools the plan holds (:mod:`hetopt.replay.pools`).
    link_capacities
        Links per link pool.
    sampler
        Draws each request's path; :meth:`request` draws it and appends the request's row to
        ``records.requests`` in one step, so the ``k``-th draw is the ``k``-th row.
    arrivals
        Request arrival times, non-decreasing.
    rng
        The replay's random generator (already used for the arrivals).
    progress
        Optional callback receiving short status lines.
    """

    def __init__(
        self,
        config: ReplayConfig,
        devices: Sequence[str],
        ops: Sequence[OpSpec],
        pools: Sequence[PoolSpec],
        link_capacities: Sequence[int],
        sampler: Sampler,
        arrivals: np.ndarray,
        rng: np.random.Generator,
        progress: Progress | None = None,
    ) -> None:
        self.config = config
        self.env = simpy.Environment()
        self.ops = ops
        self.specs = pools
        self.sampler = sampler
        self.arrivals = arrivals
        self.rng = rng
        self.progress = progress
        self.dynamic = config.dynamic
        self.router, self.ctl = config.router, config.controller
        # The static path queues on one FCFS pool per pool; the routed path on replicas.
        self.fast = [] if self.dynamic else [FcfsPool(s.slots, s.planned_devices) for s in pools]
        self.routed = (
            [
                ReplicaPool(
                    s.name,
                    devices[s.device],
                    s.slots_per_replica,
                    s.devices_per_replica,
                    s.replicas,
                    self.router.policy,
                    rng,
                    bool(config.failures),
                )
                for s in pools
            ]
            if self.dynamic
            else []
        )
        self.links = [FcfsPool(c) for c in link_capacities]
        self.run_op = self.run_routed if self.dynamic else self.run_static
        cv = config.tool_latency_cv
        self.sigma = math.sqrt(math.log(1 + cv * cv)) if cv > 0 else 0.0
        self.needed: list[list[tuple[float, int]]] = [[] for _ in self.routed]
        self.records = Records()

    @property
    def pools(self) -> Sequence[FcfsPool] | Sequence[ReplicaPool]:
        """The pools that served the jobs, one per :class:`PoolSpec`."""
        return self.routed if self.dynamic else self.fast

    # -- operators -----------------------------------------------------------------------------
    def service_of(self, op: OpSpec) -> tuple[float, float]:
        """Draw an execution's service time (holding a slot) and static time (holding none)."""
        service = op.hold_s
        if self.config.service == "exponential" and service > 0:
            service = float(self.rng.exponential(service))
        static = 0.0
        if op.static_s > 0:
            sigma = self.sigma
            static = op.static_s * (
                float(self.rng.lognormal(-sigma * sigma / 2, sigma)) if sigma else 1.0
            )
        return service, static

    def finish_op(self, op: OpSpec, st: _State, service: float) -> None:
        """Note the request's first token (first prefill) and worst time between tokens."""
        if op.is_prefill and st.first_token != st.first_token:  # NaN: first prefill
            st.first_token = self.env.now
        if op.step_s:
            tbt = op.step_s * service / op.hold_s
            if tbt > st.tbt_s:
                st.tbt_s = tbt

    def run_static(self, op_i: int, st: _State) -> Process:
        """One operator on the static plan: one FCFS queue per pool."""
        env, op = self.env, self.ops[op_i]
        service, static = self.service_of(op)
        wait = self.fast[op.pool_id].admit(env.now, service) if op.pool_id >= 0 else 0.0
        yield env.timeout(wait + service + static)
        self.records.stages.append((op_i, wait, service + static, st.arrived))
        self.finish_op(op, st, service)

    def run_routed(self, op_i: int, st: _State) -> Process:
        """One operator through the router, with admission control and failure retries."""
        env, op = self.env, self.ops[op_i]
        if st.drop:
            return
        service, static = self.service_of(op)
        t0 = env.now
        if op.pool_id < 0:
            yield env.timeout(service)
        else:
            held = yield from self._routed_service(op, st, service)
            if held is None:
                return
            service = held
        if static > 0:
            yield env.timeout(static)
        self.records.stages.append(
            (op_i, max(env.now - t0 - service - static, 0.0), service + static, st.arrived)
        )
        self.finish_op(op, st, service)

    def _routed_service(
        self, op: OpSpec, st: _State, service: float
    ) -> Generator[simpy.Event, Any, float | None]:
        """Queue at and hold a replica of ``op``'s pool; returns the service held, or None
        when the request is dropped (its reason set on ``st``)."""
        env, router, pool = self.env, self.router, self.routed[op.pool_id]
        tries = 0
        while True:
            prefer = None
            if router.policy == "kv_aware" and op.is_prefill:
                if st.affinity is None:
                    st.affinity = {}
                prefer = st.affinity.get(op.pool_id)
            r, wait, held = pool.admit(
                env.now,
                service,
                prefer,
                router.prefix_reuse_fraction * service if prefer is not None else 0.0,
                router.max_wait_s,
                env.active_process,
            )
            if r < 0:
                st.drop = "queue_timeout" if r == DROP_QUEUE else "no_capacity"
                if r != DROP_QUEUE and pool.last_failure >= 0:
                    st.failure = pool.last_failure  # the pool is empty because of it
                return None
            if st.affinity is not None:
                st.affinity[op.pool_id] = r
            try:
                yield env.timeout(wait + held)
            except simpy.Interrupt as stop:  # the replica failed under this job: retry
                st.failure = stop.cause if isinstance(stop.cause, int) else 0
                tries += 1
                if tries > router.max_retries:
                    st.drop = "device_failure"
                    return None
                continue
            return held

    # -- transfers -----------------------------------------------------------------------------
    def link_wait(self, link: int, transfer_s: float, arrived: float) -> float:
        """Queue a transfer starting now on ``link`` for a request that arrived at
        ``arrived``; return its wait."""
        wait = self.links[link].admit(self.env.now, transfer_s)
        self.records.link_waits.append((link, wait, arrived))
        return wait

    def transfer(self, after: Any, transfer_s: float, link: int, arrived: float) -> Process:
        """A transfer over a contended link, starting when its source finishes."""
        yield after
        yield self.env.timeout(self.link_wait(link, transfer_s, arrived) + transfer_s)

    # -- requests ------------------------------------------------------------------------------
    def instance(self, n: int, op_i: int, deps: list[Dep], done: list[Any], st: _State) -> Process:
        """Instance ``n`` of a request: wait for its dependencies and transfers, then run."""
        env = self.env
        if deps:
            queued = [
                env.process(self.transfer(done[d], lat, link, st.arrived))
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
        yield from self.run_op(op_i, st)
        done[n].succeed(env.now)

    def request(self, rid: int) -> Process:
        """Request ``rid``: walk its path, then record how it ended."""
        env = self.env
        # No yield between the draw and the row: a sampler may pair its k-th draw with the
        # k-th row of records.requests (the fleet replay's tenant of each request).
        path = self.sampler.sample(self.rng)
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
        self.records.requests.append(row)
        if path.chain:
            for n, op_i in enumerate(path.ops):
                if n and path.deps[n][0][1] > 0:
                    _, lat, link = path.deps[n][0]
                    yield env.timeout(
                        lat + (self.link_wait(link, lat, arrived_at) if link >= 0 else 0.0)
                    )
                yield from self.run_op(op_i, st)
                if st.drop:
                    break
        else:
            done = [env.event() for _ in path.ops]
            for n, op_i in enumerate(path.ops):
                env.process(self.instance(n, op_i, path.deps[n], done, st))
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

    def source(self) -> Process:
        """Start one request per arrival."""
        env = self.env
        for rid, t in enumerate(self.arrivals):
            yield env.timeout(max(float(t) - env.now, 0.0))
            env.process(self.request(rid))

    # -- controller and failures ---------------------------------------------------------------
    def activate_later(self, pool: ReplicaPool, r: int) -> Process:
        """Replica ``r`` of ``pool`` takes work once provisioned."""
        yield self.env.timeout(self.ctl.provision_s)
        pool.activate(r)

    def replan(self, reason: str) -> None:
        """Size every pool with the planner's rule at the measured rate (plus the margin)."""
        env, ctl, arrivals = self.env, self.ctl, self.arrivals
        now = env.now
        window = min(ctl.window_s, now)
        seen = np.searchsorted(arrivals, now, side="right") - np.searchsorted(
            arrivals, now - window, side="right"
        )
        rate = seen / window if window > 0 else float(self.config.arrivals.rate_per_s)
        for p, pool in enumerate(self.routed):
            live = len(pool.live())
            need = self.specs[p].sizing.replicas(rate * (1 + ctl.margin), ctl.utilization)
            history = [(t, n) for t, n in self.needed[p] if t > now - ctl.scale_down_cooldown_s]
            self.needed[p] = [*history, (now, need)]
            target = max(n for _, n in self.needed[p])  # shrink only after the cooldown
            if target > live:
                for _ in range(target - live):
                    r = pool.add(now, now + ctl.provision_s)
                    if ctl.provision_s > 0:
                        env.process(self.activate_later(pool, r))
            elif target < live:
                pool.drain(live - target, now)
            self.records.decisions.append(
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

    def controller(self) -> Process:
        """Re-plan every ``interval_s`` while requests arrive."""
        while True:
            yield self.env.timeout(self.ctl.interval_s)
            if self.env.now >= self.config.duration_s:
                return
            self.replan("periodic")

    def failure(self, k: int, spec: FailureSpec) -> Process:
        """Injected failure ``k``: devices of ``spec.device`` fail at ``spec.at_s``."""
        env, pools = self.env, self.routed
        yield env.timeout(spec.at_s)
        now = env.now
        devices = [
            (p, r)
            for p, pool in enumerate(pools)
            if pool.device == spec.device
            for r in pool.live()
            for _ in range(pool.devices_per_replica)
        ]
        picked = self.rng.choice(len(devices), size=min(spec.count, len(devices)), replace=False)
        hit = sorted({devices[int(x)] for x in picked})
        victims: dict[int, Any] = {}
        for p, r in hit:
            for proc in pools[p].fail(r, now, k):
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
            "pools_hit": "; ".join(sorted({pools[p].name for p, _ in hit})),
            "jobs_interrupted": len(victims),
            "recovered_at_s": math.nan,
        }
        self.records.failures.append(row)
        if self.ctl.enabled:
            yield env.timeout(self.ctl.detect_s)
            self.replan(f"failure {k} detected")
            row["recovered_at_s"] = env.now + self.ctl.provision_s

    def report_progress(self, progress: Progress) -> Process:
        """Send a status line every twentieth of the replay."""
        config = self.config
        step = max(config.duration_s / 20, config.sample_s)
        while self.env.now < config.duration_s:
            yield self.env.timeout(step)
            progress(
                f"replayed {min(self.env.now, config.duration_s):,.0f} of "
                f"{config.duration_s:,.0f} simulated s, {len(self.records.requests):,} of "
                f"{len(self.arrivals):,} requests"
            )

    # -- running -------------------------------------------------------------------------------
    def run(self) -> Records:
        """Run the replay to its horizon (arrivals, then the drain); returns the records."""
        env, config, progress = self.env, self.config, self.progress
        env.process(self.source())
        if progress is not None:
            env.process(self.report_progress(progress))
        if self.dynamic and self.ctl.enabled:
            env.process(self.controller())
        for k, spec in enumerate(config.failures):
            env.process(self.failure(k, spec))
        wall = time.perf_counter()
        if progress:
            progress(f"replaying {len(self.arrivals):,} requests over {config.duration_s:g} s")
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
        self.records.wall_s = time.perf_counter() - wall
        return self.records
