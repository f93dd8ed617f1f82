"""Replay validation: queueing theory, conservation, determinism, agreement with the planner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hetopt.cli.main import main
from hetopt.errors import InputError
from hetopt.hardware import load_catalog
from hetopt.pipeline import HardwareSpec, PlanOutcome, PlanRequest, plan_agent
from hetopt.replay.arrivals import ArrivalSpec, arrival_times, load_trace
from hetopt.replay.engine import ReplayConfig
from hetopt.replay.queueing import erlang_c_wait_s
from hetopt.sla import Sla
from hetopt.workloads import Workload, load_workload
from tests.replay.replaying import replay_outcome


def _plan(workload: Workload, **kw: object) -> PlanOutcome:
    return plan_agent(PlanRequest(workload, baselines=(), **kw))  # type: ignore[arg-type]


def test_single_pool_matches_mmc_waiting_time(mmc: PlanOutcome) -> None:
    """One light operator on a pool of c CPUs, Poisson arrivals, exponential service: M/M/c."""
    c = mmc.plan.pool_counts[0]
    assert c == 4  # ceil(25 x 0.1 / 0.8)
    result = replay_outcome(
        mmc,
        ReplayConfig(
            arrivals=ArrivalSpec(rate_per_s=25.0),
            duration_s=2000,
            warmup_s=100,
            service="exponential",
            seed=3,
        ),
    )
    measured = result.stages["mean_wait_s"].iloc[0]
    expected = erlang_c_wait_s(25.0, 10.0, c)
    assert measured == pytest.approx(expected, rel=0.15)
    assert result.pools["mean_utilisation"].iloc[0] == pytest.approx(25 / (10 * c), rel=0.05)


@pytest.fixture(scope="module")
def supervisor() -> PlanOutcome:
    return _plan(load_workload("supervisor_agent"))


def test_every_request_accounted_for_and_paths_match_planned_visits(
    supervisor: PlanOutcome,
) -> None:
    rate = supervisor.plan.request_rate_per_s
    result = replay_outcome(
        supervisor,
        ReplayConfig(arrivals=ArrivalSpec(rate_per_s=rate), duration_s=600, drain_s=3600, seed=1),
    )
    s = result.summary
    assert s["arrived"] == s["completed"] + s["in_flight_at_end"] == len(result.requests)
    assert s["in_flight_at_end"] == 0
    executions = result.stages.set_index("operator")["executions"] / s["arrived"]
    visits = dict(zip(supervisor.problem.ops, supervisor.problem.op_visits, strict=True))
    for op, per_request in executions.items():
        assert per_request == pytest.approx(visits[op], rel=0.12, abs=0.05), op


def test_loops_that_share_an_entry_make_the_planned_passes() -> None:
    """The shape a LangGraph supervisor imports to: each worker returns to the supervisor over
    its own back edge, so two loops share one entry without nesting. Each loop makes its own
    passes (binomial, its own mean), the supervisor runs 1 + k1 + k2 times as the
    decomposition counts, and every request reaches the answer."""
    llm = {"kind": "model_execution", "model": "llama-3-8b", "input_tokens": 512}
    tool = {
        "kind": "tool_call",
        "lookup": {"latency_s": 0.2, "request_bytes": 512, "response_bytes": 4096},
    }
    workload = Workload.from_mapping(
        {
            "name": "shared_entry",
            "request_rate_per_s": 0.5,
            "nodes": {
                "supervisor": {**llm, "output_tokens": 32},
                "search": tool,
                "code": tool,
                "answer": {"kind": "general_compute", "work": {"flops": 1e5, "mem_bytes": 1e5}},
            },
            "edges": [
                {"src": "supervisor", "dst": "search", "probability": 0.6},
                {"src": "supervisor", "dst": "code", "probability": 0.4},
                {
                    "src": "search",
                    "dst": "supervisor",
                    "loop": {"expected_iterations": 1.0, "max_iterations": 3},
                },
                {
                    "src": "code",
                    "dst": "supervisor",
                    "loop": {"expected_iterations": 0.7, "max_iterations": 2},
                },
                {"src": "supervisor", "dst": "answer"},
            ],
        },
        "test",
    )
    out = _plan(workload)
    visits = dict(zip(out.problem.ops, out.problem.op_visits, strict=True))
    assert visits["supervisor.prefill"] == pytest.approx(2.7)  # 1 + 1.0 + 0.7
    result = replay_outcome(
        out, ReplayConfig(arrivals=ArrivalSpec(rate_per_s=0.5), duration_s=2000, seed=2)
    )
    s = result.summary
    assert s["arrived"] == s["completed"] == len(result.requests)
    executions = result.stages.set_index("operator")["executions"] / s["arrived"]
    assert executions["answer"] == 1.0
    # ~1,000 requests: the passes' standard errors are under 0.03; 0.1 is over 3 of them
    for op, per_request in executions.items():
        assert per_request == pytest.approx(visits[op], abs=0.1), op


_TOOL = {
    "kind": "tool_call",
    "lookup": {"latency_s": 0.2, "request_bytes": 512, "response_bytes": 4096},
}


def _loop(src: str, dst: str, expected: float, most: int) -> dict[str, object]:
    return {
        "src": src,
        "dst": dst,
        "loop": {"expected_iterations": expected, "max_iterations": most},
    }


LOOP_SHAPES = {
    # a branch between going round and leaving: the loop makes its passes, z its 0.4 per pass
    "branch_exit": [
        {"src": "a", "dst": "t", "probability": 0.6},
        _loop("t", "a", 1.2, 3),
        {"src": "a", "dst": "z", "probability": 0.4},
    ],
    # two loops into one head, one body inside the other (agent -> tools -> agent, plus
    # tools -> critic -> agent): their passes add, 1 + 1 + 1 at the head
    "one_head_nested": [
        {"src": "h", "dst": "a"},
        _loop("a", "h", 1.0, 3),
        {"src": "a", "dst": "c"},
        _loop("c", "h", 1.0, 2),
        {"src": "c", "dst": "z"},
    ],
    # nested loops with different heads: the inner one runs fully on every outer pass
    "nested": [
        {"src": "h", "dst": "a"},
        {"src": "a", "dst": "b"},
        _loop("b", "a", 1.0, 3),
        {"src": "b", "dst": "c"},
        _loop("c", "h", 1.0, 2),
        {"src": "c", "dst": "z"},
    ],
    # two loops that overlap at b
    "overlap": [
        {"src": "a", "dst": "b"},
        _loop("b", "a", 1.0, 2),
        {"src": "b", "dst": "c"},
        _loop("c", "b", 1.0, 2),
        {"src": "c", "dst": "z"},
    ],
}


@pytest.mark.parametrize("shape", sorted(LOOP_SHAPES))
def test_loop_shapes_make_the_planned_visits(shape: str) -> None:
    """Every operator runs as often per request as the decomposition counts (its visits are
    worked out independently, from flows on the acyclic graph), and every request completes.
    About 1,000 requests: 0.1 is over 3 standard errors of each mean."""
    edges = LOOP_SHAPES[shape]
    names = sorted({str(e[k]) for e in edges for k in ("src", "dst")})
    workload = Workload.from_mapping(
        {
            "name": shape,
            "request_rate_per_s": 0.5,
            "nodes": dict.fromkeys(names, _TOOL),
            "edges": edges,
        },
        "test",
    )
    out = _plan(workload)
    visits = dict(zip(out.problem.ops, out.problem.op_visits, strict=True))
    result = replay_outcome(
        out, ReplayConfig(arrivals=ArrivalSpec(rate_per_s=0.5), duration_s=2000, seed=2)
    )
    s = result.summary
    assert s["arrived"] == s["completed"] == len(result.requests)
    executions = result.stages.set_index("operator")["executions"] / s["arrived"]
    for op, per_request in executions.items():
        assert per_request == pytest.approx(visits[op], abs=0.1), op


def test_same_seed_same_replay(supervisor: PlanOutcome) -> None:
    cfg = ReplayConfig(arrivals=ArrivalSpec(rate_per_s=1.0), duration_s=120, seed=5)
    a = replay_outcome(supervisor, cfg)
    b = replay_outcome(supervisor, cfg)
    assert a.requests.equals(b.requests)
    other = replay_outcome(
        supervisor, ReplayConfig(arrivals=ArrivalSpec(rate_per_s=1.0), duration_s=120, seed=6)
    )
    assert not other.requests["arrival_s"].equals(a.requests["arrival_s"])


def test_low_load_agrees_with_the_planner() -> None:
    out = _plan(load_workload("voice_agent"), sla=Sla(e2e_s=15.0))
    result = replay_outcome(
        out, ReplayConfig(arrivals=ArrivalSpec(rate_per_s=0.05), duration_s=4000, seed=2)
    )
    done = result.requests[result.requests["status"] == "completed"]
    assert abs(result.summary["gap_p50"]) < 0.02
    worst = done[done["loop_passes"] == done["loop_passes"].max()]
    # requests that loop the maximum number of times take the planner's worst-case latency
    assert worst["e2e_s"].median() == pytest.approx(out.plan.e2e_latency_s, rel=0.02)
    assert result.summary["sla_attainment"] == 1.0


def test_arrival_processes_have_their_mean_rate() -> None:
    rng = np.random.default_rng(0)
    for spec in (
        ArrivalSpec(rate_per_s=50.0),
        ArrivalSpec(kind="mmpp", rate_per_s=50.0),
        ArrivalSpec(kind="diurnal", rate_per_s=50.0, period_s=200.0),
    ):
        times = arrival_times(spec, 4000.0, rng)
        assert np.all(np.diff(times) >= 0)
        assert len(times) / 4000.0 == pytest.approx(50.0, rel=0.05), spec.kind


def test_bad_traces_and_rates_are_user_errors(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("timestamp_s\n0\n2\n1\n")
    with pytest.raises(InputError, match="row 4"):
        load_trace(trace)
    trace.write_text("timestamp_s\n0\nabc\n")
    with pytest.raises(InputError, match="row 3"):
        load_trace(trace)
    with pytest.raises(InputError, match="rate_per_s"):
        ArrivalSpec(rate_per_s=-1)


def test_replay_cli_and_saved_plan(tmp_path: Path) -> None:
    assert main(["plan", f"run_dir={tmp_path / 'plan'}"]) == 0
    assert (
        main(
            [
                "replay",
                f"replay.plan_dir={tmp_path / 'plan'}",
                "replay.duration_s=60",
                f"run_dir={tmp_path / 'replay'}",
            ]
        )
        == 0
    )
    for name in ("replay.json", "requests.csv", "stages.csv", "pools.csv", "replay.png"):
        assert (tmp_path / "replay" / name).stat().st_size > 0
    plan_json = tmp_path / "plan" / "plan.json"
    plan_json.write_text(plan_json.read_text().replace('"llm.decode"', '"llm.other"'))
    assert (
        main(["replay", f"replay.plan_dir={tmp_path / 'plan'}", f"run_dir={tmp_path / 'r2'}"]) == 2
    )


def test_operator_kind_comes_from_the_graph_not_the_name() -> None:
    """A light operator named like an LLM phase is not one: the request has no first token."""
    cpu = load_catalog().select(["Xeon-SPR"])
    flops = 0.05 * cpu.get("Xeon-SPR").effective_flops_per_s("fp32")
    workload = {
        "name": "misnamed",
        "request_rate_per_s": 2.0,
        "edges": [{"src": "warm_prefill", "dst": "post_decode", "payload_bytes": 1024}],
        "nodes": {
            "warm_prefill": {"kind": "general_compute", "work": {"flops": flops}},
            "post_decode": {"kind": "general_compute", "work": {"flops": flops}},
        },
    }
    out = plan_agent(
        PlanRequest(
            Workload.from_mapping(workload, "misnamed"),
            baselines=(),
            hardware=HardwareSpec(devices=("Xeon-SPR",)),
        )
    )
    assert {op.kind.value for op in out.graph.ops} == {"compute"}
    result = replay_outcome(
        out, ReplayConfig(arrivals=ArrivalSpec(rate_per_s=2.0), duration_s=60, seed=1)
    )
    done = result.requests[result.requests["status"] == "completed"]
    assert len(done) > 50
    assert done["ttft_s"].isna().all() and (done["tbt_s"] == 0).all()
    assert result.requests["tokens"].eq(0).all()
