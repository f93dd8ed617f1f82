"""Markdown tables for study summaries."""

from __future__ import annotations

import math

import pandas as pd


def md_table(frame: pd.DataFrame, floatfmt: str = ".3g") -> str:
    """A pipe table of ``frame`` (NaN shown as ``-``).

    Examples
    --------
    >>> print(md_table(pd.DataFrame({"a": [1.23456], "b": ["x"]})))
    | a | b |
    |---|---|
    | 1.23 | x |
    """
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for rec in frame.itertuples(index=False):
        cells = []
        for v in rec:
            if isinstance(v, float):
                cells.append("-" if math.isnan(v) else format(v, floatfmt))
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
