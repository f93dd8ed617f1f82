"""Benchmark: time ``hetopt reproduce all`` and each study (target: all under 60 s, 2 cores).

Runs every study of :mod:`hetopt.report.reproduce` into ``--out`` (default
``outputs/bench_reproduce``), writes ``bench_reproduce.csv`` and ``bench_reproduce.png``, and
prints the seconds per study, the total, and how many pair-study points were solved to proven
optimality (the rest are pairs that no configuration can serve, each with its reason).

Run: ``python experiments/bench_reproduce.py [--repeat 3]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from hetopt.report.reproduce import STUDIES, run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench_reproduce"))
    args = parser.parse_args()
    rows = []
    for rep in range(args.repeat):
        start = time.perf_counter()
        timings = run(list(STUDIES), args.out / f"run{rep}")
        total = time.perf_counter() - start
        for rec in timings.itertuples():
            rows.append({"repeat": rep, "study": rec.study, "seconds": rec.seconds})
        rows.append({"repeat": rep, "study": "all", "seconds": total})
        print(
            f"run {rep}: "
            + ", ".join(f"{r.study} {r.seconds:.1f} s" for r in timings.itertuples())
            + f"; total {total:.1f} s (target 60 s)"
        )
    frame = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out / "bench_reproduce.csv", index=False)
    points = pd.concat([pd.read_csv(args.out / "run0" / f / f"{f}.csv") for f in ("fig8", "fig9")])
    solved = points[points["status"] == "optimal"]
    print(
        f"pair-study points: {len(points)}; proven optimal {len(solved)} (max gap "
        f"{solved['gap'].max():.1e}); impossible pairs {len(points) - len(solved)}, all with a "
        f"reason: {bool(points.loc[points['status'] != 'optimal', 'reason'].notna().all())}"
    )
    median = frame.groupby("study", sort=False)["seconds"].median()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.barh(median.index, median.to_numpy(), color=["#2a9d8f"] * (len(median) - 1) + ["#264653"])
    ax.axvline(60, color="r", linestyle="--", label="target 60 s")
    ax.set_xlabel(f"seconds (median of {args.repeat}, 2-core machine)")
    ax.set_title("hetopt reproduce: time per study")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "bench_reproduce.png", dpi=120)
    print(f"wrote {args.out / 'bench_reproduce.csv'} and {args.out / 'bench_reproduce.png'}")


if __name__ == "__main__":
    main()
