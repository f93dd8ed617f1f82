"""Sweep results that are never lost: one atomic record per point, a manifest, an aggregator.

A sweep directory holds

* ``sweep.json`` - the manifest: every point the sweep is meant to run, as its override list,
  written before the first point starts;
* ``points/<key>.json`` - one record per finished point, written atomically (temporary file,
  fsync, rename), with its status, metrics, device mix, error, the solution (for warm starts)
  and the fully resolved config;
* ``results.csv`` - the tidy table :func:`aggregate` builds: one row per manifest point, one
  column per swept key, ``status`` ``missing`` for points with no record yet.

A point's key is a hash of its sorted overrides, so re-running the same sweep into the same
directory finds the points already done whatever order the launcher runs them in. Statuses:
``ok`` (a plan), ``infeasible`` (no plan meets the SLA: a result, not a failure), ``error`` (a
user error in that point), ``crashed`` (an unexpected exception, with its traceback). Only
``ok`` and ``infeasible`` count as finished.

This module is plain Python (no Hydra): the CLI decides what a point is; this module stores it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from hetopt.plan.plan import Plan

MANIFEST = "sweep.json"
POINTS = "points"
RESULTS = "results.csv"
FINISHED = ("ok", "infeasible")
FAILED = ("error", "crashed")


def point_key(overrides: Iterable[str]) -> str:
    """Stable key of a sweep point: a hash of its sorted ``key=value`` overrides.

    Examples
    --------
    >>> point_key(["b=2", "a=1"]) == point_key(["a=1", "b=2"])
    True
    """
    text = "\n".join(sorted(overrides))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` so that readers see the old file or the new, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(_finite(data), f, indent=1, default=_jsonable, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def parse_value(text: str) -> Any:
    """An override's value as YAML reads it (``0.4`` -> float, ``own`` -> str)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def params_of(overrides: Sequence[str]) -> dict[str, Any]:
    """``{key: value}`` of ``key=value`` overrides (a leading ``+``/``++`` is dropped)."""
    out = {}
    for item in overrides:
        key, _, value = item.partition("=")
        out[key.lstrip("+")] = parse_value(value)
    return out


def write_manifest(sweep_dir: Path, points: Sequence[Sequence[str]],
                   swept_keys: Sequence[str], command: Sequence[str] = ()) -> None:
    """Record the points a sweep is meant to run, before it runs any."""
    write_json_atomic(sweep_dir / MANIFEST, {
        "points": [list(p) for p in points],
        "keys": [point_key(p) for p in points],
        "swept": list(swept_keys),
        "command": list(command),
    })


def read_manifest(sweep_dir: Path) -> dict[str, Any] | None:
    """The manifest of ``sweep_dir``, or None if it has none."""
    path = sweep_dir / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def point_path(sweep_dir: Path, key: str) -> Path:
    """Where the record of point ``key`` lives."""
    return sweep_dir / POINTS / f"{key}.json"


def read_point(sweep_dir: Path, key: str) -> dict[str, Any] | None:
    """The record of point ``key``, or None (also for a record that cannot be read)."""
    path = point_path(sweep_dir, key)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def plan_metrics(plan: Plan) -> dict[str, Any]:
    """The tidy numbers of one plan: totals, solver figures, and the device mix.

    Device-mix columns are ``devices.<name>`` (count) and ``usd_per_h.<name>`` ($/h).
    """
    s = plan.solve
    row: dict[str, Any] = {
        "tco_usd_per_h": plan.tco_usd_per_hour,
        "cost_usd_per_request": plan.cost_usd_per_request,
        "cost_usd_per_mtok": plan.cost_usd_per_million_tokens,
        "carbon_kg_per_h": plan.carbon_kg_per_hour,
        "e2e_latency_s": plan.e2e_latency_s,
        "sla_satisfied": bool(plan.sla.get("satisfied", True)),
        "verified": plan.verified,
        "solver_status": str(s.status),
        "proven_optimal": s.proven_optimal,
        "gap": s.gap,
        "bound": s.bound,
        "solve_s": s.runtime_s,
        "n_devices": int(plan.devices["total"].sum()) if len(plan.devices) else 0,
    }
    dev = plan.devices
    if len(dev):
        if "carbon_usd_per_hour" in dev:
            row["carbon_usd_per_h"] = float(dev["carbon_usd_per_hour"].sum())
        for rec in dev.itertuples():
            row[f"devices.{rec.device}"] = int(rec.total)
            row[f"usd_per_h.{rec.device}"] = float(rec.usd_per_hour)
    for b in plan.baselines:
        row[f"baseline_usd_per_h.{b.device}"] = b.tco_usd_per_hour if b.sla_satisfied \
            else math.nan
    return row


def aggregate(sweep_dir: Path) -> pd.DataFrame:
    """Merge a sweep directory into one tidy table (one row per point).

    Every point of the manifest gets a row, ``status="missing"`` if it has no record yet;
    records of points outside the manifest (an earlier, different sweep into the same
    directory) are kept too. Swept keys become columns of their own, in manifest order.

    Parameters
    ----------
    sweep_dir
        The directory ``hetopt sweep`` wrote.

    Returns
    -------
    pandas.DataFrame
        Columns: ``key``, the swept keys, ``status``, the metrics of :func:`plan_metrics`,
        ``error``, ``wall_s``, ``warm_start``, ``overrides``.
    """
    manifest = read_manifest(sweep_dir) or {"points": [], "keys": [], "swept": []}
    records: dict[str, dict[str, Any]] = {}
    for path in sorted((sweep_dir / POINTS).glob("*.json")):
        rec = read_point(sweep_dir, path.stem)
        if rec is not None:
            records[path.stem] = rec
    rows = []
    order = list(manifest["keys"]) + sorted(set(records) - set(manifest["keys"]))
    overrides_of = dict(zip(manifest["keys"], manifest["points"], strict=True))
    for key in order:
        rec = records.get(key)
        overrides = rec["overrides"] if rec else overrides_of[key]
        row: dict[str, Any] = {"key": key, **params_of(overrides)}
        if rec is None:
            row["status"] = "missing"
        else:
            row["status"] = rec["status"]
            row.update(rec.get("metrics") or {})
            row["error"] = rec.get("error", "")
            row["wall_s"] = rec.get("wall_s")
            row["warm_start"] = rec.get("warm_start", False)
        row["overrides"] = " ".join(overrides)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    swept = [k.lstrip("+") for k in manifest["swept"]]
    first = ["key", *[k for k in swept if k in frame], "status"]
    return frame[first + [c for c in frame.columns if c not in first]]


def status_counts(frame: pd.DataFrame) -> dict[str, int]:
    """How many points have each status."""
    if frame.empty:
        return {}
    return {str(k): int(v) for k, v in frame["status"].value_counts().items()}


def write_results(sweep_dir: Path) -> tuple[Path, pd.DataFrame]:
    """Aggregate ``sweep_dir`` into ``results.csv`` (written atomically); return path and table.

    ``results.csv`` carries a ``status`` column; a sweep is complete when every row is
    ``ok`` or ``infeasible``, which :func:`is_complete` checks.
    """
    frame = aggregate(sweep_dir)
    path = sweep_dir / RESULTS
    fd, tmp = tempfile.mkstemp(prefix=".results.", dir=sweep_dir)
    os.close(fd)
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path, frame


def is_complete(frame: pd.DataFrame) -> bool:
    """True when every point of the table finished (``ok`` or ``infeasible``)."""
    return bool(len(frame)) and bool(frame["status"].isin(FINISHED).all())


def neighbours(params: Mapping[str, Any], candidates: Iterable[Mapping[str, Any]]) -> int:
    """Index of the candidate whose swept values differ from ``params`` in fewest keys."""
    best, best_diff = -1, math.inf
    for i, cand in enumerate(candidates):
        diff = sum(cand.get(k) != v for k, v in params.items())
        if diff < best_diff:
            best, best_diff = i, diff
    return best
