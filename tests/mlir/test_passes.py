"""Decomposition as MLIR rewrites, cost annotation and placement."""

from __future__ import annotations

import pytest

from hetopt.graph.architectures import get_architecture
from hetopt.graph.decompose import decompose
from hetopt.graph.ir import GraphBuilder
from hetopt.mlir.convert import attrs_of, export_module
from hetopt.mlir.dialect import agent_context, verify
from hetopt.mlir.passes import (
    annotate_costs,
    decompose_module,
    operator_structure,
    parse_config,
    place,
    placed_ops,
)
from hetopt.workloads import load_workload, workload_names


def _structure_of(graph):  # type: ignore[no-untyped-def]
    og = decompose(graph)
    return (
        sorted(o.id for o in og.ops),
        sorted((e.src, e.dst, e.payload_bytes, e.probability) for e in og.edges),
        sorted(
            (lp.back_src, lp.back_dst, lp.payload_bytes, lp.expected_iterations, lp.max_iterations)
            for lp in og.loops
        ),
    )


@pytest.mark.parametrize("name", workload_names())
def test_mlir_decomposition_equals_the_planners(name: str) -> None:
    """Two implementations of the decomposition rules (Python, MLIR rewrites) agree on
    operators, forward edges with payloads and probabilities, and loops."""
    graph = load_workload(name).graph
    with agent_context():
        module = export_module(graph)
        decompose_module(module)
        verify(module)
        s = operator_structure(module)
    assert (sorted(s.ops), sorted(s.edges), sorted(s.loops)) == _structure_of(graph)


def _moe_graph():  # type: ignore[no-untyped-def]
    return (
        GraphBuilder("moe")
        .add_node(
            "llm", "model_execution", model="mixtral-8x7b", input_tokens=512, output_tokens=64
        )
        .add_node("db", "memory_lookup", vectors=100_000, dim=512)
        .add_edge("db", "llm", payload_bytes=2048)
        .build()
    )


def test_moe_call_becomes_gate_experts_merge_allreduce() -> None:
    graph = _moe_graph()
    og = decompose(graph)
    with agent_context():
        module = export_module(graph)
        decompose_module(module)
        annotate_costs(module, og)
        verify(module)
        ops = placed_ops(module)
        text = str(module)
    names = [n for n, _ in ops]
    assert names == [
        "memory.load",
        "gate.select",
        "expert.tp_prefill",
        "merge.expert_outputs",
        "comm.allreduce",
        "llm.kv_transfer",
        "gate.select",
        "expert.tp_decode",
        "merge.expert_outputs",
        "comm.allreduce",
    ]
    assert '"llm.call"' not in text
    # The parts of each phase add up to the planner's operator (FLOPs), and the all-reduce
    # carries the hidden state twice per layer per token as network bytes.
    arch = get_architecture("mixtral-8x7b")
    for phase, tokens in (("prefill", 512), ("decode", 64)):
        parts = [a for _, a in ops if a["op"] == f"llm.{phase}"]
        assert sum(a["cost"]["flops"] for a in parts) == pytest.approx(
            og.op(f"llm.{phase}").work.flops, rel=1e-12
        )
        gate = next(a for a in parts if a.get("part") == "gate")
        assert gate["cost"]["flops"] == pytest.approx(
            2 * tokens * arch.d_model * arch.n_experts * arch.n_layers
        )
        ar = next(a for a in parts if a.get("part") == "allreduce")
        assert ar["cost"]["net_bytes"] == 2 * tokens * arch.d_model * arch.n_layers * 2


def test_moe_flops_use_active_parameters() -> None:
    arch = get_architecture("mixtral-8x7b")
    assert arch.active_params == pytest.approx(12.9e9, rel=0.01)  # Mixtral paper
    assert arch.prefill_flops(1) == pytest.approx(
        2 * arch.active_params + 2 * arch.n_layers * arch.d_model
    )
    assert arch.weight_bytes("fp16") == 2 * 46.7e9


def test_annotation_carries_the_optimisers_resource_vectors() -> None:
    graph = load_workload("voice_agent").graph
    og = decompose(graph)
    with agent_context():
        module = export_module(graph)
        decompose_module(module)
        annotate_costs(module, og)
        for _, a in placed_ops(module):
            op = og.op(a["op"])
            assert a["cost"]["visits"] == op.visits
            assert a["cost"]["max_visits"] == op.max_visits
            if op.work is None:
                assert a["cost"]["net_bytes"] == op.payload_bytes
            else:
                assert (a["cost"]["flops"], a["cost"]["mem_bytes"], a["cost"]["net_bytes"]) == (
                    op.work.flops,
                    op.work.mem_bytes,
                    op.work.net_bytes,
                )


def test_place_writes_the_plans_decisions() -> None:
    graph = load_workload("voice_agent").graph
    rows = [
        {"operator": "stt", "device": "L4", "config": "b1", "count": 1, "latency_s": 0.05},
        {
            "operator": "llm.prefill",
            "device": "H100",
            "config": "tp2/b4",
            "count": 2,
            "latency_s": 0.2,
        },
        {
            "operator": "llm.decode",
            "device": "Gaudi3",
            "config": "tp4/b32",
            "count": 4,
            "latency_s": 3.0,
        },
        {
            "operator": "web_search.lookup",
            "device": "Xeon-SPR",
            "config": "b1",
            "count": 1,
            "latency_s": 0.35,
        },
        {
            "operator": "web_search.compute",
            "device": "Xeon-SPR",
            "config": "b1",
            "count": 1,
            "latency_s": 0.01,
        },
        {"operator": "tts", "device": "L4", "config": "b1", "count": 1, "latency_s": 0.01},
    ]
    with agent_context():
        module = export_module(graph)
        decompose_module(module)
        place(module, rows)
        verify(module)
        ops = {a["op"]: a for _, a in placed_ops(module)}
        decode = ops["llm.decode"]["placement"]
        assert (decode["device"], decode["tp"], decode["batch"], decode["count"]) == (
            "Gaudi3",
            4,
            32,
            4,
        )
        assert ops["llm.kv_transfer"]["placement"] == {"from": "H100", "to": "Gaudi3"}
        with pytest.raises(Exception, match="no placement for operator 'tts'"):
            module2 = export_module(graph)
            decompose_module(module2)
            place(module2, rows[:-1])


def test_parse_config() -> None:
    assert parse_config("tp4/b32") == (4, 32)
    assert parse_config("b1") == (1, 1)
    assert parse_config("tp2/pp2/b8") == (2, 8)


def test_nested_agent_is_inlined_with_path_ids() -> None:
    graph = load_workload("supervisor_agent").graph
    with agent_context():
        module = export_module(graph)
        decompose_module(module)
        funcs = [op for op in module.body.operations if op.operation.name == "func.func"]
        assert len(funcs) == 1
        nodes = {
            attrs_of(op.operation).get("node")
            for op in funcs[0].operation.regions[0].blocks[0].operations
        }
    assert "researcher/search" in nodes and "coder/llm" in nodes
