"""LLM serving model on the roofline: prefill and decode configurations per device.

For each device and each tensor-parallel degree ``tp`` and batch size ``b`` this module derives the
per-replica latency, throughput and memory of an LLM phase from the model architecture
(:mod:`hetopt.graph.architectures`):

* prefill of ``b`` prompts of ``n_in`` tokens moves the weights once and does
  ``b * prefill_flops(n_in)`` FLOPs; its latency bounds TTFT;
* a decode step of ``b`` sequences reads the weights and every sequence's KV cache once and does
  ``b * decode_flops_per_token(ctx)`` FLOPs at the mean context; its latency bounds TBT, and the
  phase lasts ``max(n_out - 1, 1)`` steps (the first token comes from prefill);
* tensor parallelism splits FLOPs, weights and KV over ``tp`` devices of one scale-up domain and
  adds two ring all-reduces of the activations per layer (``delta_ij``);
* memory per device holds ``weights/tp`` plus the KV cache of the whole batch at full length
  (pages are allocated for the longest sequence) plus an activation workspace.
"""

from __future__ import annotations

from dataclasses import dataclass

from hetopt.costs.roofline import RooflineTime, ring_allreduce_s, roofline_time
from hetopt.graph.architectures import BYTES_PER_ELEMENT
from hetopt.graph.decompose import LlmWork
from hetopt.hardware import Device


@dataclass(frozen=True)
class LlmConfig:
    """One (tensor parallelism, batch size) configuration of an LLM phase on one device.

    Attributes
    ----------
    tp, batch
        Tensor-parallel degree (devices per replica) and batch size.
    time
        Itemised time of one batch (prefill) or one decode step (decode).
    latency_s
        Latency one request sees in this phase: the batch time (prefill) or steps x step time
        (decode).
    step_s
        Prefill: the batch time (= TTFT contribution). Decode: one token-to-token step.
    requests_per_s
        Requests one replica of ``tp`` devices completes per second.
    mem_per_device_bytes
        Resident memory on each of the ``tp`` devices.
    """

    tp: int
    batch: int
    time: RooflineTime
    latency_s: float
    step_s: float
    requests_per_s: float
    mem_per_device_bytes: float


def _tp_sync_s(device: Device, llm: LlmWork, tokens: int, tp: int, hop_latency_s: float) -> float:
    """Two all-reduces of the activations per transformer layer (Megatron-style TP)."""
    bpe = BYTES_PER_ELEMENT[llm.precision]
    message = tokens * llm.arch.d_model * bpe
    per_allreduce = ring_allreduce_s(message, tp, device.scale_up_bw_bytes_per_s, hop_latency_s)
    return 2 * llm.arch.n_layers * per_allreduce


def prefill_config(device: Device, llm: LlmWork, tp: int, batch: int,
                   hop_latency_s: float) -> LlmConfig:
    """Prefill of ``batch`` prompts on a ``tp``-way replica of ``device``."""
    arch, prec = llm.arch, llm.precision
    bpe = BYTES_PER_ELEMENT[prec]
    n_in = llm.input_tokens
    weights = arch.weight_bytes(prec)
    kv = arch.kv_cache_bytes(n_in, batch, prec)
    workspace = 2.0 * batch * n_in * max(arch.d_model, arch.d_ff) * bpe
    time = roofline_time(
        device,
        flops=batch * arch.prefill_flops(n_in) / tp,
        mem_bytes=(weights + kv) / tp,
        precision=prec,
        sync_s=_tp_sync_s(device, llm, batch * n_in, tp, hop_latency_s),
    )
    latency = time.total_s
    return LlmConfig(tp, batch, time, latency, latency, batch / latency,
                     (weights + kv + workspace) / tp)


def decode_config(device: Device, llm: LlmWork, tp: int, batch: int,
                  hop_latency_s: float) -> LlmConfig:
    """Continuous-batching decode of ``batch`` sequences on a ``tp``-way replica of ``device``."""
    arch, prec = llm.arch, llm.precision
    bpe = BYTES_PER_ELEMENT[prec]
    steps = max(llm.output_tokens - 1, 1)
    mean_ctx = llm.input_tokens + steps // 2
    weights = arch.weight_bytes(prec)
    kv_read = arch.kv_cache_bytes(mean_ctx, batch, prec)
    kv_resident = arch.kv_cache_bytes(llm.input_tokens + llm.output_tokens, batch, prec)
    workspace = 2.0 * batch * max(arch.d_model, arch.d_ff) * bpe
    step = roofline_time(
        device,
        flops=batch * arch.decode_flops_per_token(mean_ctx) / tp,
        mem_bytes=(weights + kv_read) / tp,
        precision=prec,
        sync_s=_tp_sync_s(device, llm, batch, tp, hop_latency_s),
    )
    step_s = step.total_s
    latency = steps * step_s
    return LlmConfig(tp, batch, step, latency, step_s, batch / latency,
                     (weights + kv_resident + workspace) / tp)
