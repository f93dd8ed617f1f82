"""Benchmark: shared LLM pools against per-operator replicas on every shipped workload.

For each workload in ``configs/workload`` (and ``mixed_sizes`` cut into 2 and 4 slices per
size bucket, ``size_slices``) the default plan is solved with ``costs.llm_pools=off`` (every
LLM operator rounds its own replicas up, hetopt before shared pools) and ``shared`` (the
default), by HiGHS and CP-SAT, alternating the two modes ``--repeats`` times. It records the
options and shared keys of each problem, the TCO (which may only fall), the solver's status and
gap, and the median solve time, whose ratio shared/off is issue 17's "single-agent solve time
grows at most 2x" target.

Writes ``benchmarks/results/bench_llm_pools.csv`` and ``.png`` and prints the table.

Run: ``python benchmarks/bench_llm_pools.py [--repeats 3]``
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from hetopt.costs.table import CostParams  # noqa: E402
from hetopt.pipeline import PlanRequest, plan_agent  # noqa: E402
from hetopt.solvers import SolverOptions  # noqa: E402
from hetopt.workloads import Workload, load_workload_data, workload_names  # noqa: E402

RESULTS = Path(__file__).parent / "results"
BACKENDS = ("highs", "cpsat")
MODES = ("off", "shared")


def _workloads() -> list[tuple[str, Workload]]:
    out = [
        (name, Workload.from_mapping(load_workload_data(name), name)) for name in workload_names()
    ]
    for slices in (2, 4):
        data = load_workload_data("mixed_sizes")
        data["nodes"]["llm"]["size_slices"] = slices
        name = f"mixed_sizes (size_slices={slices})"
        out.append((name, Workload.from_mapping(data, name)))
    return out


def main() -> None:
    """Run the benchmark and write its CSV and figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("hetopt").setLevel(logging.WARNING)
    rows = []
    for name, workload in _workloads():
        for backend in BACKENDS:
            runs: dict[str, list[dict]] = {m: [] for m in MODES}
            for _ in range(args.repeats):
                for mode in MODES:  # alternate, so machine noise hits both alike
                    t0 = time.perf_counter()
                    out = plan_agent(
                        PlanRequest(
                            workload,
                            costs=CostParams(llm_pools=mode),
                            solver=SolverOptions(backend=backend),
                            baselines=(),
                        )
                    )
                    plan = out.plan
                    runs[mode].append(
                        {
                            "workload": name,
                            "backend": backend,
                            "llm_pools": mode,
                            "options": out.problem.n_options,
                            "shared_keys": out.problem.n_keys,
                            "tco_usd_per_h": plan.tco_usd_per_hour,
                            "status": str(plan.solve.status),
                            "gap": plan.solve.gap,
                            "verified": plan.verified,
                            "solve_s": plan.solve.runtime_s,
                            "plan_s": time.perf_counter() - t0,
                        }
                    )
            for mode in MODES:
                row = dict(runs[mode][0])
                row["solve_s"] = float(np.median([r["solve_s"] for r in runs[mode]]))
                row["plan_s"] = float(np.median([r["plan_s"] for r in runs[mode]]))
                rows.append(row)
            off, shared = rows[-2], rows[-1]
            print(
                f"{name:38s} {backend:6s} TCO {off['tco_usd_per_h']:9.4f} -> "
                f"{shared['tco_usd_per_h']:9.4f} $/h  solve {off['solve_s']:.3f} -> "
                f"{shared['solve_s']:.3f} s (x{shared['solve_s'] / off['solve_s']:.2f})  "
                f"keys {shared['shared_keys']}  {shared['status']}"
            )
    frame = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / "bench_llm_pools.csv", index=False)
    _figure(frame, RESULTS / "bench_llm_pools.png")
    wide = frame.pivot_table(
        index=["workload", "backend"], columns="llm_pools", values=["tco_usd_per_h", "solve_s"]
    )
    ratio = wide[("solve_s", "shared")] / wide[("solve_s", "off")]
    print(f"worst solve-time ratio shared/off: x{ratio.max():.2f} ({ratio.idxmax()})")


def _figure(frame: pd.DataFrame, path: Path) -> None:
    fig, (ax_cost, ax_time) = plt.subplots(1, 2, figsize=(12, 5))
    names = list(dict.fromkeys(frame["workload"]))
    y = np.arange(len(names))
    for k, backend in enumerate(BACKENDS):
        part = frame[frame["backend"] == backend].set_index(["workload", "llm_pools"])
        cost = [
            part.at[(n, "shared"), "tco_usd_per_h"] / part.at[(n, "off"), "tco_usd_per_h"]
            for n in names
        ]
        slow = [part.at[(n, "shared"), "solve_s"] / part.at[(n, "off"), "solve_s"] for n in names]
        ax_cost.barh(y + 0.4 * k, cost, height=0.4, label=backend)
        ax_time.barh(y + 0.4 * k, slow, height=0.4, label=backend)
    ax_time.axvline(2.0, color="red", linestyle="--", label="target: 2x")
    for ax, title in (
        (ax_cost, "TCO with shared LLM pools / without"),
        (ax_time, "solve time with shared LLM pools / without"),
    ):
        ax.set_yticks(y + 0.2, names)
        ax.set_title(title)
        ax.legend(loc="lower right")
    ax_cost.axvline(1.0, color="grey", linewidth=0.8)
    ax_time.set_yticklabels([])
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
