"""Fleet specs, the synthetic generator, building from the catalog, and `hetopt fleet`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from hetopt.cli.main import main
from hetopt.costs.table import CostParams
from hetopt.errors import InputError
from hetopt.fleet.generator import (
    binding_inventory,
    synthetic_devices,
    synthetic_fleet,
)
from hetopt.fleet.problem import build_fleet_problem
from hetopt.fleet.spec import fleet_from_dict
from hetopt.hardware import load_catalog
from hetopt.hardware.spec import HardwareSpec
from hetopt.sla import Sla
from hetopt.solvers.base import SolverOptions, SolveStatus


def test_generator_is_seeded_and_reaches_the_size() -> None:
    a, b, c = synthetic_fleet(60, seed=3), synthetic_fleet(60, seed=3), synthetic_fleet(60, 4)
    assert a == b and a != c
    fp = build_fleet_problem(a, HardwareSpec(devices=("L4", "A100", "H100", "B200")))
    assert 60 <= fp.n_ops <= 60 + 14  # at most one tenant beyond the target
    assert len(set(fp.tenant_names)) == fp.n_tenants


@pytest.mark.parametrize("n", [6, 11, 20, 30])
def test_generated_device_types(n: int) -> None:
    names, rows = synthetic_devices(n, seed=1)
    assert len(names) == len(set(names)) == n
    base = load_catalog()
    for row in rows:
        parent = base.get(row["name"].rsplit("-", 1)[0])
        variant = row["name"].rsplit("-", 1)[1]
        if variant == "prev":
            assert row["price_usd"] < parent.price_usd
            assert row["fp16_tflops"] < parent.fp16_tflops
        if variant == "next":
            assert row["fp16_tflops"] > parent.fp16_tflops
        if variant == "lease":
            assert row["price_usd"] < parent.price_usd
        if variant == "nofp8":
            assert row["fp8_tflops"] is None and parent.fp8_tflops
    catalog = load_catalog(extra_rows=rows).select(names)
    assert catalog.names == names


def test_binding_inventory_caps_the_most_used_types() -> None:
    assert binding_inventory(["A", "B", "C"], [10, 3, 0], 0.7, 2) == {"A": 7, "B": 2}


def test_fleet_spec_merges_slas_and_expands_counts() -> None:
    spec = fleet_from_dict(
        {
            "name": "f",
            "tenants": [
                {"name": "v", "workload": "voice_agent", "sla": {"tbt_s": 0.05}},
                {"name": "c", "workload": "chat_agent", "request_rate_per_s": 2.0, "count": 2},
            ],
        },
        base_sla=Sla(ttft_s=0.3, tbt_s=0.02),
    )
    v, c0, c1 = spec.tenants
    assert (v.sla.ttft_s, v.sla.tbt_s, v.sla.e2e_s) == (0.3, 0.05, 15.0)  # e2e from the workload
    assert v.request_rate_per_s == 2.0  # the workload's own rate
    assert (c0.name, c1.name, c0.request_rate_per_s) == ("c#0", "c#1", 2.0)
    fp = build_fleet_problem(spec, HardwareSpec(devices=("L4", "A100", "H100")))
    assert fp.tenant_class[1] == fp.tenant_class[2] != fp.tenant_class[0]


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"tenants": [{"workload": "chat_agent", "colour": 1}]}, "unknown key(s) ['colour']"),
        ({"tenants": [{"workload": "chat_agent", "count": 0}]}, "count must be a whole number"),
        (
            {"tenants": [{"workload": "chat_agent", "sla": {"e2e": 1}}]},
            "unknown SLA key(s) ['e2e']",
        ),
        ({"tenants": [{"name": "x", "workload": "chat_agent"}] * 2}, "appear more than once"),
        ({"tenants": [{"workload": "worked_example"}]}, "measured profile"),
        ({"tenants": "chat"}, "'tenants:' list"),
    ],
)
def test_bad_fleet_specs_name_the_key(data: dict, needle: str) -> None:
    with pytest.raises(InputError, match=None) as err:
        fleet_from_dict(data, "f.yaml")
    assert needle in str(err.value)


def test_catalog_fleet_monolithic_and_decomposition_agree_within_the_gap() -> None:
    from hetopt.fleet.solve import solve_fleet

    spec = synthetic_fleet(30, seed=5)
    fp = build_fleet_problem(spec, HardwareSpec(devices=("Xeon-SPR", "L4", "A100", "H100", "B200")))
    mono = solve_fleet(fp, SolverOptions(time_limit_s=60), method="monolithic")
    cp = solve_fleet(fp, SolverOptions(backend="cpsat", time_limit_s=60), method="monolithic")
    dec = solve_fleet(fp, SolverOptions(time_limit_s=60, gap_rel=1e-6), method="decomposition")
    assert mono.status is SolveStatus.OPTIMAL and cp.status is SolveStatus.OPTIMAL
    assert cp.objective_usd_per_h == pytest.approx(mono.objective_usd_per_h, rel=1e-5)
    assert mono.verified and cp.verified and dec.verified
    # The decomposition's bound is valid and its plan is no better than the optimum.
    assert dec.bound_usd_per_h <= mono.objective_usd_per_h + 1e-6
    assert dec.objective_usd_per_h >= mono.objective_usd_per_h - 1e-6
    assert mono.first_feasible_s < mono.build_s + mono.solve_s  # the greedy start came first


def test_hetopt_fleet_cli_writes_a_verified_plan(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = main(
        [
            "fleet",
            f"run_dir={out}",
            "fleet.baselines=[greedy,heft]",
            "hardware.devices=[Xeon-SPR,L4,A100,H100,B200]",
        ]
    )
    assert code == 0
    info = json.loads((out / "fleet_plan.json").read_text())
    assert info["verified"] and info["status"] == "optimal" and info["tenants"] == 7
    assert {b["method"] for b in info["baselines"]} == {"greedy", "heft"}
    assert all(b["gap_to_plan"] >= -1e-9 for b in info["baselines"])
    for name in ("placement.csv", "devices.csv", "tenants.csv", "fleet.png", "config.yaml"):
        assert (out / name).is_file()


def test_hetopt_fleet_short_inventory_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "fleet",
            f"run_dir={tmp_path / 'r'}",
            "hardware.devices=[Gaudi3,L4,Xeon-SPR]",
            "+hardware.inventory.Gaudi3=4",
            "+hardware.inventory.L4=2",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "Gaudi3: short by" in err and "+hardware.inventory.Gaudi3=" in err
    assert "Traceback" not in err


def test_hetopt_fleet_bad_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntenants:\n  - {workload: chat_agent, rate: 3}\n")
    code = main(["fleet", f"fleet_file={bad}", f"run_dir={tmp_path / 'r'}"])
    err = capsys.readouterr().err
    assert code == 2 and str(bad) in err and "unknown key(s) ['rate']" in err


def test_fleet_honours_llm_pool_settings(tmp_path: Path) -> None:
    """``costs.llm_pools=model`` reaches the fleet: the research tenant's two calls of
    llama-3-8b share replicas, written to llm_pools.csv and counted in fleet_plan.json."""
    run = tmp_path / "run"
    assert (
        main(["fleet", "costs.llm_pools=model", "fleet.baselines=[]", f"hydra.run.dir={run}"]) == 0
    )
    info = json.loads((run / "fleet_plan.json").read_text())
    assert info["verified"] and info["llm_pools"] >= 1
    pools = pd.read_csv(run / "llm_pools.csv")
    assert (pools["members"].str.count(";") >= 1).any()
    placed = pd.read_csv(run / "placement.csv", keep_default_na=False)
    assert set(placed.loc[placed["llm_pool"] != "", "llm_pool"]) == set(pools["llm_pool"])


def test_fleet_tenants_pool_their_size_buckets() -> None:
    """Under the default costs (llm_pools=buckets) one tenant's size buckets share keys, as in
    a single-agent plan; llm_pools=off builds none."""
    fleet = fleet_from_dict(
        {"name": "two", "tenants": [{"name": "a", "workload": "mixed_sizes"}]}, "test"
    )
    fp = build_fleet_problem(fleet, HardwareSpec(devices=("L4", "H100")))
    assert fp.n_keys > 0 and fp.tenants[0].n_keys == fp.n_keys
    off = build_fleet_problem(
        fleet, HardwareSpec(devices=("L4", "H100")), CostParams(llm_pools="off")
    )
    assert off.n_keys == 0 and all(p.n_keys == 0 for p in off.tenants)
