"""``hetopt melange <file.json> [slice_factor=S] [solver=<backend>] [solver.<key>=<value>]``.

Reads Mélange's input JSON (:func:`hetopt.melange.load_melange`), plans it with a hetopt
backend and prints the GPUs, each bucket's split across GPU types, the cost (also in
Mélange's own output form) and the independent verification. It writes no files and composes
no Hydra config: its only settings are the overrides below, parsed here. A bad file or
override ends with one paragraph and exit status 2; a plan that fails verification exits 1.
"""

from __future__ import annotations

import contextlib
import json
import math
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from hetopt.errors import InputError, SolverLimitError

if TYPE_CHECKING:
    from hetopt.melange import MelangeResult
    from hetopt.solvers import SolverOptions

MELANGE_USAGE = """usage: hetopt melange <file.json> [slice_factor=S] [solver=<backend>] [solver.<key>=<value> ...]

plan one LLM across GPU types from Mélange's input file (github:tyler-griggs/melange-release,
melange/config/example.json format: workload_distribution, gpu_info, total_request_rate,
slice_factor), verified by hetopt's independent oracle; writes no files.

overrides:
  slice_factor=S        slices per bucket (default: the file's, else 1; Mélange suggests 4)
  solver=<backend>      highs (default), cbc, cpsat or bruteforce (tiny instances only)
  solver.time_limit_s=  solver.gap_rel=  solver.threads=  solver.seed=  solver.verbose=

example: hetopt melange examples/melange/example.json slice_factor=4 solver=cpsat
"""

_SOLVER_KEYS = {
    "backend": str,
    "time_limit_s": float,
    "gap_rel": float,
    "threads": int,
    "seed": int,
    "verbose": bool,
}


def parse_melange_args(args: list[str]) -> tuple[str, int | None, SolverOptions]:
    """The file, the slice factor override (None: the file's) and the solver options.

    Raises
    ------
    InputError
        No file or more than one, an unknown key, or a value of the wrong type.

    Examples
    --------
    >>> path, s, opts = parse_melange_args(["x.json", "slice_factor=4", "solver=cpsat"])
    >>> path, s, opts.backend
    ('x.json', 4, 'cpsat')
    >>> parse_melange_args(["x.json", "sla.e2e_s=3"])
    Traceback (most recent call last):
    ...
    hetopt.errors.InputError: hetopt melange does not use 'sla.e2e_s=3' (key 'sla.e2e_s'), so ...
    """
    from hetopt.solvers import SolverOptions

    files = [a for a in args if "=" not in a]
    overrides = [a for a in args if "=" in a]
    if len(files) != 1:
        raise InputError(
            f"hetopt melange takes one Mélange input file, got {len(files)} "
            f"({', '.join(files) or 'none'}). Usage: hetopt melange <file.json> "
            f"[slice_factor=S] [solver=<backend>] (`hetopt melange --help`)."
        )
    slice_factor: int | None = None
    solver: dict[str, object] = {}
    for raw in overrides:
        key, _, value = raw.partition("=")
        key = key.strip()
        if key == "slice_factor":
            read = _value(raw, key, value, int)
            assert isinstance(read, int)
            slice_factor = read
        elif key == "solver":
            solver["backend"] = value.strip()
        elif key.startswith("solver.") and key.removeprefix("solver.") in _SOLVER_KEYS:
            field = key.removeprefix("solver.")
            solver[field] = _value(raw, key, value, _SOLVER_KEYS[field])
        else:
            raise InputError(
                f"hetopt melange does not use {raw!r} (key '{key}'), so it would be ignored: "
                f"it reads slice_factor= and solver=<backend> or solver.<key>= with key one "
                f"of {', '.join(_SOLVER_KEYS)}. Remove it (`hetopt melange --help`)."
            )
    if slice_factor is not None and slice_factor < 1:
        raise InputError(
            f"slice_factor={slice_factor} is not an integer >= 1. Give how many equal slices "
            f"each bucket is cut into (Mélange recommends 4)."
        )
    from hetopt.solvers import get_backend

    get_backend(str(solver.get("backend", "highs")))  # an unknown name, with the closest
    return files[0], slice_factor, SolverOptions(**solver)  # type: ignore[arg-type]


def _value(raw: str, key: str, text: str, kind: type) -> object:
    """``text`` read as ``kind`` (a bool from true/false), or an :class:`InputError`."""
    text = text.strip()
    if kind is bool:
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
    elif kind is str:
        return text
    else:
        with contextlib.suppress(ValueError):
            return kind(text)
    raise InputError(
        f"hetopt melange: {raw!r} gives {key} the value {text!r}, which is not "
        f"{'an integer' if kind is int else 'a number' if kind is float else 'true or false'}. "
        f"Write e.g. {key}={'4' if kind is int else '60' if kind is float else 'true'}."
    )


def cmd_melange(args: list[str], console: Console) -> int:
    """Run ``hetopt melange``: read, plan, print; 0 when verified and proven optimal."""
    if any(a in ("-h", "--help") for a in args):
        console.print(MELANGE_USAGE, highlight=False, markup=False)
        return 0
    path, slice_factor, options = parse_melange_args(args)
    from hetopt.melange import load_melange, plan_melange

    instance = load_melange(path)
    with console.status("planning..."):
        result = plan_melange(instance, options, slice_factor)
    render_melange(result, console)
    if not result.verified:
        return 1
    if not result.proven_optimal:
        raise SolverLimitError(
            f"Solver {result.backend} stopped at solver.time_limit_s="
            f"{options.time_limit_s:g} with a plan that is not proven optimal "
            f"({result.verdict}, gap {result.gap:.2%}). Raise solver.time_limit_s, or accept "
            f"the gap."
        )
    return 0


def render_melange(result: MelangeResult, console: Console) -> None:
    """Print the GPU table, each bucket's split, the cost, the solve and the verification."""
    inst = result.instance
    console.print(
        f"Mélange instance {inst.source or inst.name}: {inst.shape[0]} x {inst.shape[1]} "
        f"buckets, {len(inst.gpus)} GPU types, {inst.total_request_rate:g} req/s, "
        f"slice_factor {result.slice_factor}",
        highlight=False,
        markup=False,
    )
    gpus = Table(title="GPUs", title_justify="left")
    for col in ("GPU", "count", "$/h each", "$/h", "load (GPUs)"):
        gpus.add_column(col, justify="left" if col == "GPU" else "right", no_wrap=True)
    for gpu in inst.gpus:
        n = result.gpu_counts[gpu.name]
        gpus.add_row(
            gpu.name,
            str(n),
            f"{gpu.cost_usd_per_h:g}",
            f"{n * gpu.cost_usd_per_h:.2f}",
            f"{result.gpu_load[gpu.name]:.3f}",
        )
    console.print(gpus)
    split = Table(title="Split per bucket (share of its slices)", title_justify="left")
    for col in ("bucket", "share", "req/s", *inst.gpu_names):
        split.add_column(col, justify="left" if col == "bucket" else "right", no_wrap=True)
    for name, _, _, share in inst.buckets():
        if name in result.split:
            cells = [_fraction(result.split[name][g]) for g in inst.gpu_names]
            split.add_row(name, f"{share:g}", f"{share * inst.total_request_rate:.4g}", *cells)
    console.print(split)
    form = {k: round(v, 9) if k == "cost" else v for k, v in result.as_melange().items()}
    console.print(
        f"Total cost {result.cost_usd_per_h:.2f} $/h; Mélange's form: {json.dumps(form)}",
        highlight=False,
        markup=False,
    )
    known = math.isfinite(result.bound) and math.isfinite(result.gap)
    bound = f"bound {result.bound:,.6g}, gap {result.gap:.2%}, " if known else ""
    console.print(
        f"Solver {result.backend}: {result.verdict} ({bound}{result.runtime_s:.2f} s)",
        highlight=False,
        markup=False,
    )
    if result.verified:
        console.print(
            f"Independent verification [green]passed[/]: the oracle recomputes "
            f"{result.recomputed_cost_usd_per_h:.2f} $/h with no violation, and every slice is "
            f"on a GPU type that serves it within its GPUs (Mélange's C1, C2)",
            highlight=False,
        )
    else:
        console.print(
            "Independent verification [red]FAILED[/]: " + "; ".join(result.verification),
            highlight=False,
        )


def _fraction(value: float) -> str:
    """``-`` for none of the bucket, else a percentage (``12.5%``)."""
    return "-" if value == 0 else f"{value * 100:.4g}%"
