"""Hydra's basic sweeper, made cheap per point and proof against a dying worker.

Hydra composes the full config of a job twice: once in the launching process for every job of
a batch (``validate_batch_is_legal``) and once in the worker. That is about 0.3 s a point, more
than planning the point takes. ``hetopt sweep`` has already composed and validated every swept
value, so this sweeper

* skips the driver-side pass, and
* hands each launcher job a chunk of grid points that share their config-group choices: the
  worker composes the job's config once and applies each point's value overrides to a copy
  (``hetopt.cli.sweep_worker.sweep_app``). The chunks are listed in
  ``<sweep dir>/chunks/<driver>-<n>.json``, named after this driver (a random token), so two
  drivers never read each other's chunks: per point, its full overrides (its identity) and
  the value overrides the worker applies.

A worker killed by a signal or by the out-of-memory killer makes the launcher raise (joblib's
``TerminatedWorkerError``, Ray's ``WorkerCrashedError``/``OutOfMemoryError``), and takes the
other in-flight jobs down with it. The sweeper then

1. re-runs each point that was in flight (a claim in ``running/`` and no record) alone, one
   launch each, so a point that kills its worker again is known exactly: it is recorded
   ``crashed`` with the signal (a later re-run of the sweep retries it);
2. launches the points that had not started yet, and goes on.

Grid expansion, ``hydra.sweeper.params`` and batching stay Hydra's. Points stay the unit of
results: each writes its own record whatever chunk it ran in.
"""

import logging
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional  # noqa: UP035  (OmegaConf needs these forms)

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from hetopt.errors import HetoptUserError
from hetopt.sweeps import (
    FINISHED,
    claims,
    crashed_record,
    point_key,
    read_point,
    write_json_atomic,
    write_point,
)

log = logging.getLogger(__name__)

# Launcher failures in a row that record nothing new before the sweeper gives up.
_MAX_FRUITLESS = 3


@dataclass
class HetoptSweeperConf:
    """Config of the sweeper (Hydra's basic sweeper keys plus ``chunk_size``)."""

    _target_: str = "hydra_plugins.hetopt_sweeper.sweeper.HetoptSweeper"
    max_batch_size: Optional[int] = None  # noqa: UP045
    params: Optional[Dict[str, str]] = None  # noqa: UP006, UP045
    chunk_size: int = 0  # grid points per launcher job; 0: about 4 jobs per core, at most 20
    driver: str = ""  # this driver's token (hetopt sweep sets it); "": a random one


ConfigStore.instance().store(
    group="hydra/sweeper", name="hetopt", node=HetoptSweeperConf, provider="hetopt"
)

Point = Dict[str, List[str]]  # noqa: UP006  {"overrides": [...], "values": [...]}


class HetoptSweeper(BasicSweeper):
    """``BasicSweeper`` with chunked jobs, no driver-side re-compose, and crash recovery."""

    def __init__(
        self,
        max_batch_size: Optional[int] = None,  # noqa: UP045
        params: dict[str, str] | None = None,
        chunk_size: int = 0,  # noqa: UP006, UP045
        driver: str = "",
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.chunk_size = chunk_size
        self.driver = driver or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._chunks = 0
        self._job_idx = 0

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        """Skip: ``hetopt sweep`` validated every value; each job composes its own config."""
        return None

    # ------------------------------------------------------------------ chunks

    def _is_group(self, key: str) -> bool:
        """A config group: shipped, or in a ``hydra.searchpath`` directory (``--config-dir``).

        The loader's repository holds only the primary search path; ``hydra.searchpath``
        applies per compose, so its ``file://`` directories are looked at here.
        """
        assert self.hydra_context is not None and self.config is not None
        loader: Any = self.hydra_context.config_loader
        if "/" in key or bool(loader.repository.group_exists(key)):
            return True
        extra = OmegaConf.select(self.config, "hydra.searchpath") or []
        return any(
            str(d).startswith("file://") and (Path(str(d)[len("file://") :]) / key).is_dir()
            for d in extra
        )

    def _sweep_dir(self) -> Path:
        assert self.config is not None
        return Path(self.config.hydra.sweep.dir)

    def _points(self, batch: Sequence[Sequence[str]]) -> List[Point]:  # noqa: UP006
        """The batch's jobs as points (a point listed twice runs once)."""
        parser = OverridesParser.create()
        out = []
        seen = set()
        for job in batch:
            if tuple(sorted(job)) in seen:
                continue
            seen.add(tuple(sorted(job)))
            parsed = parser.parse_overrides(list(job))
            values = [
                s for s, o in zip(job, parsed, strict=True) if not self._is_group(o.key_or_group)
            ]
            out.append({"overrides": list(job), "values": values})
        return out

    def _jobs(self, points: List[Point], size: int) -> List[List[str]]:  # noqa: UP006
        """Launcher jobs for ``points``: chunks of at most ``size`` sharing their groups."""
        by_groups: Dict[tuple, List[Point]] = {}  # noqa: UP006
        for p in points:
            groups = tuple(s for s in p["overrides"] if s not in p["values"])
            by_groups.setdefault(groups, []).append(p)
        jobs: List[List[str]] = []  # noqa: UP006
        for group_points in by_groups.values():
            for start in range(0, len(group_points), size):
                chunk = group_points[start : start + size]
                name = f"{self.driver}-{self._chunks}"
                write_json_atomic(
                    self._sweep_dir() / "chunks" / f"{name}.json",
                    {"driver": self.driver, "points": chunk},
                )
                jobs.append([*chunk[0]["overrides"], f"sweep.chunk={name}"])
                self._chunks += 1
        return jobs

    def _chunk_size(self, n_points: int) -> int:
        cores = len(os.sched_getaffinity(0))
        return max(1, self.chunk_size or min(20, n_points // (4 * cores)))

    # ------------------------------------------------------------------ launching

    def _key(self, point: Point) -> str:
        from hetopt.cli.sweep_worker import canonical

        return point_key(canonical(point["overrides"]))

    def _settled(self, point: Point) -> bool:
        """Finished before, or recorded (whatever its status) by this driver's workers."""
        rec = read_point(self._sweep_dir(), self._key(point))
        return rec is not None and (rec["status"] in FINISHED or rec.get("driver") == self.driver)

    def _launch(self, jobs: List[List[str]]) -> Any:  # noqa: UP006
        assert self.launcher is not None
        results = self.launcher.launch(jobs, initial_job_idx=self._job_idx)
        self._job_idx += len(jobs)
        for r in results:
            _ = r.return_value  # raises if the job failed
        return results

    def launch_points(self, points: List[Point]) -> None:  # noqa: UP006
        """Run ``points`` to a record each, surviving workers that die.

        Raises
        ------
        Exception
            The launcher's error when it fails without any point in flight and without
            recording anything (it could not start: a bad cluster address, say).
        """
        fruitless = 0
        pending = points
        while pending:
            try:
                self._launch(self._jobs(pending, self._chunk_size(len(pending))))
                return
            except HetoptUserError:
                raise
            except Exception as exc:  # a worker died, or the launcher failed
                log.warning(
                    "the launcher failed (%s: %s); recovering",
                    type(exc).__name__,
                    " ".join(str(exc).split())[:300],
                )
                running = claims(self._sweep_dir())
                unsettled = [p for p in pending if not self._settled(p)]
                in_flight = [
                    p
                    for p in unsettled
                    if running.get(self._key(p), {}).get("driver") == self.driver
                ]
                if not in_flight and len(unsettled) == len(pending):
                    fruitless += 1
                    if fruitless >= _MAX_FRUITLESS or not any(self._settled(p) for p in points):
                        raise
                else:
                    fruitless = 0
                for p in in_flight:
                    self._isolate(p)
                pending = [p for p in unsettled if p not in in_flight]

    def _isolate(self, point: Point) -> None:
        """Re-run one point that was in flight when a worker died, alone."""
        try:
            self._launch(self._jobs([point], 1))
        except HetoptUserError:
            raise
        except Exception as exc:  # it killed its worker again: it is the culprit
            if not self._settled(point):
                key = self._key(point)
                from hetopt.cli.sweep_worker import canonical

                write_point(
                    self._sweep_dir(),
                    crashed_record(key, canonical(point["overrides"]), exc, self.driver),
                )
                log.warning("point %s crashed its worker: %s", key, exc)

    def sweep(self, arguments: List[str]) -> Any:  # noqa: UP006
        """Expand the grid (Hydra's way) and run every batch with :meth:`launch_points`."""
        assert self.config is not None and self.launcher is not None
        assert self.hydra_context is not None
        params_conf = self._parse_config()
        params_conf.extend(arguments)
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        self.overrides = self.split_arguments(
            parser.parse_overrides(params_conf), self.max_batch_size
        )
        self._sweep_dir().mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, self._sweep_dir() / "multirun.yaml")
        while not self.is_done():
            self.launch_points(self._points(self.get_job_batch()))
        return []
