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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hetopt.costs.calibration import (
    STEP_MODEL_VERSION,
    TERMS,
    Calibration,
    CalibrationEntry,
    read_csv_input,
    table_from_fits,
)
from hetopt.costs.fit import error_stats, fit_coefficients, ratios
from hetopt.costs.llm import decode_config, device_peaks, prefill_config
from hetopt.costs.step import COEFFICIENT_NAMES, StepCoefficients
from hetopt.errors import InputError
from hetopt.graph.architectures import get_architecture
from hetopt.graph.decompose import LlmWork
from hetopt.hardware import Device, HardwareCatalog

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
        return (
            frame["model"].isin(self.models)
            | seq.isin(self.seq_tokens)
            | ((frame["phase"] == "decode") & (seq - 1).isin(self.seq_tokens))
        )


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


def calibrate(
    measurements: pd.DataFrame,
    catalog: HardwareCatalog,
    holdout: HoldOut,
    reserve_bytes: dict[str, float] | None = None,
    version: str | None = None,
    progress: Callable[[str], None] | None = None,
    published: pd.DataFrame | None = None,
) -> CalibrationResult:
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
    published
        Published static-batch throughput of devices without step data
        (:func:`load_published`), fitted by :func:`fit_published` after the step data.
    """
    unknown = sorted(set(measurements["device"]) - set(catalog.names))
    if unknown:
        raise InputError(
            f"measurements: device(s) {unknown} are not in the hardware catalog "
            f"({list(catalog.names)}). Add them to the catalog or fix the names."
        )
    version = version or dt.date.today().isoformat()
    held = holdout.mask(measurements)
    rows: list[dict[str, object]] = []
    points = []
    for (device, precision), group in measurements.groupby(["device", "precision"], sort=True):
        if progress:
            progress(f"fitting {device} {precision} ({len(group)} points)")
        train, test = group[~held.loc[group.index]], group[held.loc[group.index]]
        if len(train) < 2 * len(TERMS):
            raise InputError(
                f"measurements: {device} {precision} has {len(train)} points "
                f"outside the hold-out; fitting needs at least {2 * len(TERMS)}."
            )
        peaks = device_peaks(catalog.get(str(device)), str(precision))
        fit = fit_coefficients(train, peaks)
        if fit.geomean_error > 1.5:
            log.warning(
                "%s %s: the step model fits its measurements only to x%.2f; check the "
                "measurements (units, device, model shape)",
                device,
                precision,
                fit.geomean_error,
            )
        scored = group.copy()
        scored["predicted_s"] = ratios(group, peaks, fit.coefficients) * group["step_s"]
        scored["ratio"] = scored["predicted_s"] / scored["step_s"]
        scored["held_out"] = held.loc[group.index]
        points.append(scored)
        test_ratio = scored.loc[scored["held_out"], "ratio"].to_numpy()
        if len(test_ratio) == 0:
            test_ratio = scored["ratio"].to_numpy()
            log.warning(
                "%s %s: no held-out points; its error band is the fit's own", device, precision
            )
        scored_test = scored[scored["held_out"]] if scored["held_out"].any() else scored
        phase_min = {
            ph: float(sub["ratio"].min()) if len(sub) else float(np.min(test_ratio))
            for ph, sub in (
                (p, scored_test[scored_test["phase"] == p]) for p in ("prefill", "decode")
            )
        }
        sources = sorted(set(group["source"]))
        source = "; ".join(sources) + f"; {len(train)} points fitted"
        common = dict(
            version=version,
            model_version=STEP_MODEL_VERSION,
            device=device,
            precision=precision,
            n_points=len(train),
            **band_columns(test_ratio, len(test)),
            source=source,
        )
        # the guard per phase: step data tells prefill and decode apart
        common.update(prefill_min_ratio=phase_min["prefill"], decode_min_ratio=phase_min["decode"])
        rows.extend(
            term_rows(
                common,
                fit.coefficients,
                (reserve_bytes or {}).get(str(device), DEFAULT_RESERVE_BYTES),
            )
        )
    table = table_from_fits(rows)
    if published is not None and len(published):
        if progress:
            progress(f"fitting published throughput ({len(published)} points)")
        rows.extend(fit_published(published, table, catalog, version))
        table = table_from_fits(rows)
    return CalibrationResult(table, pd.concat(points, ignore_index=True))


def fidelity_summary(
    points: pd.DataFrame, by: Sequence[str] = ("device", "precision", "phase")
) -> pd.DataFrame:
    """Held-out error per group: points, geometric-mean error, worst ratio."""
    held = points[points["held_out"]]
    out = []
    for key, group in held.groupby(list(by), sort=True):
        geo, worst = error_stats(group["ratio"].to_numpy())
        out.append(
            dict(
                zip(by, key if isinstance(key, tuple) else (key,), strict=True),
                points=len(group),
                geomean_error=geo,
                worst_ratio=worst,
            )
        )
    return pd.DataFrame(out)


PUBLISHED_COLUMNS = (
    "device",
    "model",
    "precision",
    "tp",
    "batch",
    "input_tokens",
    "output_tokens",
    "output_tokens_per_s",
    "source",
)


def static_batch_tok_s(
    device: Device,
    work: LlmWork,
    tp: int,
    batch: int,
    calib: CalibrationEntry | None,
    hop_latency_s: float = 2e-6,
) -> float:
    """Output tokens/s of one static batch: a prefill of ``batch`` prompts, then
    ``output_tokens - 1`` decode steps at the mean context (how vendor latency benchmarks run)."""
    pre = prefill_config(device, work, tp, batch, hop_latency_s, calib=calib)
    dec = decode_config(device, work, tp, batch, hop_latency_s, calib=calib)
    return batch * work.output_tokens / (pre.step_s + dec.latency_s)


def load_published(path: str | Path) -> pd.DataFrame:
    """Read published static-batch throughput (:data:`PUBLISHED_COLUMNS`), validated."""
    frame = read_csv_input(path, "published")
    missing = [c for c in PUBLISHED_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(
            f"{path}: missing column(s) {missing}; published measurements need "
            f"{list(PUBLISHED_COLUMNS)}."
        )
    for i, rec in enumerate(frame.to_dict("records")):
        at = f"{path} row {i + 2}"
        for column in ("tp", "batch", "input_tokens", "output_tokens", "output_tokens_per_s"):
            try:
                value = float(rec[column])
            except (TypeError, ValueError):
                raise InputError(
                    f"{at}, column {column}: not a number ({rec[column]!r})."
                ) from None
            if not value > 0 or not np.isfinite(value):
                raise InputError(f"{at}, column {column}: must be > 0, got {rec[column]!r}.")
            if column != "output_tokens_per_s" and value != int(value):
                raise InputError(
                    f"{at}, column {column}: must be a whole number, got {rec[column]!r}."
                )
        if rec["precision"] not in ("fp16", "bf16", "fp8"):
            raise InputError(
                f"{at}, column precision: must be fp16, bf16 or fp8 (an LLM "
                f"precision the step model is fitted for), got "
                f"{rec['precision']!r}."
            )
        if not isinstance(rec["source"], str) or not rec["source"].strip():
            raise InputError(f"{at}, column source: every measurement needs a source.")
    return frame


def fit_published(
    published: pd.DataFrame, table: Calibration, catalog: HardwareCatalog, version: str
) -> list[dict[str, object]]:
    """Calibrate devices that only have published throughput (e.g. MI300X, Gaudi 3).

    Such data are whole static batches, a handful per device: too few to fit every term. The
    device starts from the median coefficients of the GPUs calibrated on silicon data
    (:meth:`Calibration.prior`) and one factor ``s`` scales all its efficiencies (kernel floors,
    all-reduce latency and step overhead stay). ``s`` minimises the squared log error of
    tokens/s; its error band comes from leave-one-out fits (every point predicted by an ``s``
    fitted without it).

    Returns
    -------
    list of dict
        Table rows (one per term) for each (device, precision) in ``published``.
    """
    from scipy.optimize import minimize_scalar  # the calibration extra

    rows: list[dict[str, object]] = []
    for (device_name, precision), group in published.groupby(["device", "precision"]):
        device_name, precision = str(device_name), str(precision)
        if device_name not in catalog.names:
            raise InputError(
                f"published: device {device_name!r} is not in the hardware "
                f"catalog ({list(catalog.names)})."
            )
        prior = table.prior(precision)
        if prior is None:  # the step data has no GPU at this precision to start from
            log.warning(
                "published: %s %s skipped: no GPU calibrated at %s in this run",
                device_name,
                precision,
                precision,
            )
            continue
        device = catalog.get(device_name)
        points = [
            (
                LlmWork(
                    get_architecture(str(r["model"])),
                    precision,
                    int(r["input_tokens"]),
                    int(r["output_tokens"]),
                ),
                int(r["tp"]),
                int(r["batch"]),
                float(r["output_tokens_per_s"]),
            )
            for r in group.to_dict("records")
        ]
        effs = [n for n in COEFFICIENT_NAMES if "eff" in n]
        top = 1.0 / max(getattr(prior.coefficients, n) for n in effs)

        def scaled(
            s: float, prior: CalibrationEntry = prior, effs: list[str] = effs
        ) -> CalibrationEntry:
            c = replace(
                prior.coefficients,
                **{n: min(1.0, getattr(prior.coefficients, n) * s) for n in effs},
            )
            return replace(prior, coefficients=c)

        def log_ratios(s: float, subset: list[Any], device: Device = device) -> np.ndarray:
            entry = scaled(s)
            return np.array(
                [
                    np.log(static_batch_tok_s(device, w, tp, b, entry) / measured)
                    for w, tp, b, measured in subset
                ]
            )

        def best(subset: list[Any], top: float = top) -> float:
            return float(
                minimize_scalar(
                    lambda s: float(np.sum(log_ratios(s, subset) ** 2)),
                    bounds=(0.2, top),
                    method="bounded",
                ).x
            )

        s_all = best(points)
        held_out = len(points) > 2
        # Throughput ratios turned into time ratios (predicted / measured time), the
        # convention of the whole table: a ratio below 1 is an optimistic prediction.
        if held_out:
            loo = np.array(
                [
                    np.exp(-log_ratios(best(points[:k] + points[k + 1 :]), [points[k]])[0])
                    for k in range(len(points))
                ]
            )
        else:
            loo = np.exp(-log_ratios(s_all, points))
        entry = scaled(s_all)
        sources = "; ".join(sorted(set(group["source"].astype(str).str.split(",").str[0])))
        common = dict(
            version=version,
            model_version=STEP_MODEL_VERSION,
            device=device_name,
            precision=precision,
            n_points=len(points),
            **band_columns(loo, len(points) if held_out else 0),
            source=(
                f"published static-batch throughput ({len(points)} points: "
                f"{sources}); median of the silicon-calibrated GPUs with "
                f"efficiencies x{s_all:.3f}; "
                f"{'error by leave-one-out' if held_out else 'error in sample'}"
            ),
        )
        rows.extend(term_rows(common, entry.coefficients, DEFAULT_RESERVE_BYTES))
    return rows


def band_columns(ratio: np.ndarray, heldout_points: int) -> dict[str, object]:
    """The error columns of a table row from predicted / measured time ratios: geometric-mean
    error, extreme ratios, and (one band for both phases) the SLA guard's ratios."""
    geo, _ = error_stats(ratio)
    low = float(np.min(ratio))
    return dict(
        heldout_points=heldout_points,
        heldout_geomean_error=geo,
        heldout_min_ratio=low,
        heldout_max_ratio=float(np.max(ratio)),
        prefill_min_ratio=min(1.0, low),
        decode_min_ratio=min(1.0, low),
    )


def term_rows(
    common: dict[str, object], c: StepCoefficients, reserve_bytes: float
) -> list[dict[str, object]]:
    """One table row per term of :data:`~hetopt.costs.calibration.TERMS` for coefficients
    ``c``; ``common`` holds the columns every row of the device and precision shares."""
    rows = []
    for term, columns in TERMS.items():
        row: dict[str, object] = dict(
            common,
            term=term,
            eff_compute=None,
            eff_memory=None,
            floor_s=None,
            size_s=None,
            size_exponent=None,
            reserve_bytes=None,
        )
        for column, name in columns.items():
            row[column] = getattr(c, name)
        if term == "memory":
            row["reserve_bytes"] = reserve_bytes
        rows.append(row)
    return rows
