"""Kernels, IREE code generation per target, CPU execution, calibration and `hetopt compile`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hetopt.cli.main import main
from hetopt.costs.calibration import load_calibration
from hetopt.errors import InputError
from hetopt.hardware import load_catalog
from hetopt.mlir.calibrate import CpuModel, calibrate, calibrated_catalog, fit, host_model
from hetopt.mlir.codegen import (
    CompileFailure,
    compile_module,
    host_target,
    parse_target,
    run_kernels,
    target_for,
)
from hetopt.mlir.kernels import KernelShape, module_text, operator_kernels

SMALL = KernelShape(
    d_model=32,
    n_heads=2,
    d_ff=64,
    prompt_tokens=16,
    context_tokens=24,
    max_decode_batch=4,
    n_experts=4,
    vectors=256,
    queries=4,
)
SMALL_OVERRIDES = [f"mlir.kernel.{k}={v}" for k, v in SMALL.__dict__.items()]


def _kernels(et: str = "f32") -> list:  # type: ignore[type-arg]
    ks = []
    for name, attrs in (
        ("llm.prefill", {"op": "llm.prefill"}),
        ("llm.decode", {"op": "llm.decode", "placement": {"batch": 32}}),
        ("model.encode", {"op": "stt"}),
        ("memory.load", {"op": "db"}),
        ("gate.select", {"op": "moe.prefill", "part": "gate"}),
        ("tool.lookup", {"op": "search.lookup"}),
    ):
        ks.extend(operator_kernels(name, attrs, SMALL, et, "f32"))
    return ks


def test_kernels_cover_the_compute_operators_and_skip_host_ops() -> None:
    ks = _kernels()
    parts = {(k.operator, k.part) for k in ks}
    assert ("llm.prefill", "attention") in parts and ("db", "scan") in parts
    assert ("moe.prefill", "router") in parts
    assert not [k for k in ks if k.operator == "search.lookup"]
    decode_qkv = next(k for k in ks if k.name == "llm_decode__qkv")
    assert decode_qkv.args[0][0] == (4, 32)  # the plan's batch 32, capped at 4
    assert decode_qkv.flops == 2 * 4 * 32 * 96


@pytest.mark.parametrize("et", ["f32", "f16"])
def test_cpu_execution_matches_numpy(et: str) -> None:
    ks = _kernels(et)
    vmfb = compile_module(module_text(ks), host_target("host", et))
    runs = run_kernels(vmfb, ks, min_time_s=0.0, max_repeats=1)
    tol = 1e-4 if et == "f32" else 1e-2
    for k, r in zip(ks, runs, strict=True):
        assert r.max_rel_error < tol, (k.name, r.max_rel_error)
        assert r.measured_s > 0


def test_causal_mask_matters() -> None:
    """A prefill attention that ignored its mask would not match the causal reference."""
    k = next(k for k in _kernels() if k.name == "llm_prefill__attention")
    q, kk, v, mask = k.inputs()
    assert mask[0, 1] < -1e8 and mask[1, 0] == 0
    assert not np.allclose(k.reference(q, kk, v, mask), k.reference(q, kk, v, 0 * mask))


@pytest.mark.parametrize(
    ("device", "label"),
    [
        ("EPYC-Genoa", "llvm-cpu:znver4"),
        ("A100", "cuda:sm_80"),
        ("H100", "cuda:sm_89"),
        ("B200", "cuda:sm_89"),
        ("MI300X", "rocm:gfx942"),
        ("Gaudi3", "vulkan-spirv"),
    ],
)
def test_every_target_compiles_offline(device: str, label: str) -> None:
    target = target_for(load_catalog().get(device))
    assert target.label == label
    ks = [k for k in _kernels(target.element_type) if k.operator in ("llm.decode", "db")]
    assert len(compile_module(module_text(ks), target)) > 1000


def test_unbuildable_target_names_the_target() -> None:
    target = parse_target("H100", "cuda:sm_90")
    with pytest.raises(CompileFailure) as err:
        compile_module(module_text(_kernels("f16")[:1]), target)
    assert "H100" in str(err.value) and "cuda:sm_90" in str(err.value)
    with pytest.raises(InputError, match="mlir.targets.H100='tpu'"):
        parse_target("H100", "tpu")


def test_fit_recovers_known_efficiencies() -> None:
    """Times generated from a known roofline (hand-set efficiencies, 20 us overhead) give back
    those factors within the grid's resolution."""
    model = CpuModel("cpu", 2, 1e11, 1e10, 0.4, 0.65)
    truth = CpuModel("cpu", 2, 1e11, 1e10, 0.25, 0.5, 2e-5)
    flops = np.array([1e6, 1e7, 1e8, 1e9, 5e7, 2e6])
    nbytes = np.array([1e7, 1e8, 1e6, 1e7, 5e8, 1e5])
    got = fit(model, flops, nbytes, truth.predict_s(flops, nbytes))
    assert got.compute_efficiency == pytest.approx(0.25, rel=0.05)
    assert got.bandwidth_efficiency == pytest.approx(0.5, rel=0.05)
    assert got.overhead_s == 2e-5


def test_calibration_report_and_catalog() -> None:
    cpu = load_catalog().get("EPYC-Genoa")
    model = host_model(cpu, cores=2)
    assert model.peak_flops_per_s == pytest.approx(cpu.peak_flops_per_s("fp32") * 2 / 96)
    truth = CpuModel(cpu.name, 2, model.peak_flops_per_s, model.mem_bw_bytes_per_s, 0.2, 0.9)
    frame = pd.DataFrame(
        {
            "kernel": ["a", "b", "c"],
            "operator": ["x", "x", "y"],
            "shape_class": ["gemm", "gemm", "attention"],
            "flops": [1e9, 2e8, 1e8],
            "bytes": [1e6, 1e6, 1e8],
        }
    )
    frame["measured_s"] = truth.predict_s(frame["flops"].to_numpy(), frame["bytes"].to_numpy())
    cal = calibrate(model, frame)
    s = cal.summary()
    assert s["gemm_operator_median_abs_error_after"] < 0.05
    assert s["gemm_operator_median_abs_error_before"] > 0.4
    rows = calibrated_catalog(load_catalog(), cal).set_index("name")
    assert rows.loc["EPYC-Genoa", "compute_efficiency"] == pytest.approx(0.2, rel=0.05)
    assert rows.loc["H100", "compute_efficiency"] == load_catalog().get("H100").compute_efficiency


def test_hetopt_compile_end_to_end(tmp_path: Path) -> None:
    run = tmp_path / "c"
    assert main(["compile", *SMALL_OVERRIDES, "mlir.min_time_s=0.01", f"run_dir={run}"]) == 0
    report = json.loads((run / "verification.json").read_text())
    assert report["structure_matches_planner"] and report["numerically_ok"]
    assert all(p["compiled"] for p in report["partitions"] if p["kernels"])
    for stage in ("00-input", "01-decomposed", "02-annotated", "03-placed"):
        assert (run / "mlir" / f"{stage}.mlir").is_file()
    assert '"llm.call"' in (run / "mlir" / "00-input.mlir").read_text()
    assert '"llm.prefill"' in (run / "mlir" / "01-decomposed.mlir").read_text()
    assert "placement = {" in (run / "mlir" / "03-placed.mlir").read_text()
    assert list((run / "artifacts").glob("*.vmfb"))
    assert (run / "calibration.png").is_file()
    # The calibrated catalog plans.
    cat = run / "calibrated_devices.csv"
    assert main(["plan", f"hardware.catalog_path={cat}", f"run_dir={tmp_path / 'p'}"]) == 0
    # ... and so does the cost model's table with this machine's CPU fit beside the GPUs'
    table = load_calibration(run / "cost_calibration.csv")
    cpu = table.lookup("Xeon-SPR", "fp16")
    assert cpu is not None and "hetopt compile" in cpu.source
    assert table.lookup("H100", "fp16") == load_calibration().lookup("H100", "fp16")
    assert (
        main(
            [
                "plan",
                f"costs.calibration={run / 'cost_calibration.csv'}",
                f"run_dir={tmp_path / 'q'}",
            ]
        )
        == 0
    )
    costed = pd.read_csv(tmp_path / "q" / "cost_table.csv")
    cpu_llm = costed[
        costed["device"].isin(["Xeon-SPR", "EPYC-Genoa"]) & costed["op"].str.startswith("llm.")
    ]
    assert len(cpu_llm) and (cpu_llm["cost_model"] == "calibrated").all()


def test_failed_partition_exits_2_and_keeps_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "c"
    code = main(
        [
            "compile",
            *SMALL_OVERRIDES,
            "mlir.execute=false",
            "+mlir.targets.MI300X=cuda:sm_90",
            f"run_dir={run}",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "MI300X" in err and "cuda:sm_90" in err and "Traceback" not in err
    report = json.loads((run / "verification.json").read_text())
    ok = [p for p in report["partitions"] if p["compiled"]]
    failed = [p for p in report["partitions"] if p["device"] == "MI300X"]
    assert ok and failed and not failed[0]["compiled"] and failed[0]["error"]


def test_unknown_target_backend_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", "+mlir.targets.L4=tpu", f"run_dir={tmp_path / 'c'}"]) == 2
    assert "mlir.targets.L4" in capsys.readouterr().err
