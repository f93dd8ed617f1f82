"""Benchmark (needs an NVIDIA GPU): run the CUDA artefacts and compare with the roofline.

Generates the prefill, decode and vector-search kernels of ``hetopt compile`` for one catalog
device (default H100, which IREE 3.13 targets as sm_89 PTX that the driver JIT-compiles),
compiles them with IREE, runs them with the ``cuda`` HAL driver, checks them against NumPy and
reports measured time against the catalog roofline (``max(flops / effective peak, bytes /
effective bandwidth)``). Writes ``bench_cuda.csv``. On a machine without a GPU it says so and
exits 0; the test suite never needs it.

Run: ``python experiments/bench_cuda.py [--device H100] [--d-model 4096]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from hetopt.hardware import load_catalog
from hetopt.mlir.codegen import compile_module, run_kernels, target_for
from hetopt.mlir.kernels import KernelShape, module_text, operator_kernels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="H100")
    parser.add_argument("--d-model", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("experiments/results/cuda"))
    args = parser.parse_args()
    import iree.runtime as rt

    try:
        rt.get_driver("cuda").create_default_device()
    except Exception as exc:  # no driver library or no GPU
        print(f"no CUDA device here ({type(exc).__name__}: {str(exc)[:120]}); nothing to run")
        return
    device = load_catalog().get(args.device)
    target = target_for(device)
    shape = KernelShape(
        d_model=args.d_model,
        n_heads=args.d_model // 128,
        d_ff=4 * args.d_model,
        prompt_tokens=2048,
        context_tokens=2048,
        max_decode_batch=args.batch,
        vectors=1 << 20,
        queries=64,
    )
    kernels = []
    for name, attrs in (
        ("llm.prefill", {"op": "prefill"}),
        ("llm.decode", {"op": "decode", "placement": {"batch": args.batch}}),
        ("memory.load", {"op": "search"}),
    ):
        kernels += operator_kernels(
            name, attrs, shape, target.element_type, target.accumulator_type
        )
    vmfb = compile_module(module_text(kernels), target)
    precision = "fp16" if target.element_type == "f16" else "fp32"
    rows = []
    for k, run in zip(
        kernels, run_kernels(vmfb, kernels, min_time_s=0.5, driver="cuda"), strict=True
    ):
        roofline = max(
            k.flops / device.effective_flops_per_s(precision),
            k.bytes / device.effective_mem_bw_bytes_per_s,
        )
        rows.append(
            {
                "device": device.name,
                "target": target.label,
                "kernel": k.name,
                "shape_class": k.shape_class,
                "flops": k.flops,
                "bytes": k.bytes,
                "measured_s": run.measured_s,
                "roofline_s": roofline,
                "roofline_over_measured": roofline / run.measured_s,
                "max_rel_error": run.max_rel_error,
            }
        )
        print(
            f"{k.name:24s} {run.measured_s * 1e3:9.3f} ms  roofline {roofline * 1e3:9.3f} ms"
            f"  ({roofline / run.measured_s:5.2f})  rel err {run.max_rel_error:.1e}"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(args.out / "bench_cuda.csv", index=False)
    print(f"wrote {args.out / 'bench_cuda.csv'}")


if __name__ == "__main__":
    main()
