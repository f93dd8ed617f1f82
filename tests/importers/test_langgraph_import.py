"""Importing LangGraph graphs: the three example agents, a hand-written graph, and bad input."""

from __future__ import annotations

import collections
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langgraph")

from langgraph.graph import END, START, StateGraph  # noqa: E402
from typing_extensions import TypedDict  # noqa: E402

from hetopt.errors import InputError  # noqa: E402
from hetopt.graph.decompose import decompose  # noqa: E402
from hetopt.importers import from_langgraph, import_target  # noqa: E402
from hetopt.importers.pyfile import load_object  # noqa: E402
from hetopt.inputs import load_yaml_input  # noqa: E402
from hetopt.pipeline import PlanRequest, plan_agent  # noqa: E402
from hetopt.workloads import Workload, load_workload  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
AGENTS = ROOT / "examples" / "agents"
EXAMPLES = ("react", "supervisor", "rag")


def _target(name: str) -> str:
    return f"{AGENTS / f'{name}_agent.py'}:graph"


def _edges(graph: Any) -> dict[tuple[str, str], tuple[float, Any]]:
    return {
        (e.src, e.dst): (
            e.probability,
            None if e.loop is None else (e.loop.expected_iterations, e.loop.max_iterations),
        )
        for e in graph.edges
    }


# --------------------------------------------------------------------------------------------
# The examples
# --------------------------------------------------------------------------------------------


def test_react_agent_imports_to_its_structure() -> None:
    result = import_target(_target("react"))
    assert result.assumptions == ()
    g = result.to_workload().graph
    assert g.node_ids == ("agent", "tools", "format_answer")
    assert [n.kind.value for n in g.nodes] == ["model_execution", "tool_call", "general_compute"]
    assert g.node("agent").params["model"] == "llama-3-8b"
    # agent picks tools or format_answer per visit (0.6 / 0.4); per pass the loop continues
    # through tools and leaves through format_answer once: both probability 1.
    assert _edges(g) == {
        ("agent", "tools"): (1.0, None),
        ("agent", "format_answer"): (1.0, None),
        ("tools", "agent"): (1.0, (1.176, 3)),
    }


def test_supervisor_agent_imports_subgraphs_as_nested_agents() -> None:
    result = import_target(_target("supervisor"))
    assert result.assumptions == ()
    g = result.to_workload().graph
    assert g.node_ids == ("supervisor", "researcher", "coder", "answer")
    assert g.node("supervisor").kind.value == "control"
    for worker, loop in (("researcher", (0.875, 3)), ("coder", (1.3056, 4))):
        node = g.node(worker)
        assert node.kind.value == "agent"
        sub = node.subgraph
        assert sub is not None and sub.node_ids == ("llm", "tool", "finish")
        assert _edges(sub) == {
            ("llm", "tool"): (1.0, None),
            ("llm", "finish"): (1.0, None),
            ("tool", "llm"): (1.0, loop),
        }
    # per visit 0.45 / 0.30 / 0.25; per pass the workers split 0.6 / 0.4, the exit is taken once
    assert _edges(g) == {
        ("supervisor", "researcher"): (0.6, None),
        ("supervisor", "coder"): (0.4, None),
        ("supervisor", "answer"): (1.0, None),
        ("researcher", "supervisor"): (1.0, (1.2305, 4)),
        ("coder", "supervisor"): (1.0, (0.8203, 4)),
    }


def test_rag_agent_imports_metadata_and_a_rewrite_loop() -> None:
    result = import_target(_target("rag"))
    assert result.assumptions == ()
    g = result.to_workload().graph
    assert g.node_ids == ("retrieve", "grade", "rewrite", "generate")
    retrieve = g.node("retrieve")  # from the node's LangGraph metadata, not the annotations
    assert retrieve.kind.value == "memory_lookup" and retrieve.params["vectors"] == 5_000_000
    assert _edges(g) == {
        ("retrieve", "grade"): (1.0, None),
        ("grade", "rewrite"): (1.0, None),
        ("grade", "generate"): (1.0, None),
        ("rewrite", "retrieve"): (1.0, (0.39, 2)),
    }


def _capped_geometric(p: float, bound: int) -> float:
    """Expected times a loop repeats when each turn continues with ``p``, at most ``bound``."""
    return sum(p**k for k in range(1, bound + 1))


def _example(name: str) -> Any:
    return load_object(str(AGENTS / f"{name}_agent.py"), "BEHAVIOUR")


def test_annotation_files_state_the_examples_behaviour() -> None:
    """The numbers the stubs run with (BEHAVIOUR) and the annotation files agree."""
    react, notes = _example("react"), load_yaml_input(AGENTS / "react_agent.hetopt.yaml")
    agent = react["agent"]
    assert {k: notes["nodes"]["agent"][k] for k in ("model", "input_tokens", "output_tokens")} == {
        k: agent[k] for k in ("model", "input_tokens", "output_tokens")
    }
    p = agent["tool_call_probability"]
    assert notes["branches"]["agent"] == {"tools": p, "format_answer": pytest.approx(1 - p)}
    loop = notes["loops"]["tools -> agent"]
    assert loop["max_iterations"] == agent["max_tool_rounds"]
    assert loop["expected_iterations"] == pytest.approx(_capped_geometric(p, 3), abs=1e-3)
    tools = react["tools"].values()
    lookup = notes["nodes"]["tools"]["lookup"]
    assert lookup["latency_s"] == pytest.approx(
        sum(t["probability"] * t["latency_s"] for t in tools)
    )

    sup, notes = _example("supervisor"), load_yaml_input(AGENTS / "supervisor_agent.hetopt.yaml")
    routes = sup["supervisor"]["routes"]
    assert notes["branches"]["supervisor"] == {
        "researcher": routes["researcher"],
        "coder": routes["coder"],
        "answer": routes["FINISH"],
    }
    rounds = _capped_geometric(1 - routes["FINISH"], sup["supervisor"]["max_rounds"])
    for worker in ("researcher", "coder"):
        share = routes[worker] / (1 - routes["FINISH"])
        loop = notes["loops"][f"{worker} -> supervisor"]
        assert loop["expected_iterations"] == pytest.approx(rounds * share, abs=1e-3)
        spec, sub = sup[worker], notes["nodes"][worker]["subgraph"]
        assert sub["nodes"]["llm"]["model"] == spec["model"]
        assert sub["nodes"]["tool"]["lookup"]["latency_s"] == spec["tool"]["latency_s"]
        inner = sub["loops"]["tool -> llm"]
        assert inner["max_iterations"] == spec["max_tool_rounds"]
        assert inner["expected_iterations"] == pytest.approx(
            _capped_geometric(spec["tool_call_probability"], spec["max_tool_rounds"]), abs=1e-3
        )

    rag, notes = _example("rag"), load_yaml_input(AGENTS / "rag_agent.hetopt.yaml")
    grade = rag["grade"]
    assert notes["branches"]["grade"] == {
        "generate": grade["routes"]["relevant"],
        "rewrite": grade["routes"]["irrelevant"],
    }
    loop = notes["loops"]["rewrite -> retrieve"]
    assert loop["max_iterations"] == grade["max_rewrites"]
    assert loop["expected_iterations"] == pytest.approx(
        _capped_geometric(grade["routes"]["irrelevant"], grade["max_rewrites"]), abs=1e-3
    )
    for node in ("grade", "rewrite", "generate"):
        assert notes["nodes"][node]["model"] == rag[node]["model"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_imported_visits_match_the_agents_runs(name: str) -> None:
    """The imported workload's expected visits per node agree with the running agent's."""
    module = load_object(str(AGENTS / f"{name}_agent.py"), "request").__globals__
    n_requests = 150
    counts: collections.Counter[str] = collections.Counter()
    for i in range(n_requests):
        start = module["request"](i, seed=11)
        for namespace, update in module["graph"].stream(
            start, stream_mode="updates", subgraphs=True
        ):
            outer = [part.split(":")[0] for part in namespace]
            for node in update:
                if not (node in ("researcher", "coder") and not outer):
                    counts["/".join([*outer, node])] += 1
    ops = decompose(import_target(_target(name)).to_workload().graph)
    expected: dict[str, float] = {}
    for op in ops.ops:
        node = op.id.rsplit(".", 1)[0] if "." in op.id else op.id
        expected[node] = op.visits
    measured = {k: v / n_requests for k, v in counts.items()}
    assert set(measured) <= set(expected)
    for node, visits in expected.items():
        assert measured.get(node, 0.0) == pytest.approx(visits, rel=0.15, abs=0.1), node


@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_plan_end_to_end_in_seconds(name: str) -> None:
    start = time.perf_counter()
    workload = import_target(_target(name)).to_workload()
    outcome = plan_agent(PlanRequest(workload))
    elapsed = time.perf_counter() - start
    print(f"{name}: imported and planned in {elapsed:.2f} s")
    assert outcome.plan.verified
    assert outcome.plan.solve.proven_optimal
    assert elapsed < 60  # a few seconds on a laptop; generous for a loaded CI machine


@pytest.mark.parametrize("name", EXAMPLES)
def test_imported_yaml_reads_back_to_the_same_workload(name: str, tmp_path: Path) -> None:
    result = import_target(_target(name))
    path = tmp_path / "w.yaml"
    path.write_text(result.to_yaml())
    assert load_workload(path).graph == result.to_workload().graph
    assert path.read_text().startswith(f"# Imported by hetopt from workload file {AGENTS}")


# --------------------------------------------------------------------------------------------
# A hand-written graph, its workload written out by hand
# --------------------------------------------------------------------------------------------


class _State(TypedDict):
    steps: int


def _tiny() -> Any:
    """plan -> (act | finish | END); act -> plan; finish -> END."""
    builder = StateGraph(_State)
    builder.add_node("plan", lambda s: {"steps": s["steps"] + 1})
    builder.add_node("act", lambda s: s)
    builder.add_node("finish", lambda s: s)
    builder.add_edge(START, "plan")
    builder.add_conditional_edges(
        "plan", lambda s: "act" if s["steps"] < 3 else END, ["act", "finish", END]
    )
    builder.add_edge("act", "plan")
    builder.add_edge("finish", END)
    return builder.compile()


TINY_NOTES = {
    "name": "tiny",
    "request_rate_per_s": 3.0,
    "nodes": {
        "plan": {"kind": "model_execution", "model": "llama-3-8b", "input_tokens": 512,
                 "output_tokens": 64},
        "act": {"kind": "tool_call", "lookup": {"latency_s": 0.2, "request_bytes": 100,
                                                "response_bytes": 1000}},
        "finish": {"kind": "general_compute", "work": {"flops": 1000.0, "mem_bytes": 1000.0}},
    },
    "branches": {"plan": {"act": 0.5, "finish": 0.2, "__end__": 0.3}},
    "loops": {"act -> plan": {"expected_iterations": 1.0, "max_iterations": 4}},
    "edges": {"act -> plan": {"payload_bytes": 1000}},
}  # fmt: skip


def test_hand_written_graph_becomes_the_expected_workload() -> None:
    result = from_langgraph(_tiny(), TINY_NOTES, name="unused")
    # Per visit plan picks act 0.5, finish 0.2, the end 0.3. Per pass: the loop continues
    # through act (0.5 / 0.5 = 1) and the request leaves through finish 0.2 / 0.5 = 0.4 of
    # the time (the end takes the rest).
    assert result.workload == {
        "name": "tiny",
        "description": "Imported from LangGraph graph.",
        "request_rate_per_s": 3.0,
        "nodes": {
            "plan": {"kind": "model_execution", "model": "llama-3-8b", "input_tokens": 512,
                     "output_tokens": 64},
            "act": {"kind": "tool_call", "lookup": {"latency_s": 0.2, "request_bytes": 100,
                                                    "response_bytes": 1000}},
            "finish": {"kind": "general_compute", "work": {"flops": 1000.0,
                                                           "mem_bytes": 1000.0}},
        },
        "edges": [
            {"src": "plan", "dst": "act", "payload_bytes": 2048},
            {"src": "plan", "dst": "finish", "payload_bytes": 2048, "probability": 0.4},
            {"src": "act", "dst": "plan", "payload_bytes": 1000,
             "loop": {"expected_iterations": 1.0, "max_iterations": 4}},
        ],
    }  # fmt: skip
    assert result.assumptions == (
        "LangGraph graph: edges without a payload annotation carry 2048 bytes "
        "(default_payload_bytes).",
    )


def test_hand_written_graph_without_annotations_lists_every_default() -> None:
    result = from_langgraph(_tiny(), name="tiny")
    assert result.workload["name"] == "tiny"
    assert result.workload["nodes"]["plan"] == {
        "kind": "general_compute",
        "work": {"flops": 1.0e6, "mem_bytes": 1.0e6},
    }
    # equally likely per visit: act 1/3, finish 1/3, end 1/3 -> finish (1/3) / (2/3) per pass
    assert result.workload["edges"][1] == {
        "src": "plan", "dst": "finish", "payload_bytes": 2048, "probability": 0.5,
    }  # fmt: skip
    assert result.workload["edges"][2]["loop"] == {"expected_iterations": 1.0, "max_iterations": 3}
    text = "\n".join(result.assumptions)
    for needle in ("node 'plan'", "node 'act'", "node 'finish'", "branches of node 'plan'",
                   "loop 'act -> plan'", "request_rate_per_s", "2048 bytes"):  # fmt: skip
        assert needle in text
    assert len(result.assumptions) == 7
    Workload.from_mapping(result.workload)


def test_a_loop_that_ends_the_request_keeps_per_visit_probabilities() -> None:
    """ReAct without a final step: agent -> (tools | END), tools -> agent."""
    builder = StateGraph(_State)
    builder.add_node("agent", lambda s: s)
    builder.add_node("tools", lambda s: s)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", lambda s: END, ["tools", END])
    builder.add_edge("tools", "agent")
    notes = {
        "branches": {"agent": {"tools": 0.6, "END": 0.4}},
        "loops": {"tools -> agent": {"expected_iterations": 1.5, "max_iterations": 6}},
    }
    graph = from_langgraph(builder.compile(), notes).to_workload().graph
    visits = {op.id: op.visits for op in decompose(graph).ops}
    # uncapped: 1 / (1 - 0.6) = 2.5 agent visits, 1.5 tool rounds
    assert visits == {"agent": pytest.approx(2.5), "tools": pytest.approx(1.5)}


# --------------------------------------------------------------------------------------------
# Bad annotations and objects
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("notes", "needle"),
    [
        ({"nodes": {"plna": {"kind": "control"}}}, "names node 'plna'"),
        ({"branches": {"act": {"plan": 1.0}}}, "has no conditional edges"),
        ({"branches": {"plan": {"act": 0.5, "finnish": 0.5}}}, "Did you mean 'finish'"),
        ({"branches": {"plan": {"act": 0.5, "finish": 0.2}}}, "summing to 1"),
        ({"loops": {"plan -> act": {"expected_iterations": 1, "max_iterations": 2}}},
         "back edges are ['act -> plan']"),
        ({"loops": {"act -> plna": {"expected_iterations": 1, "max_iterations": 2}}},
         "names node 'plna'"),
        ({"edges": {"finish -> plan": {"payload_bytes": 1}}}, "has no edge 'finish -> plan'"),
        ({"nodes": {"act": {"subgraph": {}}}}, "not a compiled subgraph"),
        ({"request_rate": 3}, "Did you mean 'request_rate_per_s'"),
    ],
)  # fmt: skip
def test_bad_annotations_name_the_graph_and_the_entry(notes: dict, needle: str) -> None:
    with pytest.raises(InputError) as err:
        from_langgraph(_tiny(), notes, source="workload file tiny.py:graph")
    assert needle in str(err.value)
    assert "tiny.py:graph" in str(err.value)


def test_an_object_that_is_not_a_graph_is_refused() -> None:
    with pytest.raises(InputError, match="builtins.dict, not a LangGraph graph"):
        from_langgraph({"nodes": []}, source="workload file x.py:graph")


def test_an_uncompiled_state_graph_is_read_too() -> None:
    builder = StateGraph(_State)
    builder.add_node("only", lambda s: s)
    builder.add_edge(START, "only")
    assert list(from_langgraph(builder).workload["nodes"]) == ["only"]
