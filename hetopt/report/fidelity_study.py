"""``hetopt reproduce fidelity``: writes the cost model's fidelity study (CSV, figure, summary).

The numbers come from :mod:`hetopt.report.fidelity`; this module lays them out as the other
``hetopt reproduce`` studies do.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from hetopt.atomic import write_csv_atomic, write_text_atomic
from hetopt.report.tables import md_table as _md_table

Progress = Callable[[str], None]


def fidelity(
    out: Path, progress: Progress | None = None, cost_model: str = "calibrated"
) -> pd.DataFrame:
    """The cost model against data it was not fitted to. The step-level comparison queries
    aiconfigurator (the calibration extra); without it only the published-throughput check is
    written, and the summary says why."""
    from hetopt.costs import aic
    from hetopt.costs.calibration import PUBLISHED_PATH, STEP_MODEL_VERSION, load_calibration
    from hetopt.report import fidelity as fid

    published = fid.published_check(PUBLISHED_PATH)
    write_csv_atomic(out / "fidelity_published.csv", published)
    published_lines = [
        "## Accelerators without a silicon database: published static-batch throughput",
        "",
        "Output tokens/s of whole static batches on vendor pages (one source per row in "
        "hetopt/costs/data/published_llm_throughput.csv). `borrowed`: the median coefficients "
        "of the silicon-calibrated GPUs, what a device without any data gets; `fitted`: the "
        "shipped fit (one efficiency factor on top of the median; in sample, its "
        "leave-one-out error is `loo_error`); `roofline`: costs.model=roofline. Ratio = "
        "predicted / published.",
        "",
        _md_table(
            published.groupby("device")
            .agg(
                points=("batch", "size"),
                borrowed_error=("borrowed_ratio", lambda r: fid.geomean_abs_log(r.to_numpy())),
                fitted_error=("fitted_ratio", lambda r: fid.geomean_abs_log(r.to_numpy())),
                loo_error=("loo_error", "first"),
                roofline_error=("roofline_ratio", lambda r: fid.geomean_abs_log(r.to_numpy())),
            )
            .reset_index()
        ),
        "",
    ]
    if not aic.available():
        write_text_atomic(
            out / "summary.md",
            "\n".join(published_lines)
            + "\n\n"
            + "# Cost-model fidelity\n\nThe step-level comparison was skipped: it queries "
            "aiconfigurator's measured database. Install it with `pip install -e "
            "'.[calibration]'`. The reference output is in experiments/results/fidelity/.\n",
        )
        return published
    points = fid.step_points(progress=progress)
    write_csv_atomic(out / "fidelity.csv", points)
    search = fid.sla_search(progress=progress)
    write_csv_atomic(out / "fidelity_sla.csv", search)
    errors = fid.error_table(points)
    overall = fid.error_table(points.assign(all="all"), by=("all", "precision"))
    per_device = fid.error_table(points, by=("device",))
    throughput = fid.throughput_table(search)
    bad = fid.violations(search)
    _fidelity_figure(points, throughput, out / "fidelity.png")
    table = load_calibration()
    lines = [
        "# Cost-model fidelity: predictions against measured data held out of the fit",
        "",
        f"Step model {STEP_MODEL_VERSION}, calibration table {table.version}. Measured data: "
        f"aiconfigurator {aic.version()} silicon database (TensorRT-LLM). Held-out points: the "
        "whole Llama-3.1-70B model and input length 2048 for Llama-3.1-8B (the fit saw "
        "neither). Ratio = predicted / measured; error = exp(mean |log ratio|); worst = the "
        "ratio farthest from 1. `roofline` is `costs.model=roofline` (70 % / 80 % of peak, no "
        "floors) on the same points.",
        "",
        "## Per step, by device, precision and phase",
        "",
        _md_table(errors),
        "",
        "## Overall",
        "",
        _md_table(overall.drop(columns=["all"])),
        "",
        _md_table(per_device),
        "",
        "## Throughput within TTFT <= 250 ms and TBT <= 20 ms (1024 in / 256 out)",
        "",
        "Decode tokens/s per GPU. `hetopt_predicted`: the best configuration hetopt finds "
        "feasible (with the held-out error guard), as it predicts it; `hetopt_pick_measured`: "
        "that configuration's measured throughput; `measured_best`: the best configuration "
        "of the same (tp, batch) grid by the measured data (a prefill at tp must also meet "
        "TTFT at batch 1).",
        "",
        _md_table(throughput),
        "",
        f"Geometric-mean |ratio| of hetopt_predicted to measured_best: "
        f"{fid.geomean_abs_log(throughput['ratio'].to_numpy(dtype=float)):.3f} "
        f"(`costs.model=roofline`, same search without the guard: "
        f"{fid.geomean_abs_log(throughput['roofline_ratio'].to_numpy(dtype=float)):.3f}; "
        f"`roofline_predicted`).",
        "",
        "## SLA safety",
        "",
        f"{int(search['hetopt_feasible'].sum())} configurations hetopt calls feasible; "
        f"{len(bad)} of them break TTFT or TBT when re-timed with the measured data.",
        "",
        *published_lines,
    ]
    if len(bad):
        lines += [
            _md_table(
                bad[
                    [
                        "device",
                        "model",
                        "precision",
                        "tp",
                        "batch",
                        "predicted_s",
                        "measured_s",
                        "prefill_measured_s",
                    ]
                ]
            ),
            "",
        ]
    write_text_atomic(out / "summary.md", "\n".join(lines) + "\n")
    return points


def _fidelity_figure(points: pd.DataFrame, throughput: pd.DataFrame, path: Path) -> None:
    from hetopt.plotting import save_figure, subplots

    fig, axes = subplots(1, 3, figsize=(16, 5))
    colours = dict(
        zip(
            sorted(points["device"].unique()),
            ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02"],
            strict=False,
        )
    )
    for ax, column, title in (
        (axes[0], "roofline_s", "roofline (costs.model=roofline)"),
        (axes[1], "calibrated_s", "calibrated step model"),
    ):
        for device, sub in points.groupby("device"):
            ax.scatter(
                sub["measured_s"] * 1e3,
                sub[column] * 1e3,
                s=10,
                alpha=0.6,
                color=colours[device],
                label=device,
            )
        lo = float(points[["measured_s", "calibrated_s", "roofline_s"]].min().min()) * 1e3
        hi = float(points[["measured_s", "calibrated_s", "roofline_s"]].max().max()) * 1e3
        xs = np.array([lo, hi])
        ax.plot(xs, xs, color="black", lw=1, label="predicted = measured")
        ax.fill_between(xs, xs / 1.1, xs * 1.1, color="grey", alpha=0.2, label="within 10 %")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("measured step time (ms)")
        ax.set_ylabel("predicted step time (ms)")
        ax.set_title(title)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7, loc="upper left")
    tput = throughput.dropna(subset=["hetopt_predicted", "measured_best"])
    labels = [
        f"{r.device} {r.model.replace('llama-3.1-', '')} {r.precision}" for r in tput.itertuples()
    ]
    x = np.arange(len(tput))
    axes[2].bar(x - 0.2, tput["measured_best"], 0.4, label="measured best", color="#999999")
    axes[2].bar(x + 0.2, tput["hetopt_predicted"], 0.4, label="hetopt (predicted)", color="#1b9e77")
    axes[2].set_xticks(x, labels, rotation=90, fontsize=7)
    axes[2].set_ylabel("decode tokens/s per GPU within the SLA")
    axes[2].set_title("throughput within TTFT 250 ms, TBT 20 ms")
    axes[2].legend(fontsize=8)
    fig.suptitle("Cost-model fidelity on points held out of the fit")
    save_figure(fig, path, dpi=110)
