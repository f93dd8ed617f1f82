"""Fitting, the calibration table, its provenance and its bad inputs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hetopt.cli.main import main
from hetopt.costs.calibrate import HoldOut, calibrate
from hetopt.costs.calibration import (
    CALIBRATION_PATH,
    STEP_MODEL_VERSION,
    load_calibration,
    validate_table,
)
from hetopt.costs.fit import (
    MEASUREMENT_COLUMNS,
    error_stats,
    shape_columns,
    validate_measurements,
)
from hetopt.costs.llm import device_peaks
from hetopt.costs.step import ModelShape, StepCoefficients, predict_step
from hetopt.costs.table import CostParams
from hetopt.errors import InputError
from hetopt.hardware import load_catalog
from hetopt.pipeline import PlanRequest, plan_agent
from hetopt.sla import Sla
from hetopt.workloads import load_workload
from tests.costs.stepwork import point_work

CATALOG = load_catalog()
TRUE = StepCoefficients(
    kernel_floor_s=5e-6,
    gemm_eff_compute=0.75,
    gemm_eff_memory=0.85,
    ctx_attn_eff_compute=0.55,
    ctx_attn_floor_s=40e-6,
    gen_attn_eff_memory=0.6,
    elementwise_eff_memory=0.5,
    allreduce_latency_s_tp2=5e-6,
    allreduce_eff_bw_tp2=0.7,
    allreduce_latency_s_tp4=8e-6,
    allreduce_eff_bw_tp4=0.6,
    allreduce_latency_s_tp8=12e-6,
    allreduce_eff_bw_tp8=0.5,
    step_overhead_s=2e-3,
)
SHAPES = [
    ModelShape("a", 32, 4096, 32, 8, 128, 14336, 128256),
    ModelShape("b", 64, 5120, 64, 8, 128, 25600, 151936),
]


def synthetic(
    coefficients: StepCoefficients,
    device: str = "H100",
    precision: str = "fp16",
    noise: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Measurements drawn from the step model itself with known coefficients."""
    rng = np.random.default_rng(seed)
    peaks = device_peaks(CATALOG.get(device), precision)
    rows = []
    for shape in SHAPES:
        for tp in (1, 2, 4, 8):
            for seq in (128, 512, 2048, 4096):
                for batch in (1, 4, 16, 64, 256):
                    for phase in ("prefill", "decode"):
                        if phase == "prefill" and batch > 16:
                            continue
                        w = point_work(shape, precision, tp, batch, seq, phase == "prefill")
                        t = float(predict_step(w, peaks, coefficients).total_s)
                        t *= float(np.exp(rng.normal(0.0, noise))) if noise else 1.0
                        rows.append(
                            dict(
                                device=device,
                                precision=precision,
                                model=shape.name,
                                phase=phase,
                                tp=tp,
                                batch=batch,
                                seq_tokens=seq,
                                step_s=t,
                                **shape_columns(shape),
                                source="synthetic (test)",
                            )
                        )
    return validate_measurements(pd.DataFrame(rows), "synthetic")


def test_fit_gives_known_coefficients_back() -> None:
    pytest.importorskip("scipy")
    from hetopt.costs.fit import fit_coefficients

    frame = synthetic(TRUE)
    peaks = device_peaks(CATALOG.get("H100"), "fp16")
    fit = fit_coefficients(frame, peaks)
    got = fit.coefficients
    assert fit.geomean_error < 1.001
    # Every coefficient that shapes some point comes back; the all-reduce's size law is
    # below its ring bound everywhere in TRUE (size_s = 0), so it is free up to that bound.
    for name in (
        "kernel_floor_s",
        "gemm_eff_compute",
        "gemm_eff_memory",
        "ctx_attn_eff_compute",
        "ctx_attn_floor_s",
        "gen_attn_eff_memory",
        "elementwise_eff_memory",
        "step_overhead_s",
        "allreduce_latency_s_tp2",
        "allreduce_eff_bw_tp2",
        "allreduce_latency_s_tp4",
        "allreduce_eff_bw_tp4",
        "allreduce_latency_s_tp8",
        "allreduce_eff_bw_tp8",
    ):
        assert getattr(got, name) == pytest.approx(getattr(TRUE, name), rel=0.02), name


def test_fit_with_noise_reports_its_error() -> None:
    pytest.importorskip("scipy")
    from hetopt.costs.fit import fit_coefficients

    frame = synthetic(TRUE, noise=0.05, seed=3)
    fit = fit_coefficients(frame, device_peaks(CATALOG.get("H100"), "fp16"))
    # |N(0, 0.05)| has mean 0.05 * sqrt(2 / pi) = 0.0399: the fit cannot do better than noise
    assert 1.03 < fit.geomean_error < 1.05
    assert fit.coefficients.gemm_eff_compute == pytest.approx(0.75, rel=0.05)


def test_error_stats_by_hand() -> None:
    geo, worst = error_stats([2.0, 0.5])
    assert geo == pytest.approx(2.0) and worst in (2.0, 0.5)


def test_calibrate_holds_out_and_round_trips(tmp_path: Path) -> None:
    pytest.importorskip("scipy")
    frame = synthetic(TRUE, noise=0.02, seed=1)
    result = calibrate(frame, CATALOG, HoldOut(models=("b",), seq_tokens=(2048,)), version="test-1")
    points = result.points
    held = points["held_out"]
    assert set(points.loc[held, "model"]) | set(points.loc[held, "seq_tokens"].astype(str)) >= {"b"}
    assert not ((points["model"] == "a") & (points["seq_tokens"] == 512) & held).any()
    entry = result.table.lookup("H100", "fp16")
    assert entry is not None and entry.source.startswith("synthetic (test)")
    fitted = result.table.frame["n_points"].iloc[0]
    assert fitted == (~held).sum() and result.table.frame["heldout_points"].iloc[0] == held.sum()
    # decode rows at 2048 + 1 cached tokens are held out with the 2048-token prompts
    assert held[(points["phase"] == "decode") & (points["seq_tokens"] == 2048)].all()
    # one layer count in the fit: per-layer and per-step constants extrapolate to model b
    assert 1.0 < entry.heldout_geomean_error < 1.10
    assert entry.decode_min_ratio <= 1.0 <= entry.heldout_max_ratio
    path = tmp_path / "cal.csv"
    result.table.save(path)
    back = load_calibration(path)
    assert back.version == "test-1"
    assert back.lookup("H100", "fp16") == entry
    assert back.lookup("H100-owned", "bf16") == entry  # installed rows and bf16 share it
    assert back.lookup("Gaudi3", "fp16") is None


def test_published_fit_reports_time_ratios(tmp_path: Path) -> None:
    """A device slower than predicted must show a ratio below 1 (an optimistic prediction),
    which the SLA guard then divides by."""
    pytest.importorskip("scipy")
    from hetopt.costs.calibrate import fit_published, static_batch_tok_s
    from hetopt.graph.architectures import get_architecture
    from hetopt.graph.decompose import LlmWork

    base = calibrate(
        synthetic(TRUE, noise=0.01, seed=2), CATALOG, HoldOut(models=("b",)), version="t"
    ).table
    prior = base.prior("fp16")
    assert prior is not None
    mi300x = CATALOG.get("MI300X")
    rows = []
    for model, tp, batch, n_in, n_out in (
        ("llama-3-8b", 1, 8, 128, 512),
        ("llama-3-8b", 1, 64, 1024, 256),
        ("llama-3-70b", 4, 16, 512, 512),
        ("llama-3-70b", 8, 128, 128, 1024),
    ):
        work = LlmWork(get_architecture(model), "fp16", n_in, n_out)
        rows.append(
            dict(
                device="MI300X",
                model=model,
                precision="fp16",
                tp=tp,
                batch=batch,
                input_tokens=n_in,
                output_tokens=n_out,
                source="synthetic (test)",
                output_tokens_per_s=static_batch_tok_s(mi300x, work, tp, batch, prior),
            )
        )
    rows[0]["output_tokens_per_s"] *= 0.75  # this run was slower than the model says
    published = pd.DataFrame(rows)
    fitted = fit_published(published, base, CATALOG, "t")
    frame = pd.DataFrame(fitted)
    first = frame.iloc[0]
    assert first["heldout_min_ratio"] < 0.9  # predicted time below measured: optimistic
    assert first["decode_min_ratio"] == first["heldout_min_ratio"]
    # the slow run pulls the factor down, so the other points come out pessimistic (> 1)
    assert 1.0 < first["heldout_max_ratio"] < 1.3
    assert "leave-one-out" in first["source"]


def test_sla_guard_only_removes_configurations() -> None:
    guarded = _voice_table(CostParams())
    plain = _voice_table(CostParams(sla_guard="none"))
    key = ["op", "device", "config"]
    both = guarded.merge(plain, on=key, suffixes=("", "_plain"))
    # the guard never changes a time
    assert np.allclose(both["step_s"], both["step_s_plain"], equal_nan=True)
    assert not (both["feasible"] & ~both["feasible_plain"]).any()
    lost = both[~both["feasible"] & both["feasible_plain"]]
    assert len(lost) and lost["reason"].str.contains("held-out error guard").all()


def test_shipped_table_is_current_and_sourced() -> None:
    table = load_calibration()
    assert set(table.frame["model_version"]) == {STEP_MODEL_VERSION}
    silicon = {"H100", "H200", "B200", "A100", "L40S"}
    assert silicon | {"MI300X", "Gaudi3"} == table.devices()
    for device in silicon:
        entry = table.lookup(device, "fp16")
        assert entry is not None and entry.heldout_geomean_error < 1.15
        assert entry.source.startswith("aiconfigurator") and not entry.derived
        assert entry.reserve_bytes > 1e9
    for device in ("MI300X", "Gaudi3"):  # vendor-published fp8 throughput only
        entry = table.lookup(device, "fp8")
        assert entry is not None and entry.derived and "published" in entry.source
        assert table.lookup(device, "fp16") is None
    # the prior for devices without data comes from silicon-calibrated GPUs only
    prior = table.prior("fp8")
    assert prior is not None and "Gaudi3" not in prior.source


def _voice_table(costs: CostParams) -> pd.DataFrame:
    out = plan_agent(
        PlanRequest(
            load_workload("voice_agent"), costs=costs, sla=Sla(ttft_s=0.25, tbt_s=0.02, e2e_s=15.0)
        )
    )
    return out.table.frame


def test_uncalibrated_devices_are_flagged_in_the_cost_table() -> None:
    frame = _voice_table(CostParams())
    llm = frame[frame["op"].str.startswith("llm.") & frame["feasible"]]
    models = llm.groupby("device")["cost_model"].agg(set).to_dict()
    assert models["H100"] == {"calibrated"}
    # the voice agent is fp16; Gaudi 3 and MI300X are calibrated at fp8 only
    assert models["Gaudi3"] == {"uncalibrated"} and models["MI300X"] == {"uncalibrated"}
    assert (llm.loc[llm["device"] == "H100", "error_band"].str.startswith("x1.0")).all()
    roof = _voice_table(CostParams(model="roofline"))
    assert set(roof.loc[roof["op"].str.startswith("llm."), "cost_model"]) == {"roofline"}


def test_plan_json_records_the_cost_model(tmp_path: Path) -> None:
    assert main(["plan", f"run_dir={tmp_path}", "solver.time_limit_s=20"]) == 0
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["cost_model"]["model"] == "calibrated"
    assert plan["cost_model"]["step_model_version"] == STEP_MODEL_VERSION
    assert plan["cost_model"]["calibration_table"] == load_calibration().version
    llm = [p for p in plan["placement"] if p["operator"].startswith("llm.")]
    assert llm and all(p["cost_model"] in ("calibrated", "uncalibrated") for p in llm)
    for p in llm:
        assert (p["error_band"] == "unknown") == (p["cost_model"] == "uncalibrated")


def test_default_install_plans_without_aiconfigurator_or_scipy(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "for name in ('aiconfigurator', 'aiconfigurator_core', 'scipy'):\n"
        "    sys.modules[name] = None\n"
        "from hetopt.costs.calibration import load_calibration\n"
        "from hetopt.pipeline import PlanRequest, plan_agent\n"
        "from hetopt.sla import Sla\n"
        "from hetopt.workloads import load_workload\n"
        "out = plan_agent(PlanRequest(load_workload('voice_agent'), sla=Sla(ttft_s=0.25, "
        "tbt_s=0.02, e2e_s=15.0)))\n"
        "assert out.plan.verified\n"
        "assert 'calibrated' in set(out.table.frame['cost_model'])\n"
        "print(load_calibration().version)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == load_calibration().version


def test_table_rejects_bad_rows_naming_row_and_column(tmp_path: Path) -> None:
    frame = pd.read_csv(CALIBRATION_PATH)
    bad = frame.astype({"eff_memory": object})
    i = int(frame.index[frame["term"] == "gemm"][1])
    bad.loc[i, "eff_memory"] = "fast"
    with pytest.raises(InputError, match=rf"row {i + 2}, column eff_memory: not a number"):
        validate_table(bad, "t.csv")
    old = frame.copy()
    old["model_version"] = "step-0"
    with pytest.raises(InputError, match="model_version.*hetopt calibrate"):
        validate_table(old, "t.csv")
    with pytest.raises(InputError, match="lacks the term"):
        validate_table(frame[frame["term"] != "step"], "t.csv")


def test_bad_calibration_file_exits_2_and_keeps_earlier_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "bad.csv"
    frame = pd.read_csv(CALIBRATION_PATH)
    frame.loc[0, "floor_s"] = -1.0
    frame.to_csv(table, index=False)
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)  # an earlier run, which overwrite=true may replace
    (run / "plan.json").write_text('{"earlier": true}')
    assert main(["plan", f"run_dir={run}", f"costs.calibration={table}", "overwrite=true"]) == 2
    err = capsys.readouterr().err
    assert "bad.csv row 2, column floor_s" in " ".join(err.split())
    assert "Traceback" not in err
    assert json.loads((run / "plan.json").read_text()) == {"earlier": True}


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda f: f.assign(step_s="12.1ms"), r"row 2, column step_s: not a number"),
        (lambda f: f.assign(tp=0), r"row 2, column tp: must be a positive integer"),
        (lambda f: f.assign(phase="train"), r"row 2, column phase"),
        (lambda f: f.drop(columns=["source"]), r"missing column\(s\) \['source'\]"),
        (lambda f: f.iloc[0:0], "no measurement rows"),
    ],
)
def test_bad_measurements_exit_2_naming_file_row_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit, match
) -> None:  # type: ignore[no-untyped-def]
    good = synthetic(TRUE).head(3)
    path = tmp_path / "m.csv"
    edit(good).to_csv(path, index=False)
    out = tmp_path / "out"
    (out / ".hydra").mkdir(parents=True)  # an earlier run, which overwrite=true may replace
    (out / "calibration.csv").write_text("kept")
    assert main(["calibrate", f"measurements={path}", f"out={out}", "overwrite=true"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "m.csv" in err and re.search(match, err), err
    assert (out / "calibration.csv").read_text() == "kept"


def test_calibrate_from_a_measurements_file(tmp_path: Path) -> None:
    pytest.importorskip("scipy")
    path = tmp_path / "m.csv"
    synthetic(TRUE, noise=0.02, seed=5).to_csv(path, index=False)
    out = tmp_path / "out"
    assert main(["calibrate", f"measurements={path}", f"out={out}", "holdout_models=b"]) == 0
    table = load_calibration(out / "calibration.csv")
    assert table.lookup("H100", "fp16") is not None
    assert "H100" in (out / "summary.md").read_text()
    assert main(["calibrate", "bogus=1"]) == 2
    # shipping a partial refit would silently drop every other device
    assert main(["calibrate", f"measurements={path}", "ship=true"]) == 2
    assert load_calibration().devices() >= {"H100", "B200", "L40S"}


def test_measurement_columns_cover_the_shape() -> None:
    shape_fields = {f.name for f in fields(ModelShape)} - {"name", "n_experts", "experts_per_token"}
    assert shape_fields <= set(MEASUREMENT_COLUMNS)
