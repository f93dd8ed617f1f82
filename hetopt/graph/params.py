"""Node parameters of the agent graph IR: task kinds and per-kind validation.

Every node's parameters are checked here (names, types, ranges) and frozen, so an
:class:`hetopt.graph.ir.AgentGraph` only ever holds valid, immutable parameters. Errors name the
file, node and field.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from enum import StrEnum
from typing import Any

from hetopt.errors import InputError
from hetopt.graph.architectures import BYTES_PER_ELEMENT
from hetopt.inputs import closest

NODE_ID_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$")
"""Node ids: letters, digits, ``_`` and ``-``. ``.`` and ``/`` are reserved for operator ids."""


class TaskKind(StrEnum):
    """Node classes of the paper's Table 1."""

    AGENT = "agent"
    MODEL = "model_execution"
    KV_CACHE = "kv_cache"
    TOOL = "tool_call"
    MEMORY = "memory_lookup"
    COMPUTE = "general_compute"
    CONTROL = "control"
    OBSERVATION = "observation_store"


class FrozenMap(Mapping[str, Any]):
    """An immutable, hashable mapping; node parameters are stored as one.

    Compares equal to any mapping with the same items, so ``node.params == {...}`` works.
    """

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = dict(data or {})

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


def freeze(value: Any) -> Any:
    """Recursively turn mappings into :class:`FrozenMap` and lists into tuples."""
    if isinstance(value, Mapping):
        return FrozenMap({str(k): freeze(v) for k, v in value.items()})
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return tuple(freeze(v) for v in value)
    return value


# --------------------------------------------------------------------------------------------
# Value checks. Every message is one paragraph: where (file, node/edge, field), what, and the fix.
# --------------------------------------------------------------------------------------------


def as_number(
    value: Any,
    where: str,
    name: str,
    *,
    minimum: float = 0.0,
    strict: bool = False,
    maximum: float | None = None,
) -> float:
    """A finite number in range. Numeric strings are accepted because YAML 1.1 readers (PyYAML's
    default) return ``2.0e8`` as the string ``'2.0e8'``."""
    number: float | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    low = f"> {minimum:g}" if strict else f">= {minimum:g}"
    rng = low if maximum is None else f"{low} and <= {maximum:g}"
    if number is None or not math.isfinite(number):
        raise InputError(
            f"{where}: field '{name}' must be a number {rng}, got {value!r}. Write a plain number "
            "such as 1024 or 2.0e+8."
        )
    if (
        number < minimum
        or (strict and number == minimum)
        or (maximum is not None and number > maximum)
    ):
        raise InputError(f"{where}: field '{name}' must be {rng}, got {value!r}. Fix the value.")
    return number


def as_integer(value: Any, where: str, name: str, *, minimum: int = 0) -> int:
    number = as_number(value, where, name, minimum=minimum)
    if not number.is_integer():
        raise InputError(
            f"{where}: field '{name}' must be a whole number >= {minimum}, got {value!r}. Round it."
        )
    return int(number)


def as_mapping(value: Any, where: str, name: str, fields: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InputError(
            f"{where}: field '{name}' must be a mapping with keys {list(fields)}, got "
            f"{type(value).__name__} {value!r}. Write it as '{name}: {{key: value, ...}}'."
        )
    check_known_keys(value, fields, where, f"field '{name}'")
    return value


def check_known_keys(
    data: Mapping[str, Any], allowed: Sequence[str], where: str, what: str
) -> None:
    unknown = [str(k) for k in data if k not in allowed]
    if unknown:
        hints = []
        for key in unknown:
            close = closest(key, allowed)
            if close:
                hints.append(f"'{close}' for '{key}'")
        hint = f" Did you mean {', '.join(hints)}?" if hints else ""
        raise InputError(
            f"{where}: {what} has unknown key(s) {unknown}.{hint} Allowed keys: {list(allowed)}."
        )


# --------------------------------------------------------------------------------------------
# Node parameters, per kind
# --------------------------------------------------------------------------------------------

MODEL_KEYS = ("model", "precision", "input_tokens", "output_tokens", "tokens")
WORK_FIELDS = ("flops", "mem_bytes", "footprint_bytes", "static_latency_s")
LOOKUP_FIELDS = ("latency_s", "request_bytes", "response_bytes")
TOOL_COMPUTE_FIELDS = ("flops", "mem_bytes")
MEMORY_KEYS = ("vectors", "dim", "bytes_per_element", "scan_fraction", "top_k")
COMMON_KEYS = ("description",)

PARAM_KEYS: dict[TaskKind, tuple[str, ...]] = {
    TaskKind.AGENT: COMMON_KEYS,
    TaskKind.MODEL: MODEL_KEYS + COMMON_KEYS,
    TaskKind.TOOL: ("lookup", "compute") + COMMON_KEYS,
    TaskKind.MEMORY: MEMORY_KEYS + COMMON_KEYS,
    TaskKind.COMPUTE: ("work",) + COMMON_KEYS,
    TaskKind.CONTROL: ("work",) + MODEL_KEYS + COMMON_KEYS,
    TaskKind.OBSERVATION: ("work",) + COMMON_KEYS,
    TaskKind.KV_CACHE: ("work",) + COMMON_KEYS,
}
"""Parameters each node kind accepts (besides ``kind``, ``devices`` and, for agents,
``subgraph``)."""

DEFAULT_TOP_K = 10


def _model_params(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    model = raw.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InputError(
            f"{where}: field 'model' is missing or empty. Name a model from the architecture "
            "table, e.g. 'model: llama-3-8b'."
        )
    precision = raw.get("precision", "fp16")
    if precision not in BYTES_PER_ELEMENT:
        raise InputError(
            f"{where}: field 'precision' is {precision!r}. Use one of {sorted(BYTES_PER_ELEMENT)}."
        )
    out: dict[str, Any] = {"model": model.strip(), "precision": precision}
    has_tokens = "tokens" in raw
    has_io = "input_tokens" in raw or "output_tokens" in raw
    if has_tokens and has_io:
        raise InputError(
            f"{where}: give either 'tokens' (encoder models: one forward pass) or 'input_tokens' "
            "and 'output_tokens' (decoder LLMs), not both."
        )
    if has_tokens:
        out["tokens"] = as_integer(raw["tokens"], where, "tokens", minimum=1)
    elif has_io:
        for key in ("input_tokens", "output_tokens"):
            if key not in raw:
                raise InputError(
                    f"{where}: field '{key}' is missing. A decoder LLM node needs both "
                    "'input_tokens' (prompt length, >= 1) and 'output_tokens' (generated, >= 0)."
                )
        out["input_tokens"] = as_integer(raw["input_tokens"], where, "input_tokens", minimum=1)
        out["output_tokens"] = as_integer(raw["output_tokens"], where, "output_tokens", minimum=0)
    else:
        raise InputError(
            f"{where}: no token counts. Give 'input_tokens' and 'output_tokens' for a decoder "
            "LLM, or 'tokens' for an encoder model (STT, TTS, classifier, embedding)."
        )
    return out


def _work_params(raw: Any, where: str) -> FrozenMap:
    work = as_mapping(raw, where, "work", WORK_FIELDS)
    return FrozenMap({k: as_number(work.get(k, 0.0), where, f"work.{k}") for k in WORK_FIELDS})


def _tool_params(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    if "lookup" not in raw:
        raise InputError(
            f"{where}: field 'lookup' is missing. A tool_call node needs 'lookup: {{latency_s: "
            "..., request_bytes: ..., response_bytes: ...}}' (the external call)."
        )
    lookup = as_mapping(raw["lookup"], where, "lookup", LOOKUP_FIELDS)
    for key in LOOKUP_FIELDS:
        if key not in lookup:
            raise InputError(
                f"{where}: field 'lookup.{key}' is missing. Give all of {list(LOOKUP_FIELDS)}."
            )
    out: dict[str, Any] = {
        "lookup": FrozenMap({k: as_number(lookup[k], where, f"lookup.{k}") for k in LOOKUP_FIELDS})
    }
    if "compute" in raw:
        compute = as_mapping(raw["compute"], where, "compute", TOOL_COMPUTE_FIELDS)
        out["compute"] = FrozenMap(
            {k: as_number(compute.get(k, 0.0), where, f"compute.{k}") for k in TOOL_COMPUTE_FIELDS}
        )
    return out


def _memory_params(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    for key in ("vectors", "dim"):
        if key not in raw:
            raise InputError(
                f"{where}: field '{key}' is missing. A memory_lookup node needs 'vectors' (index "
                "size) and 'dim' (vector dimension)."
            )
    return {
        "vectors": as_integer(raw["vectors"], where, "vectors", minimum=1),
        "dim": as_integer(raw["dim"], where, "dim", minimum=1),
        "bytes_per_element": as_number(
            raw.get("bytes_per_element", 2.0), where, "bytes_per_element", strict=True
        ),
        "scan_fraction": as_number(
            raw.get("scan_fraction", 1.0), where, "scan_fraction", strict=True, maximum=1.0
        ),
        "top_k": as_integer(raw.get("top_k", DEFAULT_TOP_K), where, "top_k", minimum=1),
    }


def normalize_params(kind: TaskKind, raw: Mapping[str, Any], where: str) -> FrozenMap:
    """Validate a node's parameters for its kind, fill defaults, and freeze them.

    Parameters
    ----------
    kind
        The node's kind.
    raw
        Parameters as written (without ``kind``, ``devices`` and ``subgraph``).
    where
        Context for messages, e.g. ``"voice_agent.yaml: node 'llm'"``.

    Returns
    -------
    FrozenMap
        Normalized parameters. Idempotent: normalizing the result again returns an equal map.

    Raises
    ------
    InputError
        An unknown key, a missing field, or a negative or non-numeric value.
    """
    allowed = PARAM_KEYS[kind]
    check_known_keys(raw, allowed, where, f"a {kind.value} node")
    out: dict[str, Any] = {}
    if "description" in raw:
        out["description"] = str(raw["description"])
    if kind is TaskKind.MODEL or (kind is TaskKind.CONTROL and "model" in raw):
        if "work" in raw:
            raise InputError(
                f"{where}: a control node has either 'model' (an LLM planner) or 'work' (plain "
                "logic), not both. Remove one."
            )
        out.update(_model_params(raw, where))
    elif kind is TaskKind.TOOL:
        out.update(_tool_params(raw, where))
    elif kind is TaskKind.MEMORY:
        out.update(_memory_params(raw, where))
    elif kind in (TaskKind.COMPUTE, TaskKind.CONTROL, TaskKind.OBSERVATION, TaskKind.KV_CACHE):
        stray = [k for k in MODEL_KEYS if k in raw]
        if stray:
            raise InputError(
                f"{where}: field(s) {stray} need 'model' too (an LLM control node); otherwise "
                "describe the cost with 'work: {flops, mem_bytes, footprint_bytes, "
                "static_latency_s}'."
            )
        out["work"] = _work_params(raw.get("work", {}), where)
    return FrozenMap(out)


def as_kind(value: Any, where: str) -> TaskKind:
    if isinstance(value, TaskKind):
        return value
    try:
        return TaskKind(str(value))
    except ValueError:
        kinds = [k.value for k in TaskKind]
        close = difflib.get_close_matches(str(value), kinds, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise InputError(f"{where}: field 'kind' is {value!r}.{hint} Use one of {kinds}.") from None


def as_devices(value: Any, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if (
        not isinstance(value, Sequence)
        or not value
        or not all(isinstance(d, str) and d.strip() for d in value)
    ):
        raise InputError(
            f"{where}: field 'devices' must be a non-empty list of device names, got {value!r}. "
            "Write e.g. 'devices: [H100, B200]' or drop the field to allow every device."
        )
    return tuple(d.strip() for d in value)
