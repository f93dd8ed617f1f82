"""Replaying a fleet plan: tenants drawn by rate share, shared pools as one queue each.

The fleet: two chat tenants of one template (rates 2 and 6 req/s) and a RAG tenant (4 req/s).
Under the default ``costs.llm_pools=buckets`` the two chat tenants' prefill and decode are one
pool key each, so the fleet plan holds one LLM pool per key for both of them; the RAG tenant's
light operators run in a device type's shared pool. Neither template has branches or loops,
so every request of a tenant takes the one path the planner's end-to-end latency is for.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hetopt.cli.main import main
from hetopt.fleet.plan import FleetOutcome, FleetRequest, plan_fleet
from hetopt.fleet.spec import fleet_from_dict
from hetopt.replay.arrivals import ArrivalSpec
from hetopt.replay.config import ReplayConfig
from hetopt.replay.fleet import FleetReplayResult, replay_fleet

TENANTS = [
    {"name": "chat-a", "workload": "chat_agent", "request_rate_per_s": 2.0},
    {"name": "chat-b", "workload": "chat_agent", "request_rate_per_s": 6.0},
    {"name": "docs", "workload": "rag_agent", "request_rate_per_s": 4.0},
]
TOTAL_RATE = sum(t["request_rate_per_s"] for t in TENANTS)  # type: ignore[misc]


@functools.cache
def _outcome() -> FleetOutcome:
    out = plan_fleet(
        FleetRequest(fleet_from_dict({"name": "trio", "tenants": TENANTS}), baselines=())
    )
    assert out.verified
    return out


@functools.cache
def _low_load() -> FleetReplayResult:
    """Half an hour at a tenth of the fleet's rate: queues stay short."""
    config = ReplayConfig(
        arrivals=ArrivalSpec(rate_per_s=TOTAL_RATE / 10), duration_s=1800, warmup_s=60, seed=7
    )
    return replay_fleet(_outcome(), config)


def _accounted(tenants: pd.DataFrame) -> None:
    assert (
        tenants["arrived"]
        == tenants["completed"] + tenants["dropped"] + tenants["in_flight_at_end"]
    ).all()


def test_every_request_is_accounted_for_per_tenant() -> None:
    low = _low_load()
    _accounted(low.tenants)
    assert low.tenants["arrived"].sum() == low.summary["arrived"] == len(low.requests)
    assert (low.tenants["dropped"] == 0).all()
    # At the planned rate with no drain, requests are still in flight when the replay stops:
    # the identity holds with all three terms.
    cut = replay_fleet(
        _outcome(),
        ReplayConfig(arrivals=ArrivalSpec(rate_per_s=TOTAL_RATE), duration_s=120, drain_s=0),
    )
    _accounted(cut.tenants)
    assert (cut.tenants["in_flight_at_end"] > 0).all()
    assert cut.tenants["arrived"].sum() == cut.summary["arrived"]
    by_tenant = cut.requests.groupby("tenant")["status"].value_counts().unstack(fill_value=0)
    t = cut.tenants.set_index("tenant")
    assert (by_tenant["completed"] == t["completed"]).all()
    assert (by_tenant["in_flight"] == t["in_flight_at_end"]).all()


def test_arrivals_split_by_rate_share() -> None:
    """Each tenant's count is Binomial(N, share) given N arrivals: it lies within 4.5 standard
    deviations of N x share (a miss has probability below 1e-5 per tenant; the seed is fixed,
    so the test is deterministic)."""
    t = _low_load().tenants.set_index("tenant")
    n = int(t["arrived"].sum())
    assert n > 1500
    for name, spec in zip(t.index, TENANTS, strict=True):
        share = spec["request_rate_per_s"] / TOTAL_RATE  # type: ignore[operator]
        assert t.at[name, "rate_share"] == pytest.approx(share)
        sd = math.sqrt(n * share * (1 - share))
        assert abs(t.at[name, "arrived"] - n * share) <= 4.5 * sd, name


def test_low_load_median_is_the_planned_latency_per_tenant() -> None:
    low = _low_load()
    planned = _outcome().result.evaluation.tenant_e2e_s  # type: ignore[union-attr]
    t = low.tenants.set_index("tenant")
    for k, name in enumerate(t.index):
        assert t.at[name, "planned_e2e_s"] == pytest.approx(planned[k])
        # one path per template: the replayed median is the planned latency within 1 %
        assert t.at[name, "e2e_p50_s"] == pytest.approx(planned[k], rel=0.01), name
        assert t.at[name, "gap_p50"] == pytest.approx(0.0, abs=0.01), name
        assert t.at[name, "e2e_p50_s"] <= t.at[name, "e2e_p95_s"] <= t.at[name, "e2e_p99_s"]


def test_a_shared_llm_pool_is_one_queue_with_the_fleet_plans_replicas() -> None:
    out = _outcome()
    fp, ev = out.problem, out.result.evaluation
    assert ev is not None
    choices = out.result.choices
    assert choices is not None
    chat = [t for t, name in enumerate(fp.tenant_names) if name.startswith("chat")]
    keys = [
        sorted(int(k) for k in fp.opt_fleet_key[t][np.asarray(choices[t])] if k >= 0) for t in chat
    ]
    assert keys[0] == keys[1] and len(keys[0]) == 2  # prefill and decode, both tenants'
    low = _low_load()
    pools = low.pools.set_index("pool")
    stages = low.replay.stages.set_index("operator")
    for k in keys[0]:
        key = fp.key_names[k]
        assert list(low.pools["pool"]).count(key) == 1  # one queue, not one per tenant
        assert pools.at[key, "kind"] == "llm"
        assert pools.at[key, "tenants"] == "chat-a;chat-b"
        dpr = int(fp.key_devices_per_replica[k])
        assert pools.at[key, "planned_devices"] == ev.key_counts[k] * dpr
        phase = "prefill" if "/prefill/" in key else "decode"
        on_key = [f"chat-a/llm.{phase}", f"chat-b/llm.{phase}"]
        assert (stages.loc[on_key, "pool"] == key).all()
        # the pool's jobs are both tenants' executions
        jobs = pools.at[key, "arrival_rate_per_s"] * (1800 - 60)
        assert jobs == pytest.approx(stages.loc[on_key, "executions"].sum(), rel=0.02)
    assert not any(p.startswith("chat-") for p in low.pools["pool"])  # nothing per chat tenant
    # light operators: one pool per device type, the fleet's count
    light = low.pools[low.pools["kind"] == "light"]
    assert len(light) >= 1
    for row in light.itertuples():
        j = fp.devices.index(str(row.device))
        assert row.planned_devices == max(int(ev.pool_counts[j]), 1)


def test_replaying_a_fleet_without_graphs_is_refused() -> None:
    from hetopt.errors import InputError
    from hetopt.fleet.problem import fleet_from_problems
    from hetopt.testing import Opt, tiny_problem

    fp = fleet_from_problems([tiny_problem({"op": [Opt("X", 0.1, dedicated=1)]}, {"X": 1.0})])
    with pytest.raises(InputError, match="build_fleet_problem"):
        replay_fleet(fp, ReplayConfig(), ((0,),))


def test_cli_writes_the_fleet_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    fleet = tmp_path / "trio.yaml"
    fleet.write_text(yaml.safe_dump({"name": "trio", "tenants": TENANTS}))
    run = tmp_path / "run"
    args = [f"fleet_file={fleet}", "fleet.baselines=[]", "replay.duration_s=60"]
    assert main(["fleet", *args, "fleet.replay=true", f"run_dir={run}"]) == 0
    table = pd.read_csv(run / "fleet_replay.csv")
    assert list(table["tenant"]) == ["chat-a", "chat-b", "docs"]
    _accounted(table)
    assert (run / "fleet_replay.png").stat().st_size > 0
    assert (run / "fleet_replay_pools.csv").stat().st_size > 0
    printed = capsys.readouterr().out
    assert "Fleet replay" in printed and "chat-b" in printed
    # off by default, and then a replay.* key is refused rather than ignored
    plain = tmp_path / "plain"
    assert main(["fleet", f"fleet_file={fleet}", "fleet.baselines=[]", f"run_dir={plain}"]) == 0
    assert not (plain / "fleet_replay.csv").exists()
    assert main(["fleet", *args, f"run_dir={tmp_path / 'refused'}"]) == 2
    assert "fleet.replay=true" in capsys.readouterr().err
