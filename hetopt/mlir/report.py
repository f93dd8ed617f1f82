"""Files ``hetopt compile`` leaves in its run directory, and the calibration figure."""

from __future__ import annotations

import json
import math
from pathlib import Path

from hetopt.atomic import (
    atomic_path,
    write_bytes_atomic,
    write_csv_atomic,
    write_text_atomic,
)
from hetopt.costs.calibration import load_calibration, table_from_fits
from hetopt.hardware import HardwareCatalog
from hetopt.mlir.calibrate import Calibration, calibrated_catalog, cost_calibration_rows
from hetopt.mlir.compile import CompileReport
from hetopt.plotting import save_figure, subplots


def plot_calibration(cal: Calibration, path: Path) -> Path:
    """Predicted against measured kernel time, before and after calibration (log-log)."""
    k = cal.kernels
    fig, axes = subplots(1, 2, figsize=(11, 4.6), sharex=True, sharey=True)
    lo = (
        min(k["measured_s"].min(), k["predicted_before_s"].min(), k["predicted_after_s"].min())
        * 0.7
    )
    hi = (
        max(k["measured_s"].max(), k["predicted_before_s"].max(), k["predicted_after_s"].max())
        * 1.4
    )
    summary = cal.summary()
    for ax, when, model in ((axes[0], "before", cal.before), (axes[1], "after", cal.after)):
        for cls, marker in (("gemm", "o"), ("gemv", "s"), ("attention", "^"), ("scan", "D")):
            rows = k[k["shape_class"] == cls]
            if len(rows):
                ax.scatter(
                    rows["measured_s"] * 1e3,
                    rows[f"predicted_{when}_s"] * 1e3,
                    marker=marker,
                    label=cls,
                    alpha=0.8,
                )
        ax.plot([lo * 1e3, hi * 1e3], [lo * 1e3, hi * 1e3], "k-", lw=0.8)
        for f in (0.75, 1.25):
            ax.plot([lo * 1e3, hi * 1e3], [lo * f * 1e3, hi * f * 1e3], "k:", lw=0.6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("measured on this CPU (ms)")
        ax.set_title(
            f"{when}: compute eff {model.compute_efficiency:.2f}, bandwidth eff "
            f"{model.bandwidth_efficiency:.2f}\nGEMM operators: median |error| "
            f"{summary[f'gemm_operator_median_abs_error_{when}']:.0%}",
            fontsize=9,
        )
    axes[0].set_ylabel("predicted by the roofline (ms)")
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"CPU kernels (IREE llvm-cpu) vs the cost model: {cal.before.device} share "
        f"of {cal.before.host_cores} cores (dotted: ±25 %)",
        fontsize=10,
    )
    return save_figure(fig, path)


def write_compile(report: CompileReport, catalog: HardwareCatalog, run_dir: Path) -> list[str]:
    """Write MLIR stages, artefacts, CSVs, ``verification.json`` and ``calibration.png``.

    Returns
    -------
    list[str]
        Names of the files written, relative to ``run_dir``.
    """
    written: list[str] = []
    mlir_dir = run_dir / "mlir"
    for name, text in report.stages:
        write_text_atomic(mlir_dir / name, text)
        written.append(f"mlir/{name}")
    art = run_dir / "artifacts"
    for p in report.partitions:
        if p.compiled:
            name = f"{p.device}.{p.target.backend}.vmfb"
            write_bytes_atomic(art / name, p.artifact)
            written.append(f"artifacts/{name}")
    if len(report.kernels):
        write_csv_atomic(run_dir / "kernels.csv", report.kernels)
        written.append("kernels.csv")
    cal = report.calibration
    if cal is not None:
        write_csv_atomic(run_dir / "calibration.csv", cal.kernels)
        write_csv_atomic(run_dir / "calibration_operators.csv", cal.operators())
        write_csv_atomic(run_dir / "calibrated_devices.csv", calibrated_catalog(catalog, cal))
        # The cost model's calibration table: the shipped GPU rows plus this machine's CPU fit.
        shipped = load_calibration()
        cpu_rows = cost_calibration_rows(catalog, cal, version=f"{shipped.version}+compile")
        keep = shipped.frame[~shipped.frame["device"].isin({r["device"] for r in cpu_rows})]
        merged = keep.assign(version=f"{shipped.version}+compile").to_dict("records")
        with atomic_path(run_dir / "cost_calibration.csv") as tmp:
            table_from_fits(merged + cpu_rows).save(tmp)
        plot_calibration(cal, run_dir / "calibration.png")
        written += [
            "calibration.csv",
            "calibration_operators.csv",
            "calibrated_devices.csv",
            "cost_calibration.csv",
            "calibration.png",
        ]
    data = report.to_dict()
    write_text_atomic(run_dir / "verification.json", json.dumps(data, indent=2, default=_json))
    written.append("verification.json")
    return written


def _json(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)
