"""Agents in: the three example LangGraph agents planned from their code, and from their traces.

The issue's target: each example agent plans end to end from its LangGraph code in a few
seconds. For each of ``examples/agents/{react,supervisor,rag}_agent.py``, repeated and
alternated:

* ``import``: :func:`hetopt.importers.import_target` in one interpreter (importing the user's
  file, reading the graph, applying the annotations, validating the workload); repeat 0 of the
  first agent includes LangGraph's own import;
* ``plan``: :func:`hetopt.pipeline.plan_agent` on the imported workload (cost table, solve,
  independent verification);
* ``profile``: :func:`hetopt.importers.profile_traces` on the agent's shipped trace
  (``examples/traces/<name>.otlp.json``: reading OTLP JSON, deriving the workload);
* ``cli``: ``hetopt plan workload_file=<file>:graph`` in a fresh interpreter, wall time from
  ``exec`` to exit (Python start-up, every import, the plan and its outputs).

Writes ``bench_agents.csv`` (agent, measure, repeat, seconds) into ``--out`` (default
``benchmarks/results``) and prints the medians. Needs the agents and traces extras
(``pip install -e '.[agents,traces]'``).

Usage: ``python benchmarks/bench_agents.py [--repeats 3]``
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

ROOT = Path(__file__).resolve().parents[1]
AGENTS = ("react_agent", "supervisor_agent", "rag_agent")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    from hetopt.importers import import_target, profile_traces
    from hetopt.pipeline import PlanRequest, plan_agent

    work = Path(tempfile.mkdtemp(prefix="bench_agents-"))
    rows: list[tuple[str, str, int, float]] = []
    for repeat in range(args.repeats):
        for name in AGENTS:
            target = f"{ROOT / 'examples' / 'agents' / name}.py:graph"
            start = time.perf_counter()
            result = import_target(target)
            rows.append((name, "import", repeat, time.perf_counter() - start))
            start = time.perf_counter()
            plan_agent(PlanRequest(result.to_workload(), baselines=()))
            rows.append((name, "plan", repeat, time.perf_counter() - start))
            start = time.perf_counter()
            profile_traces([ROOT / "examples" / "traces" / f"{name}.otlp.json"])
            rows.append((name, "profile", repeat, time.perf_counter() - start))
            start = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "hetopt.cli.main",
                    "plan",
                    f"workload_file={target}",
                    f"hydra.run.dir={work / f'{name}-{repeat}'}",
                ],
                check=True,
                capture_output=True,
            )
            rows.append((name, "cli", repeat, time.perf_counter() - start))
            print(
                f"{name} repeat {repeat}: " + ", ".join(f"{r[1]} {r[3]:.2f} s" for r in rows[-4:])
            )
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "bench_agents.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["agent", "measure", "repeat", "seconds"])
        writer.writerows(rows)
    for name in AGENTS:
        medians = {
            m: statistics.median(r[3] for r in rows if r[0] == name and r[1] == m)
            for m in ("import", "plan", "profile", "cli")
        }
        print(f"{name:17s} " + "  ".join(f"{m} {s:.2f} s" for m, s in medians.items()))
    print(f"wrote {args.out / 'bench_agents.csv'}")


if __name__ == "__main__":
    main()
