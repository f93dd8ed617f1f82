"""``hetopt plan workload_file=my_agent.py:graph`` and ``hetopt import``: runs and bad input."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("langgraph")

from hetopt.cli.main import main  # noqa: E402
from hetopt.workloads import load_workload  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
REACT = ROOT / "examples" / "agents" / "react_agent.py"


def _words(text: str) -> str:
    return " ".join(text.split())


def test_plan_a_langgraph_agent_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    start = time.perf_counter()
    code = main(["plan", f"workload_file={REACT}:graph", f"hydra.run.dir={run}"])
    print(f"hetopt plan react_agent.py:graph: {time.perf_counter() - start:.2f} s")
    out = _words(capsys.readouterr().out)
    assert code == 0
    assert f"Imported workload file {REACT}:graph: 3 node(s)" in out
    assert "Assumptions: none." in out
    plan = json.loads((run / "plan.json").read_text())
    assert plan["workload"] == "react_agent" and plan["verification"]["passed"]
    imported = run / "imported_workload.yaml"
    assert load_workload(imported).graph.node_ids == ("agent", "tools", "format_answer")


def test_plan_prints_the_assumptions_and_takes_workload_overrides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "few.yaml"
    notes.write_text(
        "nodes:\n  agent: {kind: model_execution, model: llama-3-8b, input_tokens: 900,"
        " output_tokens: 90}\n"
    )
    run = tmp_path / "run"
    code = main(
        [
            "plan",
            f"workload_file={REACT}:graph",
            f"workload_annotations={notes}",
            "workload.request_rate_per_s=5",
            f"hydra.run.dir={run}",
        ]
    )
    out = _words(capsys.readouterr().out)
    assert code == 0
    assert "Assumptions (6; annotate to replace them):" in out
    assert "loop 'tools -> agent': no annotation" in out
    assert json.loads((run / "plan.json").read_text())["request_rate_per_s"] == 5.0
    text = (run / "imported_workload.yaml").read_text()
    assert "#   - loop 'tools -> agent': no annotation" in text


def test_hetopt_import_writes_the_yaml_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "react.yaml"
    assert main(["import", f"{REACT}:graph", f"out={out}"]) == 0
    assert f"Wrote the workload to {out}" in _words(capsys.readouterr().out)
    assert load_workload(out).name == "react_agent"
    assert main(["import", f"{REACT}:graph", f"out={out}"]) == 2
    assert "overwrite=true" in _words(capsys.readouterr().err)
    assert main(["import", f"{REACT}:graph", f"out={out}", "overwrite=true"]) == 0
    assert main(["import", f"{REACT}:graph", "colour=red"]) == 2
    assert "does not use 'colour=red'" in _words(capsys.readouterr().err)


BOOM = """\
    from langgraph.graph import StateGraph

    def helper():
        return 1 / 0

    value = helper()
"""
NOT_A_GRAPH = """\
    graph = {"nodes": []}

    def make_graph():
        return None
"""


@pytest.mark.parametrize(
    ("source", "target", "needles"),
    [
        (BOOM, "agent.py:graph",
         ["importing it raised ZeroDivisionError", "traceback from your code below",
          "----- traceback from", 'agent.py", line 4, in helper',
          "ZeroDivisionError: division by zero", "----- end of the traceback"]),
        ("x = 1\n", "agent.py:graph", ["agent.py has no object 'graph'"]),
        ("grap = 1\n", "agent.py:graph", ["Did you mean 'grap'?"]),
        (NOT_A_GRAPH, "agent.py:graph",
         ["agent.py:graph: 'graph' is a builtins.dict, not a LangGraph graph"]),
        (NOT_A_GRAPH, "agent.py:make_graph", ["It is a function"]),
        ("x = 1\n", "agent.py", ["agent.py: a Python file holds code", "agent.py:graph"]),
        ("def f(:\n", "agent.py:graph", ["importing it raised SyntaxError", "invalid syntax"]),
        (None, "missing.py:graph", ["missing.py: no such file, so there is no 'graph'"]),
    ],
)  # fmt: skip
def test_bad_python_workloads_exit_2_naming_the_file_and_object(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    source: str | None,
    target: str,
    needles: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths: importlib's frozen frames resolve here too
    if source is not None:
        (tmp_path / "agent.py").write_text(textwrap.dedent(source))
    code = main(["plan", f"workload_file={target}", f"run_dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert code == 2
    for needle in needles:
        assert needle in _words(err), needle
    # hetopt's own frames never show; only the user's file appears in a traceback
    assert "hetopt/importers" not in err and "importlib" not in err
    assert not (tmp_path / "run").exists()


def test_an_annotation_naming_an_unknown_node_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.yaml"
    notes.write_text("nodes:\n  agnet: {kind: control}\n")
    code = main(["import", f"{REACT}:graph", f"annotations={notes}", f"out={tmp_path / 'o.yaml'}"])
    err = _words(capsys.readouterr().err)
    assert code == 2
    assert f"annotation file {notes} (for workload file {REACT}:graph)" in err
    assert "names node 'agnet'" in err and "Did you mean 'agent'?" in err
    assert "Traceback" not in err


def test_annotations_without_a_graph_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["plan", "workload_annotations=x.yaml", f"run_dir={tmp_path / 'run'}"])
    assert code == 2
    assert "without a graph to annotate" in _words(capsys.readouterr().err)


def test_without_langgraph_the_extra_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "langgraph" else real(name, *a),
    )
    code = main(["plan", f"workload_file={REACT}:graph", f"run_dir={tmp_path / 'run'}"])
    assert code == 2
    assert "pip install -e '.[agents]'" in _words(capsys.readouterr().err)


def test_planning_a_yaml_workload_never_imports_langgraph(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom hetopt.cli.main import main\n"
        f"assert main(['plan', 'workload=chat_agent', 'run_dir={tmp_path / 'run'}']) == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('langgraph', 'langchain_core')))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_help_names_the_import_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "hetopt import my_agent.py:graph" in capsys.readouterr().out
    assert main(["import", "--help"]) == 0
    assert "annotations=FILE" in capsys.readouterr().out
    assert main(["imprt"]) == 2
    assert "export, import" in _words(capsys.readouterr().err)


def test_a_sweep_plans_a_langgraph_agent_at_every_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "sweep"
    rag = ROOT / "examples" / "agents" / "rag_agent.py"
    assert (
        main(["sweep", f"workload_file={rag}:graph", "sla.e2e_s=20,30", f"hydra.sweep.dir={sweep}"])
        == 0
    )
    results = (sweep / "results.csv").read_text().splitlines()
    assert len(results) == 3 and all(",ok," in line for line in results[1:])


def test_a_sweep_of_a_broken_python_workload_exits_2_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "agent.py").write_text(textwrap.dedent(BOOM))
    sweep = tmp_path / "sweep"
    target = f"workload_file={tmp_path / 'agent.py'}:graph"
    assert main(["sweep", target, "sla.e2e_s=12,13", f"hydra.sweep.dir={sweep}"]) == 2
    err = _words(capsys.readouterr().err)
    assert "importing it raised ZeroDivisionError" in err
    assert not (sweep / "sweep.json").exists()
