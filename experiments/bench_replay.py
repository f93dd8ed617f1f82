"""Benchmark: replay one simulated hour of the default voice agent at 100 requests/s.

Plans the voice agent at the given rate, replays ``--duration-s`` of Poisson traffic through the
plan on one core, and prints wall time, requests/s and SimPy events/s; writes
``bench_replay.csv`` and the replay's own tables and figure into ``--out``.

Run: ``python experiments/bench_replay.py [--rate 100] [--duration-s 3600]``
(target: 360,000 requests in under 60 s of wall time). ``--router kv_aware`` (or
``least_loaded``, ``random``) replays through the per-replica router instead of the static
path's one queue per pool, and ``--controller`` adds the re-planning controller.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import simpy

from hetopt.pipeline import PlanRequest, plan_agent
from hetopt.replay.arrivals import ArrivalSpec
from hetopt.replay.control import ControllerConfig, RouterConfig
from hetopt.replay.engine import ReplayConfig, replay
from hetopt.replay.report import write_replay
from hetopt.sla import Sla
from hetopt.workloads import load_workload


class _CountingEnvironment(simpy.Environment):
    """A SimPy environment that counts the events it processes."""

    events = 0

    def step(self) -> None:
        _CountingEnvironment.events += 1
        super().step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--duration-s", type=float, default=3600.0)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench_replay"))
    parser.add_argument(
        "--router",
        choices=("least_loaded", "kv_aware", "random"),
        default=None,
        help="route through per-replica queues with this policy",
    )
    parser.add_argument("--controller", action="store_true", help="re-plan pool sizes")
    args = parser.parse_args()
    workload = load_workload("voice_agent").with_rate(args.rate)
    out = plan_agent(PlanRequest(workload, sla=Sla(e2e_s=15.0), baselines=()))
    # the simulation builds its environment from this module attribute at run time
    simpy.Environment = _CountingEnvironment  # type: ignore[misc]
    start = time.perf_counter()
    router = RouterConfig(policy=args.router, max_wait_s=1e9) if args.router else RouterConfig()
    result = replay(
        out.plan,
        out.problem,
        out.table.frame,
        ReplayConfig(
            arrivals=ArrivalSpec(rate_per_s=args.rate),
            duration_s=args.duration_s,
            warmup_s=60.0,
            seed=0,
            router=router,
            controller=ControllerConfig(enabled=args.controller),
        ),
        graph=out.graph,
    )
    wall = time.perf_counter() - start
    s = result.summary
    row = {
        "path": s["router"] + (" + controller" if args.controller else ""),
        "rate_per_s": args.rate,
        "duration_s": args.duration_s,
        "requests": s["arrived"],
        "completed": s["completed"],
        "wall_s": wall,
        "requests_per_s": s["arrived"] / wall,
        "events": _CountingEnvironment.events,
        "events_per_s": _CountingEnvironment.events / wall,
        "e2e_p99_s": s["e2e_p99_s"],
        "sla_attainment": s["sla_attainment"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([row]).to_csv(args.out / "bench_replay.csv", index=False)
    print(f"path: {row['path']}")
    write_replay(result, args.out)
    print(
        f"{row['requests']:,} requests ({args.duration_s:g} s at {args.rate:g}/s) replayed in "
        f"{wall:.1f} s: {row['requests_per_s']:,.0f} requests/s, {row['events']:,} events, "
        f"{row['events_per_s']:,.0f} events/s (target: 360,000 requests under 60 s). "
        f"p99 {row['e2e_p99_s']:.2f} s, SLA attainment {row['sla_attainment']:.2%}"
    )


if __name__ == "__main__":
    main()
