"""Execute every notebook's code cells in order (without a Jupyter kernel)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path: Path) -> None:
    cells = json.loads(path.read_text())["cells"]
    code = ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]
    # Every notebook checks its own results; running it is the test.
    assert any("assert " in src for src in code), f"{path.name} asserts nothing"
    namespace: dict[str, object] = {}
    for src in code:
        exec(compile(src, f"{path.name}", "exec"), namespace)  # noqa: S102


def test_the_shipped_notebooks_are_there() -> None:
    assert {p.stem for p in NOTEBOOKS} >= {"quickstart", "paper_figures", "whatif_study"}
