"""The plan: which operator runs where, how many devices, what it costs (pipeline stage 7)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hetopt.costs.table import CostTable
from hetopt.costs.tco import DeviceTco
from hetopt.models.evaluate import Evaluation, held_devices
from hetopt.plan.queueing import queued_ttft, stage_waits
from hetopt.problem import SECONDS_PER_HOUR, PlacementProblem
from hetopt.solvers.base import SolveResult


@dataclass(frozen=True)
class Baseline:
    """The best plan when every operator must run on one device type.

    Attributes
    ----------
    device
        The device type.
    tco_usd_per_hour, cost_usd_per_request, e2e_latency_s
        Its cost and latency (nan when no plan exists).
    sla_satisfied
        Whether it meets the end-to-end SLA.
    note
        Why it is impossible or how it misses the SLA.
    """

    device: str
    tco_usd_per_hour: float
    cost_usd_per_request: float
    e2e_latency_s: float
    sla_satisfied: bool
    note: str = ""

    @classmethod
    def impossible(cls, device: str, note: str) -> Baseline:
        """No plan on ``device`` alone; ``note`` says why."""
        return cls(device, math.nan, math.nan, math.nan, False, note)


LLM_POOL_COLUMNS = (
    "pool",
    "device",
    "config",
    "members",
    "load_replicas",
    "replicas",
    "devices_per_replica",
    "devices",
)
"""Columns of :attr:`Plan.llm_pools`."""


@dataclass(frozen=True)
class Plan:
    """A solved, verified deployment plan.

    Attributes
    ----------
    workload
        Workload name.
    request_rate_per_s
        Requests per second the plan serves.
    choice, pool_counts
        Option per operator and pooled devices per type (what the verifier re-checks).
    placement
        One row per operator: operator, device, config, count (devices it uses: its dedicated
        replicas, or the size of the shared pool or LLM pool it runs in), latency_s, binding
        resource, llm_pool (its LLM pool's key, empty for other operators).
    devices
        One row per device type used: dedicated, pooled, total, $/h per device, $/h in all,
        capex/power/opex $/h, carbon.
    tco_usd_per_hour, cost_usd_per_request, cost_usd_per_million_tokens, carbon_kg_per_hour
        Totals.
    e2e_latency_s
        Worst end-to-end latency (loops at the SLA's iteration count).
    solve
        The solver's normalised result.
    violations
        What :func:`hetopt.plan.verify.verify_plan` found (empty: verified).
    baselines
        Homogeneous alternatives for comparison.
    cost_model
        Which cost model timed the plan: ``model`` (``calibrated`` or ``roofline``), the step
        model's version and the calibration table's version and path.
    llm_pools
        One row per LLM replica pool (:mod:`hetopt.costs.pools`): pool key, device, config,
        members (operators placed on it, ``;``-separated), load_replicas (their summed load, of
        the busiest capacity of an aggregated replica),
        replicas, devices_per_replica and devices. A pool with one member holds that
        operator's own replicas.
    """

    workload: str
    request_rate_per_s: float
    choice: tuple[int, ...]
    pool_counts: tuple[int, ...]
    placement: pd.DataFrame
    devices: pd.DataFrame
    tco_usd_per_hour: float
    cost_usd_per_request: float
    cost_usd_per_million_tokens: float
    carbon_kg_per_hour: float
    e2e_latency_s: float
    sla: dict[str, Any]
    solve: SolveResult
    violations: tuple[str, ...] = ()
    baselines: tuple[Baseline, ...] = field(default_factory=tuple)
    cost_model: dict[str, Any] = field(default_factory=dict)
    llm_pools: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=LLM_POOL_COLUMNS))

    @property
    def verified(self) -> bool:
        """True when the independent verifier found nothing wrong."""
        return not self.violations

    def benefit_vs(self, device: str) -> float:
        """TCO of the all-``device`` baseline divided by this plan's TCO (nan if none)."""
        for b in self.baselines:
            if b.device == device and b.sla_satisfied and self.tco_usd_per_hour > 0:
                return b.tco_usd_per_hour / self.tco_usd_per_hour
        return math.nan

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (the content of ``plan.json``)."""
        s = self.solve
        return {
            "workload": self.workload,
            "request_rate_per_s": self.request_rate_per_s,
            "placement": _records(self.placement),
            "devices": _records(self.devices),
            "llm_pools": _records(self.llm_pools),
            "tco_usd_per_hour": self.tco_usd_per_hour,
            "cost_usd_per_request": self.cost_usd_per_request,
            "cost_usd_per_million_tokens": _num(self.cost_usd_per_million_tokens),
            "carbon_kg_per_hour": self.carbon_kg_per_hour,
            "e2e_latency_s": self.e2e_latency_s,
            "sla": {k: _num(v) if isinstance(v, float) else v for k, v in self.sla.items()},
            "cost_model": self.cost_model,
            "solver": {
                "backend": s.backend,
                "status": str(s.status),
                "objective": _num(s.objective),
                "bound": _num(s.bound),
                "gap": _num(s.gap),
                "runtime_s": s.runtime_s,
                "proven_optimal": s.proven_optimal,
                "message": s.message,
                "resolution": s.resolution,
            },
            "verification": {"passed": self.verified, "violations": list(self.violations)},
            "baselines": [
                {
                    "device": b.device,
                    "tco_usd_per_hour": _num(b.tco_usd_per_hour),
                    "cost_usd_per_request": _num(b.cost_usd_per_request),
                    "e2e_latency_s": _num(b.e2e_latency_s),
                    "sla_satisfied": b.sla_satisfied,
                    "benefit_of_plan": _num(self.benefit_vs(b.device)),
                    "note": b.note,
                }
                for b in self.baselines
            ],
        }


def _num(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for rec in frame.to_dict(orient="records"):
        out.append({k: (_num(v) if isinstance(v, float) else v) for k, v in rec.items()})
    return out


def make_plan(
    problem: PlacementProblem,
    table: CostTable,
    result: SolveResult,
    ev: Evaluation,
    device_tco: dict[str, DeviceTco],
    tokens_per_request: float,
    violations: tuple[str, ...] = (),
    baselines: tuple[Baseline, ...] = (),
    cost_model: dict[str, Any] | None = None,
) -> Plan:
    """Assemble a :class:`Plan` from a solve and its independent evaluation."""
    assert result.choice is not None
    rows = []
    pools = ev.pool_counts
    held = held_devices(problem, result.choice, ev.key_counts)
    llm_pools = _llm_pool_table(problem, table, result.choice, ev, held)
    for i, o in enumerate(result.choice):
        j = int(problem.opt_device[o])
        row = table.frame.loc[problem.opt_row[o]]
        pooled = not bool(row["exclusive"]) and row["config"] != "profiled"
        rows.append(
            {
                "operator": problem.ops[i],
                "device": problem.devices[j],
                "config": problem.opt_config[o],
                "count": int(pools[j]) if pooled else int(held[i]),
                "shared_pool": pooled,
                "visits_per_request": float(problem.op_visits[i]),
                "latency_s": float(problem.opt_latency_s[o]),
                "step_s": float(row["step_s"]),
                "binding": row["binding"],
                "cost_model": row["cost_model"],
                "error_band": row["error_band"] or "",
                "llm_pool": _key_of(row) if bool(row["exclusive"]) else "",
            }
        )
    placement = pd.DataFrame(rows)
    dev_rows = []
    for j, name in enumerate(problem.devices):
        total = int(ev.devices_per_type[j])
        if total == 0:
            continue
        tco = device_tco.get(name)
        dev_rows.append(
            {
                "device": name,
                "dedicated": total - int(pools[j]),
                "pooled": int(pools[j]),
                "total": total,
                "usd_per_hour_each": float(problem.device_cost_usd_per_h[j]),
                "usd_per_hour": total * float(problem.device_cost_usd_per_h[j]),
                "capex_usd_per_hour": total * tco.capex_usd_per_h if tco else 0.0,
                "power_usd_per_hour": total * tco.power_usd_per_h if tco else 0.0,
                "opex_usd_per_hour": total * tco.opex_usd_per_h if tco else 0.0,
                "carbon_kg_per_hour": total * float(problem.device_carbon_kg_per_h[j]),
            }
        )
    devices = pd.DataFrame(
        dev_rows,
        columns=[
            "device",
            "dedicated",
            "pooled",
            "total",
            "usd_per_hour_each",
            "usd_per_hour",
            "capex_usd_per_hour",
            "power_usd_per_hour",
            "opex_usd_per_hour",
            "carbon_kg_per_hour",
        ],
    )
    per_request = ev.tco_usd_per_h / (problem.request_rate_per_s * SECONDS_PER_HOUR)
    per_mtok = per_request / tokens_per_request * 1e6 if tokens_per_request > 0 else math.nan
    sla = problem.sla
    # profiled stages have no per-token step; rows are in operator order
    modelled = (placement["config"] != "profiled").to_numpy(dtype=bool)
    kind = np.array(problem.op_kind)
    ttft = placement.loc[modelled & (kind == "prefill"), "step_s"]
    tbt = placement.loc[modelled & (kind == "decode"), "step_s"]
    e2e_ok = sla.e2e_s is None or ev.e2e_latency_s <= sla.e2e_s + 1e-6
    ttft_q50, ttft_q90 = queued_ttft(stage_waits(problem, table.frame, tuple(result.choice)))
    sla_dict = {
        "satisfied": bool(e2e_ok and not violations),
        "e2e_latency_s": ev.e2e_latency_s,
        "e2e_sla_s": sla.e2e_s,
        "e2e_excess_s": max(0.0, ev.e2e_latency_s - sla.e2e_s) if sla.e2e_s else 0.0,
        "hard": sla.hard,
        "loop_iterations": sla.loop_iterations,
        "ttft_sla_s": sla.ttft_s,
        "worst_ttft_s": float(ttft.max()) if len(ttft) else None,
        "tbt_sla_s": sla.tbt_s,
        "worst_tbt_s": float(tbt.max()) if len(tbt) else None,
        # TTFT with the prefill queue at the planned load (M/D/c, hetopt.plan.queueing): the
        # TTFT bound constrains the prefill step itself, as the paper does; this is what a
        # request sees on top, and what the replay measures.
        "ttft_queued_p50_s": ttft_q50,
        "ttft_queued_p90_s": ttft_q90,
    }
    return Plan(
        problem.name,
        problem.request_rate_per_s,
        tuple(result.choice),
        tuple(int(p) for p in pools),
        placement,
        devices,
        ev.tco_usd_per_h,
        per_request,
        per_mtok,
        ev.carbon_kg_per_h,
        ev.e2e_latency_s,
        sla_dict,
        result,
        violations,
        baselines,
        dict(cost_model or {}),
        llm_pools,
    )


def _key_of(row: pd.Series) -> str:
    key = row.get("pool_key", "")
    return key if isinstance(key, str) else ""


def _llm_pool_table(
    problem: PlacementProblem,
    table: CostTable,
    choice: tuple[int, ...],
    ev: Evaluation,
    held: np.ndarray,
) -> pd.DataFrame:
    """One row per LLM pool key among the placed options (shared or one operator's own)."""
    pools: dict[str, dict[str, Any]] = {}
    for i, o in enumerate(choice):
        row = table.frame.loc[problem.opt_row[o]]
        key = _key_of(row)
        if not key or not bool(row["exclusive"]):
            continue
        dpr = int(row["devices_per_replica"])
        load = float(problem.opt_key_load[o])  # type: ignore[index]
        entry = pools.setdefault(
            key,
            {
                "pool": key,
                "device": problem.devices[int(problem.opt_device[o])],
                "config": problem.opt_config[o],
                "members": [],
                "by_dim": {},
                "replicas": int(held[i]) // dpr,
                "devices_per_replica": dpr,
                "devices": int(held[i]),
            },
        )
        entry["members"].append(problem.ops[i])
        dim = int(problem.opt_key_dim[o])  # type: ignore[index]
        entry["by_dim"][dim] = entry["by_dim"].get(dim, 0.0) + load
    records = [
        {
            **{k: v for k, v in e.items() if k != "by_dim"},
            "members": ";".join(e["members"]),
            "load_replicas": max(e["by_dim"].values()),
        }
        for e in pools.values()
    ]
    return pd.DataFrame(records, columns=list(LLM_POOL_COLUMNS))
