"""The fitted step-model coefficients hetopt ships, one row per device x precision x term.

``hetopt/costs/data/calibration.csv`` is written by ``hetopt calibrate`` and read by every plan
(``costs.model=calibrated``, the default). Each row holds one term's coefficients:

========================  =============================================================
term                      columns used
========================  =============================================================
``kernel``                ``floor_s`` (latency floor of every kernel launch)
``gemm``                  ``eff_compute``, ``eff_memory``
``context_attention``     ``eff_compute``, ``floor_s`` (fixed cost per layer in prefill)
``generation_attention``  ``eff_memory``
``elementwise``           ``eff_memory``
``allreduce_tp2|4|8``     ``eff_memory`` (of the scale-up link), ``floor_s`` (latency),
                          ``size_s`` (time of a 1 MB message), ``size_exponent``
``step``                  ``floor_s`` (per-step framework overhead)
``memory``                ``reserve_bytes`` (engine runtime, activations, NCCL buffers)
========================  =============================================================

Every row carries its ``source`` (database, version, system, framework), ``n_points`` fitted
and the error measured on points held out of the fit (``heldout_geomean_error``,
``heldout_min_ratio``, ``heldout_max_ratio`` of predicted / measured; ``prefill_min_ratio`` and
``decode_min_ratio``, the most optimistic held-out prediction per phase, set the SLA guard). A device and precision
without rows is *uncalibrated*: it keeps the roofline with the catalog's default efficiencies
and is flagged so in ``hetopt catalog``, ``plan.json`` and the printed plan.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hetopt.costs.step import StepCoefficients
from hetopt.errors import InputError
from hetopt.inputs import finite_number as finite_number  # re-exported: one home
from hetopt.inputs import local_path
from hetopt.inputs import read_csv_input as read_csv_input

STEP_MODEL_VERSION = "step-3"
"""Version of the step model's equations (:mod:`hetopt.costs.step`); a table fitted for
another version is rejected."""

CALIBRATION_PATH = Path(__file__).parent / "data" / "calibration.csv"
"""The table shipped with hetopt."""

PUBLISHED_PATH = Path(__file__).parent / "data" / "published_llm_throughput.csv"
"""Published static-batch throughput of accelerators without a silicon database (vendor pages,
one source per row), fitted by ``hetopt calibrate``."""

TABLE_COLUMNS = (
    "version",
    "model_version",
    "device",
    "precision",
    "term",
    "eff_compute",
    "eff_memory",
    "floor_s",
    "size_s",
    "size_exponent",
    "reserve_bytes",
    "n_points",
    "heldout_points",
    "heldout_geomean_error",
    "heldout_min_ratio",
    "heldout_max_ratio",
    "prefill_min_ratio",
    "decode_min_ratio",
    "source",
)

# term -> {table column: StepCoefficients field}
TERMS: dict[str, dict[str, str]] = {
    "kernel": {"floor_s": "kernel_floor_s"},
    "gemm": {"eff_compute": "gemm_eff_compute", "eff_memory": "gemm_eff_memory"},
    "context_attention": {"eff_compute": "ctx_attn_eff_compute", "floor_s": "ctx_attn_floor_s"},
    "generation_attention": {"eff_memory": "gen_attn_eff_memory"},
    "elementwise": {"eff_memory": "elementwise_eff_memory"},
    "allreduce_tp2": {
        "eff_memory": "allreduce_eff_bw_tp2",
        "floor_s": "allreduce_latency_s_tp2",
        "size_s": "allreduce_size_s_tp2",
        "size_exponent": "allreduce_size_exponent",
    },
    "allreduce_tp4": {
        "eff_memory": "allreduce_eff_bw_tp4",
        "floor_s": "allreduce_latency_s_tp4",
        "size_s": "allreduce_size_s_tp4",
        "size_exponent": "allreduce_size_exponent",
    },
    "allreduce_tp8": {
        "eff_memory": "allreduce_eff_bw_tp8",
        "floor_s": "allreduce_latency_s_tp8",
        "size_s": "allreduce_size_s_tp8",
        "size_exponent": "allreduce_size_exponent",
    },
    "step": {"floor_s": "step_overhead_s"},
    "memory": {},
}


@dataclass(frozen=True)
class CalibrationEntry:
    """Everything the cost model knows about one calibrated device and precision.

    Attributes
    ----------
    device, precision
        The catalog device and GEMM precision.
    coefficients
        The fitted step-model coefficients.
    reserve_bytes
        Memory per device an engine needs beside weights and KV cache.
    heldout_geomean_error, heldout_min_ratio, heldout_max_ratio
        Error on held-out measurements: ``exp(mean |log r|)`` and the extreme ratios of
        predicted / measured step time (``min < 1`` means the model can be optimistic).
    prefill_min_ratio, decode_min_ratio
        The most optimistic held-out ratio per phase.
    source
        Provenance of the measurements.
    """

    device: str
    precision: str
    coefficients: StepCoefficients
    reserve_bytes: float
    heldout_geomean_error: float
    heldout_min_ratio: float
    heldout_max_ratio: float
    prefill_min_ratio: float
    decode_min_ratio: float
    source: str

    @property
    def derived(self) -> bool:
        """True when the entry scales the median of other devices (published-data fits and
        priors), rather than being fitted to step measurements of its own."""
        return "median of" in self.source

    @property
    def error_band(self) -> str:
        """The held-out error in words, e.g. ``x1.05 (0.80-1.20)``; ``unknown`` for a prior."""
        if math.isnan(self.heldout_geomean_error):
            return "unknown"
        return (
            f"x{self.heldout_geomean_error:.2f} ({self.heldout_min_ratio:.2f}-"
            f"{self.heldout_max_ratio:.2f})"
        )


@dataclass(frozen=True)
class Calibration:
    """A validated calibration table.

    Attributes
    ----------
    frame
        Rows with :data:`TABLE_COLUMNS`.
    origin
        File it was read from (for messages).
    """

    frame: pd.DataFrame
    origin: str = "in-memory table"

    @functools.cached_property
    def version(self) -> str:
        """The table's version (one per table; read once)."""
        versions = self.frame["version"].dropna().unique()
        return str(versions[0]) if len(versions) else "empty"

    def lookup(self, device: str, precision: str) -> CalibrationEntry | None:
        """The entry of ``device`` at ``precision``, or None when uncalibrated.

        Installed-fleet rows (``H100-owned``) use their device's calibration. bf16 uses fp16's.
        """
        return self._by_key.get((_base_name(device), _precision_key(precision)))

    def prior(self, precision: str) -> CalibrationEntry | None:
        """Coefficients for a device the table does not cover: the median of every calibrated
        device's coefficients at ``precision`` (and its SLA-guard ratios).

        A datasheet roofline with no latency floors is known to be optimistic (the fidelity
        study measures by how much), so uncalibrated accelerators borrow the kernel floors,
        overheads and efficiencies measured on calibrated ones rather than none at all. They
        stay flagged ``uncalibrated``; their error is unknown.
        """
        key = _precision_key(precision)
        if key not in self._priors:  # once per precision: the cost table asks per operator
            self._priors[key] = self._median_entry(key)
        return self._priors[key]

    @functools.cached_property
    def _priors(self) -> dict[str, CalibrationEntry | None]:
        return {}

    def _median_entry(self, key: str) -> CalibrationEntry | None:
        entries = [e for (_, p), e in self._by_key.items() if p == key and not e.derived]
        if not entries:
            return None
        vectors = np.array([e.coefficients.as_vector() for e in entries])
        median = StepCoefficients.from_vector(np.median(vectors, axis=0))

        def mid(attr: str) -> float:
            return float(np.median([getattr(e, attr) for e in entries]))

        names = ", ".join(sorted(e.device for e in entries))
        return CalibrationEntry(
            "prior",
            key,
            median,
            mid("reserve_bytes"),
            math.nan,
            math.nan,
            math.nan,
            mid("prefill_min_ratio"),
            mid("decode_min_ratio"),
            f"median of the calibrated devices at {key} ({names}); table {self.version}",
        )

    def devices(self) -> set[str]:
        """Devices with at least one calibrated precision."""
        return {d for d, _ in self._by_key}

    @functools.cached_property
    def _by_key(self) -> dict[tuple[str, str], CalibrationEntry]:
        entries: dict[tuple[str, str], CalibrationEntry] = {}
        for (device, precision), group in self.frame.groupby(["device", "precision"], sort=False):
            values: dict[str, float] = {}
            reserve = 0.0
            for rec in group.to_dict("records"):
                for column, name in TERMS[rec["term"]].items():
                    values[name] = float(rec[column])
                if rec["term"] == "memory":
                    reserve = float(rec["reserve_bytes"])
            first = group.iloc[0]
            entries[(str(device), str(precision))] = CalibrationEntry(
                str(device),
                str(precision),
                StepCoefficients(**values),
                reserve,
                float(first["heldout_geomean_error"]),
                float(first["heldout_min_ratio"]),
                float(first["heldout_max_ratio"]),
                float(first["prefill_min_ratio"]),
                float(first["decode_min_ratio"]),
                str(first["source"]),
            )
        return entries

    def save(self, path: str | Path) -> None:
        """Write the table as CSV (atomically: a temporary file, then a rename)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        self.frame.to_csv(tmp, index=False)  # shortest round-trip repr of every float
        tmp.replace(path)


def check_phase(phase: object, at: str) -> None:
    """Refuse a measured row's ``phase`` unless it is ``prefill`` or ``decode``.

    Parameters
    ----------
    phase
        The row's ``phase`` cell.
    at
        The file and row, named in the message (``"<file> row 3"``).

    Raises
    ------
    InputError
        Any other value.

    Examples
    --------
    >>> check_phase("decode", "m.csv row 2")
    >>> check_phase("generate", "m.csv row 3")
    Traceback (most recent call last):
    ...
    hetopt.errors.InputError: m.csv row 3, column phase: must be 'prefill' or 'decode', got 'generate'.
    """
    if phase not in ("prefill", "decode"):
        raise InputError(f"{at}, column phase: must be 'prefill' or 'decode', got {phase!r}.")


def _base_name(device: str) -> str:
    return device[: -len("-owned")] if device.endswith("-owned") else device


def _precision_key(precision: str) -> str:
    return "fp16" if precision == "bf16" else precision


def validate_table(frame: pd.DataFrame, where: str) -> Calibration:
    """Check a calibration frame; raise :class:`InputError` naming the row and column."""
    missing = [c for c in TABLE_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(
            f"{where}: missing column(s) {missing}; a calibration table needs "
            f"{list(TABLE_COLUMNS)} (see hetopt.costs.calibration)."
        )
    for index, rec in zip(frame.index, frame.to_dict("records"), strict=True):
        at = f"{where} row {int(index) + 2}"
        if rec["model_version"] != STEP_MODEL_VERSION:
            raise InputError(
                f"{at}, column model_version: {rec['model_version']!r} was fitted "
                f"for another step model; this hetopt runs {STEP_MODEL_VERSION}. "
                f"Re-run `hetopt calibrate`."
            )
        term = rec["term"]
        if term not in TERMS:
            raise InputError(
                f"{at}, column term: unknown term {term!r}; terms are {sorted(TERMS)}."
            )
        needed = list(TERMS[term]) + (["reserve_bytes"] if term == "memory" else [])
        for column in needed + [
            "heldout_geomean_error",
            "heldout_min_ratio",
            "heldout_max_ratio",
            "prefill_min_ratio",
            "decode_min_ratio",
        ]:
            value = finite_number(rec[column], f"{at}, column {column}")
            if column.startswith(("eff", "size_exponent")) and not 0 < value <= 1:
                raise InputError(f"{at}, column {column}: must be in (0, 1], got {rec[column]!r}.")
            if column.endswith("_ratio") and not value > 0:
                raise InputError(
                    f"{at}, column {column}: a predicted / measured ratio must "
                    f"be > 0, got {rec[column]!r}."
                )
            if column == "heldout_geomean_error" and value < 1:
                raise InputError(
                    f"{at}, column {column}: exp(mean |log ratio|) is >= 1, got {rec[column]!r}."
                )
            if value < 0:
                raise InputError(f"{at}, column {column}: must be >= 0, got {rec[column]!r}.")
        if not isinstance(rec["source"], str) or not rec["source"].strip():
            raise InputError(f"{at}, column source: every calibration row needs a source.")
    for (device, precision), group in frame.groupby(["device", "precision"], sort=False):
        twice = sorted(group.loc[group["term"].duplicated(), "term"])
        if twice:
            raise InputError(
                f"{where}: {device} {precision} has the term(s) {twice} more than "
                f"once; keep one row per device, precision and term."
            )
        absent = sorted(set(TERMS) - set(group["term"]))
        if absent:
            raise InputError(
                f"{where}: {device} {precision} lacks the term(s) {absent}; "
                f"every calibrated device needs all of {sorted(TERMS)}."
            )
    return Calibration(frame.reset_index(drop=True), where)


@functools.lru_cache(maxsize=8)
def _load_cached(path: str) -> Calibration:
    frame = read_csv_input(
        path,
        "costs.calibration",
        " Point it at a table written by `hetopt calibrate`, or leave it "
        "unset for the shipped one.",
    )
    return validate_table(frame, path)


def load_calibration(path: str | Path | None = None) -> Calibration:
    """Read a calibration table (the shipped one by default).

    Examples
    --------
    >>> table = load_calibration()
    >>> table.lookup("H100", "fp16") is not None, table.lookup("L4", "fp16") is None
    (True, True)
    """
    if path is not None:
        path = local_path(path, "costs.calibration")
    return _load_cached(str(path if path is not None else CALIBRATION_PATH))


def table_from_fits(rows: list[dict[str, object]]) -> Calibration:
    """Build a table from ``hetopt calibrate``'s per-term rows (validated)."""
    frame = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    return validate_table(frame, "hetopt calibrate")
