"""Without kubernetes-validate, `hetopt export` exits 2 naming the extra, and `hetopt plan`
never needs it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hetopt.cli.main import main


def test_export_without_kubernetes_validate_exits_2_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    monkeypatch.setitem(sys.modules, "kubernetes_validate", None)  # import fails as if absent
    assert main(["plan", "workload=rag_agent", f"hydra.run.dir={run}"]) == 0
    assert main(["export", str(run)]) == 2
    err = capsys.readouterr().err
    assert "kubernetes-validate" in err and ".[deploy]" in err
    assert not (run / "deploy").exists()


def test_export_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export"]) == 2
    assert main(["export", str(tmp_path / "missing")]) == 2
    assert main(["export", str(tmp_path), "target=helm"]) == 2
    assert main(["export", str(tmp_path)]) == 2  # neither plan.json nor fleet_plan.json
    err = capsys.readouterr().err
    assert "Traceback" not in err and "target=k8s" in err and "plan.json" in err


def test_damaged_run_files_exit_2_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("workload: {}\nhardware: {}\n")
    (run / "plan.json").write_text('{"placement": [')
    assert main(["export", str(run)]) == 2
    err = capsys.readouterr().err
    assert "plan.json" in err and "not valid JSON" in err and "Traceback" not in err
    (run / "plan.json").write_text('{"placement": [], "devices": [], "llm_pools": []}')
    assert main(["export", str(run)]) == 2  # nothing to deploy
    assert "no device replicas" in capsys.readouterr().err.replace("\n", " ")
    fleet = tmp_path / "fleet"
    fleet.mkdir()
    (fleet / "fleet_plan.json").write_text("{}")
    (fleet / "config.yaml").write_text("fleet: {}\n")
    (fleet / "placement.csv").write_text("tenant,op\n")
    assert main(["export", str(fleet)]) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert "placement.csv" in err and "missing" in err
