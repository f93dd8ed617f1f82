"""Export time of ``hetopt export``: the default plan and the 7-tenant enterprise fleet.

The issue's target: exporting the default plan and a 7-tenant fleet each takes under a second.
The two runs are planned once (``hetopt plan``, ``hetopt fleet``, not timed), then exported
repeatedly, alternating the two:

* ``in_process``: :func:`hetopt.deploy.export_run` in one interpreter, its modules already
  imported (reading the run, building and validating the manifests, writing ``deploy/``);
  repeat 0 of each run is the first export in the process and includes the lazy imports
  (pandas through the hardware catalog, networkx through the graph, the validator's schemas);
* ``cli``: ``hetopt export <run> overwrite=true`` in a fresh interpreter, wall time from
  ``exec`` to exit (Python start-up and every import included).

Writes ``bench_export.csv`` (run, measure, repeat, seconds, manifests) into ``--out`` (default
``benchmarks/results``) and prints the medians. Needs the deploy extra
(``pip install -e '.[deploy]'``).

Usage: ``python benchmarks/bench_export.py [--repeats 5]``
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    hetopt = [sys.executable, "-m", "hetopt.cli.main"]
    work = Path(tempfile.mkdtemp(prefix="bench_export-"))
    runs = {"default_plan": work / "plan", "enterprise_fleet": work / "fleet"}
    subprocess.run(
        [*hetopt, "plan", f"hydra.run.dir={runs['default_plan']}"], check=True, capture_output=True
    )
    subprocess.run(
        [*hetopt, "fleet", f"hydra.run.dir={runs['enterprise_fleet']}"],
        check=True,
        capture_output=True,
    )
    from hetopt.deploy import export_run

    rows = []
    for repeat in range(args.repeats):
        for name, run in runs.items():
            result = export_run(run, overwrite=True)
            rows.append((name, "in_process", repeat, result.seconds, len(result.rows)))
            start = time.perf_counter()
            subprocess.run(
                [*hetopt, "export", str(run), "overwrite=true"], check=True, capture_output=True
            )
            rows.append((name, "cli", repeat, time.perf_counter() - start, len(result.rows)))
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "bench_export.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["run", "measure", "repeat", "seconds", "manifests"])
        writer.writerows(rows)
    for name in runs:
        for measure in ("in_process", "cli"):
            times = [r[3] for r in rows if r[0] == name and r[1] == measure]
            warm = [r[3] for r in rows if r[0] == name and r[1] == measure and r[2] > 0]
            print(
                f"{name:17s} {measure:10s} median {statistics.median(times):.3f} s  "
                f"first {times[0]:.3f} s  median of later {statistics.median(warm or times):.3f} s"
            )
    print(f"wrote {args.out / 'bench_export.csv'}")


if __name__ == "__main__":
    main()
