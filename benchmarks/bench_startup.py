"""Start-up time: ``hetopt --help``, a default ``hetopt plan``, and building the 126-operator instance.

The issue's targets (quiet 2-core machine): ``hetopt --help`` in at most 0.3 s, the default
``hetopt plan`` (figure included) in at most 1.5 s, and building the 126-operator benchmark
instance (``experiments/bench_scale.py``'s 32-stage agent: cost table and placement problem,
:func:`hetopt.pipeline.prepare`) in at most 0.5 s.

A fourth measure, ``imports``, is the floor under the default plan: a fresh interpreter that
imports only the third-party modules a default plan ends up loading (pandas, matplotlib, Hydra,
PuLP, ...; recorded from a plan run in that tree, in the order they loaded) and nothing of
hetopt. What ``plan`` takes above it is hetopt's own share; no change to hetopt can take the
plan below it while those libraries are what it plans, draws and composes with.

Every measurement runs in a fresh interpreter. With ``--old DIR`` (a checkout of an earlier
hetopt, e.g. a ``git worktree`` of main) the same measurements run against that tree too,
alternating old and new run by run so that a noisy machine slows both alike; the summary gives
the median of each and the ratio new / old. The build is timed twice in its process: the first
build (caches empty: the step model's configurations, the calibration table) and a second one,
which is what ``bench_scale.py``'s ``prepare_s`` column measures. The plan of the first run of
each tree is kept and, with ``--old``, compared file by file (``plan.png`` included).

Writes ``startup.csv`` (one row per run: measure, tree, repeat, wall and CPU seconds) and
``startup.png`` into ``--out`` (default ``benchmarks/results``) and prints the table.

Usage: ``python benchmarks/bench_startup.py [--old /path/to/old/tree] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import filecmp
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from hetopt.atomic import write_csv_atomic
from hetopt.plotting import save_figure, subplots

NEW = Path(__file__).resolve().parents[1]
TARGETS_S = {"help": 0.3, "plan": 1.5, "imports": math.nan, "build": 0.5, "build_again": 0.5}
LABELS = {
    "help": "hetopt --help",
    "plan": "hetopt plan (default, figure included)",
    "imports": "its third-party imports alone (the floor)",
    "build": "126-operator build (first in its process)",
    "build_again": "126-operator build (again: bench_scale's prepare_s)",
}
# Runs in the measured tree: times prepare() of bench_scale's 32-stage agent, twice.
BUILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from bench_scale import synthetic_agent
from hetopt.pipeline import PlanRequest, prepare
from hetopt.sla import Sla
workload = synthetic_agent(32)
try:  # a tree with the typed Workload at its input edge
    from hetopt.workloads import Workload
    if not isinstance(workload, Workload):
        workload = Workload.from_mapping(workload, workload["name"])
    request = PlanRequest(workload, sla=Sla(e2e_s=None), baselines=())
except ImportError:  # an older tree took the raw mapping and its name
    request = PlanRequest(workload, workload["name"], sla=Sla(e2e_s=None), baselines=())
out = {}
for key in ("build", "build_again"):
    wall, cpu = time.perf_counter(), time.process_time()
    problem, *_ = prepare(request)
    out[key] = (time.perf_counter() - wall, time.process_time() - cpu, problem.n_ops)
print(json.dumps(out))
"""
# Runs in the measured tree: a default plan, then the third-party modules it loaded, in order.
PLAN_MODULES = """
import contextlib, io, json, sys, sysconfig, tempfile
from hetopt.cli.main import main
with contextlib.redirect_stdout(io.StringIO()):
    assert main(["plan", "hydra.run.dir=" + tempfile.mkdtemp() + "/run"]) == 0
roots = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
print(json.dumps([
    name for name, module in list(sys.modules.items())
    if any(str(getattr(module, "__file__", None) or "").startswith(r) for r in roots)
    and name.split(".")[0] not in ("hetopt", "hydra_plugins")
]))
"""
# Imports those modules (a JSON list in argv[1]) and nothing else.
IMPORT_ONLY = """
import importlib, json, sys
failed = []
for name in json.load(open(sys.argv[1])):
    try:
        importlib.import_module(name)
    except Exception:  # a module that only loads as a side effect of its parent
        if name not in sys.modules:
            failed.append(name)
print(json.dumps(failed))
"""
COMPARED = ("plan.png", "placement.csv", "devices.csv", "cost_table.csv")


def _run(tree: Path, args: list[str]) -> tuple[float, float, str]:
    """Wall and CPU seconds of ``python args`` with ``tree`` first on the path, and its stdout."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, cwd=tree, timeout=600
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, proc.stdout


def measure(tree: Path, label: str, repeat: int, keep: Path) -> list[dict[str, object]]:
    """One run of every measure against ``tree``; the first plan is kept under ``keep``."""
    rows: list[dict[str, object]] = []
    modules = keep / f"{label}-modules.json"
    if not modules.exists():
        modules.write_text(_run(tree, ["-c", PLAN_MODULES])[2].strip().splitlines()[-1])

    def row(measure: str, wall: float, cpu: float) -> None:
        rows.append(
            {"measure": measure, "tree": label, "repeat": repeat, "wall_s": wall, "cpu_s": cpu}
        )

    wall, cpu, _ = _run(tree, ["-m", "hetopt.cli.main", "--help"])
    row("help", wall, cpu)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        wall, cpu, _ = _run(tree, ["-m", "hetopt.cli.main", "plan", f"hydra.run.dir={run_dir}"])
        row("plan", wall, cpu)
        if repeat == 0:
            shutil.copytree(run_dir, keep / label)
    wall, cpu, out = _run(tree, ["-c", IMPORT_ONLY, str(modules)])
    row("imports", wall, cpu)
    failed = json.loads(out.strip().splitlines()[-1])
    if failed:  # the floor misses these: say so rather than report it too low
        print(f"{label}: {len(failed)} modules of the plan did not import alone: {failed[:5]}")
    _, _, out = _run(tree, ["-c", BUILD, str(tree / "experiments")])
    for key, (wall, cpu, n_ops) in json.loads(out.strip().splitlines()[-1]).items():
        assert n_ops == 126, f"the 32-stage agent has {n_ops} operators, not 126"
        row(key, wall, cpu)
    return rows


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Median wall (and CPU) seconds per measure and tree, the ratio new / old, the target."""
    med = frame.groupby(["measure", "tree"])[["wall_s", "cpu_s"]].median().unstack("tree")
    out = pd.DataFrame(index=[m for m in LABELS if m in med.index])
    for tree in frame["tree"].unique():
        out[f"{tree}_wall_s"] = med[("wall_s", tree)]
        out[f"{tree}_cpu_s"] = med[("cpu_s", tree)]
    if "old" in set(frame["tree"]):
        out["ratio_wall"] = out["new_wall_s"] / out["old_wall_s"]
        out["ratio_cpu"] = out["new_cpu_s"] / out["old_cpu_s"]
    out["target_s"] = [TARGETS_S[m] for m in out.index]
    out["new_meets_target"] = [
        "" if math.isnan(t) else bool(v <= t)
        for v, t in zip(out["new_wall_s"], out["target_s"], strict=True)
    ]
    return out


def plot(table: pd.DataFrame, path: Path) -> Path:
    """Median wall seconds per measure, old and new side by side, with the targets."""
    fig, ax = subplots(figsize=(8, 3.8))
    trees = [t for t in ("old", "new") if f"{t}_wall_s" in table]
    width = 0.8 / len(trees)
    for k, tree in enumerate(trees):
        xs = [i + (k - (len(trees) - 1) / 2) * width for i in range(len(table))]
        bars = ax.bar(xs, table[f"{tree}_wall_s"], width, label=f"{tree} tree (median)")
        for bar, value in zip(bars, table[f"{tree}_wall_s"], strict=True):
            ax.annotate(
                f"{value:.2f}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
            )
    for i, target in enumerate(table["target_s"]):
        if math.isnan(target):
            continue
        ax.hlines(target, i - 0.45, i + 0.45, colors="k", linestyles="--", linewidth=1)
    ax.set_xticks(range(len(table)), [LABELS[m].replace(" (", "\n(") for m in table.index])
    ax.tick_params(axis="x", labelsize=7)
    ax.set_ylabel("wall seconds")
    ax.set_title("hetopt start-up (dashed: target)", fontsize=10)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", type=Path, help="an earlier hetopt tree to compare against")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=NEW / "benchmarks" / "results")
    args = parser.parse_args()
    trees = [("new", NEW)] + ([("old", args.old.resolve())] if args.old else [])
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as keep_dir:
        keep = Path(keep_dir)
        for repeat in range(args.repeats):
            order = trees if repeat % 2 == 0 else trees[::-1]  # alternate who goes first
            for label, tree in order:
                rows += measure(tree, label, repeat, keep)
                print(f"repeat {repeat} {label} done", flush=True)
        same = {
            name: filecmp.cmp(keep / "new" / name, keep / "old" / name, shallow=False)
            for name in COMPARED
            if args.old
        }
    frame = pd.DataFrame(rows)
    write_csv_atomic(args.out / "startup.csv", frame)
    table = summary(frame)
    plot(table, args.out / "startup.png")
    with pd.option_context("display.width", 200, "display.precision", 3):
        print(table.to_string())
    if same:
        print("default plan, old and new tree, identical files:", same)
    print(f"wrote {args.out / 'startup.csv'} and {args.out / 'startup.png'}")


if __name__ == "__main__":
    main()
