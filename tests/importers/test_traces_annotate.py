"""Traces as the LangGraph import's annotations: the code gives the structure, the traces the
numbers (an annotation file's ``traces:`` key, or ``from_langgraph(..., traces=)``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

import pytest

pytest.importorskip("langgraph")
pytest.importorskip("opentelemetry.proto")

from langgraph.graph import END, START, StateGraph  # noqa: E402

from hetopt.cli.main import main  # noqa: E402
from hetopt.importers import from_langgraph, import_target, profile_traces  # noqa: E402
from hetopt.importers.otlp import SpanRecord  # noqa: E402
from hetopt.importers.traces import derive_workload  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
REACT = ROOT / "examples" / "agents" / "react_agent.py"
REACT_TRACES = ROOT / "examples" / "traces" / "react_agent.otlp.json"

LLM = {
    "gen_ai.operation.name": "chat",
    "gen_ai.request.model": "llama-3-8b",
    "gen_ai.usage.input_tokens": 512,
    "gen_ai.usage.output_tokens": 64,
}
TOOL = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}


class _State(TypedDict):
    steps: int


def _router() -> Any:
    """plan -> (act | finish | END); act -> plan; finish -> END."""
    builder = StateGraph(_State)
    for name in ("plan", "act", "finish"):
        builder.add_node(name, lambda s: s)
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", lambda s: END, ["act", "finish", END])
    builder.add_edge("act", "plan")
    builder.add_edge("finish", END)
    return builder.compile()


def _spans(requests: list[list[str]]) -> list[SpanRecord]:
    """One trace per request, visiting the nodes in order, 1 s apart, 10 s between requests:
    ``plan`` calls the LLM, ``act`` a tool (0.5 s), ``finish`` neither."""
    out = []
    for r, visits in enumerate(requests):
        t, root = f"t{r}", f"r{r}"
        t0 = 10.0 * r
        out.append(SpanRecord(t, root, "", "invoke_agent", t0, t0 + len(visits)))
        for k, name in enumerate(visits):
            at, sid = t0 + k, f"{r}-{k}"
            out.append(SpanRecord(t, sid, root, name, at, at + 1, {"graph.node.name": name}))
            if name == "plan":
                out.append(SpanRecord(t, sid + "l", sid, "chat", at, at + 0.5, LLM))
            if name == "act":
                out.append(SpanRecord(t, sid + "t", sid, "search", at, at + 0.5, TOOL))
    return out


def _edges(workload: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["src"], e["dst"]): e for e in workload["edges"]}


def test_traces_give_the_numbers_the_code_cannot() -> None:
    """Four requests: plan visits 8 times; it picks act 4 times (per visit 0.5), finish twice
    (0.25) and ends twice (0.25). Per pass of the acyclic part (hetopt's edge probabilities),
    act is the loop's continuation and finish, END its exits: act 1, finish 0.25 / 0.5 = 0.5.
    The loop act -> plan runs 1 time per request on average (4 in 4), at most 2."""
    requests = [["plan", "act", "plan", "act", "plan"], ["plan", "finish"]]
    requests += [["plan", "act", "plan", "finish"], ["plan", "act", "plan"]]
    notes = derive_workload(_spans(requests), "router").annotations()
    assert notes["branches"] == {"plan": {"act": 0.5, "finish": 0.25, "__end__": 0.25}}
    result = from_langgraph(_router(), traces=notes, name="router")
    assert result.workload["request_rate_per_s"] == pytest.approx(0.1)  # 3 gaps in 30 s
    nodes = result.workload["nodes"]
    assert nodes["plan"] == {
        "kind": "model_execution",
        "model": "llama-3-8b",
        "input_tokens": 512,
        "output_tokens": 64,
    }
    assert nodes["act"]["kind"] == "tool_call" and nodes["act"]["lookup"]["latency_s"] == 0.5
    edges = _edges(result.workload)
    assert edges[("act", "plan")]["loop"] == {"expected_iterations": 1.0, "max_iterations": 2}
    assert edges[("plan", "finish")]["probability"] == pytest.approx(0.5)
    assert "probability" not in edges[("plan", "act")]
    # the defaults left are said: payloads, and the fields traces cannot measure
    said = [a for a in result.assumptions if "payload" not in a]
    assert said == [
        "node 'act' (from the traces): request_bytes 1024 and response_bytes 4096 are "
        "defaults (traces carry no byte counts).",
        "node 'finish' (from the traces): its work flops 100000, mem_bytes 100000 is a "
        "default (the traces show no LLM or tool call under it).",
    ]


def test_annotations_and_metadata_win_over_traces() -> None:
    requests = [["plan", "act", "plan", "finish"], ["plan", "finish"]]
    notes = derive_workload(_spans(requests), "router").annotations()
    given = {
        "nodes": {"plan": {"kind": "model_execution", "model": "llama-3-70b", "input_tokens": 9}},
        "loops": {"act -> plan": {"expected_iterations": 2.0, "max_iterations": 5}},
    }
    result = from_langgraph(_router(), given, traces=notes)
    plan = result.workload["nodes"]["plan"]
    assert plan["model"] == "llama-3-70b" and plan["input_tokens"] == 9
    assert plan["output_tokens"] == 64  # not annotated: the traces' number
    loop = _edges(result.workload)[("act", "plan")]["loop"]
    assert loop == {"expected_iterations": 2.0, "max_iterations": 5}


def test_a_target_the_traces_never_saw_leaves_the_branches_to_the_default() -> None:
    """The traces never saw plan end the request: their shares cannot give END a probability,
    so the branches fall back to the default, and the assumptions say why."""
    requests = [["plan", "act", "plan", "finish"], ["plan", "finish"]]
    notes = derive_workload(_spans(requests), "router").annotations()
    result = from_langgraph(_router(), traces=notes)
    said = " ".join(result.assumptions)
    assert "the traces saw it go to ['act', 'finish']" in said
    assert "equally likely" in said


def test_an_annotation_file_names_its_traces(tmp_path: Path) -> None:
    """The shipped ReAct traces as the only annotation: every number is the traces' (the same
    as `hetopt profile` derives from them); payloads, the tool's bytes and the plain step's
    work are defaults, and said."""
    notes = tmp_path / "react.hetopt.yaml"
    notes.write_text(f"traces: {REACT_TRACES}\n")
    result = import_target(f"{REACT}:graph", notes)
    said = [a for a in result.assumptions if "payload" not in a]
    assert len(said) == 2 and all("(from the traces)" in a for a in said)  # bytes, work
    assert "with traces" in str(result.annotations)
    profiled = profile_traces([REACT_TRACES]).workload_data()
    assert result.workload["nodes"] == profiled["nodes"]
    assert result.workload["request_rate_per_s"] == profiled["request_rate_per_s"]
    ours, theirs = _edges(result.workload), _edges(profiled)
    assert ours.keys() == theirs.keys()
    for key, edge in ours.items():
        assert edge.get("loop") == theirs[key].get("loop"), key
        assert edge.get("probability", 1.0) == pytest.approx(
            theirs[key].get("probability", 1.0), abs=1e-6
        ), key


def test_bad_traces_entry_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    notes = tmp_path / "react.hetopt.yaml"
    notes.write_text("traces: 5\n")
    out = tmp_path / "w.yaml"
    assert main(["import", f"{REACT}:graph", f"annotations={notes}", f"out={out}"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "'traces' must name an OTLP JSON trace file" in err and str(notes) in err
    assert not out.exists()


def test_traces_of_another_agent_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    notes = tmp_path / "react.hetopt.yaml"
    notes.write_text(f"traces: {ROOT / 'examples' / 'traces' / 'supervisor_agent.otlp.json'}\n")
    out = tmp_path / "w.yaml"
    assert main(["import", f"{REACT}:graph", f"annotations={notes}", f"out={out}"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "have none in common, so the traces are not of this agent" in err
    assert not out.exists()


def test_a_missing_trace_file_names_the_annotation_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    notes = tmp_path / "sub" / "react.hetopt.yaml"
    notes.write_text("traces: missing.json\n")
    assert main(["import", f"{REACT}:graph", f"annotations={notes}"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"annotation file {notes}: its 'traces' ['missing.json']" in err
    assert f"relative to {tmp_path / 'sub'}" in err


def test_a_trace_file_given_twice_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each span counts once: the same export named twice would double every request."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "p"
    assert main(["profile", str(REACT_TRACES), str(REACT_TRACES), f"out={out}"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "is there twice" in err and str(REACT_TRACES) in err
    assert not out.exists()
