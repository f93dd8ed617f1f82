"""``hetopt replay``: plan (or load a saved plan) and replay traffic through it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console

from hetopt.cli.config import replay_config_from, request_from_config
from hetopt.cli.outputs import RunDir
from hetopt.cli.render import titled_table
from hetopt.errors import InputError
from hetopt.graph.operators import tokens_per_request
from hetopt.inputs import load_yaml_input, read_text_input
from hetopt.models.evaluate import evaluate_choice
from hetopt.pipeline import PlanOutcome, plan_agent, prepare
from hetopt.plan.plan import make_plan
from hetopt.plan.verify import verify_plan
from hetopt.replay.engine import replay
from hetopt.replay.report import write_replay
from hetopt.solvers import SolveResult, SolveStatus


def load_saved_plan(plan_dir: Path) -> tuple[dict[str, Any], PlanOutcome]:
    """Rebuild a saved ``hetopt plan`` run from its ``config.yaml`` and ``plan.json``.

    The placement in plan.json is matched, operator by operator, to the options of the problem
    rebuilt from the saved config, then verified; a plan that does not match the graph or the
    catalog is a user error naming the operator.
    """
    cfg_file, plan_file = plan_dir / "config.yaml", plan_dir / "plan.json"
    if not plan_dir.is_dir():
        raise InputError(
            f"plan_dir={plan_dir}: not a directory; point it at a directory "
            f"written by `hetopt plan` (it holds config.yaml and plan.json)."
        )
    for f in (cfg_file, plan_file):
        if not f.is_file():
            raise InputError(
                f"plan_dir={plan_dir}: {f.name} is missing; point it at a "
                f"directory written by `hetopt plan`."
            )
    cfg = load_yaml_input(cfg_file, "saved config")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("workload"), dict):
        raise InputError(
            f"saved config {cfg_file}: not a hetopt run's config (it needs a "
            f"'workload' mapping and the config groups); the file is damaged or "
            f"from another tool. Re-run `hetopt plan` to write a new one."
        )
    absent = [g for g in ("hardware", "sla", "costs", "tco", "solver") if g not in cfg]
    if absent:
        raise InputError(
            f"saved config {cfg_file}: the group(s) {absent} are missing; the file "
            f"is truncated or damaged. Re-run `hetopt plan` to write a new one."
        )
    for group in ("hardware", "sla", "costs", "tco", "solver", "replay", "mlir"):
        if cfg.get(group) is not None and not isinstance(cfg[group], dict):
            raise InputError(
                f"saved config {cfg_file}: '{group}' must be a mapping, got "
                f"{cfg[group]!r}; the file is damaged. Re-run `hetopt plan`."
            )
    try:
        saved = json.loads(read_text_input(plan_file, "saved plan"))
        placement = {str(row["operator"]): row for row in saved["placement"]}
        pooled = {
            str(row["device"]): _whole(row["pooled"], f"devices[{k}].pooled")
            for k, row in enumerate(saved.get("devices", []))
        }
        solver = saved.get("solver", {})
        numbers = {
            key: _saved_number(solver.get(key), f"solver.{key}", default)
            for key, default in (
                ("objective", math.nan),
                ("bound", math.nan),
                ("gap", 0.0),
                ("runtime_s", 0.0),
            )
        }
    except json.JSONDecodeError as exc:
        raise InputError(
            f"saved plan {plan_file}: not valid JSON ({exc.msg} at line "
            f"{exc.lineno}, column {exc.colno}); the file is damaged. Re-run "
            f"`hetopt plan`."
        ) from None
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise InputError(
            f"saved plan {plan_file}: not a hetopt plan ({type(exc).__name__}: "
            f"{exc}). Re-run `hetopt plan` to write a new one."
        ) from None
    try:
        request = request_from_config(cfg)
        problem, table, graph, tco = prepare(request)
    except InputError as exc:
        raise InputError(f"saved config {cfg_file}: {exc}") from None
    choice = []
    for i, op in enumerate(problem.ops):
        if op not in placement:
            raise InputError(
                f"{plan_file}: operator '{op}' of the workload has no placement; "
                f"the plan was made for another graph."
            )
        want = placement[op]
        match = [
            o
            for o in problem.options_of(i)
            if problem.devices[problem.opt_device[o]] == want.get("device")
            and problem.opt_config[o] == want.get("config")
        ]
        if not match:
            raise InputError(
                f"{plan_file}: operator '{op}' is placed on "
                f"{want.get('device')} {want.get('config')}, which the current "
                f"catalog and cost model do not offer. Re-plan with `hetopt plan`."
            )
        choice.append(int(match[0]))
    counts = tuple(pooled.get(d, 0) for d in problem.devices)
    result = SolveResult(
        str(solver.get("backend", "saved")),
        SolveStatus.OPTIMAL,
        numbers["objective"],
        numbers["bound"],
        numbers["gap"],
        numbers["runtime_s"],
        tuple(choice),
        counts,
    )
    ev = evaluate_choice(problem, tuple(choice), counts)
    plan = make_plan(problem, table, result, ev, tco, tokens_per_request(graph))
    outcome = PlanOutcome(plan, problem, table, graph)
    issues = verify_plan(plan, outcome.inputs)
    if issues:
        raise InputError(
            f"{plan_file}: the saved plan does not verify against the current "
            f"catalog and graph: {'; '.join(issues)}."
        )
    return cfg, outcome


def _whole(value: Any, field: str) -> int:
    """A whole number from plan.json, or ValueError naming the field."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value != int(value)
        or value < 0
    ):
        raise ValueError(f"field {field} must be a whole number >= 0, got {value!r}")
    return int(value)


def _saved_number(value: Any, field: str, default: float) -> float:
    """A number (or null) from plan.json, or ValueError naming the field."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"field {field} must be a number or null, got {value!r}")
    return float(value)


def cmd_replay(cfg: dict[str, Any], run: RunDir, console: Console) -> int:
    """Plan (or load ``replay.plan_dir``), replay, print and write the results."""
    from hetopt.cli.outputs import write_outputs

    run_dir, out = run.path, run.out  # files go to out; run_dir is where they end up
    plan_dir = (cfg.get("replay") or {}).get("plan_dir")
    with console.status("planning...") as status:
        if plan_dir:
            _, outcome = load_saved_plan(Path(plan_dir))
        else:
            outcome = plan_agent(
                request_from_config(cfg), progress=lambda m: status.update(m + " ...")
            )
            write_outputs(outcome, cfg, out)
        config = replay_config_from(cfg, outcome.plan.request_rate_per_s)
        result = replay(
            outcome.plan,
            outcome.problem,
            outcome.table.frame,
            config,
            progress=lambda m: status.update(m + " ..."),
            graph=outcome.graph,
        )
    written = write_replay(result, out)
    s = result.summary
    console.rule(
        f"[bold]hetopt replay: {outcome.plan.workload}[/] "
        f"({config.arrivals.kind}, {config.arrivals.rate_per_s:g} req/s, "
        f"{config.duration_s:g} s)"
    )
    t = titled_table(
        "Where the time went (per operator)",
        ("operator", "pool", "runs", "mean wait", "p99 wait", "mean service"),
        left=("operator", "pool"),
    )
    for r in result.stages.itertuples():
        t.add_row(
            r.operator,
            r.pool,
            f"{r.executions:,}",
            f"{r.mean_wait_s * 1e3:,.1f} ms",
            f"{r.p99_wait_s * 1e3:,.1f} ms",
            f"{r.mean_service_s * 1e3:,.1f} ms",
        )
    console.print(t)
    p = titled_table(
        "Pools",
        ("pool", "slots", "utilisation", "mean wait", "jobs/s in", "capacity/s"),
        left=("pool",),
    )
    for r in result.pools.itertuples():
        p.add_row(
            r.pool,
            str(r.slots),
            f"{r.mean_utilisation:.1%}",
            f"{r.mean_wait_s * 1e3:,.1f} ms",
            _rate(r.arrival_rate_per_s),
            _rate(r.capacity_per_s),
        )
    console.print(p)
    if len(result.failures):
        f = titled_table(
            "Failures",
            (
                "device",
                "at",
                "devices",
                "pools hit",
                "recovered at",
                "affected",
                "dropped",
                "SLA before",
                "during",
                "after",
            ),
            left=("device", "pools hit"),
        )
        for r in result.failures.itertuples():
            lost = (
                str(r.devices_failed)
                if r.devices_failed == r.devices_requested
                else f"{r.devices_failed} of {r.devices_requested} named (no more live)"
            )
            f.add_row(
                r.device,
                f"{r.at_s:g} s",
                lost,
                r.pools_hit,
                "never (no controller)"
                if math.isnan(r.recovered_at_s)
                else f"{r.recovered_at_s:g} s",
                f"{r.affected:,}",
                f"{r.affected_dropped:,}",
                _pct(r.attainment_before),
                _pct(r.attainment_during),
                _pct(r.attainment_after),
            )
        console.print(f)
    drops = ", ".join(f"{n:,} {why}" for why, n in s["dropped_by_reason"].items()) or "none"
    console.print(
        f"Requests: {s['arrived']:,} arrived = {s['completed']:,} completed + {s['dropped']:,} "
        f"dropped ({drops}) + {s['in_flight_at_end']:,} in flight at the end. End-to-end "
        f"p50/p90/p99: {s['e2e_p50_s']:.3f} / {s['e2e_p90_s']:.3f} / {s['e2e_p99_s']:.3f} s "
        f"(planned worst path {s['planned_e2e_s']:.3f} s); TTFT p99 {s['ttft_p99_s']:.3f} s. "
        f"Replay vs planner on the same paths: median gap {s['gap_p50']:+.2%}, "
        f"p99 {s['gap_p99']:+.2%}."
    )
    console.print(sla_line(s))
    for line in overload_lines(s):
        console.print(line)
    console.print(
        f"Router: {s['router']}"
        + (f", {s['prefix_hits']:,} prefix-cache hits" if s["prefix_hits"] else "")
        + (f"; controller re-planned {s['replans']} times" if s["controller"] else "")
        + f". {cost_line(s)}; "
        f"$/request {s['usd_per_request']:.3g} (planned {s['planned_usd_per_request']:.3g}), "
        f"$/Mtok {s['usd_per_mtok']:.3g} (planned {s['planned_usd_per_mtok']:.3g}). "
        f"Simulated in {s['wall_s']:.1f} s ({s['requests_per_wall_s']:,.0f} requests/s)."
    )
    console.print(f"Wrote {', '.join(written)} to {run_dir}")
    return 0


def _pct(x: float | None) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.1%}"


def _rate(x: float) -> str:
    return "-" if math.isnan(x) else "unbounded" if math.isinf(x) else f"{x:,.2f}"


_BOUND_LABELS = {"ttft": "TTFT", "tbt": "TBT", "e2e": "end-to-end"}


def _seconds(x: float) -> str:
    return f"{x * 1e3:g} ms" if x < 1 else f"{x:g} s"


def sla_line(s: dict[str, Any]) -> str:
    """The printed SLA attainment: overall, then per bound that is set.

    Examples
    --------
    >>> print(sla_line({"sla_ttft_s": 0.25, "sla_tbt_s": None, "sla_e2e_s": 15.0,
    ...                 "sla_attainment": 0.4, "sla_attainment_ttft": 0.45,
    ...                 "sla_missed_ttft": 11, "sla_attainment_e2e": 0.9, "sla_missed_e2e": 2,
    ...                 "measured_requests": 20, "warmup_s": 30.0}))
    SLA attainment: 40.0% of the 20 requests arriving after the 30 s warm-up met every bound (TTFT <= 250 ms: 45.0%, 11 missed; end-to-end <= 15 s: 90.0%, 2 missed; no TBT bound).
    """
    set_, unset = [], []
    for name, label in _BOUND_LABELS.items():
        bound = s.get(f"sla_{name}_s")
        if bound is None:
            unset.append(label)
        else:
            set_.append(
                f"{label} <= {_seconds(bound)}: {_pct(s[f'sla_attainment_{name}'])}, "
                f"{s[f'sla_missed_{name}']:,} missed"
            )
    if not set_:
        return "SLA attainment: - (no TTFT, TBT or end-to-end bound is set)."
    window = (
        f"the {s['measured_requests']:,} requests arriving after the {s['warmup_s']:g} s warm-up"
        if s.get("warmup_s")
        else f"all {s['measured_requests']:,} requests"
    )
    missing = f"; no {' or '.join(unset)} bound" if unset else ""
    return (
        f"SLA attainment: {_pct(s['sla_attainment'])} of {window} met every bound "
        f"({'; '.join(set_)}{missing})."
    )


def overload_lines(s: dict[str, Any]) -> list[str]:
    """One printed line per overloaded pool (jobs arriving faster than it serves them).

    Examples
    --------
    >>> for line in overload_lines({"warmup_s": 30.0, "overloaded_pools": [
    ...         {"pool": "Xeon-SPR shared pool", "from_s": 30.0, "to_s": 300.0,
    ...          "arrival_rate_per_s": 45.2, "capacity_per_s": 40.0, "offered_load": 1.13},
    ...         {"pool": "llm.decode (B200 tp2/b32)", "from_s": 900.0, "to_s": 1020.0,
    ...          "arrival_rate_per_s": 2.5, "capacity_per_s": 0.0, "offered_load": None}]}):
    ...     print(line)
    Overloaded: Xeon-SPR shared pool gets 45.20 jobs/s against a capacity of 40.00 jobs/s \
(load 113%) from 30 to 300 s: jobs arrive faster than it serves them, so they queue or are \
dropped.
    Overloaded: llm.decode (B200 tp2/b32) gets 2.50 jobs/s against no capacity (no replica in \
service) from 900 to 1020 s: jobs arrive faster than it serves them, so they queue or are \
dropped.
    """
    lines = []
    for o in s["overloaded_pools"]:
        load = o["offered_load"]
        against = (
            f"a capacity of {_rate(o['capacity_per_s'])} jobs/s (load {load:.0%})"
            if load is not None and math.isfinite(load)
            else "no capacity (no replica in service)"
        )
        lines.append(
            f"Overloaded: {o['pool']} gets {o['arrival_rate_per_s']:,.2f} jobs/s "
            f"against {against} from {o['from_s']:g} to {o['to_s']:g} s: jobs arrive "
            f"faster than it serves them, so they queue or are dropped."
        )
    return lines


def _versus(x: float, ref: float) -> str:
    if not ref:
        return "against"
    change = x / ref - 1
    return (
        "the same as"
        if abs(change) < 5e-4
        else f"{abs(change):.1%} {'below' if change < 0 else 'above'}"
    )


def cost_line(s: dict[str, Any]) -> str:
    """The printed cost of the capacity held, beside the static plan and the peak-sized plan.

    Examples
    --------
    >>> print(cost_line({"device_hours_held": 12.0, "capacity_usd": 80.0,
    ...                  "static_plan_usd": 100.0, "peak_static_usd": 100.0,
    ...                  "peak_rate_per_s": 7.9, "peak_sizing_margin": 0.15}))
    Capacity held: 12.0 device-hours, $80.00: 20.0% below the static plan ($100.00) and 20.0% below a static plan sized for the peak of 7.9 req/s + 15% ($100.00)
    """
    held = s["capacity_usd"]
    return (
        f"Capacity held: {s['device_hours_held']:,.1f} device-hours, ${held:,.2f}: "
        f"{_versus(held, s['static_plan_usd'])} the static plan "
        f"(${s['static_plan_usd']:,.2f}) and {_versus(held, s['peak_static_usd'])} a static "
        f"plan sized for the peak of {s['peak_rate_per_s']:.3g} req/s "
        f"+ {s['peak_sizing_margin']:.0%} (${s['peak_static_usd']:,.2f})"
    )
