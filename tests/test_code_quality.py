"""The habits CI enforces: ruff lint, ruff format and mypy stay clean on the whole tree.

Doctests run with the rest of the suite (``--doctest-modules`` over ``hetopt`` and
``hydra_plugins`` in ``pyproject.toml``). ruff and mypy come with the ``dev`` extra that CI
installs; without them these tests skip, saying so.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tool(name: str) -> list[str]:
    exe = Path(sys.executable).with_name(name)
    path = str(exe) if exe.exists() else shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return [path]


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_check_is_clean() -> None:
    out = _run([*_tool("ruff"), "check", "--output-format", "concise", "."])
    assert out.returncode == 0, out.stdout + out.stderr


def test_ruff_format_is_applied() -> None:
    out = _run([*_tool("ruff"), "format", "--check", "."])
    assert out.returncode == 0, f"run `ruff format .`:\n{out.stdout}{out.stderr}"


def test_mypy_is_clean() -> None:
    out = _run([*_tool("mypy"), "hetopt", "hydra_plugins"])
    assert out.returncode == 0, out.stdout + out.stderr


def test_functions_stay_below_complexity_25() -> None:
    out = _run(
        [
            *_tool("ruff"),
            "check",
            "--select",
            "C901",
            "--config",
            "lint.mccabe.max-complexity=25",
            "--output-format",
            "concise",
            "hetopt",
            "hydra_plugins",
        ]
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_long_module_says_why_at_its_top() -> None:
    """No module passes ~600 lines without a sentence at its top saying why it stays whole."""
    long = []
    for path in sorted([*ROOT.glob("hetopt/**/*.py"), *ROOT.glob("hydra_plugins/**/*.py")]):
        text = path.read_text()
        head = text[:3000]
        if text.count("\n") > 600 and "Why one module" not in head:
            long.append(str(path.relative_to(ROOT)))
    assert long == [], "split these or say 'Why one module: ...' in the module docstring"
