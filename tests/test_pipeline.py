"""Every shipped workload plans, verifies, and gets the same optimum from every MILP/CP-SAT
backend; the Python API works without Hydra."""

from __future__ import annotations

import dataclasses

import pytest

from hetopt.costs.table import CostParams
from hetopt.errors import InfeasibleError, InputError
from hetopt.hardware.spec import HardwareSpec
from hetopt.pipeline import PlanRequest, plan_agent
from hetopt.plan import evaluate_choice, verify_plan
from hetopt.sla import Sla
from hetopt.solvers import SolverOptions
from hetopt.workloads import Workload, load_workload, load_workload_data, workload_names


def _request(name: str, backend: str, **kw: object) -> PlanRequest:
    # The workload's own sla block (voice_agent: 15 s end to end) applies, as in the CLI.
    return PlanRequest(
        load_workload(name), solver=SolverOptions(backend=backend), baselines=(), **kw
    )  # type: ignore[arg-type]


@pytest.mark.parametrize("name", [n for n in workload_names() if n != "worked_example"])
def test_backends_agree_on_every_shipped_workload(name: str) -> None:
    tco = {}
    for backend in ("highs", "cbc", "cpsat"):
        out = plan_agent(_request(name, backend))
        plan = out.plan
        assert plan.solve.proven_optimal, (backend, plan.solve.message)
        assert plan.verified, plan.violations
        assert verify_plan(plan, out.inputs) == ()
        tco[backend] = plan.tco_usd_per_hour
    assert tco["cbc"] == pytest.approx(tco["highs"], rel=1e-6)
    assert tco["cpsat"] == pytest.approx(tco["highs"], rel=1e-6)


def test_verifier_catches_a_tampered_plan() -> None:
    out = plan_agent(_request("voice_agent", "highs"))
    cheaper = dataclasses.replace(out.plan, tco_usd_per_hour=out.plan.tco_usd_per_hour * 0.5)
    assert any("TCO" in v for v in verify_plan(cheaper, out.inputs))
    no_pool = dataclasses.replace(out.plan, pool_counts=tuple(0 for _ in out.plan.pool_counts))
    assert any("pool" in v for v in verify_plan(no_pool, out.inputs))


def test_ttft_bound_holds_and_binds() -> None:
    loose = plan_agent(_request("rag_agent", "highs")).plan
    tight_request = dataclasses.replace(
        _request("rag_agent", "highs"), sla=Sla(ttft_s=0.03, tbt_s=0.02)
    )
    tight = plan_agent(tight_request).plan
    assert tight.sla["worst_ttft_s"] <= 0.03
    assert tight.tco_usd_per_hour >= loose.tco_usd_per_hour


def test_tighter_e2e_sla_never_cheaper() -> None:
    costs = []
    for e2e in (None, 14.0, 12.0):  # None: the workload's own 15 s bound (its sla block)
        req = dataclasses.replace(_request("voice_agent", "highs"), sla=Sla(e2e_s=e2e))
        plan = plan_agent(req).plan
        if e2e is not None:
            assert plan.e2e_latency_s <= e2e + 1e-6
        costs.append(plan.tco_usd_per_hour)
    assert costs[0] <= costs[1] <= costs[2]


def test_infeasible_e2e_sla_reports_tightest_feasible() -> None:
    req = dataclasses.replace(_request("voice_agent", "highs"), sla=Sla(e2e_s=1.0))
    with pytest.raises(InfeasibleError, match="tightest SLA that is feasible") as info:
        plan_agent(req)
    tightest = info.value.tightest_e2e_s
    assert tightest is not None and tightest > 1.0
    assert f"sla.e2e_s={tightest:g}" in str(info.value)
    ok = plan_agent(dataclasses.replace(req, sla=Sla(e2e_s=tightest))).plan
    assert ok.verified and ok.e2e_latency_s <= tightest + 1e-6


def test_inventory_limit_is_respected() -> None:
    free = plan_agent(_request("voice_agent", "highs")).plan
    used = free.devices.set_index("device")["total"].to_dict()
    busiest = max(used, key=used.get)
    capped = plan_agent(
        _request(
            "voice_agent", "cpsat", hardware=HardwareSpec(inventory={busiest: used[busiest] - 1})
        )
    ).plan
    assert capped.verified
    assert capped.devices.set_index("device")["total"].get(busiest, 0) <= used[busiest] - 1
    assert capped.tco_usd_per_hour >= free.tco_usd_per_hour - 1e-9


def test_fp8_and_small_catalog() -> None:
    data = load_workload_data("rag_agent")
    data["nodes"]["llm"] = {**data["nodes"]["llm"], "precision": "fp8"}
    req = PlanRequest(
        Workload.from_mapping(data, "rag fp8"),
        hardware=HardwareSpec(devices=("A100", "H100", "Xeon-SPR")),
        costs=CostParams(),
        baselines=("A100",),
    )
    out = plan_agent(req)
    llm_devices = set(out.plan.placement.query("operator.str.startswith('llm')")["device"])
    assert llm_devices == {"H100"}  # A100 has no fp8
    assert "no fp8" in out.plan.baselines[0].note or "A100" in out.plan.baselines[0].note
    ev = evaluate_choice(out.problem, out.plan.choice, out.plan.pool_counts)
    assert ev.feasible


def test_measured_profile_replaces_the_roofline(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A (hypothetical) measurement that makes L40S decode very fast moves decode there."""
    csv = tmp_path / "measured.csv"
    csv.write_text(
        "device,phase,model,precision,input_tokens,output_tokens,tp,pp,batch,step_s,"
        "requests_per_s,source\n"
        "L40S,decode,llama-3-8b,fp16,2048,256,1,1,64,0.005,50.0,test fixture (not a measurement)\n"
        "L40S,decode,llama-3-8b,fp16,2048,256,1,1,32,0.030,8.0,test fixture (not a measurement)\n"
    )
    data = load_workload_data("rag_agent")
    data["nodes"]["llm"] = {**data["nodes"]["llm"], "input_tokens": 2048, "output_tokens": 256}
    base = PlanRequest(Workload.from_mapping(data, "rag"), baselines=())
    plain = plan_agent(base).plan
    measured = plan_agent(
        dataclasses.replace(base, costs=CostParams(measured_profile=str(csv)))
    ).plan
    row = measured.placement.set_index("operator").loc["llm.decode"]
    assert row["device"] == "L40S" and row["config"] == "measured tp1/pp1/b64"
    assert row["step_s"] == pytest.approx(0.005)
    assert measured.verified and measured.tco_usd_per_hour < plain.tco_usd_per_hour
    # the 30 ms row breaks the 20 ms TBT bound and is kept out with its reason
    out = plan_agent(dataclasses.replace(base, costs=CostParams(measured_profile=str(csv))))
    bad = out.table.frame.query("config == 'measured tp1/pp1/b32'")
    assert len(bad) == 1
    assert not bad["feasible"].any() and bad["reason"].str.contains("TBT").all()


def test_bad_measured_profile_is_a_user_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from hetopt.errors import InputError

    csv = tmp_path / "bad.csv"
    csv.write_text("device,phase,model\nH100,decode,llama-3-8b\n")
    req = PlanRequest(load_workload("rag_agent"), costs=CostParams(measured_profile=str(csv)))
    with pytest.raises(InputError, match="missing column"):
        plan_agent(req)


def test_size_buckets_are_planned_apart() -> None:
    """Without shared LLM pools each bucket rounds its own replicas up, so short chat turns
    and long documents end up on different decode devices."""
    costs = CostParams(llm_pools="off")
    out = plan_agent(PlanRequest(load_workload("mixed_sizes"), costs=costs, baselines=()))
    place = out.plan.placement.set_index("operator")
    assert place.loc["llm-b0.prefill", "visits_per_request"] == pytest.approx(0.8)
    assert place.loc["llm-b1.decode", "visits_per_request"] == pytest.approx(0.2)
    assert place.loc["llm-b0.decode", "device"] != place.loc["llm-b1.decode", "device"]
    assert out.plan.llm_pools.empty and out.plan.verified


def test_size_buckets_share_llm_pools() -> None:
    """With shared pools (the default) the two buckets' phases pool at the longer bucket's
    class: one prefill and one decode pool, each fitting in one replica because it is sized
    for the summed load, and the plan costs less than with pools off."""
    apart = plan_agent(
        PlanRequest(load_workload("mixed_sizes"), costs=CostParams(llm_pools="off"), baselines=())
    ).plan
    out = plan_agent(PlanRequest(load_workload("mixed_sizes"), baselines=()))
    plan = out.plan
    assert plan.verified and plan.solve.proven_optimal
    assert plan.tco_usd_per_hour < apart.tco_usd_per_hour - 0.5
    pools = plan.llm_pools.set_index("pool")
    assert sorted(pools["members"]) == [
        "llm-b0.decode;llm-b1.decode",
        "llm-b0.prefill;llm-b1.prefill",
    ]
    assert (pools["replicas"] == 1).all() and (pools["load_replicas"] <= 1).all()
    place = plan.placement.set_index("operator")
    assert place.loc["llm-b0.decode", "llm_pool"] == place.loc["llm-b1.decode", "llm_pool"]
    # The shared decode pool is timed at the longest bucket's context (8192 + 512 tokens).
    assert place.loc["llm-b0.decode", "config"].endswith("/ctx8192x512")


def test_calls_of_one_model_pool_with_llm_pools_model() -> None:
    """supervisor_agent calls one model several times at different lengths: with
    llm_pools=model the calls pool at the model's longest lengths and the plan costs less than
    with the default (buckets: its calls differ in length, so nothing pools)."""
    workload = load_workload("supervisor_agent")
    default = plan_agent(PlanRequest(workload, baselines=())).plan
    model = plan_agent(
        PlanRequest(workload, costs=CostParams(llm_pools="model"), baselines=())
    ).plan
    assert default.verified and model.verified and model.solve.proven_optimal
    assert not default.llm_pools["members"].str.contains(";").any()
    shared = model.llm_pools[model.llm_pools["members"].str.contains(";")]
    assert len(shared) >= 1
    assert model.tco_usd_per_hour < default.tco_usd_per_hour - 0.1


@pytest.mark.parametrize(("rate", "aggregated_wins"), [(0.5, True), (20.0, False)])
def test_planner_chooses_aggregated_serving_where_it_is_cheaper(
    rate: float, aggregated_wins: bool
) -> None:
    """chat_agent on H100s only: at 0.5 req/s one aggregated replica (prefill chunks and
    decode on one GPU) costs half of a prefill replica plus a decode replica; at 20 req/s the
    disaggregated pair serves what aggregation would need more GPUs for."""
    workload = dataclasses.replace(load_workload("chat_agent"), request_rate_per_s=rate)
    hardware = HardwareSpec(devices=("H100",))
    apart = plan_agent(PlanRequest(workload, hardware=hardware, baselines=())).plan
    both = plan_agent(
        PlanRequest(workload, hardware=hardware, costs=CostParams(aggregated=True), baselines=())
    ).plan
    assert apart.verified and both.verified and both.solve.proven_optimal
    place = both.placement.set_index("operator")
    on_agg = place["config"].str.startswith("agg/")
    if aggregated_wins:
        assert on_agg.loc[["llm.prefill", "llm.decode"]].all()
        assert place.at["llm.prefill", "llm_pool"] == place.at["llm.decode", "llm_pool"]
        assert both.tco_usd_per_hour == pytest.approx(apart.tco_usd_per_hour / 2, rel=1e-9)
        pool = both.llm_pools.set_index("pool").loc[place.at["llm.decode", "llm_pool"]]
        assert pool["replicas"] == 1 and pool["load_replicas"] <= 1
    else:
        assert not on_agg.any()
        assert both.tco_usd_per_hour == pytest.approx(apart.tco_usd_per_hour, rel=1e-9)


def test_aggregated_serving_without_pools_is_a_user_error() -> None:
    with pytest.raises(InputError, match="costs.aggregated=true needs LLM pools"):
        CostParams(llm_pools="off", aggregated=True)


def test_cli_writes_and_prints_shared_llm_pools(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    import pandas as pd

    from hetopt.cli.main import main

    assert main(["plan", "workload=mixed_sizes", f"run_dir={tmp_path}"]) == 0
    pools = pd.read_csv(tmp_path / "llm_pools.csv")
    assert set(pools["members"]) == {
        "llm-b0.prefill;llm-b1.prefill",
        "llm-b0.decode;llm-b1.decode",
    }
    saved = json.loads((tmp_path / "plan.json").read_text())
    assert [p["pool"] for p in saved["llm_pools"]] == list(pools["pool"])
    assert saved["verification"]["passed"]
    out = capsys.readouterr().out
    assert "Shared LLM pools" in out and "llm-b0.decode, llm-b1.decode" in out


def test_api_and_cli_agree_on_the_worked_example(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The workload's sla block (120 ms) and baselines (HP, CO) reach the API as they reach the
    CLI: one rule, so `plan_agent(PlanRequest(load_workload(x)))` is `hetopt plan workload=x`."""
    import json

    from hetopt.cli.main import main

    assert main(["plan", "workload=worked_example", f"run_dir={tmp_path}"]) == 0
    cli = json.loads((tmp_path / "plan.json").read_text())
    api = plan_agent(PlanRequest(load_workload("worked_example"))).plan
    assert cli["cost_usd_per_request"] == pytest.approx(0.095)
    assert api.cost_usd_per_request == pytest.approx(cli["cost_usd_per_request"])
    assert api.sla["e2e_sla_s"] == cli["sla"]["e2e_sla_s"] == 0.12
    assert [b.device for b in api.baselines] == [b["device"] for b in cli["baselines"]]
    assert [b.device for b in api.baselines] == ["HP", "CO"]


def test_the_users_sla_wins_where_it_sets_a_field() -> None:
    workload = load_workload("worked_example")
    assert PlanRequest(workload).sla == Sla(e2e_s=0.12)
    loose = PlanRequest(workload, sla=Sla(e2e_s=0.2, ttft_s=None))
    assert (loose.sla.e2e_s, loose.sla.ttft_s) == (0.2, None)
    assert PlanRequest(workload, baselines=()).baselines == ()
    assert PlanRequest(load_workload("rag_agent")).baselines == ("H100",)
    # the CO-only plan (160 ms) is allowed once the user's bound is looser than the workload's
    assert plan_agent(loose).plan.cost_usd_per_request == pytest.approx(0.06)


def test_a_raw_mapping_is_not_a_request() -> None:
    with pytest.raises(TypeError, match="Workload.from_mapping"):
        PlanRequest(load_workload_data("rag_agent"))  # type: ignore[arg-type]


def test_workload_sla_block_is_checked_once_for_every_reader() -> None:
    from hetopt.errors import InputError

    data = {**load_workload_data("chat_agent"), "sla": {"e2e": 3.0}}
    with pytest.raises(InputError, match=r"w.yaml: unknown key\(s\) \['e2e'\]"):
        Workload.from_mapping(data, "w.yaml")
    data = {**load_workload_data("chat_agent"), "sla": {"e2e_s": 3.0, "ttft_s": 5.0}}
    with pytest.raises(InputError, match="w.yaml: sla: the TTFT bound"):
        Workload.from_mapping(data, "w.yaml")
    with pytest.raises(InputError, match="w.yaml: 'request_rate_per_s' must be a positive"):
        Workload.from_mapping(
            {**load_workload_data("chat_agent"), "request_rate_per_s": 0}, "w.yaml"
        )


@pytest.mark.parametrize("baselines", [5, True, {"H100": 1}, "H100", [1]])
def test_baselines_that_are_not_a_list_of_names_are_refused(baselines: object) -> None:
    data = {**load_workload_data("rag_agent"), "baselines": baselines}
    with pytest.raises(InputError, match="'baselines' must be a list of device names"):
        Workload.from_mapping(data, "rag")


def test_with_rate_keeps_the_mapping_view_in_step() -> None:
    wl = load_workload("rag_agent").with_rate(7.5)
    assert wl.request_rate_per_s == 7.5 == wl["request_rate_per_s"]
    with pytest.raises(InputError, match="request_rate_per_s"):
        wl.with_rate(0)
