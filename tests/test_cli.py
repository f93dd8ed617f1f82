"""The ``hetopt`` command: the main job, the worked example, and every user error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hetopt.cli.main import main
from hetopt.solvers import SolveStatus


def _plan(tmp_path: Path, *overrides: str) -> tuple[int, dict]:
    run_dir = tmp_path / "run"
    code = main(["plan", *overrides, f"run_dir={run_dir}"])
    data = (
        json.loads((run_dir / "plan.json").read_text()) if (run_dir / "plan.json").exists() else {}
    )
    return code, data


def test_default_plan_writes_required_fields(tmp_path: Path) -> None:
    code, plan = _plan(tmp_path)
    assert code == 0
    assert plan["workload"] == "voice_agent"
    ops = {p["operator"] for p in plan["placement"]}
    assert {"stt", "llm.prefill", "llm.decode", "web_search.lookup", "tts"} <= ops
    for row in plan["placement"]:
        assert row["device"] and row["count"] >= 1
    assert plan["tco_usd_per_hour"] > 0
    assert plan["cost_usd_per_request"] == pytest.approx(
        plan["tco_usd_per_hour"] / (plan["request_rate_per_s"] * 3600)
    )
    assert plan["sla"]["satisfied"] is True
    assert plan["sla"]["worst_ttft_s"] <= 0.25 and plan["sla"]["worst_tbt_s"] <= 0.02
    solver = plan["solver"]
    assert {"backend", "status", "objective", "bound", "gap", "runtime_s"} <= set(solver)
    assert solver["status"] == "optimal" and solver["gap"] <= 1e-6
    assert plan["verification"]["passed"]
    h100 = next(b for b in plan["baselines"] if b["device"] == "H100")
    assert h100["sla_satisfied"] and h100["benefit_of_plan"] >= 1.0
    assert (tmp_path / "run" / "plan.png").stat().st_size > 0


@pytest.mark.parametrize("solver", ["highs", "cbc", "cpsat", "bruteforce"])
def test_worked_example(tmp_path: Path, solver: str) -> None:
    """Paper §3.1 / Table 3: option B (prefill HP, decode CO) at $0.095 under 120 ms."""
    code, plan = _plan(tmp_path, "workload=worked_example", f"solver={solver}")
    assert code == 0
    where = {p["operator"]: p["device"] for p in plan["placement"]}
    assert where == {"llm.prefill": "HP", "llm.decode": "CO"}
    assert plan["cost_usd_per_request"] == pytest.approx(0.095, abs=1e-9)
    assert plan["e2e_latency_s"] == pytest.approx(0.120, abs=1e-9)
    base = {b["device"]: b for b in plan["baselines"]}
    assert base["HP"]["cost_usd_per_request"] == pytest.approx(0.11)  # option A
    assert base["HP"]["sla_satisfied"] and base["HP"]["e2e_latency_s"] == pytest.approx(0.105)
    assert not base["CO"]["sla_satisfied"]  # option C misses the SLA
    assert base["CO"]["e2e_latency_s"] == pytest.approx(0.160)
    assert base["CO"]["cost_usd_per_request"] == pytest.approx(0.06)  # the paper prints $0.07


ERRORS = [
    (["workload=nope"], "workload"),
    (["solver=gurobi"], "solver"),
    (["solver.backend=gurobi"], "Unknown solver backend"),
    (["hardware.devices=[H100,H1OO]"], "Did you mean 'H100'"),
    (["workload.request_rate_per_s=-1"], "request_rate_per_s"),
    (["sla.e2e_s=2"], "tightest SLA that is feasible"),
    (["sla.ttft_s=0.001"], "TTFT"),
    (["sla.tbt_s=-3"], "sla.tbt_s"),
    (["costs.max_utilization=2"], "costs.max_utilization"),
    (["hardware.inventory={H100:1}"], "+hardware.inventory.H100"),
    (["solver.time_limit_s=0.0001"], "time limit"),
    (["workload.nodes.llm.model=llama-9"], "unknown model"),
    (["workload.nodes.llm.output_tokens=-5"], "output_tokens"),
]


@pytest.mark.parametrize(("overrides", "needle"), ERRORS)
def test_user_errors_exit_2_with_one_paragraph(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], overrides: list[str], needle: str
) -> None:
    code = main(["plan", *overrides, f"run_dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in " ".join(err.split())
    assert "Traceback" not in err


def test_unbounded_cycle_and_malformed_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cycle = tmp_path / "cycle.yaml"
    cycle.write_text(
        "name: cyc\nrequest_rate_per_s: 1\nnodes:\n"
        "  a: {kind: model_execution, model: llama-3-8b, input_tokens: 64, output_tokens: 8}\n"
        "  b: {kind: general_compute, work: {flops: 1.0e+6}}\n"
        "edges:\n  - {src: a, dst: b}\n  - {src: b, dst: a}\n"
    )
    assert main(["plan", f"workload_file={cycle}", f"run_dir={tmp_path / 'r1'}"]) == 2
    assert "unbounded cycle" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nnodes:\n  a: {kind: model_execution, model: x\nedges: []\n")
    assert main(["plan", f"workload_file={bad}", f"run_dir={tmp_path / 'r2'}"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in " ".join(err.split()).replace(" ", "") or "bad.yaml" in err


def test_time_limit_keeps_best_plan_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A solve stopped at its limit still writes its plan, marked with its gap."""
    import dataclasses

    import hetopt.pipeline as pipeline

    real = pipeline.solve

    def stopped(problem, options, objective="cost", **kw):
        res = real(problem, options, objective, **kw)
        if objective != "cost" or not res.has_solution:
            return res
        return dataclasses.replace(
            res, status=SolveStatus.FEASIBLE, bound=res.objective * 0.9, gap=0.1
        )

    monkeypatch.setattr(pipeline, "solve", stopped)
    code, plan = _plan(tmp_path)
    assert code == 2
    assert plan["solver"]["status"] == "feasible" and plan["solver"]["gap"] == pytest.approx(0.1)
    assert plan["verification"]["passed"]
    assert "not proven optimal" in " ".join(capsys.readouterr().err.split())


def test_list_and_catalog_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    assert "voice_agent" in capsys.readouterr().out
    assert main(["catalog"]) == 0
    out = capsys.readouterr().out
    assert "Gaudi3" in out and "EPYC-Genoa" in out
    assert main(["frobnicate"]) == 2
