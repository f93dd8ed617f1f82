"""The mixed step of aggregated serving (decode steps and one prefill chunk in one engine step):
its two pure limits are :func:`step_work`'s decode step and prefill to the last bit, its time
grows with every part of its work and is never below either part's time alone."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hetopt.costs.calibration import CalibrationEntry, load_calibration
from hetopt.costs.step import (
    ACT_BYTES,
    DevicePeaks,
    ModelShape,
    StepCoefficients,
    StepTime,
    StepWork,
    mixed_step_work,
    predict_step,
    stack_work,
    step_work,
)
from hetopt.graph.architectures import get_architecture

TABLE = load_calibration()
ENTRIES = [
    TABLE.lookup(d, p) for d in TABLE.devices() for p in ("fp16", "fp8") if TABLE.lookup(d, p)
]
MODELS = ("llama-3-8b", "llama-3-70b", "mixtral-8x7b")  # mixtral: the MoE branches
SHAPES = [ModelShape.from_architecture(get_architecture(n)) for n in MODELS]
PEAKS = DevicePeaks(1.2e15, 6.1e14, 2.9e12, 4.5e11)
TOY = ModelShape(
    "toy", n_layers=1, d_model=1000, n_heads=10, n_kv_heads=10, head_dim=100, d_ff=2000,
    vocab_size=10,
)  # fmt: skip

TP = st.sampled_from([1, 2, 4, 8])
BYTES = st.sampled_from([1.0, 2.0])
LAYERS = st.sampled_from([None, 8.0, 20.0])


def _assert_same(mixed: StepWork, single: StepWork) -> None:
    """Field by field, bit for bit, and of the same kind (int counts stay int)."""
    for f in fields(StepWork):
        a, b = getattr(mixed, f.name), getattr(single, f.name)
        assert type(a) is type(b), f.name
        assert np.array_equal(a, b), (f.name, a, b)
        assert np.shape(a) == np.shape(b), f.name


@settings(max_examples=150, deadline=None)
@given(
    shape=st.sampled_from(SHAPES),
    weight_bytes=BYTES,
    tp=TP,
    batch=st.integers(1, 1024),
    context=st.integers(1, 130_000),
    prefix=st.integers(0, 9000),
    layers=LAYERS,
    lm_head=st.booleans(),
)
def test_without_a_chunk_the_mixed_step_is_the_decode_step(
    shape: ModelShape,
    weight_bytes: float,
    tp: int,
    batch: int,
    context: int,
    prefix: int,
    layers: float | None,
    lm_head: bool,
) -> None:
    """C = 0: every field is step_work's decode step of B sequences, to the last bit (the
    prefix of an absent chunk does nothing). Caught (mutations, by hand): an LM-head row
    counted without a chunk; the prefix's KV read counted without a chunk."""
    bpe = dict(weight_bytes=weight_bytes, kv_bytes=weight_bytes)
    mixed = mixed_step_work(
        shape, tp=tp, decode_batch=batch, decode_ctx=context, chunk_tokens=0,
        chunk_prefix=prefix, layers=layers, lm_head=lm_head, **bpe,
    )  # fmt: skip
    decode = step_work(
        shape, tp=tp, batch=batch, q_tokens=1, kv_tokens=context, layers=layers,
        lm_head=lm_head, **bpe,
    )  # fmt: skip
    _assert_same(mixed, decode)


@settings(max_examples=150, deadline=None)
@given(
    shape=st.sampled_from(SHAPES),
    weight_bytes=BYTES,
    tp=TP,
    chunk=st.integers(2, 16384),
    context=st.integers(1, 130_000),
    layers=LAYERS,
    lm_head=st.booleans(),
)
def test_without_decode_or_prefix_the_mixed_step_is_a_one_prompt_prefill(
    shape: ModelShape,
    weight_bytes: float,
    tp: int,
    chunk: int,
    context: int,
    layers: float | None,
    lm_head: bool,
) -> None:
    """B = 0, P = 0: step_work's prefill of one prompt of C tokens, every field, the LM-head
    row included (one row: the prompt's last token), to the last bit. C >= 2 because
    step_work times a one-token step as decode. Caught: the LM head on every chunk token;
    two attention kernels per layer whatever is present."""
    bpe = dict(weight_bytes=weight_bytes, kv_bytes=weight_bytes)
    mixed = mixed_step_work(
        shape, tp=tp, decode_batch=0, decode_ctx=context, chunk_tokens=chunk, chunk_prefix=0,
        layers=layers, lm_head=lm_head, **bpe,
    )  # fmt: skip
    prefill = step_work(
        shape, tp=tp, batch=1, q_tokens=chunk, kv_tokens=chunk, layers=layers,
        lm_head=lm_head, **bpe,
    )  # fmt: skip
    _assert_same(mixed, prefill)


def _time(shape: ModelShape, entry: CalibrationEntry, bpe: float, **kw: Any) -> float:
    work = mixed_step_work(shape, weight_bytes=bpe, kv_bytes=bpe, **kw)
    return float(predict_step(work, PEAKS, entry.coefficients).total_s)


@settings(max_examples=200, deadline=None)
@given(
    shape=st.sampled_from(SHAPES),
    entry=st.sampled_from(ENTRIES),
    weight_bytes=BYTES,
    tp=TP,
    batch=st.integers(0, 512),
    context=st.integers(1, 65_536),
    chunk=st.integers(0, 8192),
    prefix=st.integers(0, 65_536),
    more=st.integers(1, 600),
)
def test_the_mixed_step_time_grows_with_batch_chunk_and_context(
    shape: ModelShape,
    entry: CalibrationEntry,
    weight_bytes: float,
    tp: int,
    batch: int,
    context: int,
    chunk: int,
    prefix: int,
    more: int,
) -> None:
    """Non-decreasing in B, C, the decode context and the prefix, and never below either
    part's own step (B decode sequences alone; the chunk alone). Caught: one attention kernel
    per layer with the generation launches still marked (the context floor vanished when a
    decode sequence joined a chunk, so adding B made the step faster); the prefix's KV read
    subtracted instead of added."""
    kw = dict(tp=tp, decode_batch=batch, decode_ctx=context, chunk_tokens=chunk)
    base = _time(shape, entry, weight_bytes, chunk_prefix=prefix, **kw)

    def grown(**change: int) -> float:
        return _time(shape, entry, weight_bytes, **{**kw, "chunk_prefix": prefix, **change})

    assert grown(decode_batch=batch + more) >= base
    assert grown(chunk_tokens=chunk + more) >= base
    assert grown(decode_ctx=context + more) >= base
    assert grown(chunk_prefix=prefix + more) >= base
    decode_only = grown(chunk_tokens=0)
    chunk_only = grown(decode_batch=0)
    assert base >= max(decode_only, chunk_only)


@settings(max_examples=40, deadline=None)
@given(
    shape=st.sampled_from(SHAPES),
    entry=st.sampled_from(ENTRIES),
    weight_bytes=BYTES,
    lm_head=st.booleans(),
    points=st.lists(
        st.tuples(
            TP,
            st.sampled_from([0, 1, 8, 256]),
            st.sampled_from([1, 900, 33_000]),
            st.sampled_from([0, 1, 256, 2048]),
            st.sampled_from([0, 511, 7000]),
            st.sampled_from([32.0, 16.0, 8.0]),
        ),
        min_size=1,
        max_size=16,
    ),
)
def test_stacked_mixed_steps_equal_one_step_at_a_time(
    shape: ModelShape,
    entry: CalibrationEntry,
    weight_bytes: float,
    lm_head: bool,
    points: list[tuple[int, int, int, int, int, float]],
) -> None:
    """Arrays of points give the numbers one call per point gives, to the last bit (what the
    cost table relies on when it times every configuration together). Caught: a scalar
    ``if`` on the chunk array (all points lose their chunk when one has none)."""
    bpe: dict[str, Any] = dict(weight_bytes=weight_bytes, kv_bytes=weight_bytes, lm_head=lm_head)
    tp, batch, ctx, chunk, prefix, layers = (np.array(c) for c in zip(*points, strict=True))
    stacked = predict_step(
        mixed_step_work(
            shape, tp=tp, decode_batch=batch, decode_ctx=ctx, chunk_tokens=chunk,
            chunk_prefix=prefix, layers=layers, **bpe,
        ),
        PEAKS,
        entry.coefficients,
    )  # fmt: skip
    singles = [
        mixed_step_work(
            shape, tp=int(t), decode_batch=int(b), decode_ctx=int(x), chunk_tokens=int(c),
            chunk_prefix=int(p), layers=float(n), **bpe,
        )
        for t, b, x, c, p, n in points
    ]  # fmt: skip
    fitted = predict_step(stack_work(singles), PEAKS, entry.coefficients)
    for i, work in enumerate(singles):
        one = predict_step(work, PEAKS, entry.coefficients)
        for name in [f.name for f in fields(StepTime)] + ["total_s"]:
            expected = float(getattr(one, name))
            assert float(np.broadcast_to(getattr(stacked, name), len(points))[i]) == expected
            assert float(np.broadcast_to(getattr(fitted, name), len(points))[i]) == expected


def test_a_mixed_step_by_hand() -> None:
    """TOY (one layer, 10 heads of 100, d_ff 2000, vocab 10) at tp = 1, fp16: B = 2 decode
    sequences at context 50, a chunk of C = 3 tokens after P = 4. Caught: the generation
    launches not marked (the context floor paid by both kernels)."""
    w = mixed_step_work(
        TOY, weight_bytes=2, kv_bytes=2, tp=1, decode_batch=2, decode_ctx=50, chunk_tokens=3,
        chunk_prefix=4,
    )  # fmt: skip
    # QKV GEMM on B + C = 5 tokens (M=5, N=3000, K=1000); LM head on B + 1 = 3 rows (N = 10)
    assert w.gemm_flops[0] == 2 * 5 * 3000 * 1000
    assert w.gemm_flops[-1] == 2 * 3 * 10 * 1000
    # chunk: queries see 5, 6, 7 positions = 18 pairs = 3 x (4 + 4 / 2); 4 FLOPs per pair
    # per query column (1000)
    assert w.ctx_attn_flops == 4 * 18 * 1000
    # chunk's q, k, v, out in 16 bit: 3 x 4000 x 2; KV write 3 x 2000 x 2; prefix read 4 x 2000 x 2
    assert w.ctx_attn_bytes == 3 * 4000 * 2 + 3 * 2000 * 2 + 4 * 2000 * 2
    # decode: 2 sequences read 50 tokens of K and V (2000 wide) and their q/out
    assert w.gen_attn_flops == 4 * 2 * 50 * 1000
    assert w.gen_attn_bytes == 2 * (50 * 2000 * 2 + 2 * 1000 * 2)
    assert (w.attn_launches, w.gen_attn_launches) == (2, 1)
    assert w.allreduce_bytes == 5 * 1000 * ACT_BYTES
    assert w.elementwise_bytes == 2 * (5 * (6 * 1000 + 2 * 2000) + 5 * 3 * 2000)
    # The context-attention floor is paid by the context kernel only: one per layer.
    c = StepCoefficients(kernel_floor_s=1e-6, ctx_attn_floor_s=7e-6, ctx_attn_eff_compute=1.0,
                         gen_attn_eff_memory=1.0)  # fmt: skip
    peaks = DevicePeaks(1e15, 1e15, 1e12, 1e11)
    flops_s = (w.ctx_attn_flops + w.gen_attn_flops) / 1e15
    bytes_s = (w.ctx_attn_bytes + w.gen_attn_bytes) / 1e12
    expected = max(flops_s, bytes_s) + (1e-6 + 7e-6) + 1e-6
    assert float(predict_step(w, peaks, c).attention_s) == pytest.approx(expected, rel=1e-12)


def test_an_empty_chunk_and_batch_step_launches_no_attention_and_negatives_fail() -> None:
    """Caught: negative batch or token counts not refused."""
    w = mixed_step_work(
        TOY, weight_bytes=2, kv_bytes=2, tp=1, decode_batch=0, decode_ctx=50, chunk_tokens=0,
        chunk_prefix=0,
    )  # fmt: skip
    assert (w.attn_launches, w.ctx_attn_flops, w.gen_attn_flops) == (0, 0.0, 0.0)
    with pytest.raises(ValueError, match=">= 0"):
        mixed_step_work(
            TOY, weight_bytes=2, kv_bytes=2, tp=1, decode_batch=np.array([1, -1]),
            decode_ctx=50, chunk_tokens=0, chunk_prefix=0,
        )  # fmt: skip


def test_default_generation_launches_keep_the_old_attention_time() -> None:
    """A StepWork built without gen_attn_launches (the field's default, 0) is timed as before
    the field existed: every attention launch of a prefill pays the context floor. Caught:
    predict_step ignoring the split (a decode step's floor then counted twice)."""
    w = step_work(TOY, weight_bytes=2, kv_bytes=2, tp=1, batch=2, q_tokens=9, kv_tokens=9)
    assert w.gen_attn_launches == 0
    c = StepCoefficients(kernel_floor_s=1e-6, ctx_attn_floor_s=7e-6)
    peaks = DevicePeaks(1e15, 1e15, 1e12, 1e11)
    attn = max(w.ctx_attn_flops / (1e15 * 0.7), w.ctx_attn_bytes / 1e12)
    assert float(predict_step(w, peaks, c).attention_s) == attn + 1 * (1e-6 + 7e-6)
    decode = step_work(TOY, weight_bytes=2, kv_bytes=2, tp=1, batch=2, q_tokens=1, kv_tokens=9)
    assert decode.gen_attn_launches == decode.attn_launches == 1
    # a decode step's time is the same whether or not its launches are marked generation
    assert float(predict_step(decode, peaks, c).attention_s) == float(
        predict_step(replace(decode, gen_attn_launches=0), peaks, c).attention_s
    )
