"""A ReAct agent: an LLM that calls tools in a loop until it can answer, then a formatting step.

::

    START -> agent --(tool call)--> tools -> agent        (at most 3 tool rounds)
                   --(final answer)--> format_answer -> END

The LLM, the tools and their latencies are stubs (``stubs.py``), so the agent runs without an API
key. ``BEHAVIOUR`` below is the one place that says how they behave; ``react_agent.hetopt.yaml``
states the same numbers for hetopt (``tests/importers`` checks that they agree).

Run it: ``python examples/agents/react_agent.py``. Plan it:
``hetopt plan workload_file=examples/agents/react_agent.py:graph``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:  # stubs.py sits next to this file
    sys.path.insert(0, HERE)
from stubs import StubChatModel, reseed, stub_tool  # noqa: E402

BEHAVIOUR: dict[str, Any] = {
    "agent": {
        "model": "llama-3-8b",
        "input_tokens": 1536,  # mean prompt: system prompt, question, earlier tool results
        "output_tokens": 192,
        "tool_call_probability": 0.6,  # each turn, while under the tool-round bound
        "max_tool_rounds": 3,
    },
    "tools": {  # which tool a tool call picks, and each tool's mean latency and reply size
        "web_search": {"probability": 0.7, "latency_s": 0.4, "response_bytes": 8192},
        "calculator": {"probability": 0.3, "latency_s": 0.02, "response_bytes": 256},
    },
}
"""How the stubs behave: model, mean tokens per call, tool-call probability, loop bound, tools."""

_AGENT = BEHAVIOUR["agent"]
TOOLS = [
    stub_tool(name, f"Stub {name}.", spec["latency_s"], spec["response_bytes"])
    for name, spec in BEHAVIOUR["tools"].items()
]
LLM = StubChatModel(
    model_name=_AGENT["model"],
    input_tokens=_AGENT["input_tokens"],
    output_tokens=_AGENT["output_tokens"],
    tool_call_probability=_AGENT["tool_call_probability"],
    tools={name: spec["probability"] for name, spec in BEHAVIOUR["tools"].items()},
    max_tool_rounds=_AGENT["max_tool_rounds"],
)


class State(TypedDict):
    """The conversation, and the formatted answer once there is one."""

    messages: Annotated[list[AnyMessage], add_messages]
    answer: str


def agent(state: State) -> dict[str, Any]:
    """One LLM turn: a tool call or the final answer."""
    return {"messages": [LLM.invoke(state["messages"])]}


def route_after_agent(state: State) -> str:
    """To the tools when the last reply calls one, else to the final formatting."""
    last = state["messages"][-1]
    return "tools" if isinstance(last, AIMessage) and last.tool_calls else "format_answer"


def format_answer(state: State) -> dict[str, Any]:
    """Plain Python: the final answer with the number of tool calls behind it."""
    calls = sum(len(getattr(m, "tool_calls", []) or []) for m in state["messages"])
    return {"answer": f"{state['messages'][-1].content} ({calls} tool call(s))"}


builder = StateGraph(State)
builder.add_node("agent", agent)
builder.add_node("tools", ToolNode(TOOLS))
builder.add_node("format_answer", format_answer)
builder.add_edge(START, "agent")
builder.add_conditional_edges("agent", route_after_agent, ["tools", "format_answer"])
builder.add_edge("tools", "agent")
builder.add_edge("format_answer", END)
graph = builder.compile()


STUBS = [LLM, *TOOLS]


def request(i: int, seed: int = 0) -> State:
    """Request ``i``'s start state, after reseeding every stub from ``(seed, i)``."""
    reseed(STUBS, seed * 100_003 + i)
    question = HumanMessage(f"Question {i}: what is the population of Lisbon times 3?")
    return {"messages": [question], "answer": ""}


def run(n_requests: int, seed: int = 0) -> list[dict[str, Any]]:
    """Answer ``n_requests`` questions (request ``i`` is :func:`request` ``(i, seed)``)."""
    return [graph.invoke(request(i, seed)) for i in range(n_requests)]


if __name__ == "__main__":
    for i, result in enumerate(run(5, seed=0)):
        tool_rounds = sum(m.type == "tool" for m in result["messages"])
        print(f"request {i}: {tool_rounds} tool round(s) -> {result['answer']}")
