"""``hetopt sweep`` under faults: a 40-point sweep interrupted every way a sweep dies.

Each test drives the real CLI in a subprocess (its own session, so that nothing it starts
outlives the test), interrupts it - SIGKILL of the driver, SIGKILL of one worker, SIGINT,
SIGTERM, a point that kills its own worker - then resumes it, and compares the resumed
``results.csv`` with the one an uninterrupted sweep wrote.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.sitehooks import write_sigkill_hook

pytestmark = pytest.mark.slow

# 40 points of the paper's worked example (about 0.1 s each); 0.100 s is infeasible.
GRID = ["workload=worked_example", "sla.e2e_s=range(0.10,0.30,0.005)"]
N_POINTS = 40
# Columns that time the run, or that the warm start (which depends on the order the points
# ran in) moves by floating-point noise; compared with a tolerance or not at all.
TIMING = ("wall_s", "solve_s", "warm_start")


def _cmd(sweep: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "hetopt.cli.main",
        "sweep",
        *GRID,
        f"hydra.sweep.dir={sweep}",
        *extra,
    ]


def _env(tmp: Path | None = None) -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[1])
    paths = [str(tmp)] if tmp else []
    return {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, root]), "COLUMNS": "200"}


def _session(pid: int) -> set[int]:
    """Live (non-zombie) processes of the session ``pid`` leads."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) == pid:  # state, ppid, pgrp, session
            out.add(int(stat.parent.name))
    return out


@contextlib.contextmanager
def _started(
    cmd: list[str], cwd: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env or _env(),
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield proc
    finally:
        for pid in _session(proc.pid) | {proc.pid}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.communicate()


def _wait_for(cond, timeout_s: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _n_records(sweep: Path) -> int:
    return len(list((sweep / "points").glob("*.json")))


def _a_claim(sweep: Path) -> dict | None:
    for path in (sweep / "running").glob("*.json"):
        with contextlib.suppress(OSError, ValueError):
            return json.loads(path.read_text())
    return None


def _run(
    sweep: Path, cwd: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _cmd(sweep, *extra), cwd=cwd, env=env or _env(), capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """``results.csv`` of the sweep run once, uninterrupted."""
    tmp = tmp_path_factory.mktemp("reference")
    run = _run(tmp / "sweep", tmp)
    assert run.returncode == 0, run.stdout + run.stderr
    return pd.read_csv(tmp / "sweep" / "results.csv")


def _assert_same_results(sweep: Path, reference: pd.DataFrame) -> None:
    """The resumed sweep's table is the uninterrupted one: rows, columns, values."""
    table = pd.read_csv(sweep / "results.csv")
    assert list(table.columns) == list(reference.columns)
    assert len(table) == N_POINTS and table["key"].is_unique
    assert table["key"].tolist() == reference["key"].tolist()  # same rows, same order
    for col in table.columns:
        if col in TIMING:
            continue
        a, b = table[col], reference[col]
        if a.dtype.kind == "f" and col != "sla.e2e_s":
            np.testing.assert_allclose(
                a.to_numpy(), b.to_numpy(), rtol=1e-9, atol=1e-9, err_msg=col
            )
        else:
            assert a.fillna("").astype(str).tolist() == b.fillna("").astype(str).tolist(), col
    # one record per point, each computed with its own value, no claim left behind
    assert _n_records(sweep) == N_POINTS
    _assert_records_match_their_points(sweep)
    assert not list((sweep / "running").glob("*.json"))


def _assert_records_match_their_points(sweep: Path) -> None:
    for path in (sweep / "points").glob("*.json"):
        rec = json.loads(path.read_text())
        (value,) = [o.partition("=")[2] for o in rec["overrides"] if o.startswith("sla.e2e_s=")]
        if "config" in rec:  # a point that ran (not one recorded crashed by the sweeper)
            assert rec["config"]["sla"]["e2e_s"] == pytest.approx(float(value)), path


def test_two_sweeps_started_together_into_one_directory(tmp_path: Path) -> None:
    """One owns the directory; the other is refused (exit 2) naming both grids or the lock."""
    sweep = tmp_path / "sweep"
    grids = (
        ["workload=worked_example", "sla.e2e_s=0.12,0.15,0.2,0.25"],
        ["workload=worked_example", "sla.e2e_s=0.13,0.16,0.21,0.26"],
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "hetopt.cli.main", "sweep", *g, f"hydra.sweep.dir={sweep}"],
            cwd=tmp_path,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for g in grids
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    loser = " ".join(outs[[p.returncode for p in procs].index(2)].split())
    assert "Traceback" not in loser
    assert "already holds a different sweep" in loser or "Another `hetopt sweep`" in loser
    winner = grids[[p.returncode for p in procs].index(0)]
    table = pd.read_csv(sweep / "results.csv")
    assert sorted(table["sla.e2e_s"]) == sorted(float(v) for v in winner[1][10:].split(","))
    assert (table["status"] == "ok").all() and _n_records(sweep) == 4
    _assert_records_match_their_points(sweep)


def test_sigkill_of_the_driver_then_resume(tmp_path: Path, reference: pd.DataFrame) -> None:
    sweep = tmp_path / "sweep"
    with _started(_cmd(sweep), tmp_path) as proc:
        _wait_for(lambda: _n_records(sweep) >= 8, what="8 records")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        # The orphaned workers notice and exit (their unrecorded points are re-planned).
        _wait_for(lambda: not _session(proc.pid), timeout_s=20, what="orphaned workers to end")
        # A fresh driver resumes at once (the lock died with the old one), even while the
        # old driver's orphaned workers may still be finishing their points.
        run = _run(sweep, tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "resuming" in " ".join(run.stdout.split()) and "Traceback" not in run.stdout + run.stderr
    _assert_same_results(sweep, reference)


def test_sigkill_of_one_worker_does_not_stop_the_sweep(
    tmp_path: Path, reference: pd.DataFrame
) -> None:
    sweep = tmp_path / "sweep"
    with _started(_cmd(sweep), tmp_path) as proc:
        _wait_for(
            lambda: _n_records(sweep) >= 5 and _a_claim(sweep) is not None, what="a point in flight"
        )
        claim = _a_claim(sweep)
        assert claim is not None and claim["pid"] != proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(claim["pid"], signal.SIGKILL)
        out, _ = proc.communicate(timeout=240)
    # The point in flight was re-run alone and finished: nothing lost, the sweep complete.
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    _assert_same_results(sweep, reference)


def test_a_point_that_kills_its_worker_is_crashed_with_the_signal(
    tmp_path: Path, reference: pd.DataFrame
) -> None:
    """Like the OOM killer: every attempt of one point dies by SIGKILL; the rest finish."""
    # This point exhausts its worker's memory: the kernel kills the process (SIGKILL).
    hook = write_sigkill_hook(tmp_path, "abs(request.sla.e2e_s - 0.2) < 1e-9")
    sweep = tmp_path / "sweep"
    run = _run(sweep, tmp_path, env=_env(hook))
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "Traceback" not in out and "1 crashed" in out
    table = pd.read_csv(sweep / "results.csv")
    crashed = table[table["status"] == "crashed"]
    assert crashed["sla.e2e_s"].tolist() == pytest.approx([0.2])  # exactly the culprit
    assert crashed["signal"].tolist() == ["SIGKILL"]
    assert "SIGKILL" in crashed["error"].iloc[0] and "re-run" in crashed["error"].iloc[0]
    assert set(table["status"]) == {"ok", "infeasible", "crashed"}  # nothing missing
    # A re-run (the memory problem fixed) retries the crashed point, and only that one.
    rerun = _run(sweep, tmp_path)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "resuming: 39 already finished" in " ".join(rerun.stdout.split())
    _assert_same_results(sweep, reference)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_stop_the_workers_and_print_the_resume_command(
    tmp_path: Path, reference: pd.DataFrame, signum: int
) -> None:
    sweep = tmp_path / "sweep"
    with _started(_cmd(sweep), tmp_path) as proc:
        _wait_for(
            lambda: _n_records(sweep) >= 5 and _a_claim(sweep) is not None, what="a point in flight"
        )
        workers = _session(proc.pid) - {proc.pid}
        assert workers  # the launcher's worker processes
        if signum == signal.SIGINT:  # Ctrl-C: the terminal signals the whole process group
            os.killpg(proc.pid, signum)
        else:  # `kill <pid>`: the driver alone
            os.kill(proc.pid, signum)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 128 + signum, out
        # No worker is left running (a worker that outlived the driver would be here).
        _wait_for(lambda: not _session(proc.pid), timeout_s=10, what="the workers to end")
    assert "Traceback" not in out and "KeyboardInterrupt" not in out
    assert f"Interrupted by {signal.Signals(signum).name}" in out
    assert "Resume with" in out and f"hydra.sweep.dir={sweep}" in " ".join(out.split())
    partial = pd.read_csv(sweep / "results.csv")  # what finished is flushed
    assert len(partial) == N_POINTS and (partial["status"] != "missing").sum() >= 5
    assert set(partial["status"]) <= {"ok", "infeasible", "missing"}
    run = _run(sweep, tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    _assert_same_results(sweep, reference)
