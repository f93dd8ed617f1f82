"""What the replay measured against what the plan promised.

* **SLA attainment** per bound (TTFT, TBT, end-to-end) and overall: a request attains the SLA
  only when it completed and met every bound that is set. TTFT is measured from the request's
  arrival to the end of its first prefill (queueing, earlier operators and transfers included),
  TBT is the request's worst time between tokens, end-to-end its whole latency. A request
  whose path has no prefill (or no decode) has no first token (or token gap) to wait for and
  meets that bound; a dropped request, or one still in flight at the end, misses every bound.
* **Overloaded pools**: a pool whose jobs arrive faster than its slots can serve them (offered
  load above 1), over the measured window or over any window of the controller's
  ``window_s`` in it, so that its queue grows (or admission control sheds jobs) while it lasts.

Warm-up is left out of both: attainment counts the requests arriving in
``[warmup_s, duration_s)``, pool load the jobs arriving at the pool in that time window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hetopt.sla import Sla

BOUNDS = ("ttft", "tbt", "e2e")
"""The SLA bounds the replay checks; each is ``Sla.<name>_s`` against request column
``<name>_s``."""
TOLERANCE_S = 1e-9  # a latency equal to its bound meets it, whatever the float rounding


def bound_of(sla: Sla, name: str) -> float | None:
    """The bound ``name`` (one of :data:`BOUNDS`) of ``sla`` in seconds, None when not set."""
    return getattr(sla, f"{name}_s")


def sla_flags(requests: pd.DataFrame, sla: Sla) -> pd.DataFrame:
    """Whether each request met each SLA bound, and all of them.

    Parameters
    ----------
    requests
        The replay's request table (``status``, ``ttft_s``, ``tbt_s``, ``e2e_s``).
    sla
        The plan's SLA.

    Returns
    -------
    pandas.DataFrame
        Boolean columns ``meets_ttft``, ``meets_tbt``, ``meets_e2e`` (True where the bound is
        not set: there is nothing to miss) and ``meets_sla`` (every set bound), indexed like
        ``requests``.

    Examples
    --------
    >>> req = pd.DataFrame({"status": ["completed", "completed", "dropped"],
    ...                     "ttft_s": [0.2, 0.3, float("nan")], "tbt_s": [0.01, 0.01, 0.0],
    ...                     "e2e_s": [5.0, 5.0, float("nan")]})
    >>> sla_flags(req, Sla(ttft_s=0.25, tbt_s=0.02, e2e_s=10.0))["meets_sla"].tolist()
    [True, False, False]
    """
    completed = (requests["status"] == "completed").to_numpy()
    flags = pd.DataFrame(index=requests.index)
    every = completed.copy()
    for name in BOUNDS:
        bound = bound_of(sla, name)
        if bound is None:
            flags[f"meets_{name}"] = True
            continue
        value = requests[f"{name}_s"].to_numpy(dtype=float)
        # NaN: the path has no prefill, so no first token to wait for
        ok = completed & (np.isnan(value) | (value <= bound + TOLERANCE_S))
        flags[f"meets_{name}"] = ok
        every &= ok
    flags["meets_sla"] = every
    return flags


def attainment(
    requests: pd.DataFrame, lo_s: float, hi_s: float, column: str = "meets_sla"
) -> float:
    """Share of the requests arriving in ``[lo_s, hi_s)`` whose ``column`` flag is set.

    ``requests`` carries the flags of :func:`sla_flags`; NaN when no request arrived then.
    """
    sel = requests.loc[(requests["arrival_s"] >= lo_s) & (requests["arrival_s"] < hi_s), column]
    return float(sel.mean()) if len(sel) else math.nan


def sla_summary(
    requests: pd.DataFrame, sla: Sla, lo_s: float, hi_s: float
) -> dict[str, float | int | None]:
    """The SLA part of the replay's summary: bounds, attainment per bound and overall, misses.

    Keys: ``sla_<bound>_s`` (the bound, None when not set), ``sla_attainment`` (share of the
    measured requests that met every set bound; NaN when no bound is set),
    ``sla_attainment_<bound>`` and ``sla_missed_<bound>`` (None when the bound is not set).
    ``requests`` carries the flags of :func:`sla_flags`.
    """
    measured = requests[(requests["arrival_s"] >= lo_s) & (requests["arrival_s"] < hi_s)]
    out: dict[str, float | int | None] = {}
    any_bound = False
    for name in BOUNDS:
        bound = bound_of(sla, name)
        out[f"sla_{name}_s"] = bound
        if bound is None:
            out[f"sla_attainment_{name}"] = out[f"sla_missed_{name}"] = None
            continue
        any_bound = True
        ok = measured[f"meets_{name}"]
        out[f"sla_attainment_{name}"] = float(ok.mean()) if len(ok) else math.nan
        out[f"sla_missed_{name}"] = int((~ok).sum())
    ok = measured["meets_sla"]
    out["sla_attainment"] = float(ok.mean()) if any_bound and len(ok) else math.nan
    out["sla_missed"] = int((~ok).sum()) if any_bound else None
    return out


@dataclass(frozen=True)
class PoolLoad:
    """Jobs arriving at one pool against what its slots can serve, over ``[from_s, to_s)``.

    Attributes
    ----------
    from_s, to_s
        The window.
    arrival_rate_per_s
        Jobs arriving per second (a retry after a device failure arrives again; a job shed by
        admission control or finding no replica still arrived).
    mean_service_s
        Mean time those jobs hold a slot (NaN with no arrivals).
    mean_slots
        Slots in service, averaged over the window (fewer after a failure, more after a
        scale-up).
    """

    from_s: float
    to_s: float
    arrival_rate_per_s: float
    mean_service_s: float
    mean_slots: float

    @property
    def capacity_per_s(self) -> float:
        """Jobs per second the slots complete when all are busy: ``slots / mean service``."""
        if math.isnan(self.mean_service_s) or self.mean_service_s <= 0:
            return math.inf if self.mean_slots > 0 else math.nan
        return self.mean_slots / self.mean_service_s

    @property
    def offered_load(self) -> float:
        """``arrival rate x mean service / slots``: above 1 the queue grows while it lasts."""
        if self.arrival_rate_per_s == 0:
            return 0.0
        if self.mean_slots <= 0:
            return math.inf
        return self.arrival_rate_per_s * self.mean_service_s / self.mean_slots

    @property
    def overloaded(self) -> bool:
        """True when jobs arrive faster than the pool can serve them."""
        return bool(self.offered_load > 1.0)


def pool_loads(
    arrived_s: Sequence[float] | np.ndarray,
    service_s: Sequence[float] | np.ndarray,
    times_s: np.ndarray,
    slots: np.ndarray,
    lo_s: float,
    hi_s: float,
    window_s: float,
) -> tuple[PoolLoad, PoolLoad]:
    """A pool's load over the measured window and over its busiest sub-window.

    A pool sized for the mean rate is overloaded at the peak of a diurnal day even when its
    mean load is fine, so the load is also measured over sliding windows of ``window_s`` (the
    controller's measurement window; a quarter window apart, all inside ``[lo_s, hi_s)``).

    Parameters
    ----------
    arrived_s, service_s
        Arrival time (non-decreasing) and service time of every job that came to the pool.
    times_s, slots
        Slots in service, sampled at ``times_s``.
    lo_s, hi_s
        The measured window (after the warm-up, up to the end of arrivals).
    window_s
        Length of the sliding windows; the whole measured window when it is shorter.

    Returns
    -------
    tuple of PoolLoad
        The whole measured window, and the window with the highest offered load (the earliest
        among equals).

    Examples
    --------
    Twenty jobs a second of 0.1 s each for 10 s, then 4 a second for 40 s, on one slot:
    below capacity on average, twice over it for the first 10 s.

    >>> t = np.concatenate([np.arange(0.0, 10.0, 0.05), np.arange(10.0, 50.0, 0.25)])
    >>> grid = np.arange(0.0, 50.0)
    >>> whole, busiest = pool_loads(t, np.full(len(t), 0.1), grid, np.ones(50), 0.0, 50.0, 10.0)
    >>> round(whole.arrival_rate_per_s, 6), whole.overloaded
    (7.2, False)
    >>> busiest.from_s, round(busiest.arrival_rate_per_s, 6), round(busiest.capacity_per_s, 6)
    (0.0, 20.0, 10.0)
    """
    arrived = np.asarray(arrived_s, dtype=float)
    work = np.concatenate([[0.0], np.cumsum(np.asarray(service_s, dtype=float))])

    def load(a: float, b: float) -> PoolLoad:
        i, j = np.searchsorted(arrived, [a, b])
        in_window = (times_s >= a) & (times_s < b)
        if in_window.any():
            mean_slots = float(slots[in_window].mean())
        else:  # a window shorter than the sampling interval: the last sample before it
            mean_slots = float(slots[max(int(np.searchsorted(times_s, a, side="right")) - 1, 0)])
        return PoolLoad(
            float(a),
            float(b),
            float((j - i) / (b - a)),
            float((work[j] - work[i]) / (j - i)) if j > i else math.nan,
            mean_slots,
        )

    whole = load(lo_s, hi_s)
    starts, length = sliding_windows(lo_s, hi_s, window_s)
    busiest = max((load(a, a + length) for a in starts), key=lambda p: p.offered_load)
    return whole, busiest


def sliding_windows(lo_s: float, hi_s: float, window_s: float) -> tuple[np.ndarray, float]:
    """Starts and length of the windows the replay's peaks are taken over.

    Windows of ``window_s`` (all of ``[lo_s, hi_s)`` when that is shorter), a quarter window
    apart, the last one ending at ``hi_s``: every window lies inside the span and is full.

    Examples
    --------
    >>> starts, length = sliding_windows(0.0, 100.0, 40.0)
    >>> starts.tolist(), length
    ([0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0], 40.0)
    >>> sliding_windows(30.0, 60.0, 300.0)[0].tolist(), sliding_windows(30.0, 60.0, 300.0)[1]
    ([30.0], 30.0)
    """
    length = min(window_s, hi_s - lo_s)
    return np.unique(np.append(np.arange(lo_s, hi_s - length, length / 4), hi_s - length)), length
