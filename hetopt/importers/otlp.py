"""Read OpenTelemetry trace exports in OTLP JSON into plain, immutable span records.

The file is what an OpenTelemetry collector's file exporter writes (and what
:func:`spans_to_otlp_json` writes): one ``TracesData`` object
``{"resourceSpans": [{"scopeSpans": [{"spans": [...]}]}]}`` per line, or one per file. OTLP
JSON differs from protobuf's default JSON mapping in two ways (OTLP specification, "JSON
Protobuf Encoding"): trace and span ids are lowercase hex strings, not base64, and enum values
are integers. 64-bit integers (``startTimeUnixNano``, ``intValue``) are decimal strings in both,
which the protobuf mapping accepts. So each object is parsed by ``google.protobuf.json_format``
into ``opentelemetry.proto.trace.v1.trace_pb2.TracesData`` after its ids are rewritten from hex
to base64; the reader checks the structure (unknown fields are refused) and the attribute
values (``AnyValue``) are read from the typed message, not by hand.

``opentelemetry-proto`` is imported only when a file is read (``pip install -e '.[traces]'``);
without it :func:`read_otlp_json` raises an :class:`~hetopt.errors.InputError` naming the extra.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from hetopt.errors import InputError
from hetopt.inputs import read_text_input

__all__ = ["MAX_TRACE_BYTES", "SpanRecord", "read_otlp_json", "require_traces_extra"]

MAX_TRACE_BYTES = 512 * 2**20
"""Largest trace file read."""

_ID_KEYS = ("traceId", "spanId", "parentSpanId")


@dataclass(frozen=True)
class SpanRecord:
    """One span as the trace importer reads it.

    Attributes
    ----------
    trace_id, span_id
        Hex ids; ``parent_id`` is ``""`` for a root span.
    name
        The span name.
    start_s, end_s
        Start and end, seconds since the Unix epoch.
    attributes
        The span's attributes (read-only), values as Python scalars or tuples.
    source
        The file (and line) the span was read from, for messages.

    Examples
    --------
    >>> s = SpanRecord("ab", "01", "", "invoke_agent demo", 1.0, 3.5, {"gen_ai.agent.name": "demo"})
    >>> s.duration_s, s.is_root, s.attributes["gen_ai.agent.name"]
    (2.5, True, 'demo')
    """

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    start_s: float
    end_s: float
    attributes: Mapping[str, Any] = field(default_factory=dict)
    source: str = "<spans>"

    def __post_init__(self) -> None:
        object.__setattr__(self, "attributes", MappingProxyType(dict(self.attributes)))

    @property
    def duration_s(self) -> float:
        """End minus start."""
        return self.end_s - self.start_s

    @property
    def is_root(self) -> bool:
        """Whether the span has no parent."""
        return not self.parent_id


def require_traces_extra(what: str) -> None:
    """Raise an :class:`InputError` naming the ``traces`` extra if OpenTelemetry is missing."""
    try:
        import opentelemetry.proto.trace.v1.trace_pb2  # noqa: F401
    except ImportError:
        raise InputError(
            f"{what} needs the OpenTelemetry packages (opentelemetry-proto, "
            f"opentelemetry-sdk, openinference-semantic-conventions), which are not "
            f"installed. Install the extra: pip install -e '.[traces]'."
        ) from None


def _hex_to_b64(value: Any, where: str) -> Any:
    if not isinstance(value, str) or value == "":
        return value
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise InputError(
            f"{where}: id {value!r} is not a hex string. OTLP JSON writes trace and span ids "
            f"as hex (OTLP specification, JSON Protobuf Encoding); export with an OTLP file "
            f"exporter."
        ) from None
    return base64.b64encode(raw).decode("ascii")


def _fix_ids(obj: Any, where: str) -> Any:
    """The TracesData mapping with every span's and link's hex ids made base64."""
    if isinstance(obj, dict):
        return {
            k: _hex_to_b64(v, where) if k in _ID_KEYS else _fix_ids(v, where)
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [_fix_ids(v, where) for v in obj]
    return obj


def _any_value(value: Any) -> Any:
    """A protobuf ``AnyValue`` as a Python value (arrays as tuples, kvlists as dicts)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return tuple(_any_value(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def _objects(text: str, where: str) -> Iterable[tuple[str, Any]]:
    """The JSON objects of a file: the whole file, or one per non-empty line."""
    with contextlib.suppress(json.JSONDecodeError):  # not one document: one per line
        yield where, json.loads(text)
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        at = f"{where} line {number}"
        try:
            yield at, json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{at}: not JSON ({exc.msg} at column {exc.colno}). A trace file holds OTLP "
                f"JSON, one TracesData object per line or one per file, as an OpenTelemetry "
                f"collector's file exporter writes it."
            ) from None


def _parse(obj: Any, where: str) -> list[SpanRecord]:
    from google.protobuf import json_format
    from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

    if not isinstance(obj, dict) or "resourceSpans" not in obj:
        found = sorted(obj)[:6] if isinstance(obj, dict) else type(obj).__name__
        raise InputError(
            f"{where}: not an OTLP JSON trace export: expected an object with "
            f"'resourceSpans', found {found}. Export traces with an OTLP file exporter (or "
            f"examples/traces/generate.py)."
        )
    message = TracesData()
    try:
        json_format.ParseDict(_fix_ids(obj, where), message)
    except json_format.ParseError as exc:
        raise InputError(
            f"{where}: not valid OTLP JSON: {exc}. Check the file against the OTLP "
            f"TracesData schema (opentelemetry-proto)."
        ) from None
    spans = []
    for resource in message.resource_spans:
        for scope in resource.scope_spans:
            for s in scope.spans:
                spans.append(
                    SpanRecord(
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_id=s.parent_span_id.hex(),
                        name=s.name,
                        start_s=s.start_time_unix_nano / 1e9,
                        end_s=s.end_time_unix_nano / 1e9,
                        attributes={a.key: _any_value(a.value) for a in s.attributes},
                        source=where,
                    )
                )
    return spans


def read_otlp_json(paths: Sequence[str | Path]) -> tuple[SpanRecord, ...]:
    """Every span of the OTLP JSON trace files ``paths``, in file order.

    Raises
    ------
    InputError
        A missing or unreadable file, a file that is not OTLP JSON (with the file and line),
        a malformed id, or missing OpenTelemetry packages (naming the ``traces`` extra).

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> span = {"traceId": "0" * 31 + "1", "spanId": "0" * 15 + "2", "name": "root",
    ...         "startTimeUnixNano": "1000000000", "endTimeUnixNano": "3000000000",
    ...         "attributes": [{"key": "gen_ai.operation.name",
    ...                         "value": {"stringValue": "invoke_agent"}}]}
    >>> doc = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.json"
    >>> _ = path.write_text(json.dumps(doc))
    >>> [(s.name, s.duration_s, dict(s.attributes)) for s in read_otlp_json([path])]
    [('root', 2.0, {'gen_ai.operation.name': 'invoke_agent'})]
    """
    require_traces_extra("Reading OTLP trace files")
    spans: list[SpanRecord] = []
    for path in paths:
        text = read_text_input(path, "trace file", MAX_TRACE_BYTES)
        for where, obj in _objects(text, f"trace file {path}"):
            spans += _parse(obj, where)
    return tuple(spans)
