"""The cost table times many configurations in one stacked step-model call: the numbers must be
the ones a call per configuration gives, to the last bit (the cost table's rows, and every plan
built on them, do not depend on how the configurations were grouped)."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hetopt.costs import llm
from hetopt.costs.calibration import CalibrationEntry, load_calibration
from hetopt.costs.llm import decode_config, llm_configs, prefill_config
from hetopt.costs.step import (
    DevicePeaks,
    ModelShape,
    StepTime,
    predict_step,
    stack_work,
    step_work,
)
from hetopt.graph.architectures import get_architecture
from hetopt.graph.decompose import LlmWork
from hetopt.hardware import load_catalog

CATALOG = load_catalog()
TABLE = load_calibration()
ENTRIES = [
    TABLE.lookup(d, p) for d in TABLE.devices() for p in ("fp16", "fp8") if TABLE.lookup(d, p)
]
MODELS = ("llama-3-8b", "llama-3-70b", "mixtral-8x7b")  # mixtral: the MoE branches
SHAPES = [ModelShape.from_architecture(get_architecture(n)) for n in MODELS]
POINT = st.tuples(
    st.sampled_from([1, 2, 4, 8]), st.sampled_from([1, 2, 8, 32, 256]), st.sampled_from([1, 2, 4])
)


@settings(max_examples=60, deadline=None)
@given(
    shape=st.sampled_from(SHAPES),
    entry=st.sampled_from(ENTRIES),
    weight_bytes=st.sampled_from([1.0, 2.0]),
    q_tokens=st.sampled_from([1, 7, 512, 8192]),
    context=st.sampled_from([17, 1000, 9000]),
    lm_head=st.booleans(),
    points=st.lists(POINT, min_size=1, max_size=24),
)
def test_stacked_steps_equal_one_step_at_a_time(
    shape: ModelShape,
    entry: CalibrationEntry,
    weight_bytes: float,
    q_tokens: int,
    context: int,
    lm_head: bool,
    points: list[tuple[int, int, int]],
) -> None:
    coefficients = entry.coefficients
    peaks = DevicePeaks(1.2e15, 6.1e14, 2.9e12, 4.5e11)
    kv_tokens = q_tokens if q_tokens > 1 else context
    tp, batch, pp = (np.array(column) for column in zip(*points, strict=True))
    layers = shape.n_layers / pp
    common = dict(weight_bytes=weight_bytes, kv_bytes=weight_bytes, q_tokens=q_tokens)
    stacked = predict_step(
        step_work(
            shape, tp=tp, batch=batch, kv_tokens=kv_tokens, layers=layers, lm_head=lm_head, **common
        ),
        peaks,
        coefficients,
    )
    singles = [
        step_work(
            shape,
            tp=int(t),
            batch=int(b),
            kv_tokens=kv_tokens,
            layers=float(n),
            lm_head=lm_head,
            **common,
        )
        for t, b, n in zip(tp, batch, layers, strict=True)
    ]
    fitted = predict_step(stack_work(singles), peaks, coefficients)  # the fitting path
    for i, work in enumerate(singles):
        one = predict_step(work, peaks, coefficients)
        for name in [f.name for f in fields(StepTime)] + ["total_s"]:
            expected = float(getattr(one, name))
            assert float(np.broadcast_to(getattr(stacked, name), len(points))[i]) == expected
            assert float(np.broadcast_to(getattr(fitted, name), len(points))[i]) == expected


@settings(max_examples=25, deadline=None)
@given(
    device=st.sampled_from(["H100", "A100", "L4", "MI300X"]),
    model=st.sampled_from(MODELS),
    prefill=st.booleans(),
    lengths=st.sampled_from([(128, 32), (2048, 512), (700, 1)]),
    points=st.lists(POINT, min_size=1, max_size=20, unique=True),
)
def test_llm_configs_equal_one_configuration_at_a_time(
    device: str,
    model: str,
    prefill: bool,
    lengths: tuple[int, int],
    points: list[tuple[int, int, int]],
) -> None:
    dev = CATALOG.get(device)
    work = LlmWork(get_architecture(model), "fp16", *lengths)
    calib = TABLE.lookup(device, "fp16") or TABLE.prior("fp16")
    points = [(tp, pp, batch) for tp, batch, pp in points]
    together = llm_configs(dev, work, prefill, points, 2e-6, calib)
    llm._STAGE_CACHE.clear()  # one at a time computes afresh, not from the batch's results
    llm._cached_configs.cache_clear()
    make = prefill_config if prefill else decode_config
    alone = [make(dev, work, tp, batch, 2e-6, pp=pp, calib=calib) for tp, pp, batch in points]
    assert together == alone
    assert llm_configs(dev, work, prefill, points, 2e-6, None) == [
        make(dev, work, tp, batch, 2e-6, pp=pp) for tp, pp, batch in points
    ]
