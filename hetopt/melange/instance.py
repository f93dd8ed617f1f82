"""Mélange's input JSON, read and checked (:func:`load_melange`, :func:`melange_instance`).

The file is ``melange/config/example.json``'s format, read as Mélange's runner reads it
(``melange/lib/runner.py``: the four keys of ``SolverRunner.Config``, ``slice_factor``
defaulting to 1, no other key). Every mistake is an :class:`~hetopt.errors.InputError` of one
paragraph that names the file, the key and the fix.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hetopt.errors import InputError
from hetopt.inputs import read_text_input

SHARE_TOL = 1e-6
"""How far the shares of ``workload_distribution`` may sum from 1."""

MAX_FILE_BYTES = 16 * 2**20
"""Largest Mélange file read (the shipped example is a few hundred bytes)."""

KEYS = ("workload_distribution", "gpu_info", "total_request_rate", "slice_factor")
"""The keys of Mélange's input (``melange/lib/runner.py``'s ``SolverRunner.Config``)."""

MELANGE_EXAMPLE: Mapping[str, Any] = {
    "gpu_info": {
        "A10G": {"cost": 1.01, "tputs": [[2, 1], [5, 2]]},
        "A100-80GB": {"cost": 3.67, "tputs": [[20, 20], [40, 20]]},
    },
    "workload_distribution": [[0.2, 0.1], [0.5, 0.2]],
    "total_request_rate": 30.0,
    "slice_factor": 1,
}
"""Mélange's shipped example (``melange/config/example.json``, also
``examples/melange/example.json``); its published answer is ``{"A10G": 3, "A100-80GB": 1,
"cost": 6.7}``."""


@dataclass(frozen=True)
class GpuType:
    """One entry of ``gpu_info``: the GPU's name, hourly cost and per-bucket throughputs.

    Attributes
    ----------
    name
        The key in ``gpu_info``.
    cost_usd_per_h
        ``cost``: $ per hour of one GPU.
    tputs
        ``tputs[i][j]``: most requests per second one GPU sustains for bucket (i, j) under the
        SLO; 0 when it cannot serve the bucket.
    """

    name: str
    cost_usd_per_h: float
    tputs: tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class MelangeInstance:
    """Mélange's input, checked (:func:`load_melange`, :func:`melange_instance`).

    Attributes
    ----------
    name
        The instance's name (the file's stem).
    workload_distribution
        Share of the requests per bucket: rows are input-size bins, columns output-size bins.
    gpus
        The GPU types, in the file's order.
    total_request_rate
        Requests per second, ``R``.
    slice_factor
        Slices per bucket, ``S`` (Mélange's runner takes 1 when the file has none).
    source
        Where the instance came from (a path), for messages.
    """

    name: str
    workload_distribution: tuple[tuple[float, ...], ...]
    gpus: tuple[GpuType, ...]
    total_request_rate: float
    slice_factor: int = 1
    source: str = ""

    @property
    def shape(self) -> tuple[int, int]:
        """``(input-size bins, output-size bins)``."""
        return len(self.workload_distribution), len(self.workload_distribution[0])

    @property
    def gpu_names(self) -> tuple[str, ...]:
        """GPU type names, in the file's order."""
        return tuple(g.name for g in self.gpus)

    def buckets(self) -> list[tuple[str, int, int, float]]:
        """``(name, row, column, share)`` of every bucket, row-major (Mélange's order)."""
        rows, cols = self.shape
        return [
            (bucket_name(i, j), i, j, self.workload_distribution[i][j])
            for i in range(rows)
            for j in range(cols)
        ]

    def as_dict(self) -> dict[str, Any]:
        """Mélange's JSON form of the instance (what :func:`load_melange` reads back)."""
        return {
            "gpu_info": {
                g.name: {"cost": g.cost_usd_per_h, "tputs": [list(r) for r in g.tputs]}
                for g in self.gpus
            },
            "workload_distribution": [list(r) for r in self.workload_distribution],
            "total_request_rate": self.total_request_rate,
            "slice_factor": self.slice_factor,
        }


def bucket_name(row: int, col: int) -> str:
    """``b<row>x<col>``: the bucket of input-size bin ``row`` and output-size bin ``col``.

    >>> bucket_name(0, 1)
    'b0x1'
    """
    return f"b{row}x{col}"


class _Where:
    """Builds the one-paragraph messages of a file's errors."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, key: str, problem: str, fix: str) -> InputError:
        return InputError(f"Mélange file {self.source}: {key} {problem}. {fix}")


def load_melange(path: str | Path) -> MelangeInstance:
    """Read Mélange's input JSON (``melange/config/example.json`` format) and check it.

    Parameters
    ----------
    path
        A local JSON file with ``workload_distribution``, ``gpu_info``, ``total_request_rate``
        and, optionally, ``slice_factor`` (1 when absent, as Mélange's runner takes it).

    Returns
    -------
    MelangeInstance

    Raises
    ------
    InputError
        One paragraph naming the file, the key and the fix: the file is missing or not JSON, a
        key is missing, unknown or repeated, the shares do not sum to 1 within
        :data:`SHARE_TOL`, a number is negative, not finite or not a number, a ``tputs`` matrix
        does not have the distribution's shape, a bucket with a positive share has no GPU that
        serves it (throughput 0 everywhere), or ``slice_factor`` is not an integer >= 1.

    Examples
    --------
    >>> import json, pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "example.json"
    >>> _ = p.write_text(json.dumps(MELANGE_EXAMPLE))
    >>> inst = load_melange(p)
    >>> inst.name, inst.shape, inst.gpu_names, inst.total_request_rate, inst.slice_factor
    ('example', (2, 2), ('A10G', 'A100-80GB'), 30.0, 1)
    """
    where = _Where(str(path))
    text = read_text_input(path, f"Mélange file {path}", MAX_FILE_BYTES)
    try:
        data = json.loads(text, object_pairs_hook=_no_repeats(where), parse_constant=_no_nan(where))
    except json.JSONDecodeError as exc:
        raise where.error(
            "is not valid JSON",
            f"({exc.msg} at line {exc.lineno}, column {exc.colno})",
            "Fix the JSON syntax (Mélange's input is one JSON object, see "
            "examples/melange/example.json).",
        ) from None
    return melange_instance(data, Path(path).stem, str(path))


def _no_repeats(where: _Where) -> Any:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise where.error(
                    f"key {key!r}",
                    "appears twice in one object (JSON readers keep only the last)",
                    "Keep one of them.",
                )
            out[key] = value
        return out

    return hook


def _no_nan(where: _Where) -> Any:
    def hook(constant: str) -> float:
        raise where.error(
            f"the value {constant}",
            "is not a finite number",
            "Replace it by a finite number (JSON has no NaN or Infinity).",
        )

    return hook


def melange_instance(
    data: Mapping[str, Any], name: str = "melange", source: str = "<mapping>"
) -> MelangeInstance:
    """Check Mélange's input given as a mapping (the parsed JSON) and build the instance.

    Parameters
    ----------
    data
        ``{"workload_distribution": ..., "gpu_info": ..., "total_request_rate": ...,
        "slice_factor": ...}`` (``slice_factor`` may be left out: 1).
    name
        The instance's name.
    source
        Where ``data`` came from, for messages.

    Raises
    ------
    InputError
        As :func:`load_melange`.

    Examples
    --------
    >>> melange_instance({**MELANGE_EXAMPLE, "slice_factor": 0})
    Traceback (most recent call last):
    ...
    hetopt.errors.InputError: Mélange file <mapping>: slice_factor is 0, not an integer >= 1. ...
    """
    where = _Where(source)
    if not isinstance(data, Mapping):
        raise where.error(
            "top level",
            f"is a JSON {_json_type(data)}, not an object",
            f"Write one object with the keys {', '.join(KEYS)}.",
        )
    unknown = [k for k in data if k not in KEYS]
    if unknown:
        raise where.error(
            f"key {unknown[0]!r}",
            "is not one of Mélange's inputs",
            f"Remove it, or fix its name: the keys are {', '.join(KEYS)}.",
        )
    missing = [k for k in KEYS[:3] if k not in data]
    if missing:
        raise where.error(
            f"key {missing[0]!r}",
            "is missing",
            f"Add it (the keys are {', '.join(KEYS)}; see examples/melange/example.json).",
        )
    shares = _matrix(data["workload_distribution"], "workload_distribution", where)
    total = math.fsum(v for row in shares for v in row)
    if abs(total - 1.0) > SHARE_TOL:
        raise where.error(
            "workload_distribution",
            f"sums to {total:.9g}, not 1 (within {SHARE_TOL:g})",
            "Give each bucket its share of the requests so that the shares add up to 1.",
        )
    gpus = _gpus(data["gpu_info"], (len(shares), len(shares[0])), where)
    rate = _number(data["total_request_rate"], "total_request_rate", where)
    if rate <= 0:
        raise where.error(
            "total_request_rate",
            f"is {rate:g}",
            "Give the requests per second across all buckets, a positive number.",
        )
    slice_factor = _slice_factor(data.get("slice_factor", 1), where)
    _check_servable(shares, gpus, where)
    return MelangeInstance(name, shares, gpus, rate, slice_factor, source)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _number(value: Any, key: str, where: _Where) -> float:
    """A finite, non-negative JSON number (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise where.error(
            key, f"is a {_json_type(value)} ({value!r}), not a number", "Write a plain number."
        )
    if not math.isfinite(value):
        raise where.error(key, f"is {value}", "Write a finite number.")
    if value < 0:
        raise where.error(key, f"is negative ({value:g})", "Write a number >= 0.")
    return float(value)


def _matrix(value: Any, key: str, where: _Where) -> tuple[tuple[float, ...], ...]:
    """A non-empty rectangular 2-D list of numbers >= 0."""
    if not isinstance(value, list) or not value or not all(isinstance(r, list) for r in value):
        raise where.error(
            key,
            f"is a {_json_type(value)}, not a non-empty 2-D list",
            "Write a list of rows, one per input-size bin, each a list of numbers, one per "
            "output-size bin (e.g. [[0.2, 0.1], [0.5, 0.2]]).",
        )
    width = len(value[0])
    for i, row in enumerate(value):
        if not row or len(row) != width:
            raise where.error(
                f"{key}[{i}]",
                f"has {len(row)} entries where row 0 has {width}",
                "Give every row one number per output-size bin (at least one).",
            )
    return tuple(
        tuple(_number(v, f"{key}[{i}][{j}]", where) for j, v in enumerate(row))
        for i, row in enumerate(value)
    )


def _gpus(value: Any, shape: tuple[int, int], where: _Where) -> tuple[GpuType, ...]:
    """``gpu_info``: ``{name: {"cost": $/h, "tputs": matrix of the distribution's shape}}``."""
    if not isinstance(value, Mapping) or not value:
        raise where.error(
            "gpu_info",
            f"is {'empty' if isinstance(value, Mapping) else 'a JSON ' + _json_type(value)}",
            'Write an object {"<GPU name>": {"cost": <$/h>, "tputs": [[<req/s>, ...], ...]}} '
            "with at least one GPU type (Mélange's solver reads a mapping by name, not a list).",
        )
    out = []
    for name, info in value.items():
        key = f"gpu_info.{name}"
        if not isinstance(info, Mapping):
            raise where.error(
                key,
                f"is a JSON {_json_type(info)}, not an object",
                'Write {"cost": <$/h>, "tputs": [[<req/s>, ...], ...]}.',
            )
        for part in ("cost", "tputs"):
            if part not in info:
                raise where.error(
                    f"{key}.{part}",
                    "is missing",
                    'Add it: each GPU type needs "cost" ($ per hour of one GPU) and "tputs" '
                    "(its most requests per second for each bucket).",
                )
        cost = _number(info["cost"], f"{key}.cost", where)
        tputs = _matrix(info["tputs"], f"{key}.tputs", where)
        if (len(tputs), len(tputs[0])) != shape:
            raise where.error(
                f"{key}.tputs",
                f"is {len(tputs)} x {len(tputs[0])} but workload_distribution is "
                f"{shape[0]} x {shape[1]}",
                "Give one throughput per bucket, in the same rows and columns as "
                "workload_distribution (0 where the GPU cannot serve the bucket).",
            )
        out.append(GpuType(str(name), cost, tputs))
    return tuple(out)


def _slice_factor(value: Any, where: _Where) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise where.error(
            "slice_factor",
            f"is {value!r}, not an integer >= 1",
            "Give how many equal slices each bucket is cut into (Mélange recommends 4), or "
            "leave the key out for 1.",
        )
    return int(value)


def _check_servable(
    shares: tuple[tuple[float, ...], ...], gpus: tuple[GpuType, ...], where: _Where
) -> None:
    for i, row in enumerate(shares):
        for j, share in enumerate(row):
            if share > 0 and not any(g.tputs[i][j] > 0 for g in gpus):
                raise where.error(
                    f"workload_distribution[{i}][{j}]",
                    f"gives bucket ({i}, {j}) a share of {share:g}, but every GPU type's "
                    f"tputs[{i}][{j}] is 0, so no GPU can serve it",
                    "Add a GPU type that serves the bucket, give a throughput profiled for "
                    "it, or set its share to 0 (and rescale the others to sum to 1).",
                )
