"""Benchmark: hetopt's best tokens/s per GPU within the SLA against aiconfigurator's own search.

For each (GPU, model, precision) at 1,024 input / 256 output tokens under TTFT <= 250 ms and
TBT <= 20 ms (the paper's interactive SLA):

* **aiconfigurator**: its own SLA search (``aiconfigurator.cli.api.cli_default`` on 16 GPUs,
  TensorRT-LLM, aggregated and disaggregated serving; its ``best_throughputs`` are output
  tokens/s per GPU, prefill and decode GPUs counted);
* **hetopt**: the cost table hetopt plans with (``costs.model=calibrated`` with its SLA guard,
  and ``roofline``) for the same call on that GPU alone: the best prefill configuration's
  requests/s per GPU ``P`` and the best decode configuration's tokens/s per GPU ``D`` that meet
  the SLA, combined as disaggregated serving with the two phases' GPUs in proportion to their
  load: ``1 / (1 / D + 1 / (P x output tokens))`` tokens/s per GPU (no whole-replica rounding);
* **hetopt under aiconfigurator's conventions**: the same calibrated table searched the way
  aiconfigurator searches (TTFT x1.8 for queueing, rate-matching derating 0.9 / 0.92, whole
  workers on at most 16 GPUs), which separates the cost model's difference from the search's.

Writes ``benchmarks/results/bench_sla_search.csv`` and ``.png`` and prints the ratio of each
hetopt figure to aiconfigurator's best (disaggregated or aggregated) and their geometric mean.
Needs the calibration extra. About 3 minutes on 2 cores.

Run: ``python benchmarks/bench_sla_search.py``
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from hetopt.costs import aic  # noqa: E402
from hetopt.costs.table import CostParams  # noqa: E402
from hetopt.hardware.spec import HardwareSpec  # noqa: E402
from hetopt.pipeline import PlanRequest, plan_agent  # noqa: E402
from hetopt.report.fidelity import HETOPT_MODEL, geomean_abs_log  # noqa: E402
from hetopt.report.studies import llm_workload  # noqa: E402
from hetopt.sla import Sla  # noqa: E402

RESULTS = Path(__file__).parent / "results"
ISL, OSL, TTFT_S, TBT_S = 1024, 256, 0.25, 0.020
DEVICES = ("H100", "H200", "B200")
CALLS = (
    ("llama-3.1-8b", "fp16", "meta-llama/Meta-Llama-3.1-8B"),
    ("llama-3.1-70b", "fp16", "meta-llama/Meta-Llama-3.1-70B"),
    ("llama-3.1-70b", "fp8", "nvidia/Llama-3.1-70B-Instruct-FP8"),
)
"""(hetopt model, precision, the checkpoint aiconfigurator searches: its search takes the
precision from the checkpoint's quantisation config)."""


AIC_TTFT_FACTOR, AIC_PREFILL_FACTOR, AIC_DECODE_FACTOR = 1.8, 0.9, 0.92
"""aiconfigurator 0.12's own conventions (``aiconfigurator/sdk/picking.py``): a prefill step
must meet TTFT after x1.8 for queueing, and rate matching derates prefill and decode
throughput to 0.9 and 0.92."""


def _feasible(
    device: str, model: str, precision: str, cost_model: str, ttft_s: float
) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    workload = llm_workload(HETOPT_MODEL[model], precision, ISL, OSL)
    try:
        out = plan_agent(
            PlanRequest(
                workload,
                hardware=HardwareSpec(devices=(device,)),
                sla=Sla(ttft_s=ttft_s, tbt_s=TBT_S),
                costs=CostParams(model=cost_model),
                baselines=(),
            )
        )
    except Exception:  # no configuration meets the SLA on this GPU
        return None
    t = out.table.frame
    ok = t[t["feasible"] & t["exclusive"]]
    pre, dec = ok[ok["op"] == "llm.prefill"], ok[ok["op"] == "llm.decode"]
    return None if pre.empty or dec.empty else (pre, dec)


def hetopt_tok_s_per_gpu(device: str, model: str, precision: str, cost_model: str) -> float:
    """Disaggregated tokens/s per GPU from hetopt's own cost table for this call and GPU."""
    got = _feasible(device, model, precision, cost_model, TTFT_S)
    if got is None:
        return math.nan
    pre, dec = got
    p = float((pre["requests_per_s"] / pre["devices_per_replica"]).max())
    d = float((dec["requests_per_s"] * OSL / dec["devices_per_replica"]).max())
    return 1.0 / (1.0 / d + 1.0 / (p * OSL))


def hetopt_aic_conventions(device: str, model: str, precision: str, total_gpus: int = 16) -> float:
    """The calibrated cost table searched under aiconfigurator's conventions: TTFT x1.8,
    rate-matching derating, whole prefill and decode workers on at most ``total_gpus``."""
    got = _feasible(device, model, precision, "calibrated", TTFT_S / AIC_TTFT_FACTOR)
    if got is None:
        return math.nan
    pre, dec = got
    best = 0.0
    for p in pre.itertuples():
        for d in dec.itertuples():
            dp, dd = int(p.devices_per_replica), int(d.devices_per_replica)
            for x in range(1, total_gpus // dp + 1):
                y_max = (total_gpus - x * dp) // dd
                for y in range(1, y_max + 1):
                    tokens = (
                        min(
                            x * p.requests_per_s * AIC_PREFILL_FACTOR,
                            y * d.requests_per_s * AIC_DECODE_FACTOR,
                        )
                        * OSL
                    )
                    best = max(best, tokens / (x * dp + y * dd))
    return best or math.nan


def main() -> None:
    if not aic.available():
        raise SystemExit("needs the calibration extra: pip install -e '.[calibration]'")
    logging.disable(logging.WARNING)
    from aiconfigurator.cli.api import cli_default

    rows = []
    for device, (model, precision, checkpoint) in itertools.product(DEVICES, CALLS):
        start = time.perf_counter()
        try:
            res = cli_default(
                checkpoint,
                16,
                aic.SYSTEMS[device],
                backend_version=aic.database_version(device),
                isl=ISL,
                osl=OSL,
                ttft=TTFT_S * 1e3,
                tpot=TBT_S * 1e3,
            )
            best = {k: float(v) for k, v in res.best_throughputs.items()}
        except Exception as exc:  # a search that finds nothing
            print(f"{device} {model} {precision}: aiconfigurator found nothing ({exc})")
            best = {}
        rows.append(
            dict(
                device=device,
                model=model,
                precision=precision,
                aic_agg=best.get("agg", math.nan),
                aic_disagg=best.get("disagg", math.nan),
                hetopt_calibrated=hetopt_tok_s_per_gpu(device, model, precision, "calibrated"),
                hetopt_roofline=hetopt_tok_s_per_gpu(device, model, precision, "roofline"),
                hetopt_aic_conventions=hetopt_aic_conventions(device, model, precision),
                aic_search_s=time.perf_counter() - start,
            )
        )
        print(rows[-1])
    frame = pd.DataFrame(rows)
    frame["aic_best"] = frame[["aic_agg", "aic_disagg"]].max(axis=1)
    for col in ("hetopt_calibrated", "hetopt_roofline", "hetopt_aic_conventions"):
        frame[f"{col}_ratio"] = frame[col] / frame["aic_best"]
        frame[f"{col}_ratio_disagg"] = frame[col] / frame["aic_disagg"]
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / "bench_sla_search.csv", index=False)
    for col in ("hetopt_calibrated", "hetopt_roofline", "hetopt_aic_conventions"):
        print(
            f"{col}: geometric-mean |ratio| to aiconfigurator's best "
            f"{geomean_abs_log(frame[f'{col}_ratio'].to_numpy(dtype=float)):.3f}, to its "
            f"disaggregated best "
            f"{geomean_abs_log(frame[f'{col}_ratio_disagg'].to_numpy(dtype=float)):.3f}"
        )
    fig, ax = plt.subplots(figsize=(10, 4.5))
    x = np.arange(len(frame))
    for k, (col, label) in enumerate(
        (
            ("aic_disagg", "aiconfigurator disaggregated"),
            ("aic_agg", "aiconfigurator aggregated"),
            ("hetopt_aic_conventions", "hetopt calibrated, aiconfigurator's conventions"),
            ("hetopt_calibrated", "hetopt calibrated"),
            ("hetopt_roofline", "hetopt roofline"),
        )
    ):
        ax.bar(x + (k - 2) * 0.16, frame[col], 0.16, label=label)
    ax.set_xticks(
        x,
        [
            f"{r.device} {r.model.replace('llama-3.1-', '')} {r.precision}"
            for r in frame.itertuples()
        ],
        rotation=45,
        ha="right",
        fontsize=8,
    )
    ax.set_ylabel("output tokens/s per GPU within the SLA")
    ax.set_title(f"TTFT <= {TTFT_S * 1e3:g} ms, TBT <= {TBT_S * 1e3:g} ms, {ISL} in / {OSL} out")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "bench_sla_search.png", dpi=110)


if __name__ == "__main__":
    main()
