"""Figures of what-if studies, drawn from a sweep's tidy ``results.csv``.

:func:`plot_study` draws two panels: the study's metric against its swept key (one line per
value of a second key), and the device mix behind it. A ``pareto`` study instead plots TCO
(without the carbon charge) against carbon per grid, with each grid's non-dominated frontier.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hetopt.plotting import save_figure, subplots

_LABELS = {
    "tco_usd_per_h": "TCO ($/h)",
    "cost_usd_per_request": "cost per request ($)",
    "carbon_kg_per_h": "carbon (kgCO2e/h)",
}


def tco_without_carbon_charge(
    frame: pd.DataFrame, price_key: str = "tco.carbon_usd_per_tonne"
) -> pd.Series:
    """TCO minus the carbon price paid on the plan's emissions ($/h)."""
    price = frame[price_key].astype(float) if price_key in frame else 0.0
    return frame["tco_usd_per_h"] - frame["carbon_kg_per_h"] * price / 1000.0


def pareto_front(cost: np.ndarray, carbon: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both cost and carbon, by carbon.

    Examples
    --------
    >>> pareto_front(np.array([1.0, 2.0, 3.0, 2.5]), np.array([3.0, 2.0, 1.0, 2.5])).tolist()
    [2, 1, 0]
    """
    order = np.lexsort((cost, carbon))
    front, best = [], np.inf
    for i in order:
        if cost[i] < best - 1e-12:
            front.append(int(i))
            best = cost[i]
    return np.array(front, dtype=int)


def _device_mix(ax: Any, sub: pd.DataFrame, x: str) -> None:
    cols = [c for c in sub.columns if c.startswith("devices.") and sub[c].fillna(0).any()]
    if not cols:
        ax.set_axis_off()
        return
    sub = sub.sort_values(x)
    positions = np.arange(len(sub))
    bottom = np.zeros(len(sub))
    for c in sorted(cols):
        values = sub[c].fillna(0).to_numpy(dtype=float)
        ax.bar(positions, values, bottom=bottom, label=c.removeprefix("devices."))
        bottom += values
    ax.set_xticks(
        positions, [f"{v:g}" if isinstance(v, int | float) else str(v) for v in sub[x]], rotation=45
    )
    ax.set_ylabel("devices")
    ax.set_ylim(0, float(bottom.max()) * 1.05 + 0.5)
    # beside the bars, never over them
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def plot_study(frame: pd.DataFrame, study: Mapping[str, Any], path: Path) -> Path:
    """Draw the figure of a what-if study from its results table.

    Parameters
    ----------
    frame
        The sweep's tidy table (:func:`hetopt.sweeps.aggregate`).
    study
        The ``study`` block of the study config: ``name``, ``title``, ``x``, ``hue``, ``y``,
        ``kind`` (``lines`` or ``pareto``), ``x_label``, ``log_x``.
    path
        Where to write the PNG.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    x, hue = study.get("x"), study.get("hue")
    y = study.get("y") or "tco_usd_per_h"
    ok = frame[frame["status"] == "ok"].copy()
    if x is None or x not in ok:
        raise ValueError(f"study.x={x!r} is not a column of the results")
    hues = sorted(ok[hue].unique(), key=str) if hue and hue in ok else [None]
    fig, (ax1, ax2) = subplots(1, 2, figsize=(12, 4.5))
    if study.get("kind") == "pareto":
        ok["tco_ex_carbon"] = tco_without_carbon_charge(ok, x)
        for h in hues:
            sub = ok if h is None else ok[ok[hue] == h]
            line = ax1.scatter(
                sub["carbon_kg_per_h"],
                sub["tco_ex_carbon"],
                s=18,
                label=f"{hue}={h}" if h is not None else None,
            )
            idx = pareto_front(sub["tco_ex_carbon"].to_numpy(), sub["carbon_kg_per_h"].to_numpy())
            front = sub.iloc[idx]
            ax1.plot(
                front["carbon_kg_per_h"],
                front["tco_ex_carbon"],
                color=line.get_facecolor()[0],
                drawstyle="steps-post",
            )
        ax1.set_xlabel("carbon (kgCO2e/h, operational + embodied)")
        ax1.set_ylabel("TCO without the carbon charge ($/h)")
        ax1.set_title("TCO-carbon Pareto frontier per grid")
    else:
        for h in hues:
            sub = (ok if h is None else ok[ok[hue] == h]).sort_values(x)
            ax1.plot(sub[x], sub[y], marker="o", label=f"{hue}={h}" if h is not None else None)
        bad = frame[frame["status"] == "infeasible"]
        if len(bad) and len(ok):
            ax1.scatter(
                bad[x], np.full(len(bad), ok[y].min()), marker="x", color="red", label="infeasible"
            )
        ax1.set_xlabel(study.get("x_label") or x)
        ax1.set_ylabel(_LABELS.get(y, y))
        if study.get("log_x"):
            ax1.set_xscale("log")
            if y == "cost_usd_per_request":
                ax1.set_yscale("log")
    if ax1.get_legend_handles_labels()[0]:
        ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)

    # The device-mix panel shows the hue value under which the mix changes most.
    def n_mixes(h: Any) -> int:
        sub = (ok if h is None else ok[ok[hue] == h]).filter(like="devices.")
        if sub.empty or not len(sub.columns):  # no device columns (a profiled workload)
            return 0
        return int(sub.fillna(0).apply(tuple, axis=1).nunique())

    mix_hue = max(hues, key=n_mixes)
    mix = ok if mix_hue is None else ok[ok[hue] == mix_hue]
    _device_mix(ax2, mix, x)
    ax2.set_xlabel(study.get("x_label") or x)
    ax2.set_title("device mix" + (f" ({hue}={mix_hue})" if mix_hue is not None else ""))
    fig.suptitle(study.get("title") or study.get("name") or "what-if study")
    return save_figure(fig, path)
