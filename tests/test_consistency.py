"""The problem builders' named consistency checks, and the kinds and tokens the problem carries.

A single agent and a fleet refuse the same input with the same words; operator kinds and tokens
come from the graph (checked against the workload file's own numbers), never from names."""

from __future__ import annotations

import numpy as np
import pytest

from hetopt.errors import InputError
from hetopt.fleet.problem import build_fleet_problem, fleet_from_problems
from hetopt.fleet.spec import fleet_from_dict
from hetopt.hardware.spec import HardwareSpec
from hetopt.pipeline import PlanRequest, plan_agent, prepare
from hetopt.testing import Opt, tiny_problem
from hetopt.workloads import Workload, load_workload

DEVICES = ("H100", "L4")


def test_single_agent_and_fleet_name_an_unknown_inventory_device_alike() -> None:
    hardware = HardwareSpec(devices=DEVICES, inventory={"H10": 4})
    with pytest.raises(InputError) as single:
        prepare(PlanRequest(load_workload("chat_agent"), hardware=hardware))
    fleet = fleet_from_dict({"name": "f", "tenants": [{"workload": "chat_agent"}]})
    with pytest.raises(InputError) as shared:
        build_fleet_problem(fleet, hardware)
    for exc in (single.value, shared.value):
        assert "hardware.inventory names ['H10']" in str(exc)
        assert "Did you mean 'H100'?" in str(exc)
    assert str(single.value) == str(shared.value)


def test_fleet_refuses_tenants_over_different_device_types() -> None:
    a = tiny_problem({"a": [Opt("H100", 1.0, dedicated=1)]}, {"H100": 1.0}, name="a")
    b = tiny_problem({"b": [Opt("L4", 1.0, dedicated=1)]}, {"L4": 1.0}, name="b")
    with pytest.raises(InputError, match="same device types in the same order"):
        fleet_from_problems([a, b])


def test_problem_carries_kinds_and_tokens_from_the_graph() -> None:
    workload = load_workload("chat_agent")
    node = workload["nodes"]["llm"]
    problem, *_ = prepare(PlanRequest(workload, hardware=HardwareSpec(devices=DEVICES)))
    assert problem.ops == ("llm.prefill", "llm.decode")
    assert problem.op_kind == ("prefill", "decode")
    assert problem.op_tokens is not None
    np.testing.assert_array_equal(problem.op_tokens, [node["input_tokens"], node["output_tokens"]])
    assert list(problem.ops_of_kind("decode")) == [1]


def test_a_node_named_like_a_phase_is_not_taken_for_one() -> None:
    # A compute step named "...prefill" (slower than the real prefill) is no prefill: no tokens,
    # not counted in the worst TTFT (name parsing counted it).
    workload = {
        "name": "odd",
        "request_rate_per_s": 1.0,
        "nodes": {
            "cache_prefill": {"kind": "general_compute", "work": {"flops": 1e15, "mem_bytes": 1e5}},
            "llm": dict(load_workload("chat_agent")["nodes"]["llm"]),
        },
        "edges": [{"src": "cache_prefill", "dst": "llm"}],
    }
    out = plan_agent(
        PlanRequest(
            Workload.from_mapping(workload, "odd"),
            hardware=HardwareSpec(devices=DEVICES),
            baselines=(),
        )
    )
    problem, rows = out.problem, out.plan.placement.set_index("operator")
    assert out.plan.sla["worst_ttft_s"] == rows.loc["llm.prefill", "step_s"]
    assert out.plan.sla["worst_tbt_s"] == rows.loc["llm.decode", "step_s"]
    assert problem.ops[0] == "cache_prefill"
    assert problem.op_kind[0] == "compute"
    assert list(problem.ops_of_kind("prefill")) == [problem.ops.index("llm.prefill")]
    assert problem.op_tokens is not None and problem.op_tokens[0] == 0
