"""LLM serving model on the roofline: prefill and decode configurations per device.

For each device, tensor-parallel degree ``tp``, pipeline-parallel degree ``pp`` and batch size
``b`` this module derives the per-replica latency, throughput and memory of an LLM phase from the
model architecture (:mod:`hetopt.graph.architectures`). A replica is ``tp x pp`` devices: ``pp``
pipeline stages of ``n_layers / pp`` layers, each stage ``tp``-way tensor parallel inside one
scale-up domain (at most 8 accelerators per chassis, paper §5.2).

* The batch is split into ``pp`` micro-batches of ``m = b / pp`` so every stage stays busy. A
  stage processes one micro-batch in ``t_stage`` (its own roofline: ``1/pp`` of the layers, the
  weights split ``tp x pp`` ways, plus two ring all-reduces per layer over the scale-up link).
* A request crosses all stages: ``pp x t_stage + (pp - 1) x t_send``, where ``t_send`` moves the
  micro-batch's activations to the next stage over the scale-up link when the whole replica
  fits one chassis and over RoCE scale-out otherwise.
* **Prefill** of ``b`` prompts of ``n_in`` tokens: that crossing time bounds TTFT; in steady state
  the replica finishes ``m`` prompts per ``t_stage``.
* **Decode** with continuous batching: every step advances all ``b`` sequences by one token, so
  the token-to-token latency is the crossing time at the mean context; the phase lasts
  ``max(n_out - 1, 1)`` steps (the first token comes from prefill).
* **Calibrated devices** (a :class:`~hetopt.costs.calibration.CalibrationEntry`) replace the
  stage's roofline by the fitted operation-level step model (:mod:`hetopt.costs.step`): the
  last stage runs the LM head and pays the per-step framework overhead; the crossing and the
  replica's throughput follow as above.
* **Memory** per device holds ``weights / (tp pp)`` plus the paged KV cache of the whole batch:
  each sequence takes whole pages of ``page_tokens`` tokens up to its full length (vLLM's
  PagedAttention allocation), plus an activation workspace.
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hetopt.costs.calibration import CalibrationEntry
from hetopt.costs.roofline import RooflineTime, ring_allreduce_s, roofline_time
from hetopt.costs.step import (
    DevicePeaks,
    ModelShape,
    StepCoefficients,
    predict_step,
    step_work,
)
from hetopt.graph.architectures import BYTES_PER_ELEMENT
from hetopt.graph.decompose import LlmWork
from hetopt.hardware import Device

PAGE_TOKENS = 16

StageTimes = tuple[float, float, float, float, float]
"""The fitted step model at one configuration: (compute, memory, all-reduce, total) seconds of
the last pipeline stage and the crossing time of all stages without sends."""

_STAGE_CACHE: OrderedDict[tuple[Any, ...], dict[tuple[int, int, int], StageTimes]] = OrderedDict()
_STAGE_CACHE_ENTRIES = 4096
"""(model, device, lengths) entries kept, least recently used dropped first: a 126-operator
agent uses 216, a calibration fit a few thousand of one or two points each (about 10 MB at
most: five floats per point)."""


@dataclass(frozen=True)
class LlmConfig:
    """One (tp, pp, batch) configuration of an LLM phase on one device type.

    Attributes
    ----------
    tp, pp, batch
        Tensor- and pipeline-parallel degrees (``tp x pp`` devices per replica) and batch size.
    time
        Itemised time of one pipeline stage on one micro-batch; ``comm_s`` holds the
        inter-stage sends of a full crossing.
    latency_s
        Latency one request sees in this phase: the crossing time (prefill) or steps x step
        time (decode).
    step_s
        Prefill: the crossing time (= TTFT contribution). Decode: one token-to-token step.
    requests_per_s
        Requests one replica completes per second.
    mem_per_device_bytes
        Resident memory on each of the ``tp x pp`` devices.
    """

    tp: int
    pp: int
    batch: int
    time: RooflineTime
    latency_s: float
    step_s: float
    requests_per_s: float
    mem_per_device_bytes: float

    @property
    def devices(self) -> int:
        """Devices per replica."""
        return self.tp * self.pp


def paged_kv_bytes(llm: LlmWork, tokens: int, batch: int, page_tokens: int = PAGE_TOKENS) -> float:
    """KV cache of ``batch`` sequences of ``tokens`` tokens, allocated in whole pages."""
    pages = math.ceil(tokens / page_tokens)
    return llm.arch.kv_cache_bytes(pages * page_tokens, batch, llm.precision)


def _link_bw(device: Device, tp: int, pp: int) -> float:
    """Bandwidth between pipeline stages: scale-up inside one chassis, RoCE across chassis."""
    if tp * pp <= device.scale_up_domain and device.scale_up_bw_bytes_per_s > 0:
        return device.scale_up_bw_bytes_per_s
    return device.scale_out_bw_bytes_per_s


def _stage(
    device: Device,
    llm: LlmWork,
    tp: int,
    pp: int,
    micro: int,
    flops: float,
    weight_bytes: float,
    kv_read_bytes: float,
    act_tokens: int,
    hop_latency_s: float,
) -> RooflineTime:
    """One pipeline stage (``1/pp`` of the layers) on one micro-batch, ``tp``-way parallel."""
    bpe = BYTES_PER_ELEMENT[llm.precision]
    layers = llm.arch.n_layers / pp
    message = act_tokens * llm.arch.d_model * bpe
    sync = (
        2
        * layers
        * ring_allreduce_s(message, tp, device.scale_up_bw_bytes_per_s or 1.0, hop_latency_s)
    )
    return roofline_time(
        device,
        flops=flops / (tp * pp),
        mem_bytes=(weight_bytes + kv_read_bytes) / (tp * pp),
        precision=llm.precision,
        sync_s=sync,
    )


def _sends_s(
    device: Device, llm: LlmWork, tp: int, pp: int, act_tokens: int, hop_latency_s: float
) -> float:
    if pp == 1:
        return 0.0
    bpe = BYTES_PER_ELEMENT[llm.precision]
    per_send = act_tokens * llm.arch.d_model * bpe / tp / _link_bw(device, tp, pp)
    return (pp - 1) * (per_send + hop_latency_s)


def device_peaks(device: Device, precision: str) -> DevicePeaks:
    """Datasheet peaks of ``device`` at a GEMM precision (attention runs in 16 bit).

    Examples
    --------
    >>> from hetopt.hardware import load_catalog
    >>> p = device_peaks(load_catalog().get("H100"), "fp8")
    >>> p.flops_per_s / 1e12, p.attn_flops_per_s / 1e12, p.mem_bw_bytes_per_s / 1e9
    (1979.0, 989.0, 3350.0)
    """
    return DevicePeaks(
        device.peak_flops_per_s(precision),
        device.peak_flops_per_s("fp16"),
        device.mem_bw_bytes_per_s,
        device.scale_up_bw_bytes_per_s or 1.0,
    )


def _micro(batch: int, pp: int) -> int:
    """Sequences per micro-batch: the batch split into ``pp`` (at least one)."""
    return max(batch // pp, 1)


def decode_steps(llm: LlmWork) -> int:
    """Decode steps of one request: every output token but the first, which prefill makes.

    Examples
    --------
    >>> from hetopt.graph.architectures import get_architecture
    >>> decode_steps(LlmWork(get_architecture("llama-3-8b"), "fp16", 512, 128))
    127
    """
    return max(llm.output_tokens - 1, 1)


def _phase_tokens(llm: LlmWork, prefill: bool) -> tuple[int, int]:
    """(new tokens, attended tokens) per sequence of one step: the prompt in prefill; one token
    at the mean context in decode."""
    if prefill:
        return llm.input_tokens, llm.input_tokens
    return 1, llm.input_tokens + decode_steps(llm) // 2


def _itemised(times: StageTimes) -> tuple[RooflineTime, float]:
    """(itemised last stage, crossing time without sends) from the step model's numbers."""
    compute, memory, sync, total, crossing = times
    # static_s holds the floors, overhead and the non-binding kernels, so the itemised
    # stage's total_s is the step model's total.
    static = total - max(compute, memory) - sync
    return RooflineTime(compute, memory, 0.0, static, 0.0, sync), crossing


def stage_times(
    peaks: DevicePeaks,
    shape: ModelShape,
    bpe: float,
    coefficients: StepCoefficients,
    q_tokens: int,
    kv_tokens: int,
    points: Sequence[tuple[int, int, int]],
) -> list[StageTimes]:
    """The fitted step model at ``(tp, pp, micro)`` points of one model, device and lengths.

    For each point: (compute, memory, all-reduce, total) of the last pipeline stage and the
    crossing time of all ``pp`` stages (without sends). The points not seen before are timed
    together, in one stacked :func:`~hetopt.costs.step.predict_step` (and one more for the
    earlier stages of pipelined points), with the same numbers to the last bit as one call per
    point. Results are kept per (peaks, model, bytes per element, coefficients, lengths): plain
    values, so a price scenario or a renamed device finds them too, and sweeps, pair studies
    and calibration loops ask for the same points many times.

    Examples
    --------
    >>> from hetopt.costs.calibration import load_calibration
    >>> from hetopt.graph.architectures import get_architecture
    >>> from hetopt.hardware import load_catalog
    >>> coefficients = load_calibration().lookup("H100", "fp16").coefficients
    >>> peaks = device_peaks(load_catalog().get("H100"), "fp16")
    >>> shape = ModelShape.from_architecture(get_architecture("llama-3-8b"))
    >>> one, two = stage_times(peaks, shape, 2.0, coefficients, 1, 1024, [(1, 1, 8), (2, 1, 8)])
    >>> one[3] == one[4], two[3] < one[3]  # one stage: the crossing is the step; tp=2 is faster
    (True, True)
    """
    common = (peaks, shape, bpe, coefficients, q_tokens, kv_tokens)
    cache = _STAGE_CACHE.get(common)
    if cache is None:
        cache = _STAGE_CACHE[common] = {}
        if len(_STAGE_CACHE) > _STAGE_CACHE_ENTRIES:
            _STAGE_CACHE.popitem(last=False)  # the least recently used
    else:
        _STAGE_CACHE.move_to_end(common)  # most recently used last
    todo = list(dict.fromkeys(p for p in points if p not in cache))
    if todo:
        cache.update(
            zip(
                todo,
                _timed_stages(peaks, shape, bpe, coefficients, q_tokens, kv_tokens, todo),
                strict=True,
            )
        )
    return [cache[p] for p in points]


def _timed_stages(
    peaks: DevicePeaks,
    shape: ModelShape,
    bpe: float,
    coefficients: StepCoefficients,
    q_tokens: int,
    kv_tokens: int,
    points: Sequence[tuple[int, int, int]],
) -> list[StageTimes]:
    """:func:`stage_times` of points not computed before, in one stacked call."""
    tp, pp, micro = (np.array(column) for column in zip(*points, strict=True))
    layers = shape.n_layers / pp

    def timed(rows: Any, lm_head: bool, c: StepCoefficients) -> Any:
        work = step_work(
            shape,
            weight_bytes=bpe,
            kv_bytes=bpe,
            tp=tp[rows],
            batch=micro[rows],
            q_tokens=q_tokens,
            kv_tokens=kv_tokens,
            layers=layers[rows],
            lm_head=lm_head,
        )
        return predict_step(work, peaks, c)

    last = timed(slice(None), True, coefficients)
    crossing = np.array(last.total_s, dtype=float)
    staged = pp > 1
    if staged.any():  # earlier stages: no LM head, the step overhead is paid once per step
        mid = timed(staged, False, replace(coefficients, step_overhead_s=0.0))
        crossing[staged] += (pp[staged] - 1) * np.asarray(mid.total_s, dtype=float)
    columns = (last.compute_bound_s, last.memory_bound_s, last.allreduce_s, last.total_s)
    values = np.stack([*(np.asarray(c, dtype=float) for c in columns), crossing], axis=-1)
    return [tuple(row) for row in values.tolist()]


def llm_configs(
    device: Device,
    llm: LlmWork,
    prefill: bool,
    points: Sequence[tuple[int, int, int]],
    hop_latency_s: float,
    calib: CalibrationEntry | None = None,
) -> list[LlmConfig]:
    """Every ``(tp, pp, batch)`` configuration of one LLM phase on one device.

    What :func:`prefill_config` or :func:`decode_config` gives for each point, with the fitted
    step model of all of them (``calib``) timed in one stacked call first: the cost table's
    path, which asks for a few dozen configurations per operator and device.

    Parameters
    ----------
    device
        The device type.
    llm
        The LLM phase's model, precision and lengths.
    prefill
        Prefill (``True``) or decode.
    points
        ``(tp, pp, batch)`` configurations.
    hop_latency_s
        Latency of one hop over the scale-up link.
    calib
        The fitted step model's entry for the device and precision; the roofline without it.

    Returns
    -------
    list of LlmConfig
        One per point, in order. The lists are kept (up to 512 of them, about 36 kB each,
        measured) for the same arguments: a sweep rebuilds the same agent's table at every
        point. :func:`prefill_config` and :func:`decode_config` compute afresh, on the
        step-model results :func:`stage_times` keeps, so one-configuration loops (calibration,
        fidelity) do not push the table's lists out.

    Examples
    --------
    >>> from hetopt.costs.calibration import load_calibration
    >>> from hetopt.graph.decompose import LlmWork
    >>> from hetopt.graph.architectures import get_architecture
    >>> from hetopt.hardware import load_catalog
    >>> h100 = load_catalog().get("H100")
    >>> calib = load_calibration().lookup("H100", "fp16")
    >>> work = LlmWork(get_architecture("llama-3-8b"), "fp16", 512, 128)
    >>> both = llm_configs(h100, work, False, [(1, 1, 8), (2, 1, 32)], 5e-6, calib)
    >>> both[0] == decode_config(h100, work, 1, 8, 5e-6, calib=calib)
    True
    """
    return list(_cached_configs(device, llm, prefill, tuple(points), hop_latency_s, calib))


@functools.lru_cache(maxsize=512)
def _cached_configs(
    device: Device,
    llm: LlmWork,
    prefill: bool,
    points: tuple[tuple[int, int, int], ...],
    hop_latency_s: float,
    calib: CalibrationEntry | None,
) -> tuple[LlmConfig, ...]:
    return tuple(_configs(device, llm, prefill, points, hop_latency_s, calib))


def _configs(
    device: Device,
    llm: LlmWork,
    prefill: bool,
    points: Sequence[tuple[int, int, int]],
    hop_latency_s: float,
    calib: CalibrationEntry | None,
) -> list[LlmConfig]:
    """:func:`llm_configs`, computed now."""
    fitted: list[StageTimes | None] = [None] * len(points)
    if calib is not None:
        q_tokens, kv_tokens = _phase_tokens(llm, prefill)
        fitted = list(
            stage_times(
                device_peaks(device, llm.precision),
                ModelShape.from_architecture(llm.arch),
                BYTES_PER_ELEMENT[llm.precision],
                calib.coefficients,
                q_tokens,
                kv_tokens,
                [(tp, pp, _micro(batch, pp)) for tp, pp, batch in points],
            )
        )
    make = _prefill if prefill else _decode
    return [
        make(device, llm, tp, pp, batch, hop_latency_s, times)
        for (tp, pp, batch), times in zip(points, fitted, strict=True)
    ]


def prefill_config(
    device: Device,
    llm: LlmWork,
    tp: int,
    batch: int,
    hop_latency_s: float,
    pp: int = 1,
    calib: CalibrationEntry | None = None,
) -> LlmConfig:
    """Prefill of ``batch`` prompts on a ``tp x pp`` replica of ``device``.

    ``calib`` selects the fitted step model; without it the stage is the roofline.
    """
    return _configs(device, llm, True, [(tp, pp, batch)], hop_latency_s, calib)[0]


def decode_config(
    device: Device,
    llm: LlmWork,
    tp: int,
    batch: int,
    hop_latency_s: float,
    pp: int = 1,
    calib: CalibrationEntry | None = None,
) -> LlmConfig:
    """Continuous-batching decode of ``batch`` sequences on a ``tp x pp`` replica.

    ``calib`` selects the fitted step model; without it the stage is the roofline.
    """
    return _configs(device, llm, False, [(tp, pp, batch)], hop_latency_s, calib)[0]


def _prefill(
    device: Device,
    llm: LlmWork,
    tp: int,
    pp: int,
    batch: int,
    hop_latency_s: float,
    fitted: StageTimes | None,
) -> LlmConfig:
    """Prefill at one configuration: the fitted step model's numbers, or the roofline."""
    arch, prec = llm.arch, llm.precision
    bpe = BYTES_PER_ELEMENT[prec]
    n_in = llm.input_tokens
    micro = _micro(batch, pp)
    weights = arch.weight_bytes(prec)
    kv_write = arch.kv_cache_bytes(n_in, micro, prec)
    sends = _sends_s(device, llm, tp, pp, micro * n_in, hop_latency_s)
    if fitted is not None:
        stage, stages_s = _itemised(fitted)
        crossing = stages_s + sends
    else:
        stage = _stage(
            device,
            llm,
            tp,
            pp,
            micro,
            micro * arch.prefill_flops(n_in),
            weights,
            kv_write,
            micro * n_in,
            hop_latency_s,
        )
        crossing = pp * stage.total_s + sends
    workspace = 2.0 * micro * n_in * max(arch.d_model, arch.d_ff) * bpe / tp
    mem = (weights + paged_kv_bytes(llm, n_in, batch)) / (tp * pp) + workspace
    time = RooflineTime(
        stage.compute_s, stage.memory_s, stage.network_s, stage.static_s, sends, stage.sync_s
    )
    return LlmConfig(tp, pp, batch, time, crossing, crossing, micro / stage.total_s, mem)


def _decode(
    device: Device,
    llm: LlmWork,
    tp: int,
    pp: int,
    batch: int,
    hop_latency_s: float,
    fitted: StageTimes | None,
) -> LlmConfig:
    """Decode at one configuration: the fitted step model's numbers, or the roofline."""
    arch, prec = llm.arch, llm.precision
    bpe = BYTES_PER_ELEMENT[prec]
    steps = decode_steps(llm)
    _, mean_ctx = _phase_tokens(llm, prefill=False)
    micro = _micro(batch, pp)
    weights = arch.weight_bytes(prec)
    # Each stage reads its weights once per micro-batch, and the micro-batch's KV cache.
    sends = _sends_s(device, llm, tp, pp, micro, hop_latency_s)
    if fitted is not None:
        stage, stages_s = _itemised(fitted)
        step_s = stages_s + sends
    else:
        stage = _stage(
            device,
            llm,
            tp,
            pp,
            micro,
            micro * arch.decode_flops_per_token(mean_ctx),
            weights,
            arch.kv_cache_bytes(mean_ctx, micro, prec),
            micro,
            hop_latency_s,
        )
        step_s = pp * stage.total_s + sends
    latency = steps * step_s
    workspace = 2.0 * micro * max(arch.d_model, arch.d_ff) * bpe / tp
    full = llm.input_tokens + llm.output_tokens
    mem = (weights + paged_kv_bytes(llm, full, batch)) / (tp * pp) + workspace
    time = RooflineTime(
        stage.compute_s, stage.memory_s, stage.network_s, stage.static_s, sends, stage.sync_s
    )
    return LlmConfig(tp, pp, batch, time, latency, step_s, batch / latency, mem)
