"""A corrective RAG pipeline: retrieve, grade the passages, rewrite the query if they miss.

::

    START -> retrieve -> grade --(relevant)--> generate -> END
                 ^                --(not relevant)--> rewrite --+     (at most 2 rewrites)
                 +----------------------------------------------+

The LLMs and the vector index are stubs (``stubs.py``), so the pipeline runs without an API key.
``BEHAVIOUR`` below is the one place that says how they behave; ``rag_agent.hetopt.yaml`` states
the same numbers for hetopt (``tests/importers`` checks that they agree). The ``retrieve`` node
shows the other way to tell hetopt about a node: a ``hetopt`` key in the node's LangGraph
metadata (here the size of the vector index, which the code knows).

Run it: ``python examples/agents/rag_agent.py``. Plan it:
``hetopt plan workload_file=examples/agents/rag_agent.py:graph``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TypedDict

from langchain_core.documents import Document
from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, StateGraph

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:  # stubs.py sits next to this file
    sys.path.insert(0, HERE)
from stubs import StubChatModel, StubRetriever, reseed  # noqa: E402

BEHAVIOUR: dict[str, Any] = {
    "retrieve": {
        "top_k": 4,
        "passage_bytes": 2048,
        "latency_s": 0.05,
        "index": {"vectors": 5_000_000, "dim": 768, "bytes_per_element": 2, "scan_fraction": 0.02},
    },
    "grade": {
        "model": "llama-3-8b",
        "input_tokens": 2304,  # question and the 4 passages
        "output_tokens": 8,  # 'relevant' or 'irrelevant'
        "routes": {"relevant": 0.7, "irrelevant": 0.3},
        "max_rewrites": 2,  # after that, generate from what was found
    },
    "rewrite": {"model": "llama-3-8b", "input_tokens": 256, "output_tokens": 48},
    "generate": {"model": "llama-3-70b", "input_tokens": 2560, "output_tokens": 320},
}
"""How the stubs behave: models, mean tokens per call, grading routes, the rewrite bound."""


def _llm(name: str, **extra: Any) -> StubChatModel:
    spec = BEHAVIOUR[name]
    return StubChatModel(
        model_name=spec["model"],
        input_tokens=spec["input_tokens"],
        output_tokens=spec["output_tokens"],
        **extra,
    )


_R = BEHAVIOUR["retrieve"]
RETRIEVER = StubRetriever(
    top_k=_R["top_k"], passage_bytes=_R["passage_bytes"], latency_s=_R["latency_s"]
)
GRADER = _llm("grade", routes=BEHAVIOUR["grade"]["routes"])
REWRITER = _llm("rewrite")
GENERATOR = _llm("generate")
STUBS = [RETRIEVER, GRADER, REWRITER, GENERATOR]


class State(TypedDict):
    """The question (as rewritten so far), the passages, the grade and the answer."""

    question: str
    documents: list[Document]
    relevant: bool
    rewrites: int
    answer: str


def retrieve(state: State) -> dict[str, Any]:
    return {"documents": RETRIEVER.invoke(state["question"])}


def grade(state: State) -> dict[str, Any]:
    passages = "\n".join(d.page_content[:80] for d in state["documents"])
    reply = GRADER.invoke([HumanMessage(f"Relevant to {state['question']!r}?\n{passages}")])
    return {"relevant": reply.content == "relevant"}


def route_after_grade(state: State) -> str:
    """Generate when relevant or when the rewrite bound is spent; else rewrite the query."""
    if state["relevant"] or state["rewrites"] >= BEHAVIOUR["grade"]["max_rewrites"]:
        return "generate"
    return "rewrite"


def rewrite(state: State) -> dict[str, Any]:
    reply = REWRITER.invoke([HumanMessage(f"Rewrite for search: {state['question']}")])
    return {
        "question": f"{state['question']} (rewritten {reply.usage_metadata})"[:200],
        "rewrites": state["rewrites"] + 1,
    }


def generate(state: State) -> dict[str, Any]:
    reply = GENERATOR.invoke([HumanMessage(f"Answer {state['question']!r} from the passages.")])
    return {
        "answer": f"answer from {len(state['documents'])} passages, {reply.usage_metadata['output_tokens']} tokens"
    }


builder = StateGraph(State)
builder.add_node(
    "retrieve",
    retrieve,
    metadata={"hetopt": {"kind": "memory_lookup", **_R["index"], "top_k": _R["top_k"]}},
)
builder.add_node("grade", grade)
builder.add_node("rewrite", rewrite)
builder.add_node("generate", generate)
builder.add_edge(START, "retrieve")
builder.add_edge("retrieve", "grade")
builder.add_conditional_edges("grade", route_after_grade, ["generate", "rewrite"])
builder.add_edge("rewrite", "retrieve")
builder.add_edge("generate", END)
graph = builder.compile()


def request(i: int, seed: int = 0) -> State:
    """Request ``i``'s start state, after reseeding every stub from ``(seed, i)``."""
    reseed(STUBS, seed * 100_003 + i)
    return {
        "question": f"Question {i} about GPUs",
        "documents": [],
        "relevant": False,
        "rewrites": 0,
        "answer": "",
    }


def run(n_requests: int, seed: int = 0) -> list[dict[str, Any]]:
    """Answer ``n_requests`` questions (request ``i`` is :func:`request` ``(i, seed)``)."""
    return [graph.invoke(request(i, seed)) for i in range(n_requests)]


if __name__ == "__main__":
    for i, result in enumerate(run(5, seed=0)):
        print(f"request {i}: {result['rewrites']} rewrite(s) -> {result['answer']}")
