"""Tables and a figure of a solved fleet (what ``hetopt fleet`` writes)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hetopt.fleet.evaluate import Choices, evaluate_fleet
from hetopt.fleet.heuristics import HeuristicResult
from hetopt.fleet.problem import FleetProblem
from hetopt.fleet.result import FleetResult
from hetopt.solvers.base import solver_verdict


def placement_table(fp: FleetProblem, choices: Choices) -> pd.DataFrame:
    """One row per (tenant, operator): device, configuration, latency, dedicated devices and
    the shared LLM pool it runs on (empty when it has its own replicas or is pooled)."""
    rows = []
    for name, p, choice, fkey in zip(
        fp.tenant_names, fp.tenants, choices, fp.opt_fleet_key, strict=True
    ):
        for i, o in enumerate(choice):
            rows.append(
                {
                    "tenant": name,
                    "op": p.ops[i],
                    "device": fp.devices[p.opt_device[o]],
                    "config": p.opt_config[o],
                    "latency_s": float(p.opt_latency_s[o]),
                    "dedicated_devices": int(p.opt_dedicated[o]),
                    "pooled": bool(p.opt_pooled[o]),
                    "pool_load_devices": float(p.opt_pool_load[o]),
                    "llm_pool": fp.key_names[fkey[o]] if fkey[o] >= 0 else "",
                    "llm_pool_load_replicas": float(p.opt_key_load[o]) if fkey[o] >= 0 else 0.0,  # type: ignore[index]
                }
            )
    return pd.DataFrame(rows)


LLM_POOL_COLUMNS = (
    "llm_pool",
    "device",
    "devices_per_replica",
    "replicas",
    "load_replicas",
    "tenants",
    "members",
    "usd_per_h",
)


def llm_pool_table(fp: FleetProblem, choices: Choices) -> pd.DataFrame:
    """One row per shared LLM pool in use: its replicas, the load of its busiest capacity, the
    tenants and operators on it (``tenant/op``, ``;``-separated) and its hourly cost."""
    ev = evaluate_fleet(fp, choices)
    members: dict[int, list[str]] = {}
    for name, p, choice, fkey in zip(
        fp.tenant_names, fp.tenants, choices, fp.opt_fleet_key, strict=True
    ):
        for i, o in enumerate(choice):
            if fkey[o] >= 0:
                members.setdefault(int(fkey[o]), []).append(f"{name}/{p.ops[i]}")
    usd = fp.key_usd_per_h()
    rows = [
        {
            "llm_pool": fp.key_names[k],
            "device": fp.devices[fp.key_device[k]],
            "devices_per_replica": int(fp.key_devices_per_replica[k]),
            "replicas": int(ev.key_counts[k]),
            "load_replicas": round(float(ev.key_load[k].max()), 4),
            "tenants": len({m.split("/", 1)[0] for m in names}),
            "members": ";".join(names),
            "usd_per_h": round(float(usd[k] * ev.key_counts[k]), 4),
        }
        for k, names in sorted(members.items())
    ]
    return pd.DataFrame(rows, columns=list(LLM_POOL_COLUMNS))


def device_table(fp: FleetProblem, choices: Choices) -> pd.DataFrame:
    """Devices per type: dedicated replicas, shared pool, total, inventory, $/h."""
    ev = evaluate_fleet(fp, choices)
    return pd.DataFrame(
        {
            "device": fp.devices,
            "dedicated": ev.dedicated_per_type,
            "llm_pools": ev.key_devices_per_type,
            "pool": ev.pool_counts,
            "pool_load": np.round(ev.pool_load, 4),
            "total": ev.devices_per_type,
            "inventory": [None if not math.isfinite(v) else int(v) for v in fp.device_inventory],
            "usd_per_h": np.round(ev.devices_per_type * fp.device_cost_usd_per_h, 4),
        }
    )


def tenant_table(fp: FleetProblem, choices: Choices) -> pd.DataFrame:
    """Per tenant: rate, SLA, latency and attributed cost."""
    ev = evaluate_fleet(fp, choices)
    return pd.DataFrame(
        {
            "tenant": fp.tenant_names,
            "request_rate_per_s": [p.request_rate_per_s for p in fp.tenants],
            "e2e_sla_s": [p.sla.e2e_s for p in fp.tenants],
            "e2e_latency_s": np.round(ev.tenant_e2e_s, 6),
            "usd_per_h": np.round(ev.tenant_usd_per_h, 4),
            "usd_per_1k_requests": np.round(
                ev.tenant_usd_per_h / np.array([p.request_rate_per_s * 3.6 for p in fp.tenants]), 4
            ),
        }
    )


def summary(
    fp: FleetProblem,
    result: FleetResult,
    baselines: Sequence[HeuristicResult] = (),
    violations: Sequence[str] = (),
) -> dict[str, Any]:
    """The JSON summary of a fleet plan and its baselines; ``violations`` are what the
    independent check (:func:`hetopt.fleet.verify.verify_fleet`) found."""
    ev = result.evaluation

    def num(v: float) -> float | None:
        return float(v) if math.isfinite(v) else None

    return {
        "fleet": fp.name,
        "tenants": fp.n_tenants,
        "operators": fp.n_ops,
        "options": fp.n_options,
        "device_types": fp.n_devices,
        "backend": result.backend,
        "status": str(result.status),
        "proven": solver_verdict(result.status, result.gap),
        "tco_usd_per_h": None if ev is None else ev.tco_usd_per_h,
        "objective_usd_per_h": num(result.objective_usd_per_h),
        "bound_usd_per_h": num(result.bound_usd_per_h),
        "gap": num(result.gap),
        "carbon_kg_per_h": None if ev is None else ev.carbon_kg_per_h,
        "llm_pools": None if ev is None else int((ev.key_counts > 0).sum()),
        "llm_pool_replicas": None if ev is None else int(ev.key_counts.sum()),
        "first_feasible_s": num(result.first_feasible_s),
        "build_s": result.build_s,
        "solve_s": result.solve_s,
        "verified": result.verified and not violations,
        "violations": [*([] if ev is None else ev.violations), *violations],
        "message": result.message,
        "baselines": [
            {
                "method": b.method,
                "objective_usd_per_h": num(b.objective_usd_per_h),
                "gap_to_plan": num(b.objective_usd_per_h / result.objective_usd_per_h - 1)
                if result.has_solution
                else None,
                "runtime_s": b.runtime_s,
                "detail": b.detail,
            }
            for b in baselines
        ],
    }


def plot_fleet(
    fp: FleetProblem, result: FleetResult, baselines: Sequence[HeuristicResult], path: Path
) -> Path:
    """Two panels: devices per type (dedicated, pool, inventory) and plan vs baselines."""
    from hetopt.plotting import save_figure, subplots

    assert result.choices is not None
    dev = device_table(fp, result.choices)
    dev = dev[(dev["total"] > 0) | dev["inventory"].notna()]
    fig, (ax1, ax2) = subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [2, 1]})
    x = np.arange(len(dev))
    ax1.bar(x, dev["dedicated"], label="dedicated replicas", color="#4C72B0")
    if dev["llm_pools"].any():  # no legend entry for a fleet without shared LLM pools
        ax1.bar(
            x,
            dev["llm_pools"],
            bottom=dev["dedicated"],
            label="shared LLM pools",
            color="#55A868",
        )
    ax1.bar(
        x,
        dev["pool"],
        bottom=dev["dedicated"] + dev["llm_pools"],
        label="shared pool",
        color="#DD8452",
    )
    inv = dev["inventory"].to_numpy(dtype=float)
    if np.isfinite(inv).any():  # no legend entry for an inventory nobody set
        ax1.scatter(
            x[np.isfinite(inv)],
            inv[np.isfinite(inv)],
            marker="_",
            s=400,
            color="k",
            label="inventory",
            zorder=3,
        )
    top = max(float(dev["total"].max()), float(np.nanmax(inv)) if np.isfinite(inv).any() else 0.0)
    ax1.set_ylim(0, top * 1.15 + 1)  # room above the tallest bar and its inventory mark
    ax1.set_xticks(x, dev["device"], rotation=45, ha="right")
    ax1.set_ylabel("devices")
    ax1.set_title(f"{fp.name}: {fp.n_tenants} tenants, {fp.n_ops} operators")
    ax1.legend()
    names = [f"plan\n({result.backend})"] + [b.method for b in baselines]
    values = [result.objective_usd_per_h] + [b.objective_usd_per_h for b in baselines]
    bars = ax2.bar(
        range(len(values)),
        [v if math.isfinite(v) else 0 for v in values],
        color=["#55A868"] + ["#8172B2"] * len(baselines),
    )
    for bar, v in zip(bars, values, strict=True):
        label = (
            "none"
            if not math.isfinite(v)
            else (f"{v:.1f}" if bar is bars[0] else f"+{v / values[0] - 1:.1%}")
        )
        ax2.annotate(
            label,
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    if math.isfinite(result.bound_usd_per_h):
        ax2.axhline(
            result.bound_usd_per_h,
            color="k",
            ls="--",
            lw=1,
            label=f"proven bound (gap {result.gap:.2%})",
        )
        ax2.legend(loc="upper left", fontsize=8)
    # Zoom on the values (a 1 % difference must be visible) with room for the labels; the
    # axis does not start at 0, which the broken-axis note says.
    finite = [v for v in values + [result.bound_usd_per_h] if math.isfinite(v)]
    if finite:
        lo, hi = min(finite), max(finite)
        pad = max(hi - lo, 0.02 * hi)
        ax2.set_ylim(max(0.0, lo - pad), hi + pad * 0.6)
        if lo - pad > 0:
            ax2.annotate(
                "axis does not start at 0",
                (0.99, 0.01),
                xycoords="axes fraction",
                ha="right",
                va="bottom",
                fontsize=7,
                color="grey",
            )
    ax2.set_xticks(range(len(values)), names, fontsize=8)
    ax2.set_ylabel("fleet TCO ($/h)")
    save_figure(fig, path, dpi=120)  # atomic, like every figure
    return path
