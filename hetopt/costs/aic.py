"""Measured step times from NVIDIA's aiconfigurator silicon database (optional extra).

aiconfigurator (``pip install -e '.[calibration]'``, Apache-2.0) holds per-operation
measurements of GEMMs, attention, all-reduce and elementwise kernels collected on real GPUs
(its ``SILICON`` database mode) and composes them into the time of a whole engine step. This
module asks it, through its public Python API (``aiconfigurator.cli.api.cli_estimate`` in
``static`` mode), for the prefill time (TTFT) and one decode step of a grid of models, batch
sizes, sequence lengths, tensor-parallel degrees and precisions, and returns them as
measurement rows (:data:`hetopt.costs.fit.MEASUREMENT_COLUMNS`) with their provenance.

Nothing from the database is copied into hetopt: ``hetopt calibrate`` fits the step model to
these rows and ships only the fitted coefficients.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import pandas as pd

from hetopt.costs.fit import shape_columns
from hetopt.costs.step import ModelShape
from hetopt.errors import InputError

log = logging.getLogger(__name__)

SYSTEMS = {
    "A100": "a100_sxm",
    "H100": "h100_sxm",
    "H200": "h200_sxm",
    "B200": "b200_sxm",
    "L40S": "l40s",
}
"""hetopt catalog device -> aiconfigurator system with a silicon database (L4's is estimate
only in 0.12, so L4 is not calibrated from it)."""

MODELS = {
    "llama-3.1-8b": "meta-llama/Meta-Llama-3.1-8B",
    "qwen3-8b": "Qwen/Qwen3-8B",
    "qwen3-32b": "Qwen/Qwen3-32B",
    "llama-3.1-70b": "meta-llama/Meta-Llama-3.1-70B",
}
"""Dense models measured: hetopt name -> Hugging Face id aiconfigurator knows."""

BACKEND = "trtllm"
"""The serving framework whose kernels were measured (TensorRT-LLM, the broadest coverage)."""

PINNED_VERSION = "0.12.0"
DATABASE_VERSIONS = {
    "A100": "1.0.0",
    "H100": "1.3.0rc20",
    "H200": "1.3.0rc20",
    "B200": "1.3.0rc20",
    "L40S": "1.3.0rc20",
}
"""The newest TensorRT-LLM database of each system in aiconfigurator 0.12.0 (the pinned
extra). Naming them keeps calibrations reproducible and skips aiconfigurator's version
search (about 2.4 s per system); another aiconfigurator version is searched instead."""


@dataclass(frozen=True)
class Grid:
    """The points to measure.

    Attributes
    ----------
    devices, models, precisions
        What to measure (precisions ``fp16`` and ``fp8``; fp8 only where the GPU has it).
    tp_degrees, batch_sizes, seq_lengths
        Tensor-parallel degrees, batch sizes and input lengths (tokens).
    max_prefill_batch
        Prefill points only up to this batch (hetopt's prefill search stops at 32).
    """

    devices: tuple[str, ...] = tuple(SYSTEMS)
    models: tuple[str, ...] = tuple(MODELS)
    precisions: tuple[str, ...] = ("fp16", "fp8")
    tp_degrees: tuple[int, ...] = (1, 2, 4, 8)
    batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)
    seq_lengths: tuple[int, ...] = (128, 512, 1024, 2048, 4096)
    max_prefill_batch: int = 32


def available() -> bool:
    """Whether the calibration extra (aiconfigurator) is installed."""
    try:
        importlib.metadata.version("aiconfigurator")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def version() -> str:
    """Installed aiconfigurator version."""
    return importlib.metadata.version("aiconfigurator")


def _require() -> None:
    if not available():
        raise InputError(
            "hetopt calibrate needs NVIDIA's aiconfigurator for its measured database: "
            "pip install -e '.[calibration]' (or pass measurements=<csv> to fit your own "
            "measurements instead)."
        )


def model_shape(name: str) -> ModelShape:
    """Shape of a measured model, read from the Hugging Face config aiconfigurator ships."""
    _require()
    hf = MODELS[name]
    path = (
        resources.files("aiconfigurator_core")
        / "model_configs"
        / (hf.replace("/", "--") + "_config.json")
    )
    cfg = json.loads(path.read_text())
    heads = int(cfg["num_attention_heads"])
    return ModelShape(
        name,
        int(cfg["num_hidden_layers"]),
        int(cfg["hidden_size"]),
        heads,
        int(cfg["num_key_value_heads"]),
        int(cfg.get("head_dim") or cfg["hidden_size"] // heads),
        int(cfg["intermediate_size"]),
        int(cfg["vocab_size"]),
    )


def runtime_reserve_bytes(device: str) -> float:
    """Memory a TensorRT-LLM engine keeps beside weights and KV cache (runtime, activations,
    NCCL buffers at tp 8), from aiconfigurator's system description (``misc.other_mem`` +
    ``misc.nccl_mem[8]``)."""
    _require()
    from aiconfigurator_core.sdk.perf_database import load_system_spec

    spec = load_system_spec(SYSTEMS[device])
    misc = spec.get("misc", {})
    nccl = misc.get("nccl_mem", {}) or {}
    return float(misc.get("other_mem", 0.0)) + float(max(nccl.values(), default=0.0))


def measure(grid: Grid, progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Prefill and decode step times on every grid point the database covers.

    Points the engine reports as out of memory are skipped, as are fp8 points on GPUs
    without fp8 (A100).

    Returns
    -------
    pandas.DataFrame
        Measurement rows (:data:`hetopt.costs.fit.MEASUREMENT_COLUMNS`).
    """
    _require()
    rows: list[dict[str, Any]] = []
    for device in grid.devices:
        db_version = database_version(device)
        if db_version is None:
            log.warning("no %s database for %s; skipped", BACKEND, device)
            continue
        source = (
            f"aiconfigurator {version()} silicon database, system {SYSTEMS[device]}, "
            f"{BACKEND} {db_version}"
        )
        for precision in grid.precisions:
            for model in grid.models:
                shape = model_shape(model)
                if progress:
                    progress(f"{device} {precision} {model}")
                for tp in grid.tp_degrees:
                    if shape.n_kv_heads % tp:
                        continue
                    for isl in grid.seq_lengths:
                        for batch in grid.batch_sizes:
                            got = query(device, precision, model, tp, batch, isl)
                            if got is None:
                                continue
                            base = dict(
                                device=device,
                                precision=precision,
                                model=model,
                                tp=tp,
                                batch=batch,
                                **shape_columns(shape),
                                source=source,
                            )
                            rows.append(
                                dict(base, phase="decode", seq_tokens=isl + 1, step_s=got[1])
                            )
                            if batch <= grid.max_prefill_batch:
                                rows.append(
                                    dict(base, phase="prefill", seq_tokens=isl, step_s=got[0])
                                )
    return pd.DataFrame(rows)


@functools.lru_cache(maxsize=16)
def database_version(device: str) -> str | None:
    """Latest database version aiconfigurator has for ``device``'s system (slow: cached)."""
    _require()
    if version() == PINNED_VERSION and device in DATABASE_VERSIONS:
        return DATABASE_VERSIONS[device]
    from aiconfigurator_core.sdk.perf_database import get_latest_database_version

    return get_latest_database_version(SYSTEMS[device], BACKEND)


def query(
    device: str, precision: str, model: str, tp: int, batch: int, isl: int
) -> tuple[float, float] | None:
    """Measured (TTFT of ``batch`` prompts of ``isl`` tokens, one decode step at ``isl + 1``
    cached tokens) in seconds, or None when the database cannot answer or the point runs out
    of memory."""
    _require()
    logging.getLogger("aiconfigurator").setLevel(logging.ERROR)
    logging.getLogger("aiconfigurator_core").setLevel(logging.ERROR)
    from aiconfigurator.cli.api import cli_estimate

    db_version = database_version(device)
    if db_version is None or (precision == "fp8" and device == "A100"):
        return None
    quant = "fp8" if precision == "fp8" else None
    try:
        r = cli_estimate(
            MODELS[model],
            SYSTEMS[device],
            mode="static",
            backend_name=BACKEND,
            backend_version=db_version,
            isl=isl,
            osl=2,
            batch_size=batch,
            tp_size=tp,
            gemm_quant_mode=quant,
            kvcache_quant_mode=quant,
        )
    except Exception as exc:  # a shape the database cannot answer
        log.info("no measurement for %s %s tp%d b%d isl%d: %s", device, model, tp, batch, isl, exc)
        return None
    if r.kv_cache_warning:
        return None
    return r.ttft / 1e3, r.tpot / 1e3
