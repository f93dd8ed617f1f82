"""The worker side of ``hetopt sweep``: one Hydra task plans one point (or a chunk of points).

:func:`sweep_app` is the task the launcher runs in every worker process (joblib processes, Ray
tasks); :func:`run_point` plans one point and records it, never raising for the point's own
failure. The driver side (validation, the sweep directory's ownership, signals, results) is
:mod:`hetopt.cli.sweep`.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import math
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from hetopt.cli.schema import register
from hetopt.errors import HetoptUserError, InfeasibleError
from hetopt.solvers.base import WarmStart
from hetopt.sweeps import (
    FINISHED,
    claim_point,
    neighbours,
    params_of,
    plan_metrics,
    point_key,
    read_point,
    write_point,
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


def run_point(
    cfg: dict[str, Any],
    overrides: list[str],
    sweep_dir: Path,
    job_dir: Path | None = None,
    driver: str = "",
    task: Sequence[str] = (),
) -> float:
    """Plan one sweep point and record it; return its TCO ($/h) or nan.

    Never raises for a point's own failure: user errors, infeasibility and crashes are
    recorded in ``points/<key>.json`` with their message. While it plans, the point is
    claimed in ``running/<key>.json`` (this pid), so that a worker killed mid-point is known.
    Its plan goes to ``job_dir`` (default ``<sweep>/runs/<key>``: one directory per point,
    whichever driver or job ran it).
    """
    from hetopt.cli.config import request_from_config
    from hetopt.cli.outputs import write_outputs
    from hetopt.pipeline import plan_agent

    key = point_key(overrides)
    job_dir = job_dir or sweep_dir / "runs" / key
    sweep_cfg = cfg.get("sweep") or {}
    done = read_point(sweep_dir, key)
    if done is not None and (done["status"] in FINISHED or not sweep_cfg.get("retry_failed", True)):
        log.info("point %s already %s; skipped", key, done["status"])
        return float((done.get("metrics") or {}).get("tco_usd_per_h") or math.nan)
    claim_point(sweep_dir, key, driver)
    params = params_of(overrides)
    threads = task_cpus()
    cfg = {**cfg, "solver": {**(cfg.get("solver") or {}), "threads": threads}}
    record: dict[str, Any] = {
        "key": key,
        "overrides": overrides,
        "job_dir": str(job_dir),
        "pid": os.getpid(),
        "driver": driver,
        "threads": threads,
        "attempt": 1 + int((done or {}).get("attempt", 0)),
        "started": dt.datetime.now().isoformat(timespec="seconds"),
    }
    warm = None
    if sweep_cfg.get("warm_start", True) and _RECENT:
        warm = _RECENT[neighbours(params, (p for p, _ in _RECENT))][1]
    record["warm_start"] = warm is not None
    start = time.perf_counter()
    tco = math.nan
    try:
        if cfg.get("workload_file"):
            from hetopt.cli.compose import workload_from_file

            cfg["workload"] = workload_from_file(cfg, [*task, *overrides])
        outcome = plan_agent(request_from_config(cfg), warm_start=warm)
        plan = outcome.plan
        record["status"] = "ok"
        record["metrics"] = plan_metrics(plan)
        ws = WarmStart.from_result(outcome.problem, plan.solve)
        if ws is not None:
            record["solution"] = {"assignment": ws.assignment, "pools": ws.pools}
            _RECENT.append((params, ws))
            del _RECENT[:-_RECENT_MAX]
        write_outputs(
            outcome,
            cfg,
            job_dir,
            config=False,
            cost_table=False,
            figure=bool(sweep_cfg.get("figures")),
        )
        tco = plan.tco_usd_per_hour
    except InfeasibleError as exc:
        record.update(status="infeasible", error=str(exc))
    except HetoptUserError as exc:
        record.update(status="error", error=str(exc))
    except Exception as exc:  # noqa: BLE001  a crashed point is recorded; the sweep goes on
        record.update(
            status="crashed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()
        )
    record["wall_s"] = time.perf_counter() - start
    record["finished"] = dt.datetime.now().isoformat(timespec="seconds")
    record["config"] = cfg
    write_point(sweep_dir, record)
    log.info("point %s: %s in %.2f s", key, record["status"], record["wall_s"])
    return tco


def point_config(cfg: DictConfig, values: list[str]) -> dict[str, Any]:
    """``cfg`` with a point's value overrides applied (the job composed its groups already)."""
    point = copy.deepcopy(cfg)
    for o in OverridesParser.create().parse_overrides(values):
        OmegaConf.update(
            point, o.key_or_group, o.value(), merge=True, force_add=o.is_add() or o.is_force_add()
        )
    point.sweep.chunk = None
    data = OmegaConf.to_container(point, resolve=True)
    assert isinstance(data, dict)
    return {str(k): v for k, v in data.items()}


_WATCHDOG: list[threading.Thread] = []


def _exit_with_driver(driver_pid: int) -> None:
    """In a worker the driver started itself (joblib): exit soon after the driver dies.

    A driver killed by SIGKILL cannot stop its workers; this watch makes an orphaned worker
    exit within a second instead of idling for minutes. Its point, unrecorded, is planned
    again when the sweep is resumed. Ray workers (not the driver's children) are left alone.
    """
    if _WATCHDOG or os.getppid() != driver_pid:
        return

    def watch() -> None:
        while os.getppid() == driver_pid:
            time.sleep(1.0)
        os._exit(1)

    _WATCHDOG.append(threading.Thread(target=watch, name="hetopt-driver-watch", daemon=True))
    _WATCHDOG[0].start()


@hydra.main(config_path=str(config_dir()), config_name="config", version_base="1.3")
def sweep_app(cfg: DictConfig) -> float:
    """Hydra task: one sweep point, or a chunk of points (``sweep.chunk``, see the sweeper)."""
    import json

    hc = HydraConfig.get()
    sweep_dir = Path(hc.sweep.dir)
    chunk = cfg.sweep.get("chunk")
    if chunk is None:
        task = list(hc.overrides.task)
        return run_point(point_config(cfg, []), canonical(task), sweep_dir, task=task)
    data = json.loads((sweep_dir / "chunks" / f"{chunk}.json").read_text())
    driver_pid = int(str(data["driver"]).split("-")[0])
    if driver_pid != os.getpid():
        # A worker process: Ctrl-C reaches the whole terminal process group, but stopping
        # the sweep is the driver's job (it ends the workers and keeps what finished).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _exit_with_driver(driver_pid)
    tcos = [
        run_point(
            point_config(cfg, p["values"]),
            canonical(p["overrides"]),
            sweep_dir,
            driver=data["driver"],
            task=[*hc.overrides.task, *p["values"]],
        )
        for p in data["points"]
    ]
    return float(sum(tcos))
