"""``hetopt`` entry point.

``hetopt plan [overrides...]`` composes the Hydra config tree in ``configs/`` with the given
overrides (``workload=rag_agent solver=cpsat sla.e2e_s=15``), runs the planning pipeline, prints
the plan and writes ``plan.json``, ``placement.csv``, ``devices.csv``, ``cost_table.csv`` and the
resolved ``config.yaml`` into the run directory. User errors end with one paragraph and exit
status 2; what was computed before the error is still written.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from hetopt.cli.compose import compose_config, request_from_config_checked
from hetopt.errors import HetoptUserError, InputError, SolverLimitError

__all__ = ["compose_config", "main", "request_from_config_checked"]

USAGE = """usage: hetopt <command> [overrides...]

commands:
  plan      plan a deployment (Hydra overrides: workload=, hardware=, sla=, solver=, tco=, ...)
  sweep     plan every point of a grid in parallel (= plan -m): comma lists, range(...), or a
            what-if study whatif=<name>; results.csv per sweep, resumable with hydra.sweep.dir=
  aggregate merge a sweep directory's point records into results.csv (and the study figure)
  fleet     plan many agents (tenants) on shared device pools within an inventory:
            fleet=enterprise (default), fleet=synthetic, or fleet_file=my_fleet.yaml
  catalog   show the hardware catalog with its hourly TCO
  list      show the shipped workloads and config options
  replay    plan, then replay request traffic through the plan (SimPy); or replay a saved
            plan with replay.plan_dir=outputs/plan/<run>
  compile   plan, then run the MLIR stage: agent dialects, decomposition passes, per-device
            IREE artefacts, CPU execution and calibration (mlir.plan_dir= for a saved plan)
  reproduce reproduce the paper: fig4 fig8 fig9 table3 kv_table serving pareto, or all
            (hetopt reproduce all [--out DIR]); fidelity: the cost model against measured data
  calibrate fit the cost model to aiconfigurator's measured database (pip install -e
            '.[calibration]') or to measurements=my.csv; writes calibration.csv (ship=true
            replaces the shipped table)

examples:
  hetopt plan
  hetopt plan workload=worked_example solver=cpsat
  hetopt plan workload=rag_agent hardware=paper_table5 sla.e2e_s=5 workload.request_rate_per_s=10
  hetopt sweep sla.e2e_s=12,13,14 solver=highs,cpsat      # -> outputs/sweep/<name>-<time>/results.csv
  hetopt sweep whatif=electricity                         # a shipped what-if study (configs/whatif/)
  hetopt sweep whatif=carbon hydra/launcher=ray           # the same on Ray (pip install 'hetopt[dist]')
  hetopt fleet +hardware.inventory.B200=8               # tenants of configs/fleet/enterprise.yaml
  hetopt fleet fleet=synthetic fleet.synthetic.n_ops=2000 fleet.synthetic.n_device_types=20
  hetopt plan workload_file=my_agent.mlir                   # an agent graph written in MLIR
  hetopt compile mlir.targets.H100=cuda:sm_80
"""


def _run_dir(cfg: dict[str, Any], kind: str = "plan") -> Path:
    if cfg.get("run_dir"):
        return Path(cfg["run_dir"])
    stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    return Path("outputs") / kind / stamp


def cmd_plan(overrides: list[str], console: Console) -> int:
    """Run ``hetopt plan``."""
    import yaml

    from hetopt.cli.config import request_from_config
    from hetopt.cli.outputs import write_outputs
    from hetopt.cli.render import render_plan
    from hetopt.pipeline import plan_agent
    from hetopt.solvers.base import SolveProgress

    cfg = compose_config(overrides)
    run_dir = _run_dir(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    request = request_from_config(cfg)
    with console.status("planning...") as status:
        def solving(p: SolveProgress) -> None:
            bound = f"{p.bound:.4f}" if math.isfinite(p.bound) else "-"
            gap = f"{p.gap:.2%}" if math.isfinite(p.gap) else "-"
            status.update(f"solving with {p.backend}: {p.elapsed_s:.1f} s, incumbent "
                          f"{p.incumbent:.4f} $/h, bound {bound}, gap {gap} ...")

        outcome = plan_agent(request, progress=lambda msg: status.update(msg + " ..."),
                             on_solve_progress=solving)
    plan = outcome.plan
    write_outputs(outcome, cfg, run_dir)
    render_plan(plan, console)
    console.print(f"Wrote {run_dir / 'plan.json'} (and plan.png, placement.csv, devices.csv, "
                  f"cost_table.csv, config.yaml)")
    if not plan.verified:
        console.print("[red]The plan failed independent verification; see plan.json.[/]")
        return 1
    if not plan.solve.proven_optimal:
        raise SolverLimitError(
            f"Solver {plan.solve.backend} stopped at solver.time_limit_s="
            f"{request.solver.time_limit_s:g} with a plan that is not proven optimal (gap "
            f"{plan.solve.gap:.2%}). The plan was still written to {run_dir / 'plan.json'}. "
            f"Raise solver.time_limit_s, or accept the gap."
        )
    return 0


def cmd_catalog(overrides: list[str], console: Console) -> int:
    """Run ``hetopt catalog``: the device table with hourly TCO."""
    from rich.table import Table

    from hetopt.cli.config import request_from_config
    from hetopt.costs.calibration import load_calibration
    from hetopt.costs.tco import tco_table
    from hetopt.hardware import load_catalog

    request = request_from_config(compose_config(overrides))
    hw = request.hardware
    catalog = load_catalog(hw.catalog_path, extra_rows=hw.extra_rows)
    if hw.devices is not None:
        catalog = catalog.select(hw.devices)
    costs = tco_table(catalog, request.tco)
    calibration = load_calibration(request.costs.calibration)
    t = Table(title=f"Hardware catalog ({request.tco.mode} TCO)")
    cols = ["device", "vendor", "fp16 TF", "fp8 TF", "GB", "GB/s", "TDP W", "price $",
            "$/h", "kgCO2/h", "LLM cost model (held-out error)"]
    for c in cols:
        t.add_column(c, justify="left" if c in ("device", "vendor") else "right")
    for d in catalog.devices:
        row = costs.loc[d.name]
        t.add_row(d.name, d.vendor, f"{d.fp16_tflops:g}",
                  f"{d.fp8_tflops:g}" if d.fp8_tflops else "-", f"{d.mem_gb:g}",
                  f"{d.mem_bw_gb_per_s:g}", f"{d.tdp_w:g}", f"{d.price_usd:,.0f}",
                  f"{row['total_usd_per_h']:.3f}", f"{row['carbon_kgco2_per_h']:.3f}",
                  _calibration_cell(calibration, d.name, d.precisions, d.kind))
    console.print(t)
    console.print(f"Calibration table {calibration.version} ({calibration.origin}); refresh it "
                  f"with `hetopt calibrate` (pip install -e '.[calibration]').", markup=False,
                  highlight=False)
    return 0


def _calibration_cell(calibration: Any, device: str, precisions: tuple[str, ...],
                      kind: str) -> str:
    """``calibrated fp16 x1.03, fp8 x1.02`` or ``uncalibrated (...)`` for one device."""
    parts = []
    for precision in ("fp16", "fp8"):
        entry = calibration.lookup(device, precision) if precision in precisions else None
        if entry is not None:
            parts.append(f"{precision} x{entry.heldout_geomean_error:.2f}")
    if parts:
        return "calibrated " + ", ".join(parts)
    return "uncalibrated (roofline)" if kind == "cpu" else "uncalibrated (borrowed median)"


def cmd_reproduce(args: list[str], console: Console) -> int:
    """Run ``hetopt reproduce <study ...|all> [--out DIR] [costs.model=roofline]``."""
    from hetopt.costs.table import COST_MODELS
    from hetopt.report.reproduce import STUDIES, run

    cost_model = "calibrated"
    for arg in [a for a in args if a.startswith("costs.model=")]:
        cost_model = arg.split("=", 1)[1]
        if cost_model not in COST_MODELS:
            raise InputError(f"hetopt reproduce: costs.model must be one of "
                             f"{list(COST_MODELS)}, got {cost_model!r}.")
        args = [a for a in args if a != arg]
    overrides = [a for a in args if "=" in a]
    if overrides:
        raise InputError(f"hetopt reproduce takes study names, --out DIR and costs.model=; "
                         f"{overrides} would be ignored. Remove them.")
    out: Path | None = None
    if "--out" in args:
        i = args.index("--out")
        if i + 1 >= len(args):
            raise InputError("`hetopt reproduce --out` needs a directory.")
        out = Path(args[i + 1])
        args = args[:i] + args[i + 2:]
    names = list(STUDIES) if args in ([], ["all"]) else args
    unknown = [n for n in names if n not in STUDIES]
    if unknown:
        raise InputError(f"Unknown study {unknown}. Studies: {list(STUDIES)} or 'all'.")
    stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    out = out or Path("outputs") / "reproduce" / stamp
    if out.exists() and not out.is_dir():
        raise InputError(f"hetopt reproduce --out {out}: that is a file; pass a directory.")
    with console.status("reproducing...") as status:
        timings = run(names, out, progress=lambda msg: status.update(msg),
                      cost_model=cost_model)
    for rec in timings.itertuples():
        console.print(f"{rec.study:9s} {rec.seconds:6.1f} s  -> {rec.dir}/summary.md")
    console.print(f"total {timings['seconds'].sum():.1f} s")
    return 0


def cmd_list(console: Console) -> int:
    """Run ``hetopt list``: workloads and config-group options."""
    from hetopt.workloads import config_dir

    cdir = config_dir()
    for group in sorted(p for p in cdir.iterdir() if p.is_dir()):
        console.print(f"[bold]{group.name}[/]: " + ", ".join(
            sorted(p.stem for p in group.glob("*.yaml"))))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hetopt`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    # Piped output gets 120 columns so tables stay readable in logs.
    console = Console(width=None if sys.stdout.isatty() else 120)
    err = Console(stderr=True, width=None if sys.stderr.isatty() else 120)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args or args[0] in ("-h", "--help", "help"):
        console.print(USAGE, highlight=False, markup=False)
        return 0
    command, rest = args[0], args[1:]
    if any(flag in rest for flag in ("-h", "--help")):
        console.print(USAGE, highlight=False, markup=False)
        return 0
    try:
        if command == "sweep" or (command == "plan" and ("-m" in rest or "--multirun" in rest)):
            from hetopt.cli.sweep import cmd_sweep

            return cmd_sweep(rest, console)
        if command == "aggregate":
            from hetopt.cli.sweep import report_sweep

            if len(rest) != 1:
                raise InputError("usage: hetopt aggregate <sweep directory>")
            return report_sweep(Path(rest[0]), console)
        if command == "plan":
            return cmd_plan(rest, console)
        if command == "fleet":
            from hetopt.cli.fleet_cmd import cmd_fleet

            return cmd_fleet(rest, None, console)
        if command == "catalog":
            return cmd_catalog(rest, console)
        if command == "list":
            return cmd_list(console)
        if command == "reproduce":
            return cmd_reproduce(rest, console)
        if command == "calibrate":
            from hetopt.cli.calibrate_cmd import cmd_calibrate

            return cmd_calibrate(rest, console)
        if command == "replay":
            from hetopt.cli.replay_cmd import cmd_replay

            cfg = compose_config(rest)
            return cmd_replay(cfg, _run_dir(cfg, "replay"), console)
        if command == "compile":
            from hetopt.cli.compile_cmd import cmd_compile

            cfg = compose_config(rest)
            return cmd_compile(cfg, _run_dir(cfg, "compile"), console)
        raise InputError(f"Unknown command '{command}'. Commands: plan, sweep, aggregate, "
                         f"fleet, catalog, list, reproduce, replay, compile, calibrate "
                         f"(`hetopt --help`).")
    except HetoptUserError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
