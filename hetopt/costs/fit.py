"""Fit the step model's coefficients to measured step times (``hetopt calibrate``).

A measurement is one engine step on one device: a prefill of ``batch`` prompts of
``seq_tokens`` tokens, or one decode step of ``batch`` sequences with ``seq_tokens`` cached
tokens, at tensor-parallel degree ``tp``; ``step_s`` is its measured time. The model's shape
travels with every row, so any model can be measured, not only the ones in hetopt's
architecture table::

    device,precision,model,phase,tp,batch,seq_tokens,step_s,n_layers,d_model,n_heads,n_kv_heads,head_dim,d_ff,vocab_size,source
    H100,fp16,llama-3.1-8b,decode,1,64,1025,0.00998,32,4096,32,8,128,14336,128256,"aiconfigurator 0.12.0 ..."

:func:`fit_coefficients` minimises the squared log ratio of prediction to measurement over
one device and precision (SciPy's bounded trust-region least squares, from the calibration
extra), so the fit targets the geometric-mean error the fidelity study reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hetopt.costs.calibration import check_phase, finite_number, read_csv_input
from hetopt.costs.step import (
    COEFFICIENT_NAMES,
    DevicePeaks,
    ModelShape,
    StepCoefficients,
    StepWork,
    predict_step,
    stack_work,
    step_work,
)
from hetopt.errors import InputError
from hetopt.graph.architectures import BYTES_PER_ELEMENT

SHAPE_COLUMNS = (
    "n_layers",
    "d_model",
    "n_heads",
    "n_kv_heads",
    "head_dim",
    "d_ff",
    "vocab_size",
)
"""The model-shape columns every measurement row carries (:class:`ModelShape`'s sizes)."""
MEASUREMENT_COLUMNS = (
    "device",
    "precision",
    "model",
    "phase",
    "tp",
    "batch",
    "seq_tokens",
    "step_s",
    *SHAPE_COLUMNS,
    "source",
)
_INT_COLUMNS = ("tp", "batch", "seq_tokens", *SHAPE_COLUMNS)


# Bounds of each coefficient (efficiencies are fractions of peak; floors in seconds) and the
# scale the optimiser sees them at (so that microsecond floors and unit efficiencies move
# alike).
def _bounds(name: str) -> tuple[float, float, float]:
    """(lower, upper, scale) of one coefficient."""
    if name == "allreduce_size_exponent":
        return 0.1, 1.0, 1.0
    if "eff" in name:  # PCIe all-reduce reaches a few per cent of the link's datasheet rate
        return (0.002 if "allreduce" in name else 0.02), 1.0, 1.0
    if name == "step_overhead_s":
        return 0.0, 0.05, 1e-3
    if name.startswith("allreduce_size_s"):
        return 0.0, 0.01, 1e-6
    return 0.0, 1e-3, 1e-6


_LOWER = {n: _bounds(n)[0] for n in COEFFICIENT_NAMES}
_UPPER = {n: _bounds(n)[1] for n in COEFFICIENT_NAMES}
_SCALE = {n: _bounds(n)[2] for n in COEFFICIENT_NAMES}


def validate_measurements(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """Check a measurement frame; raise :class:`InputError` naming the row and column.

    Parameters
    ----------
    frame
        Rows with :data:`MEASUREMENT_COLUMNS`.
    where
        The file (or other origin) named in messages.
    """
    missing = [c for c in MEASUREMENT_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(
            f"{where}: missing column(s) {missing}; a measurements file needs "
            f"{list(MEASUREMENT_COLUMNS)} (see hetopt.costs.fit)."
        )
    if frame.empty:
        raise InputError(
            f"{where}: no measurement rows. Add at least one row per device and precision to fit."
        )
    out = frame.copy()
    for i, row in enumerate(frame.itertuples(index=False)):
        rec = row._asdict()
        at = f"{where} row {i + 2}"
        for col in _INT_COLUMNS:
            value = _number(rec[col], f"{at}, column {col}")
            if value < 1 or value != int(value):
                raise InputError(
                    f"{at}, column {col}: must be a positive integer, got {rec[col]!r}."
                )
        step = _number(rec["step_s"], f"{at}, column step_s")
        if not step > 0:
            raise InputError(f"{at}, column step_s: must be > 0 seconds, got {rec['step_s']!r}.")
        check_phase(rec["phase"], at)
        if rec["precision"] not in BYTES_PER_ELEMENT:
            raise InputError(
                f"{at}, column precision: must be one of "
                f"{sorted(BYTES_PER_ELEMENT)}, got {rec['precision']!r}."
            )
        if not isinstance(rec["source"], str) or not rec["source"].strip():
            raise InputError(f"{at}, column source: every measurement needs a source.")
        for col in ("device", "model"):
            if not isinstance(rec[col], str) or not rec[col].strip():
                raise InputError(f"{at}, column {col}: must name the {col}, got {rec[col]!r}.")
    for col in _INT_COLUMNS:
        out[col] = out[col].astype(float).astype(int)
    out["step_s"] = out["step_s"].astype(float)
    return out


def _number(value: object, where: str) -> float:
    return finite_number(
        value, where, " Write plain numbers in base units (seconds, tokens), without unit suffixes."
    )


def load_measurements(path: str | Path) -> pd.DataFrame:
    """Read and validate a measurements CSV (:data:`MEASUREMENT_COLUMNS`)."""
    frame = read_csv_input(path, "measurements", rows_name="measurement")
    return validate_measurements(frame, str(path))


def shape_of(rec: Mapping[str, Any]) -> ModelShape:
    """The model shape carried by one measurement row."""
    return ModelShape(str(rec["model"]), **{c: int(rec[c]) for c in SHAPE_COLUMNS})


def shape_columns(shape: ModelShape) -> dict[str, int]:
    """A measurement row's :data:`SHAPE_COLUMNS` for ``shape`` (the inverse of :func:`shape_of`).

    Parameters
    ----------
    shape
        The measured model's shape.

    Returns
    -------
    dict
        Column name to size, in :data:`SHAPE_COLUMNS` order.

    Examples
    --------
    >>> from hetopt.graph.architectures import get_architecture
    >>> shape = ModelShape.from_architecture(get_architecture("llama-3-8b"))
    >>> shape_columns(shape)["n_layers"], shape_of({**shape_columns(shape), "model": shape.name}) == shape
    (32, True)
    """
    return {c: getattr(shape, c) for c in SHAPE_COLUMNS}


def work_of(rec: Mapping[str, Any], shape: ModelShape | None = None) -> StepWork:
    """The step model's work for one measurement row."""
    shape = shape or shape_of(rec)
    bpe = BYTES_PER_ELEMENT[str(rec["precision"])]
    prefill = rec["phase"] == "prefill"
    seq = int(rec["seq_tokens"])
    return step_work(
        shape,
        weight_bytes=bpe,
        kv_bytes=bpe,
        tp=int(rec["tp"]),
        batch=int(rec["batch"]),
        q_tokens=seq if prefill else 1,
        kv_tokens=seq,
    )


@dataclass(frozen=True)
class FitResult:
    """Coefficients fitted for one device and precision.

    Attributes
    ----------
    coefficients
        The fitted :class:`StepCoefficients`.
    n_points
        Measurements used.
    geomean_error
        ``exp(mean |log(predicted / measured)|)`` on the fitted points.
    worst_ratio
        The prediction/measurement ratio farthest from 1 on the fitted points.
    """

    coefficients: StepCoefficients
    n_points: int
    geomean_error: float
    worst_ratio: float


def ratios(frame: pd.DataFrame, peaks: DevicePeaks, coefficients: StepCoefficients) -> np.ndarray:
    """Predicted / measured step time for every row of ``frame`` (one device and precision)."""
    work = stack_work([work_of(rec) for rec in frame.to_dict("records")])
    predicted = predict_step(work, peaks, coefficients).total_s
    return np.asarray(predicted, dtype=float) / frame["step_s"].to_numpy(dtype=float)


def error_stats(ratio: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Geometric-mean error ``exp(mean |log r|)`` and the ratio farthest from 1.

    Examples
    --------
    >>> g, worst = error_stats([1.1, 1 / 1.1, 2.0])
    >>> round(g, 3), worst
    (1.343, 2.0)
    """
    logs = np.abs(np.log(np.asarray(ratio, dtype=float)))
    worst = float(np.asarray(ratio, dtype=float)[int(np.argmax(logs))])
    return float(np.exp(logs.mean())), worst


def fit_coefficients(
    frame: pd.DataFrame, peaks: DevicePeaks, start: StepCoefficients | None = None
) -> FitResult:
    """Least-squares fit of the step model to one device and precision's measurements.

    Parameters
    ----------
    frame
        Validated measurement rows of one device and precision.
    peaks
        The device's datasheet peaks at that precision.
    start
        Initial coefficients (defaults: the roofline's 70 % / 80 % and no floors).

    Returns
    -------
    FitResult
    """
    from scipy.optimize import least_squares  # the calibration extra

    measured = frame["step_s"].to_numpy(dtype=float)
    work = stack_work([work_of(rec) for rec in frame.to_dict("records")])
    scale = np.array([_SCALE[n] for n in COEFFICIENT_NAMES])
    lower = np.array([_LOWER[n] for n in COEFFICIENT_NAMES]) / scale
    upper = np.array([_UPPER[n] for n in COEFFICIENT_NAMES]) / scale
    x0 = (start or StepCoefficients()).as_vector() / scale
    x0 = np.clip(x0, lower + 1e-9, upper - 1e-9)

    def residual(x: np.ndarray) -> np.ndarray:
        c = StepCoefficients.from_vector(np.clip(x * scale, lower * scale, upper * scale))
        predicted = np.asarray(predict_step(work, peaks, c).total_s, dtype=float)
        return np.log(predicted / measured)

    best = None
    # Two starts (datasheet-like and latency-dominated) guard against the kinks of max().
    for guess in (x0, np.clip(x0 * 0.5 + (lower + upper) * 0.02, lower + 1e-9, upper - 1e-9)):
        sol = least_squares(
            residual, guess, bounds=(lower, upper), method="trf", x_scale=1.0, max_nfev=4000
        )
        if best is None or sol.cost < best.cost:
            best = sol
    assert best is not None
    coefficients = StepCoefficients.from_vector(
        np.clip(best.x * scale, lower * scale, upper * scale)
    )
    g, worst = error_stats(np.exp(residual(best.x)))
    return FitResult(coefficients, len(frame), g, worst)
