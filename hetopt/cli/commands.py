"""The small commands: ``plan``, ``catalog``, ``reproduce`` and ``list``.

:func:`hetopt.cli.main.run_command` composes the config, checks the overrides and opens the
run directory; each ``cmd_*`` here does the command's work and prints it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from hetopt.errors import InputError, SolverLimitError

if TYPE_CHECKING:
    from hetopt.cli.compose import Composition
    from hetopt.cli.outputs import RunDir


def cmd_plan(comp: Composition, run: RunDir, console: Console) -> int:
    """Run ``hetopt plan``."""
    from hetopt.cli.config import request_from_config
    from hetopt.cli.outputs import write_outputs
    from hetopt.cli.render import render_plan
    from hetopt.pipeline import plan_agent
    from hetopt.solvers.base import SolveProgress

    cfg, run_dir = comp.cfg, run.path
    request = request_from_config(cfg)
    with console.status("planning...") as status:

        def solving(p: SolveProgress) -> None:
            bound = f"{p.bound:.4f}" if math.isfinite(p.bound) else "-"
            gap = f"{p.gap:.2%}" if math.isfinite(p.gap) else "-"
            status.update(
                f"solving with {p.backend}: {p.elapsed_s:.1f} s, incumbent "
                f"{p.incumbent:.4f} $/h, bound {bound}, gap {gap} ..."
            )

        outcome = plan_agent(
            request, progress=lambda msg: status.update(msg + " ..."), on_solve_progress=solving
        )
    plan = outcome.plan
    write_outputs(outcome, cfg, run.out)
    render_plan(plan, console)
    console.print(
        f"Wrote {run_dir / 'plan.json'} (and plan.png, placement.csv, devices.csv, "
        f"llm_pools.csv, cost_table.csv, config.yaml, .hydra/)"
    )
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


def cmd_catalog(comp: Composition, console: Console) -> int:
    """Run ``hetopt catalog``: the device table with hourly TCO."""
    from rich.table import Table

    from hetopt.cli.config import request_from_config
    from hetopt.costs.calibration import load_calibration
    from hetopt.costs.tco import tco_table
    from hetopt.hardware import load_catalog

    request = request_from_config(comp.cfg)
    hw = request.hardware
    catalog = load_catalog(hw.catalog_path, extra_rows=hw.extra_rows)
    if hw.devices is not None:
        catalog = catalog.select(hw.devices)
    costs = tco_table(catalog, request.tco)
    calibration = load_calibration(request.costs.calibration)
    t = Table(title=f"Hardware catalog ({request.tco.mode} TCO)")
    cols = [
        "device",
        "vendor",
        "fp16 TF",
        "fp8 TF",
        "GB",
        "GB/s",
        "TDP W",
        "price $",
        "$/h",
        "kgCO2/h",
        "LLM cost model (held-out error)",
    ]
    for c in cols:
        t.add_column(c, justify="left" if c in ("device", "vendor") else "right")
    for d in catalog.devices:
        row = costs.loc[d.name]
        t.add_row(
            d.name,
            d.vendor,
            f"{d.fp16_tflops:g}",
            f"{d.fp8_tflops:g}" if d.fp8_tflops else "-",
            f"{d.mem_gb:g}",
            f"{d.mem_bw_gb_per_s:g}",
            f"{d.tdp_w:g}",
            f"{d.price_usd:,.0f}",
            f"{row['total_usd_per_h']:.3f}",
            f"{row['carbon_kgco2_per_h']:.3f}",
            _calibration_cell(calibration, d.name, d.precisions, d.kind),
        )
    console.print(t)
    console.print(
        f"Calibration table {calibration.version} ({calibration.origin}); refresh it "
        f"with `hetopt calibrate` (pip install -e '.[calibration]').",
        markup=False,
        highlight=False,
    )
    return 0


def _calibration_cell(calibration: Any, device: str, precisions: tuple[str, ...], kind: str) -> str:
    """``calibrated fp16 x1.03, fp8 x1.02`` or ``uncalibrated (...)`` for one device."""
    parts = []
    for precision in ("fp16", "fp8"):
        entry = calibration.lookup(device, precision) if precision in precisions else None
        if entry is not None:
            parts.append(f"{precision} x{entry.heldout_geomean_error:.2f}")
    if parts:
        return "calibrated " + ", ".join(parts)
    return "uncalibrated (roofline)" if kind == "cpu" else "uncalibrated (borrowed median)"


def cmd_reproduce(comp: Composition, studies: list[str], run: RunDir, console: Console) -> int:
    """Run ``hetopt reproduce <study ...|all> [hydra.run.dir=DIR] [costs.model=roofline]``."""
    from hetopt.costs.table import COST_MODELS
    from hetopt.report.reproduce import run as run_studies

    cost_model = str((comp.cfg.get("costs") or {}).get("model") or "calibrated")
    if cost_model not in COST_MODELS:
        raise InputError(
            f"hetopt reproduce: costs.model must be one of {list(COST_MODELS)}, got {cost_model!r}."
        )
    names = study_names(studies)
    with console.status("reproducing...") as status:
        timings = run_studies(
            names, run.out, progress=lambda msg: status.update(msg), cost_model=cost_model
        )
    for rec in timings.itertuples():
        console.print(
            f"{rec.study:9s} {rec.seconds:6.1f} s  -> {run.path / str(rec.study)}/summary.md"
        )
    console.print(f"total {timings['seconds'].sum():.1f} s")
    return 0


def study_names(studies: list[str]) -> list[str]:
    from hetopt.report.reproduce import STUDIES

    names = list(STUDIES) if studies in ([], ["all"]) else studies
    unknown = [n for n in names if n not in STUDIES]
    if unknown:
        raise InputError(
            f"Unknown study {unknown}. Studies: {list(STUDIES)} or 'all'. "
            f"Everything else is an override (key=value)."
        )
    return names


def cmd_list(config_dirs: tuple[Path, ...], console: Console) -> int:
    """Run ``hetopt list``: the config groups and their options (``--config-dir`` included)."""
    from hetopt.cli.compose import config_groups
    from hetopt.workloads import config_dir

    for group, options in config_groups([config_dir(), *config_dirs]).items():
        console.print(f"[bold]{group}[/]: " + ", ".join(options))
    return 0
