"""A supervisor that routes each round to one of two sub-agents, then writes the answer.

::

    START -> supervisor --(route)--> researcher -> supervisor     (at most 4 worker rounds)
                        --(route)--> coder      -> supervisor
                        --(FINISH)-> answer -> END

``researcher`` and ``coder`` are compiled LangGraph subgraphs, each a small ReAct loop of its own
(an LLM and one tool, then a plain-Python step that keeps the notes or the patch).

The LLMs, tools and latencies are stubs (``stubs.py``), so the agent runs without an API key.
``BEHAVIOUR`` below is the one place that says how they behave; ``supervisor_agent.hetopt.yaml``
states the same numbers for hetopt (``tests/importers`` checks that they agree).

Run it: ``python examples/agents/supervisor_agent.py``. Plan it:
``hetopt plan workload_file=examples/agents/supervisor_agent.py:graph``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:  # stubs.py sits next to this file
    sys.path.insert(0, HERE)
from stubs import StubChatModel, reseed, stub_tool  # noqa: E402

BEHAVIOUR: dict[str, Any] = {
    "supervisor": {
        "model": "llama-3-70b",
        "input_tokens": 2048,
        "output_tokens": 32,  # a route name and a short instruction
        "routes": {"researcher": 0.45, "coder": 0.30, "FINISH": 0.25},
        "max_rounds": 4,  # worker rounds before the supervisor must finish
    },
    "researcher": {
        "model": "llama-3-8b",
        "input_tokens": 2048,
        "output_tokens": 256,
        "tool_call_probability": 0.5,
        "max_tool_rounds": 3,
        "tool": {"name": "web_search", "latency_s": 0.4, "response_bytes": 16384},
    },
    "coder": {
        "model": "llama-3-8b",
        "input_tokens": 3072,
        "output_tokens": 512,
        "tool_call_probability": 0.6,
        "max_tool_rounds": 4,
        "tool": {"name": "run_code", "latency_s": 1.5, "response_bytes": 4096},
    },
}
"""How the stubs behave: models, mean tokens per call, routes, tool calls, loop bounds."""


class State(TypedDict):
    """The conversation, the supervisor's last route and the number of worker rounds so far."""

    messages: Annotated[list[AnyMessage], add_messages]
    next: str
    rounds: int


def worker(name: str) -> tuple[CompiledStateGraph, list[Any]]:
    """A compiled ReAct sub-agent ``llm <-> tool``, then ``finish`` (its stubs returned too)."""
    spec = BEHAVIOUR[name]
    tool = stub_tool(
        spec["tool"]["name"],
        f"Stub {spec['tool']['name']}.",
        spec["tool"]["latency_s"],
        spec["tool"]["response_bytes"],
    )
    llm = StubChatModel(
        model_name=spec["model"],
        input_tokens=spec["input_tokens"],
        output_tokens=spec["output_tokens"],
        tool_call_probability=spec["tool_call_probability"],
        tools={tool.name: 1.0},
        max_tool_rounds=spec["max_tool_rounds"],
    )

    def call_llm(state: State) -> dict[str, Any]:
        return {"messages": [llm.invoke(state["messages"])]}

    def route(state: State) -> str:
        last = state["messages"][-1]
        return "tool" if isinstance(last, AIMessage) and last.tool_calls else "finish"

    def finish(state: State) -> dict[str, Any]:
        # Plain Python: drop the tool traffic, keep the worker's conclusion for the supervisor.
        return {"messages": [AIMessage(f"{name} done: {state['messages'][-1].content}")]}

    sub = StateGraph(State)
    sub.add_node("llm", call_llm)
    sub.add_node("tool", ToolNode([tool]))
    sub.add_node("finish", finish)
    sub.add_edge(START, "llm")
    sub.add_conditional_edges("llm", route, ["tool", "finish"])
    sub.add_edge("tool", "llm")
    sub.add_edge("finish", END)
    return sub.compile(), [llm, tool]


RESEARCHER, _RESEARCHER_STUBS = worker("researcher")
CODER, _CODER_STUBS = worker("coder")
_SUP = BEHAVIOUR["supervisor"]
SUPERVISOR_LLM = StubChatModel(
    model_name=_SUP["model"],
    input_tokens=_SUP["input_tokens"],
    output_tokens=_SUP["output_tokens"],
    routes=_SUP["routes"],
)
STUBS = [SUPERVISOR_LLM, *_RESEARCHER_STUBS, *_CODER_STUBS]


def supervisor(state: State) -> dict[str, Any]:
    """The supervisor LLM picks the next worker, or FINISH (forced after ``max_rounds``)."""
    reply = SUPERVISOR_LLM.invoke(state["messages"])
    choice = "FINISH" if state["rounds"] >= _SUP["max_rounds"] else str(reply.content)
    return {"messages": [reply], "next": choice, "rounds": state["rounds"] + (choice != "FINISH")}


def answer(state: State) -> dict[str, Any]:
    """Plain Python: the final answer from the workers' conclusions."""
    return {"messages": [AIMessage(f"Answer from {state['rounds']} worker round(s).")]}


builder = StateGraph(State)
builder.add_node("supervisor", supervisor)
builder.add_node("researcher", RESEARCHER)
builder.add_node("coder", CODER)
builder.add_node("answer", answer)
builder.add_edge(START, "supervisor")
builder.add_conditional_edges(
    "supervisor",
    lambda state: state["next"],
    {"researcher": "researcher", "coder": "coder", "FINISH": "answer"},
)
builder.add_edge("researcher", "supervisor")
builder.add_edge("coder", "supervisor")
builder.add_edge("answer", END)
graph = builder.compile()


def request(i: int, seed: int = 0) -> State:
    """Request ``i``'s start state, after reseeding every stub from ``(seed, i)``."""
    reseed(STUBS, seed * 100_003 + i)
    task = HumanMessage(f"Task {i}: find the fastest sort for 10^8 integers and benchmark it.")
    return {"messages": [task], "next": "", "rounds": 0}


def run(n_requests: int, seed: int = 0) -> list[dict[str, Any]]:
    """Answer ``n_requests`` tasks (request ``i`` is :func:`request` ``(i, seed)``)."""
    return [graph.invoke(request(i, seed)) for i in range(n_requests)]


if __name__ == "__main__":
    for i, result in enumerate(run(5, seed=0)):
        workers = [
            str(m.content).split()[0] for m in result["messages"] if " done: " in str(m.content)
        ]
        print(f"request {i}: workers {workers} -> {result['messages'][-1].content}")
