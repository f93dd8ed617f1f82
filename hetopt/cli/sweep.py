"""``hetopt sweep`` (= ``hetopt plan -m``): Hydra multirun sweeps that never lose a result.

The command validates every swept value before launching (a bad key, type or range, a bad
``workload.*`` value or ``workload_file``, exits 2 and nothing runs), claims the sweep
directory for its grid (``sweep.json``; a different grid there is refused, the same grid
resumes; one driver at a time holds ``.lock``), then hands the sweep to Hydra's launcher:
joblib with one process per core by default, Ray with ``hydra/launcher=ray``. Each point is
one call of :func:`hetopt.cli.sweep_worker.run_point`, which

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

Why one module: the driver's steps (validate every point, claim the directory for its grid,
launch, follow, merge the records) hand one another the same grid, directory and signal state
in one call, ``_run_sweep``; the worker side (:mod:`hetopt.cli.sweep_worker`) and the guards
(:mod:`hetopt.cli.sweep_guard`) are apart.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import logging
import math
import os
import shlex
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hetopt.atomic import output_error
from hetopt.cli.compose import searchpath_override
from hetopt.cli.schema import register
from hetopt.cli.sweep_guard import (
    Stopped,
    raise_stopped,
    stop_workers,
    sweep_lock,
    watch,
)
from hetopt.cli.sweep_worker import canonical, point_config, sweep_app
from hetopt.errors import HetoptUserError, InfeasibleError, InputError
from hetopt.inputs import is_plain_name
from hetopt.sweeps import (
    FAILED,
    FINISHED,
    claim_manifest,
    clear_claims,
    describe_grid,
    grid_manifest,
    is_complete,
    point_key,
    read_manifest,
    read_point,
    same_grid,
    status_counts,
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
    if not is_plain_name(text):
        raise InputError(
            f"study.name={text!r} is not a plain name: it names the study's figure inside the "
            f"sweep directory, so it may hold only letters, digits, '_', '-' and '.', start "
            f"with a letter, digit or '_', and contain no '/' or '..'. Use e.g. study.name=my_study."
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


def check_point(cfg: dict[str, Any], task: Sequence[str] = ()) -> None:
    """Raise the user error a point with config ``cfg`` would hit before its solve.

    Loads ``workload_file`` (with the ``workload.*`` keys of the point's overrides ``task`` on
    top), builds the request and runs the pipeline up to the placement problem (graph,
    workload fields, catalog, cost table). Infeasibility is a result, not an error, and passes.
    """
    from hetopt.cli.config import request_from_config
    from hetopt.pipeline import prepare

    if cfg.get("workload_file"):
        from hetopt.cli.compose import workload_from_file

        cfg = {**cfg, "workload": workload_from_file(cfg, task)}
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
                        cfg = point_config(base, [item])
                    except Exception:  # noqa: BLE001  Hydra's own words for a bad override
                        cfg = compose_config([*fixed, item], config_dirs)
                check_point(cfg, [*fixed, item])
            except HetoptUserError as exc:
                raise InputError(
                    f"Sweep value {item} is invalid (nothing was run): {exc}"
                ) from None
            if progress is not None and task is not None:
                progress.advance(task)
    if progress is not None and task is not None:
        progress.remove_task(task)


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
    old_handlers = {s: signal.signal(s, raise_stopped) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _run_sweep(overrides, console, config_dirs, cfg, resolve)
    except Stopped as exc:  # before the launch, or while the results were being merged
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
    with sweep_lock(sweep_dir):
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
    stopped: Stopped | None = None
    try:
        with Progress(*_COLUMNS, console=console) as progress:
            watcher = threading.Thread(
                target=watch, args=(sweep_dir, keys, progress, stop), daemon=True
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
    except Stopped as exc:
        stopped = exc
    except KeyboardInterrupt:  # raised inside a library without our signal handler's class
        stopped = Stopped(signal.SIGINT)
    if stopped is not None:
        for s in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the flush
            signal.signal(s, signal.SIG_IGN)
        stop_workers(sweep_dir)
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
