"""The replay's fast and slow paths: router, autoscaling controller and failure injection.

A pool is a set of *replicas* (an LLM phase's ``tp x pp`` device groups, each with ``batch``
slots; or single devices of a shared pool, one slot each), and every replica keeps the times at
which its slots free up. The **router** (fast path) sends each job to a replica:

* ``least_loaded``: the replica whose next slot frees first (join the shortest workload);
* ``kv_aware``: like ``least_loaded``, but a prefill that already ran on a replica for the same
  request (the next pass of a loop, whose prompt extends the last one) goes back to that replica
  when waiting there costs less than the prefix it would not have to recompute
  (``prefix_reuse_fraction`` of the prefill); a hit shortens the prefill by that much;
* ``random``: a uniformly random replica, the naive baseline.

The **controller** (slow path) re-plans every ``interval_s``: it measures the arrival rate over
the last ``window_s``, adds ``margin`` and sizes every pool with the planner's own rule
(:class:`hetopt.replay.pools.PoolSizing`, :func:`hetopt.problem.replicas_for_load`) for the
placement the plan chose. New replicas are paid for from the moment they are requested and take
work after ``provision_s`` (loading weights); surplus replicas stop taking work and are released
once their queued work is done. **Failures** take devices of a type out of service at given times;
the work on them is retried elsewhere (at most ``max_retries`` times), and the controller
notices after ``detect_s`` and re-plans, which replaces the lost capacity.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hetopt.errors import InputError

POLICIES = ("least_loaded", "kv_aware", "random")


@dataclass(frozen=True)
class RouterConfig:
    """Fast-path routing (the ``replay.router`` block).

    Attributes
    ----------
    policy
        ``least_loaded``, ``kv_aware`` or ``random``.
    prefix_reuse_fraction
        Share of a repeated prefill that a prefix-cache hit saves (``kv_aware`` only).
    max_wait_s
        Admission control: a job that would queue longer than this at a pool is dropped
        (reason ``queue_timeout``); None queues without limit.
    max_retries
        Times a job lost to a device failure is retried before its request is dropped.
    """

    policy: str = "least_loaded"
    prefix_reuse_fraction: float = 0.5
    max_wait_s: float | None = None
    max_retries: int = 2

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise InputError(
                f"replay.router.policy={self.policy!r} is not one of {list(POLICIES)}."
            )
        if not 0 <= self.prefix_reuse_fraction < 1:
            raise InputError("replay.router.prefix_reuse_fraction must be in [0, 1).")
        if self.max_wait_s is not None and not self.max_wait_s > 0:
            raise InputError("replay.router.max_wait_s must be > 0 (or null: no limit).")
        if self.max_retries < 0:
            raise InputError("replay.router.max_retries must be >= 0.")


@dataclass(frozen=True)
class ControllerConfig:
    """Slow-path re-planning (the ``replay.controller`` block).

    Attributes
    ----------
    enabled
        Re-plan pool sizes during the replay; False keeps the plan's counts throughout.
    interval_s
        Time between re-plans.
    window_s
        The arrival rate is measured over this much past time.
    target_utilization
        Utilisation cap the pools are sized for; None uses the planner's
        ``costs.max_utilization`` (the CLI fills it in; 0.8 otherwise).
    margin
        Fraction added to the measured rate (covers growth until the next re-plan).
    provision_s
        Time from requesting a replica to its taking work (boot, weight loading).
    detect_s
        Time for the controller to notice a failure and re-plan.
    scale_down_cooldown_s
        A pool shrinks only to the largest size it needed over this much past time, so that
        noise in the measured rate does not make it flap.
    """

    enabled: bool = False
    interval_s: float = 60.0
    window_s: float = 300.0
    target_utilization: float | None = None
    margin: float = 0.1
    provision_s: float = 60.0
    detect_s: float = 10.0
    scale_down_cooldown_s: float = 300.0

    @property
    def utilization(self) -> float:
        """The utilisation cap pools are sized for: ``target_utilization``, 0.8 when unset."""
        return self.target_utilization or 0.8

    def __post_init__(self) -> None:
        if not (self.interval_s > 0 and self.window_s > 0) or self.scale_down_cooldown_s < 0:
            raise InputError(
                "replay.controller.interval_s and window_s must be > 0, scale_down_cooldown_s >= 0."
            )
        if self.target_utilization is not None and not 0 < self.target_utilization <= 1:
            raise InputError("replay.controller.target_utilization must be in (0, 1].")
        if self.margin < 0 or self.provision_s < 0 or self.detect_s < 0:
            raise InputError("replay.controller.margin, provision_s and detect_s must be >= 0.")


@dataclass(frozen=True)
class FailureSpec:
    """``count`` devices of type ``device`` fail at ``at_s`` (one ``replay.failures`` entry)."""

    device: str
    count: int
    at_s: float

    def __post_init__(self) -> None:
        if self.count < 1 or not self.at_s >= 0:
            raise InputError(
                f"replay.failures: {self.device}: count must be >= 1 and at_s >= 0, "
                f"got count={self.count}, at_s={self.at_s}."
            )


def check_failures(
    failures: Sequence[FailureSpec], devices: Mapping[str, int], replaced: bool
) -> None:
    """Refuse a failure drill that names more devices than the plan holds.

    Parameters
    ----------
    failures
        The ``replay.failures`` entries, in order.
    devices
        Devices the plan holds per device type (every pool on that type).
    replaced
        True when a controller replaces failed devices; otherwise every failure of a type
        draws on the devices the earlier ones left.

    Raises
    ------
    InputError
        Naming ``replay.failures[k].device`` or ``replay.failures[k].count``, the count and
        how many devices exist.

    Examples
    --------
    >>> check_failures([FailureSpec("B200", 99, 10.0)], {"B200": 4}, replaced=True)
    Traceback (most recent call last):
    ...
    hetopt.errors.InputError: replay.failures[0].count=99: the plan holds only 4 B200 devices, \
so at most 4 can fail. Set replay.failures[0].count to at most 4.
    """
    failed: dict[str, int] = {}
    for k, spec in enumerate(failures):
        key = f"replay.failures[{k}]"
        if spec.device not in devices:
            raise InputError(
                f"{key}.device={spec.device!r} holds no pool in this plan; the "
                f"plan's pools are on {sorted(devices)}. Name one of those."
            )
        total = devices[spec.device]
        left = total if replaced else total - failed.get(spec.device, 0)
        if spec.count > left:
            if left == total:
                raise InputError(
                    f"{key}.count={spec.count}: the plan holds only {total} "
                    f"{spec.device} devices, so at most {total} can fail. Set "
                    f"{key}.count to at most {total}."
                )
            fix = f"Set {key}.count to at most {left}" if left > 0 else f"Remove {key}"
            raise InputError(
                f"{key}.count={spec.count}: the plan holds {total} {spec.device} "
                f"devices and the earlier failures take "
                f"{failed[spec.device]}, which nothing replaces without a "
                f"controller, so only {left} are left to fail. {fix}, or set "
                f"replay.controller.enabled=true."
            )
        failed[spec.device] = failed.get(spec.device, 0) + spec.count


def busy_slots(starts: list[float], ends: list[float], times: np.ndarray) -> np.ndarray:
    """Jobs in service at each of ``times``, from their start and end times.

    Examples
    --------
    >>> busy_slots([0.0, 1.0], [2.0, 3.0], np.array([0.5, 1.5, 2.5, 3.5])).tolist()
    [1, 2, 1, 0]
    """
    return np.searchsorted(np.sort(starts), times, side="right") - np.searchsorted(
        np.sort(ends), times, side="right"
    )


class _Replica:
    __slots__ = ("free_at", "state", "held_from", "ready_at", "held_to", "failed_at", "jobs")

    def __init__(self, slots: int, now: float, ready_at: float) -> None:
        self.free_at = [ready_at] * slots  # heap
        self.state = "active" if ready_at <= now else "provisioning"
        self.held_from = now
        self.ready_at = ready_at
        self.held_to = math.inf  # paid for until then (a failed device stays owned)
        self.failed_at = math.inf
        self.jobs: list[tuple[float, Any, int]] = []  # (service end, process, interval index)


DROP_QUEUE = -1
DROP_EMPTY = -2


class ReplicaPool:
    """A pool of replicas behind a router, which can grow, shrink and lose replicas.

    Parameters
    ----------
    name, device
        Pool label and device type.
    slots_per_replica, devices_per_replica
        Concurrent jobs and devices of one replica.
    replicas
        Replicas at time 0.
    policy, rng
        Routing policy and the random generator of the ``random`` policy.
    track_jobs
        Keep each replica's running jobs so that a failure can interrupt them.
    """

    def __init__(
        self,
        name: str,
        device: str,
        slots_per_replica: int,
        devices_per_replica: int,
        replicas: int,
        policy: str,
        rng: np.random.Generator,
        track_jobs: bool,
    ) -> None:
        self.name, self.device = name, device
        self.slots = slots_per_replica
        self.devices_per_replica = devices_per_replica
        self.policy = policy
        self.rng = rng
        self.track_jobs = track_jobs
        self.reps: list[_Replica] = []
        self.heap: list[tuple[float, int]] = []  # (earliest free slot, replica); lazily pruned
        self.active: list[int] = []
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.arrived: list[float] = []  # every job routed here (admitted or not), and when
        self.demand: list[float] = []  # the service it needed
        self.prefix_hits = 0
        self.last_failure = -1  # the failure that last took a replica of this pool
        for _ in range(replicas):
            self.add(0.0, 0.0)

    # -- capacity ------------------------------------------------------------------------------
    def add(self, now: float, ready_at: float) -> int:
        """Request a replica at ``now`` that takes work from ``ready_at``; returns its id."""
        r = len(self.reps)
        self.reps.append(_Replica(self.slots, now, ready_at))
        if ready_at <= now:
            self.activate(r)
        return r

    def activate(self, r: int) -> None:
        """A provisioned replica starts taking work."""
        rep = self.reps[r]
        if rep.state not in ("active", "provisioning"):
            return  # cancelled or failed while provisioning
        rep.state = "active"
        self.active.append(r)
        heapq.heappush(self.heap, (rep.free_at[0], r))

    def live(self) -> list[int]:
        """Replicas in service or being provisioned (what the controller counts)."""
        return [r for r, rep in enumerate(self.reps) if rep.state in ("active", "provisioning")]

    def drain(self, n: int, now: float) -> None:
        """Release ``n`` replicas: pending provisions first, then the least busy active ones."""
        live = self.live()
        live.sort(key=lambda r: (self.reps[r].state == "active", max(self.reps[r].free_at)))
        for r in live[:n]:
            rep = self.reps[r]
            if rep.state == "provisioning":
                rep.state, rep.held_to = "released", now
            else:
                rep.state, rep.held_to = "draining", max(now, max(rep.free_at))
                self.active.remove(r)

    def fail(self, r: int, now: float, failure: int) -> list[Any]:
        """Replica ``r`` fails at ``now`` (injected failure number ``failure``); returns the
        processes whose service it cut short."""
        self.last_failure = failure
        rep = self.reps[r]
        was_active = rep.state == "active"
        rep.state, rep.failed_at = "failed", now
        if was_active:
            self.active.remove(r)
        victims = []
        for end, proc, idx in rep.jobs:
            if end > now:
                victims.append(proc)
                self.ends[idx] = max(self.starts[idx], now)
                self.starts[idx] = min(self.starts[idx], self.ends[idx])
        rep.jobs.clear()
        return victims

    # -- routing -------------------------------------------------------------------------------
    def _least_loaded(self) -> int | None:
        heap, reps = self.heap, self.reps
        while heap:
            t, r = heap[0]
            rep = reps[r]
            if rep.state == "active" and rep.free_at[0] == t:
                return r
            heapq.heappop(heap)
        return None

    def admit(
        self,
        now: float,
        service_s: float,
        prefer: int | None,
        saving_s: float,
        max_wait_s: float | None,
        process: Any,
    ) -> tuple[int, float, float]:
        """Route a job; returns ``(replica, wait_s, service_s)``, or a negative replica id:
        :data:`DROP_EMPTY` (no replica in service) or :data:`DROP_QUEUE` (wait over the limit).
        Every call counts as a job arriving at the pool, dropped or not."""
        self.arrived.append(now)
        self.demand.append(service_s)
        best = self._least_loaded()
        if best is None:
            return DROP_EMPTY, 0.0, 0.0
        r = best
        if self.policy == "random":
            r = self.active[int(self.rng.integers(len(self.active)))]
        elif prefer is not None and self.reps[prefer].state == "active":
            wait_prefer = self.reps[prefer].free_at[0] - now
            if wait_prefer <= max(self.reps[best].free_at[0] - now, 0.0) + saving_s:
                r = prefer
                service_s -= saving_s
                self.demand[-1] = service_s
                self.prefix_hits += 1
        rep = self.reps[r]
        start = max(now, rep.free_at[0])
        if max_wait_s is not None and start - now > max_wait_s:
            return DROP_QUEUE, 0.0, 0.0
        heapq.heapreplace(rep.free_at, start + service_s)
        heapq.heappush(self.heap, (rep.free_at[0], r))
        if self.track_jobs:
            if len(rep.jobs) > 4 * self.slots + 64:
                rep.jobs = [j for j in rep.jobs if j[0] > now]
            rep.jobs.append((start + service_s, process, len(self.starts)))
        self.starts.append(start)
        self.ends.append(start + service_s)
        return r, start - now, service_s

    # -- accounting ----------------------------------------------------------------------------
    def capacity_slots(self, times: np.ndarray) -> np.ndarray:
        """Slots of replicas ready and held at each of ``times``."""
        out = np.zeros(len(times))
        for rep in self.reps:
            if rep.state != "released":
                out += (times >= rep.ready_at) & (times < min(rep.held_to, rep.failed_at))
        return out * self.slots

    def devices_held(self, times: np.ndarray) -> np.ndarray:
        """Devices paid for at each of ``times`` (provisioning, serving, draining, or failed:
        a failed device is still owned; its repair is not modelled)."""
        out = np.zeros(len(times))
        for rep in self.reps:
            out += (times >= rep.held_from) & (times < rep.held_to)
        return out * self.devices_per_replica

    def device_seconds(self, horizon_s: float) -> float:
        """Device-seconds held between 0 and ``horizon_s``."""
        return self.devices_per_replica * sum(
            max(0.0, min(rep.held_to, horizon_s) - rep.held_from) for rep in self.reps
        )

    def service_times(self) -> list[float]:
        """Service each job routed here needed, in order of arrival."""
        return self.demand

    def busy_fraction(self, times: np.ndarray) -> np.ndarray:
        """Share of ready slots busy at each of ``times``."""
        busy = busy_slots(self.starts, self.ends, times)
        cap = self.capacity_slots(times)
        return np.divide(busy, cap, out=np.zeros(len(times)), where=cap > 0)
