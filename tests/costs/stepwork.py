"""The step model's work for one measured point, written once for the cost tests."""

from __future__ import annotations

from hetopt.costs.step import ModelShape, StepWork, step_work


def point_work(
    shape: ModelShape, precision: str, tp: int, batch: int, seq_tokens: int, prefill: bool
) -> StepWork:
    """A prefill of ``batch`` prompts of ``seq_tokens``, or one decode step with that many cached.

    Weights and the KV cache are one byte at fp8 and two otherwise.
    """
    bpe = 1.0 if precision == "fp8" else 2.0
    return step_work(
        shape,
        weight_bytes=bpe,
        kv_bytes=bpe,
        tp=tp,
        batch=batch,
        q_tokens=seq_tokens if prefill else 1,
        kv_tokens=seq_tokens,
    )
