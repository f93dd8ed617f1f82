"""Properties of the roofline and LLM serving models."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hetopt.costs.llm import decode_config, prefill_config
from hetopt.costs.roofline import ring_allreduce_s, roofline_time
from hetopt.graph.architectures import get_architecture
from hetopt.graph.decompose import LlmWork
from hetopt.hardware import load_catalog

CATALOG = load_catalog()
DEVICES = st.sampled_from(CATALOG.devices)
WORK = st.floats(min_value=0.0, max_value=1e16, allow_nan=False)


@given(DEVICES, WORK, WORK, WORK, st.floats(0, 1.0))
def test_never_faster_than_any_roofline_bound(device, flops, mem, net, static) -> None:  # type: ignore[no-untyped-def]
    t = roofline_time(
        device, flops=flops, mem_bytes=mem, net_bytes=net, precision="fp16", static_s=static
    )
    assert t.total_s >= flops / device.peak_flops_per_s("fp16") * (1 - 1e-12)
    assert t.total_s >= mem / device.mem_bw_bytes_per_s * (1 - 1e-12)
    assert t.total_s >= net / device.scale_out_bw_bytes_per_s * (1 - 1e-12)
    assert t.total_s >= static
    assert t.binding in ("compute", "memory", "network")


@given(DEVICES, WORK, WORK, st.floats(0.0, 1e15), st.floats(0.0, 1e15))
def test_monotone_in_work(device, flops, mem, extra_flops, extra_mem) -> None:  # type: ignore[no-untyped-def]
    base = roofline_time(device, flops=flops, mem_bytes=mem, precision="fp16").total_s
    more = roofline_time(
        device, flops=flops + extra_flops, mem_bytes=mem + extra_mem, precision="fp16"
    ).total_s
    assert more >= base


def test_binding_resource_is_the_largest_term() -> None:
    h100 = CATALOG.get("H100")
    assert roofline_time(h100, flops=1e15, mem_bytes=1e6, precision="fp16").binding == "compute"
    assert roofline_time(h100, flops=1e6, mem_bytes=1e12, precision="fp16").binding == "memory"


def test_ring_allreduce() -> None:
    assert ring_allreduce_s(1e9, 1, 1e11, 1e-6) == 0.0
    # 2(p-1)/p of the message per link plus 2(p-1) hops
    assert ring_allreduce_s(1e9, 4, 1e11, 1e-6) == pytest.approx(6e-6 + 1.5 * 1e9 / 1e11)


LLAMA70 = LlmWork(get_architecture("llama-3-70b"), "fp16", 1024, 256)


@settings(max_examples=30)
@given(
    st.sampled_from([d for d in CATALOG.devices if d.kind != "cpu"]), st.sampled_from([1, 2, 4, 8])
)
def test_decode_step_grows_with_batch_but_throughput_too(device, tp) -> None:  # type: ignore[no-untyped-def]
    small = decode_config(device, LLAMA70, tp, 8, 2e-6)
    large = decode_config(device, LLAMA70, tp, 64, 2e-6)
    assert large.step_s >= small.step_s
    assert large.requests_per_s >= small.requests_per_s
    assert large.mem_per_device_bytes > small.mem_per_device_bytes


def test_tensor_parallelism_splits_memory_and_prefill_time() -> None:
    h100 = CATALOG.get("H100")
    one = prefill_config(h100, LLAMA70, 1, 1, 2e-6)
    four = prefill_config(h100, LLAMA70, 4, 1, 2e-6)
    assert four.mem_per_device_bytes == pytest.approx(one.mem_per_device_bytes / 4)
    assert four.latency_s < one.latency_s
    assert four.time.sync_s > 0 == one.time.sync_s
    # 70B fp16 weights alone (141 GB) do not fit one 80 GB H100
    assert one.mem_per_device_bytes > h100.mem_bytes


def test_decode_is_memory_bound_and_prefill_compute_bound_on_h100() -> None:
    h100 = CATALOG.get("H100")
    assert decode_config(h100, LLAMA70, 4, 16, 2e-6).time.binding == "memory"
    assert prefill_config(h100, LLAMA70, 4, 4, 2e-6).time.binding == "compute"
    # decode step at batch 1 ~ weights / (tp x effective bandwidth)
    step = decode_config(h100, LLAMA70, 4, 1, 2e-6).time.memory_s
    weights = LLAMA70.arch.weight_bytes("fp16")
    assert step == pytest.approx(weights / 4 / h100.effective_mem_bw_bytes_per_s, rel=0.02)
