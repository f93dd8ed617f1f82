"""Result accounting: what the simulation wrote down, turned into the replay's tables.

Every statistic counts only what arrived after the warm-up (``[warmup_s, duration_s)``): the
latency percentiles and SLA attainment (:mod:`hetopt.replay.metrics`), the per-stage and
per-pool waits, the utilisation and devices held; the request counts and the money held cover
the whole replay. The money is priced twice more: against the static plan, and against a static
plan sized by the planner's rule for the busiest window (the alternative to a controller).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from hetopt.plan.plan import Plan
from hetopt.problem import PlacementProblem
from hetopt.replay.config import ReplayConfig
from hetopt.replay.metrics import (
    PoolLoad,
    attainment,
    pool_loads,
    sla_flags,
    sla_summary,
    sliding_windows,
)
from hetopt.replay.pools import FcfsPool, OpSpec, PoolSpec
from hetopt.replay.simulation import Records

REQUEST_COLUMNS = (
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
)
DECISION_COLUMNS = (
    "time_s",
    "reason",
    "rate_per_s",
    "pool",
    "replicas_before",
    "replicas_needed",
    "replicas_after",
)
FAILURE_COLUMNS = (
    "failure",
    "device",
    "at_s",
    "devices_requested",
    "devices_failed",
    "replicas_lost",
    "pools_hit",
    "jobs_interrupted",
    "recovered_at_s",
)

Loads = list[tuple[str, tuple[PoolLoad, PoolLoad]]]
"""Per pool (and link), its load over the measured window and over its busiest window."""


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


class ServedPool(Protocol):
    """What accounting reads of a pool after the run (:class:`FcfsPool` or a routed pool)."""

    arrived: list[float]
    prefix_hits: int

    def busy_fraction(self, times: np.ndarray) -> np.ndarray:
        """Share of its slots busy at each of ``times``."""

    def service_times(self) -> Sequence[float] | np.ndarray:
        """Service each job that arrived needed, in order of arrival."""

    def capacity_slots(self, times: np.ndarray) -> np.ndarray:
        """Slots in service at each of ``times``."""

    def devices_held(self, times: np.ndarray) -> np.ndarray:
        """Devices paid for at each of ``times``."""

    def device_seconds(self, horizon_s: float) -> float:
        """Device-seconds held between 0 and ``horizon_s``."""


@dataclass(frozen=True)
class Served:
    """What served the replay's jobs, as the simulation left it.

    Attributes
    ----------
    specs, pools
        The plan's pools and what served each of them.
    link_names, links
        The link pools and what served each of them.
    arrivals
        Request arrival times.
    dynamic
        True when jobs went through the router (:attr:`ReplayConfig.dynamic`).
    """

    specs: Sequence[PoolSpec]
    pools: Sequence[ServedPool]
    link_names: Sequence[str]
    links: Sequence[FcfsPool]
    arrivals: np.ndarray
    dynamic: bool


def account(
    plan: Plan,
    problem: PlacementProblem,
    config: ReplayConfig,
    ops: Sequence[OpSpec],
    served: Served,
    records: Records,
) -> ReplayResult:
    """The replay's tables and summary from what the simulation recorded.

    Parameters
    ----------
    plan, problem
        The plan replayed and its placement problem.
    config
        The replay settings.
    ops
        How each operator ran.
    served
        The pools and links after the run.
    records
        What the simulation wrote down.

    Returns
    -------
    ReplayResult
    """
    grid = np.arange(0.0, config.duration_s, config.sample_s)
    util_rows, cap_rows, held_s = _pool_series(config, grid, served, len(problem.devices))
    lo, hi = config.warmup_s, config.duration_s
    link_stats = _link_stats(records.link_waits, served, lo)
    for name, lp in zip(served.link_names, served.links, strict=True):
        util_rows += [
            (float(t), name, float(b)) for t, b in zip(grid, lp.busy_fraction(grid), strict=True)
        ]
    loads = _loads(served, grid, lo, hi, config.controller.window_s)
    extra = _money(plan, problem, config, served, held_s)
    util = pd.DataFrame(util_rows, columns=["time_s", "pool", "busy_fraction"])
    capacity = pd.DataFrame(cap_rows, columns=["time_s", "pool", "devices_held", "rate_per_s"])
    requests = _requests_table(records.requests, problem)
    stages_raw, stages = _stages_tables(records.stages, ops, lo)
    pools = _pools_table(
        problem, served.specs, util, capacity, stages_raw, link_stats, loads, lo, hi
    )
    summary = _summary(plan, problem, config, requests, loads, served, records, extra)
    summary["stage_executions"] = len(stages_raw)
    return ReplayResult(
        requests,
        stages,
        pools,
        util,
        capacity,
        pd.DataFrame(records.decisions, columns=list(DECISION_COLUMNS)),
        _failures_table(records.failures, requests, lo, hi),
        summary,
    )


def _pool_series(
    config: ReplayConfig, grid: np.ndarray, served: Served, n_devices: int
) -> tuple[list[tuple[float, str, float]], list[tuple[float, str, float, float]], np.ndarray]:
    """Utilisation and devices held per pool over time, and device-seconds held per type."""
    arrivals = served.arrivals
    rate_series = (
        np.diff(np.searchsorted(arrivals, np.append(grid, config.duration_s))) / config.sample_s
    )
    util_rows: list[tuple[float, str, float]] = []
    cap_rows: list[tuple[float, str, float, float]] = []
    held_s = np.zeros(n_devices)
    for s, pool in zip(served.specs, served.pools, strict=True):
        busy, held = pool.busy_fraction(grid), pool.devices_held(grid)
        held_s[s.device] += pool.device_seconds(config.duration_s)
        util_rows += [(float(t), s.name, float(b)) for t, b in zip(grid, busy, strict=True)]
        cap_rows += [
            (float(t), s.name, float(h), float(r))
            for t, h, r in zip(grid, held, rate_series, strict=True)
        ]
    return util_rows, cap_rows, held_s


def _link_stats(
    link_waits: list[tuple[int, float, float]], served: Served, lo: float
) -> list[tuple[str, int, float, int]]:
    """Per link: links, mean wait and transfers of the requests arriving after the warm-up."""
    measured_waits = pd.DataFrame(link_waits, columns=["link", "wait_s", "arrival_s"])
    measured_waits = measured_waits[measured_waits["arrival_s"] >= lo]
    waits = measured_waits.groupby("link")["wait_s"]
    mean_wait, transfers = waits.mean(), waits.size()
    return [
        (name, lp.capacity, float(mean_wait.get(k, math.nan)), int(transfers.get(k, 0)))
        for k, (name, lp) in enumerate(zip(served.link_names, served.links, strict=True))
    ]


def _loads(served: Served, grid: np.ndarray, lo: float, hi: float, window_s: float) -> Loads:
    """Jobs arriving at each pool and link against what its slots serve, whole window and
    busiest window."""
    named: list[tuple[str, ServedPool]] = [
        *((s.name, pool) for s, pool in zip(served.specs, served.pools, strict=True)),
        *zip(served.link_names, served.links, strict=True),
    ]
    return [
        (
            name,
            pool_loads(
                pool.arrived,
                pool.service_times(),
                grid,
                pool.capacity_slots(grid),
                lo,
                hi,
                window_s,
            ),
        )
        for name, pool in named
    ]


def _money(
    plan: Plan, problem: PlacementProblem, config: ReplayConfig, served: Served, held_s: np.ndarray
) -> dict[str, Any]:
    """What the capacity held cost, and what a static plan sized for the peak would cost."""
    ctl, specs, arrivals = config.controller, served.specs, served.arrivals
    cost = problem.device_cost_usd_per_h
    planned_device_usd_h = sum(s.planned_devices * cost[s.device] for s in specs)
    other_usd_h = max(plan.tco_usd_per_hour - planned_device_usd_h, 0.0)
    held_usd = float(cost @ held_s) / 3600 + other_usd_h * config.duration_s / 3600
    # What a static plan would hold to cover the busiest window (the alternative to a
    # controller): every pool sized by the planner's rule at the peak windowed arrival rate,
    # with the controller's margin. Windows are full and inside the replay, so a replay
    # shorter than window_s takes its whole length as the window.
    edges, win = sliding_windows(0.0, config.duration_s, ctl.window_s)
    counts = np.searchsorted(arrivals, edges + win) - np.searchsorted(arrivals, edges)
    peak_rate = float(counts.max() / win) if len(arrivals) else 0.0
    peak_usd_h = other_usd_h + sum(
        s.sizing.replicas(peak_rate * (1 + ctl.margin), ctl.utilization)
        * s.devices_per_replica
        * cost[s.device]
        for s in specs
    )
    return {
        "capacity_usd": held_usd,
        "peak_rate_per_s": peak_rate,
        "peak_static_usd": peak_usd_h * config.duration_s / 3600,
        "peak_sizing_margin": ctl.margin,
        "device_hours_held": float(held_s.sum() / 3600),
        "prefix_hits": sum(p.prefix_hits for p in served.pools),
        "router": (
            config.router.policy if served.dynamic else "least_loaded (one FCFS queue per pool)"
        ),
        "controller": ctl.enabled and served.dynamic,
    }


def _requests_table(rows: list[dict[str, Any]], problem: PlacementProblem) -> pd.DataFrame:
    """One row per request, with its gap to the planner and its SLA flags."""
    requests = pd.DataFrame(rows, columns=list(REQUEST_COLUMNS))
    requests["gap"] = requests["e2e_s"] / requests["predicted_s"] - 1
    return pd.concat([requests, sla_flags(requests, problem.sla)], axis=1)


def _stages_tables(
    rows: list[tuple[int, float, float, float]], ops: Sequence[OpSpec], lo: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The executions after the warm-up, and their waits and service per operator."""
    stages_raw = pd.DataFrame(rows, columns=["op", "wait_s", "service_s", "arrival_s"])
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
    return stages_raw, stages


def _pools_table(
    problem: PlacementProblem,
    specs: Sequence[PoolSpec],
    util: pd.DataFrame,
    capacity: pd.DataFrame,
    stages_raw: pd.DataFrame,
    link_stats: list[tuple[str, int, float, int]],
    loads: Loads,
    lo: float,
    hi: float,
) -> pd.DataFrame:
    """Per pool and link: slots, devices, utilisation, waits and load."""
    in_window = util[(util["time_s"] >= lo) & (util["time_s"] < hi)]
    pools = pd.DataFrame(
        {
            "pool": [s.name for s in specs],
            "device": [problem.devices[s.device] for s in specs],
            "slots": [s.slots for s in specs],
            "planned_devices": [s.planned_devices for s in specs],
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
    return pools


def _failures_table(
    rows: list[dict[str, Any]], requests: pd.DataFrame, lo: float, hi: float
) -> pd.DataFrame:
    """Per injected failure: what it took, whom it hit and SLA attainment around it."""
    failures = pd.DataFrame(rows, columns=list(FAILURE_COLUMNS))
    if not len(failures):
        return failures
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
    return failures


def _quantile(values: pd.Series, q: float) -> float:
    values = values.dropna()
    return float(values.quantile(q)) if len(values) else math.nan


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q)) if len(values) else math.nan


def _summary(
    plan: Plan,
    problem: PlacementProblem,
    config: ReplayConfig,
    requests: pd.DataFrame,
    loads: Loads,
    served: Served,
    records: Records,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Counts, percentiles, SLA attainment, overloaded pools and money (``stage_executions``
    is added by the caller, last)."""
    lo, hi = config.warmup_s, config.duration_s
    arrived, wall_s = len(served.arrivals), records.wall_s
    measured = requests[requests["arrival_s"] >= lo]
    done = measured[measured["status"] == "completed"]
    e2e = done["e2e_s"].to_numpy(dtype=float)
    status = requests["status"].value_counts()
    completed_all = int(status.get("completed", 0))
    tokens_done = float(requests.loc[requests["status"] == "completed", "tokens"].sum())
    held_usd = extra["capacity_usd"]
    drops = requests.loc[requests["status"] == "dropped", "drop_reason"].value_counts()
    return {
        "arrived": arrived,
        "completed": completed_all,
        "dropped": int(status.get("dropped", 0)),
        "in_flight_at_end": int(status.get("in_flight", 0)),
        "dropped_by_reason": {str(k): int(v) for k, v in drops.items()},
        "affected_by_failures": int((requests["failure"] >= 0).sum()),
        "warmup_s": lo,
        "measured_requests": len(measured),
        "e2e_p50_s": _percentile(e2e, 0.5),
        "e2e_p90_s": _percentile(e2e, 0.9),
        "e2e_p99_s": _percentile(e2e, 0.99),
        "ttft_p99_s": _quantile(done["ttft_s"], 0.99),
        "tbt_p99_s": _quantile(done["tbt_s"].where(done["tbt_s"] > 0), 0.99),
        "planned_e2e_s": plan.e2e_latency_s,
        **sla_summary(requests, problem.sla, lo, hi),
        "gap_p50": float(done["gap"].median()) if len(done) else math.nan,
        "gap_p99": float(done["gap"].quantile(0.99)) if len(done) else math.nan,
        "overloaded_pools": _overloaded(loads),
        "tco_usd_per_hour": plan.tco_usd_per_hour,
        "static_plan_usd": plan.tco_usd_per_hour * (config.duration_s / 3600),
        "usd_per_request": held_usd / completed_all if completed_all else math.nan,
        "usd_per_mtok": held_usd / tokens_done * 1e6 if tokens_done else math.nan,
        "planned_usd_per_request": plan.cost_usd_per_request,
        "planned_usd_per_mtok": plan.cost_usd_per_million_tokens,
        **extra,
        "replans": len({d["time_s"] for d in records.decisions}),
        "wall_s": wall_s,
        "requests_per_wall_s": arrived / wall_s if wall_s > 0 else math.nan,
    }


def _overloaded(loads: Loads) -> list[dict[str, Any]]:
    """The pools whose jobs arrived faster than they could serve, over the measured window or
    their busiest window (whichever is worse)."""
    worst = [(name, max(pair, key=lambda pl: pl.offered_load)) for name, pair in loads]
    return [
        {
            "pool": name,
            "from_s": pl.from_s,
            "to_s": pl.to_s,
            "arrival_rate_per_s": pl.arrival_rate_per_s,
            "capacity_per_s": pl.capacity_per_s,
            "offered_load": pl.offered_load,
        }
        for name, pl in worst
        if pl.overloaded
    ]
