"""Aggregated serving configurations: their limits are the phase configurations, their rates
follow from the step time, and one H100 point checked by hand."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hetopt.costs.aggregated import _mixed_times, aggregated_configs, chunk_prefix
from hetopt.costs.calibration import CalibrationEntry, load_calibration
from hetopt.costs.llm import (
    decode_config,
    decode_steps,
    device_peaks,
    paged_kv_bytes,
    prefill_config,
)
from hetopt.costs.step import ModelShape, mixed_step_work, predict_step
from hetopt.graph.architectures import get_architecture
from hetopt.graph.decompose import LlmWork
from hetopt.hardware import load_catalog

CATALOG = load_catalog()
TABLE = load_calibration()
DEVICES = ("H100", "A100", "L4", "MI300X")
MODELS = ("llama-3-8b", "llama-3-70b", "mixtral-8x7b")
HOP = 2e-6


def _calib(device: str, calibrated: bool) -> CalibrationEntry | None:
    return (TABLE.lookup(device, "fp16") or TABLE.prior("fp16")) if calibrated else None


@settings(max_examples=40, deadline=None)
@given(
    device=st.sampled_from(DEVICES),
    model=st.sampled_from(MODELS),
    calibrated=st.booleans(),
    tp=st.sampled_from([1, 2, 4, 8]),
    batch=st.sampled_from([1, 3, 32, 256]),
    lengths=st.sampled_from([(128, 32), (2048, 512), (700, 2), (3000, 1)]),
)
def test_the_pure_limits_of_the_step_are_the_phase_configurations(
    device: str, model: str, calibrated: bool, tp: int, batch: int, lengths: tuple[int, int]
) -> None:
    """No chunk: the step (and its itemised time) is decode_config's, bit for bit; no decode
    and the whole prompt in one chunk: prefill_config's of one prompt. Caught: the decode
    context at n_in + decode_steps (not its mean)."""
    dev, calib = CATALOG.get(device), _calib(device, calibrated)
    work = LlmWork(get_architecture(model), "fp16", *lengths)
    n_in = work.input_tokens
    (decode_time, tau_decode), (prefill_time, tau_prefill) = _mixed_times(
        dev, work, [(tp, batch, 0, 0), (tp, 0, n_in, 0)], HOP, calib
    )
    decode = decode_config(dev, work, tp, batch, HOP, calib=calib)
    assert (decode_time, tau_decode) == (decode.time, decode.step_s)
    prefill = prefill_config(dev, work, tp, 1, HOP, calib=calib)
    assert (prefill_time, tau_prefill) == (prefill.time, prefill.step_s)


@settings(max_examples=40, deadline=None)
@given(
    device=st.sampled_from(DEVICES),
    model=st.sampled_from(MODELS),
    calibrated=st.booleans(),
    tp=st.sampled_from([1, 2, 8]),
    batch=st.sampled_from([1, 8, 64]),
    lengths=st.sampled_from([(128, 32), (2048, 512), (700, 2)]),
    extra=st.sampled_from([0, 1, 5000]),
)
def test_a_chunk_that_holds_the_whole_prompt(
    device: str,
    model: str,
    calibrated: bool,
    tp: int,
    batch: int,
    lengths: tuple[int, int],
    extra: int,
) -> None:
    """C >= n_in: no prefix, TTFT is one step. With C = n_in the step costs at least the
    prefill of the prompt and the decode step of B each alone, and at most both together
    (one step shares the weight reads and the overhead). Caught: the roofline's decode KV
    dropped when a chunk is present (the step fell below decode_config's)."""
    dev, calib = CATALOG.get(device), _calib(device, calibrated)
    work = LlmWork(get_architecture(model), "fp16", *lengths)
    n_in = work.input_tokens
    (cfg,) = aggregated_configs(dev, work, [(tp, batch, n_in + extra)], HOP, calib)
    assert cfg.chunk_prefix_tokens == 0
    assert cfg.ttft_s == cfg.step_s
    if extra == 0:
        prefill = prefill_config(dev, work, tp, 1, HOP, calib=calib).step_s
        decode = decode_config(dev, work, tp, batch, HOP, calib=calib).step_s
        assert max(prefill, decode) <= cfg.step_s <= prefill + decode


@pytest.mark.parametrize("calibrated", [True, False])
@pytest.mark.parametrize("model", MODELS)
def test_the_step_grows_with_the_chunk_and_the_batch(calibrated: bool, model: str) -> None:
    """tau is non-decreasing in C (even though the timed chunk's prefix n_in - C shrinks) and
    in B, and grows overall. Caught: the prefix not clipped at 0 (a chunk longer than the
    prompt then has a negative prefix, which mixed_step_work refuses)."""
    dev, calib = CATALOG.get("H100"), _calib("H100", calibrated)
    work = LlmWork(get_architecture(model), "fp16", 3000, 200)
    chunks = [1, 16, 256, 512, 1000, 2048, 2999, 3000, 3001, 4096, 8192]
    by_chunk = [
        c.step_s for c in aggregated_configs(dev, work, [(8, 16, c) for c in chunks], HOP, calib)
    ]
    assert all(a <= b for a, b in zip(by_chunk, by_chunk[1:], strict=False)), by_chunk
    assert by_chunk[-1] > by_chunk[0]
    batches = [1, 2, 8, 64, 256, 1024]
    by_batch = [
        c.step_s for c in aggregated_configs(dev, work, [(8, b, 512) for b in batches], HOP, calib)
    ]
    assert all(a <= b for a, b in zip(by_batch, by_batch[1:], strict=False)), by_batch
    assert by_batch[-1] > by_batch[0]


@settings(max_examples=40, deadline=None)
@given(
    device=st.sampled_from(DEVICES),
    model=st.sampled_from(MODELS),
    calibrated=st.booleans(),
    points=st.lists(
        st.tuples(st.sampled_from([1, 2, 4, 8]), st.integers(1, 512), st.integers(1, 8192)),
        min_size=1,
        max_size=12,
    ),
    lengths=st.sampled_from([(128, 32), (2048, 512), (700, 1), (1, 2)]),
)
def test_rates_and_latencies_follow_from_the_step(
    device: str,
    model: str,
    calibrated: bool,
    points: list[tuple[int, int, int]],
    lengths: tuple[int, int],
) -> None:
    """mu_slots x decode_steps x tau = B, mu_chunk x n_in x tau = C, TTFT = ceil(n_in/C) tau,
    TBT = tau, decode = decode_steps x tau (n_out = 1 still has one decode step, as
    decode_config), and the points are timed as one at a time. Caught: mu_slots over n_out;
    TTFT with floor(n_in / C) steps."""
    dev, calib = CATALOG.get(device), _calib(device, calibrated)
    work = LlmWork(get_architecture(model), "fp16", *lengths)
    n_in, steps = work.input_tokens, decode_steps(work)
    configs = aggregated_configs(dev, work, points, HOP, calib)
    for (tp, batch, chunk), cfg in zip(points, configs, strict=True):
        tau = cfg.step_s
        assert (cfg.tp, cfg.decode_batch, cfg.chunk_tokens) == (tp, batch, chunk)
        assert cfg.chunk_prefix_tokens == chunk_prefix(work, chunk) == max(n_in - chunk, 0)
        assert cfg.slot_requests_per_s * steps * tau == pytest.approx(batch, rel=1e-12)
        assert cfg.chunk_requests_per_s * n_in * tau == pytest.approx(chunk, rel=1e-12)
        assert cfg.ttft_s == math.ceil(n_in / chunk) * tau
        assert cfg.tbt_s == tau and cfg.decode_latency_s == steps * tau
        assert cfg.time.total_s == pytest.approx(tau, rel=1e-9)
        assert aggregated_configs(dev, work, [(tp, batch, chunk)], HOP, calib) == [cfg]


def test_one_h100_point_by_hand() -> None:
    """llama-3-8b at fp16 (8.03e9 parameters, 32 layers, d_model 4096, 8 of 32 KV heads,
    d_ff 14336), prompt 2048 and 129 output tokens, tp = 1, B = 32, C = 512.

    The chunk is the prompt's last: P = 2048 - 512 = 1536; decode sits at 2048 + 128 // 2 =
    2112. Caught: memory with B (not B + 1) sequences, and workspace for B tokens only."""
    h100 = CATALOG.get("H100")
    work = LlmWork(get_architecture("llama-3-8b"), "fp16", 2048, 129)
    calib = TABLE.lookup("H100", "fp16")
    assert calib is not None
    (cfg,) = aggregated_configs(h100, work, [(1, 32, 512)], HOP, calib)
    assert (cfg.chunk_prefix_tokens, cfg.decode_ctx_tokens) == (1536, 2112)
    shape = ModelShape.from_architecture(work.arch)
    step = mixed_step_work(
        shape, weight_bytes=2, kv_bytes=2, tp=1, decode_batch=32, decode_ctx=2112,
        chunk_tokens=512, chunk_prefix=1536,
    )  # fmt: skip
    tau = float(predict_step(step, device_peaks(h100, "fp16"), calib.coefficients).total_s)
    assert cfg.step_s == tau
    assert cfg.ttft_s == 4 * tau and cfg.decode_latency_s == 128 * tau
    assert cfg.chunk_requests_per_s == 512 / (2048 * tau)
    assert cfg.slot_requests_per_s == 32 / (128 * tau)
    # 8.03e9 x 2 bytes of weights; KV: 2 (K, V) x 32 layers x 1024 (8/32 of 4096) x 2 bytes =
    # 131072 bytes per token, 2177 tokens in 137 pages of 16 = 2192 tokens, 33 sequences;
    # workspace 2 x (32 + 512) tokens x 14336 x 2 bytes.
    kv = 131072 * 2192 * 33
    assert kv == paged_kv_bytes(work, 2177, 33) == 9_481_224_192
    assert cfg.mem_per_device_bytes == 16.06e9 + kv + 2 * 544 * 14336 * 2
    assert 16e-3 < tau < 19e-3  # between the decode step of 32 (9.9 ms) and it + prefill (47 ms)
    # The roofline of the same point: H100's effective 692.3 TFLOP/s at fp16 and 2.68 TB/s.
    (roof,) = aggregated_configs(h100, work, [(1, 32, 512)], HOP, None)
    flops = 32 * (2 * 8.03e9 + 4 * 32 * 2112 * 4096)  # decode tokens at context 2112
    flops += 2 * 8.03e9 * 512 + 2 * 32 * 4096 * (2048**2 - 1536**2)  # chunk after 1536
    nbytes = 16.06e9 + 131072 * (2112 * 32 + 2048)  # weights, decode KV, chunk's KV r/w
    assert roof.step_s == pytest.approx(max(flops / 692.3e12, nbytes / 2.68e12), rel=1e-12)
    assert roof.step_s == pytest.approx(13.3657e-3, rel=1e-4)  # memory-bound: 13.4 ms


def test_points_without_decode_or_chunk_are_refused() -> None:
    """B = 0 (or C = 0) is not aggregated serving: the prefill (decode) configurations of
    llm_configs cover it; aggregated_configs raises instead of returning infinite TTFT or zero
    slot capacity. Caught: B = 0 accepted."""
    h100 = CATALOG.get("H100")
    work = LlmWork(get_architecture("llama-3-8b"), "fp16", 2048, 129)
    for point in [(1, 0, 512), (1, 8, 0), (0, 8, 512)]:
        with pytest.raises(ValueError, match="aggregated serving needs"):
            aggregated_configs(h100, work, [(1, 8, 512), point], HOP)
    with pytest.raises(ValueError, match="a prompt"):
        aggregated_configs(h100, LlmWork(work.arch, "fp16", 0, 129), [(1, 8, 512)], HOP)
