"""``hetopt calibrate``: fit the step model per device and precision, measure its held-out error.

The measurements (aiconfigurator's silicon database through :mod:`hetopt.costs.aic`, or a
user's CSV in :data:`hetopt.costs.fit.MEASUREMENT_COLUMNS`) are split: whole models and whole
sequence lengths are held out of the fit, the rest is fitted. The shipped coefficients are the
ones fitted without the held-out points, so the error the table reports is the error of exactly
those coefficients on data they never saw.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hetopt.costs.calibration import STEP_MODEL_VERSION, TERMS, Calibration, table_from_fits
from hetopt.costs.fit import error_stats, fit_coefficients, ratios
from hetopt.costs.llm import device_peaks
from hetopt.errors import InputError
from hetopt.hardware import HardwareCatalog

log = logging.getLogger(__name__)

DEFAULT_RESERVE_BYTES = 3.9e9
"""Engine memory beside weights and KV cache where the source does not state one: about
aiconfigurator's TensorRT-LLM figure for its GPUs (3.5 GiB runtime + 0.39 GB NCCL)."""


@dataclass(frozen=True)
class HoldOut:
    """Which measurements are kept out of the fit.

    Attributes
    ----------
    models
        Whole models held out.
    seq_tokens
        Whole input lengths held out (decode rows at ``seq_tokens + 1`` cached tokens too).
    """

    models: tuple[str, ...] = ("llama-3.1-70b",)
    seq_tokens: tuple[int, ...] = (2048,)

    def mask(self, frame: pd.DataFrame) -> pd.Series:
        """True for held-out rows."""
        seq = frame["seq_tokens"]
        return (frame["model"].isin(self.models) | seq.isin(self.seq_tokens)
                | ((frame["phase"] == "decode") & (seq - 1).isin(self.seq_tokens)))


@dataclass(frozen=True)
class CalibrationResult:
    """What ``hetopt calibrate`` produces.

    Attributes
    ----------
    table
        The fitted calibration table.
    points
        Every measurement with ``predicted_s``, ``ratio`` (predicted / measured) and
        ``held_out``.
    """

    table: Calibration
    points: pd.DataFrame


def calibrate(measurements: pd.DataFrame, catalog: HardwareCatalog, holdout: HoldOut,
              reserve_bytes: dict[str, float] | None = None, version: str | None = None,
              progress: Callable[[str], None] | None = None) -> CalibrationResult:
    """Fit every (device, precision) in ``measurements`` and evaluate the held-out points.

    Parameters
    ----------
    measurements
        Validated measurement rows.
    catalog
        Devices named in the measurements (their datasheet peaks anchor the efficiencies).
    holdout
        Points kept out of the fit.
    reserve_bytes
        Engine memory reserve per device (``memory`` term); :data:`DEFAULT_RESERVE_BYTES`
        where absent.
    version
        Table version (default: today's date).
    progress
        Called with a message per device and precision.
    """
    unknown = sorted(set(measurements["device"]) - set(catalog.names))
    if unknown:
        raise InputError(f"measurements: device(s) {unknown} are not in the hardware catalog "
                         f"({list(catalog.names)}). Add them to the catalog or fix the names.")
    version = version or dt.date.today().isoformat()
    held = holdout.mask(measurements)
    rows: list[dict[str, object]] = []
    points = []
    for (device, precision), group in measurements.groupby(["device", "precision"], sort=True):
        if progress:
            progress(f"fitting {device} {precision} ({len(group)} points)")
        train, test = group[~held.loc[group.index]], group[held.loc[group.index]]
        if len(train) < 2 * len(TERMS):
            raise InputError(f"measurements: {device} {precision} has {len(train)} points "
                             f"outside the hold-out; fitting needs at least {2 * len(TERMS)}.")
        peaks = device_peaks(catalog.get(str(device)), str(precision))
        fit = fit_coefficients(train, peaks)
        scored = group.copy()
        scored["predicted_s"] = ratios(group, peaks, fit.coefficients) * group["step_s"]
        scored["ratio"] = scored["predicted_s"] / scored["step_s"]
        scored["held_out"] = held.loc[group.index]
        points.append(scored)
        test_ratio = scored.loc[scored["held_out"], "ratio"].to_numpy()
        if len(test_ratio) == 0:
            test_ratio = scored["ratio"].to_numpy()
            log.warning("%s %s: no held-out points; its error band is the fit's own", device,
                        precision)
        geo, _ = error_stats(test_ratio)
        scored_test = scored[scored["held_out"]] if scored["held_out"].any() else scored
        phase_min = {ph: float(sub["ratio"].min()) if len(sub) else float(np.min(test_ratio))
                     for ph, sub in ((p, scored_test[scored_test["phase"] == p])
                                     for p in ("prefill", "decode"))}
        sources = sorted(set(group["source"]))
        source = "; ".join(sources) + f"; {len(train)} points fitted"
        common = dict(version=version, model_version=STEP_MODEL_VERSION, device=device,
                      precision=precision, n_points=len(train), heldout_points=len(test),
                      heldout_geomean_error=geo, heldout_min_ratio=float(np.min(test_ratio)),
                      heldout_max_ratio=float(np.max(test_ratio)),
                      prefill_min_ratio=phase_min["prefill"],
                      decode_min_ratio=phase_min["decode"], source=source)
        c = fit.coefficients
        for term, columns in TERMS.items():
            row: dict[str, object] = dict(common, term=term, eff_compute=None, eff_memory=None,
                                          floor_s=None, size_s=None, size_exponent=None,
                                          reserve_bytes=None)
            for column, name in columns.items():
                row[column] = getattr(c, name)
            if term == "memory":
                row["reserve_bytes"] = (reserve_bytes or {}).get(str(device),
                                                                  DEFAULT_RESERVE_BYTES)
            rows.append(row)
    return CalibrationResult(table_from_fits(rows), pd.concat(points, ignore_index=True))


def fidelity_summary(points: pd.DataFrame, by: Sequence[str] = ("device", "precision", "phase")
                     ) -> pd.DataFrame:
    """Held-out error per group: points, geometric-mean error, worst ratio."""
    held = points[points["held_out"]]
    out = []
    for key, group in held.groupby(list(by), sort=True):
        geo, worst = error_stats(group["ratio"].to_numpy())
        out.append(dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True),
                        points=len(group), geomean_error=geo, worst_ratio=worst))
    return pd.DataFrame(out)
