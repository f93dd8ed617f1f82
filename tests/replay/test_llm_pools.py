"""Replaying a plan with shared LLM pools: one pool per key, every request accounted for."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from hetopt.pipeline import PlanOutcome, PlanRequest, plan_agent
from hetopt.replay.arrivals import ArrivalSpec
from hetopt.replay.engine import ReplayConfig
from hetopt.workloads import load_workload
from tests.replay.replaying import replay_outcome


@functools.cache
def _mixed_sizes() -> PlanOutcome:
    return plan_agent(PlanRequest(load_workload("mixed_sizes"), baselines=()))


def test_shared_pool_replay_accounts_for_every_request() -> None:
    out = _mixed_sizes()
    plan = out.plan
    shared = plan.llm_pools[plan.llm_pools["members"].str.contains(";")]
    assert len(shared) == 2  # prefill and decode, each shared by both buckets
    # Low load (a tenth of the planned rate): queues stay short, so each bucket's stages take
    # what the plan says they take.
    rate = plan.request_rate_per_s / 10
    result = replay_outcome(
        out,
        ReplayConfig(arrivals=ArrivalSpec(rate_per_s=rate), duration_s=1800, warmup_s=60, seed=7),
    )
    s = result.summary
    assert s["arrived"] == s["completed"] + s["dropped"] + s["in_flight_at_end"] > 0
    assert s["dropped"] == 0
    pools = result.pools.set_index("pool")
    for key, replicas in zip(shared["pool"], shared["replicas"], strict=True):
        assert key in pools.index  # one replay pool per shared key, not one per operator
        dpr = int(shared.set_index("pool").at[key, "devices_per_replica"])
        assert pools.at[key, "planned_devices"] == replicas * dpr
    stages = result.stages.set_index("operator")
    place = plan.placement.set_index("operator")
    for op in ("llm-b0.prefill", "llm-b1.prefill", "llm-b0.decode", "llm-b1.decode"):
        assert stages.at[op, "pool"] == place.at[op, "llm_pool"]
        # deterministic service: each bucket holds its slot for its planned latency
        assert stages.at[op, "mean_service_s"] == pytest.approx(place.at[op, "latency_s"])
    # every routed visit reached the shared pool: the buckets split the traffic 80/20
    b0, b1 = stages.at["llm-b0.decode", "executions"], stages.at["llm-b1.decode", "executions"]
    assert b0 / (b0 + b1) == pytest.approx(0.8, abs=0.03)
    assert (
        b0 + b1
        == stages.at["llm-b0.prefill", "executions"] + stages.at["llm-b1.prefill", "executions"]
    )
    done = result.requests[result.requests["status"] == "completed"]
    assert np.median(done["gap"]) == pytest.approx(0.0, abs=0.05)


def test_aggregated_replica_replays_as_decode_slots_and_a_chunk_lane() -> None:
    """An aggregated replica is one pool of decode slots (holding the devices) and a lane of
    prefill chunks beside it on the same devices; every request passes both."""
    import dataclasses

    from hetopt.costs.table import CostParams
    from hetopt.hardware.spec import HardwareSpec

    workload = dataclasses.replace(load_workload("chat_agent"), request_rate_per_s=0.5)
    out = plan_agent(
        PlanRequest(
            workload,
            hardware=HardwareSpec(devices=("H100",)),
            costs=CostParams(aggregated=True),
            baselines=(),
        )
    )
    key = out.plan.placement.set_index("operator").at["llm.decode", "llm_pool"]
    assert key.startswith("llama-3-8b/fp16/agg/H100/")
    result = replay_outcome(
        out, ReplayConfig(arrivals=ArrivalSpec(rate_per_s=0.5), duration_s=1800, seed=3)
    )
    s = result.summary
    assert s["arrived"] == s["completed"] + s["dropped"] + s["in_flight_at_end"] > 0
    pools = result.pools.set_index("pool")
    assert pools.at[key, "planned_devices"] == 1
    assert pools.at[f"{key} (prefill chunks)", "planned_devices"] == 0
    stages = result.stages.set_index("operator")
    assert stages.at["llm.prefill", "pool"] == f"{key} (prefill chunks)"
    assert stages.at["llm.decode", "executions"] == stages.at["llm.prefill", "executions"]


def test_a_pool_with_one_member_replays_with_the_plans_replicas() -> None:
    """A key two operators could share but only one uses holds the plan's replicas, not 1."""
    import dataclasses

    from hetopt.hardware.spec import HardwareSpec

    workload = dataclasses.replace(load_workload("mixed_sizes"), request_rate_per_s=60.0)
    out = plan_agent(
        PlanRequest(workload, hardware=HardwareSpec(devices=("L4", "A100")), baselines=())
    )
    assert out.plan.verified
    result = replay_outcome(
        out, ReplayConfig(arrivals=ArrivalSpec(rate_per_s=6.0), duration_s=60, seed=1)
    )
    stages = result.stages.set_index("operator")
    pools = result.pools.set_index("pool")
    place = out.plan.placement.set_index("operator")
    for op in place.index[place["llm_pool"] != ""]:
        assert pools.at[stages.at[op, "pool"], "planned_devices"] == place.at[op, "count"], op
    assert (out.plan.llm_pools["replicas"] > 1).any()  # the case this test is for
