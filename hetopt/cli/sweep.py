"""``hetopt sweep`` (= ``hetopt plan -m``): Hydra multirun sweeps that never lose a result.

The command validates every swept value before launching (a bad key, type or range, a bad
``workload.*`` value or ``workload_file``, exits 2 and nothing runs), claims the sweep
directory for its grid (``sweep.json``; a different grid there is refused, the same grid
resumes; one driver at a time holds ``.lock``), then hands the sweep to Hydra's launcher:
joblib with one process per core by default, Ray with ``hydra/launcher=ray``. Each point is
one call of :func:`run_point`, which

* skips a point already finished in this sweep directory (re-running resumes, and retries
  points that errored or crashed),
* claims the point in ``running/`` while it plans it, so a worker killed mid-point is known
  (the sweeper, ``hydra_plugins/hetopt_sweeper``, re-runs such a point alone and records it
  ``crashed`` with the signal if it kills its worker again; the sweep goes on),
* sets the solver's threads to the CPUs the launcher gave the task,
* warm-starts the solver from the nearest point this worker solved before,
* records its outcome atomically (:mod:`hetopt.sweeps`), catching every exception, so one
  crashed point never stops the sweep.

``--config-dir DIR`` (``-cd``) reaches every compose of the sweep: the driver's checks
compose with it, and the launcher gets it as Hydra's ``hydra.searchpath`` override, which
Hydra hands to the sweeper and to every worker (joblib processes, Ray tasks); the recorded
resume command carries it, and ``sweep.json`` records the directories (the same grid from
other directories is refused). ``--cfg job|hydra|all`` prints the config composed with the
fixed overrides and then the swept axes as a YAML comment block, and runs nothing.

While the launcher runs, a progress bar follows the point records as they land. SIGINT or
SIGTERM stops the workers, writes ``results.csv`` from what finished and prints the command
that resumes the sweep (exit 130 or 143). At the end the records are merged into
``results.csv`` (and a study figure for ``whatif=`` studies, which ``hetopt aggregate``
redraws from the study recorded in ``sweep.json``).
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import fcntl
import itertools
import logging
import math
import os
import re
import shlex
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hetopt.atomic import output_error
from hetopt.cli.compose import searchpath_override
from hetopt.cli.schema import register
from hetopt.errors import HetoptUserError, InfeasibleError, InputError
from hetopt.solvers.base import WarmStart
from hetopt.sweeps import (
    FAILED,
    FINISHED,
    POINTS,
    claim_manifest,
    claim_point,
    claims,
    clear_claims,
    describe_grid,
    grid_manifest,
    is_complete,
    neighbours,
    params_of,
    plan_metrics,
    point_key,
    read_manifest,
    read_point,
    same_grid,
    status_counts,
    write_point,
    write_results,
)
from hetopt.workloads import config_dir

log = logging.getLogger(__name__)
register()

SWEEP_USAGE = """\
usage: hetopt sweep [key=v1,v2,... | key=range(a,b[,step]) | key=value | group=a,b ...]
                    [whatif=<study>] [hydra.sweep.dir=DIR] [hydra/launcher=ray]
                    [--config-dir DIR] [--cfg job|hydra|all [--resolve]] [-h]
       hetopt plan -m ...   (the same)

Plan every point of a grid in parallel: the product of the swept keys (comma lists,
range(...), config groups such as workload=a,b), or a what-if study (whatif=<name>,
configs/whatif/; a value given on the command line fixes that axis of the study). Every
swept value is checked before anything runs (a bad one exits 2). The points run in one
process per core (joblib) or on Ray (hydra/launcher=ray; pip install 'hetopt[dist]').

examples:
  hetopt sweep sla.e2e_s=12,13,14 solver=highs,cpsat
  hetopt sweep whatif=electricity tco.pue=1.1
  hetopt sweep -cd my_configs workload=my_agent,worked_example sla.e2e_s=0.13,0.2
  hetopt sweep --cfg job sla.e2e_s=range(10,16)   # the config and the axes; runs nothing

output: hydra.sweep.dir (default outputs/sweep/<study or sweep>-<time>): sweep.json (the grid
  and the command that resumes it), points/<key>.json per point, runs/<key>/ (its plan) and
  results.csv. Re-running the same command into the same hydra.sweep.dir resumes the sweep
  (finished points are kept); a different grid there is refused. Ctrl-C or SIGTERM stops the
  workers, keeps what finished and prints the resume command.
--config-dir DIR (-cd): more config groups for every point (DIR/workload/my_agent.yaml makes
  workload=my_agent); the resume command carries it.
--cfg job|hydra|all: print the config composed with the fixed overrides, then the swept axes
  (# swept (N points): key: [values]); runs and writes nothing. --resolve resolves it.
"""

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
            from hetopt.workloads import load_workload_data

            cfg["workload"] = load_workload_data(str(cfg["workload_file"]))
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


def _point_config(cfg: DictConfig, values: list[str]) -> dict[str, Any]:
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
        return run_point(_point_config(cfg, []), canonical(list(hc.overrides.task)), sweep_dir)
    data = json.loads((sweep_dir / "chunks" / f"{chunk}.json").read_text())
    driver_pid = int(str(data["driver"]).split("-")[0])
    if driver_pid != os.getpid():
        # A worker process: Ctrl-C reaches the whole terminal process group, but stopping
        # the sweep is the driver's job (it ends the workers and keeps what finished).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _exit_with_driver(driver_pid)
    tcos = [
        run_point(
            _point_config(cfg, p["values"]),
            canonical(p["overrides"]),
            sweep_dir,
            driver=data["driver"],
        )
        for p in data["points"]
    ]
    return float(sum(tcos))


# ------------------------------------------------------------------ the command (driver side)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def check_study_name(name: Any) -> str:
    """``study.name`` if it is a plain name (it names files in the sweep directory).

    Raises
    ------
    InputError
        For a name with a path separator, ``..``, or other characters.

    Examples
    --------
    >>> check_study_name("electricity")
    'electricity'
    """
    text = str(name)
    if not _NAME.fullmatch(text) or ".." in text:
        raise InputError(
            f"study.name={text!r} is not a plain name: it names the study's figure inside the "
            f"sweep directory, so it may hold only letters, digits, '_', '-' and '.', start "
            f"with a letter or digit, and contain no '/' or '..'. Use e.g. study.name=my_study."
        )
    return text


def _sweep_plan(
    overrides: list[str], config_dirs: tuple[Path, ...] = ()
) -> tuple[list[str], list[str], list[tuple[str, list[str]]], dict[str, Any], list[str]]:
    """Split the overrides into Hydra's, fixed and swept ones (the study's params included).

    Returns ``(hydra_overrides, fixed, swept, study, collapsed)`` with ``swept`` as
    ``(key, values)``. A study axis whose key is also given a single value on the command
    line collapses to that value (it stays in ``fixed``); ``collapsed`` names those keys.
    ``config_dirs`` are the ``--config-dir`` directories the fixed overrides compose with.
    """
    parser = OverridesParser.create()
    try:
        parsed = parser.parse_overrides(overrides)
    except Exception as exc:  # hydra raises OverrideParseException
        raise InputError(f"Bad sweep override in {overrides}: {exc}") from None
    hydra_ovr, fixed, swept = [], [], []
    for raw, o in zip(overrides, parsed, strict=True):
        if o.key_or_group in ("hydra.run.dir", "run_dir", "hydra.run"):
            raise InputError(
                f"hetopt sweep does not use {raw!r} (--out and run_dir= set it too): "
                f"hydra.run.dir is where a single run goes. A sweep goes to hydra.sweep.dir "
                f"(e.g. hydra.sweep.dir=outputs/sweep/mine), each point to "
                f"<hydra.sweep.dir>/runs/<key>."
            )
        if o.key_or_group.startswith("hydra"):
            hydra_ovr.append(raw)
        elif o.is_sweep_override():
            swept.append((o.get_key_element(), [str(v) for v in o.sweep_string_iterator()]))
        else:
            fixed.append(f"{o.get_key_element()}={o.get_value_element_as_str()}")
    # A whatif study carries its grid in hydra.sweeper.params; the command line wins per key.
    from hetopt.cli.compose import compose_run

    comp = compose_run("plan", fixed, config_dirs)  # names a bad fixed override first
    study: dict[str, Any] = dict(comp.cfg.get("study") or {})
    if study.get("name") is not None:
        check_study_name(study["name"])
    node = OmegaConf.select(comp.hydra, "hydra.sweeper.params")
    params: dict[str, Any] = (
        OmegaConf.to_container(node, resolve=True)  # type: ignore[assignment]
        if node is not None
        else {}
    )
    on_cli = {k.lstrip("+") for k, _ in swept}
    fixed_keys = {f.partition("=")[0].lstrip("+~") for f in fixed}
    collapsed = []
    for key, value in params.items():
        name = str(key).lstrip("+")
        if name in on_cli:
            continue
        if name in fixed_keys:  # the command line fixes this axis of the study
            collapsed.append(name)
            continue
        o = parser.parse_override(f"{key}={value}")
        values = (
            [str(v) for v in o.sweep_string_iterator()]
            if o.is_sweep_override()
            else [o.get_value_element_as_str()]
        )
        swept.insert(0, (str(key), values))
    empty = [k for k, v in swept if not v]
    if empty:
        raise InputError(
            f"The sweep over {empty} has no values (an empty range?). Give at "
            f"least one value, e.g. 'sla.e2e_s=range(10,16)' or "
            f"'sla.e2e_s=10,12,14'."
        )
    return hydra_ovr, fixed, swept, study, collapsed


def _is_group(key: str, config_dirs: tuple[Path, ...] = ()) -> bool:
    """Whether ``key`` names a config group (shipped, or in a ``--config-dir`` directory)."""
    name = key.lstrip("+~")
    return "/" in name or any((d / name).is_dir() for d in (config_dir(), *config_dirs))


def _config_dirs(
    overrides: list[str], config_dirs: tuple[Path, ...]
) -> tuple[list[str], tuple[Path, ...]]:
    """Fold a ``hydra.searchpath=[file://DIR,...]`` override into the ``--config-dir`` list.

    Returns the other overrides and the directories. The fixed overrides, the validation and
    the workers then all compose with the same directories, however the user named them.
    """
    given = [o for o in overrides if o.partition("=")[0].lstrip("+") == "hydra.searchpath"]
    if not given:
        return overrides, config_dirs
    if config_dirs:
        raise InputError(
            "Give extra config directories either with --config-dir or with "
            "hydra.searchpath=, not both."
        )
    try:
        value = OverridesParser.create().parse_override(given[-1]).value()
    except Exception as exc:  # noqa: BLE001  hydra raises OverrideParseException
        raise InputError(
            f"Bad override {given[-1]!r}: {exc}. Give config directories as "
            f"--config-dir DIR (-cd DIR)."
        ) from None
    entries = value if isinstance(value, list) else [value]
    dirs = []
    for entry in entries:
        text = str(entry)
        if not text.startswith("file://"):
            raise InputError(
                f"{given[-1]!r}: hetopt sweep takes only file:// entries in "
                f"hydra.searchpath, got {text!r}. Give directories as "
                f"--config-dir DIR (-cd DIR)."
            )
        dirs.append(Path(text[len("file://") :]))
    return [o for o in overrides if o not in given], tuple(dirs)


def check_point(cfg: dict[str, Any]) -> None:
    """Raise the user error a point with config ``cfg`` would hit before its solve.

    Loads ``workload_file``, builds the request and runs the pipeline up to the placement
    problem (graph, workload fields, catalog, cost table). Infeasibility is a result, not
    an error, and passes.
    """
    from hetopt.cli.config import request_from_config
    from hetopt.pipeline import prepare

    if cfg.get("workload_file"):
        from hetopt.workloads import load_workload_data

        cfg = {**cfg, "workload": load_workload_data(str(cfg["workload_file"]))}
    with contextlib.suppress(InfeasibleError):
        prepare(request_from_config(cfg))


def _validate(
    fixed: list[str],
    swept: list[tuple[str, list[str]]],
    progress: Progress | None = None,
    config_dirs: tuple[Path, ...] = (),
) -> None:
    """Check every swept value (one key at a time) as far as its point would get unsolved.

    A config-group value is composed with Hydra; a value override is applied to the config
    composed once from the fixed overrides, the way the sweep's workers apply it. Either way
    :func:`check_point` then builds the point's problem, so a bad ``workload.*`` value or
    ``workload_file`` fails here, before anything runs.
    """
    from hetopt.cli.compose import compose_config, compose_run

    total = sum(len(v) for _, v in swept)
    task = progress.add_task("validating", total=total, counts="") if progress else None
    base: DictConfig | None = None
    for key, values in swept:
        for value in values:
            item = f"{key}={value}"
            try:
                if _is_group(key, config_dirs):
                    cfg = compose_config([*fixed, item], config_dirs)
                else:
                    if base is None:
                        base = compose_run("plan", fixed, config_dirs).job
                    try:
                        cfg = _point_config(base, [item])
                    except Exception:  # noqa: BLE001  Hydra's own words for a bad override
                        cfg = compose_config([*fixed, item], config_dirs)
                check_point(cfg)
            except HetoptUserError as exc:
                raise InputError(
                    f"Sweep value {item} is invalid (nothing was run): {exc}"
                ) from None
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
        progress.update(
            task,
            completed=len(seen),
            counts=" ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        )
        if finished:
            return
        stop.wait(0.5)


class _Stopped(KeyboardInterrupt):
    """SIGINT or SIGTERM reached the driver."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum: int, _frame: Any) -> None:
    raise _Stopped(signum)


@contextlib.contextmanager
def _sweep_lock(sweep_dir: Path) -> Iterator[None]:
    """Hold ``<sweep>/.lock`` (flock): one driver per sweep directory at a time.

    The kernel drops the lock when the driver dies, even by SIGKILL, so a re-run can resume.
    """
    path = sweep_dir / ".lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise output_error(path, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise InputError(
                f"Another `hetopt sweep` (pid {holder}) is running in {sweep_dir}. Wait for it "
                f"to finish (or stop it), then re-run this command to resume; or sweep into "
                f"another hydra.sweep.dir."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _descendants() -> set[int]:
    """Process ids below this one (from /proc; empty where there is none)."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parent[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    out: set[int] = set()
    frontier = {os.getpid()}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - out
        out |= frontier
    return out


def _stop_workers(sweep_dir: Path) -> None:
    """End the workers still planning points of this sweep (this driver's children only)."""
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():  # the job's tasks end with its driver
            ray.shutdown()
    mine = _descendants()
    pids = {
        int(c["pid"])
        for c in claims(sweep_dir).values()
        if c.get("host") == socket.gethostname() and c.get("pid") in mine
    }
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            pids &= _descendants()
            if not pids:
                break
            time.sleep(0.05)
    clear_claims(sweep_dir)


def _grid_conflict(sweep_dir: Path, existing: dict[str, Any], wanted: dict[str, Any]) -> InputError:
    return InputError(
        f"{sweep_dir} already holds a different sweep: {describe_grid(existing)}, not this "
        f"one: {describe_grid(wanted)}. A sweep directory belongs to one grid (re-running the "
        f"same grid resumes it). Sweep into a new directory (hydra.sweep.dir=...), or re-run "
        f"the original command to finish that sweep: "
        f"`{shlex.join(existing.get('command') or ['hetopt', 'sweep', '...'])}`."
    )


def _config_dirs_conflict(
    sweep_dir: Path, existing: dict[str, Any], wanted: dict[str, Any]
) -> InputError:
    def named(dirs: list[str]) -> str:
        return ("--config-dir " + ", --config-dir ".join(dirs)) if dirs else "no --config-dir"

    return InputError(
        f"{sweep_dir} holds this grid composed with {named(existing.get('config_dirs') or [])},"
        f" not with {named(wanted['config_dirs'])}: the same group names could mean other "
        f"files, so the points would mix. Re-run the original command to finish that sweep: "
        f"`{shlex.join(existing.get('command') or ['hetopt', 'sweep', '...'])}`, or sweep "
        f"into a new directory (hydra.sweep.dir=...)."
    )


def cmd_sweep(
    overrides: list[str],
    console: Console,
    *,
    config_dirs: tuple[Path, ...] = (),
    cfg: str | None = None,
    resolve: bool = False,
) -> int:
    """Run ``hetopt sweep [overrides...]`` (also ``hetopt plan -m ...``).

    Parameters
    ----------
    overrides
        The command line's overrides (Hydra's flags already taken out by the caller).
    config_dirs
        ``--config-dir`` (``-cd``) directories: more config groups for every point.
    cfg
        ``--cfg job|hydra|all``: print the config composed with the fixed overrides and the
        swept axes, and run nothing.
    resolve
        ``--resolve``: resolve interpolations in what ``cfg`` prints.

    Returns 0 when every point finished (or ``cfg`` printed), 1 when some failed or are
    missing, 130/143 when SIGINT/SIGTERM stopped it (the finished points are kept and the
    resume command printed).
    """
    overrides = [o for o in overrides if o not in ("-m", "--multirun")]
    old_handlers = {s: signal.signal(s, _raise_stopped) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _run_sweep(overrides, console, config_dirs, cfg, resolve)
    except _Stopped as exc:  # before the launch, or while the results were being merged
        console.print(
            f"[yellow]Interrupted by {signal.Signals(exc.signum).name}.[/] No point "
            f"is left half-recorded; re-run the same command to resume."
        )
        return 128 + exc.signum
    finally:
        for s, h in old_handlers.items():
            signal.signal(s, h)


def _show_config(
    mode: str,
    resolve: bool,
    fixed: list[str],
    hydra_ovr: list[str],
    swept: list[tuple[str, list[str]]],
    collapsed: list[str],
    study: dict[str, Any],
    config_dirs: tuple[Path, ...],
    console: Console,
) -> int:
    """``--cfg``: the config composed with the fixed overrides, then the swept axes.

    One config per point would be unreadable for a big grid, so the axes follow as a YAML
    comment block (``# swept (N points):`` and one ``#   key: [values]`` line per axis).
    """
    from omegaconf.errors import OmegaConfBaseException

    from hetopt.cli.compose import compose_run

    comp = compose_run("sweep", [*fixed, *hydra_ovr], config_dirs)
    parts = {"job": [comp.job], "hydra": [comp.hydra], "all": [comp.job, comp.hydra]}
    try:
        text = "".join(OmegaConf.to_yaml(c, resolve=resolve) for c in parts[mode])
    except OmegaConfBaseException as exc:
        raise InputError(f"--cfg {mode} --resolve: {exc}".replace("\n", " ")) from None
    axes = [(k, list(dict.fromkeys(v))) for k, v in swept]
    n_points = math.prod(len(v) for _, v in axes)
    lines = [
        f"# swept ({n_points} point{'s' if n_points != 1 else ''}"
        + (", every combination" if len(axes) > 1 else "")
        + "):"
    ]
    lines += [f"#   {k}: [{', '.join(v)}]" for k, v in axes] or ["#   (no swept key)"]
    lines += [f"#   {k}: fixed on the command line (the study's axis collapses)" for k in collapsed]
    given = [o.partition("=")[2] for o in hydra_ovr if o.startswith("hydra.sweep.dir=")]
    default = f"outputs/sweep/{study.get('name') or 'sweep'}-<time>"
    lines.append(f"# hydra.sweep.dir: {given[-1] if given else default}")
    console.print(
        text.rstrip() + "\n" + "\n".join(lines), highlight=False, markup=False, soft_wrap=True
    )
    return 0


def _run_sweep(
    overrides: list[str],
    console: Console,
    config_dirs: tuple[Path, ...] = (),
    cfg: str | None = None,
    resolve: bool = False,
) -> int:
    overrides, config_dirs = _config_dirs(overrides, config_dirs)
    hydra_ovr, fixed, swept, study, collapsed = _sweep_plan(overrides, config_dirs)
    if cfg is not None:  # the printed config is all of the output (no progress bar)
        _validate(fixed, swept, None, config_dirs)
        return _show_config(
            cfg, resolve, fixed, hydra_ovr, swept, collapsed, study, config_dirs, console
        )
    with Progress(*_COLUMNS, console=console, transient=True) as progress:
        _validate(fixed, swept, progress, config_dirs)

    sweep_dir_ovr = [o for o in hydra_ovr if o.startswith("hydra.sweep.dir=")]
    if sweep_dir_ovr:
        sweep_dir = Path(sweep_dir_ovr[-1].partition("=")[2])
        if "${" in str(sweep_dir):  # resolve it once: workers must not re-resolve ${now:...}
            from hetopt.cli.compose import compose_run

            sweep_dir = compose_run("plan", [*fixed, sweep_dir_ovr[-1]], config_dirs).sweep_dir
            resolved = f"hydra.sweep.dir={sweep_dir}"
            hydra_ovr = [resolved if o.startswith("hydra.sweep.dir=") else o for o in hydra_ovr]
            overrides = [resolved if o.startswith("hydra.sweep.dir=") else o for o in overrides]
    else:
        stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        name = study.get("name") or "sweep"
        sweep_dir = Path("outputs") / "sweep" / f"{name}-{stamp}"
        hydra_ovr.append(f"hydra.sweep.dir={sweep_dir}")
    # The command that resumes this sweep: the same config directories, grid and directory.
    rerun = [
        "hetopt",
        "sweep",
        *(a for d in config_dirs for a in ("-cd", str(d))),
        *overrides,
        *([] if sweep_dir_ovr else [f"hydra.sweep.dir={sweep_dir}"]),
    ]
    swept_keys = [k for k, _ in swept]
    swept = [(k, list(dict.fromkeys(v))) for k, v in swept]  # a value listed twice runs once
    points = [
        canonical([*fixed, *(f"{k}={v}" for k, v in zip(swept_keys, combo, strict=True))])
        for combo in itertools.product(*(v for _, v in swept))
    ]
    keys = [point_key(p) for p in points]
    manifest = {
        **grid_manifest(points, swept, fixed, rerun, study),
        "config_dirs": [str(d.resolve()) for d in config_dirs],
    }
    if sweep_dir.is_dir() and not (sweep_dir / "sweep.json").exists():
        foreign = sorted(p.name for p in sweep_dir.iterdir() if p.name != ".lock")
        if foreign:
            raise InputError(
                f"hydra.sweep.dir={sweep_dir} already holds files that are not a hetopt sweep "
                f"({', '.join(foreign[:5])}{', ...' if len(foreign) > 5 else ''}); a sweep "
                f"never writes among them. Give a new or empty directory, or the directory of "
                f"an earlier sweep of the same grid to resume it."
            )
    elif sweep_dir.exists() and not sweep_dir.is_dir():
        raise InputError(f"hydra.sweep.dir={sweep_dir} is a file; give a directory.")
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(sweep_dir, exc) from None
    with _sweep_lock(sweep_dir):
        existing = claim_manifest(sweep_dir, manifest)
        if existing is not None and not same_grid(existing, manifest):
            raise _grid_conflict(sweep_dir, existing, manifest)
        if (
            existing is not None
            and list(existing.get("config_dirs") or []) != manifest["config_dirs"]
        ):
            raise _config_dirs_conflict(sweep_dir, existing, manifest)
        clear_claims(sweep_dir)  # workers of an earlier driver are no longer this sweep's
        before = [read_point(sweep_dir, k) for k in keys]
        n_done = sum(1 for r in before if r is not None and r["status"] in FINISHED)
        for key in collapsed:
            console.print(
                f"{key}: fixed on the command line; the study's axis over it "
                f"collapses to that value"
            )
        console.print(
            f"sweep: {len(points)} points over {swept_keys} -> {sweep_dir}"
            + (f" (resuming: {n_done} already finished)" if n_done else "")
        )
        if n_done == len(points):
            return report_sweep(sweep_dir, console, study=study, rerun=rerun)
        # Workers get the absolute directory: a worker process may outlive a chdir of its
        # driver's process (joblib reuses workers), and a relative path would then move.
        absolute = [
            f"hydra.sweep.dir={sweep_dir.absolute()}" if o.startswith("hydra.sweep.dir=") else o
            for o in hydra_ovr
        ]
        return _launch(sweep_dir, keys, fixed, swept, absolute, study, rerun, console, config_dirs)


@contextlib.contextmanager
def _logging_kept() -> Iterator[None]:
    """Restore the logging setup after Hydra's: its job and hydra logging configs disable the
    existing loggers and raise the root level, which would silence later runs in-process
    (a ``hetopt plan`` after a sweep in one Python session would write an empty log)."""
    loggers = [
        logging.getLogger(),
        *(lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)),
    ]
    saved = [(lg, lg.disabled, lg.level, lg.propagate, list(lg.handlers)) for lg in loggers]
    try:
        yield
    finally:
        for lg, disabled, level, propagate, handlers in saved:
            lg.disabled, lg.propagate, lg.handlers[:] = disabled, propagate, handlers
            lg.setLevel(level)


_COLUMNS = (
    TextColumn("{task.description}"),
    BarColumn(),
    MofNCompleteColumn(),
    TimeRemainingColumn(),
    TextColumn("{task.fields[counts]}"),
)


def _launch(
    sweep_dir: Path,
    keys: list[str],
    fixed: list[str],
    swept: list[tuple[str, list[str]]],
    hydra_ovr: list[str],
    study: dict[str, Any],
    rerun: list[str],
    console: Console,
    config_dirs: tuple[Path, ...] = (),
) -> int:
    """Hand the grid to Hydra's launcher, survive its failures and signals, then report."""
    quiet = (
        []
        if any(o.startswith("hydra/job_logging") for o in hydra_ovr)
        else ["hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]
    )
    # This driver's token names its chunk files and its Hydra job directories, so that no
    # two drivers of one sweep directory (a run and its resume) write the same file.
    driver = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    other_sweeper = any(
        o.startswith("hydra/sweeper=") and o != "hydra/sweeper=hetopt" for o in hydra_ovr
    )
    own = [] if other_sweeper else [f"hydra.sweeper.driver={driver}"]
    if not any(o.startswith("hydra.sweep.subdir=") for o in hydra_ovr):
        own.append(f"hydra.sweep.subdir=jobs/{driver}/${{hydra.job.num}}")
    argv = [
        "hetopt",
        "-m",
        *fixed,
        *(f"{k}={','.join(v)}" for k, v in swept),
        *hydra_ovr,
        *searchpath_override(config_dirs),
        *own,
        *quiet,
    ]
    stop = threading.Event()
    started = time.perf_counter()
    saved_argv, saved_full = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    stopped: _Stopped | None = None
    try:
        with Progress(*_COLUMNS, console=console) as progress:
            watcher = threading.Thread(
                target=_watch, args=(sweep_dir, keys, progress, stop), daemon=True
            )
            watcher.start()
            sys.argv = argv
            os.environ["HYDRA_FULL_ERROR"] = "1"  # the launcher's errors come here, unprinted
            try:
                with _logging_kept():
                    sweep_app()
            except (HetoptUserError, KeyboardInterrupt):
                raise
            except SystemExit as exc:
                if exc.code not in (0, None):
                    console.print(f"[red]the launcher stopped with status {exc.code}[/]")
            except Exception as exc:  # noqa: BLE001  the launcher failed; what finished is kept
                console.print(
                    f"[red]The launcher failed: {type(exc).__name__}: "
                    f"{' '.join(str(exc).split())[:500]}[/]",
                    highlight=False,
                )
            finally:
                sys.argv = saved_argv
                if saved_full is None:
                    os.environ.pop("HYDRA_FULL_ERROR", None)
                else:
                    os.environ["HYDRA_FULL_ERROR"] = saved_full
                stop.set()
                watcher.join()
    except _Stopped as exc:
        stopped = exc
    except KeyboardInterrupt:  # raised inside a library without our signal handler's class
        stopped = _Stopped(signal.SIGINT)
    if stopped is not None:
        for s in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the flush
            signal.signal(s, signal.SIG_IGN)
        _stop_workers(sweep_dir)
        path, frame = write_results(sweep_dir)
        counts = status_counts(frame)
        console.print(
            f"[yellow]Interrupted by {signal.Signals(stopped.signum).name}: the workers were "
            f"stopped. {counts.get('ok', 0) + counts.get('infeasible', 0)} of {len(frame)} "
            f"points finished and are kept in {path}.[/] Resume with `{shlex.join(rerun)}`: "
            f"finished points are not planned again.",
            highlight=False,
        )
        return 128 + stopped.signum
    wall_s = time.perf_counter() - started
    return report_sweep(sweep_dir, console, wall_s=wall_s, study=study, rerun=rerun)


def report_sweep(
    sweep_dir: Path,
    console: Console,
    *,
    wall_s: float | None = None,
    study: dict[str, Any] | None = None,
    rerun: list[str] | None = None,
) -> int:
    """Aggregate ``sweep_dir``, draw the study figure, print the summary; 0 when complete.

    ``study`` and ``rerun`` default to those recorded in the sweep's manifest, so that
    ``hetopt aggregate`` redraws a what-if study's figure.
    """
    if not sweep_dir.is_dir():
        raise InputError(
            f"No sweep directory at {sweep_dir}. Give the directory `hetopt "
            f"sweep` printed (outputs/sweep/<name>-<time>)."
        )
    manifest = read_manifest(sweep_dir)
    if manifest is None:
        raise InputError(
            f"{sweep_dir} holds no sweep.json: it is not a sweep directory, or "
            f"its sweep never started. Give the directory `hetopt sweep` printed "
            f"(outputs/sweep/<name>-<time>)."
        )
    if study is None:
        study = manifest.get("study") or {}
    if rerun is None:
        rerun = manifest.get("command") or None
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

        fig = plot_study(frame, study, sweep_dir / f"{check_study_name(study['name'])}.png")
        console.print(f"Wrote {fig}")
    if is_complete(frame):
        return 0
    failed = frame[frame["status"].isin(FAILED)]
    for rec in failed.head(3).itertuples():
        console.print(
            f"[red]{rec.status}[/] {rec.overrides}: {str(rec.error)[:300]}", highlight=False
        )
    missing = int((frame["status"] == "missing").sum())
    console.print(
        f"[yellow]The sweep is not complete: {len(failed)} failed, {missing} missing. "
        f"results.csv marks them by status; do not read it as the full grid.[/] Re-run "
        + (
            f"`{shlex.join(rerun)}`"
            if rerun
            else f"the same sweep with hydra.sweep.dir={sweep_dir}"
        )
        + " to finish it: finished points are kept, the rest re-planned."
    )
    return 1
