"""Generate the synthetic OTLP trace set: run example agents under the OpenTelemetry SDK.

Each agent runs ``n_requests`` times with stub models; :class:`otel_callback.OtelTraceHandler`
turns every run into OpenTelemetry GenAI spans, which the SDK's in-memory exporter collects and
``opentelemetry-exporter-otlp-proto-common`` encodes as OTLP protobuf; the file holds that
message in OTLP JSON (hex ids), one ``TracesData`` object per line, one line per request.
Requests arrive as a Poisson process (seeded exponential gaps at ``rate_per_s``); span times
are synthetic (a virtual clock that starts at each arrival; tool and retriever calls take the
latency the stub drew for them, chat calls a duration from their token counts). Trace and
span ids come from a seeded generator, so a run is byte-for-byte reproducible.

    python examples/traces/generate.py                 # every agent -> examples/traces/*.otlp.json
    python examples/traces/generate.py react_agent --requests 400 --out /tmp/t.otlp.json

Needs ``pip install -e '.[traces]'`` plus langgraph.
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "agents")]

EPOCH_S = 1_767_225_600.0  # 2026-01-01T00:00:00Z: the first arrival's clock origin
AGENTS: dict[str, dict[str, Any]] = {
    "react_agent": {"requests": 60, "rate_per_s": 2.0},
    "supervisor_agent": {"requests": 30, "rate_per_s": 1.0},
    "rag_agent": {"requests": 60, "rate_per_s": 4.0},
}
"""The shipped trace set: example agent (examples/agents/<name>.py) -> requests and arrival rate
(each file stays well under 1 MB; the round-trip test generates more requests in memory)."""
"""The shipped trace set: agent module -> requests and arrival rate."""


def _id_generator(seed: int) -> Any:
    from opentelemetry.sdk.trace.id_generator import IdGenerator

    class SeededIds(IdGenerator):
        def __init__(self) -> None:
            self.rng = random.Random(seed)

        def generate_span_id(self) -> int:
            return self.rng.getrandbits(64) or 1

        def generate_trace_id(self) -> int:
            return self.rng.getrandbits(128) or 1

    return SeededIds()


def trace_agent(
    run: Callable[[int, int], Any],
    n_requests: int,
    rate_per_s: float,
    seed: int = 0,
    service_name: str = "agent",
) -> list[Any]:
    """The finished SDK spans of ``run(n_requests, seed)``, requests arriving as a Poisson process.

    The handler is attached to every LangChain run through a configure hook, so the example's
    own ``run`` is traced unchanged.
    """
    from contextvars import ContextVar

    from langchain_core.tracers.context import register_configure_hook
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from otel_callback import OtelTraceHandler

    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource({"service.name": service_name}), id_generator=_id_generator(seed)
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    arrivals = random.Random(seed + 29)
    clock = [EPOCH_S]

    def next_arrival_s() -> float:
        clock[0] += arrivals.expovariate(rate_per_s)
        return clock[0]

    handler = OtelTraceHandler(provider.get_tracer("hetopt.examples.traces"), next_arrival_s)
    hook: ContextVar[Any] = ContextVar(f"hetopt_otel_{id(handler)}", default=None)
    register_configure_hook(hook, inheritable=True)
    token = hook.set(handler)
    try:
        run(n_requests, seed)
    finally:
        hook.reset(token)
    provider.shutdown()
    return list(exporter.get_finished_spans())


def otlp_json_lines(spans: list[Any]) -> str:
    """The spans as OTLP JSON, one TracesData object per trace (request), hex ids."""
    from google.protobuf import json_format
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    by_trace: dict[int, list[Any]] = {}
    for s in spans:
        by_trace.setdefault(s.context.trace_id, []).append(s)
    lines = []
    for group in by_trace.values():
        message = encode_spans(group)
        data = json_format.MessageToDict(message)  # ExportTraceServiceRequest == TracesData
        for rs in data.get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                for span in ss.get("spans", []):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in span:
                            span[key] = _b64_to_hex(span[key])
                    if "kind" in span:  # OTLP JSON: enums as integers
                        span["kind"] = _kind_number(span["kind"])
        lines.append(json.dumps(data, sort_keys=True, separators=(",", ":")))
    return "\n".join(lines) + "\n"


def _b64_to_hex(value: str) -> str:
    import base64

    return base64.b64decode(value).hex()


def _kind_number(kind: Any) -> int:
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    return kind if isinstance(kind, int) else int(Span.SpanKind.Value(kind))


def generate(name: str, n_requests: int, rate_per_s: float, seed: int = 0) -> str:
    """The OTLP JSON trace text of ``n_requests`` runs of example agent ``name``."""
    module = importlib.import_module(name)
    spans = trace_agent(module.run, n_requests, rate_per_s, seed, service_name=name)
    return otlp_json_lines(spans)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("agents", nargs="*", default=list(AGENTS))
    parser.add_argument("--requests", type=int)
    parser.add_argument("--rate", type=float)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    for name in args.agents:
        spec = AGENTS.get(name, {"requests": 200, "rate_per_s": 1.0})
        text = generate(
            name, args.requests or spec["requests"], args.rate or spec["rate_per_s"], args.seed
        )
        out = args.out or HERE / f"{name}.otlp.json"
        out.write_text(text)
        print(f"{out}: {text.count(chr(10))} requests, {len(text) / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
