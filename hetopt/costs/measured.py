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

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from hetopt.costs.calibration import check_phase
from hetopt.errors import InputError
from hetopt.graph.architectures import BYTES_PER_ELEMENT, load_architectures
from hetopt.inputs import did_you_mean, numeric_column, read_csv_input, text_column

REQUIRED = (
    "device",
    "phase",
    "model",
    "precision",
    "input_tokens",
    "output_tokens",
    "tp",
    "pp",
    "batch",
    "step_s",
    "requests_per_s",
    "source",
)
KEY = ("device", "phase", "model", "precision", "input_tokens", "output_tokens")


def load_measured_profile(path: str | Path) -> pd.DataFrame:
    """Read and validate a measured-performance CSV.

    Raises
    ------
    InputError
        A missing, empty, binary or header-only file, a missing column, or a row with a bad
        value: blank, not a number (``12.1ms``), out of range, an unknown phase, precision or
        model (the message names the file, row and column).
    """
    what = "costs.measured_profile"
    frame = read_csv_input(path, what, required=REQUIRED)
    where = f"{what} {path}"
    for col in ("device", "phase", "model", "precision", "source"):
        frame[col] = text_column(frame, col, where)
    for col in ("input_tokens", "tp", "pp", "batch"):
        frame[col] = numeric_column(frame, col, where, minimum=1, integer=True).astype(int)
    frame["output_tokens"] = numeric_column(
        frame, "output_tokens", where, minimum=0, integer=True
    ).astype(int)
    for col in ("step_s", "requests_per_s"):
        frame[col] = numeric_column(frame, col, where, minimum=0, strict=True)
    if "mem_per_device_bytes" in frame.columns:  # optional; a blank cell keeps the model
        given = frame[frame["mem_per_device_bytes"].notna()]
        numeric_column(given, "mem_per_device_bytes", where, minimum=0, strict=True)
        frame["mem_per_device_bytes"] = pd.to_numeric(frame["mem_per_device_bytes"])
    archs = {name.lower() for name in load_architectures()}
    for index, rec in frame.iterrows():
        at = f"{where} row {int(str(index)) + 2}"
        check_phase(rec["phase"], at)
        if rec["precision"] not in BYTES_PER_ELEMENT:
            raise InputError(
                f"{at}, column precision: unknown precision {rec['precision']!r}"
                f";{did_you_mean(rec['precision'], BYTES_PER_ELEMENT)} hetopt "
                f"knows {list(BYTES_PER_ELEMENT)}."
            )
        if rec["model"].lower() not in archs:
            raise InputError(
                f"{at}, column model: unknown model {rec['model']!r};"
                f"{did_you_mean(rec['model'].lower(), archs)} the profile's rows "
                f"must name a model of hetopt's architecture table "
                f"(`hetopt list`)."
            )
    frame["model"] = frame["model"].str.lower()
    return frame


def check_profile_matches(
    profile: pd.DataFrame,
    path: str,
    devices: Sequence[str],
    considered: Sequence[str],
    phases: Sequence[tuple[str, str, str, int, int]],
) -> None:
    """A measured profile must describe this plan: every row's device is in the catalog, and
    some row matches an LLM phase the plan places.

    Parameters
    ----------
    profile
        From :func:`load_measured_profile`.
    path
        The file, for messages.
    devices
        Every device of the loaded catalog.
    considered
        The devices this plan may use (``hardware.devices``).
    phases
        ``(phase, model, precision, input_tokens, output_tokens)`` of each LLM phase of the
        workload.

    Raises
    ------
    InputError
        A row naming a device the catalog lacks, or a profile none of whose rows applies (so
        it would be silently ignored).
    """
    where = f"costs.measured_profile {path}"
    for index, device in profile["device"].items():
        if device not in set(devices):
            hint = did_you_mean(device, devices, cutoff=0.5)
            raise InputError(
                f"{where} row {int(str(index)) + 2}, column device: {device!r} is "
                f"not a device of the hardware catalog.{hint} Devices: "
                f"{sorted(set(devices))}."
            )
    wanted = {(p, m.lower(), prec, i, o) for p, m, prec, i, o in phases}
    keys = zip(
        profile["phase"],
        profile["model"],
        profile["precision"],
        profile["input_tokens"],
        profile["output_tokens"],
        strict=True,
    )
    used = [
        d in set(considered) and (p, m, prec, int(i), int(o)) in wanted
        for d, (p, m, prec, i, o) in zip(profile["device"], keys, strict=True)
    ]
    if not any(used):
        needs = "; ".join(f"{p} {m} {prec} {i}/{o} tokens" for p, m, prec, i, o in sorted(wanted))
        raise InputError(
            f"{where}: none of its rows matches an LLM phase of this plan on a "
            f"device it considers ({sorted(considered)}), so it would change "
            f"nothing. Rows match on device, phase, model, precision, "
            f"input_tokens and output_tokens; this workload needs: "
            f"{needs or 'no LLM phase at all'}."
        )


def measured_rows(
    profile: pd.DataFrame | None,
    device: str,
    phase: str,
    model: str,
    precision: str,
    input_tokens: int,
    output_tokens: int,
) -> pd.DataFrame:
    """The profile rows for one LLM phase on one device (empty if not measured)."""
    if profile is None or profile.empty:
        return pd.DataFrame()
    mask = (
        (profile["device"] == device)
        & (profile["phase"] == phase)
        & (profile["model"] == model.lower())
        & (profile["precision"] == precision)
        & (profile["input_tokens"] == input_tokens)
        & (profile["output_tokens"] == output_tokens)
    )
    return profile[mask]
