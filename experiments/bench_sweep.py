"""Sweep throughput: a 1,000-point what-if sweep of the default workload, joblib against Ray.

The grid is electricity price x PUE x amortisation years (10 x 10 x 10) on the voice agent.
Each launcher runs ``hetopt sweep`` into a fresh directory on this machine; the script writes
``bench_sweep.csv`` and ``bench_sweep.png`` and prints points per minute.

    python experiments/bench_sweep.py                       # joblib 1,000 points, Ray 1,000
    python experiments/bench_sweep.py --points 100 --ray-points 100

Target (issue 6): 1,000 points in under 10 minutes with joblib on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def grid(points: int) -> list[str]:
    """Sweep overrides with about ``points`` points (a cube of electricity, PUE, years)."""
    side = max(1, round(points ** (1 / 3)))
    kwh = np.round(np.linspace(0.05, 0.95, side), 3)
    pue = np.round(np.linspace(1.0, 1.9, side), 2)
    years = np.round(np.linspace(2.0, 6.5, side), 2)
    return [
        f"tco.usd_per_kwh={','.join(map(str, kwh))}",
        f"tco.pue={','.join(map(str, pue))}",
        f"tco.amortization_years={','.join(map(str, years))}",
    ]


def run(launcher: str, points: int, work: Path) -> dict[str, object]:
    sweep_dir = work / f"{launcher}-{points}"
    shutil.rmtree(sweep_dir, ignore_errors=True)
    extra = {
        "joblib": [],
        "ray": [
            "hydra/launcher=ray",
            "+hydra.launcher.ray.init.num_cpus=2",
            "+hydra.launcher.ray.init.include_dashboard=false",
        ],
    }[launcher]
    cmd = [
        sys.executable,
        "-m",
        "hetopt.cli.main",
        "sweep",
        *grid(points),
        *extra,
        f"hydra.sweep.dir={sweep_dir}",
    ]
    start = time.perf_counter()
    code = subprocess.call(cmd, cwd=ROOT, env={**os.environ, **RAY_ENV})
    wall = time.perf_counter() - start
    frame = pd.read_csv(sweep_dir / "results.csv")
    ok = frame[frame["status"] == "ok"]
    row = {
        "launcher": launcher,
        "points": len(frame),
        "ok": len(ok),
        "exit": code,
        "wall_s": round(wall, 1),
        "points_per_min": round(len(frame) / wall * 60, 1),
        "point_wall_median_s": round(float(ok["wall_s"].median()), 3),
        "solve_median_s": round(float(ok["solve_s"].median()), 4),
        "warm_started": int(ok["warm_start"].sum()),
        "all_optimal_verified": bool(ok["proven_optimal"].all() and ok["verified"].all()),
    }
    print(
        f"{launcher:6s} {row['points']:5d} points in {wall:6.1f} s = "
        f"{row['points_per_min']:6.1f} points/min (per point {row['point_wall_median_s']} s, "
        f"solve {row['solve_median_s']} s; {row['warm_started']} warm-started; exit {code})"
    )
    frame.assign(launcher=launcher).to_csv(work / f"{launcher}-{points}.csv", index=False)
    return row | {"csv": str(work / f"{launcher}-{points}.csv")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--ray-points", type=int, default=1000, help="0 skips Ray")
    parser.add_argument("--out", type=Path, default=ROOT / "experiments/results")
    parser.add_argument("--work", type=Path, default=ROOT / "outputs/bench_sweep")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [run("joblib", args.points, args.work)]
    if args.ray_points:
        try:
            import hydra_plugins.hydra_ray_launcher  # noqa: F401
        except ImportError:
            print("ray: not installed (pip install 'hetopt[dist]'); skipped")
        else:
            rows.append(run("ray", args.ray_points, args.work))
    table = pd.DataFrame(rows).drop(columns="csv")
    table.to_csv(args.out / "bench_sweep.csv", index=False)

    from hetopt.report.figures import plt, save_figure

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.bar(
        table["launcher"], table["points_per_min"], color=["tab:blue", "tab:orange"][: len(table)]
    )
    ax1.axhline(100, color="red", ls="--", label="target: 1,000 points in 10 min")
    ax1.set_ylabel("points per minute (2 cores)")
    ax1.legend(fontsize=8)
    for r in rows:
        per_point = pd.read_csv(str(r["csv"]))
        ax2.hist(per_point["wall_s"].dropna(), bins=40, alpha=0.6, label=str(r["launcher"]))
    ax2.set_xlabel("wall time per point inside the task (s)")
    ax2.set_ylabel("points")
    ax2.legend(fontsize=8)
    fig.suptitle("hetopt sweep: 1,000-point what-if grid of the voice agent")
    save_figure(fig, args.out / "bench_sweep.png")
    print(f"wrote {args.out / 'bench_sweep.csv'} and bench_sweep.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
