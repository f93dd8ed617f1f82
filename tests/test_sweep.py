"""``hetopt sweep``: every point planned and recorded, resumable, failures kept, bad input exits 2."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from hetopt.cli.config import request_from_config
from hetopt.cli.main import compose_config, main
from hetopt.pipeline import plan_agent
from hetopt.sweeps import (
    POINTS,
    aggregate,
    is_complete,
    point_key,
    read_point,
    write_json_atomic,
    write_manifest,
)

RAG = Path(__file__).resolve().parents[1] / "configs" / "workload" / "rag_agent.yaml"


def _records(sweep: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (sweep / POINTS).glob("*.json")}


def test_sweep_plans_every_point_like_a_single_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "sweep"
    assert main(["sweep", "sla.e2e_s=1,14", "solver=highs,cpsat", f"hydra.sweep.dir={sweep}"]) == 0
    table = pd.read_csv(sweep / "results.csv")
    assert len(table) == 4 and {"sla.e2e_s", "solver"} <= set(table.columns)
    ok = table[table["status"] == "ok"]
    assert len(ok) == 2 and ok["verified"].all() and ok["proven_optimal"].all()
    assert ok["tco_usd_per_h"].nunique() == 1  # HiGHS and CP-SAT agree
    # The sweep's number is the single plan's number.
    direct = plan_agent(request_from_config(compose_config(["sla.e2e_s=14"])))
    assert ok["tco_usd_per_h"].iloc[0] == pytest.approx(direct.plan.tco_usd_per_hour, rel=1e-9)
    infeasible = table[table["status"] == "infeasible"]  # a result, not a failure
    assert len(infeasible) == 2 and infeasible["error"].str.contains("tightest SLA").all()
    # Each record carries its resolved config; the job directory its plan.
    rec = next(r for r in _records(sweep).values() if r["status"] == "ok")
    assert rec["config"]["sla"]["e2e_s"] == 14.0 and rec["config"]["solver"]["threads"] >= 1
    assert (Path(rec["job_dir"]) / "plan.json").exists()
    assert set(table["key"]) == set(json.loads((sweep / "sweep.json").read_text())["keys"])


def test_rerun_resumes_and_retries_failed_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "sweep"
    assert main(["sweep", "tco.usd_per_kwh=0.2,0.4,0.8", f"hydra.sweep.dir={sweep}"]) == 0
    before = _records(sweep)
    # Fake a crashed point: the re-run must plan it again and keep the finished one.
    crashed_key = point_key(["tco.usd_per_kwh=0.4"])
    crashed = dict(before[crashed_key], status="crashed", error="RuntimeError: boom", metrics=None)
    write_json_atomic(sweep / POINTS / f"{crashed_key}.json", crashed)
    # A record that lacks its status counts as missing: the point is planned again.
    no_status = point_key(["tco.usd_per_kwh=0.8"])
    write_json_atomic(sweep / POINTS / f"{no_status}.json", {"overrides": ["tco.usd_per_kwh=0.8"]})
    assert main(["sweep", "tco.usd_per_kwh=0.2,0.4,0.8", f"hydra.sweep.dir={sweep}"]) == 0
    after = _records(sweep)
    kept = point_key(["tco.usd_per_kwh=0.2"])
    assert after[kept]["started"] == before[kept]["started"]  # not re-planned
    assert after[kept]["attempt"] == 1
    assert after[crashed_key]["status"] == "ok" and after[crashed_key]["attempt"] == 2
    assert after[no_status]["status"] == "ok" and after[no_status]["attempt"] == 1
    table = pd.read_csv(sweep / "results.csv")
    assert is_complete(table) and len(table) == 3
    assert table.sort_values("tco.usd_per_kwh")["tco_usd_per_h"].is_monotonic_increasing
    # Two drivers wrote chunk files; neither overwrote the other's.
    drivers = {p.stem.rsplit("-", 1)[0] for p in (sweep / "chunks").glob("*.json")}
    assert len(drivers) == 2


def test_a_crashing_point_is_recorded_and_the_rest_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hetopt.pipeline as pipeline
    from hetopt.cli import sweep_worker as sweep_mod

    real = pipeline.plan_agent

    def flaky(request, *args, **kwargs):
        if request.tco.usd_per_kwh > 0.5:
            raise ZeroDivisionError("a bug in one point")
        return real(request, *args, **kwargs)

    monkeypatch.setattr(pipeline, "plan_agent", flaky)
    sweep = tmp_path / "s"
    points = [["tco.usd_per_kwh=0.3"], ["tco.usd_per_kwh=0.9"], ["tco.usd_per_kwh=0.4"]]
    write_manifest(sweep, points, ["tco.usd_per_kwh"])
    for i, ovr in enumerate(points[:2]):
        cfg = compose_config(ovr)
        sweep_mod.run_point(cfg, ovr, sweep, tmp_path / str(i))
    table = aggregate(sweep)
    by = table.set_index("tco.usd_per_kwh")["status"].to_dict()
    assert by == {0.3: "ok", 0.9: "crashed", 0.4: "missing"}
    rec = read_point(sweep, point_key(points[1]))
    assert rec is not None and "ZeroDivisionError" in rec["traceback"]
    assert not is_complete(table)
    # The aggregate command says so and exits non-zero; results.csv marks each point.
    assert main(["aggregate", str(sweep)]) == 1
    assert set(pd.read_csv(sweep / "results.csv")["status"]) == {"ok", "crashed", "missing"}


@pytest.mark.parametrize(
    "args, names",
    [
        (["sla.e2e_s=range(5,5)"], "sla.e2e_s"),  # empty range
        (["sla.foo=1,2"], "sla.foo"),  # unknown key
        (["tco.pue=1.2,0.5"], "pue"),  # out of range
        (["solver.threads=1,two"], "solver.threads"),  # wrong type
        (["solver=highs,gurobbi"], "gurobbi"),  # unknown option
        (["workload=nope,voice_agent"], "workload"),
        (["workload.request_rate_per_s=2,-1"], "workload.request_rate_per_s=-1"),
        (["workload.request_rate_per_s=2,lots"], "workload.request_rate_per_s=lots"),
        (["workload_file=/no/such/agent.yaml"], "/no/such/agent.yaml"),
        ([f"workload_file={RAG}", "workload.request_rate_per_s=2,-1"], "request_rate_per_s=-1"),
        (["workload=worked_example", "workload.nodes.llm.input_tokens=1000,-5"], "input_tokens"),
        (["study.name=../x", "sla.e2e_s=12,13"], "study.name"),
    ],
)
def test_bad_sweeps_exit_2_before_anything_runs(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    names: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "sweep"
    assert main(["sweep", *args, f"hydra.sweep.dir={sweep}"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert names in err and "Traceback" not in err
    assert not (sweep / "sweep.json").exists()  # nothing launched, nothing half-written


def test_workload_overrides_apply_on_top_of_a_workload_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A swept ``workload.*`` value with ``workload_file`` plans at the swept value, as a
    single run composes it (the points used to re-read the file and plan at its own rate)."""
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "sweep"
    args = [f"workload_file={RAG}", "workload.request_rate_per_s=2,60", "baselines=[]"]
    assert main(["sweep", *args, f"hydra.sweep.dir={sweep}"]) == 0
    records = list(_records(sweep).values())
    rates = sorted(r["config"]["workload"]["request_rate_per_s"] for r in records)
    assert rates == [2.0, 60.0]  # the file says 10
    tco = {
        r["config"]["workload"]["request_rate_per_s"]: r["metrics"]["tco_usd_per_h"]
        for r in records
    }
    single = plan_agent(
        request_from_config(
            compose_config(
                [f"workload_file={RAG}", "workload.request_rate_per_s=60", "baselines=[]"]
            )
        )
    )
    assert tco[60.0] == pytest.approx(single.plan.tco_usd_per_hour, rel=1e-9)
    assert tco[60.0] > 4 * tco[2.0]  # 11.65 against 2.71 $/h when written


def test_write_json_atomic_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    from hetopt.errors import OutputError

    path = tmp_path / "p" / "a.json"
    write_json_atomic(path, {"x": 1.0, "y": float("nan")})
    assert json.loads(path.read_text()) == {"x": 1.0, "y": None}

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OutputError, match="disk is full"):
        write_json_atomic(path, {"x": 2.0})
    assert json.loads(path.read_text()) == {"x": 1.0, "y": None}  # the old record survives
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]  # no temporary file left


def test_chunked_points_match_single_plans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """16 points run as chunks (one composed config per chunk); each equals a single plan."""
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "sweep"
    assert (
        main(
            [
                "sweep",
                "tco.usd_per_kwh=0.1,0.3",
                "tco.pue=1.1,1.5",
                "+hardware.price_scale.B200=1.0,0.5",
                "solver=highs,cpsat",
                "hydra.sweeper.chunk_size=3",
                f"hydra.sweep.dir={sweep}",
            ]
        )
        == 0
    )
    assert len(list((sweep / "chunks").glob("*.json"))) >= 6  # 8 points per solver, 3 a chunk
    table = pd.read_csv(sweep / "results.csv")
    assert len(table) == 16 and (table["status"] == "ok").all()
    for (kwh, pue, b200), group in table.groupby(
        ["tco.usd_per_kwh", "tco.pue", "hardware.price_scale.B200"]
    ):
        direct = plan_agent(
            request_from_config(
                compose_config(
                    [
                        f"tco.usd_per_kwh={kwh}",
                        f"tco.pue={pue}",
                        f"+hardware.price_scale.B200={b200}",
                    ]
                )
            )
        )
        assert group["tco_usd_per_h"].to_numpy() == pytest.approx(
            [direct.plan.tco_usd_per_hour] * 2, rel=1e-9
        )
    recs = _records(sweep).values()
    assert {r["config"]["solver"]["backend"] for r in recs} == {"highs", "cpsat"}
    assert all(r["config"]["sweep"]["chunk"] is None for r in recs)


def _sweep_files(sweep: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(sweep)): p.read_bytes()
        for p in sorted(sweep.rglob("*"))
        if p.is_file() and p.parent.name in ("points", sweep.name)
    }


def test_a_different_grid_in_the_same_directory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "sweep"
    first = ["sweep", "workload=worked_example", "sla.e2e_s=0.12,0.2", f"hydra.sweep.dir={sweep}"]
    assert main(first) == 0
    files = _sweep_files(sweep)
    capsys.readouterr()
    assert (
        main(["sweep", "workload=worked_example", "sla.e2e_s=0.13,0.2", f"hydra.sweep.dir={sweep}"])
        == 2
    )
    err = " ".join(capsys.readouterr().err.split())
    assert "Traceback" not in err
    assert "sla.e2e_s=0.12,0.2 with workload=worked_example (2 points)" in err  # the grid there
    assert "sla.e2e_s=0.13,0.2 with workload=worked_example (2 points)" in err  # the one refused
    assert _sweep_files(sweep) == files  # nothing written, nothing mixed
    # The same grid (in another order) is the same sweep: it resumes, plans nothing.
    assert (
        main(["sweep", "sla.e2e_s=0.2,0.12", "workload=worked_example", f"hydra.sweep.dir={sweep}"])
        == 0
    )
    assert "resuming: 2 already finished" in " ".join(capsys.readouterr().out.split())
    assert {k: v for k, v in _sweep_files(sweep).items() if k.startswith("points")} == {
        k: v for k, v in files.items() if k.startswith("points")
    }


def test_a_second_driver_in_a_running_sweep_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import fcntl

    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    with open(sweep / ".lock", "w") as held:  # a driver is running in this directory
        held.write("4242\n")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX)
        assert (
            main(
                [
                    "sweep",
                    "workload=worked_example",
                    "sla.e2e_s=0.12,0.2",
                    f"hydra.sweep.dir={sweep}",
                ]
            )
            == 2
        )
    err = " ".join(capsys.readouterr().err.split())
    assert "Another `hetopt sweep` (pid 4242) is running in" in err and str(sweep) in err
    assert not (sweep / "points").exists()


def test_malformed_records_count_as_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "s"
    points = [["sla.e2e_s=1"], ["sla.e2e_s=2"], ["sla.e2e_s=3"], ["sla.e2e_s=4"]]
    write_manifest(sweep, points, ["sla.e2e_s"])
    keys = [point_key(p) for p in points]
    (sweep / POINTS).mkdir()
    (sweep / POINTS / f"{keys[0]}.json").write_text('{"key": "x", "overrides": ["sla.e2e_s=1"]}')
    (sweep / POINTS / f"{keys[1]}.json").write_text("\x00\x01 not json")
    (sweep / POINTS / f"{keys[2]}.json").write_text('["a list"]')
    write_json_atomic(
        sweep / POINTS / f"{keys[3]}.json",  # a record of another point
        {"status": "ok", "overrides": ["sla.e2e_s=9"], "metrics": {}},
    )
    assert main(["aggregate", str(sweep)]) == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err and "4 missing" in " ".join(out.out.split())
    assert (pd.read_csv(sweep / "results.csv")["status"] == "missing").all()
    # A garbage manifest is an error naming it, exit 2.
    (sweep / "sweep.json").write_text('{"points": 3}')
    assert main(["aggregate", str(sweep)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"{sweep / 'sweep.json'} is not a sweep manifest" in err


def test_study_axis_given_on_the_command_line_collapses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """whatif=electricity sweeps tco.usd_per_kwh x tco.pue; fixing the price keeps the PUE axis."""
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "sweep"
    assert (
        main(
            [
                "sweep",
                "whatif=electricity",
                "workload=worked_example",
                "tco.usd_per_kwh=0.1",
                f"hydra.sweep.dir={sweep}",
            ]
        )
        == 0
    )
    out = " ".join(capsys.readouterr().out.split())
    assert "tco.usd_per_kwh: fixed on the command line" in out
    table = pd.read_csv(sweep / "results.csv")
    assert len(table) == 3 and is_complete(table)  # the PUE axis only; no phantom points
    assert (table["tco.usd_per_kwh"] == 0.1).all()
    assert sorted(table["tco.pue"]) == [1.1, 1.4, 1.8]
    assert json.loads((sweep / "sweep.json").read_text())["study"]["name"] == "electricity"
    # `hetopt aggregate` redraws the study figure from what the sweep directory recorded.
    figure = sweep / "electricity.png"
    assert figure.exists()
    figure.unlink()
    assert main(["aggregate", str(sweep)]) == 0
    assert figure.exists() and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_study_name_must_be_a_plain_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "work").mkdir()
    for name in ("../x", "a/b", ".hidden", "x\\y"):
        assert (
            main(
                [
                    "sweep",
                    "whatif=electricity",
                    f"study.name={name}",
                    f"hydra.sweep.dir={tmp_path / 'work' / 'sweep'}",
                ]
            )
            == 2
        )
        err = " ".join(capsys.readouterr().err.split())
        assert "study.name=" in err and "not a plain name" in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["work"]  # nothing written anywhere


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664)])
def test_sweep_files_respect_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask: int, mode: int
) -> None:
    import os

    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "sweep"
    old = os.umask(umask)
    try:
        assert (
            main(
                [
                    "sweep",
                    "workload=worked_example",
                    "sla.e2e_s=0.12,0.2",
                    "hydra/launcher=basic",
                    f"hydra.sweep.dir={sweep}",
                ]
            )
            == 0
        )
    finally:
        os.umask(old)
    files = [
        sweep / "sweep.json",
        sweep / "results.csv",
        *(sweep / POINTS).glob("*.json"),
        *(sweep / "chunks").glob("*.json"),
    ]
    assert len(files) >= 5
    assert {f.name: oct(f.stat().st_mode & 0o777) for f in files} == {
        f.name: oct(mode) for f in files
    }
