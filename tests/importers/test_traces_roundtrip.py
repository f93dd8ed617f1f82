"""The trace round trip: run each example agent under the OpenTelemetry SDK, derive its workload
from the traces, and compare with the workload it was generated from (its LangGraph graph read
with its annotation file, ``examples/agents/<name>.py:graph``).

Structure must match exactly: the node set, the edges, which nodes are nested agents (and their
subgraphs), which edges are back edges, the models, and each node's kind class (an LLM node,
a tool node, a plain step; the trace cannot tell ``control`` from ``model_execution``, nor a
retriever's ``memory_lookup`` index from a tool call). Distributions match within sampling
error, each tolerance computed here from the sample:

* a branch probability ``p`` estimated from ``n`` choices: ``4 * sqrt(p (1 - p) / n)``;
* a loop's expected iterations, a mean token count and a mean tool latency: 4 standard errors
  of the mean (sample standard deviation over ``sqrt(runs or calls)``), plus 0.5 token for the
  rounding to whole tokens;
* a loop's ``max_iterations``: equal (every bound is reached in these samples);
* the arrival rate: 4 standard errors of a Poisson rate estimate, ``4 * rate / sqrt(n)``.
"""

from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("opentelemetry.exporter.otlp.proto.common")
pytest.importorskip("openinference.semconv")
pytest.importorskip("langgraph")

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT / "examples" / "traces"
sys.path[:0] = [str(TRACES), str(ROOT / "examples" / "agents")]

import generate  # noqa: E402  (examples/traces/generate.py)

from hetopt.importers.traces import GraphProfile, TraceProfile, profile_traces  # noqa: E402
from hetopt.workloads import load_workload_data  # noqa: E402

REQUESTS = {"react_agent": 400, "rag_agent": 400, "supervisor_agent": 250}


def _truth(name: str) -> dict[str, Any]:
    import hetopt.importers  # noqa: F401  (registers the file.py:object reader)

    return load_workload_data(str(ROOT / "examples" / "agents" / f"{name}.py:graph"))


@pytest.fixture(scope="module", params=sorted(REQUESTS))
def round_trip(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, dict[str, Any], TraceProfile]:
    name = request.param
    truth = _truth(name)
    path = tmp_path_factory.mktemp("traces") / f"{name}.otlp.json"
    path.write_text(generate.generate(name, REQUESTS[name], truth["request_rate_per_s"], seed=7))
    return name, truth, profile_traces([path])


def _kind_class(kind: str) -> str:
    return {"control": "llm", "model_execution": "llm", "memory_lookup": "tool_call"}.get(
        kind, kind
    )


def _check_structure(truth: dict[str, Any], derived: dict[str, Any], graph: GraphProfile) -> None:
    assert set(derived["nodes"]) == set(truth["nodes"])
    t_edges = {(e["src"], e["dst"]): e for e in truth["edges"]}
    d_edges = {(e["src"], e["dst"]): e for e in derived["edges"]}
    assert set(d_edges) == set(t_edges)
    assert {k for k, e in d_edges.items() if "loop" in e} == {
        k for k, e in t_edges.items() if "loop" in e
    }
    for node, t in truth["nodes"].items():
        d = derived["nodes"][node]
        assert _kind_class(d["kind"]) == _kind_class(t["kind"]), node
        assert d.get("model") == t.get("model"), node
        if t["kind"] == "agent":
            _check_structure(t["subgraph"], d["subgraph"], graph.node(node).subgraph)  # type: ignore[arg-type]


def _deviations(
    truth: dict[str, Any], derived: dict[str, Any], graph: GraphProfile, at: str = ""
) -> list[tuple[str, float, float, float]]:
    """(what, truth, derived, tolerance) for every distribution parameter."""
    out = []
    d_edges = {(e["src"], e["dst"]): e for e in derived["edges"]}
    profiles = {(e.src, e.dst): e for e in graph.edges}
    for e in truth["edges"]:
        key = (e["src"], e["dst"])
        d, prof = d_edges[key], profiles[key]
        label = f"{at}{key[0]} -> {key[1]}"
        if "loop" in e:
            counts = prof.loop_counts
            se = statistics.stdev(counts) / math.sqrt(len(counts))
            mean = statistics.fmean(counts)
            out.append(
                (f"{label} expected_iterations", e["loop"]["expected_iterations"], mean, 4 * se)
            )
            out.append((f"{label} max_iterations", e["loop"]["max_iterations"], max(counts), 0.0))
        else:
            p_true, p = e.get("probability", 1.0), d.get("probability", 1.0)
            siblings = [
                x for x in graph.edges if x.src == key[0] and not x.is_back and x.probability < 1.0
            ]
            n = sum(x.count for x in siblings) or prof.count
            out.append(
                (f"{label} probability", p_true, p, 4 * math.sqrt(p_true * (1 - p_true) / n))
            )
    for node, t in truth["nodes"].items():
        prof_node = graph.node(node)
        if t["kind"] == "agent":
            out += _deviations(
                t["subgraph"],
                derived["nodes"][node]["subgraph"],
                prof_node.subgraph,
                f"{at}{node}.",
            )  # type: ignore[arg-type]
        for k, field in ((0, "input_tokens"), (1, "output_tokens")):
            if field in t and prof_node.tokens:
                xs = [tok[k] for tok in prof_node.tokens]
                se = statistics.stdev(xs) / math.sqrt(len(xs))
                out.append(
                    (f"{at}{node} mean {field}", t[field], statistics.fmean(xs), 4 * se + 0.5)
                )
        if t["kind"] == "tool_call":
            xs = list(prof_node.tool_latency_s)
            se = statistics.stdev(xs) / math.sqrt(len(xs))
            out.append(
                (f"{at}{node} latency_s", t["lookup"]["latency_s"], statistics.fmean(xs), 4 * se)
            )
    return out


def test_round_trip_recovers_the_structure_exactly(
    round_trip: tuple[str, dict[str, Any], TraceProfile],
) -> None:
    name, truth, profile = round_trip
    _check_structure(truth, profile.workload_data(), profile.graph)


def test_round_trip_recovers_the_distributions_within_sampling_error(
    round_trip: tuple[str, dict[str, Any], TraceProfile],
) -> None:
    name, truth, profile = round_trip
    rows = _deviations(truth, profile.workload_data(), profile.graph)
    n = profile.requests
    rows.append(
        (
            "rate_per_s",
            truth["request_rate_per_s"],
            profile.rate_per_s,
            4 * profile.rate_per_s / math.sqrt(n),
        )
    )
    report = "\n".join(
        f"{what}: truth {t:g}, derived {d:.4g}, tolerance {tol:.3g}" for what, t, d, tol in rows
    )
    print(f"{name} ({n} requests)\n{report}")
    bad = [r for r in rows if abs(r[2] - r[1]) > r[3] + 1e-9]
    assert not bad, f"{name}: outside tolerance:\n" + "\n".join(map(str, bad))
    assert profile.poisson_fits


def test_size_buckets_keep_the_mean_token_counts(
    round_trip: tuple[str, dict[str, Any], TraceProfile],
) -> None:
    """A node's buckets, weighted, give its calls' mean tokens (to within rounding)."""
    _, _, profile = round_trip
    nodes = profile.workload_data()["nodes"]
    for node in profile.graph.nodes:
        data = nodes[node.name]
        if "size_buckets" in data:
            mean_in = sum(b["input_tokens"] * b["weight"] for b in data["size_buckets"])
            assert mean_in == pytest.approx(statistics.fmean(t[0] for t in node.tokens), abs=0.5)
            assert sum(b["weight"] for b in data["size_buckets"]) == pytest.approx(1.0)


def test_the_shipped_trace_files_are_what_the_generator_writes() -> None:
    for name, spec in generate.AGENTS.items():
        text = generate.generate(name, spec["requests"], spec["rate_per_s"], seed=0)
        shipped = (TRACES / f"{name}.otlp.json").read_text()
        assert text == shipped, f"regenerate with python examples/traces/generate.py {name}"
        assert len(shipped) < 1_000_000
