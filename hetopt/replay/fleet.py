"""Replay a fleet plan: every tenant's traffic through the fleet's shared pools at once.

A fleet (:mod:`hetopt.fleet`) is replayed as one stream of requests on one SimPy simulation
(:class:`hetopt.replay.simulation.Simulation`), with the single agent's pools, queues, links,
router, controller and accounting reused as they are:

* **arrivals**: ``config.arrivals`` is the fleet's total rate; each request picks its tenant
  with probability ``rate_t / total`` and then walks that tenant's graph. Splitting one
  Poisson stream this way gives independent Poisson streams at each tenant's rate, exactly
  the fleet's traffic (for bursty or diurnal arrivals every tenant follows the same curve,
  scaled to its share);
* **pools**: one light-operator pool per device type with the fleet plan's ``pool_counts``,
  shared by every tenant's light operators; one LLM pool per fleet pool key
  (:attr:`hetopt.fleet.problem.FleetProblem.key_names`) with the plan's ``key_counts``
  replicas, which every member of every tenant queues on (ONE queue, not one per tenant);
  each other LLM phase keeps its tenant's own replicas, named ``<tenant>/<operator> (...)``;
* **links**: one link pool per (sending, receiving) device type, shared by the tenants, with
  one link per sending device of the merged pools;
* **operators** are named ``<tenant>/<operator>`` in the stage table.

Why not one merged agent graph through :func:`hetopt.replay.engine.replay`: the path walker
starts a request at *every* source of its graph (:func:`hetopt.replay.paths.path_graph`), so a
merged graph would run every tenant on each request, and a virtual root choosing one tenant
by branch probability would need a placeable root operator with a cost-table row, a whole
merged :class:`~hetopt.problem.PlacementProblem` and a merged :class:`~hetopt.plan.plan.Plan`,
and would still pick only one source of a tenant with several. Instead each tenant keeps its
own path sampler and a :class:`TenantSampler` picks the tenant first; everything after the
draw is the single agent's code.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hetopt.errors import InputError
from hetopt.fleet.evaluate import Choices, FleetEvaluation, evaluate_fleet
from hetopt.fleet.plan import FleetOutcome
from hetopt.fleet.problem import FleetProblem
from hetopt.plan.plan import LLM_POOL_COLUMNS, Plan
from hetopt.problem import SECONDS_PER_HOUR
from hetopt.replay.accounting import ReplayResult, Served, account
from hetopt.replay.arrivals import arrival_times
from hetopt.replay.config import ReplayConfig
from hetopt.replay.control import check_failures
from hetopt.replay.metrics import sla_flags, sla_summary
from hetopt.replay.paths import PathSampler, RequestPath, path_graph
from hetopt.replay.pools import OpSpec, PoolSizing, PoolSpec, devices_held, op_specs, plan_links
from hetopt.replay.simulation import Progress, Simulation
from hetopt.sla import Sla
from hetopt.solvers.base import SolveResult, SolveStatus

__all__ = ["FleetReplayResult", "TenantSampler", "replay_fleet", "write_fleet_replay"]

TENANT_COLUMNS = (
    "tenant",
    "rate_per_s",
    "rate_share",
    "arrived",
    "completed",
    "dropped",
    "in_flight_at_end",
    "measured",
    "e2e_mean_s",
    "e2e_p50_s",
    "e2e_p95_s",
    "e2e_p99_s",
    "planned_e2e_s",
    "path_predicted_p50_s",
    "gap_p50",
    "sla_e2e_s",
    "sla_attainment",
)
"""Columns of :attr:`FleetReplayResult.tenants` (``fleet_replay.csv``)."""


@dataclass(frozen=True)
class FleetReplayResult:
    """What the fleet replay measured, per tenant and per pool.

    Attributes
    ----------
    tenants
        One row per tenant (:data:`TENANT_COLUMNS`): its rate and share of the arrivals, its
        requests (``arrived = completed + dropped + in_flight_at_end``; ``measured`` arrived
        after the warm-up), end-to-end mean and percentiles of its measured completed
        requests, the planner's end-to-end latency for the tenant (``planned_e2e_s``: worst
        path, loops at the SLA's iteration count, as the fleet plan states it), the median of
        the planner's latency for the paths the requests took (``path_predicted_p50_s``) and
        the median gap to it (``gap_p50``), and the share of measured requests meeting every
        bound of the tenant's own SLA.
    pools
        The replay's pool table (:attr:`hetopt.replay.accounting.ReplayResult.pools`: slots,
        planned devices, mean utilisation and wait, offered load) with ``kind``
        (``light``: a device type's shared pool, ``llm``: a fleet LLM pool, ``dedicated``: one
        tenant's LLM phase, ``link``) and ``tenants`` (``;``-separated users).
    replay
        The whole single-agent result of the merged replay; its ``requests`` carry a
        ``tenant`` column and each request's ``meets_*`` flags against its tenant's SLA.
    summary
        The replay's summary (counts, percentiles, pools overloaded, money held) with the
        single-SLA keys replaced by ``sla_attainment`` over every tenant's own SLA.
    """

    tenants: pd.DataFrame
    pools: pd.DataFrame
    replay: ReplayResult
    summary: dict[str, Any]

    @property
    def requests(self) -> pd.DataFrame:
        """One row per request, with its ``tenant``."""
        return self.replay.requests


class TenantSampler:
    """Draws each request's tenant (by rate share), then its path through that tenant's graph.

    The paths of tenant ``t`` have their operator indices shifted by ``offsets[t]``, into the
    merged operator list. ``drawn`` records the tenant of every draw, in order: the
    simulation appends the ``k``-th request row right after the ``k``-th draw.

    Parameters
    ----------
    samplers
        One path sampler per tenant.
    shares
        Each tenant's share of the requests (summing to 1).
    offsets
        Index of each tenant's first operator in the merged operator list.
    """

    def __init__(
        self, samplers: Sequence[PathSampler], shares: np.ndarray, offsets: Sequence[int]
    ) -> None:
        self.samplers = list(samplers)
        self.shares = np.asarray(shares, dtype=float)
        self.offsets = list(offsets)
        self.drawn: list[int] = []
        self._shifted: dict[int, tuple[RequestPath, RequestPath]] = {}

    def sample(self, rng: np.random.Generator) -> RequestPath:
        """A request's tenant and path, drawn with ``rng``."""
        t = int(rng.choice(len(self.shares), p=self.shares)) if len(self.shares) > 1 else 0
        self.drawn.append(t)
        path = self.samplers[t].sample(rng)
        # Each sampler caches its paths, so shifted copies are cached by the original.
        hit = self._shifted.get(id(path))
        if hit is None or hit[0] is not path:
            shifted = dataclasses.replace(path, ops=[i + self.offsets[t] for i in path.ops])
            hit = self._shifted[id(path)] = (path, shifted)
        return hit[1]


@dataclass
class _Merged:
    """The fleet's pools and operators as one replay sees them."""

    ops: list[OpSpec]
    pools: list[PoolSpec]
    kind: list[str]
    users: list[list[str]]  # per pool, then per link
    samplers: list[PathSampler]
    link_names: list[str]
    link_capacities: list[int]


def _counts(
    plan: FleetOutcome | FleetProblem,
    choices: Choices | None,
    pool_counts: Sequence[int] | None,
    key_counts: Sequence[int] | None,
) -> tuple[FleetProblem, Choices, FleetEvaluation]:
    """The problem, the choices and the evaluation (pool and LLM-pool sizes) to replay."""
    if isinstance(plan, FleetOutcome):
        fp = plan.problem
        choices = choices if choices is not None else plan.result.choices
        ev = plan.result.evaluation
        if pool_counts is None and ev is not None:
            pool_counts = tuple(int(v) for v in ev.pool_counts)
        if key_counts is None and ev is not None:
            key_counts = tuple(int(v) for v in ev.key_counts)
    else:
        fp = plan
    if choices is None:
        raise InputError("replay_fleet needs the fleet plan's choices (the outcome has none).")
    if len(fp.tenant_graphs) != fp.n_tenants or len(fp.tenant_tables) != fp.n_tenants:
        raise InputError(
            f"fleet '{fp.name}' has no tenant graphs and cost tables to replay; build it with "
            f"hetopt.fleet.problem.build_fleet_problem (hand-assembled fleets do not keep them)."
        )
    return fp, choices, evaluate_fleet(fp, choices, pool_counts, key_counts)


def _llm_members(fp: FleetProblem, choices: Choices) -> dict[int, list[str]]:
    """Per fleet LLM pool, its members in the plan (``<tenant>/<operator>``)."""
    members: dict[int, list[str]] = {}
    for t, (p, choice) in enumerate(zip(fp.tenants, choices, strict=True)):
        keys = fp.opt_fleet_key[t][np.asarray(choice, dtype=int)]
        for i in np.flatnonzero(keys >= 0):
            members.setdefault(int(keys[i]), []).append(f"{fp.tenant_names[t]}/{p.ops[i]}")
    return members


def _tenant_plan(
    fp: FleetProblem, t: int, choice: Sequence[int], ev: FleetEvaluation, members: dict
) -> Plan:
    """Tenant ``t``'s part of the fleet plan in the form the replay's pool builder reads:
    its choice, the fleet's light-pool counts, and the fleet LLM pools it uses with the
    fleet's replicas and members (so a pool two tenants share is shared here too)."""
    p = fp.tenants[t]
    keys = sorted({int(k) for k in fp.opt_fleet_key[t][np.asarray(choice, dtype=int)] if k >= 0})
    llm_pools = pd.DataFrame(
        [
            {
                "pool": fp.key_names[k],
                "device": fp.devices[int(fp.key_device[k])],
                "config": "",
                "members": ";".join(members[k]),
                "load_replicas": float(ev.key_load[k].max(initial=0.0)),
                "replicas": int(ev.key_counts[k]),
                "devices_per_replica": int(fp.key_devices_per_replica[k]),
                "devices": int(ev.key_counts[k] * fp.key_devices_per_replica[k]),
            }
            for k in keys
        ],
        columns=list(LLM_POOL_COLUMNS),
    )
    pool_counts = tuple(int(v) for v in ev.pool_counts)
    solve = SolveResult(
        "fleet", SolveStatus.FEASIBLE, math.nan, math.nan, math.nan, 0.0, tuple(choice), pool_counts
    )
    return Plan(
        fp.tenant_names[t],
        p.request_rate_per_s,
        tuple(int(o) for o in choice),
        pool_counts,
        pd.DataFrame(),
        pd.DataFrame(),
        float(ev.tenant_usd_per_h[t]),
        float(ev.tenant_usd_per_h[t]) / (p.request_rate_per_s * SECONDS_PER_HOUR),
        math.nan,
        0.0,
        float(ev.tenant_e2e_s[t]),
        {},
        solve,
        llm_pools=llm_pools,
    )


def _merge(
    fp: FleetProblem,
    choices: Choices,
    ev: FleetEvaluation,
    shares: np.ndarray,
    contention: bool,
) -> _Merged:
    """Every tenant's operators on the fleet's pools (see the module docstring)."""
    members = _llm_members(fp, choices)
    shared_names = {fp.key_names[k] for k, m in members.items() if len(m) > 1}
    shared_names |= {f"{name} (prefill chunks)" for name in shared_names}
    light_names = {f"{d} shared pool" for d in fp.devices}
    index: dict[str, int] = {}
    parts: list[PoolSpec] = []
    per_rate: list[float] = []
    kind: list[str] = []
    users: list[list[str]] = []
    ops: list[OpSpec] = []
    placed: list[tuple[np.ndarray, np.ndarray]] = []  # per tenant: device per op, cross edges
    for t, (p, choice) in enumerate(zip(fp.tenants, choices, strict=True)):
        name = fp.tenant_names[t]
        plan = _tenant_plan(fp, t, choice, ev, members)
        local_ops, local_pools = op_specs(plan, p, fp.tenant_tables[t], fp.tenant_graphs[t])
        to_global = []
        for s in local_pools:
            shared = s.name in shared_names or s.name in light_names
            merged = s.name if shared else f"{name}/{s.name}"
            if merged not in index:
                index[merged] = len(parts)
                parts.append(dataclasses.replace(s, name=merged))
                per_rate.append(0.0)
                kind.append("light" if s.name in light_names else "llm" if shared else "dedicated")
                users.append([])
            g = index[merged]
            per_rate[g] += shares[t] * s.sizing.per_rate  # per request of the merged stream
            if name not in users[g]:
                users[g].append(name)
            to_global.append(g)
        for op in local_ops:
            g = to_global[op.pool_id] if op.pool_id >= 0 else -1
            ops.append(
                dataclasses.replace(
                    op,
                    name=f"{name}/{op.name}",
                    pool=parts[g].name if g >= 0 else None,
                    pool_id=g,
                )
            )
        dev = p.opt_device[np.asarray(choice, dtype=int)]
        placed.append((dev, (dev[p.edge_src] != dev[p.edge_dst]).astype(float)))
    pools = [
        dataclasses.replace(s, sizing=PoolSizing(r, s.sizing.minimum))
        for s, r in zip(parts, per_rate, strict=True)
    ]
    return _with_paths(fp, ops, pools, kind, users, placed, contention)


def _with_paths(
    fp: FleetProblem,
    ops: list[OpSpec],
    pools: list[PoolSpec],
    kind: list[str],
    users: list[list[str]],
    placed: list[tuple[np.ndarray, np.ndarray]],
    contention: bool,
) -> _Merged:
    """Each tenant's path sampler over the fleet's shared link pools."""
    link_users: list[list[str]] = []
    link_index: dict[str, int] = {}
    capacities: list[int] = []
    samplers = []
    start = 0
    for t, (p, (dev, cross)) in enumerate(zip(fp.tenants, placed, strict=True)):
        links = plan_links(p, dev, cross, pools, contention)
        local = []
        for link_name, cap in zip(links.names, links.capacities, strict=True):
            if link_name not in link_index:  # the same merged pools give the same capacity
                link_index[link_name] = len(capacities)
                capacities.append(cap)
                link_users.append([])
            local.append(link_index[link_name])
            link_users[local[-1]].append(fp.tenant_names[t])
        edge_link = np.array([local[e] if e >= 0 else -1 for e in links.edge_link], dtype=int)
        mine = ops[start : start + p.n_ops]
        start += p.n_ops
        samplers.append(
            PathSampler(
                path_graph(
                    p,
                    cross,
                    np.array([op.latency_s for op in mine]),
                    np.array([op.tokens for op in mine]),
                    edge_link,
                )
            )
        )
    return _Merged(ops, pools, kind, [*users, *link_users], samplers, list(link_index), capacities)


def _fleet_plan(fp: FleetProblem, choices: Choices, ev: FleetEvaluation) -> Plan:
    """The fleet as a whole, in the fields the replay's accounting reads (TCO, cost per
    request, worst planned latency)."""
    rate = sum(p.request_rate_per_s for p in fp.tenants)
    pool_counts = tuple(int(v) for v in ev.pool_counts)
    solve = SolveResult(
        "fleet", SolveStatus.FEASIBLE, math.nan, math.nan, math.nan, 0.0, None, pool_counts
    )
    return Plan(
        fp.name,
        rate,
        (),
        pool_counts,
        pd.DataFrame(),
        pd.DataFrame(),
        ev.tco_usd_per_h,
        ev.tco_usd_per_h / (rate * SECONDS_PER_HOUR),
        math.nan,
        ev.carbon_kg_per_h,
        float(ev.tenant_e2e_s.max(initial=0.0)),
        {},
        solve,
    )


def replay_fleet(
    plan: FleetOutcome | FleetProblem,
    config: ReplayConfig,
    choices: Choices | None = None,
    *,
    pool_counts: Sequence[int] | None = None,
    key_counts: Sequence[int] | None = None,
    progress: Progress | None = None,
) -> FleetReplayResult:
    """Replay the fleet's traffic through its plan and measure every tenant's latency.

    Parameters
    ----------
    plan
        A :class:`~hetopt.fleet.plan.FleetOutcome` (its plan, pool and LLM-pool sizes), or a
        :class:`~hetopt.fleet.problem.FleetProblem` built by
        :func:`~hetopt.fleet.problem.build_fleet_problem` together with ``choices``.
    config
        Replay settings; ``config.arrivals.rate_per_s`` is the fleet's *total* rate (the sum
        of the tenants' rates replays the planned load), split between tenants by their share.
    choices
        Per tenant, the option of each operator (default: the outcome's plan).
    pool_counts, key_counts
        Light-pool devices per type and replicas per fleet LLM pool (default: the outcome's,
        else the fewest the plan needs, :func:`~hetopt.fleet.evaluate.evaluate_fleet`).
    progress
        Optional callback receiving short status lines.

    Returns
    -------
    FleetReplayResult

    Examples
    --------
    Two chat tenants sharing their LLM pools, ten minutes at a tenth of their rate:

    >>> from hetopt.fleet.plan import FleetRequest, plan_fleet
    >>> from hetopt.fleet.spec import fleet_from_dict
    >>> from hetopt.replay.arrivals import ArrivalSpec
    >>> fleet = fleet_from_dict({"tenants": [
    ...     {"name": "a", "workload": "chat_agent", "request_rate_per_s": 2.0},
    ...     {"name": "b", "workload": "chat_agent", "request_rate_per_s": 6.0}]})
    >>> out = plan_fleet(FleetRequest(fleet, baselines=()))
    >>> config = ReplayConfig(arrivals=ArrivalSpec(rate_per_s=0.8), duration_s=600.0)
    >>> t = replay_fleet(out, config).tenants.set_index("tenant")
    >>> bool((t["arrived"] == t["completed"] + t["dropped"] + t["in_flight_at_end"]).all())
    True
    """
    fp, choices, ev = _counts(plan, choices, pool_counts, key_counts)
    rates = np.array([p.request_rate_per_s for p in fp.tenants], dtype=float)
    shares = rates / rates.sum()
    merged = _merge(fp, choices, ev, shares, config.link_contention)
    check_failures(
        config.failures,
        devices_held(merged.pools, fp.devices),
        replaced=config.controller.enabled,
    )
    rng = np.random.default_rng(config.seed)
    arrivals = arrival_times(config.arrivals, config.duration_s, rng)
    sampler = TenantSampler(
        merged.samplers, shares, np.cumsum([0] + [p.n_ops for p in fp.tenants])[:-1].tolist()
    )
    sim = Simulation(
        config,
        fp.devices,
        merged.ops,
        merged.pools,
        merged.link_capacities,
        sampler,
        arrivals,
        rng,
        progress,
    )
    records = sim.run()
    if len(sampler.drawn) != len(records.requests):  # the pairing TenantSampler relies on
        raise RuntimeError(
            f"{len(sampler.drawn)} tenant draws for {len(records.requests)} requests"
        )
    served = Served(merged.pools, sim.pools, merged.link_names, sim.links, arrivals, sim.dynamic)
    no_bounds = dataclasses.replace(fp.tenants[0], sla=Sla(ttft_s=None, tbt_s=None, e2e_s=None))
    result = account(_fleet_plan(fp, choices, ev), no_bounds, config, merged.ops, served, records)
    requests = _tenant_flags(fp, result.requests, sampler.drawn)
    tenants = _tenant_table(fp, config, requests, rates, ev)
    summary = {k: v for k, v in result.summary.items() if not k.startswith("sla_")}
    measured = requests[
        (requests["arrival_s"] >= config.warmup_s) & (requests["arrival_s"] < config.duration_s)
    ]
    summary["sla_attainment"] = float(measured["meets_sla"].mean()) if len(measured) else math.nan
    summary["tenants"] = fp.n_tenants
    pools = result.pools.copy()
    names = [s.name for s in merged.pools] + merged.link_names
    pool_kind = dict(zip([s.name for s in merged.pools], merged.kind, strict=True))
    pool_users = {name: ";".join(u) for name, u in zip(names, merged.users, strict=True)}
    pools["kind"] = [pool_kind.get(name, "link") for name in pools["pool"]]
    pools["tenants"] = [pool_users.get(name, "") for name in pools["pool"]]
    return FleetReplayResult(
        tenants, pools, dataclasses.replace(result, requests=requests, summary=summary), summary
    )


def _tenant_flags(fp: FleetProblem, requests: pd.DataFrame, drawn: list[int]) -> pd.DataFrame:
    """The request table with each request's tenant and its flags against that tenant's SLA."""
    requests = requests.copy()
    requests.insert(1, "tenant", [fp.tenant_names[t] for t in drawn])
    tenant_of = np.asarray(drawn, dtype=int)
    for t, p in enumerate(fp.tenants):
        mine = tenant_of == t
        if mine.any():
            flags = sla_flags(requests[mine], p.sla)
            requests.loc[mine, list(flags.columns)] = flags.to_numpy()
    for col in ("meets_ttft", "meets_tbt", "meets_e2e", "meets_sla"):
        requests[col] = requests[col].astype(bool)
    return requests


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q)) if len(values) else math.nan


def _tenant_table(
    fp: FleetProblem,
    config: ReplayConfig,
    requests: pd.DataFrame,
    rates: np.ndarray,
    ev: FleetEvaluation,
) -> pd.DataFrame:
    """One row per tenant (:data:`TENANT_COLUMNS`)."""
    lo, hi = config.warmup_s, config.duration_s
    rows = []
    for t, (name, p) in enumerate(zip(fp.tenant_names, fp.tenants, strict=True)):
        mine = requests[requests["tenant"] == name]
        status = mine["status"].value_counts()
        measured = mine[(mine["arrival_s"] >= lo) & (mine["arrival_s"] < hi)]
        done = measured[measured["status"] == "completed"]
        e2e = done["e2e_s"].to_numpy(dtype=float)
        sla = sla_summary(measured, p.sla, lo, hi)
        rows.append(
            {
                "tenant": name,
                "rate_per_s": float(rates[t]),
                "rate_share": float(rates[t] / rates.sum()),
                "arrived": len(mine),
                "completed": int(status.get("completed", 0)),
                "dropped": int(status.get("dropped", 0)),
                "in_flight_at_end": int(status.get("in_flight", 0)),
                "measured": len(measured),
                "e2e_mean_s": float(e2e.mean()) if len(e2e) else math.nan,
                "e2e_p50_s": _percentile(e2e, 0.5),
                "e2e_p95_s": _percentile(e2e, 0.95),
                "e2e_p99_s": _percentile(e2e, 0.99),
                "planned_e2e_s": float(ev.tenant_e2e_s[t]),
                "path_predicted_p50_s": _percentile(done["predicted_s"].to_numpy(float), 0.5),
                "gap_p50": _percentile(done["gap"].to_numpy(float), 0.5),
                "sla_e2e_s": p.sla.e2e_s,
                "sla_attainment": sla["sla_attainment"],
            }
        )
    return pd.DataFrame(rows, columns=list(TENANT_COLUMNS))


def write_fleet_replay(result: FleetReplayResult, run_dir: Path) -> list[str]:
    """Write ``fleet_replay.csv`` (per tenant), ``fleet_replay_pools.csv`` (per pool) and
    ``fleet_replay.png`` (each tenant's end-to-end latency against its plan) into
    ``run_dir``; returns the file names written."""
    from hetopt.atomic import write_csv_atomic
    from hetopt.plotting import save_figure, subplots

    run_dir.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(run_dir / "fleet_replay.csv", result.tenants)
    write_csv_atomic(run_dir / "fleet_replay_pools.csv", result.pools)
    tenants = result.tenants
    req = result.requests
    warmup_s = float(result.summary.get("warmup_s") or 0.0)
    done = req[(req["status"] == "completed") & (req["arrival_s"] >= warmup_s)]
    fig, ax = subplots(figsize=(max(6.0, 0.9 * len(tenants) + 2.0), 5.0))
    data = [
        done.loc[done["tenant"] == name, "e2e_s"].to_numpy(dtype=float)
        for name in tenants["tenant"]
    ]
    pos = np.arange(1, len(tenants) + 1)
    shown = [k for k, d in enumerate(data) if len(d)]
    if shown:
        ax.boxplot(
            [data[k] for k in shown],
            positions=pos[shown],
            whis=(1, 99),
            showfliers=False,
            widths=0.5,
        )
    ax.scatter(pos, tenants["planned_e2e_s"], marker="_", s=400, color="r", label="planned")
    ax.scatter(
        pos, tenants["path_predicted_p50_s"], marker="x", color="k", label="planner, median path"
    )
    ax.set_xticks(pos, [str(n) for n in tenants["tenant"]], rotation=30, ha="right")
    levels = np.concatenate([*data, tenants["planned_e2e_s"].to_numpy(dtype=float)])
    levels = levels[np.isfinite(levels) & (levels > 0)]
    if len(levels) and levels.max() > 20 * levels.min():  # tenants of very different speeds
        ax.set_yscale("log")
    ax.set_ylabel("end-to-end latency (s)")
    ax.set_title(
        "Replayed end-to-end latency per tenant\n(box: p25-p75, whiskers: p1-p99"
        + (f"; after the {warmup_s:g} s warm-up)" if warmup_s else ")"),
        fontsize=10,
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    save_figure(fig, run_dir / "fleet_replay.png")
    return ["fleet_replay.csv", "fleet_replay_pools.csv", "fleet_replay.png"]
