"""hetopt profile: a hand-written OTLP JSON trace and its derived workload, written out literally;
bad trace files exit 2 naming what was found and what is missing; the end-to-end path from a
shipped trace to a plan."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from hetopt.cli.main import main

pytest.importorskip("opentelemetry.proto")
pytest.importorskip("openinference.semconv")

ROOT = Path(__file__).resolve().parents[2]
T0_NS = 1_767_225_600_000_000_000


def _attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def _span(trace: int, span: int, parent: int, name: str, start_s: float, end_s: float,
          **attrs: Any) -> dict[str, Any]:  # fmt: skip
    out = {
        "traceId": f"{trace:032x}",
        "spanId": f"{span:016x}",
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(T0_NS + round(start_s * 1e9)),
        "endTimeUnixNano": str(T0_NS + round(end_s * 1e9)),
        "attributes": [_attr(k.replace("__", "."), v) for k, v in attrs.items()],
    }
    if parent:
        out["parentSpanId"] = f"{parent:016x}"
    return out


def _node(trace: int, span: int, name: str, t: float) -> dict[str, Any]:
    return _span(trace, span, 1, name, t, t + 1, graph__node__name=name)


def _chat(trace: int, span: int, parent: int, t: float) -> dict[str, Any]:
    return _span(trace, span, parent, "chat llama-3-8b", t, t + 0.5,
                 gen_ai__operation__name="chat", gen_ai__request__model="llama-3-8b",
                 gen_ai__usage__input_tokens=1000, gen_ai__usage__output_tokens=100)  # fmt: skip


def _tool(trace: int, span: int, parent: int, t: float, latency_s: float) -> dict[str, Any]:
    return _span(trace, span, parent, "execute_tool search", t, t + latency_s,
                 gen_ai__operation__name="execute_tool", gen_ai__tool__name="search")  # fmt: skip


def _request(trace: int, arrival_s: float, path: list[str], latencies: list[float]) -> list[Any]:
    """One request: a root invoke_agent span, then one node span per step of ``path``."""
    spans = [_span(trace, 1, 0, "invoke_agent react", arrival_s, arrival_s + 10,
                   gen_ai__operation__name="invoke_agent", gen_ai__agent__name="react")]  # fmt: skip
    tools = iter(latencies)
    for k, node in enumerate(path):
        sid, t = 10 + 2 * k, arrival_s + k
        spans.append(_node(trace, sid, node, t))
        if node == "agent":
            spans.append(_chat(trace, sid + 1, sid, t))
        elif node == "tools":
            spans.append(_tool(trace, sid + 1, sid, t, next(tools)))
    return spans


# Three requests at t = 0, 1 and 3 s: agent <-> tools loops taken 1, 0 and 2 times; two of the
# three requests end in `answer`, one in `fallback`.
REQUESTS = [
    _request(1, 0.0, ["agent", "tools", "agent", "answer"], [0.2]),
    _request(2, 1.0, ["agent", "fallback"], []),
    _request(3, 3.0, ["agent", "tools", "agent", "tools", "agent", "answer"], [0.4, 0.6]),
]
EXPECTED_WORKLOAD = {
    "name": "literal",
    "request_rate_per_s": 0.666667,  # 2 gaps in 3 s
    "nodes": {
        "agent": {
            "kind": "model_execution",
            "model": "llama-3-8b",
            "input_tokens": 1000,
            "output_tokens": 100,
        },
        "tools": {
            "kind": "tool_call",
            "lookup": {"latency_s": 0.4, "request_bytes": 1024.0, "response_bytes": 4096.0},
        },
        "answer": {"kind": "general_compute", "work": {"flops": 1.0e5, "mem_bytes": 1.0e5}},
        "fallback": {"kind": "general_compute", "work": {"flops": 1.0e5, "mem_bytes": 1.0e5}},
    },
    "edges": [
        # agent -> tools stays in the loop, the only such target: every pass that continues
        {"src": "agent", "dst": "tools", "payload_bytes": 2048.0},
        {
            "src": "tools",
            "dst": "agent",
            "payload_bytes": 2048.0,
            "loop": {"expected_iterations": 1.0, "max_iterations": 2},
        },  # fmt: skip
        # the loop's exits share the requests: 2 of 3, 1 of 3
        {"src": "agent", "dst": "answer", "payload_bytes": 2048.0, "probability": 0.666666},
        {"src": "agent", "dst": "fallback", "payload_bytes": 2048.0, "probability": 0.333333},
    ],
}


def _write(path: Path, requests: list[list[Any]]) -> Path:
    """One TracesData object per line, as a collector's file exporter writes them."""
    lines = [
        json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}) for spans in requests
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_literal_trace_gives_the_literal_workload(tmp_path: Path) -> None:
    trace = _write(tmp_path / "literal.otlp.json", REQUESTS)
    out = tmp_path / "profile"
    assert main(["profile", str(trace), f"out={out}"]) == 0
    derived = yaml.safe_load((out / "workload.yaml").read_text())
    del derived["description"]
    assert derived == EXPECTED_WORKLOAD
    assert (out / "arrivals.csv").read_text() == "timestamp_s\n0.000000\n1.000000\n3.000000\n"
    summary = json.loads((out / "profile.json").read_text())
    assert summary["requests"] == 3 and summary["graph"]["nodes"]["agent"]["visits"] == 6
    # and the derived workload is one hetopt reads
    from hetopt.workloads import load_workload

    assert load_workload(out / "workload.yaml").name == "literal"


def test_one_object_per_file_and_several_files(tmp_path: Path) -> None:
    from hetopt.importers.traces import profile_traces

    files = []
    for k, spans in enumerate(REQUESTS):
        path = tmp_path / f"part{k}.json"
        path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}))
        files.append(path)
    profile = profile_traces(files, "literal")
    data = profile.workload_data()
    del data["description"]
    assert data == EXPECTED_WORKLOAD


def _profile_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> str:
    path = tmp_path / "bad.json"
    path.write_text(text)
    assert main(["profile", str(path), f"out={tmp_path / 'out'}"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(path) in err
    assert not (tmp_path / "out").exists()
    return " ".join(err.split())


def test_no_spans_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _profile_fails(tmp_path, capsys, '{"resourceSpans": []}')
    assert "no spans found" in err


def test_no_genai_attributes_exits_2_saying_what_was_found_and_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spans = [
        _span(9, 1, 0, "GET /", 0, 1, http__method="GET"),
        _span(9, 2, 1, "SELECT", 0, 1, db__system="postgresql"),
    ]
    err = _profile_fails(
        tmp_path, capsys, json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})
    )
    assert "found 2 spans with attributes http.method (1), db.system (1)" in err
    assert "no GenAI (gen_ai.*) attributes: unknown conventions" in err
    assert "Missing: graph.node.name" in err and "gen_ai.request.model" in err


def test_node_spans_without_llm_or_tool_spans_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spans = [_span(9, 1, 0, "root", 0, 1), _node(9, 2, "agent", 0)]
    err = _profile_fails(
        tmp_path, capsys, json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})
    )
    assert "graph.node.name (1)" in err and "Missing: GenAI LLM or tool spans" in err


def test_missing_parent_spans_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spans = [s for s in REQUESTS[0] if s["spanId"] != f"{10:016x}"]  # drop the first node span
    err = _profile_fails(
        tmp_path, capsys, json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})
    )
    assert "1 of 7 spans have a parent that is not in the files" in err
    assert "chat llama-3-8b" in err


def test_an_llm_span_without_model_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spans = [_span(9, 1, 0, "root", 0, 1), _node(9, 2, "agent", 0),
             _span(9, 3, 2, "chat", 0, 1, gen_ai__operation__name="chat")]  # fmt: skip
    err = _profile_fails(
        tmp_path, capsys, json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})
    )
    assert "missing gen_ai.request.model" in err and "gen_ai.operation.name" in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json at all", "not JSON"),
        (
            '{"data": []}',
            "not an OTLP JSON trace export: expected an object with 'resourceSpans', found ['data']",
        ),
        (
            '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
            "is not a hex string",
        ),
        ('{"resourceSpans": [{"scopeSpans": [{"spanz": []}]}]}', "not valid OTLP JSON"),
    ],
)
def test_malformed_files_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    assert message in _profile_fails(tmp_path, capsys, text)


def test_usage_errors_and_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = _write(tmp_path / "t.json", REQUESTS)
    out = tmp_path / "o"
    assert main(["profile"]) == 2
    assert main(["profile", str(trace), "solver=cpsat"]) == 2
    assert main(["profile", str(tmp_path / "missing.json")]) == 2
    assert main(["profile", str(trace), f"out={out}"]) == 0
    assert main(["profile", str(trace), f"out={out}"]) == 2
    err = capsys.readouterr().err
    assert "got none" in err and "'solver=cpsat'" in err and "missing.json" in err
    assert "already exist." in err and "overwrite=true" in err
    assert main(["profile", str(trace), f"out={out}", "overwrite=true", "name=again"]) == 0
    assert yaml.safe_load((out / "workload.yaml").read_text())["name"] == "again"
    assert main(["profile", "--help"]) == 0 and "hetopt profile" in capsys.readouterr().out


def test_without_the_traces_extra_exits_2_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = _write(tmp_path / "t.json", REQUESTS)
    monkeypatch.setitem(sys.modules, "opentelemetry.proto.trace.v1.trace_pb2", None)
    assert main(["profile", str(trace), f"out={tmp_path / 'o'}"]) == 2
    err = capsys.readouterr().err
    assert ".[traces]" in err and "opentelemetry-proto" in err


def test_profile_a_shipped_trace_then_plan_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "react"
    trace = ROOT / "examples" / "traces" / "react_agent.otlp.json"
    assert main(["profile", str(trace), f"out={out}"]) == 0
    printed = capsys.readouterr().out
    assert f"hetopt plan workload_file={out / 'workload.yaml'}" in printed
    assert "replay.arrivals.kind=trace" in printed
    run = tmp_path / "plan"
    assert main(["plan", f"workload_file={out / 'workload.yaml'}", f"hydra.run.dir={run}"]) == 0
    plan = json.loads((run / "plan.json").read_text())
    assert plan


def test_the_importer_loads_opentelemetry_only_when_reading() -> None:
    import subprocess

    code = (
        "import sys, hetopt.importers.traces, hetopt.cli.profile_cmd\n"
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'openinference'))))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


def test_nodes_of_one_langgraph_step_run_in_parallel() -> None:
    """``langgraph.step`` groups nodes: every node of a step follows every node of the step before."""
    from hetopt.importers.otlp import SpanRecord
    from hetopt.importers.traces import derive_workload

    spans = [SpanRecord("t", "r", "", "invoke_agent fan", 0, 4)]
    for k, (node, step) in enumerate([("plan", 1), ("search", 2), ("lookup", 2), ("write", 3)]):
        sid = f"n{k}"
        attrs = {"graph.node.name": node, "langgraph.step": step}
        spans.append(SpanRecord("t", sid, "r", node, step, step + 0.5, attrs))
        spans.append(
            SpanRecord("t", f"c{k}", sid, "execute_tool x", step, step + 0.25,
                       {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "x"})
        )  # fmt: skip
    edges = derive_workload(spans, "fan").workload_data()["edges"]
    assert {(e["src"], e["dst"], e.get("probability", 1.0)) for e in edges} == {
        ("plan", "search", 1.0),
        ("plan", "lookup", 1.0),
        ("search", "write", 1.0),
        ("lookup", "write", 1.0),
    }
