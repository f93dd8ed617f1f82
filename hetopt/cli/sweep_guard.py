"""What keeps a running sweep safe: one driver per directory, signals, workers and progress.

:func:`sweep_lock` admits one driver per sweep directory (an ``flock`` on ``.lock``);
:func:`raise_stopped` turns SIGINT and SIGTERM into :class:`Stopped` so the driver can stop its
workers (:func:`stop_workers`, the processes it started and those that claimed points) and keep
what finished; :func:`watch` follows the point records into the progress bar.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.progress import Progress

from hetopt.atomic import output_error
from hetopt.errors import InputError
from hetopt.sweeps import (
    FINISHED,
    POINTS,
    claims,
    clear_claims,
    read_point,
)

log = logging.getLogger(__name__)


def watch(sweep_dir: Path, keys: list[str], progress: Progress, stop: threading.Event) -> None:
    """Follow ``points/`` and move the progress bar as point records land."""
    seen: dict[str, str] = {}
    wanted = set(keys)
    task = progress.add_task("sweep", total=len(keys), counts="")
    while True:
        finished = stop.is_set()
        for path in (sweep_dir / POINTS).glob("*.json"):
            key = path.stem
            if key in wanted and seen.get(key) not in FINISHED:
                rec = read_point(sweep_dir, key)
                if rec is not None:
                    seen[key] = rec["status"]
        counts: dict[str, int] = {}
        for st in seen.values():
            counts[st] = counts.get(st, 0) + 1
        progress.update(
            task,
            completed=len(seen),
            counts=" ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        )
        if finished:
            return
        stop.wait(0.5)


class Stopped(KeyboardInterrupt):
    """SIGINT or SIGTERM reached the driver."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def raise_stopped(signum: int, _frame: Any) -> None:
    raise Stopped(signum)


@contextlib.contextmanager
def sweep_lock(sweep_dir: Path) -> Iterator[None]:
    """Hold ``<sweep>/.lock`` (flock): one driver per sweep directory at a time.

    The kernel drops the lock when the driver dies, even by SIGKILL, so a re-run can resume.
    """
    path = sweep_dir / ".lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise output_error(path, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise InputError(
                f"Another `hetopt sweep` (pid {holder}) is running in {sweep_dir}. Wait for it "
                f"to finish (or stop it), then re-run this command to resume; or sweep into "
                f"another hydra.sweep.dir."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def descendants() -> set[int]:
    """Process ids below this one (from /proc; empty where there is none)."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parent[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    out: set[int] = set()
    frontier = {os.getpid()}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - out
        out |= frontier
    return out


def stop_workers(sweep_dir: Path) -> None:
    """End the workers still planning points of this sweep (this driver's children only)."""
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():  # the job's tasks end with its driver
            ray.shutdown()
    mine = descendants()
    pids = {
        int(c["pid"])
        for c in claims(sweep_dir).values()
        if c.get("host") == socket.gethostname() and c.get("pid") in mine
    }
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            pids &= descendants()
            if not pids:
                break
            time.sleep(0.05)
    clear_claims(sweep_dir)
