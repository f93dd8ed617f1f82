"""Run directories, and the files a planning run leaves in one.

A single run (``hetopt plan``, ``replay``, ``compile``, ``fleet``, ``reproduce``,
``calibrate``) goes to ``hydra.run.dir`` (default ``outputs/<command>/<timestamp>``; ``run_dir=``
is an alias). Its files are never lost or mixed with another run's:

* The run writes into a hidden staging directory beside its run directory, every file
  atomically (:mod:`hetopt.atomic`). When the command ends, the staging directory is renamed
  to the run directory in one step, so a run directory holds one whole run or nothing.
* A timestamped directory is reserved with an exclusive ``mkdir``: two runs started in the
  same second get ``<time>`` and ``<time>-1``.
* An explicit ``hydra.run.dir`` that already holds files is refused before anything runs
  (:class:`~hetopt.errors.OutputError`, exit 2), unless it holds a hetopt run and the user
  added ``overwrite=true``; the old run is then replaced only once the new one has written its
  results.
* A run that fails before writing a result leaves nothing: not its directory, not a changed
  file of an earlier run. A run that fails after writing results (a solver time limit, a
  failed compile partition) keeps them.

Each run directory has Hydra's ``.hydra/`` record (``config.yaml``, ``hydra.yaml``,
``overrides.yaml``, as Hydra writes them) and the run's log, ``<command>.log``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hetopt.atomic import (
    output_error,
    write_csv_atomic,
    write_json_atomic,
    write_text_atomic,
)
from hetopt.errors import OutputError

if TYPE_CHECKING:
    from hetopt.pipeline import PlanOutcome

__all__ = ["RunDir", "holds_run", "open_run", "write_outputs"]

_LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's job log format


def write_outputs(
    outcome: PlanOutcome,
    cfg: dict[str, Any],
    run_dir: Path,
    *,
    config: bool = True,
    cost_table: bool = True,
    figure: bool = True,
) -> None:
    """Write plan.json, placement.csv, devices.csv and llm_pools.csv, and unless turned off
    config.yaml, cost_table.csv and plan.png (a sweep point's record holds its config already).

    Every file is written atomically: a temporary file beside it, then a rename.
    """
    from hetopt.report.figures import plot_plan

    plan = outcome.plan
    if config:
        write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
    write_json_atomic(run_dir / "plan.json", plan.to_dict())
    write_csv_atomic(run_dir / "placement.csv", plan.placement)
    write_csv_atomic(run_dir / "devices.csv", plan.devices)
    write_csv_atomic(run_dir / "llm_pools.csv", plan.llm_pools)
    if cost_table:
        write_csv_atomic(run_dir / "cost_table.csv", outcome.table.frame)
    if figure:
        plot_plan(plan, run_dir / "plan.png")


def holds_run(path: Path) -> bool:
    """Whether ``path`` is a directory holding a hetopt run (its ``.hydra/`` or ``config.yaml``)."""
    return (path / ".hydra").is_dir() or (path / "config.yaml").is_file()


@dataclass
class RunDir:
    """A run directory being written.

    Attributes
    ----------
    path
        Where the run's files will be once it ends (the path to print).
    out
        Where the command writes meanwhile (a staging directory beside ``path``).
    overwrite
        Replace a run already at ``path`` (``overwrite=true``).
    reserved
        ``path`` is an empty directory this run created (a timestamped one).
    """

    path: Path
    out: Path
    overwrite: bool = False
    reserved: bool = False
    keep: frozenset[str] = frozenset()
    _handler: logging.Handler | None = field(default=None, repr=False)
    _root_level: int = field(default=logging.WARNING, repr=False)

    def has_results(self) -> bool:
        """Whether the command wrote anything beyond the ``.hydra/`` record and the log."""
        return any(p.name not in self.keep for p in self.out.iterdir())

    def close(self, *, failed: bool = False) -> Path | None:
        """Publish the run at :attr:`path` (or drop it if it failed before writing a result).

        Returns the published path, or None when nothing was published.

        Raises
        ------
        OutputError
            When the directory cannot be renamed, or another run took ``path`` meanwhile (the
            results are then published beside it, and the message says where).
        """
        self._stop_log()
        if failed and not self.has_results():
            shutil.rmtree(self.out, ignore_errors=True)
            if self.reserved:
                with contextlib.suppress(OSError):
                    self.path.rmdir()
            return None
        try:
            os.rename(self.out, self.path)  # onto a missing or empty directory: one step
            return self.path
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise output_error(self.path, exc) from None
        if self.overwrite and holds_run(self.path):
            try:
                old = _fresh_dir(self.path.parent, f".{self.path.name}.replaced-")
                os.rename(self.path, old / "run")
            except OSError as exc:
                raise output_error(self.path, exc) from None
            try:
                os.rename(self.out, self.path)
            except OSError as exc:  # put the earlier run back; this one stays in self.out
                with contextlib.suppress(OSError):
                    os.rename(old / "run", self.path)
                    old.rmdir()
                raise output_error(self.path, exc) from None
            shutil.rmtree(old, ignore_errors=True)
            return self.path
        elsewhere = _reserve_unique(self.path)
        try:
            os.rename(self.out, elsewhere)
        except OSError as exc:
            raise output_error(elsewhere, exc) from None
        raise OutputError(
            f"{self.path} was filled by another run while this one ran, so this run's results "
            f"went to {elsewhere} instead; neither run was mixed with the other. Give each run "
            f"its own hydra.run.dir."
        )

    def start_log(self, name: str, level: int = logging.INFO) -> None:
        """Log to ``<out>/<name>.log`` in Hydra's job-log format until :meth:`close`."""
        handler = logging.FileHandler(self.out / f"{name}.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter(_LOG_FORMAT))
        handler.setLevel(level)
        root = logging.getLogger()
        root.addHandler(handler)
        for h in root.handlers:  # the console keeps showing warnings only
            if h is not handler and h.level == logging.NOTSET:
                h.setLevel(logging.WARNING)
        self._root_level = root.level
        root.setLevel(min(root.level or logging.WARNING, level))
        self._handler = handler

    def _stop_log(self) -> None:
        if self._handler is not None:
            root = logging.getLogger()
            root.removeHandler(self._handler)
            root.setLevel(self._root_level)
            self._handler.close()
            self._handler = None


def _fresh_dir(parent: Path, prefix: str) -> Path:
    """A new directory ``parent/<prefix><random>`` with the umask's mode (unlike mkdtemp's 0700)."""
    while True:
        candidate = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue


def _reserve_unique(path: Path) -> Path:
    """Create and return ``path``, or ``path-1``, ``path-2``, ... if taken (an exclusive mkdir)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(path, exc) from None
    for n in range(10_000):
        candidate = path if n == 0 else path.with_name(f"{path.name}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
        except OSError as exc:
            raise output_error(candidate, exc) from None
    raise OutputError(f"{path}: 10000 runs already hold this name; clean up {path.parent}.")


def open_run(path: Path, *, explicit: bool, overwrite: bool) -> RunDir:
    """Check and reserve the run directory ``path`` and create its staging directory.

    Parameters
    ----------
    path
        The resolved ``hydra.run.dir``.
    explicit
        The user gave ``hydra.run.dir`` (or ``run_dir=``, ``--out``); otherwise ``path`` is
        the timestamped default, which is made unique instead of refused.
    overwrite
        ``overwrite=true``: an explicit directory holding a hetopt run may be replaced.

    Raises
    ------
    OutputError
        When ``path`` is a file, holds files (without ``overwrite=true`` or that are not a
        hetopt run), or cannot be created.
    """
    reserved = False
    if explicit:
        if path.exists() and not path.is_dir():
            raise OutputError(
                f"hydra.run.dir={path} is a file; give a directory (a new one, "
                f"e.g. hydra.run.dir={path.with_suffix('')}-run)."
            )
        if path.is_dir() and any(path.iterdir()):
            if not holds_run(path):
                raise OutputError(
                    f"hydra.run.dir={path} already holds files that are not a hetopt run; "
                    f"hetopt writes each run into a new or empty directory and never deletes "
                    f"other files. Choose another hydra.run.dir."
                )
            if not overwrite:
                raise OutputError(
                    f"hydra.run.dir={path} already holds a finished run; it was left as it "
                    f"is. Choose another hydra.run.dir, or add overwrite=true to replace that "
                    f"run once this one has written its results."
                )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise output_error(path, exc) from None
    else:
        path = _reserve_unique(path)
        reserved = True
    try:
        out = _fresh_dir(path.parent, f".{path.name}.running-")
    except OSError as exc:
        if reserved:
            with contextlib.suppress(OSError):
                path.rmdir()
        raise output_error(path, exc) from None
    return RunDir(path=path, out=out, overwrite=overwrite, reserved=reserved)
