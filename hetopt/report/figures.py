"""Figures of a plan, drawn off-screen.

Figures are :class:`matplotlib.figure.Figure` objects on an Agg canvas of their own
(:func:`subplots`): no pyplot, no display and no change of matplotlib's global backend, so
importing hetopt (or this module) loads no matplotlib at all, and a notebook's backend is left
as it was. :func:`save_figure` lays a figure out and writes it atomically.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hetopt.plotting import log_axis, save_figure, subplots

__all__ = ["VENDOR_COLOURS", "plot_plan", "save_figure", "subplots"]

if TYPE_CHECKING:
    from hetopt.plan.plan import Plan

VENDOR_COLOURS = (
    "#4C72B0",
    "#55A868",
    "#C44E52",
    "#8172B2",
    "#CCB974",
    "#64B5CD",
    "#DD8452",
    "#937860",
    "#DA8BC3",
    "#8C8C8C",
    "#1B9E77",
    "#D95F02",
)


def __getattr__(name: str) -> Any:
    """``plt``: pyplot on the non-interactive Agg backend, for scripts that still draw with
    pyplot (``from hetopt.report.figures import plt``). Loaded, and the backend chosen, only
    when asked for; hetopt itself draws through :func:`hetopt.plotting.subplots`."""
    if name == "plt":
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot

        return matplotlib.pyplot
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def plot_plan(plan: Plan, path: str | Path) -> Path:
    """Draw the plan's TCO against its homogeneous baselines and its per-operator latency.

    Parameters
    ----------
    plan
        A solved plan.
    path
        Where to write the PNG.

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    from matplotlib.patches import Rectangle

    fig, (ax_cost, ax_lat) = subplots(
        1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1, 1.6]}
    )
    labels = ["plan"] + [f"all {b.device}" for b in plan.baselines]
    values = [plan.tco_usd_per_hour] + [b.tco_usd_per_hour for b in plan.baselines]
    ok = [True] + [b.sla_satisfied for b in plan.baselines]
    colours = [
        "#2a9d8f" if i == 0 else ("#8d99ae" if good else "#e76f51") for i, good in enumerate(ok)
    ]
    shown = [v if math.isfinite(v) else 0.0 for v in values]
    bars = ax_cost.bar(labels, shown, color=colours)
    for bar, v, good in zip(bars, values, ok, strict=True):
        text = f"{v:,.3g}" if math.isfinite(v) else "n/a"
        ax_cost.annotate(
            text + ("" if good else "\nmisses SLA"),
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax_cost.set_ylabel("TCO (\\$/h)")
    ax_cost.set_title("TCO: heterogeneous plan vs homogeneous baselines")

    frame = plan.placement
    devices = list(dict.fromkeys(frame["device"]))
    colour_of = {d: VENDOR_COLOURS[i % len(VENDOR_COLOURS)] for i, d in enumerate(devices)}
    y = range(len(frame))
    ax_lat.barh(list(y), frame["latency_s"] * 1e3, color=[colour_of[d] for d in frame["device"]])
    ax_lat.set_yticks(
        list(y),
        [f"{o}  [{c}]" for o, c in zip(frame["operator"], frame["config"], strict=True)],
        fontsize=8,
    )
    ax_lat.invert_yaxis()
    log_axis(ax_lat, "x")
    ax_lat.set_xlabel("latency per execution (ms, log scale)")
    ax_lat.set_title("Where each operator runs")
    handles = [Rectangle((0, 0), 1, 1, color=colour_of[d]) for d in devices]
    ax_lat.legend(handles, devices, fontsize=8, loc="lower right")
    # "\$" keeps matplotlib from reading the two dollar signs as mathtext.
    fig.suptitle(
        f"{plan.workload}: {plan.tco_usd_per_hour:,.4g} \\$/h, "
        f"{plan.cost_usd_per_request:.3g} \\$/request, end-to-end "
        f"{plan.e2e_latency_s:.3g} s"
    )
    return save_figure(fig, path)
