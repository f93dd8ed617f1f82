"""Paper studies: formula anchors, pair-study consistency, Pareto monotonicity, CLI."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest

from hetopt.cli.main import main
from hetopt.report import studies


def test_cost_efficiency_matches_table5_arithmetic() -> None:
    frame = studies.cost_efficiency().set_index("device")
    # paper.md §10a: $ per GB/s and $ per GB from Table 5's price, bandwidth and capacity
    assert frame.loc["Gaudi3", "usd_per_gb_per_s"] == pytest.approx(12500 / 3700)
    assert frame.loc["H100", "usd_per_gb"] == pytest.approx(25000 / 80)
    assert frame.loc["H100", "usd_per_fp16_tflop"] == pytest.approx(25000 / 989)  # dense
    assert math.isnan(frame.loc["A100", "usd_per_fp8_tflop"])  # no fp8 on A100
    assert frame["usd_per_gb_per_s"].idxmin() == "Gaudi3"  # the paper's panel (a)
    assert "Xeon-SPR" not in frame.index


def test_kv_link_table_formulas() -> None:
    frame = studies.kv_link_table().set_index(["model", "precision", "link_gbit_per_s"])
    row = frame.loc[("llama-3-70b", "fp16", 400)]
    assert row["kv_bytes_per_token"] == 327680  # formula (3)
    assert row["max_input_tokens"] == int(0.25 * 400e9 / 8 / 327680)  # formula (1)
    assert row["egress_gbit_per_s_at_32k"] == pytest.approx(343.6, rel=1e-3)  # paper.md §10d
    assert row["ingress_gbit_per_s_at_32k"] == pytest.approx(343.6 * 12.5, rel=1e-3)
    # The paper's claim: 200-400 Gbps carries 32K inputs, depending on the variant.
    assert frame.loc[("llama-3-8b", "fp16", 200), "meets_32k"]
    assert not frame.loc[("llama-3-70b", "fp16", 200), "meets_32k"]
    assert frame.loc[("llama-3-70b", "fp16", 400), "meets_32k"]


@pytest.fixture(scope="module")
def pairs() -> pd.DataFrame:
    return studies.pair_study("llama-3-70b", "fp8", 4096, 512, "latency")


def test_joint_optimum_equals_the_cheapest_fixed_pair(pairs: pd.DataFrame) -> None:
    free = pairs[pairs["pair"] == "optimal"].iloc[0]
    fixed = pairs[pairs["pair"] != "optimal"]
    assert free["status"] == "optimal"
    assert free["tco_usd_per_h"] == pytest.approx(fixed["tco_usd_per_h"].min(), rel=1e-9)
    assert (fixed.loc[fixed["status"] == "optimal", "gap"] <= 1e-6).all()
    ref = fixed[fixed["pair"] == "H100::H100"].iloc[0]
    assert ref["benefit_vs_h100"] == pytest.approx(1.0)


def test_every_pair_is_reported_with_a_reason_when_impossible(pairs: pd.DataFrame) -> None:
    fixed = pairs[pairs["pair"] != "optimal"]
    assert len(fixed) == 81  # every ordered pair of the 9 accelerators
    impossible = fixed[fixed["status"] != "optimal"]
    assert len(impossible) > 0
    assert impossible["reason"].str.len().gt(0).all()
    a40 = fixed[fixed["pair"] == "A40::H100"].iloc[0]
    assert a40["status"] == "infeasible" and "no fp8" in a40["reason"]


def test_pair_latency_sla_respected(pairs: pd.DataFrame) -> None:
    ok = pairs[(pairs["status"] == "optimal") & (pairs["pair"] != "optimal")]
    assert (ok["prefill_step_ms"] <= 250 + 1e-9).all()
    assert (ok["decode_step_ms"] <= 20 + 1e-9).all()


def test_pareto_tighter_bounds_never_cheaper() -> None:
    workload = studies.llm_workload("llama-3-8b", "fp16", 1024, 256, 10.0)
    frame = studies.pareto_frontier(workload, (0.05, 0.25), (0.01, 0.02, 0.05))
    grid = frame.set_index(["ttft_sla_s", "tbt_sla_s"])["tco_usd_per_h"]
    assert grid[(0.05, 0.01)] >= grid[(0.25, 0.01)] >= grid[(0.25, 0.05)]
    assert grid[(0.25, 0.01)] >= grid[(0.25, 0.02)]
    assert frame["pareto"].any()
    assert frame.loc[frame["pareto"], "tco_usd_per_h"].notna().all()


def test_reproduce_command_writes_csv_png_and_summary(tmp_path: Path) -> None:
    assert main(["reproduce", "fig4", "table3", "kv_table", "--out", str(tmp_path)]) == 0
    for name in ("fig4", "table3", "kv_table"):
        for suffix in (".csv", ".png"):
            assert (tmp_path / name / f"{name}{suffix}").stat().st_size > 0
        assert "#" in (tmp_path / name / "summary.md").read_text()
    table3 = pd.read_csv(tmp_path / "table3" / "table3.csv").set_index("option")
    assert table3.loc["B: prefill HP, decode CO", "cost_usd_per_request"] == pytest.approx(0.095)
    assert not table3.loc["C: both on CO", "sla_met"]
    assert main(["reproduce", "fig99"]) == 2


def test_serving_table_best_config_within_sla() -> None:
    frame = studies.serving_table(
        models=("llama-3-70b",), precisions=("fp16", "fp8"), lengths=((512, 4096),)
    )
    ok = frame[frame["feasible"]]
    assert (ok.loc[ok["phase"] == "decode", "step_ms"] <= 20 + 1e-9).all()
    assert (ok.loc[ok["phase"] == "prefill", "step_ms"] <= 250 + 1e-9).all()
    assert (ok["tp"] <= 8).all()
    bad = frame[~frame["feasible"]].set_index(["precision", "phase", "device"])
    assert "no fp8" in bad.loc[("fp8", "prefill", "A100"), "reason"]
    # 70B fp16 on 8 L4s: too slow, or (with the engine's memory reserve) too big
    assert re.search("TBT|GB per device", bad.loc[("fp16", "decode", "L4"), "reason"])
    b200 = ok.set_index(["precision", "phase", "device"]).loc[("fp16", "decode", "B200")]
    h100 = ok.set_index(["precision", "phase", "device"]).loc[("fp16", "decode", "H100")]
    # 2.4x the bandwidth and 2.4x the memory: B200 decodes far more tokens per device
    assert b200["tokens_per_s_per_device"] > 2 * h100["tokens_per_s_per_device"]
