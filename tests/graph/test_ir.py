"""Agent graph IR: loading, builder equivalence, validation messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import networkx as nx
import pytest
import yaml

from hetopt.errors import InputError, UnknownNameError
from hetopt.graph.ir import (
    AgentGraph,
    Edge,
    GraphBuilder,
    Loop,
    Node,
    TaskKind,
    agent_graph_from_dict,
    load_agent_graph,
)

WORKLOADS = Path(__file__).resolve().parents[2] / "configs" / "workload"
SHIPPED = sorted(WORKLOADS.glob("*.yaml"))


def voice_dict() -> dict[str, Any]:
    return {
        "name": "voice_agent",
        "nodes": {
            "stt": {"kind": "model_execution", "model": "whisper-large-v3", "tokens": 1500},
            "llm": {
                "kind": "model_execution",
                "model": "llama-3-70b",
                "precision": "fp16",
                "input_tokens": 1024,
                "output_tokens": 256,
            },
            "web_search": {
                "kind": "tool_call",
                "lookup": {"latency_s": 0.35, "request_bytes": 512, "response_bytes": 20000},
                "compute": {"flops": 2.0e8, "mem_bytes": 5.0e7},
            },
            "tts": {"kind": "model_execution", "model": "xtts-v2", "tokens": 256},
        },
        "edges": [
            {"src": "stt", "dst": "llm", "payload_bytes": 4096},
            {"src": "llm", "dst": "web_search", "payload_bytes": 1024},
            {
                "src": "web_search",
                "dst": "llm",
                "payload_bytes": 20000,
                "loop": {"expected_iterations": 1.0, "max_iterations": 2},
            },
            {"src": "llm", "dst": "tts", "payload_bytes": 2048},
        ],
    }


def error_of(data: dict[str, Any], source: str = "bad.yaml") -> str:
    with pytest.raises(InputError) as err:
        agent_graph_from_dict(data, source=source)
    return str(err.value)


def test_all_expected_workloads_are_shipped() -> None:
    names = {p.stem for p in SHIPPED}
    assert {
        "voice_agent",
        "rag_agent",
        "supervisor_agent",
        "coding_agent",
        "worked_example",
    } <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_workload_loads(path: Path) -> None:
    graph = load_agent_graph(path)
    assert graph.name == path.stem
    assert graph.description
    raw = yaml.safe_load(path.read_text())
    assert raw["request_rate_per_s"] > 0
    # Plain PyYAML (YAML 1.1) must read the same numbers as hetopt's reader.
    assert agent_graph_from_dict(raw, source=str(path)) == graph


def test_extra_top_level_keys_are_ignored() -> None:
    graph = load_agent_graph(WORKLOADS / "worked_example.yaml")
    assert graph.node_ids == ("llm",)
    assert graph.edges == ()


def test_voice_agent_matches_paper_figure_2() -> None:
    graph = load_agent_graph(WORKLOADS / "voice_agent.yaml")
    assert graph.node_ids == ("stt", "llm", "web_search", "tts")
    assert graph.node("stt").params["model"] == "whisper-large-v3"
    assert graph.node("stt").params["tokens"] == 1500
    assert graph.node("llm").params == {
        "model": "llama-3-70b",
        "precision": "fp16",
        "input_tokens": 1024,
        "output_tokens": 256,
    }
    back = [e for e in graph.edges if e.is_back]
    assert back == [Edge("web_search", "llm", 20000.0, 1.0, Loop(1.0, 2))]
    assert "§5" in graph.description


def test_builder_equals_yaml() -> None:
    built = (
        GraphBuilder("voice_agent")
        .add_node("stt", TaskKind.MODEL, model="whisper-large-v3", tokens=1500)
        .add_node(
            "llm", "model_execution", model="llama-3-70b", input_tokens=1024, output_tokens=256
        )
        .add_node(
            "web_search",
            "tool_call",
            lookup={"latency_s": 0.35, "request_bytes": 512, "response_bytes": 20000},
            compute={"flops": 2.0e8, "mem_bytes": 5.0e7},
        )
        .add_node("tts", "model_execution", model="xtts-v2", precision="fp16", tokens=256)
        .add_edge("stt", "llm", payload_bytes=4096)
        .add_edge("llm", "web_search", payload_bytes=1024)
        .add_edge(
            "web_search",
            "llm",
            payload_bytes=20000,
            loop=Loop(expected_iterations=1.0, max_iterations=2),
        )
        .add_edge("llm", "tts", payload_bytes=2048)
        .build()
    )
    assert built == agent_graph_from_dict(voice_dict())
    loaded = load_agent_graph(WORKLOADS / "voice_agent.yaml")
    assert (built.nodes, built.edges) == (loaded.nodes, loaded.edges)
    assert hash(built) == hash(agent_graph_from_dict(voice_dict()))


def test_builder_accepts_nested_dict_subgraph() -> None:
    sub = {"nodes": {"a": {"kind": "general_compute"}}, "edges": []}
    g = GraphBuilder("outer").add_node("worker", "agent", subgraph=sub).build()
    inner = g.node("worker").subgraph
    assert inner is not None and inner.node_ids == ("a",)
    assert inner.node("a").params["work"] == {
        "flops": 0.0,
        "mem_bytes": 0.0,
        "footprint_bytes": 0.0,
        "static_latency_s": 0.0,
    }


def test_params_are_immutable_and_nodes_hashable() -> None:
    graph = agent_graph_from_dict(voice_dict())
    params = graph.node("llm").params
    with pytest.raises(TypeError):
        params["model"] = "x"  # type: ignore[index]
    lookup = graph.node("web_search").params["lookup"]
    with pytest.raises(TypeError):
        lookup["latency_s"] = 1.0
    assert len({*graph.nodes}) == 4


def test_defaults_are_filled() -> None:
    data = {
        "nodes": {
            "db": {"kind": "memory_lookup", "vectors": 1000, "dim": 8},
            "log": {"kind": "observation_store"},
            "tool": {
                "kind": "tool_call",
                "lookup": {"latency_s": 0.1, "request_bytes": 1, "response_bytes": 2},
            },
        },
        "edges": [{"src": "db", "dst": "log"}],
    }
    g = agent_graph_from_dict(data, source="defaults.yaml")
    assert g.name == "defaults"
    assert g.node("db").params == {
        "vectors": 1000,
        "dim": 8,
        "bytes_per_element": 2.0,
        "scan_fraction": 1.0,
        "top_k": 10,
    }
    assert g.node("log").params["work"]["flops"] == 0.0
    assert "compute" not in g.node("tool").params
    assert g.edges[0].payload_bytes == 0.0 and g.edges[0].probability == 1.0


def test_devices_kept_as_tuple() -> None:
    data = voice_dict()
    data["nodes"]["web_search"]["devices"] = ["cpu-x86", "cpu-arm"]
    g = agent_graph_from_dict(data)
    assert g.node("web_search").devices == ("cpu-x86", "cpu-arm")
    assert g.node("llm").devices is None


def test_to_networkx() -> None:
    g = agent_graph_from_dict(voice_dict()).to_networkx()
    assert set(g.nodes) == {"stt", "llm", "web_search", "tts"}
    assert g.edges["web_search", "llm"]["back"] is True
    assert g.edges["llm", "tts"]["payload_bytes"] == 2048
    assert g.nodes["llm"]["kind"] is TaskKind.MODEL
    assert not nx.is_directed_acyclic_graph(g)


def test_nested_agent_is_parsed() -> None:
    graph = load_agent_graph(WORKLOADS / "supervisor_agent.yaml")
    researcher = graph.node("researcher")
    assert researcher.kind is TaskKind.AGENT
    assert researcher.subgraph is not None
    assert researcher.subgraph.node_ids == ("llm", "search", "notes")
    assert graph.node("supervisor").kind is TaskKind.CONTROL
    assert graph.node("supervisor").params["model"] == "llama-3-70b"


# ----------------------------------------------------------------------------- errors


def test_unbounded_cycle_rejected_naming_its_nodes() -> None:
    data = voice_dict()
    del data["edges"][2]["loop"]
    msg = error_of(data)
    assert "unbounded cycle" in msg
    assert "'llm'" in msg and "'web_search'" in msg
    assert "loop: {expected_iterations" in msg and "max_iterations" in msg
    assert "bad.yaml" in msg


def test_unbounded_cycle_in_builder_raises_too() -> None:
    b = (
        GraphBuilder("g")
        .add_node("a", "general_compute")
        .add_node("b", "general_compute")
        .add_node("c", "general_compute")
        .add_edge("a", "b")
        .add_edge("b", "c")
        .add_edge("c", "a")
    )
    with pytest.raises(InputError) as err:
        b.build()
    assert all(f"'{n}'" in str(err.value) for n in "abc")


def test_unknown_node_field_is_named() -> None:
    data = voice_dict()
    data["nodes"]["llm"]["output_token"] = 12
    msg = error_of(data)
    assert "bad.yaml" in msg and "node 'llm'" in msg and "output_token" in msg
    assert "output_tokens" in msg  # the suggestion


def test_unknown_edge_field_is_named() -> None:
    data = voice_dict()
    data["edges"][0]["payload"] = 3
    msg = error_of(data)
    assert "edge 'stt -> llm'" in msg and "'payload'" in msg


def test_missing_model() -> None:
    data = voice_dict()
    del data["nodes"]["llm"]["model"]
    msg = error_of(data)
    assert "node 'llm'" in msg and "'model'" in msg and "bad.yaml" in msg


def test_negative_tokens() -> None:
    data = voice_dict()
    data["nodes"]["llm"]["input_tokens"] = -5
    msg = error_of(data)
    assert "node 'llm'" in msg and "input_tokens" in msg and "-5" in msg


@pytest.mark.parametrize("value", [0, 0.0, 1.5, -0.2, "often", None])
def test_bad_probability(value: object) -> None:
    data = voice_dict()
    data["edges"][3]["probability"] = value
    msg = error_of(data)
    assert "edge 'llm -> tts'" in msg and "probability" in msg


def test_negative_payload() -> None:
    data = voice_dict()
    data["edges"][0]["payload_bytes"] = -1
    assert "payload_bytes" in error_of(data)


def test_non_numeric_value() -> None:
    data = voice_dict()
    data["nodes"]["web_search"]["lookup"]["latency_s"] = "fast"
    msg = error_of(data)
    assert "node 'web_search'" in msg and "lookup.latency_s" in msg and "'fast'" in msg


def test_numeric_strings_from_yaml_1_1_are_accepted() -> None:
    data = voice_dict()
    data["nodes"]["web_search"]["compute"]["flops"] = "2.0e8"
    assert agent_graph_from_dict(data) == agent_graph_from_dict(voice_dict())


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nnodes:\n  a: {kind: general_compute\nedges: []\n")
    with pytest.raises(InputError) as err:
        load_agent_graph(path)
    assert str(path) in str(err.value)
    assert "line" in str(err.value)


def test_duplicate_node_ids_in_yaml(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("nodes:\n  a: {kind: general_compute}\n  a: {kind: control}\n")
    with pytest.raises(InputError, match="duplicate key 'a'"):
        load_agent_graph(path)


def test_duplicate_node_ids_in_code() -> None:
    b = GraphBuilder("g").add_node("a", "general_compute").add_node("a", "control")
    with pytest.raises(InputError, match="used twice"):
        b.build()


def test_unknown_edge_endpoint_suggests() -> None:
    data = voice_dict()
    data["edges"][3]["dst"] = "ttts"
    with pytest.raises(UnknownNameError) as err:
        agent_graph_from_dict(data, source="bad.yaml")
    assert "'ttts'" in str(err.value) and "Did you mean 'tts'" in str(err.value)


def test_unknown_kind_suggests() -> None:
    data = voice_dict()
    data["nodes"]["tts"]["kind"] = "model_exec"
    msg = error_of(data)
    assert "model_exec" in msg and "model_execution" in msg


def test_loop_that_closes_no_cycle() -> None:
    data = voice_dict()
    data["edges"][3]["loop"] = {"expected_iterations": 1, "max_iterations": 1}
    assert "closes no cycle" in error_of(data)


def test_loop_expected_above_max() -> None:
    data = voice_dict()
    data["edges"][2]["loop"] = {"expected_iterations": 3, "max_iterations": 2}
    msg = error_of(data)
    assert "expected_iterations" in msg and "max_iterations" in msg


def test_loop_fields_missing_or_unknown() -> None:
    data = voice_dict()
    data["edges"][2]["loop"] = {"expected_iterations": 1}
    assert "loop.max_iterations" in error_of(data)
    data["edges"][2]["loop"] = {"expected_iterations": 1, "max_iterations": 2, "mean": 1}
    assert "mean" in error_of(data)


def test_back_edge_with_probability_rejected() -> None:
    data = voice_dict()
    data["edges"][2]["probability"] = 0.5
    assert "back edge" in error_of(data)


def test_tokens_and_io_tokens_are_exclusive() -> None:
    data = voice_dict()
    data["nodes"]["llm"]["tokens"] = 10
    assert "not both" in error_of(data)
    data = voice_dict()
    del data["nodes"]["llm"]["output_tokens"]
    assert "output_tokens" in error_of(data)
    data = voice_dict()
    del data["nodes"]["tts"]["tokens"]
    assert "no token counts" in error_of(data)


def test_unknown_precision_in_node() -> None:
    data = voice_dict()
    data["nodes"]["llm"]["precision"] = "int3"
    msg = error_of(data)
    assert "int3" in msg and "fp16" in msg and "node 'llm'" in msg


def test_control_with_model_and_work_rejected() -> None:
    data = {
        "nodes": {
            "plan": {
                "kind": "control",
                "model": "llama-3-8b",
                "input_tokens": 1,
                "output_tokens": 1,
                "work": {"flops": 1},
            }
        }
    }
    assert "not both" in error_of(data)


def test_agent_needs_subgraph_and_others_must_not_have_one() -> None:
    assert "subgraph" in error_of({"nodes": {"a": {"kind": "agent"}}})
    msg = error_of(
        {
            "nodes": {
                "a": {"kind": "general_compute", "subgraph": {"nodes": {"b": {"kind": "control"}}}}
            }
        }
    )
    assert "only agent nodes" in msg


def test_error_inside_subgraph_names_the_nested_node() -> None:
    data = {
        "nodes": {
            "worker": {
                "kind": "agent",
                "subgraph": {
                    "nodes": {
                        "llm": {
                            "kind": "model_execution",
                            "model": "llama-3-8b",
                            "input_tokens": 0,
                            "output_tokens": 3,
                        }
                    }
                },
            }
        }
    }
    msg = error_of(data, source="sup.yaml")
    assert "sup.yaml" in msg and "node 'worker/llm'" in msg and "input_tokens" in msg


def test_empty_or_missing_nodes() -> None:
    assert "nodes" in error_of({"name": "x"})
    assert "nodes" in error_of({"name": "x", "nodes": {}})
    with pytest.raises(InputError):
        agent_graph_from_dict(["not", "a", "mapping"])  # type: ignore[arg-type]


def test_bad_node_id() -> None:
    with pytest.raises(InputError, match="reserved"):
        GraphBuilder("g").add_node("a.b", "general_compute").build()


def test_direct_construction_validates() -> None:
    with pytest.raises(InputError, match="model"):
        Node("llm", TaskKind.MODEL, {"precision": "fp16"})
    with pytest.raises(InputError, match="no nodes"):
        AgentGraph("empty", (), ())
    with pytest.raises(InputError, match="expected_iterations"):
        Loop(expected_iterations=5, max_iterations=1)


def test_workload_readers_are_registered_by_suffix(tmp_path: Path, monkeypatch: Any) -> None:
    """A reader registered for a suffix reads those files; others are read as YAML."""
    import json

    from hetopt import workloads

    monkeypatch.setattr(workloads, "_READERS", dict(workloads._READERS))
    data = yaml.safe_load((WORKLOADS / "chat_agent.yaml").read_text())
    (tmp_path / "chat.json").write_text(json.dumps(data))
    workloads.register_workload_reader(".json", lambda p: json.loads(p.read_text()))
    wl = workloads.load_workload(tmp_path / "chat.json")
    assert wl.graph == load_agent_graph(WORKLOADS / "chat_agent.yaml")
    assert wl.source == f"workload file {tmp_path / 'chat.json'}"
    workloads.register_workload_reader(".json", lambda p: [1, 2])
    with pytest.raises(InputError, match="must hold a mapping"):
        workloads.load_workload(tmp_path / "chat.json")
