"""A sweep through Hydra's Ray launcher on a local Ray cluster bound to loopback.

Needs the ``dist`` extra (``pip install 'hetopt[dist]'``, part of ``dev``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pandas as pd
import pytest

from tests.sitehooks import write_sigkill_hook

pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="needs pip install 'hetopt[dist]'")

pytestmark = pytest.mark.slow

# Ray 2.60 turns token auth on by default; this loopback cluster is private to the test.
# RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 keeps the node address 127.0.0.1 for head and driver.
RAY_ENV = {
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _descendants(pgid: int) -> set[int]:
    """Processes of the cluster's session, and all their children (workers call setsid)."""
    rows = subprocess.run(
        ["ps", "-eo", "pid=,ppid=,pgid=,stat="], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    table = {
        int(p): (int(pp), int(g))
        for p, pp, g, st in (r.split() for r in rows if r.strip())
        if not st.startswith("Z")
    }
    pids = {p for p, (_, g) in table.items() if g == pgid}
    while True:
        kids = {p for p, (pp, _) in table.items() if pp in pids} - pids
        if not kids:
            return pids
        pids |= kids


@pytest.fixture()
def ray_cluster() -> Iterator[str]:
    """``ray start --head`` on 127.0.0.1 with 2 CPUs; yields its address; kills it after."""
    yield from _cluster(os.environ)


def ray_sweep(
    address: str, cwd: Path, sweep: Path, *overrides: str, **remote: int
) -> subprocess.CompletedProcess[str]:
    """``hetopt sweep *overrides`` in a subprocess, through the Ray launcher, on ``address``.

    ``remote`` are the launcher's ``ray.remote`` options (``num_cpus`` 1 unless given); the
    sweep writes to ``sweep``.
    """
    remote = {"num_cpus": 1, **remote}
    cmd = [
        sys.executable,
        "-m",
        "hetopt.cli.main",
        "sweep",
        *overrides,
        "hydra/launcher=ray",
        f"hydra.launcher.ray.init.address={address}",
        # attaching to a running cluster: the launcher's 75 MB object-store default must go
        "+hydra.launcher.ray.init.object_store_memory=null",
        *(f"+hydra.launcher.ray.remote.{k}={v}" for k, v in remote.items()),
        f"hydra.sweep.dir={sweep}",
    ]
    return subprocess.run(
        cmd,
        env={**os.environ, **RAY_ENV},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _cluster(env: Mapping[str, str]) -> Iterator[str]:
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Unix socket paths <= 107
    ray = str(Path(sys.executable).with_name("ray"))
    proc = subprocess.Popen(
        [
            ray,
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=2",
            f"--object-store-memory={200 * 1024**2}",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={temp_dir}",
        ],
        env={**env, **RAY_ENV},
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"ray start failed:\n{out}"
        yield f"127.0.0.1:{port}"
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in _descendants(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.time() + 10
            while _descendants(proc.pid) and time.time() < deadline:
                time.sleep(0.1)
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not _descendants(proc.pid), "Ray processes survived the teardown"


def test_sweep_through_the_ray_launcher(ray_cluster: str, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    run = ray_sweep(
        ray_cluster, tmp_path, sweep, "tco.usd_per_kwh=0.2,0.4", "solver=highs,cpsat", num_cpus=2
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    table = pd.read_csv(sweep / "results.csv")
    assert len(table) == 4 and (table["status"] == "ok").all() and table["verified"].all()
    # HiGHS and CP-SAT agree at each price; dearer power costs more.
    by_price = table.groupby("tco.usd_per_kwh")["tco_usd_per_h"]
    assert (by_price.max() - by_price.min()).max() < 1e-6 * table["tco_usd_per_h"].max()
    assert by_price.mean().is_monotonic_increasing
    records = [json.loads(p.read_text()) for p in (sweep / "points").glob("*.json")]
    # Each point ran in a Ray worker (not this process), with the CPUs Ray gave it as threads.
    assert all(r["pid"] != os.getpid() for r in records)
    assert {r["threads"] for r in records} == {2}
    assert {r["config"]["solver"]["threads"] for r in records} == {2}


@pytest.fixture()
def ray_cluster_with_a_deadly_point(tmp_path: Path) -> Iterator[str]:
    # Loaded by every Ray worker of this cluster: one point dies like an OOM-killed process.
    hook = write_sigkill_hook(tmp_path, "abs(request.tco.usd_per_kwh - 0.4) < 1e-9")
    root = str(Path(__file__).resolve().parents[1])
    yield from _cluster({**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), root])})


def test_a_dead_ray_worker_marks_its_point_crashed(
    ray_cluster_with_a_deadly_point: str, tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    run = ray_sweep(
        ray_cluster_with_a_deadly_point,
        tmp_path,
        sweep,
        "tco.usd_per_kwh=0.2,0.4,0.8",
        max_retries=0,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 1, out[-3000:]
    assert "Traceback" not in out
    table = pd.read_csv(sweep / "results.csv").set_index("tco.usd_per_kwh")
    assert table["status"].to_dict() == {0.2: "ok", 0.4: "crashed", 0.8: "ok"}
    assert "worker process planning this point died" in table.loc[0.4, "error"]
