"""Atomic file writes that respect the umask and turn disk errors into user errors.

Every file hetopt writes goes through :func:`atomic_path`: the content is written to a temporary
file in the destination's directory, flushed to disk, given the mode a plain ``open()`` would
have given it (``0o666`` less the umask), then renamed over the destination. A reader therefore
sees either the old file or the complete new one, never a truncated one. A full disk, a
read-only directory or a missing permission raises :class:`~hetopt.errors.OutputError`, naming
the path, and leaves no temporary file behind.

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> write_text_atomic(d / "a.txt", "hello")
>>> (d / "a.txt").read_text()
'hello'
>>> sorted(p.name for p in d.iterdir())  # no temporary file left behind
['a.txt']
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hetopt.errors import OutputError

__all__ = [
    "atomic_path",
    "file_mode",
    "output_error",
    "write_bytes_atomic",
    "write_csv_atomic",
    "write_json_atomic",
    "write_text_atomic",
]


def file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file under the current umask.

    Read from ``/proc/self/status`` where it exists (no process-wide side effect); elsewhere
    the umask is read by setting and restoring it.

    Examples
    --------
    >>> 0 <= file_mode() <= 0o666
    True
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass  # no /proc (not Linux): read the umask by setting and restoring it below
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def output_error(path: Path, exc: OSError) -> OutputError:
    """An :class:`OutputError` paragraph for an ``OSError`` raised while writing ``path``."""
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        why = "the disk is full"
        fix = "free some space or write elsewhere (hydra.run.dir=/another/disk/run)"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = "the directory is not writable (read-only or no permission)"
        fix = "choose a writable directory with hydra.run.dir= (or hydra.sweep.dir= for a sweep)"
    else:
        why = exc.strerror or str(exc)
        fix = "check the path and try again"
    return OutputError(
        f"Cannot write {path}: {why} ({type(exc).__name__} errno {exc.errno}). "
        f"Nothing partial was left there; {fix}."
    )


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    Whatever the body writes to the yielded path (pandas ``to_csv``, matplotlib ``savefig``)
    lands at ``path`` only if the body returns normally. Parent directories are created.

    Raises
    ------
    OutputError
        When the directory cannot be created or written, or the disk is full.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise output_error(path, exc) from None
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise output_error(path, exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path | str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_path`)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path | str, data: Any, *, indent: int | None = 2) -> None:
    """Write ``data`` as strict JSON (no NaN) to ``path`` atomically.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.json"
    >>> write_json_atomic(p, {"a": 1})
    >>> json.loads(p.read_text())
    {'a': 1}
    """
    write_text_atomic(path, json.dumps(data, indent=indent, allow_nan=False))


def write_csv_atomic(path: Path | str, frame: Any, *, index: bool = False) -> None:
    """Write a pandas DataFrame as CSV to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=index)
