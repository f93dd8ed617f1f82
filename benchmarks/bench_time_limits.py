"""Do solver time limits hold? Wall time against ``solver.time_limit_s``, model building included.

For each backend (HiGHS and CBC through PuLP, CP-SAT) and each limit, it solves instances that
cannot be proven within the limit on a 2-core machine:

* ``single``: :func:`hetopt.generators.hard_problem`, a single-agent chain (80 operators for the
  MILP backends, 40 for CP-SAT), started from its fastest plan;
* ``fleet``: a synthetic fleet (``hetopt.fleet.generator``) of ``--fleet-ops`` operators with
  the inventory of its three most-used device types capped at 70 % of the greedy plan's use
  (the monolithic model; the decomposition with HiGHS too).

Each row holds the wall time of the whole ``solve``/``solve_fleet`` call, its overrun past the
limit, the status, whether a bound is known, and the gap. The issue's target: every call ends
within one second of its limit. Writes ``bench_time_limits.csv`` and ``bench_time_limits.png``
into ``--out`` and prints the table.

Usage: ``python benchmarks/bench_time_limits.py [--limits 1 2] [--fleet-ops 300] [--out DIR]``
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from hetopt.cli.compose import compose_config  # noqa: E402
from hetopt.cli.fleet_cmd import fleet_request  # noqa: E402
from hetopt.fleet import heuristics  # noqa: E402
from hetopt.fleet.evaluate import evaluate_fleet  # noqa: E402
from hetopt.fleet.generator import binding_inventory  # noqa: E402
from hetopt.fleet.problem import FleetProblem, build_fleet_problem  # noqa: E402
from hetopt.fleet.solve import solve_fleet  # noqa: E402
from hetopt.generators import hard_problem  # noqa: E402
from hetopt.plotting import save_figure  # noqa: E402
from hetopt.solvers import SolverOptions, solve  # noqa: E402
from hetopt.solvers.base import WarmStart  # noqa: E402


def _binding_fleet(n_ops: int) -> FleetProblem:
    req = fleet_request(compose_config(["fleet=synthetic", f"fleet.synthetic.n_ops={n_ops}"]))
    fp = build_fleet_problem(req.fleet, req.hardware, req.costs, req.tco)
    greedy = heuristics.greedy(fp)
    assert greedy.choices is not None
    caps = binding_inventory(
        fp.devices, evaluate_fleet(fp, greedy.choices).devices_per_type, 0.7, 3
    )
    return fp.with_inventory(
        np.array(
            [min(fp.device_inventory[j], caps.get(d, math.inf)) for j, d in enumerate(fp.devices)]
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limits", type=float, nargs="+", default=[1.0, 2.0])
    parser.add_argument("--fleet-ops", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    rows = []
    fleet = _binding_fleet(args.fleet_ops)
    for limit_s in args.limits:
        for backend, n_ops in (("highs", 80), ("cbc", 80), ("cpsat", 40)):
            problem = hard_problem(n_ops)
            t0 = time.perf_counter()
            res = solve(
                problem,
                SolverOptions(backend=backend, time_limit_s=limit_s, gap_rel=1e-9),
                warm_start=WarmStart.fastest(problem),
            )
            wall_s = time.perf_counter() - t0
            rows.append(
                {
                    "instance": f"single-{n_ops}",
                    "backend": backend,
                    "method": "-",
                    "limit_s": limit_s,
                    "wall_s": wall_s,
                    "overrun_s": wall_s - limit_s,
                    "status": res.status.value,
                    "bound_known": math.isfinite(res.bound),
                    "gap": res.gap,
                }
            )
            print(f"single {backend:6s} limit {limit_s:g} s: {wall_s:.2f} s, {res.status.value}")
        for backend, method in (
            ("highs", "monolithic"),
            ("cbc", "monolithic"),
            ("cpsat", "monolithic"),
            ("highs", "decomposition"),
        ):
            t0 = time.perf_counter()
            fres = solve_fleet(
                fleet,
                SolverOptions(backend=backend, time_limit_s=limit_s, gap_rel=1e-9),
                method=method,
            )  # type: ignore[arg-type]
            wall_s = time.perf_counter() - t0
            rows.append(
                {
                    "instance": f"fleet-{args.fleet_ops}",
                    "backend": backend,
                    "method": method,
                    "limit_s": limit_s,
                    "wall_s": wall_s,
                    "overrun_s": wall_s - limit_s,
                    "status": fres.status.value,
                    "bound_known": math.isfinite(fres.bound_usd_per_h),
                    "gap": fres.gap,
                }
            )
            print(
                f"fleet  {backend:6s} {method:13s} limit {limit_s:g} s: {wall_s:.2f} s, "
                f"{fres.status.value}"
            )
    table = pd.DataFrame(rows)
    table.to_csv(args.out / "bench_time_limits.csv", index=False)

    fig, ax = plt.subplots(figsize=(9, 4.5))
    labels = [
        f"{r.instance}\n{r.backend}{'' if r.method == '-' else ' ' + r.method[:5]}"
        for r in table.itertuples()
    ]
    colors = ["tab:blue" if o <= 1.0 else "tab:red" for o in table["overrun_s"]]
    ax.bar(range(len(table)), table["overrun_s"], color=colors)
    ax.axhline(1.0, color="k", linestyle="--", label="target: within 1 s of the limit")
    ax.set_xticks(range(len(table)), labels, rotation=90, fontsize=7)
    ax.set_ylabel("wall time past the limit (s)")
    ax.set_title(f"Solver time limits {args.limits} s, model building included")
    ax.legend()
    save_figure(fig, args.out / "bench_time_limits.png")
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    worst = table["overrun_s"].max()
    print(
        f"worst overrun {worst:.2f} s over {len(table)} solves "
        f"({(table['overrun_s'] <= 1.0).mean():.0%} within 1 s of the limit)"
    )


if __name__ == "__main__":
    main()
