"""``hetopt profile <trace.json>... [out=DIR] [name=NAME] [overwrite=true]``: plan from traces.

Reads OpenTelemetry trace exports in OTLP JSON (GenAI semantic conventions), derives the agent's
workload (:func:`hetopt.importers.traces.profile_traces`) and writes ``DIR/workload.yaml`` (for
``hetopt plan workload_file=``), ``DIR/arrivals.csv`` (``timestamp_s``, for
``replay.arrivals.kind=trace``) and ``DIR/profile.json`` (the derived numbers), each atomically.
Like ``hetopt export`` it takes paths and composes no Hydra config. Bad traces (no spans, no GenAI
attributes, missing parents) and a missing ``traces`` extra end with one paragraph and exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from hetopt.cli.args import BOOLEAN, Setting, is_true, parse_args
from hetopt.errors import InputError

if TYPE_CHECKING:
    from hetopt.importers.traces import GraphProfile, TraceProfile

PROFILE_USAGE = """usage: hetopt profile <trace.json> [<trace.json> ...] [out=DIR] [name=NAME] [overwrite=true]

derive an agent workload from OpenTelemetry traces (OTLP JSON, one TracesData object per line or
per file; GenAI semantic conventions: gen_ai.request.model, gen_ai.usage.input_tokens and
output_tokens, execute_tool and retrieval spans; node spans named by graph.node.name) and write:
  workload.yaml  the graph, branch probabilities, loops, size buckets and tool latencies
                 (hetopt plan workload_file=DIR/workload.yaml)
  arrivals.csv   the requests' start times, timestamp_s (replay.arrivals.kind=trace)
  profile.json   the numbers behind them (visits, token means, latency CVs, arrival rate)

overrides:
  out=DIR           where to write (default outputs/profile/<name>)
  name=NAME         the workload's name (default: the first file's name)
  overwrite=true    replace files of an earlier profile in DIR

needs pip install -e '.[traces]'
example: hetopt profile examples/traces/react_agent.otlp.json out=runs/react
"""


def parse_profile_args(args: list[str]) -> tuple[list[str], Path | None, str | None, bool]:
    """The trace files, ``out``, ``name`` and ``overwrite``.

    Examples
    --------
    >>> parse_profile_args(["a.json", "b.json", "out=o", "name=x", "overwrite=true"])
    (['a.json', 'b.json'], PosixPath('o'), 'x', True)
    >>> parse_profile_args(["a.json", "solver=cpsat"])
    Traceback (most recent call last):
    ...
    hetopt.errors.InputError: hetopt profile does not use 'solver=cpsat' (key 'solver'): it reads ...
    """
    files, values = parse_args(
        "profile",
        args,
        {
            "out": Setting("DIR"),
            "name": Setting("NAME (letters, digits and _)", str.isidentifier),
            "overwrite": BOOLEAN,
        },
    )
    if not files:
        raise InputError(
            "hetopt profile takes one or more OTLP JSON trace files, got none. Usage: hetopt "
            "profile <trace.json>... [out=DIR] [name=NAME] (`hetopt profile --help`)."
        )
    out = Path(values["out"]) if "out" in values else None
    return files, out, values.get("name"), is_true(values)


def cmd_profile(args: list[str], console: Console) -> int:
    """Run ``hetopt profile``: derive, write the three files, print the graph and next steps."""
    if any(a in ("-h", "--help") for a in args):
        console.print(PROFILE_USAGE, highlight=False, markup=False)
        return 0
    files, out, name, overwrite = parse_profile_args(args)
    import yaml

    from hetopt.atomic import write_json_atomic, write_text_atomic
    from hetopt.importers.traces import profile_traces

    profile = profile_traces(files, name)
    out = out or Path("outputs") / "profile" / profile.name
    targets = [out / "workload.yaml", out / "arrivals.csv", out / "profile.json"]
    if out.exists() and not out.is_dir():
        raise InputError(
            f"hetopt profile: out={out} is a file; out= names the directory that gets "
            f"workload.yaml, arrivals.csv and profile.json. Choose a directory."
        )
    existing = [str(p) for p in targets if p.exists()]
    if existing and not overwrite:
        raise InputError(
            f"hetopt profile: {', '.join(existing)} "
            f"{'already exists' if len(existing) == 1 else 'already exist'}. Choose another "
            f"out=DIR, or add overwrite=true to replace {'it' if len(existing) == 1 else 'them'}."
        )
    header = (
        f"# Derived by `hetopt profile` from {profile.source}: {profile.requests} requests.\n"
        f"# Edge payloads and tool request/response bytes are defaults (traces do not carry "
        f"them).\n"
    )
    body = yaml.safe_dump(profile.workload_data(), sort_keys=False, width=100)
    write_text_atomic(targets[0], header + body)
    write_text_atomic(
        targets[1], "timestamp_s\n" + "".join(f"{t:.6f}\n" for t in profile.arrivals_s)
    )
    write_json_atomic(targets[2], _json_safe(profile.summary()))
    _print_summary(profile, console)
    cv = round(profile.tool_latency_cv, 3)
    console.print(
        f"wrote {', '.join(str(p) for p in targets)}\n"
        f"plan it:   hetopt plan workload_file={targets[0]}\n"
        f"replay it: hetopt replay workload_file={targets[0]} replay.arrivals.kind=trace "
        f"replay.arrivals.trace_path={targets[1]} replay.tool_latency_cv={cv}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    return 0


def _json_safe(value: object) -> object:
    """``value`` with NaN floats as None (profile.json is strict JSON)."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _print_summary(profile: TraceProfile, console: Console) -> None:
    t = Table(title=f"Workload '{profile.name}' from {profile.requests} traced requests")
    for col in ("node", "kind", "visits/run", "model", "mean in/out tokens", "latency_s (cv)"):
        t.add_column(col)

    def add(graph: GraphProfile, prefix: str) -> None:
        for n in graph.nodes:
            tokens = (
                f"{sum(x[0] for x in n.tokens) / len(n.tokens):.0f} / "
                f"{sum(x[1] for x in n.tokens) / len(n.tokens):.0f}"
                if n.tokens
                else ""
            )
            latency = (
                f"{sum(n.tool_latency_s) / len(n.tool_latency_s):.3f} ({n.latency_cv:.2f})"
                if n.tool_latency_s
                else ""
            )
            t.add_row(
                prefix + n.name,
                n.kind,
                f"{n.visits / graph.runs:.2f}",
                n.model or "",
                tokens,
                latency,
            )
            if n.subgraph is not None:
                add(n.subgraph, prefix + n.name + ".")

    add(profile.graph, "")
    console.print(t)
    edges = []

    def walk(graph: GraphProfile, prefix: str) -> None:
        for e in graph.edges:
            if e.is_back:
                mean = sum(e.loop_counts) / len(e.loop_counts)
                edges.append(
                    f"{prefix}{e.src} -> {e.dst}: loop, {mean:.2f} expected, "
                    f"{max(e.loop_counts)} max"
                )
            elif e.probability < 1.0:
                edges.append(f"{prefix}{e.src} -> {e.dst}: p={e.probability:.3f}")
        for n in graph.nodes:
            if n.subgraph is not None:
                walk(n.subgraph, prefix + n.name + ".")

    walk(profile.graph, "")
    fit = "fits" if profile.poisson_fits else "does not fit"
    console.print(
        "\n".join(edges) + f"\narrivals: {profile.rate_per_s:.3f}/s, inter-arrival CV "
        f"{profile.interarrival_cv:.2f} (Poisson {fit}); tool latency CV "
        f"{profile.tool_latency_cv:.2f}",
        highlight=False,
        markup=False,
    )
