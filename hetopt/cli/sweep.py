"""``hetopt sweep`` (= ``hetopt plan -m``): Hydra multirun sweeps that never lose a result.

The command validates every swept value before launching (a bad key, type or range exits 2 and
nothing runs), writes the manifest of points, then hands the sweep to Hydra's launcher: joblib
with one process per core by default, Ray with ``hydra/launcher=ray``. Each point is one call of
:func:`sweep_app`, which

* skips a point already finished in this sweep directory (re-running resumes, and retries
  points that errored or crashed),
* sets the solver's threads to the CPUs the launcher gave the task,
* warm-starts the solver from the nearest point this worker solved before,
* records its outcome atomically (:mod:`hetopt.sweeps`), catching every exception, so one
  crashed point never stops the sweep.

While the launcher runs, a progress bar follows the point records as they land. At the end the
records are merged into ``results.csv`` (and a study figure for ``whatif=`` studies).
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import logging
import math
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hetopt.cli.schema import register
from hetopt.errors import HetoptUserError, InfeasibleError, InputError
from hetopt.solvers.base import WarmStart
from hetopt.sweeps import (
    FAILED,
    FINISHED,
    POINTS,
    is_complete,
    neighbours,
    params_of,
    plan_metrics,
    point_key,
    read_point,
    status_counts,
    write_json_atomic,
    write_manifest,
    write_results,
)
from hetopt.workloads import config_dir

log = logging.getLogger(__name__)
register()

# Recent solutions of this worker process, for warm starts: (swept params, warm start).
_RECENT: list[tuple[dict[str, Any], WarmStart]] = []
_RECENT_MAX = 32


def canonical(overrides: list[str]) -> list[str]:
    """``key=value`` strings as Hydra's parser reads them (sorted; ``hydra.*`` left out)."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    out = []
    for o in parsed:
        if o.key_or_group.startswith("hydra"):
            continue
        prefix = {"ADD": "+", "FORCE_ADD": "++", "DEL": "~"}.get(o.type.name, "")
        package = f"@{o.package}" if o.package else ""
        out.append(f"{prefix}{o.key_or_group}{package}={o.get_value_element_as_str()}")
    return sorted(out)


def task_cpus() -> int:
    """CPUs this task was given: Ray's assignment, or this machine's cores over joblib's workers."""
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
            if cpus:
                return max(1, int(cpus))
    cores = len(os.sched_getaffinity(0))
    if not HydraConfig.initialized():
        return cores
    n_jobs = OmegaConf.select(HydraConfig.get().launcher, "n_jobs", default=None)
    if n_jobs is None:
        return cores  # the basic launcher runs points one at a time
    workers = cores + 1 + int(n_jobs) if int(n_jobs) < 0 else min(int(n_jobs), cores)
    return max(1, cores // max(1, workers))


def run_point(cfg: dict[str, Any], overrides: list[str], sweep_dir: Path, job_dir: Path
              ) -> float:
    """Plan one sweep point and record it; return its TCO ($/h) or nan.

    Never raises for a point's own failure: user errors, infeasibility and crashes are
    recorded in ``points/<key>.json`` with their message.
    """
    from hetopt.cli.config import request_from_config
    from hetopt.cli.outputs import write_outputs
    from hetopt.pipeline import plan_agent

    key = point_key(overrides)
    sweep_cfg = cfg.get("sweep") or {}
    done = read_point(sweep_dir, key)
    if done is not None and (done["status"] in FINISHED
                             or not sweep_cfg.get("retry_failed", True)):
        log.info("point %s already %s; skipped", key, done["status"])
        return float((done.get("metrics") or {}).get("tco_usd_per_h") or math.nan)
    params = params_of(overrides)
    threads = task_cpus()
    cfg = {**cfg, "solver": {**(cfg.get("solver") or {}), "threads": threads}}
    record: dict[str, Any] = {"key": key, "overrides": overrides, "job_dir": str(job_dir),
                              "pid": os.getpid(), "threads": threads,
                              "attempt": 1 + int((done or {}).get("attempt", 0)),
                              "started": dt.datetime.now().isoformat(timespec="seconds")}
    warm = None
    if sweep_cfg.get("warm_start", True) and _RECENT:
        warm = _RECENT[neighbours(params, (p for p, _ in _RECENT))][1]
    record["warm_start"] = warm is not None
    start = time.perf_counter()
    tco = math.nan
    try:
        if cfg.get("workload_file"):
            from hetopt.workloads import load_workload

            cfg["workload"] = load_workload(str(cfg["workload_file"]))
        outcome = plan_agent(request_from_config(cfg), warm_start=warm)
        plan = outcome.plan
        record["status"] = "ok"
        record["metrics"] = plan_metrics(plan)
        ws = WarmStart.from_result(outcome.problem, plan.solve)
        if ws is not None:
            record["solution"] = {"assignment": ws.assignment, "pools": ws.pools}
            _RECENT.append((params, ws))
            del _RECENT[:-_RECENT_MAX]
        write_outputs(outcome, cfg, job_dir, config=False, cost_table=False,
                      figure=bool(sweep_cfg.get("figures")))
        tco = plan.tco_usd_per_hour
    except InfeasibleError as exc:
        record.update(status="infeasible", error=str(exc))
    except HetoptUserError as exc:
        record.update(status="error", error=str(exc))
    except Exception as exc:  # noqa: BLE001  a crashed point is recorded; the sweep goes on
        record.update(status="crashed", error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc())
    record["wall_s"] = time.perf_counter() - start
    record["finished"] = dt.datetime.now().isoformat(timespec="seconds")
    record["config"] = cfg
    write_json_atomic(sweep_dir / POINTS / f"{key}.json", record)
    log.info("point %s: %s in %.2f s", key, record["status"], record["wall_s"])
    return tco


def _point_config(cfg: DictConfig, values: list[str]) -> dict[str, Any]:
    """``cfg`` with a point's value overrides applied (the job composed its groups already)."""
    point = copy.deepcopy(cfg)
    for o in OverridesParser.create().parse_overrides(values):
        OmegaConf.update(point, o.key_or_group, o.value(), merge=True,
                         force_add=o.is_add() or o.is_force_add())
    point.sweep.chunk = None
    data = OmegaConf.to_container(point, resolve=True)
    assert isinstance(data, dict)
    return {str(k): v for k, v in data.items()}


@hydra.main(config_path=str(config_dir()), config_name="config", version_base="1.3")
def sweep_app(cfg: DictConfig) -> float:
    """Hydra task: one sweep point, or a chunk of points (``sweep.chunk``, see the sweeper)."""
    import json

    hc = HydraConfig.get()
    sweep_dir, job_dir = Path(hc.sweep.dir), Path(hc.runtime.output_dir)
    chunk = cfg.sweep.get("chunk")
    if chunk is None:
        return run_point(_point_config(cfg, []), canonical(list(hc.overrides.task)), sweep_dir,
                         job_dir)
    points = json.loads((sweep_dir / "chunks" / f"{chunk}.json").read_text())
    tcos = [run_point(_point_config(cfg, p["values"]), canonical(p["overrides"]), sweep_dir,
                      job_dir / str(i))
            for i, p in enumerate(points)]
    return float(sum(tcos))


# ------------------------------------------------------------------ the command (driver side)

def _sweep_plan(overrides: list[str]) -> tuple[list[str], list[str], list[tuple[str, list[str]]],
                                               dict[str, Any]]:
    """Split the overrides into Hydra's, fixed and swept ones (the study's params included).

    Returns ``(hydra_overrides, fixed, swept, study)`` with ``swept`` as ``(key, values)``.
    """
    from hydra import compose, initialize_config_dir

    parser = OverridesParser.create()
    try:
        parsed = parser.parse_overrides(overrides)
    except Exception as exc:  # hydra raises OverrideParseException
        raise InputError(f"Bad sweep override in {overrides}: {exc}") from None
    hydra_ovr, fixed, swept = [], [], []
    for raw, o in zip(overrides, parsed, strict=True):
        if o.key_or_group.startswith("hydra"):
            hydra_ovr.append(raw)
        elif o.is_sweep_override():
            swept.append((o.get_key_element(), [str(v) for v in o.sweep_string_iterator()]))
        else:
            fixed.append(f"{o.get_key_element()}={o.get_value_element_as_str()}")
    # A whatif study carries its grid in hydra.sweeper.params; the command line wins per key.
    from hetopt.cli.compose import compose_config

    compose_config(fixed)  # names a bad fixed override before anything else
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        hcfg = compose(config_name="config", overrides=fixed, return_hydra_config=True)
    study: dict[str, Any] = OmegaConf.to_container(hcfg.study, resolve=True) or {}  # type: ignore[assignment]
    node = OmegaConf.select(hcfg, "hydra.sweeper.params")
    params: dict[str, Any] = (OmegaConf.to_container(node, resolve=True)  # type: ignore[assignment]
                              if node is not None else {})
    on_cli = {k.lstrip("+") for k, _ in swept}
    for key, value in params.items():
        if str(key).lstrip("+") in on_cli:
            continue
        o = parser.parse_override(f"{key}={value}")
        values = ([str(v) for v in o.sweep_string_iterator()] if o.is_sweep_override()
                  else [o.get_value_element_as_str()])
        swept.insert(0, (str(key), values))
    empty = [k for k, v in swept if not v]
    if empty:
        raise InputError(f"The sweep over {empty} has no values (an empty range?). Give at "
                         f"least one value, e.g. 'sla.e2e_s=range(10,16)' or "
                         f"'sla.e2e_s=10,12,14'.")
    return hydra_ovr, fixed, swept, study


def _validate(fixed: list[str], swept: list[tuple[str, list[str]]],
              progress: Progress | None = None) -> None:
    """Compose and build the request for every swept value (one key at a time)."""
    from hetopt.cli.compose import request_from_config_checked

    total = sum(len(v) for _, v in swept)
    task = progress.add_task("validating", total=total, counts="") if progress else None
    for key, values in swept:
        for value in values:
            try:
                request_from_config_checked([*fixed, f"{key}={value}"])
            except HetoptUserError as exc:
                raise InputError(f"Sweep value {key}={value} is invalid: {exc}") from None
            if progress is not None and task is not None:
                progress.advance(task)
    if progress is not None and task is not None:
        progress.remove_task(task)


def _watch(sweep_dir: Path, keys: list[str], progress: Progress, stop: threading.Event) -> None:
    """Follow ``points/`` and move the progress bar as point records land."""
    seen: dict[str, str] = {}
    wanted = set(keys)
    task = progress.add_task("sweep", total=len(keys), counts="")
    while True:
        finished = stop.is_set()
        for path in (sweep_dir / POINTS).glob("*.json"):
            key = path.stem
            if key in wanted and seen.get(key) not in FINISHED:
                rec = read_point(sweep_dir, key)
                if rec is not None:
                    seen[key] = rec["status"]
        counts: dict[str, int] = {}
        for st in seen.values():
            counts[st] = counts.get(st, 0) + 1
        progress.update(task, completed=len(seen), counts=" ".join(
            f"{k} {v}" for k, v in sorted(counts.items())))
        if finished:
            return
        stop.wait(0.5)


def cmd_sweep(overrides: list[str], console: Console) -> int:
    """Run ``hetopt sweep [overrides...]`` (also ``hetopt plan -m ...``)."""
    overrides = [o for o in overrides if o not in ("-m", "--multirun")]
    hydra_ovr, fixed, swept, study = _sweep_plan(overrides)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[counts]}"))
    with Progress(*columns, console=console, transient=True) as progress:
        _validate(fixed, swept, progress)

    sweep_dir_ovr = [o for o in hydra_ovr if o.startswith("hydra.sweep.dir=")]
    if sweep_dir_ovr:
        sweep_dir = Path(sweep_dir_ovr[-1].partition("=")[2])
    else:
        stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        name = study.get("name") or "sweep"
        sweep_dir = Path("outputs") / "sweep" / f"{name}-{stamp}"
        hydra_ovr.append(f"hydra.sweep.dir={sweep_dir}")
    points = [canonical([*fixed, *(f"{k}={v}" for k, v in zip([k for k, _ in swept], combo,
                                                               strict=True))])
              for combo in itertools.product(*(v for _, v in swept))]
    keys = [point_key(p) for p in points]
    sweep_dir.mkdir(parents=True, exist_ok=True)
    write_manifest(sweep_dir, points, [k for k, _ in swept], ["hetopt", "sweep", *overrides])
    before = [read_point(sweep_dir, k) for k in keys]
    n_done = sum(1 for r in before if r is not None and r["status"] in FINISHED)
    console.print(f"sweep: {len(points)} points over {[k for k, _ in swept]} -> {sweep_dir}"
                  + (f" (resuming: {n_done} already finished)" if n_done else ""))

    quiet = [] if any(o.startswith("hydra/job_logging") for o in hydra_ovr) else [
        "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]
    argv = ["hetopt", "-m", *fixed, *(f"{k}={','.join(v)}" for k, v in swept), *hydra_ovr,
            *quiet]
    stop = threading.Event()
    started = time.perf_counter()
    saved = sys.argv
    with Progress(*columns, console=console) as progress:
        watcher = threading.Thread(target=_watch, args=(sweep_dir, keys, progress, stop),
                                   daemon=True)
        watcher.start()
        sys.argv = argv
        try:
            sweep_app()
        except SystemExit as exc:  # Hydra exits on a launcher error; the results are kept
            if exc.code not in (0, None):
                console.print(f"[red]the launcher stopped with status {exc.code}[/]")
        finally:
            sys.argv = saved
            stop.set()
            watcher.join()
    wall_s = time.perf_counter() - started
    return report_sweep(sweep_dir, console, wall_s=wall_s, study=study,
                        rerun=["hetopt", "sweep", *overrides, *([] if sweep_dir_ovr else [
                            f"hydra.sweep.dir={sweep_dir}"])])


def report_sweep(sweep_dir: Path, console: Console, *, wall_s: float | None = None,
                 study: dict[str, Any] | None = None, rerun: list[str] | None = None) -> int:
    """Aggregate ``sweep_dir``, draw the study figure, print the summary; 0 when complete."""
    if not sweep_dir.is_dir():
        raise InputError(f"No sweep directory at {sweep_dir}. Give the directory `hetopt "
                         f"sweep` printed (outputs/sweep/<name>-<time>).")
    path, frame = write_results(sweep_dir)
    counts = status_counts(frame)
    line = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    rate = ""
    if wall_s is not None and len(frame):
        rate = f" in {wall_s:.1f} s ({len(frame) / wall_s * 60:.0f} points/min)"
    console.print(f"{len(frame)} points{rate}: {line}")
    console.print(f"Wrote {path}")
    if study and study.get("name") and counts.get("ok"):
        from hetopt.report.whatif import plot_study

        fig = plot_study(frame, study, sweep_dir / f"{study['name']}.png")
        console.print(f"Wrote {fig}")
    if is_complete(frame):
        return 0
    failed = frame[frame["status"].isin(FAILED)]
    for rec in failed.head(3).itertuples():
        console.print(f"[red]{rec.status}[/] {rec.overrides}: {str(rec.error)[:300]}",
                      highlight=False)
    missing = int((frame["status"] == "missing").sum())
    console.print(
        f"[yellow]The sweep is not complete: {len(failed)} failed, {missing} missing. "
        f"results.csv marks them by status; do not read it as the full grid.[/] Re-run "
        + (f"`{' '.join(rerun)}`" if rerun else "the same sweep with hydra.sweep.dir="
           f"{sweep_dir}") + " to finish it: finished points are kept, the rest re-planned.")
    return 1
