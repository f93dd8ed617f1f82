"""Hydra's conventions for single runs, and run directories that are never lost or mixed.

Everything goes through the real CLI (``hetopt.cli.main.main``) or a subprocess of it.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hetopt.cli.main import main

FAST = ["workload=worked_example"]  # a two-operator plan: a fraction of a second


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return " ".join(captured.err.split())


def _tree(path: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


# ----------------------------------------------------------------- hydra.run.dir and .hydra/


def test_plan_honours_hydra_run_dir_and_records_hydra_files(tmp_path: Path) -> None:
    run = tmp_path / "my" / "run"
    assert main(["plan", *FAST, "sla.e2e_s=0.13", f"hydra.run.dir={run}"]) == 0
    plan = json.loads((run / "plan.json").read_text())
    assert plan["workload"] == "worked_example"
    assert {"placement.csv", "devices.csv", "cost_table.csv", "config.yaml", "plan.png"} <= {
        p.name for p in run.iterdir()
    }
    record = run / ".hydra"
    assert yaml.safe_load((record / "overrides.yaml").read_text()) == [
        "workload=worked_example",
        "sla.e2e_s=0.13",
    ]
    job = yaml.safe_load((record / "config.yaml").read_text())
    assert job["sla"]["e2e_s"] == 0.13 and job["workload"]["name"] == "worked_example"
    hydra = yaml.safe_load((record / "hydra.yaml").read_text())["hydra"]
    assert hydra["job"]["name"] == "plan"
    assert hydra["runtime"]["output_dir"] == str(run.resolve())
    assert f"hydra.run.dir={run}" in hydra["overrides"]["hydra"]
    assert "problem worked_example" in (run / "plan.log").read_text()
    assert _siblings(run) == ["run"]  # no staging directory left behind


def test_run_dir_is_an_alias_and_the_default_is_per_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["plan", *FAST, "run_dir=alias"]) == 0
    assert (tmp_path / "alias" / ".hydra" / "hydra.yaml").is_file()
    assert main(["reproduce", "fig4"]) == 0
    (stamp,) = (tmp_path / "outputs" / "reproduce").iterdir()
    assert dt.datetime.strptime(stamp.name, "%Y-%m-%d_%H-%M-%S")
    assert (stamp / "fig4" / "fig4.csv").is_file() and (stamp / "reproduce.log").is_file()


def test_replay_and_fleet_honour_hydra_run_dir(tmp_path: Path) -> None:
    replay = tmp_path / "replay"
    assert (
        main(
            [
                "replay",
                *FAST,
                "replay.duration_s=30",
                "replay.warmup_s=5",
                f"hydra.run.dir={replay}",
            ]
        )
        == 0
    )
    assert (replay / "replay.json").is_file() and (replay / "plan.json").is_file()
    assert (replay / ".hydra" / "config.yaml").is_file() and (replay / "replay.log").is_file()
    fleet_file = tmp_path / "my_fleet.yaml"
    fleet_file.write_text(
        "name: mine\nmethod: decomposition\ntenants:\n"
        "  - {name: a, workload: voice_agent, request_rate_per_s: 1.0}\n"
    )
    fleet = tmp_path / "fleet"
    # The README's example: a fleet.* key with fleet_file crashed with an AssertionError.
    assert (
        main(
            [
                "fleet",
                f"fleet_file={fleet_file}",
                "solver=cpsat",
                "fleet.method=monolithic",
                f"hydra.run.dir={fleet}",
            ]
        )
        == 0
    )
    saved = yaml.safe_load((fleet / "config.yaml").read_text())["fleet"]
    assert saved["method"] == "monolithic"  # the command line wins over the file
    assert saved["name"] == "mine" and saved["tenants"][0]["name"] == "a"
    assert json.loads((fleet / "fleet_plan.json").read_text())
    assert (fleet / "fleet.log").is_file()


def test_workload_keys_apply_on_top_of_a_workload_file(tmp_path: Path) -> None:
    from hetopt.workloads import config_dir

    wl = tmp_path / "mine.yaml"
    wl.write_text((config_dir() / "workload" / "worked_example.yaml").read_text())
    run = tmp_path / "run"
    assert (
        main(
            ["plan", f"workload_file={wl}", "workload.request_rate_per_s=7", f"hydra.run.dir={run}"]
        )
        == 0
    )
    assert json.loads((run / "plan.json").read_text())["request_rate_per_s"] == 7
    # At 105 ms only option A (both on HP, $0.11) meets the SLA; `baselines` is a key the file
    # has and the default workload (voice_agent) lacks.
    run2 = tmp_path / "run2"
    assert (
        main(
            [
                "plan",
                f"workload_file={wl}",
                "workload.sla.e2e_s=0.105",
                "workload.baselines=[CO]",
                f"hydra.run.dir={run2}",
            ]
        )
        == 0
    )
    plan = json.loads((run2 / "plan.json").read_text())
    assert plan["cost_usd_per_request"] == pytest.approx(0.11)
    assert [b["device"] for b in plan["baselines"]] == ["CO"]


# ----------------------------------------------------------------- --config-dir, --cfg, --help


def _user_configs(tmp_path: Path) -> Path:
    from hetopt.workloads import config_dir

    user = tmp_path / "my_configs"
    (user / "workload").mkdir(parents=True)
    text = (config_dir() / "workload" / "worked_example.yaml").read_text()
    (user / "workload" / "my_agent.yaml").write_text(
        text.replace("name: worked_example", "name: my_agent")
    )
    voice = (config_dir() / "workload" / "voice_agent.yaml").read_text()
    (user / "workload" / "my_voice.yaml").write_text(
        voice.replace("name: voice_agent", "name: my_voice")
    )
    (user / "sla").mkdir()
    (user / "sla" / "snappy.yaml").write_text("e2e_s: 0.125\n")
    (user / "fleet").mkdir()
    (user / "fleet" / "mine.yaml").write_text(
        "name: mine\ntenants:\n  - {name: t, workload: my_voice, request_rate_per_s: 1.0}\n"
    )
    return user


def test_config_dir_adds_user_groups(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    user = _user_configs(tmp_path)
    run = tmp_path / "run"
    assert (
        main(
            [
                "plan",
                "--config-dir",
                str(user),
                "workload=my_agent",
                "sla=snappy",
                f"hydra.run.dir={run}",
            ]
        )
        == 0
    )
    plan = json.loads((run / "plan.json").read_text())
    assert plan["workload"] == "my_agent" and plan["sla"]["e2e_sla_s"] == 0.125
    capsys.readouterr()
    assert main(["list", "-cd", str(user)]) == 0
    out = capsys.readouterr().out
    assert "my_agent" in out and "voice_agent" in out and "snappy" in out
    # Without the directory the option is unknown, and the message says which exist.
    assert main(["plan", "workload=my_agent", f"hydra.run.dir={tmp_path / 'r2'}"]) == 2
    assert "my_agent" in _err(capsys)
    assert main(["plan", "-cd", str(tmp_path / "nope"), *FAST]) == 2
    assert "--config-dir" in _err(capsys)
    # A user's fleet group whose tenant runs a user's workload.
    fleet = tmp_path / "fleet"
    assert main(["fleet", f"--config-dir={user}", "fleet=mine", f"hydra.run.dir={fleet}"]) == 0
    tenants = yaml.safe_load((fleet / "config.yaml").read_text())["fleet"]["tenants"]
    assert tenants[0]["workload"]["name"] == "my_voice"


def test_cfg_job_prints_the_composed_config_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["plan", "--cfg", "job", "sla.e2e_s=3.5", "solver=cpsat"]) == 0
    job = yaml.safe_load(capsys.readouterr().out)
    assert job["sla"]["e2e_s"] == 3.5 and job["solver"]["backend"] == "cpsat"
    assert "hydra" not in job
    assert main(["fleet", "--cfg", "hydra", "hydra.run.dir=somewhere"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["hydra"]["run"]["dir"] == "somewhere"
    assert main(["plan", "--cfg", "all"]) == 0
    both = yaml.safe_load(capsys.readouterr().out)
    assert "hydra" in both and "workload" in both
    assert not (tmp_path / "outputs").exists()


def test_calibrate_keeps_its_bare_keys_as_aliases(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "calibrate",
                "--cfg",
                "all",
                "devices=H100,B200",
                "out=cal",
                "ship=true",
                "holdout_seq_tokens=2048",
            ]
        )
        == 0
    )
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["calibrate"]["devices"] == ["H100", "B200"] and cfg["calibrate"]["ship"] is True
    assert cfg["calibrate"]["holdout_seq_tokens"] == [2048]
    assert cfg["hydra"]["run"]["dir"] == "cal"
    assert main(["calibrate", "bogus=1"]) == 2
    assert "bogus" in _err(capsys)


@pytest.mark.parametrize(
    "command, needles",
    [
        ("plan", ["workload: ", "solver: ", "sla:", "hydra.run.dir"]),
        ("fleet", ["fleet: enterprise, synthetic", "fleet_file", "method"]),
        ("replay", ["replay:", "plan_dir", "arrivals"]),
        ("compile", ["mlir:", "targets"]),
        ("catalog", ["hardware:", "tco: cloud, paper"]),
        ("reproduce", ["fig4", "costs.model", "--out"]),
        ("calibrate", ["calibrate:", "measurements"]),
    ],
)
def test_help_lists_the_commands_keys_and_groups(
    command: str, needles: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: hetopt {command}")
    for needle in needles:
        assert needle in out, (command, needle)


# ----------------------------------------------------------------- no override silently ignored


@pytest.mark.parametrize(
    "args, needle",
    [
        (["catalog", "solver.time_limit_s=3"], "solver.time_limit_s"),
        (["catalog", "hydra.run.dir=x"], "hydra.run.dir=x"),
        (["plan", "fleet=enterprise"], "hetopt fleet"),
        (["plan", "replay.duration_s=5"], "hetopt replay"),
        (["plan", "mlir.execute=false"], "hetopt compile"),
        (["plan", "whatif=electricity"], "hetopt sweep"),
        (["plan", "hydra.sweep.dir=x"], "hetopt sweep"),
        (["fleet", "workload=rag_agent"], "workload"),
        (["fleet", "baselines=[B200]"], "baselines"),
        (["reproduce", "fig4", "sla.e2e_s=3"], "sla.e2e_s"),
        (["calibrate", "solver=cpsat"], "solver"),
        (["list", "sla.e2e_s=3"], "sla.e2e_s"),
        (["replay", "replay.plan_dir=somewhere", "sla.e2e_s=3"], "saved run's config.yaml"),
        (["compile", "mlir.plan_dir=somewhere", "workload=rag_agent"], "saved run's config.yaml"),
        (["plan", "stray"], "stray"),
        (["plan", "hydra.job.chdir=true"], "hydra.job.chdir"),
        (["plan", "hydra/launcher=joblib"], "hetopt sweep"),
    ],
)
def test_an_override_the_command_does_not_read_is_refused(
    args: list[str],
    needle: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = _err(capsys)
    assert needle in err, err
    assert not any(tmp_path.iterdir())  # refused before anything ran or was written


# ----------------------------------------------------------------- compile and reproduce


def test_compile_example_needs_no_plus_and_names_an_unused_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hetopt.cli.compile_cmd import check_targets, compile_options_from
    from hetopt.cli.compose import compose_config
    from hetopt.hardware import load_catalog

    options = compile_options_from(compose_config(["mlir.targets.H100=cuda:sm_80"]))
    assert dict(options.targets) == {"H100": "cuda:sm_80"}
    catalog = load_catalog()
    assert check_targets(options.targets, catalog, {"L4", "B200"}) == ["H100"]
    assert check_targets(options.targets, catalog, {"H100"}) == []
    assert main(["compile", "mlir.targets.H1OO=cuda:sm_80", f"hydra.run.dir={tmp_path / 'c'}"]) == 2
    err = _err(capsys)
    assert "mlir.targets.H1OO" in err and "Did you mean 'H100'" in err
    assert not (tmp_path / "c").exists()


@pytest.mark.slow
def test_compile_example_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's `hetopt compile mlir.targets.H100=cuda:sm_80`: the default plan places
    nothing on an H100, and the command says so."""
    run = tmp_path / "c"
    assert (
        main(
            [
                "compile",
                "mlir.targets.H100=cuda:sm_80",
                "mlir.execute=false",
                f"hydra.run.dir={run}",
            ]
        )
        == 0
    )
    out = " ".join(capsys.readouterr().out.split())
    assert "mlir.targets.H100=cuda:sm_80 was not used" in out
    assert (run / "verification.json").is_file() and (run / "compile.log").is_file()


def test_reproduce_takes_overrides_and_refuses_a_file_as_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fig4-run"
    assert main(["reproduce", "fig4", f"hydra.run.dir={out}", "costs.model=roofline"]) == 0
    assert (out / "fig4" / "fig4.png").stat().st_size > 0
    assert (
        yaml.safe_load((out / ".hydra" / "config.yaml").read_text())["costs"]["model"] == "roofline"
    )
    taken = tmp_path / "a_file.txt"
    taken.write_text("mine")
    assert main(["reproduce", "fig4", "--out", str(taken)]) == 2
    err = _err(capsys)
    assert str(taken) in err and "is a file" in err
    assert taken.read_text() == "mine"
    assert main(["reproduce", "fig4", "costs.model=exact"]) == 2
    assert "costs.model" in _err(capsys)


# ----------------------------------------------------------------- never lost or mixed


def test_same_second_runs_get_distinct_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hydra.core.utils as hydra_utils

    class Frozen(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return dt.datetime(2026, 1, 2, 3, 4, 5)

    monkeypatch.setattr(hydra_utils, "datetime", Frozen)
    monkeypatch.chdir(tmp_path)
    assert main(["plan", *FAST, "sla.e2e_s=0.13"]) == 0
    assert main(["plan", *FAST, "sla.e2e_s=0.2"]) == 0
    root = tmp_path / "outputs" / "plan"
    assert sorted(p.name for p in root.iterdir()) == [
        "2026-01-02_03-04-05",
        "2026-01-02_03-04-05-1",
    ]
    first = yaml.safe_load((root / "2026-01-02_03-04-05" / "config.yaml").read_text())
    second = yaml.safe_load((root / "2026-01-02_03-04-05-1" / "config.yaml").read_text())
    assert (first["sla"]["e2e_s"], second["sla"]["e2e_s"]) == (0.13, 0.2)


def test_a_finished_run_is_refused_unless_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main(["plan", *FAST, "sla.e2e_s=0.13", f"hydra.run.dir={run}"]) == 0
    before = _tree(run)
    capsys.readouterr()
    assert main(["plan", *FAST, "sla.e2e_s=0.2", f"hydra.run.dir={run}"]) == 2
    err = _err(capsys)
    assert str(run) in err and "overwrite=true" in err
    assert _tree(run) == before
    # A failing run asked to overwrite never touches the earlier run's files.
    assert main(["plan", *FAST, "sla.e2e_s=0.001", f"hydra.run.dir={run}", "overwrite=true"]) == 2
    assert "tightest SLA" in _err(capsys)
    assert _tree(run) == before
    assert _siblings(run) == ["run"]
    # overwrite=true replaces the run as a whole once the new one has its results.
    assert main(["plan", *FAST, "sla.e2e_s=0.2", f"hydra.run.dir={run}", "overwrite=true"]) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["sla"]["e2e_s"] == 0.2
    assert "sla.e2e_s=0.2" in (run / ".hydra" / "overrides.yaml").read_text()
    assert _siblings(run) == ["run"]
    # A directory of other files is never replaced, overwrite or not.
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(["plan", *FAST, f"hydra.run.dir={other}", "overwrite=true"]) == 2
    assert "not a hetopt run" in _err(capsys)
    assert (other / "notes.txt").read_text() == "mine"


def test_a_failing_run_leaves_no_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["plan", *FAST, "sla.e2e_s=0.001"]) == 2
    assert main(["plan", *FAST, "sla.e2e_s=0.001", "hydra.run.dir=explicit"]) == 2
    assert sorted(p.name for p in tmp_path.rglob("*")) in ([], ["outputs", "plan"])
    assert not list(tmp_path.rglob("*.json"))


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_full_or_read_only_disk_exits_2_without_partial_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    import hetopt.atomic as atomic

    real = os.replace

    def failing(src: str, dst: str | Path) -> None:
        if Path(dst).name == "cost_table.csv":
            raise OSError(code, os.strerror(code))
        real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", failing)
    run = tmp_path / "run"
    assert main(["plan", *FAST, f"hydra.run.dir={run}"]) == 2
    err = _err(capsys)
    assert "cost_table.csv" in err
    assert ("disk is full" if code == errno.ENOSPC else "not writable") in err
    names = {p.name for p in run.rglob("*")}
    assert "cost_table.csv" not in names and not any(n.endswith(".tmp") for n in names)
    json.loads((run / "plan.json").read_text())  # what was written is whole
    assert _siblings(run) == ["run"]


def test_an_unwritable_run_dir_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["plan", *FAST, f"hydra.run.dir={blocker}/run"]) == 2
    assert str(blocker) in _err(capsys)
    assert main(["fleet", f"hydra.run.dir={blocker}/run"]) == 2
    assert str(blocker) in _err(capsys)
    assert blocker.read_text() == "x"


def test_files_respect_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        run = tmp_path / "run"
        assert main(["plan", *FAST, f"hydra.run.dir={run}"]) == 0
    finally:
        os.umask(old)
    for p in [run, *run.rglob("*")]:
        mode = p.stat().st_mode & 0o777
        assert mode == (0o750 if p.is_dir() else 0o640), (p, oct(mode))


def test_two_plans_into_one_run_dir_never_mix(tmp_path: Path) -> None:
    """Two concurrent plans into one hydra.run.dir: one run lands there whole, the other is
    refused or published beside it, and every directory's files belong to one run."""
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from hetopt.cli.main import main; sys.exit(main(sys.argv[1:]))",
                "plan",
                "workload=rag_agent",
                f"sla.e2e_s={sla}",
                f"hydra.run.dir={run}",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for sla in (15, 20)
    ]
    results = [(p.wait(timeout=600), p.stderr.read() if p.stderr else "") for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results
    assert all("Traceback" not in err for _, err in results)
    landed = [d for d in tmp_path.iterdir() if d.name.startswith("run")]
    assert not [d for d in tmp_path.iterdir() if d.name.startswith(".")]
    for d in landed:
        e2e = yaml.safe_load((d / "config.yaml").read_text())["sla"]["e2e_s"]
        assert f"sla.e2e_s={e2e:g}" in (d / ".hydra" / "overrides.yaml").read_text()
        assert json.loads((d / "plan.json").read_text())["sla"]["e2e_sla_s"] == e2e
        assert (d / "cost_table.csv").read_text().count("\n") > 10


def test_ctrl_c_is_a_message_and_status_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C while planning: exit 130, a message, no traceback, no run directory left."""
    import hetopt.pipeline

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(hetopt.pipeline, "plan_agent", interrupted)
    monkeypatch.chdir(tmp_path)
    assert main(["plan", *FAST]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err
    plans = tmp_path / "outputs" / "plan"
    assert not plans.exists() or not any(plans.iterdir())


def test_config_dir_with_a_space_and_a_comma_in_its_path(tmp_path: Path) -> None:
    """The search-path override is quoted: Hydra's grammar would split an unquoted comma."""
    user = _user_configs(tmp_path / "my configs, v2")
    run = tmp_path / "run"
    assert main(["plan", "-cd", str(user), "workload=my_agent", f"hydra.run.dir={run}"]) == 0
    assert json.loads((run / "plan.json").read_text())["workload"] == "my_agent"


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["fleet", "fleet.synthetic.n_ops=10"], ("fleet.synthetic.n_ops=10", "null")),
        (["plan", "workload=worked_example", "hardware.devices.x=1"], ("hardware.devices.x=1",)),
        (["plan", "workload=rag_agent", "workload_file=x.yaml"], ("workload_file=",)),
        (["fleet", "fleet=enterprise", "fleet_file=x.yaml"], ("fleet_file=",)),
        (["plan", "run_dir=a", "hydra.run.dir=b"], ("run_dir=",)),
    ],
)
def test_overrides_that_cannot_apply_exit_2(
    args: list[str],
    needles: tuple[str, ...],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A key under a null node (OmegaConf asserted: a traceback) and two ways of saying one
    thing, one of which would be ignored, are refused, naming the keys; nothing is written."""
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert all(n in err for n in needles) and "Traceback" not in err
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("*.json"))


def test_run_dir_may_interpolate_config_keys(tmp_path: Path) -> None:
    """hydra.run.dir=runs/${sla.ttft_s}: a Hydra pattern; it resolves against the job config."""
    assert main(["plan", *FAST, f"hydra.run.dir={tmp_path}/runs/" + "${sla.ttft_s}"]) == 0
    assert (tmp_path / "runs" / "0.25" / "plan.json").is_file()


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("broken", b"name: bad\nnodes: [\n", "line 3"),
        ("binary", b"\x1f\x8b\x08\x00" + bytes(64), "gzip"),
        (
            "bomb",
            (
                "a: &a [x, x, x, x, x, x, x, x, x]\n"
                + "".join(
                    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n"
                    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
                )
            ).encode(),
            "alias",
        ),
    ],
)
def test_config_dir_files_are_read_safely(
    name: str, content: bytes, needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken, binary or alias-bomb group file in --config-dir: exit 2 naming the file (it
    was a yaml traceback, or ran until killed)."""
    user = tmp_path / "cfg"
    (user / "workload").mkdir(parents=True)
    (user / "workload" / f"{name}.yaml").write_bytes(content)
    assert main(["plan", "-cd", str(user), "workload=worked_example"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"{name}.yaml" in err and needle.lower() in err.lower() and "Traceback" not in err
