"""The cost model's docstring examples run (they are documentation users copy)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = (
    "hetopt.costs.step",
    "hetopt.costs.aggregated",
    "hetopt.costs.calibration",
    "hetopt.costs.fit",
    "hetopt.costs.llm",
    "hetopt.plan.queueing",
    "hetopt.report.tables",
    "hetopt.replay.queueing",
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
    assert result.attempted > 0
