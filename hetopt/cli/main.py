"""``hetopt`` entry point.

``hetopt plan [overrides...]`` composes the Hydra config tree in ``configs/`` with the given
overrides (``workload=rag_agent solver=cpsat sla.e2e_s=15``), runs the planning pipeline, prints
the plan and writes ``plan.json``, ``placement.csv``, ``devices.csv``, ``llm_pools.csv``,
``cost_table.csv`` and the resolved ``config.yaml`` into the run directory, ``hydra.run.dir``
(with Hydra's ``.hydra/`` record and ``plan.log``; see :mod:`hetopt.cli.outputs`). The other single-run commands work the
same way. An override that the command does not read is refused, naming it. User errors end
with one paragraph and exit status 2; what was computed before the error is still written.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from hetopt.errors import HetoptUserError, InputError

if TYPE_CHECKING:
    from hetopt.cli.compose import Composition
    from hetopt.cli.outputs import RunDir

__all__ = ["compose_config", "main", "request_from_config_checked"]

from hetopt.cli.commands import cmd_catalog, cmd_list, cmd_plan, cmd_reproduce, study_names


def compose_config(overrides: list[str], config_dirs: Sequence[Path] = ()) -> dict[str, Any]:
    """:func:`hetopt.cli.compose.compose_config`, imported when called (so ``hetopt --help``
    loads neither Hydra nor pandas)."""
    from hetopt.cli import compose

    return compose.compose_config(overrides, config_dirs)


def request_from_config_checked(overrides: list[str]) -> None:
    """:func:`hetopt.cli.compose.request_from_config_checked`, imported when called."""
    from hetopt.cli import compose

    compose.request_from_config_checked(overrides)


USAGE = """usage: hetopt <command> [overrides...] [--config-dir DIR] [--cfg job|hydra|all]
       hetopt <command> --help       (that command's config groups and keys)

commands:
  plan      plan a deployment (Hydra overrides: workload=, hardware=, sla=, solver=, tco=, ...)
  sweep     plan every point of a grid in parallel (= plan -m): comma lists, range(...), or a
            what-if study whatif=<name>; results.csv per sweep, resumable with hydra.sweep.dir=
  aggregate merge a sweep directory's point records into results.csv (and the study figure)
  fleet     plan many agents (tenants) on shared device pools within an inventory:
            fleet=enterprise (default), fleet=synthetic, or fleet_file=my_fleet.yaml;
            fleet.replay=true also replays every tenant's traffic through the plan
  catalog   show the hardware catalog with its hourly TCO
  list      show the config groups and their options (workloads, hardware, SLAs, fleets, ...)
  replay    plan, then replay request traffic through the plan (SimPy); or replay a saved
            plan with replay.plan_dir=outputs/plan/<run>
  compile   plan, then run the MLIR stage: agent dialects, decomposition passes, per-device
            IREE artefacts, CPU execution and calibration (mlir.plan_dir= for a saved plan)
  reproduce reproduce the paper: fig4 fig8 fig9 table3 kv_table serving pareto, or all
            (hetopt reproduce all [hydra.run.dir=DIR] [costs.model=roofline]; --out DIR is an
            alias); fidelity: the cost model against measured data
  melange   plan one LLM across GPU types from Mélange's input JSON (hetopt melange
            examples/melange/example.json [slice_factor=4] [solver=cpsat]), verified
  export    write Kubernetes Deployments, vLLM arguments and the llm-d prefill/decode topology
            for a finished plan or fleet run: hetopt export <run dir> (-> <run dir>/deploy/;
            pip install -e '.[deploy]' for the manifest validator)
  calibrate fit the cost model to aiconfigurator's measured database (pip install -e
            '.[calibration]') or to calibrate.measurements=my.csv; writes calibration.csv
            (calibrate.ship=true replaces the shipped table)
  import    a LangGraph graph (hetopt import my_agent.py:graph) as workload YAML + assumptions
  profile   a workload from OpenTelemetry traces (hetopt profile traces.json [out=DIR])

where runs go:
  hydra.run.dir=DIR   a single run's directory (default outputs/<command>/<time>; run_dir= is
                      an alias). It gets the run's files, .hydra/ (config.yaml, hydra.yaml,
                      overrides.yaml) and <command>.log. Runs started in the same second get
                      <time> and <time>-1. A directory that already holds a run is refused;
                      overwrite=true replaces it once the new run has its results.
  --config-dir DIR    (-cd) more config groups and options: DIR/workload/my_agent.yaml makes
                      workload=my_agent; likewise hardware/, sla/, fleet/, ...
  --cfg job           print the composed config and stop (--cfg hydra, --cfg all; --resolve)

examples:
  hetopt plan
  hetopt plan workload=worked_example solver=cpsat
  hetopt plan workload=rag_agent hardware=paper_table5 sla.e2e_s=5 workload.request_rate_per_s=10
  hetopt plan hydra.run.dir=runs/rag workload=rag_agent    # -> runs/rag/plan.json, .hydra/
  hetopt plan -cd my_configs workload=my_agent              # my_configs/workload/my_agent.yaml
  hetopt sweep sla.e2e_s=12,13,14 solver=highs,cpsat      # -> outputs/sweep/<name>-<time>/results.csv
  hetopt sweep whatif=electricity                         # a shipped what-if study (configs/whatif/)
  hetopt sweep whatif=carbon hydra/launcher=ray           # the same on Ray (pip install 'hetopt[dist]')
  hetopt fleet hardware.inventory.B200=8                  # tenants of configs/fleet/enterprise.yaml
  hetopt fleet fleet=synthetic fleet.synthetic.n_ops=2000 fleet.synthetic.n_device_types=20
  hetopt fleet fleet_file=my_fleet.yaml solver=cpsat fleet.method=monolithic
  hetopt fleet fleet.replay=true replay.duration_s=600      # + per-tenant replayed latency
  hetopt plan workload_file=my_agent.mlir                   # an agent graph written in MLIR
  hetopt plan workload_file=examples/agents/react_agent.py:graph   # a LangGraph graph (+ .hetopt.yaml)
  hetopt compile mlir.targets.H100=cuda:sm_80               # if the plan uses an H100
  hetopt reproduce fig4 hydra.run.dir=out/fig4 costs.model=roofline
  hetopt melange examples/melange/example.json slice_factor=4
  hetopt export runs/rag                                    # -> runs/rag/deploy/*.yaml
  hetopt profile examples/traces/react_agent.otlp.json out=runs/react  # workload from traces
"""


@dataclass(frozen=True)
class Command:
    """What a single-run command reads: its config groups and keys, and whether it writes."""

    reads: tuple[str, ...]
    writes: bool
    summary: str
    example: str


_STANDALONE = ("melange", "export", "import", "profile")  # hetopt.cli.<name>_cmd.cmd_<name>
_PLANNING: tuple[str, ...] = ("workload", "workload_file", "workload_annotations", "hardware")
_PLANNING += ("sla", "costs", "tco", "solver", "baselines")
COMMANDS: dict[str, Command] = {
    "plan": Command(
        _PLANNING,
        True,
        "plan a deployment of one agent",
        "hetopt plan workload=rag_agent solver=cpsat sla.e2e_s=15",
    ),
    "replay": Command(
        (*_PLANNING, "replay"),
        True,
        "plan, then replay request traffic through the plan (SimPy); with "
        "replay.plan_dir=<run> only the replay.* keys apply",
        "hetopt replay replay.arrivals.kind=mmpp replay.duration_s=600",
    ),
    "compile": Command(
        (*_PLANNING, "mlir"),
        True,
        "plan, then run the MLIR stage; with mlir.plan_dir=<run> only the mlir.* keys apply",
        "hetopt compile mlir.targets.H100=cuda:sm_80",
    ),
    "fleet": Command(
        ("fleet", "fleet_file", "hardware", "sla", "costs", "tco", "solver"),
        True,
        "plan many agents (tenants) on shared device pools; with fleet.replay=true also "
        "replay every tenant's traffic through the plan (replay.* keys apply)",
        "hetopt fleet fleet_file=my_fleet.yaml fleet.method=monolithic",
    ),
    "catalog": Command(
        ("hardware", "tco", "costs.calibration"),
        False,
        "show the hardware catalog with its hourly TCO",
        "hetopt catalog tco=cloud",
    ),
    "list": Command(
        (),
        False,
        "show the config groups and their options (workloads, ...)",
        "hetopt list --config-dir my_configs",
    ),
    "reproduce": Command(
        ("costs.model",),
        True,
        "reproduce the paper's studies: hetopt reproduce <study ...|all>",
        "hetopt reproduce fig4 hydra.run.dir=out/fig4 costs.model=roofline",
    ),
    "calibrate": Command(
        ("calibrate",),
        True,
        "fit the cost model to measured data",
        "hetopt calibrate calibrate.devices=[H100,B200]",
    ),
}
# Where a key that a command does not read belongs.
_HOME = {
    "fleet": "hetopt fleet",
    "fleet_file": "hetopt fleet",
    "replay": "hetopt replay",
    "mlir": "hetopt compile",
    "calibrate": "hetopt calibrate",
    "sweep": "hetopt sweep",
    "study": "hetopt sweep",
    "whatif": "hetopt sweep",
    "workload": "hetopt plan",
    "workload_file": "hetopt plan",
    "baselines": "hetopt plan",
}
_HYDRA_HONOURED = (
    "hydra.run.dir",
    "hydra.job.name",
    "hydra.output_subdir",
    "hydra.verbose",
    "hydra/job_logging",
)
_SWEEP_ONLY = (
    "hydra.sweep",
    "hydra.sweeper",
    "hydra.launcher",
    "hydra/launcher",
    "hydra/sweeper",
    "hydra.mode",
)


@dataclass(frozen=True)
class Flags:
    """Hydra's command-line flags that hetopt honours, and the remaining arguments."""

    args: tuple[str, ...]
    config_dirs: tuple[Path, ...] = ()
    cfg: str | None = None
    resolve: bool = False
    help: bool = False


def parse_flags(args: list[str]) -> Flags:
    """Split ``--config-dir/-cd DIR``, ``--cfg/-c job|hydra|all``, ``--resolve`` and
    ``-h/--help`` from the other arguments.

    Examples
    --------
    >>> parse_flags(["-cd", "my", "--cfg", "job", "sla.e2e_s=3"])
    Flags(args=('sla.e2e_s=3',), config_dirs=(PosixPath('my'),), cfg='job', resolve=False, help=False)
    """
    rest: list[str] = []
    dirs: list[Path] = []
    cfg = None
    resolve = helped = False
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if name in ("--config-dir", "-cd", "--cfg", "-c", "--out") and not eq:
            if i + 1 >= len(args):
                raise InputError(
                    f"{arg} needs a value (e.g. `{arg} "
                    f"{'job' if name in ('--cfg', '-c') else 'DIR'}`)."
                )
            value, i = args[i + 1], i + 1
        if name in ("--config-dir", "-cd"):
            dirs.append(Path(value))
        elif name in ("--cfg", "-c"):
            if value not in ("job", "hydra", "all"):
                raise InputError(f"--cfg takes job, hydra or all, got {value!r}.")
            cfg = value
        elif name == "--out":
            rest.append(f"hydra.run.dir={value}")  # hetopt reproduce's alias
        elif arg == "--resolve":
            resolve = True
        elif arg in ("-h", "--help"):
            helped = True
        else:
            rest.append(arg)
        i += 1
    return Flags(tuple(rest), tuple(dirs), cfg, resolve, helped)


def check_overrides(command: str, comp: Composition) -> None:
    """Refuse an override that ``command`` would not use, naming it and where it belongs."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    spec = COMMANDS[command]
    reads: tuple[str, ...] = spec.reads
    why = f"hetopt {command} reads {', '.join(reads) or 'no config keys'}"
    if command == "replay" and (comp.cfg.get("replay") or {}).get("plan_dir"):
        reads = ("replay", "costs.max_utilization")
        why = (
            "with replay.plan_dir the saved run's config.yaml fixes the plan, and hetopt "
            "replay reads only replay.* and costs.max_utilization"
        )
    if command == "fleet" and (comp.cfg.get("fleet") or {}).get("replay") is True:
        reads = (*reads, "replay")
        why = f"{why} and, with fleet.replay=true, replay"
    if command == "compile" and (comp.cfg.get("mlir") or {}).get("plan_dir"):
        reads = ("mlir",)
        why = (
            "with mlir.plan_dir the saved run's config.yaml fixes the plan, and hetopt "
            "compile reads only mlir.*"
        )
    if spec.writes:
        reads = (*reads, "overwrite")
    from omegaconf import OmegaConf

    # as typed, interpolations unresolved
    hydra_list: Any = OmegaConf.to_container(comp.hydra.hydra.overrides.hydra, resolve=False)
    hydra_ovr = [str(o) for o in hydra_list]
    parsed = OverridesParser.create().parse_overrides([*comp.overrides, *hydra_ovr])
    for raw, o in zip([*comp.overrides, *hydra_ovr], parsed, strict=True):
        key = o.key_or_group
        if key == "hydra.searchpath":
            continue
        if key.startswith("hydra"):
            if any(key == p or key.startswith(p + ".") for p in _SWEEP_ONLY):
                raise InputError(
                    f"hetopt {command} does not use {raw!r}: it is a setting of "
                    f"`hetopt sweep`. A single run goes to hydra.run.dir; remove "
                    f"{raw!r}."
                )
            if not spec.writes:
                raise InputError(
                    f"hetopt {command} writes no files, so {raw!r} would be ignored; remove it."
                )
            if not any(key == p or key.startswith(p + ".") for p in _HYDRA_HONOURED):
                raise InputError(
                    f"hetopt {command} does not apply {raw!r}: of Hydra's own "
                    f"settings a single run honours {', '.join(_HYDRA_HONOURED)} "
                    f"(and --config-dir). Remove it."
                )
            continue
        if not any(key == p or key.startswith(p + ".") for p in reads):
            top = key.replace("/", ".").split(".")[0]
            home = _HOME.get(top)
            where = f" It is read by `{home}`." if home and home != f"hetopt {command}" else ""
            if command == "fleet" and top == "replay":
                where = (
                    " It is read by `hetopt replay`, and by `hetopt fleet` with "
                    "fleet.replay=true (which replays the fleet plan)."
                )
            raise InputError(
                f"hetopt {command} does not use {raw!r} (key '{key}'), so it "
                f"would be ignored: {why}.{where} Remove it (`hetopt {command} "
                f"--help` lists the keys)."
            )


def _write_hydra_record(run: RunDir, comp: Composition) -> None:
    """``.hydra/`` (config.yaml, hydra.yaml, overrides.yaml, as Hydra writes them) and the log."""
    import logging as _logging

    from omegaconf import OmegaConf, open_dict, read_write

    from hetopt.atomic import write_text_atomic

    hydra_cfg = comp.hydra.copy()
    node = hydra_cfg.hydra
    with read_write(node.runtime), open_dict(node.runtime):
        node.runtime.output_dir = str(run.path.resolve())
        node.runtime.cwd = os.getcwd()
    keep = set()
    subdir = node.output_subdir
    if subdir:
        record = run.out / str(subdir)
        write_text_atomic(record / "config.yaml", OmegaConf.to_yaml(comp.job))
        write_text_atomic(record / "hydra.yaml", OmegaConf.to_yaml(hydra_cfg))
        write_text_atomic(record / "overrides.yaml", OmegaConf.to_yaml(list(comp.overrides)))
        keep.add(Path(str(subdir)).parts[0])
    if node.runtime.choices.get("hydra/job_logging") != "disabled":
        verbose = node.verbose
        log_name = str(node.job.name)  # Hydra's ${hydra.job.name}.log; the command by default
        run.start_log(log_name, _logging.DEBUG if verbose is True else _logging.INFO)
        if isinstance(verbose, str) or OmegaConf.is_list(verbose):
            for name in [verbose] if isinstance(verbose, str) else list(verbose):
                _logging.getLogger(str(name)).setLevel(_logging.DEBUG)
        keep.add(f"{log_name}.log")
    run.keep = frozenset(keep)


def command_help(command: str, config_dirs: tuple[Path, ...] = ()) -> str:
    """``hetopt <command> --help``: what the command does, its groups and its keys."""
    spec = COMMANDS[command]
    lines = [
        f"usage: hetopt {command} "
        + ("<study ...|all> " if command == "reproduce" else "")
        + "[key=value ...] [--config-dir DIR] [--cfg job|hydra|all] [-h]",
        "",
        f"{spec.summary}.",
        "",
        f"example: {spec.example}",
        "",
    ]
    lines += _keys_help(command, spec.reads, config_dirs)
    if command == "reproduce":
        from hetopt.report.reproduce import STUDIES

        lines += [f"studies: {', '.join(STUDIES)}, or all", ""]
    if spec.writes:
        lines += [
            f"output: hydra.run.dir (default outputs/{command}/<time>; run_dir= is an "
            "alias"
            + (", and so is --out" if command == "reproduce" else "")
            + "), with .hydra/ and "
            f"{command}.log. A directory that already holds a run is refused unless "
            "overwrite=true.",
            "",
        ]
    lines.append("Any other key is refused, naming it. `hetopt list` shows every group.")
    return "\n".join(lines)


def _keys_help(command: str, reads: tuple[str, ...], config_dirs: tuple[Path, ...]) -> list[str]:
    """The config groups among ``reads`` with their options, and the keys with defaults."""
    from omegaconf import OmegaConf

    from hetopt.cli.compose import compose_run, config_groups
    from hetopt.workloads import config_dir

    comp = compose_run(command, ["fleet=enterprise"] if command == "fleet" else [], config_dirs)
    groups = config_groups([config_dir(), *config_dirs])
    lines = []
    shown = [r for r in reads if r in groups]
    if shown:
        lines += ["config groups (group=option):"]
        lines += [f"  {g}: {', '.join(groups[g])}" for g in shown if g in groups]
        lines.append("")
    if reads:
        lines.append("keys (key=value; defaults shown):")
        for key in reads:
            value = OmegaConf.select(comp.job, key)
            if key == "workload":
                lines.append(
                    "  workload.*: the keys of the chosen workload file "
                    "(configs/workload/<name>.yaml), e.g. "
                    "workload.request_rate_per_s=10"
                )
            elif OmegaConf.is_config(value):
                body = OmegaConf.to_yaml(value).rstrip().replace("\n", "\n    ")
                lines.append(f"  {key}:\n    {body}")
            else:
                lines.append(f"  {key}: {'null' if value is None else value}")
        lines.append("")
    return lines


def sweep_help(config_dirs: tuple[Path, ...] = ()) -> str:
    """``hetopt sweep --help``: the sweep's usage, then the keys and groups it sweeps."""
    from hetopt.cli.sweep import SWEEP_USAGE

    return "\n".join(
        [
            SWEEP_USAGE.rstrip(),
            "",
            *_keys_help("plan", (*_PLANNING, "whatif", "sweep"), config_dirs),
            "Hydra's sweep settings: hydra.sweep.dir=DIR, hydra/launcher=ray, "
            "hydra.launcher.n_jobs=N, hydra.sweeper.chunk_size=N. `hetopt list` "
            "shows every group.",
        ]
    )


def run_command(command: str, args: list[str], console: Console) -> int:
    """Compose, check and run a single-run command (everything but sweep and aggregate)."""
    from omegaconf import OmegaConf

    from hetopt.cli.compose import compose_run
    from hetopt.cli.import_cmd import write_imported
    from hetopt.cli.outputs import open_run

    flags = parse_flags(args)
    if flags.help:
        console.print(command_help(command, flags.config_dirs), highlight=False, markup=False)
        return 0
    overrides = [a for a in flags.args if "=" in a or a[:1] in "+~"]
    positional = [a for a in flags.args if a not in overrides]
    if command == "calibrate":
        from hetopt.cli.calibrate_cmd import legacy_overrides

        overrides = legacy_overrides(overrides)
    if positional and command != "reproduce":
        raise InputError(
            f"hetopt {command}: unexpected argument(s) {positional}; it takes "
            f"overrides key=value (`hetopt {command} --help`)."
        )
    if command == "reproduce":
        study_names(positional)  # an unknown study is refused before anything runs
    if command == "fleet" and not any(
        o.partition("=")[0].lstrip("+~") in ("fleet", "fleet_file") for o in overrides
    ):
        overrides = ["fleet=enterprise", *overrides]
    comp = compose_run(command, overrides, flags.config_dirs)
    check_overrides(command, comp)
    if flags.cfg is not None:
        from omegaconf.errors import OmegaConfBaseException

        parts = {"job": [comp.job], "hydra": [comp.hydra], "all": [comp.job, comp.hydra]}
        try:
            text = "".join(OmegaConf.to_yaml(c, resolve=flags.resolve) for c in parts[flags.cfg])
        except OmegaConfBaseException as exc:
            raise InputError(f"--cfg {flags.cfg} --resolve: {exc}".replace("\n", " ")) from None
        console.print(text.rstrip(), highlight=False, markup=False, soft_wrap=True)
        return 0
    if command == "list":
        return cmd_list(flags.config_dirs, console)
    if command == "catalog":
        return cmd_catalog(comp, console)
    run = open_run(
        comp.run_dir, explicit=comp.explicit_run_dir, overwrite=bool(comp.cfg.get("overwrite"))
    )
    failed = True
    try:
        _write_hydra_record(run, comp)
        if comp.imported is not None:
            write_imported(run, comp.imported, console)
        if command == "plan":
            code = cmd_plan(comp, run, console)
        elif command == "fleet":
            from hetopt.cli.fleet_cmd import cmd_fleet

            code = cmd_fleet(comp.cfg, run, console)
        elif command == "replay":
            from hetopt.cli.replay_cmd import cmd_replay

            code = cmd_replay(comp.cfg, run, console)
        elif command == "compile":
            from hetopt.cli.compile_cmd import cmd_compile

            code = cmd_compile(comp.cfg, run, console)
        elif command == "reproduce":
            code = cmd_reproduce(comp, positional, run, console)
        else:
            from hetopt.cli.calibrate_cmd import cmd_calibrate

            code = cmd_calibrate(comp.cfg, run, console)
        failed = False
    finally:
        run.close(failed=failed)
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hetopt`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    # Piped output gets 120 columns so tables stay readable in logs.
    console = Console(width=None if sys.stdout.isatty() else 120)
    err = Console(stderr=True, width=None if sys.stderr.isatty() else 120)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args or args[0] in ("-h", "--help", "help"):
        console.print(USAGE, highlight=False, markup=False)
        return 0
    command, rest = args[0], args[1:]
    sweep = command == "sweep" or (command == "plan" and ("-m" in rest or "--multirun" in rest))
    if (
        command not in (*COMMANDS, *_STANDALONE)
        and not sweep
        and any(f in rest for f in ("-h", "--help"))
    ):
        console.print(USAGE, highlight=False, markup=False)
        return 0
    try:
        if sweep:
            from hetopt.cli.sweep import cmd_sweep

            flags = parse_flags([a for a in rest if a not in ("-m", "--multirun")])
            if flags.help:
                console.print(sweep_help(flags.config_dirs), highlight=False, markup=False)
                return 0
            return cmd_sweep(
                list(flags.args),
                console,
                config_dirs=flags.config_dirs,
                cfg=flags.cfg,
                resolve=flags.resolve,
            )
        if command == "aggregate":
            from hetopt.cli.sweep import report_sweep

            if len(rest) != 1:
                raise InputError("usage: hetopt aggregate <sweep directory>")
            return report_sweep(Path(rest[0]), console)
        if command in _STANDALONE:
            # key=value commands outside Hydra, each in its own module (imported only when run)
            module = importlib.import_module(f"hetopt.cli.{command}_cmd")
            return int(getattr(module, f"cmd_{command}")(rest, console))
        if command in COMMANDS:
            return run_command(command, rest, console)
        raise InputError(
            f"Unknown command '{command}'. Commands: plan, sweep, aggregate, "
            f"fleet, catalog, list, reproduce, replay, compile, calibrate, melange, export, "
            f"import, profile (`hetopt --help`)."
        )
    except HetoptUserError as exc:
        from rich.markup import escape

        # escaped: a message's own brackets ('.[deploy]', a YAML list) are text, not markup
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        return exc.exit_code
    except KeyboardInterrupt:
        # Every file is written atomically and a run with no result is dropped; a sweep
        # handles SIGINT itself and prints its resume command.
        err.print(
            f"[yellow]interrupted:[/] hetopt {command} stopped before it finished. Each "
            f"file it wrote is whole, and a run that had written no result left no "
            f"directory. Run the command again.",
            highlight=False,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
