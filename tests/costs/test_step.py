"""The operation-level step model: hand-derived times and properties (hypothesis)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hetopt.costs.calibration import load_calibration
from hetopt.costs.llm import decode_config, device_peaks, prefill_config
from hetopt.costs.step import (
    DevicePeaks,
    ModelShape,
    StepCoefficients,
    achieved_fraction,
    predict_step,
    roofline_floor_s,
    step_work,
)
from hetopt.graph.architectures import get_architecture
from hetopt.graph.decompose import LlmWork
from hetopt.hardware import load_catalog
from tests.costs.stepwork import point_work

CATALOG = load_catalog()
TABLE = load_calibration()
CALIBRATED = sorted(
    (d, p) for d in TABLE.devices() for p in ("fp16", "fp8") if TABLE.lookup(d, p) is not None
)
SHAPES = [
    ModelShape.from_architecture(get_architecture(n))
    for n in ("llama-3-8b", "llama-3-70b", "llama-3.2-1b", "mixtral-8x7b")
]
# A tiny one-layer model whose steps are sums we can write down.
TOY = ModelShape(
    "toy",
    n_layers=1,
    d_model=1000,
    n_heads=10,
    n_kv_heads=10,
    head_dim=100,
    d_ff=2000,
    vocab_size=10,
)


def test_one_gemm_by_hand() -> None:
    """A tiny one-layer model whose step is a sum we can write down."""
    w = step_work(TOY, weight_bytes=2, kv_bytes=2, tp=1, batch=1, q_tokens=1, kv_tokens=100)
    # QKV GEMM: M=1, N=3000, K=1000: 6e6 FLOPs; bytes (1*1000 + 1*3000)*2 + 1000*3000*2
    assert w.gemm_flops[0] == 2 * 1 * 3000 * 1000
    assert w.gemm_bytes[0] == (1000 + 3000) * 2 + 1000 * 3000 * 2
    # decode attention reads the KV cache: 100 tokens x 2 (K, V) x 1000 wide x 2 bytes + q/out
    assert w.gen_attn_bytes == 100 * 2 * 1000 * 2 + 2 * 1000 * 2
    peaks = DevicePeaks(1e15, 1e15, 1e12, 1e11)
    c = StepCoefficients(
        gemm_eff_compute=1.0,
        gemm_eff_memory=1.0,
        kernel_floor_s=1e-6,
        ctx_attn_floor_s=7e-6,
        gen_attn_eff_memory=1.0,
        elementwise_eff_memory=1.0,
        step_overhead_s=5e-3,
    )
    t = predict_step(w, peaks, c)
    gemm_bytes = float((w.gemm_count * w.gemm_bytes).sum())
    assert float(t.gemm_s) == pytest.approx(gemm_bytes / 1e12 + 5 * 1e-6)  # 4 GEMMs + LM head
    # decode attention: one launch, no context-attention extra
    assert float(t.attention_s) == pytest.approx(w.gen_attn_bytes / 1e12 + 1e-6)
    assert float(t.elementwise_s) == pytest.approx(w.elementwise_bytes / 1e12 + 4 * 1e-6)
    assert float(t.overhead_s) == 5e-3
    assert float(t.allreduce_s) == 0.0  # tp = 1


def test_prefill_attention_and_fp8_quantisation_by_hand() -> None:
    w = step_work(TOY, weight_bytes=1, kv_bytes=1, tp=2, batch=2, q_tokens=3, kv_tokens=3)
    # causal pairs: 2 sequences x 3 x 4 / 2 = 12; 4 FLOPs per pair per q column (500 per device)
    assert w.ctx_attn_flops == 4 * 12 * 500
    # q, k, v and out in 16 bit: 6 tokens x (2 x 500 + 2 x 500) x 2; the KV write at fp8:
    # 6 tokens x 2 x 500 x 1
    assert w.ctx_attn_bytes == 6 * 2000 * 2 + 6 * 1000 * 1
    assert w.gen_attn_flops == 0 and w.attn_launches == 1
    # the LM head runs on the last token of each sequence: M = 2, N = 10 / 2, K = 1000
    assert w.gemm_flops[-1] == 2 * 2 * 5 * 1000
    # fp8: 4 quantisation kernels beside the 4 elementwise ones; they read 16 bit and write 8:
    # 6 tokens x (d_model + q_width + d_model + d_ff / tp) x (2 + 1) bytes
    assert w.elementwise_launches == 8
    plain = 2 * 6 * (6 * 1000 + 2 * (500 + 500) + 3 * 1000)
    assert w.elementwise_bytes == plain + 6 * (1000 + 500 + 1000 + 1000) * 3


def test_allreduce_by_hand() -> None:
    shape = SHAPES[0]
    w = step_work(shape, weight_bytes=2, kv_bytes=2, tp=4, batch=8, q_tokens=1, kv_tokens=10)
    assert w.allreduce_launches == 2 * shape.n_layers
    message = 8 * shape.d_model * 2
    c = StepCoefficients(
        allreduce_latency_s_tp4=3e-6,
        allreduce_eff_bw_tp4=0.5,
        allreduce_size_s_tp4=2e-5,
        allreduce_size_exponent=0.5,
    )
    t = predict_step(w, DevicePeaks(1e15, 1e15, 1e12, 1e11), c)
    ring = 2 * 3 / 4 * message / (1e11 * 0.5)
    size_law = 2e-5 * math.sqrt(message / 1e6)
    assert float(t.allreduce_s) == pytest.approx(2 * shape.n_layers * (3e-6 + max(ring, size_law)))


def test_achieved_fraction_saturates() -> None:
    fractions = [achieved_fraction(w, 1e15, 0.8, 5e-6) for w in (1e8, 1e10, 1e12, 1e14)]
    assert fractions == sorted(fractions)
    assert fractions[-1] == pytest.approx(0.8, rel=1e-3) and fractions[0] < 0.05


@st.composite
def steps(draw):  # type: ignore[no-untyped-def]
    device, precision = draw(st.sampled_from(CALIBRATED))
    shape = draw(st.sampled_from(SHAPES))
    tp = draw(st.sampled_from([t for t in (1, 2, 4, 8) if shape.n_kv_heads % t == 0]))
    batch = draw(st.integers(1, 256))
    seq = draw(st.integers(1, 8192))
    prefill = draw(st.booleans())
    return device, precision, shape, tp, batch, seq, prefill


def _time(
    device: str, precision: str, shape: ModelShape, tp: int, batch: int, seq: int, prefill: bool
) -> float:
    entry = TABLE.lookup(device, precision)
    assert entry is not None
    w = point_work(shape, precision, tp, batch, seq, prefill)
    return float(
        predict_step(w, device_peaks(CATALOG.get(device), precision), entry.coefficients).total_s
    )


@settings(max_examples=150, deadline=None)
@given(steps(), st.sampled_from(["batch", "seq"]), st.integers(1, 512))
def test_step_time_never_falls_when_work_grows(step, what, more) -> None:  # type: ignore[no-untyped-def]
    device, precision, shape, tp, batch, seq, prefill = step
    base = _time(device, precision, shape, tp, batch, seq, prefill)
    if what == "batch":
        grown = _time(device, precision, shape, tp, batch + more, seq, prefill)
    else:
        grown = _time(device, precision, shape, tp, batch, seq + more, prefill)
    assert grown >= base * (1 - 1e-12)


@settings(max_examples=150, deadline=None)
@given(steps())
def test_no_prediction_beats_the_roofline_at_full_peak(step) -> None:  # type: ignore[no-untyped-def]
    device, precision, shape, tp, batch, seq, prefill = step
    entry = TABLE.lookup(device, precision)
    assert entry is not None
    w = point_work(shape, precision, tp, batch, seq, prefill)
    peaks = device_peaks(CATALOG.get(device), precision)
    t = float(predict_step(w, peaks, entry.coefficients).total_s)
    assert t >= float(roofline_floor_s(w, peaks)) * (1 - 1e-12)
    # and never faster than streaming its GEMMs' bytes (weights included) at full bandwidth
    assert t >= float((w.gemm_count * w.gemm_bytes).sum()) / peaks.mem_bw_bytes_per_s * (1 - 1e-12)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(CALIBRATED),
    st.sampled_from(["llama-3-8b", "llama-3-70b"]),
    st.sampled_from([1, 2, 4, 8]),
    st.integers(1, 32),
    st.integers(16, 4096),
)
def test_planner_configs_monotone_and_above_the_roofline(cal, model, tp, batch, n_in) -> None:  # type: ignore[no-untyped-def]
    """Through the planner's own path: more batch or longer prompts never make a step faster,
    and the calibrated step is never faster than the roofline's memory term at 100 %."""
    device_name, precision = cal
    device, entry = CATALOG.get(device_name), TABLE.lookup(*cal)
    work = LlmWork(get_architecture(model), precision, n_in, 64)
    longer = LlmWork(get_architecture(model), precision, n_in + 64, 64)
    for make in (prefill_config, decode_config):
        a = make(device, work, tp, batch, 2e-6, calib=entry)
        b = make(device, work, tp, batch + 1, 2e-6, calib=entry)
        c = make(device, longer, tp, batch, 2e-6, calib=entry)
        assert b.step_s >= a.step_s * (1 - 1e-12) and c.step_s >= a.step_s * (1 - 1e-12)
        weights_s = work.arch.weight_bytes(precision) / tp / device.mem_bw_bytes_per_s
        assert a.step_s >= weights_s


def test_pipeline_stages_pay_the_overhead_once() -> None:
    h100, entry = CATALOG.get("H100"), TABLE.lookup("H100", "fp16")
    assert entry is not None
    work = LlmWork(get_architecture("llama-3-70b"), "fp16", 1024, 64)
    one = prefill_config(h100, work, 8, 2, 2e-6, pp=1, calib=entry)
    two = prefill_config(h100, work, 8, 2, 2e-6, pp=2, calib=entry)
    # two stages of half the layers on half the micro-batch each: the crossing is not 2x
    assert two.step_s < 2 * one.step_s
    no_overhead = replace(entry, coefficients=replace(entry.coefficients, step_overhead_s=0.0))
    base = prefill_config(h100, work, 8, 2, 2e-6, pp=2, calib=no_overhead)
    assert two.step_s - base.step_s == pytest.approx(entry.coefficients.step_overhead_s)
