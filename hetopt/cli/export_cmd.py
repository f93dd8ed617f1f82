"""``hetopt export <run dir> [target=k8s] [overwrite=true]``: a finished plan as deployments.

Reads a run directory written by ``hetopt plan`` or ``hetopt fleet`` and writes
``<run dir>/deploy/`` (:func:`hetopt.deploy.export_run`): Kubernetes Deployments validated
against the Kubernetes 1.37 schemas, ``vllm serve`` arguments and the llm-d prefill/decode
topology. Like ``hetopt aggregate`` and ``hetopt melange`` it takes a path, composes no Hydra
config and re-plans nothing. A bad directory, a device without a device plugin or a missing
``kubernetes-validate`` ends with one paragraph and exit status 2.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from hetopt.cli.args import BOOLEAN, Setting, is_true, parse_args
from hetopt.errors import InputError

EXPORT_USAGE = """usage: hetopt export <run dir> [target=k8s] [overwrite=true]

write deployable files for a finished `hetopt plan` or `hetopt fleet` run into <run dir>/deploy/:
  deployments.yaml  one Kubernetes Deployment per pool or replica group (device-plugin resources,
                    nodeSelector hetopt.io/device-type=<device>, replicas = the plan's counts),
                    validated against the Kubernetes 1.37 schemas (pip install -e '.[deploy]')
  vllm_args.json    `vllm serve` arguments per LLM Deployment (tp, pp, max-num-seqs)
  topology.yaml     per model: prefill and decode workers and the KV transfer (llm-d, vLLM NIXL)
  summary.csv       one row per Deployment

overrides:
  target=k8s        the only target (Kubernetes + vLLM + llm-d)
  overwrite=true    replace an earlier export's deploy/ (nothing else in the run is touched)

example: hetopt plan hydra.run.dir=runs/voice && hetopt export runs/voice
"""


def parse_export_args(args: list[str]) -> tuple[str, bool]:
    """The run directory and ``overwrite``.

    Examples
    --------
    >>> parse_export_args(["runs/a", "overwrite=true"])
    ('runs/a', True)
    >>> parse_export_args(["runs/a", "target=helm"])
    Traceback (most recent call last):
    ...
    hetopt.errors.InputError: hetopt export does not use 'target=helm' (key 'target'): it reads target=k8s and ...
    """
    paths, values = parse_args(
        "export", args, {"target": Setting("k8s", lambda v: v == "k8s"), "overwrite": BOOLEAN}
    )
    if len(paths) != 1:
        raise InputError(
            f"hetopt export takes one run directory, got {len(paths)} "
            f"({', '.join(paths) or 'none'}). Usage: hetopt export <run dir> [overwrite=true]."
        )
    return paths[0], is_true(values)


def cmd_export(args: list[str], console: Console) -> int:
    """Run ``hetopt export``: write ``<run>/deploy/`` and print what was written."""
    if any(a in ("-h", "--help") for a in args):
        console.print(EXPORT_USAGE, highlight=False, markup=False)
        return 0
    run_dir, overwrite = parse_export_args(args)
    from hetopt.deploy import export_run

    result = export_run(run_dir, overwrite=overwrite)
    t = Table(title=f"Deployments for {result.plan.kind} '{result.plan.name}'")
    for col in ("deployment", "role", "device", "resource", "replicas", "per replica"):
        t.add_column(col, justify="right" if col in ("replicas", "per replica") else "left")
    for row in result.rows:
        t.add_row(
            str(row["deployment"]),
            str(row["role"]),
            str(row["device"]),
            str(row["resource"]),
            str(row["replicas"]),
            str(row["devices_per_replica"]),
        )
    console.print(t)
    console.print(
        f"{result.validated} of {len(result.rows)} manifests pass Kubernetes 1.37 schema "
        f"validation; wrote {', '.join(p.name for p in result.files)} to {result.out_dir} "
        f"in {result.seconds:.2f} s",
        highlight=False,
        markup=False,
    )
    return 0
