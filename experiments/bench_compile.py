"""Benchmark: compile and verify the default plan through the MLIR stage.

Plans each workload with the default config, then runs ``compile_plan``: export to the agent
dialects, decomposition rewrites, cost annotation, placement, one IREE module per device
partition, execution of every kernel on this CPU against NumPy, and calibration of the CPU
roofline. Prints the wall time of each step (target: the default plan compiled and verified in
under 60 s) and the predicted/measured ratio of the CPU kernels before and after calibration
(goal: GEMM-shaped operators within 25 %); writes ``bench_compile.csv``,
``bench_compile.png`` and each run's own files into ``--out``.

Run: ``python experiments/bench_compile.py [--workloads voice_agent rag_agent] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from hetopt.cli.compile_cmd import compile_options_from
from hetopt.cli.config import request_from_config
from hetopt.cli.main import compose_config
from hetopt.hardware import load_catalog
from hetopt.mlir.compile import compile_plan
from hetopt.mlir.report import write_compile
from hetopt.pipeline import plan_agent
from hetopt.report.figures import plt, save_figure


def run_one(name: str, out: Path, repeat: int) -> dict[str, object]:
    """Plan ``name`` with the default config (as `hetopt compile workload=name` does)."""
    start = time.perf_counter()
    cfg = compose_config([f"workload={name}"])
    request = request_from_config(cfg)
    outcome = plan_agent(request)
    plan_s = time.perf_counter() - start
    catalog = load_catalog()
    report = compile_plan(
        request.workload.graph,
        outcome.graph,
        outcome.plan.placement,
        catalog,
        compile_options_from(cfg),
        request.workload,
    )
    total_s = time.perf_counter() - start
    write_compile(report, catalog, out / f"{name}-{repeat}")
    cal = report.calibration
    s = cal.summary() if cal else {}
    row: dict[str, object] = {
        "workload": name,
        "repeat": repeat,
        "plan_s": plan_s,
        **{f"{k}_s": v for k, v in report.seconds.items()},
        "total_s": total_s,
        "partitions": len(report.partitions),
        "compiled": sum(p.compiled for p in report.partitions),
        "targets": " ".join(p.target.label for p in report.partitions if p.kernels),
        "kernels_run": len(report.kernels),
        "max_rel_error": float(report.kernels["max_rel_error"].max()),
        "structure_matches": report.structure_matches,
    }
    if cal is not None:
        ops = cal.operators()
        row.update(
            {
                "compute_eff_before": cal.before.compute_efficiency,
                "compute_eff_after": cal.after.compute_efficiency,
                "bandwidth_eff_after": cal.after.bandwidth_efficiency,
                "overhead_us_after": cal.after.overhead_s * 1e6,
                "gemm_op_ratio_before_median": float(ops["ratio_before"].median()),
                "gemm_op_ratio_after_median": float(ops["ratio_after"].median()),
                "gemm_op_ratio_after_min": float(ops["ratio_after"].min()),
                "gemm_op_ratio_after_max": float(ops["ratio_after"].max()),
                **{k: v for k, v in s.items() if "median" in k or "within" in k},
            }
        )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=["voice_agent", "rag_agent"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("experiments/results/compile"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.workloads:
        for r in range(args.repeats):
            row = run_one(name, args.out, r)
            rows.append(row)
            print(
                f"{name} #{r}: total {row['total_s']:.1f} s (plan {row['plan_s']:.1f}, "
                f"passes {row['passes_s']:.2f}, compile {row['compile_s']:.1f}, execute "
                f"{row.get('execute_s', 0):.1f}); {row['compiled']}/{row['partitions']} "
                f"partitions [{row['targets']}]; {row['kernels_run']} kernels, max rel err "
                f"{row['max_rel_error']:.1e}; GEMM operators predicted/measured median "
                f"{row.get('gemm_op_ratio_before_median', float('nan')):.2f} before -> "
                f"{row.get('gemm_op_ratio_after_median', float('nan')):.2f} after (range "
                f"{row.get('gemm_op_ratio_after_min', float('nan')):.2f}-"
                f"{row.get('gemm_op_ratio_after_max', float('nan')):.2f}); GEMM kernels "
                f"within 25 %: {row.get('gemm_within_25pct_after', float('nan')):.0%}"
            )
    frame = pd.DataFrame(rows)
    frame.to_csv(args.out / "bench_compile.csv", index=False)
    fig, ax = plt.subplots(figsize=(8, 4))
    steps = [c for c in ("plan_s", "passes_s", "compile_s", "execute_s") if c in frame]
    labels = [f"{w} #{r}" for w, r in zip(frame["workload"], frame["repeat"], strict=True)]
    bottom = pd.Series(0.0, index=frame.index)
    for c in steps:
        ax.barh(labels, frame[c], left=bottom, label=c.removesuffix("_s"))
        bottom += frame[c]
    ax.axvline(60, color="k", ls="--", lw=0.8)
    ax.set_xlabel("wall time (s); dashed: 60 s target")
    ax.legend(fontsize=8)
    ax.set_title("hetopt compile: plan -> MLIR passes -> IREE -> CPU check + calibration")
    save_figure(fig, args.out / "bench_compile.png")
    print(f"wrote {args.out / 'bench_compile.csv'} and bench_compile.png")


if __name__ == "__main__":
    main()
