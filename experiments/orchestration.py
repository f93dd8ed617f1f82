"""Dynamic orchestration study: router policies, autoscaling under a diurnal day, a failure drill.

Three replays of shipped workloads, each against its static counterpart:

* **routers**: the coding agent (a tool loop of up to six coder passes) at 4 req/s through the
  ``least_loaded``, ``kv_aware`` and ``random`` routers;
* **autoscaling**: the voice agent planned at 6 req/s, fed a compressed day (diurnal, 4x peak
  to trough over ``--day-s``), with the plan's static pools, with the re-planning controller,
  and priced against a static plan sized for the peak;
* **failure**: one of the voice agent's decode devices fails after 5 minutes, with and
  without the controller.

Writes ``orchestration.csv`` (one row per replay) and ``orchestration.png`` into ``--out`` and
prints the table. Run: ``python experiments/orchestration.py [--day-s 3600]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from hetopt.pipeline import PlanOutcome, PlanRequest, plan_agent  # noqa: E402
from hetopt.plotting import save_figure  # noqa: E402
from hetopt.replay.arrivals import ArrivalSpec  # noqa: E402
from hetopt.replay.control import ControllerConfig, FailureSpec, RouterConfig  # noqa: E402
from hetopt.replay.engine import ReplayConfig, ReplayResult, replay  # noqa: E402
from hetopt.sla import Sla  # noqa: E402
from hetopt.workloads import load_workload  # noqa: E402


def _plan(name: str, rate: float, sla: Sla) -> PlanOutcome:
    workload = load_workload(name).with_rate(rate)
    return plan_agent(PlanRequest(workload, sla=sla, baselines=()))


def _row(study: str, variant: str, result: ReplayResult) -> dict[str, Any]:
    s = result.summary
    keys = (
        "arrived",
        "completed",
        "dropped",
        "affected_by_failures",
        "e2e_p50_s",
        "e2e_p99_s",
        "ttft_p99_s",
        "sla_attainment",
        "prefix_hits",
        "device_hours_held",
        "capacity_usd",
        "static_plan_usd",
        "peak_static_usd",
        "usd_per_request",
        "usd_per_mtok",
        "wall_s",
    )
    return {"study": study, "variant": variant, **{k: s[k] for k in keys}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--day-s", type=float, default=3600.0, help="length of the compressed day")
    parser.add_argument("--out", type=Path, default=Path("outputs/orchestration"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows, series = [], {}
    start = time.perf_counter()

    coding = _plan("coding_agent", 4.0, Sla())
    for policy in ("least_loaded", "kv_aware", "random"):
        cfg = ReplayConfig(
            arrivals=ArrivalSpec(rate_per_s=4.0),
            duration_s=900,
            warmup_s=60,
            router=RouterConfig(policy=policy, max_wait_s=1e9),
        )
        rows.append(
            _row(
                "routers",
                policy,
                replay(coding.plan, coding.problem, coding.table.frame, cfg, graph=coding.graph),
            )
        )
        print(f"routers/{policy} done")

    voice = _plan("voice_agent", 6.0, Sla(e2e_s=15.0))
    day = ArrivalSpec(kind="diurnal", rate_per_s=6.0, peak_to_trough=4.0, period_s=args.day_s)
    for variant, controller in (
        ("static plan", ControllerConfig()),
        (
            "controller",
            ControllerConfig(
                enabled=True,
                interval_s=60,
                window_s=120,
                margin=0.15,
                provision_s=60,
                target_utilization=0.8,
            ),
        ),
    ):
        cfg = ReplayConfig(arrivals=day, duration_s=args.day_s, warmup_s=60, controller=controller)
        result = replay(voice.plan, voice.problem, voice.table.frame, cfg, graph=voice.graph)
        rows.append(_row("autoscaling", variant, result))
        series[("autoscaling", variant)] = result
        print(f"autoscaling/{variant} done")

    slow = _plan("voice_agent", 2.0, Sla(e2e_s=15.0))
    placement = slow.plan.placement.set_index("operator")
    decode_device = str(placement.loc["llm.decode", "device"])  # the plan's decode device type
    failure = (FailureSpec(decode_device, 1, 300.0),)
    for variant, enabled in (("no controller", False), ("controller", True)):
        cfg = ReplayConfig(
            arrivals=ArrivalSpec(rate_per_s=2.0),
            duration_s=900,
            warmup_s=30,
            failures=failure,
            controller=ControllerConfig(enabled=enabled),
        )
        result = replay(slow.plan, slow.problem, slow.table.frame, cfg, graph=slow.graph)
        row = _row("failure", variant, result)
        f = result.failures.iloc[0]
        row.update(
            attainment_before=f["attainment_before"],
            attainment_during=f["attainment_during"],
            attainment_after=f["attainment_after"],
            recovered_at_s=f["recovered_at_s"],
        )
        rows.append(row)
        series[("failure", variant)] = result
        print(f"failure/{variant} done")

    table = pd.DataFrame(rows)
    table.to_csv(args.out / "orchestration.csv", index=False)
    with pd.option_context(
        "display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4g}".format
    ):
        print(table.drop(columns=["wall_s"]).to_string(index=False))
    print(f"total {time.perf_counter() - start:.1f} s")

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    routers = table[table["study"] == "routers"]
    axes[0].bar(routers["variant"], routers["e2e_p50_s"], label="p50")
    axes[0].bar(
        routers["variant"],
        routers["e2e_p99_s"] - routers["e2e_p50_s"],
        bottom=routers["e2e_p50_s"],
        alpha=0.5,
        label="p99",
    )
    axes[0].set_ylabel("end-to-end latency (s)")
    axes[0].set_title("Coding agent @4 req/s: router policy")
    axes[0].legend()
    for variant in ("static plan", "controller"):
        cap = series[("autoscaling", variant)].capacity.groupby("time_s")["devices_held"].sum()
        axes[1].step(cap.index, cap.to_numpy(), where="post", label=variant)
    rate = series[("autoscaling", "controller")].capacity.groupby("time_s")["rate_per_s"].first()
    twin = axes[1].twinx()
    twin.plot(rate.index, rate.rolling(60, min_periods=1).mean(), color="grey", alpha=0.6)
    twin.set_ylabel("arrivals per s (grey)")
    axes[1].set_ylabel("devices held")
    axes[1].set_title("Voice agent, compressed day")
    axes[1].legend(loc="lower left")
    for variant in ("no controller", "controller"):
        req = series[("failure", variant)].requests
        bins = (req["arrival_s"] // 30) * 30
        attained = req["meets_sla"].groupby(bins).mean()  # every bound, as replay.json counts
        axes[2].plot(attained.index, attained.to_numpy(), marker=".", label=variant)
    axes[2].axvline(300, color="r", linestyle="--")
    axes[2].set_ylabel("SLA attainment per 30 s (every bound)")
    axes[2].set_xlabel("simulated time (s)")
    axes[2].set_title(f"1 x {decode_device} (decode) fails at 300 s")
    axes[2].legend()
    save_figure(fig, args.out / "orchestration.png")
    print(f"wrote {args.out / 'orchestration.csv'} and {args.out / 'orchestration.png'}")


if __name__ == "__main__":
    main()
