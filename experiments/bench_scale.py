"""Benchmark: planning time against agent size, per solver backend.

Builds synthetic agents of growing size (chains of LLM calls, tool calls and vector lookups,
with a bounded tool loop every few stages), plans each on the full hardware catalog with every
MILP/CP-SAT backend, twice: without an end-to-end SLA, and with a binding one (90 % of the
end-to-end latency of the unconstrained optimum). Writes ``bench_scale.csv`` and ``bench_scale.png`` into the output
directory (default ``outputs/bench``). Prints one line per solve.

Run: ``python experiments/bench_scale.py [--stages 2 4 8 16 32] [--time-limit 60]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from hetopt.pipeline import PlanRequest, plan_agent, prepare  # noqa: E402
from hetopt.sla import Sla  # noqa: E402
from hetopt.solvers import SolverOptions  # noqa: E402
from hetopt.workloads import Workload  # noqa: E402


def synthetic_agent(stages: int) -> Workload:
    """A chain of ``stages`` LLM calls, each followed by a tool or a vector lookup."""
    nodes: dict[str, Any] = {}
    edges: list[dict[str, Any]] = []
    prev = None
    for s in range(stages):
        llm = f"llm{s}"
        nodes[llm] = {
            "kind": "model_execution",
            "model": "llama-3-70b" if s % 2 else "llama-3-8b",
            "input_tokens": 512 + 256 * (s % 4),
            "output_tokens": 64 + 64 * (s % 3),
        }
        if prev:
            edges.append({"src": prev, "dst": llm, "payload_bytes": 4096})
        if s % 3 == 2:
            tool = f"rag{s}"
            nodes[tool] = {
                "kind": "memory_lookup",
                "vectors": 2.0e6,
                "dim": 768,
                "scan_fraction": 0.05,
                "top_k": 8,
            }
        else:
            tool = f"tool{s}"
            nodes[tool] = {
                "kind": "tool_call",
                "lookup": {"latency_s": 0.2, "request_bytes": 512, "response_bytes": 8000},
                "compute": {"flops": 1.0e8, "mem_bytes": 1.0e7},
            }
        edges.append({"src": llm, "dst": tool, "payload_bytes": 1024})
        if s % 4 == 1:
            edges.append(
                {
                    "src": tool,
                    "dst": llm,
                    "payload_bytes": 8000,
                    "loop": {"expected_iterations": 1.0, "max_iterations": 2},
                }
            )
            nxt = f"post{s}"
            nodes[nxt] = {"kind": "general_compute", "work": {"flops": 1.0e7, "mem_bytes": 1.0e6}}
            edges.append({"src": llm, "dst": nxt, "payload_bytes": 1024})
            prev = nxt
        else:
            prev = tool
    data = {
        "name": f"synthetic_{stages}",
        "request_rate_per_s": 5.0,
        "nodes": nodes,
        "edges": edges,
    }
    return Workload.from_mapping(data, f"synthetic_{stages}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stages", type=int, nargs="+", default=[2, 4, 8, 16, 32])
    parser.add_argument("--backends", nargs="+", default=["highs", "cbc", "cpsat"])
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for stages in args.stages:
        workload = synthetic_agent(stages)
        free = plan_agent(PlanRequest(workload, sla=Sla(e2e_s=None), baselines=()))
        for sla_mode, backend in [(m, b) for m in ("none", "binding") for b in args.backends]:
            e2e = None if sla_mode == "none" else round(0.9 * free.plan.e2e_latency_s, 3)
            req = PlanRequest(
                workload,
                sla=Sla(e2e_s=e2e),
                solver=SolverOptions(backend=backend, time_limit_s=args.time_limit),
                baselines=(),
            )
            t0 = time.perf_counter()
            problem, *_ = prepare(req)
            t_prepare = time.perf_counter() - t0
            out = plan_agent(req)
            total = time.perf_counter() - t0
            s = out.plan.solve
            row = {
                "stages": stages,
                "sla": sla_mode,
                "e2e_sla_s": e2e,
                "operators": problem.n_ops,
                "options": problem.n_options,
                "edges": len(problem.edge_src),
                "backend": backend,
                "status": str(s.status),
                "tco_usd_per_h": out.plan.tco_usd_per_hour,
                "gap": s.gap,
                "solve_s": s.runtime_s,
                "prepare_s": t_prepare,
                "total_s": total,
                "verified": out.plan.verified,
            }
            rows.append(row)
            print(
                f"{stages:3d} stages {problem.n_ops:4d} ops {problem.n_options:5d} options "
                f"sla={sla_mode:7s} {backend:6s} {row['status']:8s} TCO {row['tco_usd_per_h']:9.3f} $/h "
                f"gap {s.gap:.1e} solve {s.runtime_s:7.2f} s prepare {t_prepare:5.2f} s "
                f"verified={row['verified']}",
                flush=True,
            )
    frame = pd.DataFrame(rows)
    frame.to_csv(args.out / "bench_scale.csv", index=False)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (backend, mode), group in frame.groupby(["backend", "sla"]):
        ax.plot(
            group["operators"],
            group["solve_s"],
            marker="o" if mode == "none" else "s",
            linestyle="-" if mode == "none" else ":",
            label=f"{backend}, e2e SLA {mode}",
        )
    prep = frame.groupby("operators")["prepare_s"].mean()
    ax.plot(prep.index, prep.to_numpy(), "k--", label="cost model + problem")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("operators in the agent graph")
    ax.set_ylabel("seconds (2-core machine)")
    ax.set_title("hetopt planning time vs agent size (11-device catalog)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out / "bench_scale.png", dpi=120)
    print(f"wrote {args.out / 'bench_scale.csv'} and {args.out / 'bench_scale.png'}")


if __name__ == "__main__":
    main()
