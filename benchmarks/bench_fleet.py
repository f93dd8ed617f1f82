"""Fleet-scale planning benchmark: exact backends and baselines from 4 to 2,000+ operators.

Writes ``bench_fleet.csv`` and ``bench_fleet.png`` into ``--out`` and prints the table. For each
seeded synthetic fleet (inventory capped at 70 % of the greedy plan's use on its three most-used
device types, so the limits bind) it runs:

* exact: the monolithic MILP (HiGHS; CBC up to 200 operators), the monolithic CP-SAT model,
  and the Lagrangian decomposition (HiGHS subproblems and master), each with a 60 s limit;
* baselines: greedy, HEFT-style list scheduling, homogeneous best single type (up to 200
  operators), and exhaustive enumeration on the tiny fleet.

Each row has the solve time, objective, proven bound, gap, time to the first feasible plan and
the cost gap to the best plan whose optimality is proven within 1 %. It also times the solver on
the whole paper pair study (Figures 8 and 9).

Every tenant is costed with ``costs.llm_pools`` = ``--llm-pools`` (hetopt's default,
``buckets``: tenants of one template share each LLM call's replicas); ``--sizes 2000x20`` runs
only those sizes. Runs other than the default write ``bench_fleet_<mode>_<sizes>.csv``.

Usage: ``python benchmarks/bench_fleet.py [--quick] [--llm-pools off] [--sizes 2000x20]
[--out benchmarks/results]``
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from hetopt.costs.table import CostParams
from hetopt.fleet import heuristics
from hetopt.fleet.evaluate import evaluate_fleet
from hetopt.fleet.generator import binding_inventory, synthetic_devices, synthetic_fleet
from hetopt.fleet.plan import run_baseline
from hetopt.fleet.problem import FleetProblem, build_fleet_problem
from hetopt.fleet.solve import solve_fleet
from hetopt.hardware.spec import HardwareSpec
from hetopt.solvers.base import SolverOptions

SIZES = [(10, 6), (50, 8), (200, 11), (500, 15), (1000, 20), (2000, 20), (2000, 30)]
QUICK = [(10, 6), (50, 8)]


def instance(
    n_ops: int,
    n_types: int,
    seed: int = 1,
    templates: tuple[str, ...] | None = None,
    costs: CostParams | None = None,
) -> tuple[FleetProblem, float]:
    """A synthetic fleet with a binding inventory, and its build time."""
    start = time.perf_counter()
    fleet = (
        synthetic_fleet(n_ops, seed)
        if templates is None
        else synthetic_fleet(n_ops, seed, templates)
    )
    names, rows = synthetic_devices(n_types, seed)
    fp = build_fleet_problem(fleet, HardwareSpec(devices=names, extra_rows=rows), costs)
    ref = heuristics.greedy(fp)
    assert ref.choices is not None
    caps = binding_inventory(fp.devices, evaluate_fleet(fp, ref.choices).devices_per_type, 0.7)
    fp = fp.with_inventory(np.array([caps.get(d, math.inf) for d in fp.devices]))
    return fp, time.perf_counter() - start


def exact_rows(fp: FleetProblem, limit_s: float, methods: list[tuple[str, str]]) -> list[dict]:
    rows = []
    for backend, method in methods:
        res = solve_fleet(
            fp,
            SolverOptions(backend=backend, time_limit_s=limit_s, gap_rel=1e-4, threads=2),
            method=method,  # type: ignore[arg-type]
        )
        rows.append(
            {
                "method": f"{method}/{backend}",
                "kind": "exact",
                "status": str(res.status),
                "objective_usd_per_h": res.objective_usd_per_h,
                "bound_usd_per_h": res.bound_usd_per_h,
                "gap": res.gap,
                "time_s": res.build_s + res.solve_s,
                "solve_s": res.solve_s,
                "first_feasible_s": res.first_feasible_s,
                "verified": res.verified,
            }
        )
        print(
            f"    {method}/{backend}: {res.status} {res.objective_usd_per_h:.3f} $/h, bound "
            f"{res.bound_usd_per_h:.3f}, gap {res.gap:.3%}, {res.build_s + res.solve_s:.1f} s",
            flush=True,
        )
    return rows


def baseline_rows(fp: FleetProblem, names: list[str]) -> list[dict]:
    rows = []
    options = SolverOptions(time_limit_s=20, gap_rel=1e-4)
    for name in names:
        res = run_baseline(fp, name, options)
        rows.append(
            {
                "method": name,
                "kind": "baseline",
                "status": "optimal"
                if res.proven_optimal
                else ("feasible" if res.choices is not None else "none"),
                "objective_usd_per_h": res.objective_usd_per_h,
                "bound_usd_per_h": res.objective_usd_per_h if res.proven_optimal else math.nan,
                "gap": 0.0 if res.proven_optimal else math.nan,
                "time_s": res.runtime_s,
                "solve_s": res.runtime_s,
                "first_feasible_s": res.runtime_s if res.choices is not None else math.nan,
                "verified": res.choices is not None,
                "detail": res.detail,
            }
        )
        print(
            f"    {name}: {res.objective_usd_per_h:.3f} $/h in {res.runtime_s:.2f} s "
            f"{res.detail[:80]}",
            flush=True,
        )
    return rows


def pair_study_seconds() -> tuple[float, float, int]:
    """Solver seconds and wall seconds of the paper's whole pair study (Figures 8 and 9)."""
    from hetopt.report.studies import figure_study

    start = time.perf_counter()
    frames = [figure_study(512, 4096), figure_study(4096, 512)]
    wall = time.perf_counter() - start
    frame = pd.concat(frames)
    return float(frame["solve_s"].sum()), wall, int(frame["solve_s"].notna().sum())


def tiny_rows(limit: float, costs: CostParams) -> list[dict]:
    """Every exact method and baseline on a fleet small enough to enumerate."""
    tiny, build_s = instance(4, 4, templates=("chat_agent",), costs=costs)
    print(
        f"tiny fleet: {tiny.n_tenants} tenants, {tiny.n_ops} operators, {tiny.n_options} options",
        flush=True,
    )
    rows = exact_rows(
        tiny,
        limit,
        [
            ("highs", "monolithic"),
            ("cpsat", "monolithic"),
            ("cbc", "monolithic"),
            ("highs", "decomposition"),
        ],
    )
    rows += baseline_rows(tiny, ["greedy", "heft", "homogeneous", "exhaustive"])
    return [
        {
            "instance": "tiny",
            "n_ops": tiny.n_ops,
            "n_tenants": tiny.n_tenants,
            "n_device_types": tiny.n_devices,
            "n_options": tiny.n_options,
            "build_s": build_s,
            **r,
        }
        for r in rows
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--quick", action="store_true", help="two small sizes, 10 s limits")
    parser.add_argument("--limit-s", type=float, default=60.0)
    parser.add_argument(
        "--llm-pools",
        default="buckets",
        choices=("off", "buckets", "model", "own"),
        help="costs.llm_pools of every tenant (default: hetopt's default, buckets)",
    )
    parser.add_argument(
        "--sizes",
        nargs="*",
        default=None,
        help="only these sizes, as <n_ops>x<n_types> (e.g. 2000x20); skips the pair study "
        "and the tiny fleet",
    )
    args = parser.parse_args()
    costs = CostParams(llm_pools=args.llm_pools)
    sizes = (
        [tuple(int(v) for v in size.split("x")) for size in args.sizes]
        if args.sizes
        else (QUICK if args.quick else SIZES)
    )
    args.out.mkdir(parents=True, exist_ok=True)
    limit = 10.0 if args.quick else args.limit_s
    records = []

    if not args.quick and not args.sizes:
        solver_s, wall_s, solves = pair_study_seconds()
        print(
            f"paper pair study (Figures 8 and 9): {solves} solves, solver time {solver_s:.2f} s "
            f"(target < 10 s), wall {wall_s:.1f} s",
            flush=True,
        )
        records.append(
            {
                "instance": "paper pair study",
                "n_ops": 2,
                "n_tenants": solves,
                "n_device_types": 9,
                "method": "monolithic/highs",
                "kind": "exact",
                "status": "optimal",
                "solve_s": solver_s,
                "time_s": wall_s,
            }
        )

    if not args.sizes:
        records += tiny_rows(limit, costs)

    for n_ops, n_types in sizes:
        fp, build_s = instance(n_ops, n_types, costs=costs)
        print(
            f"{n_ops} ops x {n_types} types: {fp.n_tenants} tenants, {fp.n_ops} operators, "
            f"{fp.n_options:,} options, build {build_s:.1f} s",
            flush=True,
        )
        methods = [("highs", "monolithic"), ("cpsat", "monolithic"), ("highs", "decomposition")]
        if fp.n_ops <= 200:
            methods.insert(2, ("cbc", "monolithic"))
        rows = exact_rows(fp, limit, methods)
        rows += baseline_rows(fp, ["greedy", "heft"] + (["homogeneous"] if fp.n_ops <= 200 else []))
        records += [
            {
                "instance": f"{n_ops}x{n_types}",
                "n_ops": fp.n_ops,
                "n_tenants": fp.n_tenants,
                "n_device_types": fp.n_devices,
                "n_options": fp.n_options,
                "build_s": build_s,
                **r,
            }
            for r in rows
        ]

    frame = pd.DataFrame(records)
    frame["llm_pools"] = args.llm_pools
    # Cost gap to the best plan proven within 1 %, per instance.
    best = {}
    for inst, grp in frame.groupby("instance"):
        proven = grp[(grp["kind"] == "exact") & (grp["gap"] <= 0.01)]
        if len(proven):
            best[inst] = proven["objective_usd_per_h"].min()
    frame["best_proven_usd_per_h"] = frame["instance"].map(best)
    frame["cost_gap_to_best"] = frame["objective_usd_per_h"] / frame["best_proven_usd_per_h"] - 1
    stem = (
        "bench_fleet"
        if not args.sizes and args.llm_pools == "buckets"
        else f"bench_fleet_{args.llm_pools}_{'_'.join(args.sizes or ['all'])}"
    )
    frame.to_csv(args.out / f"{stem}.csv", index=False)
    plot(frame[frame["instance"] != "paper pair study"], args.out / f"{stem}.png")
    cols = [
        "instance",
        "n_ops",
        "n_device_types",
        "method",
        "status",
        "objective_usd_per_h",
        "bound_usd_per_h",
        "gap",
        "time_s",
        "first_feasible_s",
        "cost_gap_to_best",
    ]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(frame[[c for c in cols if c in frame]].to_string(index=False, float_format="%.4g"))
    print(f"wrote {args.out / (stem + '.csv')} and {args.out / (stem + '.png')}")


def plot(frame: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    panels = [
        ("time_s", "solve time (s)", True),
        ("gap", "proven gap", True),
        ("first_feasible_s", "time to first feasible plan (s)", True),
        ("cost_gap_to_best", "cost above the best proven plan", False),
    ]
    for ax, (col, label, log) in zip(axes.flat, panels, strict=True):
        for method, grp in frame.groupby("method"):
            grp = grp.sort_values("n_ops")
            y = grp[col].astype(float)
            if col == "gap":
                y = y.clip(lower=1e-6)
            ax.plot(grp["n_ops"], y, marker="o", label=method)
        ax.set_xscale("log")
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("operators in the fleet")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0, 1].axhline(0.01, color="k", ls="--", lw=1)
    axes[1, 0].axhline(2.0, color="k", ls="--", lw=1)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("hetopt fleet planning: exact backends and baselines (2 cores, 60 s limit)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
