"""Figures drawn off-screen, and written atomically: the one home of hetopt's figure plumbing.

Every stage that draws (plans, fleets, replays, MLIR calibration, paper studies) makes its
figure with :func:`subplots` and writes it with :func:`save_figure`. Figures are
:class:`matplotlib.figure.Figure` objects on an Agg canvas of their own: no pyplot, no display
and no change of matplotlib's global backend, so importing hetopt loads no matplotlib at all and
a notebook's backend is left as it was. matplotlib loads on the first figure.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hetopt.atomic import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def subplots(nrows: int = 1, ncols: int = 1, **kwargs: Any) -> tuple[Figure, Any]:
    """A new figure and its grid of axes, as ``pyplot.subplots`` makes them, without pyplot.

    Takes ``pyplot.subplots``'s arguments (``figsize``, ``sharex``, ``squeeze``,
    ``gridspec_kw``, ...). The figure draws on its own Agg canvas, the canvas pyplot's ``Agg``
    backend would give it, so what :func:`save_figure` writes is the same PNG.

    Examples
    --------
    >>> fig, (left, right) = subplots(1, 2, figsize=(4, 2))
    >>> type(fig.canvas).__name__, len(fig.axes)
    ('FigureCanvasAgg', 2)
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig_kw = {k: kwargs.pop(k) for k in ("figsize", "dpi") if k in kwargs}
    fig = Figure(**fig_kw)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def log_axis(ax: Any, which: str = "x") -> None:
    """Put ``ax``'s ``which`` axis ("x" or "y") on a base-10 log scale with plain-number tick
    labels (``0.1``, ``1``, ``10``) instead of matplotlib's ``10^n`` mathtext.

    Plain numbers read as they are on an axis of milliseconds or dollars, and they spare the
    first figure of a process matplotlib's mathtext parser (about a third of a second, most of
    what a default ``hetopt plan`` spends drawing ``plan.png``).

    Examples
    --------
    >>> fig, ax = subplots(figsize=(3, 2))
    >>> _ = ax.plot([0.1, 100], [1, 2])
    >>> log_axis(ax)
    >>> ax.get_xscale(), type(ax.xaxis.get_major_formatter()).__name__
    ('log', 'LogFormatter')
    """
    from matplotlib.ticker import LogFormatter

    axis = {"x": ax.xaxis, "y": ax.yaxis}[which]
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_formatter(LogFormatter(10))
    axis.set_minor_formatter(LogFormatter(10, labelOnlyBase=False))


def save_figure(
    fig: Figure,
    path: str | Path,
    dpi: int = 120,
    rect: tuple[float, float, float, float] | None = None,
) -> Path:
    """Lay out, write and close a figure (every PNG hetopt writes goes through here).

    ``rect`` keeps the subplots inside a part of the figure (room for a shared colour bar).
    The PNG is written to a temporary file and renamed (:func:`hetopt.atomic.atomic_path`), so
    a full disk never leaves a truncated one. A figure made with pyplot is closed in pyplot too.

    Examples
    --------
    >>> import tempfile
    >>> fig, ax = subplots(figsize=(2, 2))
    >>> _ = ax.plot([0, 1], [0, 1])
    >>> with tempfile.TemporaryDirectory() as d:
    ...     out = save_figure(fig, Path(d) / "line.png", dpi=50)
    ...     out.read_bytes()[:4]
    b'\\x89PNG'
    """
    if rect is None:
        fig.tight_layout()
    else:  # a colour bar on axes of its own: lay out the rest inside rect, leave it be
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*not compatible with tight_layout")
            fig.tight_layout(rect=rect)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=Path(path).suffix.lstrip(".") or "png")
    finally:
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:  # a figure of ours is not pyplot's: closing it is a no-op
            pyplot.close(fig)
    return Path(path)
