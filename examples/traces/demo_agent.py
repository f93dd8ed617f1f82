"""A small LangGraph agent whose true workload is known: the trace importer's own fixture.

``demo_agent.yaml`` is the workload this agent realises: a supervisor LLM (Llama-3-70B) runs
one to three rounds (a loop, back edge ``collect -> supervisor``: 1.0 extra rounds expected, at
most 2); each round goes to a researcher subgraph (probability 0.6: a Llama-3-8B / web-search
ReAct loop, one to three searches) or to a coder that runs a sandbox tool (0.4); an answer
LLM with two request sizes (80 % 512/128 tokens, 20 % 2048/512) writes the reply. Models are
seeded stubs that report ``usage_metadata``; tools are real ``@tool`` functions that return at
once (``generate.py`` gives their calls synthetic latencies).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, TypedDict

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph

NAME = "demo_agent"
TOOL_LATENCY_S = {"web_search": 0.4, "code_exec": 1.5}
"""Mean latency of each tool (the workload's ``lookup.latency_s``)."""


class StubChat(BaseChatModel):
    """A chat model that answers at once with token counts drawn from size buckets."""

    model: str
    buckets: Sequence[tuple[int, int, float]]  # input_tokens, output_tokens, weight
    seed: int = 0
    rng: Any = None

    def model_post_init(self, context: Any) -> None:
        self.rng = random.Random(self.seed)

    @property
    def _llm_type(self) -> str:
        return "stub-chat"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_model_name"] = self.model
        return params

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        n_in, n_out, _ = self.rng.choices(self.buckets, weights=[b[2] for b in self.buckets])[0]
        usage = {"input_tokens": n_in, "output_tokens": n_out, "total_tokens": n_in + n_out}
        message = AIMessage(content="ok", usage_metadata=usage)  # type: ignore[arg-type]
        return ChatResult(generations=[ChatGeneration(message=message)])


@tool
def web_search(query: str) -> str:
    """Search the web (a stub that returns one line)."""
    return f"results for {query}"


@tool
def code_exec(code: str) -> str:
    """Run code in a sandbox (a stub)."""
    return "exit 0"


class State(TypedDict, total=False):
    rounds_left: int
    searches_left: int
    route: str
    notes: list[str]


def build(seed: int = 0) -> Any:
    """The compiled agent; its routing decisions and stub models are seeded with ``seed``."""
    rng = random.Random(seed)
    supervisor = StubChat(model="llama-3-70b", buckets=[(2048, 128, 1.0)], seed=seed + 1)
    researcher_llm = StubChat(model="llama-3-8b", buckets=[(2048, 256, 1.0)], seed=seed + 2)
    answer_llm = StubChat(
        model="llama-3-8b", buckets=[(512, 128, 0.8), (2048, 512, 0.2)], seed=seed + 3
    )

    def llm(state: State, config: RunnableConfig) -> State:
        researcher_llm.invoke("next step?", config)
        return {}

    def search(state: State, config: RunnableConfig) -> State:
        web_search.invoke({"query": "q"}, config)
        return {"searches_left": state["searches_left"] - 1}

    def notes(state: State) -> State:
        return {"notes": ["n"]}

    sub = StateGraph(State)
    sub.add_node("llm", llm)
    sub.add_node("search", search)
    sub.add_node("notes", notes)
    sub.add_edge(START, "llm")
    sub.add_conditional_edges(
        "llm", lambda s: "search" if s["searches_left"] > 0 else "notes", ["search", "notes"]
    )
    sub.add_edge("search", "llm")
    sub.add_edge("notes", END)
    research_graph = sub.compile(name="researcher")

    def supervise(state: State, config: RunnableConfig) -> State:
        supervisor.invoke("route", config)
        if state["rounds_left"] == 0:
            return {"route": "answer"}
        route = "researcher" if rng.random() < 0.6 else "coder"
        return {"route": route, "rounds_left": state["rounds_left"] - 1}

    def research(state: State, config: RunnableConfig) -> State:
        research_graph.invoke({"searches_left": rng.randint(1, 3)}, config)
        return {}

    def coder(state: State, config: RunnableConfig) -> State:
        code_exec.invoke({"code": "print(1)"}, config)
        return {}

    def answer(state: State, config: RunnableConfig) -> State:
        answer_llm.invoke("answer", config)
        return {}

    g = StateGraph(State)
    g.add_node("supervisor", supervise)
    g.add_node("researcher", research)
    g.add_node("coder", coder)
    g.add_node("collect", lambda s: {})
    g.add_node("answer", answer)
    g.add_edge(START, "supervisor")
    g.add_conditional_edges("supervisor", lambda s: s["route"], ["researcher", "coder", "answer"])
    g.add_edge("researcher", "collect")
    g.add_edge("coder", "collect")
    g.add_edge("collect", "supervisor")
    g.add_edge("answer", END)
    graph = g.compile(name=NAME)

    def invoke(config: RunnableConfig) -> None:
        graph.invoke({"rounds_left": rng.randint(1, 3)}, {**config, "recursion_limit": 50})

    return graph, invoke
