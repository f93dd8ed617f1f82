"""Run the shipped what-if studies (configs/whatif/) and keep their tables and figures.

Each study is one ``hetopt sweep whatif=<name>`` (a Hydra multirun on the joblib launcher). This
script runs the ones asked for, copies each sweep's ``results.csv`` and figure to
``experiments/results/whatif/``, and prints one line of findings per study.

    python experiments/whatif.py                    # all eight, about 3 minutes on 2 cores
    python experiments/whatif.py carbon brownfield  # some
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
STUDIES = ("electricity", "prices", "financing", "sla", "load", "cloud", "brownfield", "carbon")


def findings(name: str, frame: pd.DataFrame) -> str:
    """One line on what the study shows (read from its table, not written in advance)."""
    ok = frame[frame["status"] == "ok"]
    mix_cols = [c for c in ok.columns if c.startswith("devices.")]

    def mix(row: pd.Series) -> str:
        return "+".join(
            f"{int(row[c])}x{c.removeprefix('devices.')}"
            for c in sorted(mix_cols)
            if pd.notna(row[c]) and row[c] > 0
        )

    if ok.empty:
        return "no feasible point"
    lo, hi = ok.loc[ok["tco_usd_per_h"].idxmin()], ok.loc[ok["tco_usd_per_h"].idxmax()]
    line = (
        f"TCO {lo['tco_usd_per_h']:.2f}-{hi['tco_usd_per_h']:.2f} $/h; cheapest {mix(lo)}, "
        f"dearest {mix(hi)}"
    )
    n_inf = int((frame["status"] == "infeasible").sum())
    if n_inf:
        line += f"; {n_inf} infeasible points"
    if name == "brownfield":
        kept = [c for c in mix_cols if c.endswith("-owned")]
        by_year = ok.groupby("hardware.years_ahead")[kept].sum(min_count=1).fillna(0)
        line += "; installed devices kept per year: " + ", ".join(
            f"y{int(y)}: {int(r.sum())}" for y, r in by_year.iterrows()
        )
    return line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "studies", nargs="*", metavar="STUDY", help=f"any of {', '.join(STUDIES)} (default: all)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "experiments/results/whatif")
    parser.add_argument(
        "--work",
        type=Path,
        default=ROOT / "outputs/whatif",
        help="sweep directories (one per study; re-running resumes)",
    )
    args = parser.parse_args()
    unknown = sorted(set(args.studies) - set(STUDIES))
    if unknown:
        parser.error(f"unknown studies {unknown}; choose from {', '.join(STUDIES)}")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.studies or STUDIES:
        sweep_dir = args.work / name
        start = time.perf_counter()
        code = subprocess.call(
            [
                sys.executable,
                "-m",
                "hetopt.cli.main",
                "sweep",
                f"whatif={name}",
                f"hydra.sweep.dir={sweep_dir}",
            ],
            cwd=ROOT,
        )
        wall = time.perf_counter() - start
        frame = pd.read_csv(sweep_dir / "results.csv")
        shutil.copy(sweep_dir / "results.csv", args.out / f"{name}.csv")
        if (sweep_dir / f"{name}.png").exists():
            shutil.copy(sweep_dir / f"{name}.png", args.out / f"{name}.png")
        counts = frame["status"].value_counts().to_dict()
        print(f"{name:11s} {len(frame):3d} points {wall:5.1f} s {counts}  {findings(name, frame)}")
        rows.append(
            {
                "study": name,
                "points": len(frame),
                "wall_s": round(wall, 1),
                "exit": code,
                **{f"n_{k}": v for k, v in counts.items()},
            }
        )
    pd.DataFrame(rows).to_csv(args.out / "studies.csv", index=False)
    return max((r["exit"] for r in rows), default=0)


if __name__ == "__main__":
    sys.exit(main())
