"""Hydra's basic sweeper, made cheap per point for large grids.

Hydra composes the full config of a job twice: once in the launching process for every job of
a batch (``validate_batch_is_legal``) and once in the worker. That is about 0.3 s a point, more
than planning the point takes. ``hetopt sweep`` has already composed and validated every swept
value, so this sweeper

* skips the driver-side pass, and
* hands each launcher job a chunk of grid points that share their config-group choices: the
  worker composes the job's config once and applies each point's value overrides to a copy
  (``hetopt.cli.sweep.sweep_app``). The chunks are listed in ``<sweep dir>/chunks/<n>.json``:
  per point, its full overrides (its identity) and the value overrides the worker applies.

Grid expansion, ``hydra.sweeper.params`` and batching stay Hydra's. Points stay the unit of
results: each writes its own record whatever chunk it ran in.
"""

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional  # noqa: UP035  (OmegaConf needs these forms)

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser


@dataclass
class HetoptSweeperConf:
    """Config of the sweeper (Hydra's basic sweeper keys plus ``chunk_size``)."""

    _target_: str = "hydra_plugins.hetopt_sweeper.sweeper.HetoptSweeper"
    max_batch_size: Optional[int] = None  # noqa: UP045
    params: Optional[Dict[str, str]] = None  # noqa: UP006, UP045
    chunk_size: int = 0  # grid points per launcher job; 0: about 4 jobs per core, at most 20


ConfigStore.instance().store(group="hydra/sweeper", name="hetopt", node=HetoptSweeperConf,
                             provider="hetopt")


class HetoptSweeper(BasicSweeper):
    """``BasicSweeper`` with chunked jobs and no driver-side re-compose."""

    def __init__(self, max_batch_size: Optional[int] = None,  # noqa: UP045
                 params: Optional[Dict[str, str]] = None, chunk_size: int = 0) -> None:  # noqa: UP006, UP045
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.chunk_size = chunk_size
        self._chunks = 0

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        """Skip: ``hetopt sweep`` validated every value; each job composes its own config."""
        return None

    def _is_group(self, key: str) -> bool:
        assert self.hydra_context is not None
        return "/" in key or self.hydra_context.config_loader.repository.group_exists(key)

    def get_job_batch(self) -> Sequence[Sequence[str]]:
        """The next batch of launcher jobs, each running a chunk of grid points."""
        batch = super().get_job_batch()
        cores = len(os.sched_getaffinity(0))
        size = self.chunk_size or max(1, min(20, len(batch) // (4 * cores)))
        if size <= 1 or len(batch) < 2:
            return batch
        parser = OverridesParser.create()
        # Points that choose the same config groups share one composed config; each point
        # then applies only its value overrides ("values") to a copy of it.
        by_groups: Dict[tuple, List[Dict[str, List[str]]]] = {}  # noqa: UP006
        for job in batch:
            parsed = parser.parse_overrides(list(job))
            is_group = [self._is_group(o.key_or_group) for o in parsed]
            groups = tuple(s for s, g in zip(job, is_group, strict=True) if g)
            values = [s for s, g in zip(job, is_group, strict=True) if not g]
            by_groups.setdefault(groups, []).append({"overrides": list(job), "values": values})
        assert self.config is not None
        chunk_dir = Path(self.config.hydra.sweep.dir) / "chunks"
        chunk_dir.mkdir(parents=True, exist_ok=True)
        jobs: List[List[str]] = []  # noqa: UP006
        for points in by_groups.values():
            for start in range(0, len(points), size):
                chunk = points[start:start + size]
                (chunk_dir / f"{self._chunks}.json").write_text(json.dumps(chunk))
                jobs.append([*chunk[0]["overrides"], f"sweep.chunk={self._chunks}"])
                self._chunks += 1
        return jobs
