"""Measured LLM performance: plan from a profile CSV instead of the roofline.

A user with benchmarks (vLLM, TensorRT-LLM, Optimum-Habana ...) writes one row per measured
configuration::

    device,phase,model,precision,input_tokens,output_tokens,tp,pp,batch,step_s,requests_per_s,source
    H100,decode,llama-3-8b,fp16,1024,256,1,1,64,0.0121,20.6,"vLLM 0.9 bench, 2025-06"

``phase`` is ``prefill`` or ``decode``; ``step_s`` is the batch latency (prefill, the TTFT
contribution) or one token-to-token step (decode); ``requests_per_s`` is what one replica of
``tp x pp`` devices completes. An optional ``mem_per_device_bytes`` column overrides the memory
model. For every (device, phase, model, precision, input, output) the profile covers, its rows
replace the roofline's; everything else is still modelled.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hetopt.errors import InputError

REQUIRED = ("device", "phase", "model", "precision", "input_tokens", "output_tokens", "tp", "pp",
            "batch", "step_s", "requests_per_s", "source")
KEY = ("device", "phase", "model", "precision", "input_tokens", "output_tokens")


def load_measured_profile(path: str | Path) -> pd.DataFrame:
    """Read and validate a measured-performance CSV.

    Raises
    ------
    InputError
        Missing file or columns, or a row with a bad value (the message names the row and
        column).
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError) as exc:
        raise InputError(f"costs.measured_profile: cannot read {path} ({exc}).") from None
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; a measured profile needs "
                         f"{list(REQUIRED)} (see hetopt.costs.measured).")
    for i, row in frame.iterrows():
        where = f"{path} row {int(str(i)) + 2}"
        if row["phase"] not in ("prefill", "decode"):
            raise InputError(f"{where}: phase must be 'prefill' or 'decode', got "
                             f"{row['phase']!r}.")
        for col in ("input_tokens", "tp", "pp", "batch", "step_s", "requests_per_s"):
            if not pd.notna(row[col]) or float(row[col]) <= 0:
                raise InputError(f"{where}: {col} must be > 0, got {row[col]!r}.")
        if not pd.notna(row["output_tokens"]) or float(row["output_tokens"]) < 0:
            raise InputError(f"{where}: output_tokens must be >= 0.")
        if not str(row["source"]).strip() or not pd.notna(row["source"]):
            raise InputError(f"{where}: every measurement needs a source.")
    frame["model"] = frame["model"].str.lower()
    return frame


def measured_rows(profile: pd.DataFrame | None, device: str, phase: str, model: str,
                  precision: str, input_tokens: int, output_tokens: int) -> pd.DataFrame:
    """The profile rows for one LLM phase on one device (empty if not measured)."""
    if profile is None or profile.empty:
        return pd.DataFrame()
    mask = ((profile["device"] == device) & (profile["phase"] == phase)
            & (profile["model"] == model.lower()) & (profile["precision"] == precision)
            & (profile["input_tokens"] == input_tokens)
            & (profile["output_tokens"] == output_tokens))
    return profile[mask]
