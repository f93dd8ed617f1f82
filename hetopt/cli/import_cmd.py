"""``hetopt import my_agent.py:graph [annotations=...] [out=...] [overwrite=true]``.

Reads a LangGraph graph out of the user's Python file
(:func:`hetopt.importers.import_target`), prints the assumptions made where neither the code
nor the annotations say, and writes the workload YAML for the user to read and edit. Like
``hetopt export`` it takes a path and composes no Hydra config. ``hetopt plan
workload_file=my_agent.py:graph`` does the same import on the way to a plan (and writes the YAML
into its run directory); :func:`print_import` is shared by both.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from hetopt.cli.args import BOOLEAN, Setting, is_true, parse_args
from hetopt.errors import InputError, OutputError

if TYPE_CHECKING:
    from hetopt.cli.outputs import RunDir
    from hetopt.importers import ImportResult

IMPORT_USAGE = """usage: hetopt import <file.py:object> [annotations=FILE] [out=FILE] [overwrite=true]

read a LangGraph graph from your Python file into a hetopt workload YAML, printing every
assumption made where neither the code nor the annotations say (pip install -e '.[agents]'):
  <file.py:object>   the module-level variable that holds the compiled graph (my_agent.py:graph)
  annotations=FILE   what the code cannot say: models, tokens, branch probabilities, loop
                     bounds, tool latencies (default: my_agent.hetopt.yaml next to my_agent.py)
  out=FILE           where the workload YAML goes (default: my_agent.workload.yaml next to
                     my_agent.py); an existing file is refused unless overwrite=true

then: hetopt plan workload_file=my_agent.workload.yaml   (or workload_file=my_agent.py:graph)
"""


def parse_import_args(args: list[str]) -> tuple[str, str | None, Path | None, bool]:
    """The target, the annotation file, the output file and ``overwrite``.

    Examples
    --------
    >>> parse_import_args(["a.py:graph", "out=w.yaml"])
    ('a.py:graph', None, PosixPath('w.yaml'), False)
    """
    targets, values = parse_args(
        "import",
        args,
        {"annotations": Setting("FILE"), "out": Setting("FILE"), "overwrite": BOOLEAN},
    )
    if len(targets) != 1:
        raise InputError(
            f"hetopt import takes one graph, file.py:object, got {len(targets)} "
            f"({', '.join(targets) or 'none'}). Usage: hetopt import my_agent.py:graph "
            f"[annotations=FILE] [out=FILE] [overwrite=true]."
        )
    out = Path(values["out"]) if "out" in values else None
    return targets[0], values.get("annotations"), out, is_true(values)


def print_import(result: ImportResult, written: Path, console: Console) -> None:
    """What was imported, from which annotations, each assumption, and where the YAML is."""
    nodes = result.workload.get("nodes") or {}
    console.print(
        f"Imported {result.source}: {len(nodes)} node(s), annotations: "
        f"{result.annotations or 'none'}.",
        highlight=False,
        markup=False,
    )
    if result.assumptions:
        console.print(
            f"Assumptions ({len(result.assumptions)}; annotate to replace them):",
            highlight=False,
            markup=False,
        )
        for line in result.assumptions:
            console.print(f"  - {line}", highlight=False, markup=False)
    else:
        console.print("Assumptions: none.", highlight=False, markup=False)
    console.print(
        f"Wrote the workload to {written} (read it, edit it, plan it with workload_file=).",
        highlight=False,
        markup=False,
    )


def cmd_import(args: list[str], console: Console) -> int:
    """Run ``hetopt import``: write the workload YAML and print the assumptions."""
    if any(a in ("-h", "--help") for a in args):
        console.print(IMPORT_USAGE, highlight=False, markup=False)
        return 0
    target, annotations, out, overwrite = parse_import_args(args)
    from hetopt.atomic import write_text_atomic
    from hetopt.importers import import_target
    from hetopt.workloads import require_object_target

    file, _ = require_object_target(target)
    dest = out if out is not None else Path(file).with_name(Path(file).stem + ".workload.yaml")
    if dest.exists() and not overwrite:
        raise OutputError(
            f"hetopt import: {dest} already exists, and hetopt import does not overwrite it. "
            f"Give another out=FILE, or add overwrite=true to replace it."
        )
    if dest.is_dir():
        raise OutputError(f"hetopt import: out={dest} is a directory; give a file name.")
    result = import_target(target, annotations)
    write_text_atomic(dest, result.to_yaml())
    print_import(result, dest, console)
    return 0


def write_imported(run: RunDir, result: ImportResult, console: Console) -> None:
    """A run's workload imported from code: its YAML into the run directory (not a result: a
    run that fails before its results leaves nothing) and its assumptions on the terminal."""
    from hetopt.atomic import write_text_atomic

    name = "imported_workload.yaml"
    write_text_atomic(run.out / name, result.to_yaml())
    run.keep = run.keep | {name}
    print_import(result, run.path / name, console)
