"""Aggregated serving of one LLM call: prefill chunks and decode steps on the same replica.

An engine with chunked prefill (vLLM's) runs, in every step, one token for each of ``B``
decode sequences and a chunk of ``C`` new tokens of a prompt being prefilled. One step takes
``tau`` (:func:`~hetopt.costs.step.mixed_step_work`, timed by the fitted step model, or the
roofline without a calibration entry), so that, for a call with prompt ``n_in`` and output
``n_out`` tokens, on a ``tp``-way replica (``pp = 1``):

* TBT is ``tau``: every decode sequence waits for the chunk of each step;
* TTFT is ``ceil(n_in / C) x tau``: a prompt takes that many steps to prefill;
* decode lasts :func:`~hetopt.costs.llm.decode_steps` steps (``n_out - 1``, at least 1);
* a replica serves two kinds of capacity at once, ``C`` chunk tokens and ``B`` decode slots
  per step: ``mu_chunk = C / (n_in x tau)`` prompts per second and ``mu_slots = B /
  (decode_steps x tau)`` requests per second.

**The step that is timed.** The decode sequences sit at the call's mean decode context
``n_in + decode_steps // 2`` (as a decode configuration's step). The chunk sits at the largest
prefix of the prompt, ``P = max(n_in - C, 0)``: the prompt's last full chunk, which attends to
the most tokens and is therefore the slowest step of a prompt. ``tau`` is a per-step bound (each
decode sequence's TBT), so the worst step is the one that must meet the TBT limit; TTFT and
``mu_chunk`` are then slightly pessimistic (every chunk of a prompt is timed as its last one).
When ``C >= n_in`` the chunk budget holds whole prompts (``P = 0``) and is counted as one
causal run of ``C`` tokens, which overstates attention a little when several prompts share it.

**Memory** per device: the weights and the paged KV cache of ``B + 1`` sequences at full
length (``n_in + n_out``: the ``B`` decode slots and the prompt being chunked) split ``tp``
ways, plus an activation workspace for the step's ``B + C`` tokens, as a decode (``B``) or
prefill (``n_in``) configuration computes them. No engine reserve: the cost table subtracts it
from the device's memory for every configuration.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hetopt.costs.calibration import CalibrationEntry
from hetopt.costs.llm import _stage, decode_steps, device_peaks, paged_kv_bytes
from hetopt.costs.roofline import RooflineTime
from hetopt.costs.step import ModelShape, mixed_step_work, predict_step
from hetopt.graph.architectures import BYTES_PER_ELEMENT
from hetopt.graph.decompose import LlmWork
from hetopt.hardware import Device


@dataclass(frozen=True)
class AggregatedConfig:
    """One ``(tp, B, C)`` configuration of aggregated serving of an LLM call on one device.

    Attributes
    ----------
    tp, decode_batch, chunk_tokens
        Tensor-parallel degree (``tp`` devices per replica, ``pp = 1``), decode slots ``B`` and
        prefill chunk ``C`` (new prompt tokens per step).
    chunk_prefix_tokens, decode_ctx_tokens
        The timed step's chunk prefix ``P`` and decode context (see the module docstring).
    time
        The timed step, itemised (``static_s`` holds floors, overhead and non-binding kernels).
    step_s
        ``tau``: one mixed step.
    ttft_s
        ``ceil(n_in / C) x tau``.
    tbt_s
        ``tau``.
    decode_latency_s
        ``decode_steps x tau``.
    chunk_requests_per_s
        ``mu_chunk = C / (n_in x tau)``: prompts one replica prefills per second.
    slot_requests_per_s
        ``mu_slots = B / (decode_steps x tau)``: requests one replica decodes per second.
    mem_per_device_bytes
        Resident memory on each of the ``tp`` devices (without the engine reserve).
    """

    tp: int
    decode_batch: int
    chunk_tokens: int
    chunk_prefix_tokens: int
    decode_ctx_tokens: int
    time: RooflineTime
    step_s: float
    ttft_s: float
    tbt_s: float
    decode_latency_s: float
    chunk_requests_per_s: float
    slot_requests_per_s: float
    mem_per_device_bytes: float

    @property
    def devices(self) -> int:
        """Devices per replica."""
        return self.tp


def chunk_prefix(llm: LlmWork, chunk_tokens: int) -> int:
    """The prefix of the timed chunk: ``max(n_in - C, 0)``, the prompt's last full chunk.

    Examples
    --------
    >>> from hetopt.graph.architectures import get_architecture
    >>> work = LlmWork(get_architecture("llama-3-8b"), "fp16", 2048, 128)
    >>> chunk_prefix(work, 512), chunk_prefix(work, 4096)
    (1536, 0)
    """
    return max(llm.input_tokens - chunk_tokens, 0)


def _decode_ctx(llm: LlmWork) -> int:
    """The decode sequences' mean context (what a decode configuration's step attends to)."""
    return llm.input_tokens + decode_steps(llm) // 2


def _mixed_times(
    device: Device,
    llm: LlmWork,
    points: Sequence[tuple[int, int, int, int]],
    hop_latency_s: float,
    calib: CalibrationEntry | None,
) -> list[tuple[RooflineTime, float]]:
    """(itemised step, step time) at ``(tp, B, C, P)`` points (``pp = 1``; ``B`` or ``C``
    may be 0, not both).

    Calibrated: the fitted step model on :func:`mixed_step_work`, all points in one stacked
    call; its ``total_s`` is the step time. Otherwise the roofline of the step, as
    :mod:`hetopt.costs.llm` computes a stage: decode FLOPs of ``B`` tokens at the mean
    context plus the chunk's causal FLOPs after its prefix, the weights plus the KV cache
    read by the decode sequences and the chunk's prefix and written by the chunk, and two ring
    all-reduces per layer of ``B + C`` tokens' activations.
    """
    ctx = _decode_ctx(llm)
    arch, prec = llm.arch, llm.precision
    if calib is None:
        out = []
        for tp, batch, chunk, prefix in points:
            flops = batch * arch.decode_flops_per_token(ctx) if batch else 0.0
            kv = arch.kv_cache_bytes(ctx, batch, prec) if batch else 0.0
            if chunk:
                flops += arch.prefill_flops(prefix + chunk) - arch.prefill_flops(prefix)
                kv += arch.kv_cache_bytes(prefix + chunk, 1, prec)
            weights = arch.weight_bytes(prec)
            tokens = batch + chunk
            stage = _stage(device, llm, tp, 1, tokens, flops, weights, kv, tokens, hop_latency_s)
            out.append((stage, stage.total_s))
        return out
    tps, batches, chunks, prefixes = (np.array(c) for c in zip(*points, strict=True))
    bpe = BYTES_PER_ELEMENT[prec]
    work = mixed_step_work(
        ModelShape.from_architecture(arch),
        weight_bytes=bpe,
        kv_bytes=bpe,
        tp=tps,
        decode_batch=batches,
        decode_ctx=ctx,
        chunk_tokens=chunks,
        chunk_prefix=prefixes,
        layers=np.full(len(points), float(arch.n_layers)),
    )
    t = predict_step(work, device_peaks(device, prec), calib.coefficients)
    columns = (t.compute_bound_s, t.memory_bound_s, t.allreduce_s, t.total_s)
    rows = np.stack([np.asarray(c, dtype=float) for c in columns], axis=-1).tolist()
    # static_s holds the floors, overhead and the non-binding kernels, so that the itemised
    # step's total_s is the step model's total (to rounding; step_s is the total itself).
    return [
        (RooflineTime(compute, memory, 0.0, total - max(compute, memory) - sync, 0.0, sync), total)
        for compute, memory, sync, total in rows
    ]


def aggregated_configs(
    device: Device,
    llm: LlmWork,
    points: Sequence[tuple[int, int, int]],
    hop_latency_s: float,
    calib: CalibrationEntry | None = None,
) -> list[AggregatedConfig]:
    """Every ``(tp, B, C)`` configuration of aggregated serving of one LLM call on a device.

    See the module docstring for the model: one mixed step of ``B`` decode sequences and a
    prefill chunk of ``C`` tokens takes ``tau``; TBT is ``tau``, TTFT ``ceil(n_in / C) tau``,
    and a replica prefills ``C / (n_in tau)`` and decodes ``B / (decode_steps tau)`` requests
    per second.

    Parameters
    ----------
    device
        The device type.
    llm
        The LLM call's model, precision and lengths (``input_tokens >= 1``).
    points
        ``(tp, decode_batch, chunk_tokens)`` configurations, each at least 1: a replica with
        no decode slot or no chunk budget is not aggregated serving (the prefill and decode
        configurations of :func:`~hetopt.costs.llm.llm_configs` are those).
    hop_latency_s
        Latency of one hop over the scale-up link (the roofline's all-reduces).
    calib
        The fitted step model's entry for the device and precision; the roofline without it.

    Returns
    -------
    list of AggregatedConfig
        One per point, in order.

    Raises
    ------
    ValueError
        If a point has ``tp``, ``B`` or ``C`` below 1, or the call has no prompt.

    Examples
    --------
    >>> from hetopt.costs.calibration import load_calibration
    >>> from hetopt.graph.architectures import get_architecture
    >>> from hetopt.hardware import load_catalog
    >>> h100 = load_catalog().get("H100")
    >>> calib = load_calibration().lookup("H100", "fp16")
    >>> work = LlmWork(get_architecture("llama-3-8b"), "fp16", 2048, 129)
    >>> small, large = aggregated_configs(h100, work, [(1, 32, 256), (1, 32, 2048)], 5e-6, calib)
    >>> small.chunk_prefix_tokens, large.chunk_prefix_tokens, small.decode_ctx_tokens
    (1792, 0, 2112)
    >>> small.step_s < large.step_s, small.ttft_s == 8 * small.step_s
    (True, True)
    >>> round(large.slot_requests_per_s * 128 * large.step_s, 9)  # B requests in flight
    32.0
    """
    bad = [p for p in points if min(p) < 1]
    if bad or llm.input_tokens < 1:
        raise ValueError(
            f"aggregated serving needs tp, decode_batch and chunk_tokens >= 1 and a prompt; "
            f"got points {bad} and input_tokens {llm.input_tokens}"
        )
    full = [(tp, batch, chunk, chunk_prefix(llm, chunk)) for tp, batch, chunk in points]
    times = _mixed_times(device, llm, full, hop_latency_s, calib)
    n_in, steps, arch = llm.input_tokens, decode_steps(llm), llm.arch
    bpe = BYTES_PER_ELEMENT[llm.precision]
    weights = arch.weight_bytes(llm.precision)
    length = llm.input_tokens + llm.output_tokens
    out = []
    for (tp, batch, chunk, prefix), (time, tau) in zip(full, times, strict=True):
        workspace = 2.0 * (batch + chunk) * max(arch.d_model, arch.d_ff) * bpe / tp
        mem = (weights + paged_kv_bytes(llm, length, batch + 1)) / tp + workspace
        out.append(
            AggregatedConfig(
                tp=tp,
                decode_batch=batch,
                chunk_tokens=chunk,
                chunk_prefix_tokens=prefix,
                decode_ctx_tokens=_decode_ctx(llm),
                time=time,
                step_s=tau,
                ttft_s=math.ceil(n_in / chunk) * tau,
                tbt_s=tau,
                decode_latency_s=steps * tau,
                chunk_requests_per_s=chunk / (n_in * tau),
                slot_requests_per_s=batch / (steps * tau),
                mem_per_device_bytes=mem,
            )
        )
    return out
