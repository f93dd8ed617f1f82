"""``hetopt compile``: plan (or load a saved plan), run the MLIR stage, report."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from hetopt.cli.config import request_from_config
from hetopt.cli.outputs import RunDir
from hetopt.cli.render import titled_table
from hetopt.errors import InputError
from hetopt.pipeline import plan_agent


def compile_options_from(cfg: dict[str, Any]) -> Any:
    """The :class:`~hetopt.mlir.compile.CompileOptions` of the ``mlir`` group."""
    from hetopt.cli.config import _build
    from hetopt.mlir.compile import CompileOptions
    from hetopt.mlir.kernels import KernelShape

    data = dict(cfg.get("mlir") or {})
    data.pop("plan_dir", None)
    kernel = _build(KernelShape, "mlir.kernel", data.pop("kernel", None))
    targets = data.pop("targets", None) or {}
    if not isinstance(targets, dict):
        raise InputError(
            f"mlir.targets must map device names to 'backend[:arch]', got {targets!r}."
        )
    return _build(
        CompileOptions,
        "mlir",
        {
            **data,
            "kernel": kernel,
            "targets": {str(k): str(v) for k, v in targets.items() if v is not None},
        },
    )


def check_targets(targets: Mapping[str, str], catalog: Any, placed: set[str]) -> list[str]:
    """Refuse a target for a device the catalog lacks; name the ones the plan does not use.

    Returns
    -------
    list[str]
        The devices of ``mlir.targets`` on which the plan places nothing (their target is
        unused).

    Raises
    ------
    UnknownNameError
        For a device the catalog does not have, with the closest name.
    """
    import difflib

    from hetopt.errors import UnknownNameError

    names = [d.name for d in catalog.devices]
    for device in targets:
        if device not in names:
            close = difflib.get_close_matches(device, names, n=1, cutoff=0.5)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise UnknownNameError(
                f"mlir.targets.{device}: the catalog has no device '{device}'.{hint} Devices: "
                f"{names}."
            )
    return [d for d in targets if d not in placed]


def cmd_compile(cfg: dict[str, Any], run: RunDir, console: Console) -> int:
    """Run ``hetopt compile``; exit 2 (after writing everything) if a partition failed."""
    from hetopt.cli.outputs import write_outputs
    from hetopt.cli.replay_cmd import load_saved_plan
    from hetopt.hardware import load_catalog
    from hetopt.mlir.compile import compile_plan
    from hetopt.mlir.report import write_compile

    run_dir, out = run.path, run.out
    options = compile_options_from(cfg)
    start = time.perf_counter()
    plan_dir = (cfg.get("mlir") or {}).get("plan_dir")
    with console.status("planning...") as status:
        if plan_dir:
            cfg, outcome = load_saved_plan(Path(plan_dir))
            request = request_from_config(cfg)
        else:
            request = request_from_config(cfg)
            outcome = plan_agent(request, progress=lambda m: status.update(m + " ..."))
        catalog = load_catalog(
            request.hardware.catalog_path, extra_rows=request.hardware.extra_rows
        )
        unused = check_targets(options.targets, catalog, set(outcome.plan.placement["device"]))
        write_outputs(outcome, cfg, out)
        report = compile_plan(
            request.workload.graph,
            outcome.graph,
            outcome.plan.placement,
            catalog,
            options,
            request.workload.data,
            progress=lambda m: status.update(m + " ..."),
        )
        written = write_compile(report, catalog, out)
    total_s = time.perf_counter() - start
    console.rule(f"[bold]hetopt compile: {outcome.plan.workload}[/]")
    for device in unused:
        console.print(
            f"[yellow]note:[/] mlir.targets.{device}={options.targets[device]} was not "
            f"used: the plan places nothing on {device} (it uses "
            f"{', '.join(sorted(set(outcome.plan.placement['device'])))}).",
            highlight=False,
        )
    t = titled_table(
        "Partitions (one IREE module per device)",
        ("device", "target", "operators", "kernels", "artefact", "compile", "note"),
        left=("device", "target", "operators", "note"),
    )
    for p in report.partitions:
        t.add_row(
            p.device,
            p.target.label,
            ", ".join(p.operators),
            str(len(p.kernels)),
            f"{len(p.artifact) / 1024:,.0f} KiB"
            if p.compiled
            else ("[red]failed[/]" if p.kernels else "-"),
            f"{p.compile_s:.1f} s" if p.kernels else "-",
            p.error
            or p.target.note
            or (f"not lowered: {', '.join(p.not_lowered)}" if p.not_lowered else ""),
        )
    console.print(t)
    k = report.kernels
    if len(k):
        console.print(
            f"Executed {len(k)} kernels here with IREE (local-task): max relative error "
            f"{k['max_rel_error'].max():.1e} against NumPy "
            f"({'ok' if report.numerically_ok else '[red]too large[/]'})."
        )
    cal = report.calibration
    if cal is not None:
        s = cal.summary()
        c = Table(
            title=f"CPU calibration ({cal.before.device} share of {cal.before.host_cores} cores)",
            title_justify="left",
        )
        for col in (
            "",
            "compute eff",
            "bandwidth eff",
            "overhead",
            "GEMM operators |err| median / max",
            "GEMM kernels |err| median",
            "all kernels |err| median",
        ):
            c.add_column(col, justify="left" if not col else "right")
        for when, m in (("before", cal.before), ("after", cal.after)):
            c.add_row(
                when,
                f"{m.compute_efficiency:.3f}",
                f"{m.bandwidth_efficiency:.3f}",
                f"{m.overhead_s * 1e6:.0f} us",
                f"{s[f'gemm_operator_median_abs_error_{when}']:.0%} / "
                f"{s[f'gemm_operator_max_abs_error_{when}']:.0%}",
                f"{s[f'gemm_median_abs_error_{when}']:.0%}",
                f"{s[f'all_median_abs_error_{when}']:.0%}",
            )
        console.print(c)
        console.print(
            f"Plan with the calibrated CPU: hetopt plan "
            f"hardware.catalog_path={run_dir / 'calibrated_devices.csv'}"
        )
    console.print(
        f"Structure: the decomposed MLIR's operator graph "
        f"{'equals' if report.structure_matches else '[red]differs from[/]'} the "
        f"planner's. Done in {total_s:.1f} s. Wrote {len(written)} files to {run_dir} "
        "(mlir/, artifacts/, verification.json, ...)."
    )
    if report.failed:
        reasons = "; ".join(f"{p.device} ({p.target.label}): {p.error}" for p in report.failed)
        raise InputError(
            f"{len(report.failed)} partition(s) did not compile: {reasons}. The other "
            f"partitions compiled and everything is in {run_dir}. Pick another target with "
            "mlir.targets.<device>=backend[:arch] (cuda:sm_89 is the newest CUDA target this "
            "IREE accepts; rocm:gfx942, vulkan-spirv, llvm-cpu)."
        )
    if not report.structure_matches or not report.numerically_ok:
        return 1
    return 0
