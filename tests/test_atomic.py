"""Atomic writes: the umask is respected, a failed write leaves nothing, errors name the path."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from hetopt.atomic import atomic_path, output_error, write_json_atomic, write_text_atomic
from hetopt.errors import OutputError


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_mode_follows_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o666 & ~umask


def test_failed_body_leaves_old_file(tmp_path: Path) -> None:
    target = tmp_path / "a.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.csv"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_directory_is_a_user_error(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputError, match=r"ro/x\.json.*not writable"):
            write_json_atomic(ro / "x.json", {"a": 1})
    finally:
        ro.chmod(0o755)
    assert list(ro.iterdir()) == []


def test_full_disk_message() -> None:
    err = output_error(Path("/d/plan.json"), OSError(errno.ENOSPC, "No space left on device"))
    assert "/d/plan.json" in str(err) and "disk is full" in str(err)
    assert err.exit_code == 2


def test_enospc_during_write_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk that fills up mid-write: OutputError, the old file intact, no temporary file."""
    target = tmp_path / "cost_table.csv"
    target.write_text("complete")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError, match="disk is full"):
        write_text_atomic(target, "new")
    assert target.read_text() == "complete"
    assert [p.name for p in tmp_path.iterdir()] == ["cost_table.csv"]
