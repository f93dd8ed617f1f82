"""Arrival processes for the replay: Poisson, bursty (MMPP), diurnal, or a trace file."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hetopt.errors import InputError
from hetopt.inputs import numeric_column, read_csv_input


@dataclass(frozen=True)
class ArrivalSpec:
    """How requests arrive (the Hydra ``replay.arrivals`` block).

    Attributes
    ----------
    kind
        ``poisson``, ``mmpp`` (two-state bursty), ``diurnal`` or ``trace``.
    rate_per_s
        Mean rate (poisson), the calm-state rate (mmpp) or the mean of the daily curve (diurnal).
    burst_factor, burst_fraction, burst_mean_s
        MMPP: the burst state runs at ``burst_factor x rate`` for ``burst_fraction`` of the time,
        with bursts lasting ``burst_mean_s`` on average.
    peak_to_trough, period_s
        Diurnal: sinusoidal rate between trough and peak (ratio ``peak_to_trough``) over
        ``period_s``.
    trace_path
        CSV with a ``timestamp_s`` column (non-decreasing), optionally ``input_tokens`` and
        ``output_tokens``.
    """

    kind: str = "poisson"
    rate_per_s: float = 1.0
    burst_factor: float = 4.0
    burst_fraction: float = 0.1
    burst_mean_s: float = 5.0
    peak_to_trough: float = 3.0
    period_s: float = 86400.0
    trace_path: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("poisson", "mmpp", "diurnal", "trace"):
            raise InputError(
                f"replay.arrivals.kind must be poisson, mmpp, diurnal or trace, got {self.kind!r}."
            )
        if self.kind != "trace" and not (self.rate_per_s > 0 and math.isfinite(self.rate_per_s)):
            raise InputError(
                f"replay.arrivals.rate_per_s must be a positive number, got {self.rate_per_s!r}."
            )
        if self.kind == "trace" and not self.trace_path:
            raise InputError("replay.arrivals.kind=trace needs replay.arrivals.trace_path.")
        for name in ("burst_factor", "burst_mean_s", "peak_to_trough", "period_s"):
            if not getattr(self, name) > 0:
                raise InputError(f"replay.arrivals.{name} must be > 0.")
        if not 0 < self.burst_fraction < 1:
            raise InputError("replay.arrivals.burst_fraction must be in (0, 1).")


def _poisson(rate: float, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    n = rng.poisson(rate * duration_s)
    return np.sort(rng.uniform(0.0, duration_s, n))


def _thinned(
    rate_at: np.ndarray, t: np.ndarray, peak: float, rng: np.random.Generator
) -> np.ndarray:
    return t[rng.uniform(0.0, peak, len(t)) < rate_at]


def arrival_times(spec: ArrivalSpec, duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """Arrival timestamps in ``[0, duration_s)``, sorted.

    Parameters
    ----------
    spec
        The arrival process.
    duration_s
        Simulated horizon.
    rng
        Random generator (the replay's seed makes runs reproducible).
    """
    if spec.kind == "poisson":
        return _poisson(spec.rate_per_s, duration_s, rng)
    if spec.kind == "diurnal":
        # rate(t) = mean x (1 + a sin(2 pi t / period)), a from the peak-to-trough ratio
        a = (spec.peak_to_trough - 1) / (spec.peak_to_trough + 1)
        peak = spec.rate_per_s * (1 + a)
        t = _poisson(peak, duration_s, rng)
        rate = spec.rate_per_s * (1 + a * np.sin(2 * np.pi * t / spec.period_s))
        return _thinned(rate, t, peak, rng)
    if spec.kind == "mmpp":
        # Calm rate chosen so the long-run mean equals rate_per_s.
        f, k = spec.burst_fraction, spec.burst_factor
        calm = spec.rate_per_s / (1 - f + f * k)
        burst_s = spec.burst_mean_s
        calm_s = burst_s * (1 - f) / f
        times: list[np.ndarray] = []
        clock, bursting = 0.0, False
        while clock < duration_s:
            dwell = min(float(rng.exponential(burst_s if bursting else calm_s)), duration_s - clock)
            times.append(_poisson(calm * (k if bursting else 1.0), dwell, rng) + clock)
            clock += dwell
            bursting = not bursting
        return np.concatenate(times) if times else np.zeros(0)
    stamps = load_trace(spec.trace_path or "")["timestamp_s"].to_numpy(dtype=float)
    if len(stamps) and stamps[0] >= duration_s:
        raise InputError(
            f"replay trace {spec.trace_path}: its first arrival is at "
            f"{stamps[0]:g} s, after the replay's {duration_s:g} s, so nothing "
            f"would arrive. Raise replay.duration_s, or shift the trace's "
            f"timestamp_s to start near 0."
        )
    return stamps


def load_trace(path: str | Path) -> pd.DataFrame:
    """Read an arrival trace; a malformed file, a blank or non-numeric cell, a negative or
    decreasing timestamp are user errors naming the file, row and column."""
    what = "replay.arrivals.trace_path"
    frame = read_csv_input(path, what, required=("timestamp_s",))
    where = f"replay trace {path}"
    ts = numeric_column(frame, "timestamp_s", where, minimum=0)
    for column, low in (("input_tokens", 1), ("output_tokens", 0)):
        if column in frame.columns:
            frame[column] = numeric_column(frame, column, where, minimum=low, integer=True).astype(
                int
            )
    back = np.flatnonzero(np.diff(ts) < 0)
    if len(back):
        raise InputError(
            f"{where} row {int(frame.index[back[0] + 1]) + 2}: timestamps must not "
            f"decrease ({ts[back[0] + 1]:g} after {ts[back[0]]:g}). Sort the trace "
            f"by timestamp_s."
        )
    frame["timestamp_s"] = ts
    return frame.reset_index(drop=True)
