"""Decomposition into operators: ids, resource vectors, visits, loops, nested agents."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hetopt.errors import InputError, UnknownNameError
from hetopt.graph.architectures import get_architecture, read_yaml_file
from hetopt.graph.decompose import (
    PARSE_FLOPS_PER_BYTE,
    SERIALIZATION_FLOPS_PER_BYTE,
    OpEdge,
    OperatorGraph,
    OpKind,
    decompose,
)
from hetopt.graph.ir import GraphBuilder, Loop, load_agent_graph

WORKLOADS = Path(__file__).resolve().parents[2] / "configs" / "workload"


@pytest.fixture(scope="module")
def voice() -> OperatorGraph:
    return decompose(load_agent_graph(WORKLOADS / "voice_agent.yaml"))


@pytest.fixture(scope="module")
def supervisor() -> OperatorGraph:
    return decompose(load_agent_graph(WORKLOADS / "supervisor_agent.yaml"))


def visits(graph: OperatorGraph) -> dict[str, float]:
    return {o.id: o.visits for o in graph.ops}


@pytest.mark.parametrize("path", sorted(WORKLOADS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_workload_decomposes(path: Path) -> None:
    graph = decompose(load_agent_graph(path), source=str(path))
    g = graph.to_networkx()
    assert nx.is_directed_acyclic_graph(g)
    assert list(graph.topological_order()) == [o.id for o in graph.ops]
    assert graph.sinks and graph.sources
    assert len({o.id for o in graph.ops}) == len(graph.ops)
    for o in graph.ops:
        assert o.visits > 0 and o.max_visits >= o.visits
        assert o.placeable == (o.kind is not OpKind.KV_TRANSFER)
        assert (o.llm is not None) == (o.kind in (OpKind.PREFILL, OpKind.DECODE))
        assert (o.work is None) == (o.kind is OpKind.KV_TRANSFER)
    for lp in graph.loops:
        assert lp.body[0] == lp.back_dst and lp.back_src in lp.body
    cyclic = graph.to_networkx(include_back_edges=True)
    assert cyclic.number_of_edges() == len(graph.edges) + len(graph.loops)


def test_voice_operator_ids(voice: OperatorGraph) -> None:
    assert [o.id for o in voice.ops] == [
        "stt",
        "llm.prefill",
        "llm.kv_transfer",
        "llm.decode",
        "web_search.lookup",
        "web_search.compute",
        "tts",
    ]
    assert voice.op("stt").kind is OpKind.ENCODER
    assert voice.op("llm.kv_transfer").kind is OpKind.KV_TRANSFER
    assert not voice.op("llm.kv_transfer").placeable
    assert voice.op("web_search.lookup").node_id == "web_search"
    assert voice.sources == ("stt",) and voice.sinks == ("tts",)


def test_voice_kv_transfer_payload(voice: OperatorGraph) -> None:
    assert voice.op("llm.kv_transfer").payload_bytes == 327680 * 1024
    llm = voice.op("llm.prefill").llm
    assert llm is not None and llm.arch.name == "llama-3-70b"
    assert (llm.precision, llm.input_tokens, llm.output_tokens) == ("fp16", 1024, 256)


def test_voice_edges(voice: OperatorGraph) -> None:
    assert set(voice.edges) == {
        OpEdge("stt", "llm.prefill", 4096.0),
        OpEdge("llm.prefill", "llm.kv_transfer", 0.0),
        OpEdge("llm.kv_transfer", "llm.decode", 0.0),
        OpEdge("llm.decode", "web_search.lookup", 1024.0),
        OpEdge("web_search.lookup", "web_search.compute", 20000.0),
        OpEdge("llm.decode", "tts", 2048.0),
    }


def test_voice_visits(voice: OperatorGraph) -> None:
    v = visits(voice)
    assert v["stt"] == 1.0
    assert v["llm.prefill"] == v["llm.kv_transfer"] == v["llm.decode"] == 2.0
    assert v["web_search.lookup"] == v["web_search.compute"] == 1.0
    assert v["tts"] == 1.0
    assert voice.op("llm.prefill").max_visits == 3.0
    assert voice.op("web_search.lookup").max_visits == 2.0
    assert voice.op("tts").max_visits == 1.0


def test_voice_loop(voice: OperatorGraph) -> None:
    (loop,) = voice.loops
    assert (loop.back_src, loop.back_dst) == ("web_search.compute", "llm.prefill")
    assert loop.payload_bytes == 20000.0
    assert (loop.expected_iterations, loop.max_iterations) == (1.0, 2)
    assert loop.body == (
        "llm.prefill",
        "llm.kv_transfer",
        "llm.decode",
        "web_search.lookup",
        "web_search.compute",
    )


def test_voice_resource_vectors(voice: OperatorGraph) -> None:
    whisper = get_architecture("whisper-large-v3")
    stt = voice.op("stt").work
    assert stt is not None
    assert stt.flops == whisper.forward_flops(1500)
    assert stt.footprint_bytes == whisper.weight_bytes("fp16")
    assert stt.mem_bytes == whisper.weight_bytes("fp16") + 2 * 1500 * 1280 * 32 * 2
    lookup = voice.op("web_search.lookup").work
    assert lookup is not None
    assert lookup.static_latency_s == 0.35 and lookup.net_bytes == 20512
    assert lookup.flops == SERIALIZATION_FLOPS_PER_BYTE * 20512
    compute = voice.op("web_search.compute").work
    assert compute is not None and (compute.flops, compute.mem_bytes) == (2.0e8, 5.0e7)
    prefill = voice.op("llm.prefill").work
    arch = get_architecture("llama-3-70b")
    assert prefill is not None and prefill.flops == arch.prefill_flops(1024)
    decode = voice.op("llm.decode").work
    assert decode is not None and decode.flops == pytest.approx(arch.decode_flops(1024, 256))
    assert decode.mem_bytes > 256 * arch.weight_bytes("fp16")


def test_tool_without_compute_gets_a_parse_cost() -> None:
    g = (
        GraphBuilder("t")
        .add_node(
            "tool",
            "tool_call",
            lookup={"latency_s": 0.1, "request_bytes": 100, "response_bytes": 1000},
        )
        .build()
    )
    work = decompose(g).op("tool.compute").work
    assert work is not None and work.flops == PARSE_FLOPS_PER_BYTE * 1000


def test_memory_lookup_work() -> None:
    rag = decompose(load_agent_graph(WORKLOADS / "rag_agent.yaml"))
    work = rag.op("vector_db").work
    assert work is not None
    assert work.flops == pytest.approx(2 * 768 * 10_000_000 * 0.02)
    assert work.mem_bytes == pytest.approx(768 * 10_000_000 * 0.02 * 2)
    assert work.footprint_bytes == pytest.approx(768 * 10_000_000 * 2)
    assert [o.id for o in rag.ops] == [
        "privacy_filter",
        "embed",
        "vector_db",
        "llm.prefill",
        "llm.kv_transfer",
        "llm.decode",
        "output_guard",
    ]


def test_zero_output_tokens_is_prefill_only() -> None:
    g = (
        GraphBuilder("p")
        .add_node("cls", "model_execution", model="llama-3-8b", input_tokens=10, output_tokens=0)
        .add_node("after", "general_compute")
        .add_edge("cls", "after", payload_bytes=8)
        .build()
    )
    ops = decompose(g)
    assert [o.id for o in ops.ops] == ["cls.prefill", "after"]
    assert ops.edges == (OpEdge("cls.prefill", "after", 8.0),)


def test_worked_example_profile_names_real_operators() -> None:
    path = WORKLOADS / "worked_example.yaml"
    ops = decompose(load_agent_graph(path))
    assert [o.id for o in ops.ops] == ["llm.prefill", "llm.kv_transfer", "llm.decode"]
    profile = read_yaml_file(path)["profile"]
    placeable = {o.id for o in ops.ops if o.placeable}
    assert set(profile["ops"]) == placeable
    for key in profile["transfers"]:
        src, dst = key.split("->")
        assert src in placeable and dst in placeable
    assert profile["ops"]["llm.prefill"]["HP"] == {"latency_s": 0.080, "cost_usd": 0.080}
    assert read_yaml_file(path)["sla"] == {"e2e_s": 0.120}


# ----------------------------------------------------------------------------- nesting


def test_nested_agent_flattening(supervisor: OperatorGraph) -> None:
    ids = [o.id for o in supervisor.ops]
    assert "researcher/llm.prefill" in ids and "coder/code_exec.lookup" in ids
    assert supervisor.op("researcher/search.lookup").node_id == "researcher/search"
    edges = {(e.src, e.dst) for e in supervisor.edges}
    # Edges into an agent go to its sources, edges out of it leave from its sinks.
    assert ("supervisor.decode", "researcher/llm.prefill") in edges
    assert ("supervisor.decode", "coder/llm.prefill") in edges
    assert ("researcher/notes", "collect") in edges and ("coder/patch", "collect") in edges
    assert supervisor.sources == ("supervisor.prefill",) and supervisor.sinks == ("answer",)
    backs = {(lp.back_src, lp.back_dst) for lp in supervisor.loops}
    assert backs == {
        ("collect", "supervisor.prefill"),
        ("researcher/search.compute", "researcher/llm.prefill"),
        ("coder/code_exec.compute", "coder/llm.prefill"),
    }


def test_nested_agent_visits(supervisor: OperatorGraph) -> None:
    v = visits(supervisor)
    # Supervisor: 1 + 2 rounds. Each round picks the researcher (0.6) or the coder (0.4).
    assert v["supervisor.prefill"] == pytest.approx(3.0)
    assert v["collect"] == pytest.approx(2.0)
    assert v["answer"] == pytest.approx(1.0)
    # Researcher: entered 0.6 * 2 = 1.2 times, 1.5 searches per entry.
    assert v["researcher/notes"] == pytest.approx(1.2)
    assert v["researcher/llm.prefill"] == pytest.approx(1.2 * 2.5)
    assert v["researcher/search.lookup"] == pytest.approx(1.2 * 1.5)
    # Coder: entered 0.8 times, 2 test runs per entry.
    assert v["coder/llm.decode"] == pytest.approx(0.8 * 3.0)
    assert v["coder/code_exec.compute"] == pytest.approx(0.8 * 2.0)
    assert supervisor.op("supervisor.decode").max_visits == pytest.approx(5.0)
    assert supervisor.op("researcher/llm.prefill").max_visits == pytest.approx(0.6 * 4 * 4)


def test_outer_loop_body_includes_nested_loops(supervisor: OperatorGraph) -> None:
    outer = next(lp for lp in supervisor.loops if lp.back_dst == "supervisor.prefill")
    assert outer.body[0] == "supervisor.prefill" and outer.body[-1] == "collect"
    assert "researcher/search.lookup" in outer.body
    assert "answer" not in outer.body


def test_agent_devices_are_inherited() -> None:
    sub = {
        "nodes": {
            "a": {"kind": "general_compute"},
            "b": {"kind": "general_compute", "devices": ["gpu"]},
        },
        "edges": [{"src": "a", "dst": "b"}],
    }
    g = GraphBuilder("g").add_node("w", "agent", subgraph=sub, devices=["cpu"]).build()
    ops = decompose(g)
    assert ops.op("w/a").devices == ("cpu",)
    assert ops.op("w/b").devices == ("gpu",)


def test_back_edge_from_agent_with_two_sinks_rejected() -> None:
    sub = {
        "nodes": {"a": {"kind": "general_compute"}, "b": {"kind": "general_compute"}},
        "edges": [],
    }
    g = (
        GraphBuilder("g")
        .add_node("head", "control")
        .add_node("w", "agent", subgraph=sub)
        .add_edge("head", "w")
        .add_edge("w", "head", loop=Loop(1.0, 2))
        .build()
    )
    with pytest.raises(InputError, match="single sink"):
        decompose(g)


def test_agent_with_two_sources_fans_out() -> None:
    sub = {
        "nodes": {
            "a": {"kind": "general_compute"},
            "b": {"kind": "general_compute"},
            "j": {"kind": "general_compute"},
        },
        "edges": [{"src": "a", "dst": "j"}, {"src": "b", "dst": "j"}],
    }
    g = (
        GraphBuilder("g")
        .add_node("in", "control")
        .add_node("w", "agent", subgraph=sub)
        .add_edge("in", "w", payload_bytes=5)
        .build()
    )
    ops = decompose(g)
    assert {(e.src, e.dst, e.payload_bytes) for e in ops.edges} >= {
        ("in", "w/a", 5.0),
        ("in", "w/b", 5.0),
    }
    assert visits(ops) == {"in": 1.0, "w/a": 1.0, "w/b": 1.0, "w/j": 1.0}


# ----------------------------------------------------------------------------- joins, loops


def _chain(*nodes: str) -> GraphBuilder:
    b = GraphBuilder("g")
    for n in nodes:
        b.add_node(n, "general_compute")
    return b


def test_parallel_join_counts_once() -> None:
    g = (
        _chain("fork", "a", "b", "join")
        .add_edge("fork", "a")
        .add_edge("fork", "b")
        .add_edge("a", "join")
        .add_edge("b", "join")
        .build()
    )
    assert visits(decompose(g)) == {"fork": 1.0, "a": 1.0, "b": 1.0, "join": 1.0}


def test_exclusive_branches_sum() -> None:
    g = (
        _chain("fork", "a", "b", "join")
        .add_edge("fork", "a", probability=0.3)
        .add_edge("fork", "b", probability=0.7)
        .add_edge("a", "join")
        .add_edge("b", "join")
        .build()
    )
    v = visits(decompose(g))
    assert v["a"] == pytest.approx(0.3) and v["b"] == pytest.approx(0.7)
    assert v["join"] == pytest.approx(1.0)


def test_partial_branch_joining_a_parallel_one() -> None:
    # fork -> a (always) -> join; fork -> b (30%) -> join: join waits for a, runs once.
    g = (
        _chain("fork", "a", "b", "join")
        .add_edge("fork", "a")
        .add_edge("fork", "b", probability=0.3)
        .add_edge("a", "join")
        .add_edge("b", "join")
        .build()
    )
    assert visits(decompose(g))["join"] == pytest.approx(1.0)


def test_two_sources_joining_count_once() -> None:
    g = _chain("x", "y", "join").add_edge("x", "join").add_edge("y", "join").build()
    assert visits(decompose(g)) == {"x": 1.0, "y": 1.0, "join": 1.0}


def test_loop_without_exit_runs_every_body_op_each_pass() -> None:
    g = (
        _chain("a", "b")
        .add_edge("a", "b")
        .add_edge("b", "a", loop=Loop(expected_iterations=2.0, max_iterations=5))
        .build()
    )
    ops = decompose(g)
    assert visits(ops) == {"a": 3.0, "b": 3.0}
    assert ops.op("b").max_visits == 6.0
    assert ops.sinks == ("b",)


def test_self_loop() -> None:
    g = (
        _chain("pre", "poll", "post")
        .add_edge("pre", "poll")
        .add_edge("poll", "post")
        .add_edge("poll", "poll", loop=Loop(4.0, 10))
        .build()
    )
    assert visits(decompose(g)) == {"pre": 1.0, "poll": 5.0, "post": 1.0}


def test_sibling_loops_into_one_entry_add() -> None:
    g = (
        _chain("head", "t1", "t2", "out")
        .add_edge("head", "t1")
        .add_edge("head", "t2")
        .add_edge("head", "out")
        .add_edge("t1", "head", loop=Loop(1.0, 2))
        .add_edge("t2", "head", loop=Loop(2.0, 3))
        .build()
    )
    v = visits(decompose(g))
    assert v == {"head": 4.0, "t1": 1.0, "t2": 2.0, "out": 1.0}


def test_nested_loops_multiply() -> None:
    # a -> b -> c -> d -> e; inner c -> b (2 per entry), outer d -> a (1 per entry).
    g = (
        _chain("a", "b", "c", "d", "e")
        .add_edge("a", "b")
        .add_edge("b", "c")
        .add_edge("c", "d")
        .add_edge("d", "e")
        .add_edge("c", "b", loop=Loop(2.0, 2))
        .add_edge("d", "a", loop=Loop(1.0, 1))
        .build()
    )
    v = visits(decompose(g))
    assert v == {"a": 2.0, "b": 6.0, "c": 6.0, "d": 2.0, "e": 1.0}


def test_unknown_model_names_the_node() -> None:
    g = GraphBuilder("g").add_node("llm", "model_execution", model="llama-9", tokens=3).build()
    with pytest.raises(UnknownNameError) as err:
        decompose(g, source="w.yaml")
    assert "w.yaml" in str(err.value) and "node 'llm'" in str(err.value)
    assert "llama-9" in str(err.value)


def test_errors_name_the_file_the_graph_came_from() -> None:
    from hetopt.graph.ir import agent_graph_from_dict

    g = agent_graph_from_dict(
        {"nodes": {"llm": {"kind": "model_execution", "model": "gpt-9", "tokens": 3}}},
        source="mine.yaml",
    )
    with pytest.raises(UnknownNameError, match="mine.yaml: node 'llm'"):
        decompose(g)


def test_decoder_with_tokens_and_encoder_with_io_tokens_rejected() -> None:
    g = GraphBuilder("g").add_node("llm", "model_execution", model="llama-3-8b", tokens=3).build()
    with pytest.raises(InputError, match="decoder"):
        decompose(g)
    g = (
        GraphBuilder("g")
        .add_node(
            "stt", "model_execution", model="whisper-large-v3", input_tokens=3, output_tokens=1
        )
        .build()
    )
    with pytest.raises(InputError, match="encoder"):
        decompose(g)


def test_custom_architectures_mapping() -> None:
    arch = get_architecture("llama-3-8b")
    g = (
        GraphBuilder("g")
        .add_node("llm", "model_execution", model="My-LM", input_tokens=4, output_tokens=2)
        .build()
    )
    ops = decompose(g, architectures={"my-lm": arch})
    assert ops.op("llm.kv_transfer").payload_bytes == 131072 * 4


def test_op_lookup_error() -> None:
    with pytest.raises(UnknownNameError, match="llm.prefill"):
        decompose(load_agent_graph(WORKLOADS / "voice_agent.yaml")).op("llm.prefil")


@given(
    k=st.floats(min_value=0.0, max_value=20.0),
    extra=st.integers(0, 10),
    p=st.floats(min_value=0.05, max_value=1.0),
)
def test_voice_visits_follow_the_loop_bound(k: float, extra: int, p: float) -> None:
    k_max = int(k) + 1 + extra
    g = (
        GraphBuilder("v")
        .add_node("llm", "model_execution", model="llama-3-8b", input_tokens=8, output_tokens=2)
        .add_node(
            "tool", "tool_call", lookup={"latency_s": 0.1, "request_bytes": 1, "response_bytes": 1}
        )
        .add_node("out", "general_compute")
        .add_edge("llm", "tool", probability=p)
        .add_edge("llm", "out")
        .add_edge("tool", "llm", loop=Loop(k, k_max))
        .build()
    )
    ops = decompose(g)
    assert ops.op("llm.decode").visits == pytest.approx(1 + k)
    assert ops.op("tool.compute").visits == pytest.approx(k)  # the back edge is taken k times
    assert ops.op("out").visits == pytest.approx(1.0)
    assert ops.op("llm.prefill").max_visits == pytest.approx(1 + k_max)
    assert len(ops.ops) == 6  # 3 LLM phases + lookup + compute + out: operator count conserved
