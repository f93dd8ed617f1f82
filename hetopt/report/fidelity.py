"""``hetopt reproduce fidelity``: the cost model set beside measured data it was not fitted to.

Three questions, each answered against aiconfigurator's silicon database (the calibration
extra), queried live:

1. **Per step.** TTFT and decode step time of Llama-3.1-8B and -70B on every calibrated GPU,
   fp16 and fp8, tp 1-8, at the points ``hetopt calibrate`` held out of the fit (the whole
   70B model, and input length 2048 for 8B). hetopt's prediction goes through the planner's
   own path (:func:`hetopt.costs.llm.prefill_config` / ``decode_config``), calibrated and with
   ``costs.model=roofline``, so the improvement is measured on the same points.
2. **Throughput within the SLA.** For 1024 input / 256 output tokens under TTFT <= 250 ms and
   TBT <= 20 ms: the most decode tokens/s per GPU over hetopt's (tp, batch) grid, as hetopt
   predicts it and as the measured data gives it for the same grid.
3. **SLA safety.** Every decode and prefill configuration hetopt calls feasible under that SLA,
   re-timed with the measured data: how many break their bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hetopt.costs import aic
from hetopt.costs.calibrate import static_batch_tok_s
from hetopt.costs.calibration import CalibrationEntry, load_calibration
from hetopt.costs.fit import error_stats
from hetopt.costs.llm import decode_config, prefill_config
from hetopt.costs.table import CostParams
from hetopt.graph.architectures import get_architecture
from hetopt.graph.decompose import LlmWork
from hetopt.hardware import HardwareCatalog, load_catalog

Progress = Callable[[str], None]

HETOPT_MODEL = {"llama-3.1-8b": "llama-3-8b", "llama-3.1-70b": "llama-3-70b"}
"""Measured model -> hetopt architecture of the same shape (3.1 changed only RoPE scaling)."""

HOP_LATENCY_S = 2e-6
"""The roofline's scale-up hop latency (``costs.scale_up_hop_latency_s``'s default)."""


@dataclass(frozen=True)
class FidelityGrid:
    """Points of the per-step comparison (the held-out ones of ``hetopt calibrate``)."""

    tp_degrees: tuple[int, ...] = (1, 2, 4, 8)
    decode_batches: tuple[int, ...] = (1, 16, 64, 128)
    prefill_batches: tuple[int, ...] = (1, 4, 16)
    seq_lengths: tuple[int, ...] = (512, 2048)


def _predict(
    device: Any,
    model: str,
    precision: str,
    phase: str,
    tp: int,
    batch: int,
    seq: int,
    calib: CalibrationEntry | None,
) -> float:
    # output_tokens=2: one decode step at the prompt length, the measured quantity
    work = LlmWork(get_architecture(HETOPT_MODEL[model]), precision, seq, 2)
    make = prefill_config if phase == "prefill" else decode_config
    return make(device, work, tp, batch, HOP_LATENCY_S, calib=calib).step_s


def _calibrated(
    catalog: HardwareCatalog, label: str, progress: Progress | None
) -> Iterator[tuple[Any, str, CalibrationEntry]]:
    """(device, precision, entry) of every database GPU the shipped table calibrates."""
    table = load_calibration()
    for device_name in aic.SYSTEMS:
        for precision in ("fp16", "fp8"):
            calib = table.lookup(device_name, precision)
            if calib is None:
                continue
            if progress:
                progress(f"{label}: {device_name} {precision}")
            yield catalog.get(device_name), precision, calib


def step_points(
    catalog: HardwareCatalog | None = None,
    grid: FidelityGrid | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Measured vs predicted (calibrated and roofline) step times on held-out points."""
    catalog = catalog or load_catalog()
    grid = grid or FidelityGrid()
    rows = []
    for device, precision, calib in _calibrated(catalog, "fidelity", progress):
        device_name = device.name
        for model in HETOPT_MODEL:
            for seq in grid.seq_lengths:
                if model == "llama-3.1-8b" and seq != 2048:
                    continue  # a fitted point, not a held-out one
                for tp in grid.tp_degrees:
                    for batch in sorted(set(grid.decode_batches) | set(grid.prefill_batches)):
                        got = aic.query(device_name, precision, model, tp, batch, seq)
                        if got is None:
                            continue
                        for phase, measured, kv in (
                            ("prefill", got[0], seq),
                            ("decode", got[1], seq + 1),
                        ):
                            batches = (
                                grid.prefill_batches if phase == "prefill" else grid.decode_batches
                            )
                            if batch not in batches:
                                continue
                            rows.append(
                                dict(
                                    device=device_name,
                                    precision=precision,
                                    model=model,
                                    phase=phase,
                                    tp=tp,
                                    batch=batch,
                                    seq_tokens=kv,
                                    measured_s=measured,
                                    calibrated_s=_predict(
                                        device, model, precision, phase, tp, batch, kv, calib
                                    ),
                                    roofline_s=_predict(
                                        device, model, precision, phase, tp, batch, kv, None
                                    ),
                                )
                            )
    frame = pd.DataFrame(rows)
    frame["calibrated_ratio"] = frame["calibrated_s"] / frame["measured_s"]
    frame["roofline_ratio"] = frame["roofline_s"] / frame["measured_s"]
    return frame


def error_table(
    points: pd.DataFrame, by: tuple[str, ...] = ("device", "precision", "phase")
) -> pd.DataFrame:
    """Geometric-mean error and worst ratio per group, calibrated and roofline."""
    out = []
    for key, group in points.groupby(list(by), sort=True):
        cal_g, cal_w = error_stats(group["calibrated_ratio"].to_numpy())
        roof_g, roof_w = error_stats(group["roofline_ratio"].to_numpy())
        out.append(
            dict(
                zip(by, key, strict=True),
                points=len(group),
                calibrated_error=cal_g,
                calibrated_worst=cal_w,
                roofline_error=roof_g,
                roofline_worst=roof_w,
            )
        )
    return pd.DataFrame(out)


def sla_search(
    catalog: HardwareCatalog | None = None,
    input_tokens: int = 1024,
    output_tokens: int = 256,
    ttft_s: float = 0.25,
    tbt_s: float = 0.020,
    tp_degrees: tuple[int, ...] = (1, 2, 4, 8),
    batches: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256),
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Every decode configuration with hetopt's prediction (guarded as the planner does) and
    the measured step, plus whether a prefill configuration meets TTFT at that tp.

    Returns one row per (device, model, precision, tp, batch) with ``predicted_s``,
    ``guarded_s``, ``measured_s``, ``hetopt_feasible`` and ``measured_feasible``.
    """
    catalog = catalog or load_catalog()
    steps = max(output_tokens - 1, 1)
    mean_ctx = input_tokens + steps // 2
    rows = []
    for device, precision, calib in _calibrated(catalog, "fidelity SLA search", progress):
        device_name = device.name
        for model in HETOPT_MODEL:
            arch = get_architecture(HETOPT_MODEL[model])
            work = LlmWork(arch, precision, input_tokens, output_tokens)
            for tp in tp_degrees:
                pre = aic.query(device_name, precision, model, tp, 1, input_tokens)
                if pre is None:
                    continue
                pre_pred = prefill_config(device, work, tp, 1, HOP_LATENCY_S, calib=calib).step_s
                pre_roof = prefill_config(device, work, tp, 1, HOP_LATENCY_S).step_s
                for batch in batches:
                    got = aic.query(device_name, precision, model, tp, batch, mean_ctx)
                    if got is None:
                        continue
                    cfg = decode_config(device, work, tp, batch, HOP_LATENCY_S, calib=calib)
                    roof = decode_config(device, work, tp, batch, HOP_LATENCY_S)
                    usable = device.mem_bytes * (1 - CostParams().memory_reserve_fraction)
                    mem_ok = cfg.mem_per_device_bytes <= usable - calib.reserve_bytes
                    rows.append(
                        dict(
                            device=device_name,
                            precision=precision,
                            model=model,
                            tp=tp,
                            batch=batch,
                            predicted_s=cfg.step_s,
                            guarded_s=cfg.step_s / min(1.0, calib.decode_min_ratio),
                            measured_s=got[1],
                            prefill_predicted_s=pre_pred,
                            prefill_guarded_s=pre_pred / min(1.0, calib.prefill_min_ratio),
                            prefill_measured_s=pre[0],
                            fits_memory=mem_ok,
                            roofline_s=roof.step_s,
                            prefill_roofline_s=pre_roof,
                            roofline_fits_memory=roof.mem_per_device_bytes <= usable,
                        )
                    )
    frame = pd.DataFrame(rows)
    frame["hetopt_feasible"] = (
        frame["fits_memory"]
        & (frame["guarded_s"] <= tbt_s)
        & (frame["prefill_guarded_s"] <= ttft_s)
    )
    frame["measured_feasible"] = (frame["measured_s"] <= tbt_s) & (
        frame["prefill_measured_s"] <= ttft_s
    )
    frame["roofline_feasible"] = (
        frame["roofline_fits_memory"]
        & (frame["roofline_s"] <= tbt_s)
        & (frame["prefill_roofline_s"] <= ttft_s)
    )
    frame["roofline_tok_s_per_gpu"] = frame["batch"] / frame["roofline_s"] / frame["tp"]
    frame["predicted_tok_s_per_gpu"] = frame["batch"] / frame["predicted_s"] / frame["tp"]
    frame["measured_tok_s_per_gpu"] = frame["batch"] / frame["measured_s"] / frame["tp"]
    return frame


def throughput_table(search: pd.DataFrame) -> pd.DataFrame:
    """Per (device, model, precision): hetopt's best feasible tokens/s/GPU (its prediction, and
    the measured value of the configuration it picks) against the measured best."""
    out = []
    for (device, model, precision), group in search.groupby(["device", "model", "precision"]):
        ours = group[group["hetopt_feasible"]]
        best = group[group["measured_feasible"] & group["fits_memory"]]
        row: dict[str, Any] = dict(device=device, model=model, precision=precision)
        if len(ours):
            pick = ours.loc[ours["predicted_tok_s_per_gpu"].idxmax()]
            row.update(
                hetopt_config=f"tp{pick['tp']}/b{pick['batch']}",
                hetopt_predicted=pick["predicted_tok_s_per_gpu"],
                hetopt_pick_measured=pick["measured_tok_s_per_gpu"],
            )
        else:
            row.update(
                hetopt_config="none", hetopt_predicted=math.nan, hetopt_pick_measured=math.nan
            )
        if len(best):
            top = best.loc[best["measured_tok_s_per_gpu"].idxmax()]
            row.update(
                measured_config=f"tp{top['tp']}/b{top['batch']}",
                measured_best=top["measured_tok_s_per_gpu"],
            )
        else:
            row.update(measured_config="none", measured_best=math.nan)
        row["ratio"] = row["hetopt_predicted"] / row["measured_best"]
        roof = group[group["roofline_feasible"]]
        row["roofline_predicted"] = (
            float(roof["roofline_tok_s_per_gpu"].max()) if len(roof) else math.nan
        )
        row["roofline_ratio"] = row["roofline_predicted"] / row["measured_best"]
        out.append(row)
    return pd.DataFrame(out)


def violations(search: pd.DataFrame, ttft_s: float = 0.25, tbt_s: float = 0.020) -> pd.DataFrame:
    """Configurations hetopt calls feasible whose measured TTFT or TBT breaks the bound."""
    feasible = search[search["hetopt_feasible"]]
    bad = feasible[(feasible["measured_s"] > tbt_s) | (feasible["prefill_measured_s"] > ttft_s)]
    return bad


def geomean_abs_log(values: np.ndarray) -> float:
    """``exp(mean |log v|)`` of finite positive values (NaN when none)."""
    v = values[np.isfinite(values) & (values > 0)]
    return float(np.exp(np.abs(np.log(v)).mean())) if len(v) else math.nan


def published_check(path: str | Any, catalog: HardwareCatalog | None = None) -> pd.DataFrame:
    """Accelerators without silicon data against published static-batch throughput.

    Each row of ``path`` (:data:`hetopt.costs.calibration.PUBLISHED_PATH`: vendor pages, one
    source per row) is one static batch of ``batch`` requests of ``input_tokens`` in and
    ``output_tokens`` out on a ``tp``-device replica. hetopt's time for it is one prefill of the
    batch plus ``output_tokens - 1`` decode steps at the mean context, with the median
    coefficients of the silicon-calibrated GPUs (``borrowed``: what a device without any data
    gets), with the shipped published-data fit (``fitted``, in sample; ``loo_error`` is its
    leave-one-out error) and with the roofline.
    """
    catalog = catalog or load_catalog()
    table = load_calibration()
    rows = []
    for rec in pd.read_csv(path).to_dict("records"):
        device = catalog.get(str(rec["device"]))
        work = LlmWork(
            get_architecture(str(rec["model"])),
            str(rec["precision"]),
            int(rec["input_tokens"]),
            int(rec["output_tokens"]),
        )
        tp, batch = int(rec["tp"]), int(rec["batch"])
        out = dict(
            device=rec["device"],
            model=rec["model"],
            precision=rec["precision"],
            tp=tp,
            batch=batch,
            input_tokens=work.input_tokens,
            output_tokens=work.output_tokens,
            published_tok_s=float(rec["output_tokens_per_s"]),
        )
        fitted = table.lookup(device.name, work.precision)
        for label, calib in (
            ("borrowed", table.prior(work.precision)),
            ("fitted", fitted),
            ("roofline", None),
        ):
            if label == "fitted" and calib is None:
                out["fitted_tok_s"] = out["fitted_ratio"] = math.nan
                continue
            out[f"{label}_tok_s"] = static_batch_tok_s(
                device, work, tp, batch, calib, HOP_LATENCY_S
            )
            out[f"{label}_ratio"] = out[f"{label}_tok_s"] / out["published_tok_s"]
        out["loo_error"] = fitted.heldout_geomean_error if fitted else math.nan
        rows.append(out)
    return pd.DataFrame(rows)
