"""Figures 8 and 9 under the calibrated step model and the roofline, side by side.

Reads ``fig8.csv`` and ``fig9.csv`` from two ``hetopt reproduce`` outputs (default: the
reference outputs ``results/reproduce`` (calibrated) and ``results/reproduce_roofline``) and
prints, per figure and LLM call, the best of the paper's six pairs, H100::Gaudi3 relative to
B200::B200, the best of all 81 pairs and how many pairs are feasible, as a markdown table with
the roofline's values in brackets.

Run: ``python experiments/compare_cost_models.py [CALIBRATED_DIR ROOFLINE_DIR]``
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent / "results"
DIRS = (
    sys.argv[1:3]
    if len(sys.argv) == 3
    else [str(HERE / "reproduce"), str(HERE / "reproduce_roofline")]
)
PAPER = ["H100::H100", "B200::B200", "B200::Gaudi3", "H100::Gaudi3", "B200::H100", "Gaudi3::Gaudi3"]
rows = []
for fig in ("fig8", "fig9"):
    res = {}
    for label, d in (("calibrated", DIRS[0]), ("roofline", DIRS[1])):
        f = pd.read_csv(f"{d}/{fig}.csv")
        for (m, p, s), g in f.groupby(["model", "precision", "sla"], sort=False):
            pp = g[g.pair.isin(PAPER)].dropna(subset=["benefit_vs_h100"])
            b = pp.set_index("pair").benefit_vs_h100
            win = b.idxmax() if len(b) else "-"
            allp = g[g.pair != "optimal"].dropna(subset=["benefit_vs_h100"])
            best = allp.loc[allp.benefit_vs_h100.idxmax()]
            res.setdefault((m, p, s), {})[label] = (
                f"{win} {b.max():.2f}",
                f"{b.get('H100::Gaudi3', float('nan')) / b.get('B200::B200', float('nan')):.2f}",
                f"{best.pair} {best.benefit_vs_h100:.2f}",
                len(allp),
            )
    for (m, p, s), v in res.items():
        c, r = v["calibrated"], v["roofline"]
        rows.append(
            f"| {fig} | {m.replace('llama-3-', '')} {p} {s} | {c[0]} ({r[0]}) | {c[1]} ({r[1]}) | {c[2]} ({r[2]}) | {c[3]} ({r[3]}) |"
        )
print(
    "| figure | call, SLA | best of the paper's pairs | H100::Gaudi3 / B200::B200 | best of all 81 pairs | feasible pairs |"
)
print("|---|---|---|---|---|---|")
print("\n".join(rows))
