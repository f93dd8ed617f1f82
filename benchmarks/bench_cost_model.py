"""Benchmark: what the calibrated cost model costs in time, side by side with the roofline.

Measures, alternating the two models so that machine noise hits both alike:

* ``plan``: the default ``hetopt plan`` (voice agent, whole catalog), in process (cost table +
  problem + solve + verification) and as the CLI command (with Python start-up and imports);
* ``reproduce``: ``hetopt reproduce all``'s paper studies (fig4 ... pareto), and the fidelity
  study on its own (it queries aiconfigurator's database: needs the calibration extra);
* ``calibrate``: ``hetopt calibrate`` end to end (measuring the database grid and fitting),
  when the calibration extra is installed.

Targets (issue 14): the default plan at most 20 % slower than the roofline; ``reproduce all``
well under 60 s; ``calibrate`` in minutes. Writes ``benchmarks/results/bench_cost_model.csv``
and ``.png`` and prints the ratios.

Run: ``python benchmarks/bench_cost_model.py [--repeat 5] [--skip-calibrate]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from hetopt.costs import aic  # noqa: E402
from hetopt.costs.table import CostParams  # noqa: E402
from hetopt.pipeline import PlanRequest, plan_agent  # noqa: E402
from hetopt.report.reproduce import STUDIES, run  # noqa: E402
from hetopt.sla import Sla  # noqa: E402
from hetopt.workloads import load_workload  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SLA = Sla(ttft_s=0.25, tbt_s=0.02, e2e_s=15.0)  # the default plan's SLA


def _plan_in_process(model: str) -> float:
    start = time.perf_counter()
    plan_agent(PlanRequest(load_workload("voice_agent"), sla=SLA, costs=CostParams(model=model)))
    return time.perf_counter() - start


def _plan_cli(model: str, run_dir: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "hetopt.cli.main",
            "plan",
            f"costs.model={model}",
            f"run_dir={run_dir}",
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def _row(what: str, model: str, seconds: float, repeat: int = 0) -> dict[str, object]:
    """One row of the results CSV: what was timed, with which cost model, and how long."""
    return dict(what=what, model=model, repeat=repeat, seconds=seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-calibrate", action="store_true")
    args = parser.parse_args()
    rows: list[dict[str, object]] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench_cost_model_"))
    _plan_in_process("calibrated")  # warm imports and caches once for both
    for rep in range(args.repeat):
        for model in ("calibrated", "roofline"):
            rows.append(_row("plan (in process)", model, _plan_in_process(model), rep))
            rows.append(_row("plan (CLI)", model, _plan_cli(model, tmp / f"{model}{rep}"), rep))
    papers = [s for s in STUDIES if s != "fidelity"]
    for model in ("calibrated", "roofline"):
        start = time.perf_counter()
        run(papers, tmp / f"reproduce_{model}", cost_model=model)
        rows.append(_row("reproduce paper studies", model, time.perf_counter() - start))
    if aic.available():
        start = time.perf_counter()
        run(["fidelity"], tmp / "fidelity")
        rows.append(_row("reproduce fidelity", "both", time.perf_counter() - start))
        if not args.skip_calibrate:
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "hetopt.cli.main", "calibrate", f"out={tmp / 'calibrate'}"],
                check=True,
                capture_output=True,
            )
            rows.append(
                _row("calibrate (measure + fit)", "calibrated", time.perf_counter() - start)
            )
    frame = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / "bench_cost_model.csv", index=False)
    summary = frame.groupby(["what", "model"])["seconds"].median().unstack()
    print(summary.round(3).to_string())
    for what in ("plan (in process)", "plan (CLI)", "reproduce paper studies"):
        cal = frame[(frame["what"] == what) & (frame["model"] == "calibrated")]["seconds"]
        roof = frame[(frame["what"] == what) & (frame["model"] == "roofline")]["seconds"]
        print(
            f"{what}: calibrated / roofline = "
            f"{statistics.median(cal) / statistics.median(roof):.2f} (median of "
            f"{len(cal)})"
        )
    paper = frame[(frame["what"] == "reproduce paper studies") & (frame["model"] == "calibrated")][
        "seconds"
    ].sum()
    fid = frame.loc[frame["what"] == "reproduce fidelity", "seconds"].sum()
    print(f"reproduce all (calibrated paper studies + fidelity): {paper + fid:.1f} s")
    fig, ax = plt.subplots(figsize=(8, 4))
    summary.plot.barh(ax=ax)
    ax.set_xlabel("seconds (median)")
    ax.set_xscale("log")
    ax.set_title("calibrated step model vs roofline (2 cores)")
    fig.tight_layout()
    fig.savefig(RESULTS / "bench_cost_model.png", dpi=110)


if __name__ == "__main__":
    main()
