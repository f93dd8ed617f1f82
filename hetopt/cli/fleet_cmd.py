"""``hetopt fleet``: plan many agents on shared device pools (the ``fleet`` config group)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from hetopt.atomic import write_csv_atomic, write_json_atomic, write_text_atomic
from hetopt.cli.outputs import RunDir
from hetopt.errors import InputError, SolverLimitError


def fleet_request(cfg: Mapping[str, Any]) -> Any:
    """Build the :class:`~hetopt.fleet.plan.FleetRequest` of a composed config."""
    from dataclasses import replace

    from hetopt.cli.config import settings_from_config
    from hetopt.fleet.generator import synthetic_devices, synthetic_fleet
    from hetopt.fleet.plan import FleetRequest
    from hetopt.fleet.spec import fleet_from_dict

    # The fleet's SLA defaults come from the sla group alone, not from the default workload.
    hardware, base_sla, costs, tco, solver = settings_from_config(cfg)
    # A fleet_file was read while composing (hetopt.cli.compose), fleet.* keys set on top.
    data = dict(cfg.get("fleet") or {})
    source = (
        str(cfg["fleet_file"])
        if cfg.get("fleet_file")
        else (f"fleet '{data.get('name') or 'fleet'}'")
    )
    synthetic = data.get("synthetic")
    fraction = None
    limited = 3
    if synthetic:
        fleet = synthetic_fleet(int(synthetic["n_ops"]), int(synthetic["seed"]))
        names, rows = synthetic_devices(int(synthetic["n_device_types"]), int(synthetic["seed"]))
        hardware = replace(hardware, devices=names, extra_rows=tuple(hardware.extra_rows) + rows)
        fraction = synthetic.get("inventory_fraction")
        limited = int(synthetic.get("limited_types") or 3)
    elif data.get("tenants"):
        fleet = fleet_from_dict(data, source, base_sla=base_sla)
    else:
        raise InputError(
            "hetopt fleet needs a fleet: `fleet=enterprise`, `fleet=synthetic`, or "
            "`fleet_file=my_fleet.yaml` (a mapping with a 'tenants:' list; see "
            "configs/fleet/enterprise.yaml)."
        )
    return FleetRequest(
        fleet=fleet,
        hardware=hardware,
        costs=costs,
        tco=tco,
        solver=solver,
        method=data.get("method") or "auto",
        gap_rel=float(data.get("gap_rel", 0.005)),
        baselines=tuple(data.get("baselines") or ()),
        inventory_fraction=fraction,
        limited_types=limited,
    )


def _print_llm_pools(pools: Any, console: Console, top: int = 10) -> None:
    """The shared LLM pools that serve more than one operator, costliest first."""
    shared = pools[pools["members"].str.contains(";")].sort_values("usd_per_h", ascending=False)
    if shared.empty:
        return
    t = Table(title=f"Shared LLM pools ({len(shared)}; costliest {min(top, len(shared))})")
    for c in ("pool", "replicas", "load", "tenants", "operators", "$/h"):
        t.add_column(c, justify="left" if c == "pool" else "right")
    for row in shared.head(top).itertuples():
        t.add_row(
            row.llm_pool,
            str(row.replicas),
            f"{row.load_replicas:.2f}",
            str(row.tenants),
            str(row.members.count(";") + 1),
            f"{row.usd_per_h:.2f}",
        )
    console.print(t)


def _fleet_replay(cfg: Mapping[str, Any], outcome: Any, run: RunDir, console: Console) -> None:
    """``fleet.replay=true``: replay every tenant's traffic through the plan, write
    fleet_replay.csv, fleet_replay_pools.csv and fleet_replay.png, print one row per tenant."""
    from hetopt.cli.config import replay_config_from
    from hetopt.cli.render import titled_table
    from hetopt.replay.fleet import replay_fleet, write_fleet_replay

    if (cfg.get("replay") or {}).get("plan_dir"):
        raise InputError(
            "replay.plan_dir names a saved single-agent plan, which hetopt fleet does not "
            "read: fleet.replay=true replays the fleet plan just made. Remove replay.plan_dir."
        )
    fp = outcome.problem
    total = sum(p.request_rate_per_s for p in fp.tenants)
    config = replay_config_from(cfg, total)
    with console.status("replaying the fleet...") as status:
        result = replay_fleet(outcome, config, progress=lambda m: status.update(m + " ..."))
    written = write_fleet_replay(result, run.out)
    s = result.summary
    t = titled_table(
        f"Fleet replay: {config.arrivals.kind}, {config.arrivals.rate_per_s:g} req/s in all, "
        f"{config.duration_s:g} s (end-to-end after the {config.warmup_s:g} s warm-up)",
        (
            "tenant",
            "share",
            "arrived",
            "done",
            "dropped",
            "in flight",
            "p50",
            "p95",
            "p99",
            "planned",
            "SLA met",
        ),
        left=("tenant",),
        no_wrap=("tenant",),
    )
    for r in result.tenants.itertuples():
        t.add_row(
            str(r.tenant),
            f"{r.rate_share:.1%}",
            f"{r.arrived:,}",
            f"{r.completed:,}",
            f"{r.dropped:,}",
            f"{r.in_flight_at_end:,}",
            *(
                f"{v:.3f} s" if math.isfinite(v) else "-"
                for v in (r.e2e_p50_s, r.e2e_p95_s, r.e2e_p99_s, r.planned_e2e_s)
            ),
            "-" if not math.isfinite(r.sla_attainment) else f"{r.sla_attainment:.1%}",
        )
    console.print(t)
    busy = result.pools.sort_values("mean_utilisation", ascending=False).head(1)
    console.print(
        f"Requests: {s['arrived']:,} arrived = {s['completed']:,} completed + "
        f"{s['dropped']:,} dropped + {s['in_flight_at_end']:,} in flight at the end; "
        + (
            f"busiest pool {busy['pool'].iloc[0]} at {busy['mean_utilisation'].iloc[0]:.1%}; "
            if len(busy)
            else ""
        )
        + f"{len(s['overloaded_pools'])} overloaded. Wrote {', '.join(written)} to {run.path}"
    )


def cmd_fleet(cfg: dict[str, Any], run: RunDir, console: Console) -> int:
    """Run ``hetopt fleet [overrides]`` into the run directory ``run``."""
    from hetopt.fleet.plan import plan_fleet
    from hetopt.fleet.report import (
        device_table,
        llm_pool_table,
        placement_table,
        plot_fleet,
        summary,
        tenant_table,
    )
    from hetopt.solvers.base import SolveProgress, bound_text, solver_verdict

    run_dir, out = run.path, run.out
    request = fleet_request(cfg)
    with console.status("planning the fleet...") as status:

        def solving(p: SolveProgress) -> None:
            status.update(
                f"{p.backend}: {p.elapsed_s:.1f} s, plan {p.incumbent:.2f} $/h, "
                f"{bound_text(p.bound, p.gap, '', '.2f')} ..."
            )

        outcome = plan_fleet(
            request, progress=lambda m: status.update(m + " ..."), on_solve_progress=solving
        )
    fp, result = outcome.problem, outcome.result
    assert result.choices is not None
    info = summary(fp, result, outcome.baselines, outcome.violations)
    write_text_atomic(out / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
    write_json_atomic(out / "fleet_plan.json", info)
    write_csv_atomic(out / "placement.csv", placement_table(fp, result.choices))
    devices = device_table(fp, result.choices)
    write_csv_atomic(out / "devices.csv", devices)
    write_csv_atomic(out / "tenants.csv", tenant_table(fp, result.choices))
    pools = llm_pool_table(fp, result.choices)
    write_csv_atomic(out / "llm_pools.csv", pools)
    plot_fleet(fp, result, outcome.baselines, out / "fleet.png")

    t = Table(
        title=f"Fleet {fp.name}: {fp.n_tenants} tenants, {fp.n_ops} operators, "
        f"{fp.n_devices} device types"
    )
    for c in ("device", "dedicated", "LLM pools", "pool", "total", "inventory", "$/h"):
        t.add_column(c, justify="left" if c == "device" else "right")
    for row in devices[devices["total"] > 0].itertuples():
        t.add_row(
            row.device,
            str(row.dedicated),
            str(row.llm_pools),
            str(row.pool),
            str(row.total),
            "-"
            if row.inventory is None or row.inventory != row.inventory
            else str(int(row.inventory)),
            f"{row.usd_per_h:.2f}",
        )
    console.print(t)
    _print_llm_pools(pools, console)
    verdict = solver_verdict(result.status, result.gap)
    if str(result.status) != "optimal":
        verdict = f"[bold yellow]{verdict}[/]"
    first_s = f"{result.first_feasible_s:.2f} s" if math.isfinite(result.first_feasible_s) else "-"
    console.print(
        f"TCO {info['tco_usd_per_h']:.3f} $/h, "
        f"{bound_text(result.bound_usd_per_h, result.gap, ' $/h', '.3f')} "
        f"({result.backend}: {verdict}); first feasible plan after {first_s}, "
        f"build {result.build_s:.1f} s, solve {result.solve_s:.1f} s"
    )
    if result.message:
        console.print(f"  solver: {result.message}")
    for b in outcome.baselines:
        if math.isfinite(b.objective_usd_per_h):
            console.print(
                f"  baseline {b.method:12s} {b.objective_usd_per_h:10.3f} $/h "
                f"(+{b.objective_usd_per_h / result.objective_usd_per_h - 1:.2%}) "
                f"{b.detail}"
            )
        else:
            console.print(f"  baseline {b.method:12s}       none  {b.detail}")
    console.print(
        f"Wrote {run_dir / 'fleet_plan.json'} (and placement.csv, devices.csv, "
        f"tenants.csv, llm_pools.csv, fleet.png, config.yaml)"
    )
    replay = (cfg.get("fleet") or {}).get("replay", False)
    if not isinstance(replay, bool):
        raise InputError(f"fleet.replay must be true or false, got {replay!r}.")
    if replay:
        _fleet_replay(cfg, outcome, run, console)
    if not outcome.verified:
        console.print(
            "[red]The fleet plan failed independent verification; see fleet_plan.json.[/]"
        )
        return 1
    if str(result.status) != "optimal":
        within = (
            f"a plan within {result.gap:.2%} of the proven bound, above fleet.gap_rel="
            f"{request.gap_rel:g}"
            if math.isfinite(result.gap)
            else "a plan but no proven bound, so its distance from the optimum is unknown"
        )
        raise SolverLimitError(
            f"The fleet solve stopped at solver.time_limit_s={request.solver.time_limit_s:g} "
            f"with {within}. The plan was still written to {run_dir / 'fleet_plan.json'}. "
            f"Raise solver.time_limit_s or fleet.gap_rel to accept it."
        )
    return 0
