"""``hetopt sweep`` with Hydra's flags: ``--config-dir/-cd``, ``--cfg job|hydra|all``, ``--help``.

Real CLI, small grids on the worked example (each test well under 30 s on two cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from hetopt.cli.main import main
from hetopt.sweeps import POINTS
from hetopt.workloads import config_dir


@pytest.fixture()
def user_configs(tmp_path: Path) -> Path:
    """``myc/workload/mine.yaml``: the worked example under a name of its own, slower by half."""
    text = (config_dir() / "workload" / "worked_example.yaml").read_text()
    lines = [("name: mine" if line.startswith("name:") else line) for line in text.splitlines()]
    assert "name: mine" in lines  # the shipped file has a top-level name to replace
    folder = tmp_path / "myc" / "workload"
    folder.mkdir(parents=True)
    (folder / "mine.yaml").write_text("\n".join(lines) + "\n")
    return tmp_path / "myc"


def _two_points(sweep_dir: str | Path, *first: str) -> int:
    """``hetopt sweep *first workload=worked_example sla.e2e_s=0.13,0.2`` into ``sweep_dir``."""
    return main(
        [
            "sweep",
            *first,
            "workload=worked_example",
            "sla.e2e_s=0.13,0.2",
            f"hydra.sweep.dir={sweep_dir}",
        ]
    )


def _records(sweep: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((sweep / POINTS).glob("*.json"))]


def test_config_dir_user_workload_sweeps_and_resumes(
    user_configs: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    # An absolute sweep directory: joblib's worker processes outlive this test's chdir.
    cmd = [
        "sweep",
        "-cd",
        "myc",
        "workload=mine,worked_example",
        "sla.e2e_s=0.2",
        f"hydra.sweep.dir={tmp_path / 'sw'}",
    ]
    assert main(cmd) == 0
    table = pd.read_csv(tmp_path / "sw" / "results.csv")
    assert sorted(table["workload"]) == ["mine", "worked_example"]
    assert (table["status"] == "ok").all() and table["verified"].all()
    # The user's workload was planned from the user's file (the name inside it is "mine").
    by_name = {r["config"]["workload"]["name"]: r for r in _records(tmp_path / "sw")}
    assert set(by_name) == {"mine", "worked_example"}
    # The sweep records the command that resumes it, -cd included.
    manifest = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert manifest["command"][:4] == ["hetopt", "sweep", "-cd", "myc"]
    assert manifest["config_dirs"] == [str(user_configs.resolve())]
    capsys.readouterr()

    # The same command again resumes: with the user's point lost (as if its worker died
    # before recording it), only that point is planned again, from the user's file.
    points = tmp_path / "sw" / POINTS
    (points / f"{by_name['mine']['key']}.json").unlink()
    kept = (points / f"{by_name['worked_example']['key']}.json").stat().st_mtime_ns
    assert main(cmd) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "(resuming: 1 already finished)" in out and "2 points" in out and "2 ok" in out
    assert (points / f"{by_name['worked_example']['key']}.json").stat().st_mtime_ns == kept
    again = json.loads((points / f"{by_name['mine']['key']}.json").read_text())
    assert again["status"] == "ok" and again["config"]["workload"]["name"] == "mine"
    assert again["driver"] != by_name["mine"]["driver"]  # planned by the second driver
    assert (pd.read_csv(tmp_path / "sw" / "results.csv")["status"] == "ok").all()


def test_config_dir_reaches_the_validation_and_the_resume_hint(
    user_configs: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    # Without -cd the user's workload is unknown: exit 2 before anything runs.
    assert main(["sweep", "workload=mine", "sla.e2e_s=0.13,0.2", "hydra.sweep.dir=a"]) == 2
    err = capsys.readouterr().err
    assert "workload/mine" in err and "Traceback" not in err
    assert not (tmp_path / "a").exists()
    # With -cd, a bad swept value of the user's workload is refused by name, nothing run.
    assert (
        main(
            [
                "sweep",
                "-cd",
                "myc",
                "workload=mine",
                "workload.request_rate_per_s=1,-5",
                "hydra.sweep.dir=b",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "workload.request_rate_per_s=-5" in err and "nothing was run" in err
    assert not (tmp_path / "b").exists()
    # A sweep directory of a grid composed with -cd refuses the same grid without it.
    assert _two_points(tmp_path / "c", "-cd", "myc") == 0
    before = sorted(p.name for p in (tmp_path / "c" / POINTS).glob("*.json"))
    capsys.readouterr()
    assert _two_points(tmp_path / "c") == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--config-dir" in err and "hetopt sweep -cd myc workload=worked_example" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "c" / POINTS).glob("*.json")) == before


def test_cfg_job_prints_the_fixed_config_and_the_axes_and_writes_nothing(
    user_configs: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert (
        main(
            [
                "sweep",
                "--cfg",
                "job",
                "-cd",
                "myc",
                "workload=mine",
                "sla.e2e_s=12,13",
                "solver=highs,cpsat",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "\n  name: mine\n" in out  # the fixed workload, composed from the user's file
    assert "# swept (4 points, every combination):" in out
    assert "#   sla.e2e_s: [12, 13]" in out and "#   solver: [highs, cpsat]" in out
    assert "hydra:" not in out  # job only
    assert sorted(os.listdir(tmp_path)) == ["myc"]  # no outputs/, nothing written
    # --cfg hydra shows Hydra's config; a study's grid is listed as axes.
    assert main(["plan", "-m", "--cfg", "hydra", "whatif=electricity", "tco.pue=1.1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("hydra:") and "#   tco.usd_per_kwh: [0.05, 0.1," in out
    assert "#   tco.pue: fixed on the command line" in out
    assert sorted(os.listdir(tmp_path)) == ["myc"]


@pytest.mark.parametrize(
    "args, named",
    [
        (["sla.e2x=12,13"], "sla.e2x"),  # a swept key that does not exist
        (["sla.e2e_s=12,abc"], "sla.e2e_s=abc"),  # a swept value of the wrong type
        (["workload=nope", "sla.e2e_s=12,13"], "workload/nope"),  # a bad fixed group option
        (["--cfg", "yaml", "sla.e2e_s=12,13"], "--cfg"),  # not job, hydra or all
        (["sla.e2e_s=12,13", "--out", "x"], "hydra.sweep.dir"),  # a single run's directory
        (["sla.e2e_s=12,13", "run_dir=x"], "'run_dir=x'"),
    ],
)
def test_cfg_with_a_bad_override_exits_2(
    args: list[str],
    named: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    cmd = ["sweep", *args] if "--cfg" in args else ["sweep", "--cfg", "job", *args]
    assert main(cmd) == 2
    captured = capsys.readouterr()
    assert named in " ".join(captured.err.split()) and "Traceback" not in captured.err
    assert captured.out.strip() == ""
    assert os.listdir(tmp_path) == []


def test_sweep_help_describes_the_sweep(user_configs: Path, tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "hetopt.cli.main", "sweep", "--help", "-cd", str(user_configs)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert out.startswith("usage: hetopt sweep")
    for text in (
        "hydra.sweep.dir",
        "whatif:",
        "--config-dir",
        "--cfg job",
        "sla:",
        "  sweep:\n    figures:",
        "resume",
    ):
        assert text in out, text
    workloads = next(line for line in out.splitlines() if line.startswith("  workload:"))
    assert "mine" in workloads and "worked_example" in workloads
    assert os.listdir(tmp_path) == ["myc"]


@pytest.mark.slow
def test_config_dir_reaches_ray_workers(user_configs: Path, tmp_path: Path) -> None:
    """Ray tasks compose the user's workload too (the search path travels in Hydra's config)."""
    pytest.importorskip(
        "hydra_plugins.hydra_ray_launcher", reason="needs pip install 'hetopt[dist]'"
    )
    from test_ray_sweep import _cluster, ray_sweep

    cluster = _cluster(os.environ)
    address = next(cluster)
    try:
        sweep = tmp_path / "sweep"
        run = ray_sweep(
            address, tmp_path, sweep, "-cd", "myc", "workload=mine,worked_example", "sla.e2e_s=0.2"
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    finally:
        next(cluster, None)  # stops the cluster
    records = _records(sweep)
    assert sorted(r["config"]["workload"]["name"] for r in records) == ["mine", "worked_example"]
    assert all(r["status"] == "ok" and r["pid"] != os.getpid() for r in records)


def test_a_sweep_leaves_logging_as_it_found_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hydra's logging configs disable existing loggers; a later run in-process still logs."""
    monkeypatch.chdir(tmp_path)
    assert _two_points(tmp_path / "sw") == 0
    assert (
        main(
            [
                "plan",
                "workload=worked_example",
                "sla.e2e_s=0.2",
                f"hydra.run.dir={tmp_path / 'run'}",
            ]
        )
        == 0
    )
    assert "problem worked_example" in (tmp_path / "run" / "plan.log").read_text()


def test_interpolated_sweep_dir_is_resolved_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hydra.sweep.dir=sw/${now:...}: the driver and its workers write one directory (the
    workers used to re-resolve it, and the driver's results.csv said every point was missing);
    an interpolation that cannot resolve is exit 2 before anything is written."""
    monkeypatch.chdir(tmp_path)
    assert _two_points("sw/${now:%Y}-x") == 0
    (sweep,) = (tmp_path / "sw").iterdir()
    assert sweep.name.endswith("-x") and "$" not in sweep.name
    results = pd.read_csv(sweep / "results.csv")
    assert list(results["status"]) == ["ok", "ok"]
    assert _two_points("bad/${nope}") == 2
    assert not (tmp_path / "bad").exists()


def test_sweep_refuses_a_directory_of_other_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory holding something that is not a sweep (a plan run, notes) is left alone."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "notes.txt").write_text("mine")
    assert _two_points("notes") == 2
    assert [p.name for p in (tmp_path / "notes").iterdir()] == ["notes.txt"]
