"""Write a replay's tables and figures into a run directory."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from hetopt.atomic import write_csv_atomic, write_text_atomic
from hetopt.plotting import save_figure, subplots
from hetopt.replay.engine import ReplayResult


def write_replay(result: ReplayResult, run_dir: Path) -> list[str]:
    """Write the replay's tables and figures; returns the file names written.

    Always requests.csv, stages.csv, pools.csv, utilisation.csv, capacity.csv, replay.json and
    replay.png; with a controller or failures also decisions.csv, failures.csv and
    orchestration.png.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    tables = {
        "requests": result.requests,
        "stages": result.stages,
        "pools": result.pools,
        "utilisation": result.utilisation,
        "capacity": result.capacity,
    }
    dynamic = len(result.decisions) or len(result.failures)
    if dynamic:
        tables.update(decisions=result.decisions, failures=result.failures)
    for name, frame in tables.items():
        write_csv_atomic(run_dir / f"{name}.csv", frame)
    summary = _jsonable(result.summary)
    write_text_atomic(run_dir / "replay.json", json.dumps(summary, indent=2))

    fig, (ax_cdf, ax_util) = subplots(1, 2, figsize=(13, 5.5))
    req = result.requests
    warmup_s = result.summary.get("warmup_s") or 0.0
    done = req[(req["status"] == "completed") & (req["arrival_s"] >= warmup_s)]
    for col, label in (
        ("e2e_s", "end-to-end (replay)"),
        ("predicted_s", "planner, same path"),
        ("ttft_s", "TTFT (replay)"),
    ):
        values = np.sort(done[col].dropna().to_numpy(dtype=float))
        if len(values):
            ax_cdf.plot(values, np.arange(1, len(values) + 1) / len(values), label=label)
    sla = result.summary.get("sla_e2e_s")
    if sla:
        ax_cdf.axvline(sla, color="r", linestyle="--", label=f"end-to-end SLA {sla:g} s")
    ttft_sla = result.summary.get("sla_ttft_s")
    if ttft_sla:
        ax_cdf.axvline(
            ttft_sla, color="purple", linestyle=":", label=f"TTFT SLA {ttft_sla * 1e3:g} ms"
        )
    ax_cdf.set_xscale("log")
    ax_cdf.set_xlabel("seconds")
    ax_cdf.set_ylabel("fraction of requests")
    ax_cdf.set_title("Latency CDF" + (f" (after the {warmup_s:g} s warm-up)" if warmup_s else ""))
    # below the axes: inside it covered the TTFT curve
    ax_cdf.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3)
    ax_cdf.grid(alpha=0.3)
    util = result.utilisation
    for pool, group in util.groupby("pool", sort=False):
        smooth = group["busy_fraction"].rolling(10, min_periods=1).mean()
        ax_util.plot(group["time_s"], smooth, label=str(pool))
    ax_util.set_xlabel("simulated time (s)")
    ax_util.set_ylabel("busy fraction (10-sample mean)")
    ax_util.set_ylim(0, 1.05)
    ax_util.set_title("Pool utilisation over time")
    ax_util.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
    ax_util.grid(alpha=0.3)
    save_figure(fig, run_dir / "replay.png")
    written = [f"{name}.csv" for name in tables] + ["replay.json", "replay.png"]
    if dynamic:
        _orchestration_figure(result, run_dir / "orchestration.png")
        written.append("orchestration.png")
    return written


def _jsonable(value: Any) -> Any:
    """``value`` with NumPy scalars made plain and NaN or infinite numbers made null.

    Examples
    --------
    >>> _jsonable({"a": np.float64("nan"), "b": [{"c": np.int64(3), "d": 0.5}], "e": None})
    {'a': None, 'b': [{'c': 3, 'd': 0.5}], 'e': None}
    """
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


def _orchestration_figure(result: ReplayResult, path: Path, bin_s: float = 60.0) -> None:
    """Load and capacity held over time (top), SLA attainment per arrival bin (bottom)."""
    fig, (ax_cap, ax_sla) = subplots(2, 1, figsize=(11, 6.5), sharex=True)
    cap = result.capacity
    held = cap.groupby("time_s")["devices_held"].sum()
    rate = cap.groupby("time_s")["rate_per_s"].first()
    ax_cap.step(held.index, held.to_numpy(), where="post", color="C0", label="devices held")
    ax_cap.set_ylabel("devices held (all pools)", color="C0")
    ax_rate = ax_cap.twinx()
    sample_s = float(rate.index[1] - rate.index[0]) if len(rate) > 1 else 1.0
    window = max(round(bin_s / sample_s), 1)
    ax_rate.plot(
        rate.index,
        rate.rolling(window, min_periods=1).mean(),
        color="C1",
        alpha=0.8,
        label="arrival rate",
    )
    ax_rate.set_ylabel("arrivals per s", color="C1")
    ax_cap.set_title("Capacity held against load")
    ax_cap.grid(alpha=0.3)
    req = result.requests
    req = req[req["arrival_s"] >= (result.summary.get("warmup_s") or 0.0)]
    if result.summary.get("sla_missed") is not None:  # some bound is set
        bins = (req["arrival_s"] // bin_s) * bin_s
        attained = req["meets_sla"].groupby(bins).mean()
        ax_sla.plot(attained.index, attained.to_numpy(), marker=".", color="C2")
        ax_sla.set_ylim(-0.02, 1.02)
    ax_sla.set_ylabel(f"SLA attainment (every bound) per {bin_s:g} s")
    ax_sla.set_xlabel("simulated time (s)")
    ax_sla.grid(alpha=0.3)
    for f in result.failures.itertuples():
        for ax in (ax_cap, ax_sla):
            ax.axvline(f.at_s, color="r", linestyle="--", alpha=0.7)
            if not np.isnan(f.recovered_at_s):
                ax.axvspan(f.at_s, f.recovered_at_s, color="r", alpha=0.08)
        ax_sla.annotate(
            f"{f.devices_failed} x {f.device} fail", (f.at_s, 0.05), color="r", fontsize=8
        )
    save_figure(fig, path)
