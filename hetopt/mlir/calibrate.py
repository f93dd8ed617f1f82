"""The calibration loop: CPU kernels' predicted against measured time, and fitted efficiencies.

The prediction is the cost model's roofline, ``max(flops / (peak * compute_efficiency),
bytes / (bandwidth * bandwidth_efficiency))``, for the *host's share* of a catalog CPU: the
catalog row's peaks times ``host cores / catalog cores`` (this machine is a slice of a server
CPU). Measured times of the generated kernels then fit ``compute_efficiency``,
``bandwidth_efficiency`` and a fixed per-call overhead (IREE's dispatch), minimising the squared
log ratio of predicted to measured time. The fitted factors replace the catalog CPU rows'
efficiencies in ``calibrated_devices.csv``, which ``hetopt plan
hardware.catalog_path=...`` reads back: measured times feed the cost model.
"""

from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from hetopt.costs.calibrate import band_columns, term_rows
from hetopt.costs.calibration import STEP_MODEL_VERSION
from hetopt.costs.step import StepCoefficients
from hetopt.hardware import Device, HardwareCatalog

GEMM_CLASSES = ("gemm", "gemv")
"""Kernel classes that set the calibrated factors."""


@dataclass(frozen=True)
class CpuModel:
    """Roofline of the host's share of a catalog CPU.

    Attributes
    ----------
    device
        Catalog CPU the host is modelled as.
    host_cores
        Cores of this machine the kernels ran on.
    peak_flops_per_s, mem_bw_bytes_per_s
        The host's share of the catalog row's fp32 peak and memory bandwidth.
    compute_efficiency, bandwidth_efficiency
        Achieved fractions of those peaks.
    overhead_s
        Fixed cost per kernel call (dispatch).
    """

    device: str
    host_cores: int
    peak_flops_per_s: float
    mem_bw_bytes_per_s: float
    compute_efficiency: float
    bandwidth_efficiency: float
    overhead_s: float = 0.0

    def predict_s(self, flops: np.ndarray, nbytes: np.ndarray) -> np.ndarray:
        """Predicted time of kernels with these FLOPs and bytes."""
        compute = np.asarray(flops) / (self.peak_flops_per_s * self.compute_efficiency)
        memory = np.asarray(nbytes) / (self.mem_bw_bytes_per_s * self.bandwidth_efficiency)
        return np.maximum(compute, memory) + self.overhead_s


def host_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def host_cpu_name(catalog: HardwareCatalog) -> str:
    """The catalog CPU that models this machine: same vendor when the catalog has one."""
    cpus = [d for d in catalog.devices if d.kind == "cpu"]
    if not cpus:
        return ""
    text = platform.processor()
    with contextlib.suppress(OSError):
        text += Path("/proc/cpuinfo").read_text(errors="ignore")[:4000]
    vendor = "amd" if "AMD" in text else "intel" if "Intel" in text else ""
    same = [d for d in cpus if d.vendor.lower() == vendor]
    return (same or cpus)[0].name


def host_model(device: Device, cores: int | None = None) -> CpuModel:
    """The uncalibrated model: the catalog row's efficiencies, no overhead."""
    cores = cores or host_cores()
    share = cores / float(device.cores or cores)
    return CpuModel(
        device.name,
        cores,
        device.peak_flops_per_s("fp32") * share,
        device.mem_bw_bytes_per_s * share,
        device.compute_efficiency,
        device.bandwidth_efficiency,
    )


def fit(model: CpuModel, flops: np.ndarray, nbytes: np.ndarray, measured_s: np.ndarray) -> CpuModel:
    """Fit efficiencies and overhead to measured times (grid search on the squared log ratio;
    three parameters, so an exhaustive grid is exact enough and needs no optimiser)."""
    f, b, m = (np.asarray(x, dtype=float) for x in (flops, nbytes, measured_s))
    ce = np.logspace(-3, 0, 91)
    be = np.logspace(-2.5, 0.5, 91)  # a small working set can beat the DRAM share (caches)
    overhead = np.array([0.0, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3])
    compute = f[None, None, None, :] / (model.peak_flops_per_s * ce[:, None, None, None])
    memory = b[None, None, None, :] / (model.mem_bw_bytes_per_s * be[None, :, None, None])
    pred = np.maximum(compute, memory) + overhead[None, None, :, None]
    loss = (np.log(pred / m[None, None, None, :]) ** 2).sum(axis=-1)
    i, j, k = np.unravel_index(int(np.argmin(loss)), loss.shape)
    return replace(
        model,
        compute_efficiency=float(ce[i]),
        bandwidth_efficiency=float(be[j]),
        overhead_s=float(overhead[k]),
    )


@dataclass(frozen=True)
class Calibration:
    """Before and after: the models and the per-kernel comparison.

    Attributes
    ----------
    before, after
        Catalog model and fitted model.
    kernels
        kernel, shape_class, flops, bytes, measured_s, predicted_before_s, predicted_after_s,
        ratio_before, ratio_after (predicted / measured).
    """

    before: CpuModel
    after: CpuModel
    kernels: pd.DataFrame

    def operators(self) -> pd.DataFrame:
        """Per operator: the summed time of its GEMM-shaped kernels, measured and predicted
        before and after (the cost model prices operators, not kernels)."""
        k = self.kernels[self.kernels["shape_class"].isin(GEMM_CLASSES)]
        cols = ["measured_s", "predicted_before_s", "predicted_after_s"]
        frame = k.groupby("operator", sort=False)[cols].sum().reset_index()
        for label in ("before", "after"):
            frame[f"ratio_{label}"] = frame[f"predicted_{label}_s"] / frame["measured_s"]
        return frame

    def summary(self) -> dict[str, float]:
        """Median and worst |ratio - 1| before and after: over all kernels, GEMM-shaped
        kernels and GEMM-shaped operators; and the share within 25 % after calibration."""
        k = self.kernels
        gemm = k[k["shape_class"].isin(GEMM_CLASSES)]
        ops = self.operators()
        out: dict[str, float] = {}
        for label, frame in (("all", k), ("gemm", gemm), ("gemm_operator", ops)):
            for when in ("before", "after"):
                err = (frame[f"ratio_{when}"] - 1.0).abs()
                out[f"{label}_median_abs_error_{when}"] = float(err.median()) if len(err) else 0.0
                out[f"{label}_max_abs_error_{when}"] = float(err.max()) if len(err) else 0.0
        for label, frame in (("gemm", gemm), ("gemm_operator", ops)):
            within = (frame["ratio_after"] - 1.0).abs() <= 0.25
            out[f"{label}_within_25pct_after"] = float(within.mean()) if len(frame) else 0.0
        return out


def calibrate(model: CpuModel, kernels: pd.DataFrame) -> Calibration:
    """Fit ``model`` to the GEMM-shaped rows of ``kernels`` (columns kernel, operator,
    shape_class, flops, bytes, measured_s) and compare every row before and after.

    Only GEMM-shaped kernels set the factors: the cost model prices an operator by its FLOPs
    and bytes, which matrix multiplies dominate; attention and scans are reported against the
    same roofline without steering it.
    """
    fit_rows = kernels[kernels["shape_class"].isin(GEMM_CLASSES)]
    if fit_rows.empty:
        fit_rows = kernels
    after = fit(
        model,
        fit_rows["flops"].to_numpy(),
        fit_rows["bytes"].to_numpy(),
        fit_rows["measured_s"].to_numpy(),
    )
    frame = kernels[["kernel", "operator", "shape_class", "flops", "bytes", "measured_s"]].copy()
    for label, m in (("before", model), ("after", after)):
        frame[f"predicted_{label}_s"] = m.predict_s(
            frame["flops"].to_numpy(), frame["bytes"].to_numpy()
        )
        frame[f"ratio_{label}"] = frame[f"predicted_{label}_s"] / frame["measured_s"]
    return Calibration(model, after, frame.reset_index(drop=True))


def cost_calibration_rows(
    catalog: HardwareCatalog, calibration: Calibration, version: str
) -> list[dict[str, object]]:
    """Rows of the cost model's calibration table (:mod:`hetopt.costs.calibration`) for every
    catalog CPU, from the fitted factors: one kernel floor (IREE's dispatch overhead), the
    compute efficiency for GEMMs and attention, the bandwidth efficiency for every
    memory-bound kernel. The error band is the GEMM-shaped operators' predicted / measured
    ratio after the fit (in sample: the kernels are too few to hold any out).

    These rows make ``costs.calibration=<run>/cost_calibration.csv`` time CPU LLM phases with
    the step model, as the GPUs are (the fit ran on f32 kernels; the rows serve fp16, which
    the catalog CPUs run as bf16).
    """
    after = calibration.after
    ops = calibration.operators()
    ratio = ops["ratio_after"].to_numpy(dtype=float) if len(ops) else np.array([1.0])
    eff_c = min(1.0, after.compute_efficiency)
    eff_m = min(1.0, after.bandwidth_efficiency)
    # One socket: no tensor parallelism (the all-reduce terms keep their neutral defaults).
    coefficients = StepCoefficients(
        kernel_floor_s=after.overhead_s,
        gemm_eff_compute=eff_c,
        gemm_eff_memory=eff_m,
        ctx_attn_eff_compute=eff_c,
        ctx_attn_floor_s=0.0,
        gen_attn_eff_memory=eff_m,
        elementwise_eff_memory=eff_m,
        step_overhead_s=0.0,
    )
    rows: list[dict[str, object]] = []
    for device in catalog.devices:
        if device.kind != "cpu":
            continue
        common = dict(
            version=version,
            model_version=STEP_MODEL_VERSION,
            device=device.name,
            precision="fp16",
            n_points=int(len(calibration.kernels)),
            **band_columns(ratio, 0),
            source=(
                f"hetopt compile: IREE llvm-cpu kernels on {after.host_cores} "
                f"cores of {platform.processor() or platform.machine()}, "
                f"scaled to the catalog row ({len(calibration.kernels)} kernels; "
                f"error band in sample)"
            ),
        )
        rows.extend(term_rows(common, coefficients, 0.0))
    return rows


def calibrated_catalog(catalog: HardwareCatalog, calibration: Calibration) -> pd.DataFrame:
    """The catalog as CSV rows with every CPU's efficiencies replaced by the fitted ones
    (the per-core efficiency measured here, assumed to hold on the whole server CPU)."""
    frame = catalog.to_frame()
    cpus = frame["kind"] == "cpu"
    frame.loc[cpus, "compute_efficiency"] = round(calibration.after.compute_efficiency, 4)
    frame.loc[cpus, "bandwidth_efficiency"] = round(
        min(1.0, calibration.after.bandwidth_efficiency), 4
    )
    frame.loc[cpus, "notes"] = (
        frame.loc[cpus, "notes"].fillna("").astype(str)
        + f" Efficiencies calibrated by `hetopt compile` on {calibration.after.host_cores} "
        f"host cores against IREE llvm-cpu kernels."
    )
    return frame.reset_index()
