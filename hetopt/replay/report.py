"""Write a replay's tables and figures into a run directory."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hetopt.replay.engine import ReplayResult  # noqa: E402
from hetopt.report.figures import save_figure  # noqa: E402


def write_replay(result: ReplayResult, run_dir: Path) -> None:
    """requests.csv, stages.csv, pools.csv, utilisation.csv, replay.json and replay.png."""
    run_dir.mkdir(parents=True, exist_ok=True)
    result.requests.to_csv(run_dir / "requests.csv", index=False)
    result.stages.to_csv(run_dir / "stages.csv", index=False)
    result.pools.to_csv(run_dir / "pools.csv", index=False)
    result.utilisation.to_csv(run_dir / "utilisation.csv", index=False)
    summary = {k: (float(v) if isinstance(v, float | np.floating) and math.isfinite(v)
                   else (None if isinstance(v, float | np.floating) else v))
               for k, v in result.summary.items()}
    (run_dir / "replay.json").write_text(json.dumps(summary, indent=2))

    fig, (ax_cdf, ax_util) = plt.subplots(1, 2, figsize=(13, 4.5))
    done = result.requests[result.requests["status"] == "completed"]
    for col, label in (("e2e_s", "end-to-end (replay)"), ("predicted_s", "planner, same path"),
                       ("ttft_s", "TTFT (replay)")):
        values = np.sort(done[col].dropna().to_numpy(dtype=float))
        if len(values):
            ax_cdf.plot(values, np.arange(1, len(values) + 1) / len(values), label=label)
    sla = result.summary.get("sla_e2e_s")
    if sla:
        ax_cdf.axvline(sla, color="r", linestyle="--", label=f"SLA {sla:g} s")
    ax_cdf.set_xscale("log")
    ax_cdf.set_xlabel("seconds")
    ax_cdf.set_ylabel("fraction of requests")
    ax_cdf.set_title("Latency CDF")
    ax_cdf.legend(fontsize=8)
    ax_cdf.grid(alpha=0.3)
    util = result.utilisation
    for pool, group in util.groupby("pool", sort=False):
        smooth = group["busy_fraction"].rolling(10, min_periods=1).mean()
        ax_util.plot(group["time_s"], smooth, label=str(pool))
    ax_util.set_xlabel("simulated time (s)")
    ax_util.set_ylabel("busy fraction (10-sample mean)")
    ax_util.set_ylim(0, 1.05)
    ax_util.set_title("Pool utilisation over time")
    ax_util.legend(fontsize=7)
    ax_util.grid(alpha=0.3)
    save_figure(fig, run_dir / "replay.png")
