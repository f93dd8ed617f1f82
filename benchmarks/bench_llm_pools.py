"""Benchmark: shared LLM pools against per-operator replicas on every shipped workload.

For each workload in ``configs/workload`` (and ``mixed_sizes`` cut into 2 and 4 slices per
size bucket, ``size_slices``, and the synthetic chains of ``experiments/bench_scale.py`` at 4
and 8 stages) the default plan is solved with ``costs.llm_pools=off`` (every LLM operator
rounds its own replicas up, hetopt before shared pools), ``buckets`` (the default), ``model``
and ``aggregated`` (the default pools plus ``costs.aggregated=true``), by HiGHS and CP-SAT
with a 60 s limit, alternating the modes ``--repeats`` times.
It records the options and shared keys of each problem, the TCO (which may only fall), the
solver's status and gap, and the median solve time, whose ratio to ``off`` is issue 17's
"single-agent solve time grows at most 2x" target.

Writes ``benchmarks/results/bench_llm_pools.csv`` and ``.png`` and prints the table.

Run: ``python benchmarks/bench_llm_pools.py [--repeats 3]``
"""

from __future__ import annotations

import argparse
import logging
import sys
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))
from bench_scale import synthetic_agent  # noqa: E402

RESULTS = Path(__file__).parent / "results"
BACKENDS = ("highs", "cpsat")
MODES = ("off", "buckets", "model", "aggregated")
SETTINGS = {
    "off": CostParams(llm_pools="off"),
    "buckets": CostParams(llm_pools="buckets"),
    "model": CostParams(llm_pools="model"),
    "aggregated": CostParams(llm_pools="buckets", aggregated=True),
}
"""What each mode sets: ``costs.llm_pools`` (``aggregated``: the default pools plus
``costs.aggregated=true``)."""


def _workloads(chains: tuple[int, ...]) -> list[tuple[str, Workload]]:
    out = [
        (name, Workload.from_mapping(load_workload_data(name), name)) for name in workload_names()
    ]
    for slices in (2, 4):
        data = load_workload_data("mixed_sizes")
        data["nodes"]["llm"]["size_slices"] = slices
        name = f"mixed_sizes (size_slices={slices})"
        out.append((name, Workload.from_mapping(data, name)))
    out += [(f"bench_scale chain, {n} stages", synthetic_agent(n)) for n in chains]
    return out


def _run(workload: Workload, backend: str, mode: str, limit_s: float) -> dict:
    t0 = time.perf_counter()
    out = plan_agent(
        PlanRequest(
            workload,
            costs=SETTINGS[mode],
            solver=SolverOptions(backend=backend, time_limit_s=limit_s),
            baselines=(),
        )
    )
    plan = out.plan
    return {
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


def main() -> None:
    """Run the benchmark and write its CSV and figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chains", type=int, nargs="*", default=[4, 8])
    parser.add_argument("--time-limit", type=float, default=60.0)
    args = parser.parse_args()
    logging.getLogger("hetopt").setLevel(logging.WARNING)
    rows = []
    for name, workload in _workloads(tuple(args.chains)):
        for backend in BACKENDS:
            runs: dict[str, list[dict]] = {m: [] for m in MODES}
            for _ in range(args.repeats):
                for mode in MODES:  # alternate, so machine noise hits every mode alike
                    runs[mode].append(
                        {"workload": name, **_run(workload, backend, mode, args.time_limit)}
                    )
            base = float(np.median([r["solve_s"] for r in runs["off"]]))
            line = f"{name:32s} {backend:6s}"
            for mode in MODES:
                row = dict(runs[mode][0])
                row["solve_s"] = float(np.median([r["solve_s"] for r in runs[mode]]))
                row["plan_s"] = float(np.median([r["plan_s"] for r in runs[mode]]))
                row["solve_ratio_to_off"] = row["solve_s"] / base
                rows.append(row)
                line += (
                    f" | {mode}: {row['tco_usd_per_h']:9.4f} $/h {row['solve_s']:6.2f} s"
                    f" x{row['solve_ratio_to_off']:5.2f} {row['status']}"
                )
            print(line, flush=True)
    frame = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / "bench_llm_pools.csv", index=False)
    _figure(frame, RESULTS / "bench_llm_pools.png")
    for mode in MODES[1:]:
        part = frame[frame["llm_pools"] == mode]
        worst = part.loc[part["solve_ratio_to_off"].idxmax()]
        print(
            f"llm_pools={mode}: worst solve-time ratio to off x{worst['solve_ratio_to_off']:.2f} "
            f"({worst['workload']}, {worst['backend']}); TCO never above off: "
            f"{bool((part['tco_usd_per_h'].to_numpy() <= frame[frame['llm_pools'] == 'off']['tco_usd_per_h'].to_numpy() * (1 + 1e-9)).all())}"
        )


def _figure(frame: pd.DataFrame, path: Path) -> None:
    fig, (ax_cost, ax_time) = plt.subplots(1, 2, figsize=(13, 6))
    names = list(dict.fromkeys(frame["workload"]))
    y = np.arange(len(names))
    bars = [(b, m) for b in BACKENDS for m in MODES[1:]]
    height = 0.8 / len(bars)
    for k, (backend, mode) in enumerate(bars):
        part = frame[frame["backend"] == backend].set_index(["workload", "llm_pools"])
        cost = [
            part.at[(n, mode), "tco_usd_per_h"] / part.at[(n, "off"), "tco_usd_per_h"]
            for n in names
        ]
        slow = [part.at[(n, mode), "solve_ratio_to_off"] for n in names]
        label = f"{backend}, llm_pools={mode}"
        ax_cost.barh(y + height * k, cost, height=height, label=label)
        ax_time.barh(y + height * k, slow, height=height, label=label)
    ax_time.axvline(2.0, color="red", linestyle="--", label="target: 2x")
    ax_time.set_xscale("log")
    for ax, title in (
        (ax_cost, "TCO / TCO with llm_pools=off"),
        (ax_time, "solve time / solve time with llm_pools=off"),
    ):
        ax.set_yticks(y + 0.4 - height / 2, names)
        ax.set_title(title)
    ax_cost.legend(loc="lower left", fontsize=8)
    ax_time.legend(loc="lower right", fontsize=8)
    ax_cost.axvline(1.0, color="grey", linewidth=0.8)
    ax_time.set_yticklabels([])
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
