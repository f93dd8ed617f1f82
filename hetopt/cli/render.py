"""Rich rendering of a plan for the terminal."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from hetopt.plan.plan import Plan
from hetopt.solvers.base import bound_text, solver_verdict


def _f(value: float | None, fmt: str = ".4g") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, fmt)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e3:,.1f} ms"


def _model_cell(row: dict[str, Any]) -> str:
    """The cost model of one placed operator: ``calibrated x1.03``, ``uncalibrated``, ..."""
    model = str(row.get("cost_model") or "")
    if model == "calibrated" and row.get("error_band"):
        return f"calibrated {str(row['error_band']).split(' ')[0]}"
    return model


def titled_table(
    title: str, columns: Sequence[str], left: Collection[str], no_wrap: Collection[str] = ()
) -> Table:
    """A table titled at its left, with its columns added.

    Parameters
    ----------
    title
        The table's title.
    columns
        Column headers, in order.
    left
        Headers of the left-justified (text) columns; the others are right-justified
        (numbers).
    no_wrap
        Headers of the columns whose cells never wrap.

    Returns
    -------
    rich.table.Table
        The table, without rows.

    Examples
    --------
    >>> t = titled_table("Devices", ["device", "count"], left=["device"])
    >>> [c.justify for c in t.columns], t.title_justify
    (['left', 'right'], 'left')
    """
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, justify="left" if col in left else "right", no_wrap=col in no_wrap)
    return table


def _render_shared_llm_pools(plan: Plan, console: Console) -> None:
    """The LLM pools shared by two or more operators (nothing when none is)."""
    shared = [r for r in plan.llm_pools.to_dict(orient="records") if ";" in str(r["members"])]
    if not shared:
        return
    columns = ("pool", "members", "load", "replicas", "devices")
    t = titled_table(
        "Shared LLM pools (replicas sized by the members' summed load)",
        columns,
        left=("pool", "members"),
    )
    for r in shared:
        t.add_row(
            str(r["pool"]),
            str(r["members"]).replace(";", ", "),
            f"{r['load_replicas']:.3f}",
            str(r["replicas"]),
            str(r["devices"]),
        )
    console.print(t)


def render_plan(plan: Plan, console: Console) -> None:
    """Print the placement, devices, TCO, SLA check, solver and baselines."""
    s = plan.solve
    status = s.status.value.upper()
    colour = "green" if s.proven_optimal else "yellow"
    console.rule(f"[bold]hetopt plan: {plan.workload}[/] at {plan.request_rate_per_s:g} req/s")

    t = titled_table(
        "Placement (operator -> device)",
        ("operator", "device", "config", "devices", "latency", "step", "binds", "model"),
        left=("operator", "device", "config", "binds", "model"),
        no_wrap=("operator",),
    )
    for r in plan.placement.to_dict(orient="records"):
        count = f"pool of {r['count']}" if r["shared_pool"] else str(r["count"])
        t.add_row(
            r["operator"],
            r["device"],
            r["config"],
            count,
            _ms(r["latency_s"]),
            _ms(r["step_s"]),
            str(r["binding"]),
            _model_cell(r),
        )
    console.print(t)
    uncalibrated = sorted(
        {
            r["device"]
            for r in plan.placement.to_dict(orient="records")
            if r.get("cost_model") == "uncalibrated"
        }
    )
    info = plan.cost_model
    if info:
        line = f"Cost model: {info.get('model')} ({info.get('step_model_version')}"
        if info.get("calibration_table"):
            line += f", calibration table {info['calibration_table']}"
        console.print(line + ")")
    if uncalibrated:
        console.print(
            f"[yellow]Uncalibrated: {', '.join(uncalibrated)}[/] (no measured data "
            f"at this precision; LLM phases use the median coefficients of the "
            f"calibrated GPUs, error unknown; see `hetopt catalog`)"
        )

    columns = (
        "device",
        "dedicated",
        "pooled",
        "total",
        "$/h each",
        "$/h",
        "capex $/h",
        "power $/h",
        "opex $/h",
        "kgCO2/h",
    )
    d = titled_table("Devices and TCO", columns, left=("device",), no_wrap=columns)
    for r in plan.devices.to_dict(orient="records"):
        d.add_row(
            r["device"],
            str(r["dedicated"]),
            str(r["pooled"]),
            str(r["total"]),
            f"{r['usd_per_hour_each']:.3f}",
            f"{r['usd_per_hour']:.2f}",
            f"{r['capex_usd_per_hour']:.2f}",
            f"{r['power_usd_per_hour']:.2f}",
            f"{r['opex_usd_per_hour']:.2f}",
            f"{r['carbon_kg_per_hour']:.2f}",
        )
    _render_shared_llm_pools(plan, console)
    if len(plan.devices):
        console.print(d)
    else:
        console.print("No device pools: every operator's cost comes from the workload's profile.")

    console.print(
        f"TCO [bold]{plan.tco_usd_per_hour:,.4g} $/h[/]  |  "
        f"[bold]{plan.cost_usd_per_request:.4g} $/request[/]  |  "
        f"{_f(plan.cost_usd_per_million_tokens, ',.4g')} $/M tokens  |  "
        f"{plan.carbon_kg_per_hour:,.3g} kgCO2/h"
    )
    sla = plan.sla
    ok = "[green]met[/]" if sla["satisfied"] else "[red]NOT met[/]"
    console.print(
        f"SLA {ok}: end-to-end {_ms(sla['e2e_latency_s'])} (bound "
        f"{_ms(sla['e2e_sla_s']) if sla['e2e_sla_s'] else 'none'}, loops at "
        f"{sla['loop_iterations']}); worst TTFT {_ms(sla['worst_ttft_s'])} (bound "
        f"{_ms(sla['ttft_sla_s'])}); worst TBT {_ms(sla['worst_tbt_s'])} (bound "
        f"{_ms(sla['tbt_sla_s'])})"
    )
    if sla.get("ttft_queued_p90_s") is not None:
        q90 = sla["ttft_queued_p90_s"]
        over = sla.get("ttft_sla_s") and q90 > sla["ttft_sla_s"]
        console.print(
            f"TTFT with queueing at the planned load: p50 {_ms(sla['ttft_queued_p50_s'])}, "
            f"p90 {_ms(q90)}"
            + (
                " [yellow](p90 above the TTFT bound, which constrains the "
                "prefill step; lower costs.max_utilization for headroom)[/]"
                if over
                else ""
            )
        )
    known = math.isfinite(s.bound) and math.isfinite(s.gap)
    # A gap below 1e-12 is rounding in the objective's last digits, not a distance to the optimum.
    gap = "< 1e-12" if known and abs(s.gap) < 1e-12 else _f(s.gap, ".2e")
    bound = f"bound {_f(s.bound, ',.6g')} gap {gap}" if known else bound_text(s.bound, s.gap)
    verdict = solver_verdict(s.status, s.gap)
    console.print(
        f"Solver [{colour}]{s.backend}: {status}[/] objective {_f(s.objective, ',.6g')} "
        f"{bound} in {s.runtime_s:.2f} s"
        + (f" ({verdict})" if s.proven_optimal and verdict != "proven optimal" else "")
        + (
            ""
            if s.proven_optimal
            else "  [yellow](the best plan found when the solver stopped, not proven optimal)[/]"
        )
    )
    verdict = (
        "[green]passed[/]"
        if plan.verified
        else "[red]FAILED: " + "; ".join(plan.violations) + "[/]"
    )
    console.print(f"Independent verification {verdict}")
    if plan.baselines:
        b = titled_table(
            "Homogeneous baselines",
            ("all on", "$/h", "$/request", "end-to-end", "SLA", "plan's benefit"),
            left=("all on",),
        )
        for base in plan.baselines:
            benefit = plan.benefit_vs(base.device)
            b.add_row(
                base.device,
                _f(base.tco_usd_per_hour, ",.4g"),
                _f(base.cost_usd_per_request, ".4g"),
                _ms(base.e2e_latency_s) if math.isfinite(base.e2e_latency_s) else "-",
                "met" if base.sla_satisfied else (base.note or "not met"),
                f"{benefit:.2f}x" if math.isfinite(benefit) else "-",
            )
        console.print(b)
