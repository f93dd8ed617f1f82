"""Stand-ins for the paid services of the example agents, so that they run without an API key.

Every stub is a real LangChain component, so LangChain's callbacks fire for it exactly as they
would for the real service (``on_chat_model_start``/``on_llm_end`` for :class:`StubChatModel`,
``on_tool_start``/``on_tool_end`` for the tools made by :func:`stub_tool`,
``on_retriever_start``/``on_retriever_end`` for :class:`StubRetriever`):

* :class:`StubChatModel` is a :class:`~langchain_core.language_models.BaseChatModel`. Each call
  draws its token counts from a seeded normal distribution and reports them in
  ``AIMessage.usage_metadata``; its decision (call a tool, or pick a route) is drawn with fixed
  probabilities from the same seeded generator.
* :func:`stub_tool` makes a :func:`langchain_core.tools.tool`. Its latency is drawn, not slept:
  the tool returns at once and records ``simulated_latency_s`` in the ``ToolMessage``'s artifact.
* :class:`StubRetriever` is a :class:`~langchain_core.retrievers.BaseRetriever` that returns
  ``top_k`` canned passages, with ``simulated_latency_s`` in each document's metadata.

Each stub owns a :class:`random.Random`; :func:`reseed` gives every stub of an example a fresh,
seeded stream, so that ``run(n_requests, seed)`` is reproducible.

Examples
--------
>>> from langchain_core.messages import HumanMessage
>>> llm = StubChatModel(model_name="llama-3-8b", input_tokens=512, output_tokens=64,
...                     routes={"yes": 0.25, "no": 0.75})
>>> reseed([llm], seed=1)
>>> reply = llm.invoke([HumanMessage("Is it relevant?")])
>>> reply.content in ("yes", "no"), reply.usage_metadata["output_tokens"] > 0
(True, True)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import BaseTool, tool
from pydantic import Field, PrivateAttr

TOKEN_SPREAD = 0.15
"""Relative standard deviation of the token counts (normal, truncated at 1 token)."""


def draw_count(rng: random.Random, mean: float) -> int:
    """A positive count around ``mean`` (normal with standard deviation ``TOKEN_SPREAD * mean``).

    >>> draw_count(random.Random(0), 100) > 0
    True
    """
    return max(1, round(rng.gauss(mean, TOKEN_SPREAD * mean)))


def draw_latency_s(rng: random.Random, mean_s: float) -> float:
    """A latency with mean ``mean_s`` (exponential tail above a floor of half the mean).

    >>> 0.5 <= draw_latency_s(random.Random(0), 1.0)
    True
    """
    return 0.5 * mean_s + rng.expovariate(2.0 / mean_s)


def choose(rng: random.Random, weights: Mapping[str, float]) -> str:
    """One key of ``weights``, drawn with those probabilities.

    >>> choose(random.Random(0), {"only": 1.0})
    'only'
    """
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def tool_rounds(messages: Sequence[BaseMessage]) -> int:
    """Tool results in the current tool loop: the trailing run of tool calls and their results.

    >>> from langchain_core.messages import HumanMessage
    >>> tool_rounds([HumanMessage("hi"), ToolMessage("r", tool_call_id="1")])
    1
    """
    rounds = 0
    for m in reversed(messages):
        if isinstance(m, ToolMessage):
            rounds += 1
        elif not (isinstance(m, AIMessage) and m.tool_calls):
            break
    return rounds


class StubChatModel(BaseChatModel):
    """A chat model that answers at once, with seeded token counts and decisions.

    Parameters
    ----------
    model_name
        The model it stands for (reported in the response metadata, as a provider would).
    input_tokens, output_tokens
        Mean prompt and completion tokens per call.
    tool_call_probability
        With ``tools``: the probability that a reply calls a tool, while fewer than
        ``max_tool_rounds`` tool results are in the conversation; otherwise the reply is final.
    tools
        Tool names and the probability of each, given that a tool is called.
    max_tool_rounds
        The most tool results a conversation may hold before the model must answer.
    routes
        Route names and probabilities: the reply's content is one route (a router's decision).
    """

    model_name: str
    input_tokens: float
    output_tokens: float
    tool_call_probability: float = 0.0
    tools: dict[str, float] = Field(default_factory=dict)
    max_tool_rounds: int = 0
    routes: dict[str, float] = Field(default_factory=dict)
    _rng: random.Random = PrivateAttr(default_factory=lambda: random.Random(0))
    _calls: int = PrivateAttr(default=0)

    @property
    def _llm_type(self) -> str:
        return "hetopt-example-stub"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def reseed(self, seed: int) -> None:
        """Restart the model's random stream at ``seed``."""
        self._rng = random.Random(seed)
        self._calls = 0

    def _decide(self, messages: Sequence[BaseMessage]) -> tuple[str, list[dict[str, Any]]]:
        rng = self._rng
        if self.routes:
            return choose(rng, self.routes), []
        rounds = tool_rounds(messages)
        if (
            self.tools
            and rounds < self.max_tool_rounds
            and rng.random() < self.tool_call_probability
        ):
            name = choose(rng, self.tools)
            call = {
                "name": name,
                "args": {"query": f"step {rounds + 1}"},
                "id": f"call_{self._calls}",
            }
            return "", [call]
        return f"Final answer after {rounds} tool result(s).", []

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self._calls += 1
        content, calls = self._decide(messages)
        n_in = draw_count(self._rng, self.input_tokens)
        n_out = draw_count(self._rng, self.output_tokens)
        usage = {"input_tokens": n_in, "output_tokens": n_out, "total_tokens": n_in + n_out}
        message = AIMessage(
            content=content,
            tool_calls=calls,
            usage_metadata=usage,  # type: ignore[arg-type]
            response_metadata={"model_name": self.model_name},
        )
        return ChatResult(
            generations=[ChatGeneration(message=message)],
            llm_output={"model_name": self.model_name, "token_usage": usage},
        )


def stub_tool(name: str, description: str, latency_s: float, response_bytes: int) -> BaseTool:
    """A LangChain tool that answers at once with ``response_bytes`` of text.

    Its simulated latency (mean ``latency_s``) is drawn from the tool's own seeded stream and
    returned in the ``ToolMessage`` artifact as ``simulated_latency_s``; nothing sleeps.
    """
    rng = random.Random(0)

    def run_tool(query: str) -> tuple[str, dict[str, Any]]:
        latency = draw_latency_s(rng, latency_s)
        text = (f"[{name}] result for {query!r}. " * (1 + response_bytes // 40))[:response_bytes]
        return text, {"simulated_latency_s": latency, "tool": name}

    made = tool(name, description=description, response_format="content_and_artifact")(run_tool)
    made.metadata = {"reseed": lambda seed: rng.seed(seed), "latency_s": latency_s}
    return made


class StubRetriever(BaseRetriever):
    """A retriever that returns ``top_k`` canned passages of ``passage_bytes`` each.

    Its simulated latency (mean ``latency_s``) is recorded in each document's metadata as
    ``simulated_latency_s``; nothing sleeps.
    """

    top_k: int = 4
    passage_bytes: int = 2048
    latency_s: float = 0.05
    _rng: random.Random = PrivateAttr(default_factory=lambda: random.Random(0))

    def reseed(self, seed: int) -> None:
        """Restart the retriever's random stream at ``seed``."""
        self._rng = random.Random(seed)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        latency = draw_latency_s(self._rng, self.latency_s)
        passage = (f"Passage about {query}. " * (1 + self.passage_bytes // 20))[
            : self.passage_bytes
        ]
        return [
            Document(page_content=passage, metadata={"rank": i, "simulated_latency_s": latency})
            for i in range(self.top_k)
        ]


def reseed(stubs: Iterable[Any], seed: int) -> None:
    """Give every stub a fresh random stream derived from ``seed`` (one per stub, in order)."""
    for i, stub in enumerate(stubs):
        sub_seed = seed * 1009 + i
        reseed_fn: Callable[[int], None] | None = getattr(stub, "reseed", None)
        if reseed_fn is None and isinstance(stub, BaseTool) and stub.metadata:
            reseed_fn = stub.metadata["reseed"]
        if reseed_fn is None:
            raise TypeError(f"{stub!r} is not a stub of examples/agents/stubs.py")
        reseed_fn(sub_seed)
