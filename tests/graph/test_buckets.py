"""Size-bucket expansion of LLM calls (histograms and traces)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hetopt.errors import InputError
from hetopt.graph.buckets import expand_size_buckets
from hetopt.graph.decompose import decompose
from hetopt.graph.ir import agent_graph_from_dict


def _workload(llm: dict) -> dict:
    return {
        "name": "w",
        "request_rate_per_s": 1.0,
        "nodes": {
            "stt": {"kind": "general_compute", "work": {"flops": 1.0e6}},
            "llm": {"kind": "model_execution", "model": "llama-3-8b", **llm},
            "tts": {"kind": "general_compute", "work": {"flops": 1.0e6}},
        },
        "edges": [{"src": "stt", "dst": "llm"}, {"src": "llm", "dst": "tts"}],
    }


def test_histogram_becomes_weighted_branches() -> None:
    data = _workload(
        {
            "size_buckets": [
                {"input_tokens": 100, "output_tokens": 10, "weight": 0.7},
                {"input_tokens": 5000, "output_tokens": 50, "weight": 0.3},
            ]
        }
    )
    graph = decompose(agent_graph_from_dict(expand_size_buckets(data)))
    visits = {op.id: op.visits for op in graph.ops}
    assert visits["llm-b0.prefill"] == pytest.approx(0.7)
    assert visits["llm-b1.decode"] == pytest.approx(0.3)
    assert visits["tts"] == pytest.approx(1.0)  # the branches re-join
    assert graph.op("llm-b1.prefill").llm.input_tokens == 5000  # type: ignore[union-attr]
    assert "size_buckets" in data["nodes"]["llm"]  # input untouched


def test_trace_is_binned_by_quantiles(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    rows = [(100 + i, 20) for i in range(60)] + [(4000 + i, 300) for i in range(40)]
    trace.write_text("input_tokens,output_tokens\n" + "\n".join(f"{a},{b}" for a, b in rows))
    out = expand_size_buckets(
        _workload({"size_trace": str(trace), "size_input_bins": 2, "size_output_bins": 1})
    )
    buckets = sorted(n for n in out["nodes"] if n.startswith("llm-b"))
    assert len(buckets) == 2
    weights = sorted(e["probability"] for e in out["edges"] if e["dst"] in buckets)
    assert weights == pytest.approx([0.4, 0.6])
    longest = max(out["nodes"][b]["input_tokens"] for b in buckets)
    assert longest == 4039  # each bucket is represented by its longest request


@pytest.mark.parametrize(
    ("llm", "needle"),
    [
        ({"size_buckets": [{"input_tokens": 100, "output_tokens": 10, "weight": 0.5}]}, "sum to"),
        ({"size_buckets": [{"input_tokens": 0, "output_tokens": 10, "weight": 1.0}]}, ">= 1"),
        ({"size_buckets": []}, "non-empty"),
        ({"size_trace": "/nonexistent/trace.csv"}, "cannot read"),
        ({"size_slices": 0, "input_tokens": 10, "output_tokens": 5}, "size_slices"),
        ({"size_slices": 1.5, "input_tokens": 10, "output_tokens": 5}, "size_slices"),
    ],
)
def test_bad_distributions_are_user_errors(llm: dict, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        expand_size_buckets(_workload(llm))


def test_source_node_gets_a_router() -> None:
    data = {
        "name": "w",
        "request_rate_per_s": 1.0,
        "edges": [],
        "nodes": {
            "llm": {
                "kind": "model_execution",
                "model": "llama-3-8b",
                "size_buckets": [{"input_tokens": 10, "output_tokens": 5, "weight": 1.0}],
            }
        },
    }
    out = expand_size_buckets(data)
    assert "llm-router" in out["nodes"] and "llm-b0" in out["nodes"]


def test_slices_cut_each_bucket_into_equal_shares() -> None:
    data = _workload(
        {
            "size_slices": 3,
            "size_buckets": [
                {"input_tokens": 100, "output_tokens": 10, "weight": 0.7},
                {"input_tokens": 5000, "output_tokens": 50, "weight": 0.3},
            ],
        }
    )
    graph = decompose(agent_graph_from_dict(expand_size_buckets(data)))
    visits = {op.id: op.visits for op in graph.ops}
    for s in range(3):
        assert visits[f"llm-b0-s{s}.prefill"] == pytest.approx(0.7 / 3)
        assert visits[f"llm-b1-s{s}.decode"] == pytest.approx(0.1)
        assert graph.op(f"llm-b1-s{s}.prefill").llm.input_tokens == 5000  # type: ignore[union-attr]
    assert visits["tts"] == pytest.approx(1.0)
    assert not any(op.id.startswith("llm-b0.") for op in graph.ops)


def test_slices_of_a_node_without_buckets_keep_its_lengths() -> None:
    data = _workload({"size_slices": 2, "input_tokens": 300, "output_tokens": 30})
    out = expand_size_buckets(data)
    assert sorted(n for n in out["nodes"] if n.startswith("llm")) == ["llm-s0", "llm-s1"]
    graph = decompose(agent_graph_from_dict(out))
    assert graph.op("llm-s1.decode").llm.output_tokens == 30  # type: ignore[union-attr]
    assert graph.op("llm-s0.prefill").visits == pytest.approx(0.5)
    one = expand_size_buckets(_workload({"size_slices": 1, "input_tokens": 300}))
    assert "size_slices" not in one["nodes"]["llm"] and "llm" in one["nodes"]


def test_slices_on_a_node_that_is_not_an_llm_call_are_refused() -> None:
    data = _workload({"input_tokens": 10})
    data["nodes"]["stt"]["size_slices"] = 2
    with pytest.raises(InputError, match="size_slices splits an LLM call"):
        expand_size_buckets(data)
