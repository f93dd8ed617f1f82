"""The planner's TTFT with queueing (M/D/c approximation) against the replay's measured one."""

from __future__ import annotations

import pytest

from hetopt.pipeline import PlanRequest, plan_agent
from hetopt.plan.queueing import erlang_c, md_c_wait, queued_ttft, stage_waits
from hetopt.replay.arrivals import ArrivalSpec
from hetopt.replay.engine import ReplayConfig
from hetopt.sla import Sla
from hetopt.workloads import Workload, load_workload_data
from tests.replay.replaying import replay_outcome


def test_md1_matches_pollaczek_khinchine() -> None:
    # M/D/1: mean wait rho S / (2 (1 - rho)); here rho = 0.8, S = 0.1 s -> 0.2 s
    p_wait, mean, _, _ = md_c_wait(1, 0.1, 8.0)
    assert p_wait == pytest.approx(0.8)
    assert mean == pytest.approx(0.8 * 0.1 / (2 * 0.2))
    # Erlang C by hand for c = 2, a = 1: (a^2/2! / (1 - 1/2)) / (1 + a + 1) = 1/3
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert md_c_wait(2, 1.0, 2.5)[1] == float("inf")  # unstable


@pytest.mark.parametrize("name, rate", [("voice_agent", 2.0), ("rag_agent", 10.0)])
def test_queued_ttft_agrees_with_the_replay(name: str, rate: float) -> None:
    workload = Workload.from_mapping({**load_workload_data(name), "request_rate_per_s": rate}, name)
    out = plan_agent(
        PlanRequest(workload, baselines=(), sla=Sla(e2e_s=30.0, ttft_s=0.25, tbt_s=0.02))
    )
    waits = {w.operator: w for w in stage_waits(out.problem, out.table.frame, out.plan.choice)}
    prefill = waits["llm.prefill"]
    assert 0.3 < prefill.utilisation <= 0.8 + 1e-9  # costs.max_utilization
    result = replay_outcome(
        out,
        ReplayConfig(arrivals=ArrivalSpec(rate_per_s=rate), duration_s=7200, warmup_s=60, seed=3),
    )
    stage = result.stages.set_index("operator").loc["llm.prefill"]
    measured_p50 = stage["mean_service_s"] + stage["p50_wait_s"]
    measured_p90 = stage["mean_service_s"] + stage["p90_wait_s"]
    p50, p90 = queued_ttft(list(waits.values()))
    assert p50 == pytest.approx(measured_p50, rel=0.15)
    # the exponential tail is conservative at one slot (M/D/1 waits are shorter-tailed)
    assert measured_p90 * 0.95 <= p90 <= measured_p90 * 1.25
    assert out.plan.sla["ttft_queued_p90_s"] == pytest.approx(p90)
    # the step alone, which the TTFT bound constrains, is below the queued figure
    assert out.plan.sla["worst_ttft_s"] <= p50 + 1e-12
