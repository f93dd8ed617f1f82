"""A LangChain callback handler that records a LangGraph run as OpenTelemetry GenAI spans.

Used by ``generate.py`` to turn runs of the example agents (stub models, real tools) into the
synthetic trace set. It buffers one request's callback events and, when the request's root run
ends, writes its spans through an OpenTelemetry SDK tracer with explicit, synthetic timestamps
(a virtual clock; nothing sleeps):

* the request (the root run), and every compiled subgraph a node runs: ``invoke_agent <name>``
  with ``gen_ai.operation.name=invoke_agent``, ``gen_ai.agent.name`` and
  ``openinference.span.kind=AGENT``;
* every LangGraph node run (a chain run tagged ``graph:step:<n>``): a span named after the node
  with ``graph.node.name`` (OpenInference's graph attribute), ``langgraph.step`` and
  ``openinference.span.kind=CHAIN``;
* every chat-model call: ``chat <model>`` with ``gen_ai.request.model``,
  ``gen_ai.response.model``, ``gen_ai.usage.input_tokens`` and ``gen_ai.usage.output_tokens``
  (from the message's ``usage_metadata``); the clock advances by ``llm_latency_s``;
* every tool call: ``execute_tool <name>`` with ``gen_ai.tool.name``; every retriever call:
  ``retrieval <name>`` with ``gen_ai.operation.name=retrieval`` and ``gen_ai.data_source.id``.
  The clock advances by the call's simulated latency (``simulated_latency_s`` in the tool's
  artifact or the first document's metadata, as ``examples/agents/stubs.py`` records it).

A root run (a new request) first sets the clock to ``next_arrival_s()``.

Other chain runs (routing functions, runnable sequences) are not written; their children hang
under the nearest written span.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from openinference.semconv.trace import OpenInferenceSpanKindValues, SpanAttributes
from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as genai

OPERATION = genai.GenAiOperationNameValues


@dataclass
class _Run:
    kind: str  # chain | llm | tool | retriever
    name: str
    parent: UUID | None
    start_s: float
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    end_s: float | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    children: list[UUID] = field(default_factory=list)


def default_llm_latency_s(input_tokens: int, output_tokens: int) -> float:
    """A synthetic chat-call duration: 50 ms + 0.1 ms per prompt token + 20 ms per output token."""
    return 0.05 + 1e-4 * input_tokens + 0.02 * output_tokens


class OtelTraceHandler(BaseCallbackHandler):
    """Records LangGraph runs as OpenTelemetry GenAI spans (see the module docstring).

    Parameters
    ----------
    tracer
        An OpenTelemetry SDK tracer.
    next_arrival_s
        The arrival time of the next request (seconds since the epoch).
    llm_latency_s
        A chat call's duration from its input and output tokens.
    """

    def __init__(
        self,
        tracer: trace.Tracer,
        next_arrival_s: Callable[[], float],
        llm_latency_s: Callable[[int, int], float] = default_llm_latency_s,
    ) -> None:
        self.tracer = tracer
        self.next_arrival_s = next_arrival_s
        self.llm_latency_s = llm_latency_s
        self.clock_s = 0.0
        self.runs: dict[UUID, _Run] = {}
        self.lock = threading.Lock()

    # -- recording ---------------------------------------------------------------------------

    def _start(self, run_id: UUID, parent: UUID | None, run: _Run) -> None:
        with self.lock:
            self.runs[run_id] = run
            if parent in self.runs:
                self.runs[parent].children.append(run_id)

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = str(kwargs.get("name") or (serialized or {}).get("name") or "chain")
        if parent_run_id is None:
            self.clock_s = self.next_arrival_s()  # a new request arrives
        run = _Run("chain", name, parent_run_id, self.clock_s, tuple(tags or ()), metadata or {})
        self._start(run_id, parent_run_id, run)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, 1e-3)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, 0.0)

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        params = kwargs.get("invocation_params") or {}
        meta = metadata or {}
        model = meta.get("ls_model_name") or params.get("model") or params.get("model_name")
        run = _Run("llm", str(model or "unknown-model"), parent_run_id, self.clock_s)
        self._start(run_id, parent_run_id, run)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        usage: dict[str, Any] = {}
        model = None
        for gens in response.generations:
            for gen in gens:
                message = getattr(gen, "message", None)
                usage = dict(getattr(message, "usage_metadata", None) or {})
                model = getattr(message, "response_metadata", {}).get("model_name") or model
        n_in, n_out = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
        with self.lock:
            run = self.runs[run_id]
            run.attrs = {"input_tokens": n_in, "output_tokens": n_out}
            if model and run.name == "unknown-model":
                run.name = str(model)
        self._end(run_id, self.llm_latency_s(n_in, n_out))

    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        name = str(kwargs.get("name") or (serialized or {}).get("name") or "tool")
        self._start(run_id, parent_run_id, _Run("tool", name, parent_run_id, self.clock_s))

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        artifact = getattr(output, "artifact", None) or {}
        self._end(run_id, float(artifact.get("simulated_latency_s", 0.0)))

    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        name = str(kwargs.get("name") or (serialized or {}).get("name") or "retriever")
        self._start(run_id, parent_run_id, _Run("retriever", name, parent_run_id, self.clock_s))

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        latency = documents[0].metadata.get("simulated_latency_s", 0.0) if documents else 0.0
        self._end(run_id, float(latency))

    def _end(self, run_id: UUID, advance_s: float) -> None:
        with self.lock:
            run = self.runs.get(run_id)
            if run is None:
                return
            self.clock_s += advance_s
            run.end_s = self.clock_s
            root = run.parent is None or run.parent not in self.runs
        if root:
            self._emit(run_id)

    # -- writing -----------------------------------------------------------------------------

    @staticmethod
    def _is_node(run: _Run) -> bool:
        return run.kind == "chain" and any(t.startswith("graph:step:") for t in run.tags)

    def _emit(self, root_id: UUID) -> None:
        """Write the spans of the finished request rooted at ``root_id``, then forget it."""
        self._write(root_id, None, "agent")
        stack = [root_id]
        while stack:
            rid = stack.pop()
            stack += self.runs[rid].children
            del self.runs[rid]

    def _role(self, run: _Run, is_root: bool) -> str | None:
        if is_root:
            return "agent"
        if run.kind != "chain":
            return run.kind
        if self._is_node(run):
            return "node"
        if any(self._is_node(self.runs[c]) for c in run.children):
            return "agent"  # a compiled subgraph that a node runs
        return None

    def _write(self, rid: UUID, parent: Any, role: str | None) -> None:
        run = self.runs[rid]
        span = None
        if role is not None:
            name, attrs = self._describe(run, role)
            ctx = trace.set_span_in_context(parent) if parent is not None else None
            span = self.tracer.start_span(
                name, context=ctx, start_time=_ns(run.start_s), attributes=attrs
            )
        for child in run.children:
            self._write(child, span or parent, self._role(self.runs[child], False))
        if span is not None:
            span.end(end_time=_ns(run.end_s if run.end_s is not None else run.start_s))

    def _describe(self, run: _Run, role: str) -> tuple[str, dict[str, Any]]:
        kind = SpanAttributes.OPENINFERENCE_SPAN_KIND
        if role == "agent":
            return f"{OPERATION.INVOKE_AGENT.value} {run.name}", {
                genai.GEN_AI_OPERATION_NAME: OPERATION.INVOKE_AGENT.value,
                genai.GEN_AI_AGENT_NAME: run.name,
                kind: OpenInferenceSpanKindValues.AGENT.value,
            }
        if role == "node":
            node = str(run.metadata.get("langgraph_node", run.name))
            return node, {
                SpanAttributes.GRAPH_NODE_NAME: node,
                "langgraph.step": int(run.metadata.get("langgraph_step", 0)),
                kind: OpenInferenceSpanKindValues.CHAIN.value,
            }
        if role == "llm":
            return f"{OPERATION.CHAT.value} {run.name}", {
                genai.GEN_AI_OPERATION_NAME: OPERATION.CHAT.value,
                genai.GEN_AI_REQUEST_MODEL: run.name,
                genai.GEN_AI_RESPONSE_MODEL: run.name,
                genai.GEN_AI_USAGE_INPUT_TOKENS: run.attrs.get("input_tokens", 0),
                genai.GEN_AI_USAGE_OUTPUT_TOKENS: run.attrs.get("output_tokens", 0),
                kind: OpenInferenceSpanKindValues.LLM.value,
            }
        if role == "tool":
            return f"{OPERATION.EXECUTE_TOOL.value} {run.name}", {
                genai.GEN_AI_OPERATION_NAME: OPERATION.EXECUTE_TOOL.value,
                genai.GEN_AI_TOOL_NAME: run.name,
                kind: OpenInferenceSpanKindValues.TOOL.value,
            }
        return f"{OPERATION.RETRIEVAL.value} {run.name}", {
            genai.GEN_AI_OPERATION_NAME: OPERATION.RETRIEVAL.value,
            genai.GEN_AI_DATA_SOURCE_ID: run.name,
            kind: OpenInferenceSpanKindValues.RETRIEVER.value,
        }


def _ns(seconds: float) -> int:
    return round(seconds * 1e9)
