"""The README's two set-up commands, run the way a new user runs them.

Command 1 runs in full in a fresh copy of the repository with a fresh virtual environment.
Command 2 is what `.ci/run` executes; running it in full here would recurse into this very
suite, so its install runs in full and pytest only collects the suite.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Two commands", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None
    return [line for line in block[1].splitlines() if line.strip()]


def test_readme_opens_with_exactly_two_commands_and_ci_runs_the_second() -> None:
    commands = _commands()
    assert len(commands) == 2
    assert "hetopt plan" in commands[0] and "pytest" in commands[1]
    ci = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip()
        and not line.startswith("#")
        and not line.startswith("set ")
        and not line.startswith("cd ")
    ]
    assert ci == [commands[1]]


@pytest.mark.slow
def test_readme_commands_work_in_a_fresh_copy(tmp_path: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    repo = tmp_path / "hetopt"
    for name in files:
        src = ROOT / name
        if src.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / name)
    first, second = _commands()
    run = subprocess.run(first, shell=True, cwd=repo, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Independent verification passed" in run.stdout
    plans = list((repo / "outputs" / "plan").glob("*/plan.json"))
    assert len(plans) == 1
    plan = json.loads(plans[0].read_text())
    assert plan["sla"]["satisfied"] and plan["solver"]["status"] == "optimal"

    collect = second.replace("python -m pytest", "python -m pytest --collect-only -q")
    run = subprocess.run(
        collect, shell=True, cwd=repo, capture_output=True, text=True, timeout=1200
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert re.search(r"\d+ tests collected", run.stdout)


def test_readme_group_table_lists_every_shipped_option() -> None:
    """Each row of the README's config-group table names exactly the files of that group."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Using it", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| (.*?) \|", section, re.M)
    assert rows, "the config-group table is missing"
    for group, options in rows:
        listed = set(re.findall(r"`(\w+)`", options))
        shipped = {p.stem for p in (ROOT / "configs" / group).glob("*.yaml")}
        assert listed == shipped, (
            f"README group {group}: lists {sorted(listed)}, ships {sorted(shipped)}"
        )
    groups = {g for g, _ in rows}
    assert groups >= {
        "workload",
        "hardware",
        "sla",
        "costs",
        "tco",
        "solver",
        "whatif",
        "replay",
        "fleet",
    }


def _normalise(text: str) -> list[str]:
    """Lines with trailing blanks and the solver's wall time (machine-dependent) removed."""
    text = re.sub(r"in \d+\.\d+ s\b", "in <t> s", text)
    return [line.rstrip() for line in text.strip().splitlines()]


def test_readme_sample_plan_is_what_hetopt_plan_prints(tmp_path: Path) -> None:
    """The README's "What a plan looks like" block is the default plan's output, verbatim."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## What a plan looks like", 1)[1]
    block = re.search(r"```\n(.*?)```", section, re.S)
    assert block is not None
    run = subprocess.run(
        [sys.executable, "-m", "hetopt.cli.main", "plan"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    printed = _normalise(run.stdout)
    printed = printed[: next(i for i, line in enumerate(printed) if line.startswith("Wrote "))]
    assert _normalise(block[1]) == printed


def test_architecture_page_and_readme_share_one_diagram() -> None:
    """ARCHITECTURE.md and the README's "How it works" open with the same pipeline diagram."""
    root = Path(__file__).resolve().parent.parent

    def diagram(text: str) -> str:
        start = text.index("```\nworkload YAML")
        return text[start : text.index("```", start + 3)]

    readme = (root / "README.md").read_text()
    how = readme[readme.index("## How it works") :]
    assert diagram(how) == diagram((root / "ARCHITECTURE.md").read_text())
