"""Sweep results that are never lost: one atomic record per point, a manifest, an aggregator.

A sweep directory holds

* ``sweep.json`` - the manifest: the grid (its axes and every point as its override list), the
  command and the what-if study, written once, before the first point starts. A directory
  belongs to one grid: :func:`claim_manifest` creates the manifest atomically and refuses a
  different grid;
* ``running/<key>.json`` - a claim a worker writes before it plans a point (its pid, host and
  driver) and removes after recording it; a claim left without a record after its launcher
  failed names the point a dead worker was running;
* ``points/<key>.json`` - one record per finished point, written atomically (temporary file,
  fsync, rename), with its status, metrics, device mix, error, the solution (for warm starts)
  and the fully resolved config;
* ``results.csv`` - the tidy table :func:`aggregate` builds: one row per manifest point, one
  column per swept key, ``status`` ``missing`` for points with no record yet.

A point's key is a hash of its sorted overrides, so re-running the same sweep into the same
directory finds the points already done whatever order the launcher runs them in. Statuses:
``ok`` (a plan), ``infeasible`` (no plan meets the SLA: a result, not a failure), ``error`` (a
user error in that point), ``crashed`` (an unexpected exception, with its traceback). Only
``ok`` and ``infeasible`` count as finished. A record that cannot be read, or that lacks a
known ``status`` or its own overrides, counts as missing (the point is planned again).

This module is plain Python (no Hydra): the CLI decides what a point is; this module stores it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import socket
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from hetopt.atomic import atomic_path, write_text_atomic
from hetopt.errors import InputError
from hetopt.plan.plan import Plan

MANIFEST = "sweep.json"
POINTS = "points"
RESULTS = "results.csv"
RUNNING = "running"
FINISHED = ("ok", "infeasible")
FAILED = ("error", "crashed")
STATUSES = FINISHED + FAILED


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
    """Write ``data`` as strict JSON to ``path``: readers see the old file or the new, whole.

    NaN and infinities become ``null``; numpy scalars their Python value. The write goes
    through :mod:`hetopt.atomic` (umask-respecting mode; a full or read-only disk raises
    :class:`~hetopt.errors.OutputError` and leaves no partial file).
    """
    write_text_atomic(path, json.dumps(_finite(data), indent=1, default=_jsonable, allow_nan=False))


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


def grid_manifest(
    points: Sequence[Sequence[str]],
    axes: Sequence[tuple[str, Sequence[str]]],
    fixed: Sequence[str] = (),
    command: Sequence[str] = (),
    study: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest of a grid: its points (override lists), their keys, axes and study.

    ``axes`` are the swept keys with their values, in grid order; ``fixed`` the overrides
    every point shares.
    """
    return {
        "points": [list(p) for p in points],
        "keys": [point_key(p) for p in points],
        "swept": [k for k, _ in axes],
        "axes": [[k, [str(v) for v in values]] for k, values in axes],
        "fixed": list(fixed),
        "command": list(command),
        "study": dict(study) if study else None,
    }


def write_manifest(
    sweep_dir: Path,
    points: Sequence[Sequence[str]],
    swept_keys: Sequence[str],
    command: Sequence[str] = (),
) -> None:
    """Record the points a sweep is meant to run (overwriting any manifest; tests, repairs)."""
    axes = [(k, sorted({str(params_of(p).get(k.lstrip("+"))) for p in points})) for k in swept_keys]
    write_json_atomic(sweep_dir / MANIFEST, grid_manifest(points, axes, (), command))


def same_grid(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """True when two manifests list the same set of points (the same grid, any order)."""
    return set(a.get("keys") or ()) == set(b.get("keys") or ())


def describe_grid(manifest: Mapping[str, Any], max_values: int = 6) -> str:
    """A grid in one line, as overrides: ``sla.e2e_s=1,2,3 with workload=x (3 points)``.

    Examples
    --------
    >>> describe_grid(grid_manifest([["a=1"], ["a=2"]], [("a", ["1", "2"])]))
    'a=1,2 (2 points)'
    """
    axes = manifest.get("axes")
    if axes is None:  # a manifest written before axes were recorded
        axes = [
            [k, sorted({str(params_of(p).get(k.lstrip("+"))) for p in manifest["points"]})]
            for k in manifest.get("swept") or ()
        ]
    parts = []
    for key, values in axes:
        shown = ",".join(str(v) for v in values[:max_values])
        parts.append(
            f"{key}={shown}" + (f",... ({len(values)} values)" if len(values) > max_values else "")
        )
    text = " ".join(parts) or "(no swept key)"
    if manifest.get("fixed"):
        text += " with " + " ".join(manifest["fixed"])
    return f"{text} ({len(manifest.get('keys') or ())} points)"


def claim_manifest(sweep_dir: Path, manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """Make ``sweep_dir`` the home of ``manifest``'s grid, unless it already is one's.

    The manifest is written to a private file and hard-linked to ``sweep.json``, which
    fails if another sweep got there first: of two sweeps started together, exactly one
    owns the directory. Returns None when this call created the manifest, else the existing
    manifest (the caller compares the grids with :func:`same_grid`).

    Raises
    ------
    InputError
        When an existing ``sweep.json`` is not a manifest.
    OutputError
        When the directory cannot be written.
    """
    path = sweep_dir / MANIFEST
    if not path.exists():
        private = sweep_dir / f".{MANIFEST}.{os.getpid()}.new"
        write_json_atomic(private, manifest)
        try:
            os.link(private, path)
            return None
        except FileExistsError:
            pass  # another driver claimed the directory first: read its manifest below
        finally:
            private.unlink(missing_ok=True)
    existing = read_manifest(sweep_dir)
    assert existing is not None
    return existing


def read_manifest(sweep_dir: Path) -> dict[str, Any] | None:
    """The manifest of ``sweep_dir``, or None if it has none.

    Raises
    ------
    InputError
        When ``sweep.json`` exists but is not a manifest (garbage, or no points and keys).
    """
    path = sweep_dir / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InputError(
            f"{path}: cannot read the sweep manifest ({exc}). Sweep into a new hydra.sweep.dir."
        ) from None
    try:
        data = json.loads(text)
        ok = (
            isinstance(data, dict)
            and isinstance(data.get("points"), list)
            and isinstance(data.get("keys"), list)
            and len(data["points"]) == len(data["keys"])
            and all(
                isinstance(p, list) and point_key(p) == k
                for p, k in zip(data["points"], data["keys"], strict=True)
            )
        )
    except (ValueError, TypeError):
        ok = False
    if not ok:
        raise InputError(
            f"{path} is not a sweep manifest (it must be the JSON object `hetopt sweep` "
            f"writes, with matching 'points' and 'keys'). Its point records are intact in "
            f"{sweep_dir / POINTS}: re-run the sweep into a new hydra.sweep.dir, or delete "
            f"{path} and re-run the original sweep command to rebuild it."
        )
    return data


def point_path(sweep_dir: Path, key: str) -> Path:
    """Where the record of point ``key`` lives."""
    return sweep_dir / POINTS / f"{key}.json"


def read_point(sweep_dir: Path, key: str) -> dict[str, Any] | None:
    """The record of point ``key``, or None: no record, or one that is malformed.

    A record counts only if it is a JSON object with a known ``status``, its ``overrides``
    hash to ``key``, and its ``metrics`` (if any) are an object. Anything else (a truncated
    file, garbage, a record lacking ``status``) counts as missing, so the point is planned
    again instead of stopping the sweep.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> k = point_key(["a=1"])
    >>> write_json_atomic(point_path(d, k), {"overrides": ["a=1"]})  # no status
    >>> read_point(d, k) is None
    True
    """
    path = point_path(sweep_dir, key)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("status") not in STATUSES:
        return None
    overrides = data.get("overrides")
    if (
        not isinstance(overrides, list)
        or not all(isinstance(o, str) for o in overrides)
        or point_key(overrides) != key
    ):
        return None
    if not isinstance(data.get("metrics") or {}, dict):
        return None
    return data


def write_point(sweep_dir: Path, record: Mapping[str, Any]) -> None:
    """Write a point's record (atomically) and drop its claim."""
    write_json_atomic(point_path(sweep_dir, str(record["key"])), record)
    (sweep_dir / RUNNING / f"{record['key']}.json").unlink(missing_ok=True)


def claim_point(sweep_dir: Path, key: str, driver: str) -> None:
    """Note that this process is planning point ``key`` (see :func:`claims`)."""
    write_json_atomic(
        sweep_dir / RUNNING / f"{key}.json",
        {"key": key, "pid": os.getpid(), "host": socket.gethostname(), "driver": driver},
    )


def claims(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    """Points some worker started and has not recorded: ``{key: claim}`` (unreadable ones left out)."""
    out = {}
    for path in (sweep_dir / RUNNING).glob("*.json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            out[path.stem] = data
    return out


def clear_claims(sweep_dir: Path) -> None:
    """Drop every claim (a new driver holds the directory: no worker of an old one counts)."""
    for path in (sweep_dir / RUNNING).glob("*"):
        path.unlink(missing_ok=True)


def signal_of(text: str) -> str | None:
    """The first signal name (``SIGKILL``) in an error message, or None.

    Examples
    --------
    >>> signal_of("The exit codes of the workers are {SIGKILL(-9)}")
    'SIGKILL'
    """
    found = re.search(r"\bSIG[A-Z0-9]+\b", text)
    return found.group(0) if found else None


def crashed_record(
    key: str, overrides: Sequence[str], cause: BaseException | str, driver: str = ""
) -> dict[str, Any]:
    """The record of a point whose worker process died (a signal, the OOM killer).

    The error names the signal when the launcher reported one; SIGKILL is what the
    out-of-memory killer sends.
    """
    text = " ".join(str(cause).split())
    sig = signal_of(text)
    why = "the worker process planning this point died"
    if sig:
        why += (
            f" ({sig}: killed, e.g. by the out-of-memory killer)"
            if sig == "SIGKILL"
            else f" ({sig})"
        )
    kind = type(cause).__name__ if isinstance(cause, BaseException) else "error"
    return {
        "key": key,
        "overrides": list(overrides),
        "status": "crashed",
        "signal": sig,
        "driver": driver,
        "attempt": 1,
        "error": f"{why}. Launcher: {kind}: {text[:500]}. A re-run of the sweep retries "
        f"this point.",
    }


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
        row[f"baseline_usd_per_h.{b.device}"] = b.tco_usd_per_hour if b.sla_satisfied else math.nan
    return row


def aggregate(sweep_dir: Path) -> pd.DataFrame:
    """Merge a sweep directory into one tidy table (one row per point of its grid).

    Every point of the manifest gets a row, in manifest order, ``status="missing"`` if it
    has no valid record (see :func:`read_point`). Records of points outside the manifest are
    left out: a directory holds one grid. Columns come in a fixed order, so that the same
    records give the same file whatever order the points finished in.

    Parameters
    ----------
    sweep_dir
        The directory ``hetopt sweep`` wrote.

    Returns
    -------
    pandas.DataFrame
        Columns: ``key``, the swept keys, ``status``, the metrics of :func:`plan_metrics`
        (device-mix columns sorted by name), ``error``, ``signal``, ``wall_s``,
        ``warm_start``, ``overrides``.
    """
    manifest = read_manifest(sweep_dir) or {"points": [], "keys": [], "swept": []}
    rows = []
    metric_cols: dict[str, None] = {}
    for key, overrides in zip(manifest["keys"], manifest["points"], strict=True):
        rec = read_point(sweep_dir, key)
        row: dict[str, Any] = {"key": key, **params_of(overrides)}
        if rec is None:
            row["status"] = "missing"
        else:
            row["status"] = rec["status"]
            metrics = rec.get("metrics") or {}
            metric_cols.update(dict.fromkeys(metrics))
            row.update(metrics)
            row["error"] = rec.get("error", "")
            row["signal"] = rec.get("signal")
            row["wall_s"] = rec.get("wall_s")
            row["warm_start"] = rec.get("warm_start", False)
        row["overrides"] = " ".join(overrides)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    swept = [k.lstrip("+") for k in manifest["swept"]]
    first = ["key", *[k for k in swept if k in frame], "status"]
    # plan_metrics' own columns in its order, then the per-device families sorted by name
    base = [c for c in metric_cols if "." not in c]
    families = sorted(c for c in metric_cols if "." in c)
    last = ["error", "signal", "wall_s", "warm_start", "overrides"]
    known = set(first) | set(base) | set(families) | set(last)
    order = first + base + families + sorted(c for c in frame.columns if c not in known) + last
    return frame.reindex(
        columns=[
            c
            for c in order
            if c in frame.columns or c in ("error", "signal", "wall_s", "warm_start")
        ]
    )


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
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
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
