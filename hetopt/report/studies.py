"""Paper studies as library functions returning tidy frames (no files, no plotting).

* :func:`cost_efficiency` - Figure 4: list price per unit of each resource.
* :func:`pair_study` - Figures 8 and 9: every ordered prefill::decode accelerator pair planned by
  the same optimiser with the pair fixed, and the joint optimum with the pair free.
* :func:`kv_link_table` - §5.2: how long an input a link carries within the SLA (formulas 1-3).
* :func:`pareto_frontier` - cheapest plan against the TTFT and TBT bounds.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from hetopt.costs.table import CostParams, CostTable, build_cost_table
from hetopt.costs.tco import TcoParams, device_tco
from hetopt.errors import InfeasibleError
from hetopt.graph.architectures import get_architecture
from hetopt.graph.decompose import OperatorGraph, decompose
from hetopt.graph.operators import OpKind
from hetopt.hardware import HardwareCatalog, load_catalog
from hetopt.models.evaluate import evaluate_choice, held_devices
from hetopt.problem import SECONDS_PER_HOUR, PlacementProblem, build_problem
from hetopt.sla import Sla
from hetopt.solvers import SolverOptions, SolveStatus, solve
from hetopt.workloads import Workload

LATENCY_SLA = Sla(ttft_s=0.25, tbt_s=0.02)
THROUGHPUT_SLA = Sla(ttft_s=None, tbt_s=None)
# Offline serving may batch far deeper than interactive serving; memory is the limit.
THROUGHPUT_COSTS = CostParams(
    prefill_batch_sizes=(1, 2, 4, 8, 16, 32, 64),
    decode_batch_sizes=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
PAPER_PAIRS = (
    ("H100", "H100"),
    ("B200", "B200"),
    ("B200", "Gaudi3"),
    ("H100", "Gaudi3"),
    ("B200", "H100"),
    ("Gaudi3", "Gaudi3"),
)
Progress = Callable[[str], None]


def accelerators(catalog: HardwareCatalog | None = None) -> HardwareCatalog:
    """The catalog's accelerators (every device that is not a CPU)."""
    catalog = catalog or load_catalog()
    return catalog.select([d.name for d in catalog.devices if d.kind != "cpu"])


def cost_efficiency(catalog: HardwareCatalog | None = None) -> pd.DataFrame:
    """Figure 4: purchase price per GB/s, per dense fp16 TFLOP, per dense fp8 TFLOP, per GB."""
    rows = []
    for d in accelerators(catalog).devices:
        rows.append(
            {
                "device": d.name,
                "vendor": d.vendor,
                "price_usd": d.price_usd,
                "mem_bw_gb_per_s": d.mem_bw_gb_per_s,
                "fp16_tflops": d.fp16_tflops,
                "fp8_tflops": d.fp8_tflops if d.fp8_tflops else math.nan,
                "mem_gb": d.mem_gb,
                "usd_per_gb_per_s": d.price_usd / d.mem_bw_gb_per_s,
                "usd_per_fp16_tflop": d.price_usd / d.fp16_tflops,
                "usd_per_fp8_tflop": d.price_usd / d.fp8_tflops if d.fp8_tflops else math.nan,
                "usd_per_gb": d.price_usd / d.mem_gb,
            }
        )
    return pd.DataFrame(rows)


def llm_workload(
    model: str,
    precision: str,
    input_tokens: int,
    output_tokens: int,
    request_rate_per_s: float = 100.0,
) -> Workload:
    """An agent with one LLM call: the paper's §5 evaluation setting."""
    name = f"{model}-{precision}-{input_tokens}-{output_tokens}"
    data = {
        "name": name,
        "request_rate_per_s": request_rate_per_s,
        "nodes": {
            "llm": {
                "kind": "model_execution",
                "model": model,
                "precision": precision,
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
            }
        },
        "edges": [],
    }
    return Workload.from_mapping(data, source=name)


def _problem(
    graph: OperatorGraph,
    table: CostTable,
    catalog: HardwareCatalog,
    sla: Sla,
    rate: float,
    costs: CostParams,
    tco: TcoParams,
) -> PlacementProblem:
    dev_tco = {d.name: device_tco(d, tco) for d in catalog.devices}
    mem = {d.name: d.mem_bytes for d in catalog.devices}
    return build_problem(graph, table, dev_tco, sla, rate, costs, mem)


def _solved_row(
    problem: PlacementProblem,
    table: CostTable,
    options: SolverOptions,
    tokens: int,
    kv_transfer_s: float = 0.0,
    sla: Sla | None = None,
) -> dict[str, Any]:
    res = solve(problem, options)
    if res.status is not SolveStatus.OPTIMAL or res.choice is None:
        return {"status": str(res.status), "reason": res.message, "solve_s": res.runtime_s}
    ev = evaluate_choice(problem, res.choice, res.pool_counts)
    row: dict[str, Any] = {
        "status": "optimal",
        "reason": "",
        "gap": res.gap,
        "solve_s": res.runtime_s,
        "tco_usd_per_h": ev.tco_usd_per_h,
        "usd_per_mtok": ev.tco_usd_per_h
        / (problem.request_rate_per_s * SECONDS_PER_HOUR * tokens)
        * 1e6,
    }
    held = held_devices(problem, res.choice, ev.key_counts)
    for i, o in enumerate(res.choice):
        phase = problem.ops[i].split(".")[-1]
        rec = table.frame.loc[problem.opt_row[o]]
        row[f"{phase}_device"] = problem.devices[problem.opt_device[o]]
        row[f"{phase}_config"] = problem.opt_config[o]
        row[f"{phase}_devices"] = int(held[i])
        row[f"{phase}_step_ms"] = float(rec["step_s"]) * 1e3
    if "prefill_step_ms" in row and "decode_step_ms" in row:
        # Disaggregated serving: the KV cache crosses the link before the second token.
        row["kv_transfer_ms"] = kv_transfer_s * 1e3
        row["second_token_ms"] = (
            row["prefill_step_ms"] + row["kv_transfer_ms"] + row["decode_step_ms"]
        )
        if sla is not None and sla.ttft_s is not None and sla.tbt_s is not None:
            row["second_token_within_sla"] = bool(
                row["second_token_ms"] <= (sla.ttft_s + sla.tbt_s) * 1e3 + 1e-9
            )
    return row


def pair_study(
    model: str,
    precision: str,
    input_tokens: int,
    output_tokens: int,
    sla_mode: str,
    catalog: HardwareCatalog | None = None,
    tco: TcoParams | None = None,
    request_rate_per_s: float = 100.0,
    link_gbit_per_s: float = 400.0,
    options: SolverOptions | None = None,
    cost_model: str = "calibrated",
) -> pd.DataFrame:
    """Plan every ordered prefill::decode pair of accelerators, and the free joint optimum.

    Each pair is the placement problem restricted to prefill on A and decode on B, solved to
    proven optimality; the row ``pair = "optimal"`` is the same problem with the pair free,
    which must cost exactly the cheapest pair. TCO benefit is relative to H100::H100.

    Parameters
    ----------
    model, precision, input_tokens, output_tokens
        The LLM call (e.g. ``llama-3-70b``, ``fp8``, 512, 4096).
    sla_mode
        ``latency`` (TTFT <= 250 ms, TBT <= 20 ms) or ``throughput`` (no latency bound: the
        cheapest tokens, i.e. the most tokens/s per $).
    request_rate_per_s
        High enough that whole-device rounding barely matters (the paper's "continuous workload
        with unconstrained hardware availability").

    link_gbit_per_s
        Prefill-to-decode link: the KV cache of one request crosses it before the second token
        (``kv_transfer_ms``, ``second_token_ms``; checked against TTFT + TBT under the latency
        SLA in ``second_token_within_sla``).
    cost_model
        ``calibrated`` (the fitted step model) or ``roofline`` (``costs.model``).

    Returns
    -------
    pandas.DataFrame
        One row per pair, with status, reason (why a pair is impossible), TCO, $/M tokens,
        benefit, the chosen configuration and device count per phase, and the second-token
        latency.
    """
    catalog = accelerators(catalog)
    tco = tco or TcoParams()
    options = options or SolverOptions(backend="highs", time_limit_s=30)
    sla = LATENCY_SLA if sla_mode == "latency" else THROUGHPUT_SLA
    costs = dataclasses.replace(
        CostParams() if sla_mode == "latency" else THROUGHPUT_COSTS,
        link_gbit_per_s=link_gbit_per_s,
        model=cost_model,
    )
    workload = llm_workload(model, precision, input_tokens, output_tokens, request_rate_per_s)
    graph = decompose(workload.graph)
    table = build_cost_table(graph, catalog, sla, costs)
    tokens = input_tokens + output_tokens
    kv_s = (
        get_architecture(model).kv_bytes_per_token(precision)
        * input_tokens
        / costs.link_bw_bytes_per_s
        + costs.link_latency_s
    )
    base = {
        "model": model,
        "precision": precision,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "sla": sla_mode,
    }
    rows = []
    try:
        problem = _problem(graph, table, catalog, sla, request_rate_per_s, costs, tco)
    except InfeasibleError as exc:
        return pd.DataFrame(
            [{**base, "pair": "optimal", "status": "infeasible", "reason": str(exc)}]
        )
    rows.append(
        {**base, "pair": "optimal", **_solved_row(problem, table, options, tokens, kv_s, sla)}
    )
    prefill_op, decode_op = problem.ops.index("llm.prefill"), problem.ops.index("llm.decode")
    for a, b in itertools.product(catalog.names, repeat=2):
        ja, jb = catalog.names.index(a), catalog.names.index(b)
        keep = ((problem.opt_op == prefill_op) & (problem.opt_device == ja)) | (
            (problem.opt_op == decode_op) & (problem.opt_device == jb)
        )
        row: dict[str, Any] = {**base, "pair": f"{a}::{b}", "prefill_device": a, "decode_device": b}
        missing = [
            (phase, dev)
            for phase, op, dev in (("prefill", prefill_op, a), ("decode", decode_op, b))
            if not keep[problem.opt_op == op].any()
        ]
        if missing:
            phase, dev = missing[0]
            reason = table.explain_op(f"llm.{phase}").split("; ")
            why = next((r for r in reason if r.startswith(f"{dev}:")), f"{dev}: no option")
            row.update(status="infeasible", reason=f"{phase} {why}")
        else:
            row.update(_solved_row(problem.restrict(keep), table, options, tokens, kv_s, sla))
        rows.append(row)
    frame = pd.DataFrame(rows)
    ref = frame.loc[frame["pair"] == "H100::H100", "tco_usd_per_h"]
    ref_cost = float(ref.iloc[0]) if len(ref) and pd.notna(ref.iloc[0]) else math.nan
    frame["benefit_vs_h100"] = ref_cost / frame["tco_usd_per_h"]
    return frame


def figure_study(
    input_tokens: int, output_tokens: int, progress: Progress | None = None, **kwargs: Any
) -> pd.DataFrame:
    """Figures 8/9: :func:`pair_study` for Llama-3 8B/70B at fp16/fp8 under both SLAs."""
    frames = []
    for model, precision, sla in itertools.product(
        ("llama-3-8b", "llama-3-70b"), ("fp16", "fp8"), ("latency", "throughput")
    ):
        if progress:
            progress(f"{model} {precision} {input_tokens}/{output_tokens} {sla} SLA")
        frames.append(pair_study(model, precision, input_tokens, output_tokens, sla, **kwargs))
    return pd.concat(frames, ignore_index=True)


def serving_table(
    models: Sequence[str] = ("llama-3-8b", "llama-3-70b"),
    precisions: Sequence[str] = ("fp16", "fp8"),
    lengths: Sequence[tuple[int, int]] = ((512, 4096), (4096, 512)),
    sla: Sla = LATENCY_SLA,
    catalog: HardwareCatalog | None = None,
    costs: CostParams | None = None,
) -> pd.DataFrame:
    """Per device and phase: the most cost-effective configuration within the SLA.

    For every model, precision, (input, output) lengths, accelerator and phase, the row with the
    highest throughput per device among those that fit memory and meet TTFT (prefill) or TBT
    (decode): its tp, pp, largest useful batch, step time and tokens/s per device. A device with
    no such configuration keeps the reason.
    """
    catalog = accelerators(catalog)
    costs = costs or CostParams()
    rows = []
    for model, precision, (isl, osl) in itertools.product(models, precisions, lengths):
        workload = llm_workload(model, precision, isl, osl)
        graph = decompose(workload.graph)
        frame = build_cost_table(graph, catalog, sla, costs).frame
        for (op, device), group in frame.groupby(["op", "device"], sort=False):
            phase = str(op).split(".")[-1]
            base = {
                "model": model,
                "precision": precision,
                "input_tokens": isl,
                "output_tokens": osl,
                "device": device,
                "phase": phase,
            }
            ok = group[group["feasible"]]
            if ok.empty:
                best = group.iloc[int(group["latency_s"].fillna(math.inf).to_numpy().argmin())]
                rows.append({**base, "feasible": False, "reason": best["reason"]})
                continue
            per_device = ok["requests_per_s"] / ok["devices_per_replica"]
            best = ok.loc[per_device.idxmax()]
            tokens = isl if phase == "prefill" else max(osl - 1, 1)
            rows.append(
                {
                    **base,
                    "feasible": True,
                    "reason": "",
                    "tp": int(best["tp"]),
                    "pp": int(best["pp"]),
                    "batch": int(best["batch"]),
                    "step_ms": float(best["step_s"]) * 1e3,
                    "tokens_per_s_per_device": float(per_device.max()) * tokens,
                    "mem_gb_per_device": float(best["mem_per_device_bytes"]) / 1e9,
                    "binding": best["binding"],
                }
            )
    return pd.DataFrame(rows)


def kv_link_table(
    models: Sequence[str] = ("llama-3-8b", "llama-3-70b"),
    precisions: Sequence[str] = ("fp16", "fp8"),
    links_gbit_per_s: Sequence[float] = (100, 200, 400, 800),
    ttft_s: float = 0.25,
    tbt_s: float = 0.02,
    prefill_devices: int = 1,
    decode_devices: int = 1,
) -> pd.DataFrame:
    """§5.2: the longest input whose KV cache a link moves within the SLA (formulas 1-3).

    Formula (3) gives the KV cache of one request, ``2 L d (n_kv / n_heads) ISL BPE``. Formula (1)
    asks the link to carry it while the prompt is prefilled, within TTFT across
    ``prefill_devices`` links: the longest such input is
    ``ISL_max = TTFT x N_prefill x link / (2 L d (n_kv/n_heads) BPE)``. Formula (2)'s peak ingress
    at 32K tokens is reported beside it (it needs many decode devices or amortisation).
    """
    rows = []
    for model, precision, link in itertools.product(models, precisions, links_gbit_per_s):
        arch = get_architecture(model)
        per_token = arch.kv_bytes_per_token(precision)
        link_bytes = link * 1e9 / 8
        max_isl = int(ttft_s * prefill_devices * link_bytes / per_token)
        kv_32k = per_token * 32768
        rows.append(
            {
                "model": model,
                "precision": precision,
                "link_gbit_per_s": link,
                "kv_bytes_per_token": per_token,
                "max_input_tokens": max_isl,
                "meets_32k": max_isl >= 32768,
                "kv_transfer_ms_at_32k": kv_32k / link_bytes * 1e3,
                "egress_gbit_per_s_at_32k": kv_32k / (ttft_s * prefill_devices) * 8 / 1e9,
                "ingress_gbit_per_s_at_32k": kv_32k / (tbt_s * decode_devices) * 8 / 1e9,
            }
        )
    return pd.DataFrame(rows)


def pareto_frontier(
    workload: Workload,
    ttft_values_s: Sequence[float],
    tbt_values_s: Sequence[float],
    catalog: HardwareCatalog | None = None,
    tco: TcoParams | None = None,
    costs: CostParams | None = None,
    options: SolverOptions | None = None,
) -> pd.DataFrame:
    """Cheapest plan for every (TTFT, TBT) bound, and which points are Pareto-optimal.

    The cost table is built once without per-phase limits; each grid point keeps the rows that
    meet its bounds and is solved to proven optimality. A point is on the frontier when no other
    point is at least as cheap with bounds at least as tight.
    """
    catalog = catalog or load_catalog()
    tco = tco or TcoParams()
    costs = costs or CostParams()
    options = options or SolverOptions(backend="highs", time_limit_s=30)
    graph = decompose(workload.graph)
    table = build_cost_table(graph, catalog, THROUGHPUT_SLA, costs)
    frame = table.frame
    rate = workload.request_rate_per_s
    kind_of = {op.id: op.kind for op in graph.ops}
    row_kind = frame["op"].map(kind_of)
    is_prefill = (row_kind == OpKind.PREFILL).to_numpy(dtype=bool)
    is_decode = (row_kind == OpKind.DECODE).to_numpy(dtype=bool)
    step = frame["step_s"].to_numpy(dtype=float)
    rows = []
    for ttft, tbt in itertools.product(ttft_values_s, tbt_values_s):
        ok = frame["feasible"].to_numpy(dtype=bool).copy()
        ok &= ~(is_prefill & (step > ttft))
        ok &= ~(is_decode & (step > tbt))
        limited = CostTable(frame.assign(feasible=ok), table.devices)
        sla = Sla(ttft_s=ttft, tbt_s=tbt)
        row: dict[str, Any] = {"ttft_sla_s": ttft, "tbt_sla_s": tbt}
        try:
            problem = _problem(graph, limited, catalog, sla, rate, costs, tco)
        except InfeasibleError:
            rows.append({**row, "status": "infeasible", "tco_usd_per_h": math.nan})
            continue
        res = solve(problem, options)
        if res.choice is None:
            rows.append({**row, "status": str(res.status), "tco_usd_per_h": math.nan})
            continue
        ev = evaluate_choice(problem, res.choice, res.pool_counts)
        where = {
            problem.ops[i]: f"{problem.devices[problem.opt_device[o]]} {problem.opt_config[o]}"
            for i, o in enumerate(res.choice)
        }
        rows.append(
            {
                **row,
                "status": str(res.status),
                "tco_usd_per_h": ev.tco_usd_per_h,
                "prefill": "; ".join(v for k, v in where.items() if kind_of[k] is OpKind.PREFILL),
                "decode": "; ".join(v for k, v in where.items() if kind_of[k] is OpKind.DECODE),
            }
        )
    out = pd.DataFrame(rows)
    cost = out["tco_usd_per_h"].to_numpy(dtype=float)
    t1, t2 = out["ttft_sla_s"].to_numpy(), out["tbt_sla_s"].to_numpy()
    dominated = np.zeros(len(out), dtype=bool)
    for i in range(len(out)):
        if not math.isfinite(cost[i]):
            dominated[i] = True
            continue
        others = (
            (t1 <= t1[i])
            & (t2 <= t2[i])
            & (cost <= cost[i] + 1e-12)
            & ((t1 < t1[i]) | (t2 < t2[i]))
        )
        dominated[i] = bool(others.any())
    out["pareto"] = ~dominated
    return out
