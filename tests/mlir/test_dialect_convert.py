"""The agent dialects (verified by MLIR) and exact agent graph <-> MLIR conversion."""

from __future__ import annotations

from pathlib import Path

import pytest

from hetopt.cli.main import main
from hetopt.errors import InputError
from hetopt.graph.ir import GraphBuilder, Loop, agent_graph_from_dict
from hetopt.mlir.convert import export_graph, import_agent_graph, import_workload
from hetopt.mlir.dialect import agent_context, op_names, parse_module
from hetopt.workloads import load_workload, load_workload_data, workload_names

GOOD = """
func.func @tiny(%q: !agent.msg) -> !agent.msg {
  %0 = "llm.call"(%q) {node = "llm", model = "llama-3-8b", precision = "fp16",
                       input_tokens = 128 : i64, output_tokens = 16 : i64} : (!agent.msg) -> !agent.msg
  %1 = "agent.edge"(%0) {index = 0 : i64, payload_bytes = 256.0 : f64, probability = 1.0 : f64} : (!agent.msg) -> !agent.msg
  %2 = "tool.invoke"(%1) {node = "search", latency_s = 0.3 : f64, request_bytes = 256.0 : f64,
                          response_bytes = 4096.0 : f64} : (!agent.msg) -> !agent.msg
  "agent.back_edge"(%2) {index = 1 : i64, target = "llm", payload_bytes = 4096.0 : f64,
                         expected_iterations = 1.0 : f64, max_iterations = 2 : i64} : (!agent.msg) -> ()
  return %0 : !agent.msg
}
"""


def test_dialect_defines_the_paper_ops() -> None:
    names = set(op_names())
    for op in (
        "llm.call",
        "tool.invoke",
        "memory.load",
        "memory.store",
        "gate.select",
        "expert.tp_prefill",
        "expert.tp_decode",
        "merge.expert_outputs",
        "comm.allreduce",
        "tool.lookup",
        "tool.compute",
        "llm.prefill",
        "llm.decode",
        "llm.kv_transfer",
        "agent.edge",
        "agent.back_edge",
        "agent.call",
    ):
        assert op in names


@pytest.mark.parametrize("name", workload_names())
def test_round_trip_is_exact_for_every_shipped_workload(name: str) -> None:
    data = load_workload_data(name)
    graph = agent_graph_from_dict(data)
    assert graph == load_workload(name).graph
    text = export_graph(graph, data)
    back = import_workload(text)
    assert agent_graph_from_dict(back) == graph
    assert back.get("request_rate_per_s") == data.get("request_rate_per_s")
    # text -> module -> text is a fixed point too
    assert export_graph(agent_graph_from_dict(back), back) == text


def test_round_trip_keeps_awkward_floats_strings_devices_and_order() -> None:
    g = (
        GraphBuilder("odd", description='quotes " and \\ and ünïcode')
        .add_node(
            "b",
            "general_compute",
            work={"flops": 0.1, "mem_bytes": 1 / 3},
            description="second\nline",
            devices=["H100", "Xeon-SPR"],
        )
        .add_node("a", "memory_lookup", vectors=10**7, dim=768, scan_fraction=1e-5, top_k=3)
        .add_node("c", "control", model="bert-base", tokens=64)
        .add_edge("a", "b", payload_bytes=1e-7, probability=0.3)
        .add_edge("a", "c", payload_bytes=12345.678, probability=0.7)
        .add_edge("c", "b")
        .build()
    )  # file order b, a, c is not topological: node_order keeps it
    assert import_agent_graph(export_graph(g)) == g


def test_hand_written_file_without_order_attributes_imports() -> None:
    g = import_agent_graph(GOOD, "tiny.mlir")
    ref = (
        GraphBuilder("tiny")
        .add_node("llm", "model_execution", model="llama-3-8b", input_tokens=128, output_tokens=16)
        .add_node(
            "search",
            "tool_call",
            lookup={"latency_s": 0.3, "request_bytes": 256, "response_bytes": 4096},
        )
        .add_edge("llm", "search", payload_bytes=256)
        .add_edge(
            "search",
            "llm",
            payload_bytes=4096,
            loop=Loop(expected_iterations=1.0, max_iterations=2),
        )
        .build()
    )
    assert g == ref


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (GOOD.replace('model = "llama-3-8b", ', ""), 'attribute "model" is expected'),
        (GOOD.replace("input_tokens = 128 : i64", 'input_tokens = "128"'), "builtin.integer"),
        (GOOD.replace('"tool.invoke"', '"tool.invokee"'), "tool.invokee"),
        (
            GOOD.replace(
                '"agent.edge"(%0) {index = 0 : i64, payload_bytes = 256.0 : f64, '
                "probability = 1.0 : f64} : (!agent.msg)",
                '"agent.edge"(%0, %0) {index = 0 : i64, payload_bytes = 256.0 : f64, '
                "probability = 1.0 : f64} : (!agent.msg, !agent.msg)",
            ),
            "agent.edge",
        ),
        (GOOD.replace("%0 = ", "%0 = = "), "line"),
    ],
)
def test_malformed_mlir_is_rejected_by_the_verifier(bad: str, expected: str) -> None:
    with pytest.raises(InputError) as err:
        import_workload(bad, "bad.mlir")
    assert "bad.mlir" in str(err.value)
    assert expected in str(err.value)


def test_wrong_operand_type_is_an_mlir_error() -> None:
    text = GOOD.replace(
        '%1 = "agent.edge"(%0)', '%c = arith.constant 1 : i64\n  %1 = "agent.edge"(%c)'
    ).replace("probability = 1.0 : f64} : (!agent.msg)", "probability = 1.0 : f64} : (i64)", 1)
    with agent_context(), pytest.raises(InputError) as err:
        parse_module(text, "typed.mlir")
    assert "agent.msg" in str(err.value) or "msg" in str(err.value)


def test_hetopt_plan_reads_mlir_and_gives_the_yaml_plan(tmp_path: Path) -> None:
    workload = load_workload("rag_agent")
    mlir = tmp_path / "rag_agent.mlir"
    mlir.write_text(export_graph(workload.graph, workload))
    assert main(["plan", f"workload_file={mlir}", f"run_dir={tmp_path / 'a'}"]) == 0
    assert main(["plan", "workload=rag_agent", f"run_dir={tmp_path / 'b'}"]) == 0
    a = (tmp_path / "a" / "placement.csv").read_text()
    b = (tmp_path / "b" / "placement.csv").read_text()
    assert a == b


def test_malformed_mlir_workload_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.mlir"
    bad.write_text(GOOD.replace('"tool.invoke"', '"tool.invoek"'))
    assert main(["plan", f"workload_file={bad}", f"run_dir={tmp_path / 'r'}"]) == 2
    err = capsys.readouterr().err
    assert "bad.mlir" in err and "tool.invoek" in err and "Traceback" not in err


def test_hetopt_mlir_registers_its_workload_reader(tmp_path: Path) -> None:
    """`import hetopt.mlir` makes .mlir a workload kind of the library's reader registry."""
    import hetopt.mlir  # noqa: F401

    workload = load_workload("voice_agent")
    path = tmp_path / "voice.mlir"
    path.write_text(export_graph(workload.graph, workload))
    back = load_workload(path)
    assert back.graph == workload.graph
    assert back.request_rate_per_s == workload.request_rate_per_s
    assert back.sla_defaults == workload.sla_defaults == {"e2e_s": 15.0}
