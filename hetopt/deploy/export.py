"""Export a finished run directory's plan as deployable files in ``<run>/deploy/``.

:func:`export_run` reads the run (:func:`hetopt.deploy.groups.read_run`), resolves each device
type's device plugin from the saved catalog settings, builds one Deployment per serving group
(:mod:`hetopt.deploy.k8s`), validates every manifest, and only then writes, each file
atomically (:mod:`hetopt.atomic`):

* ``deploy/deployments.yaml``: the Deployments, one YAML document each;
* ``deploy/vllm_args.json``: per LLM Deployment, its ``vllm serve`` command line;
* ``deploy/topology.yaml``: per model, aggregated or prefill/decode workers and KV transfer;
* ``deploy/summary.csv``: one row per Deployment (group, device, replicas, devices).

Nothing outside ``deploy/`` is touched; an existing ``deploy/`` is refused unless
``overwrite=True``.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hetopt.deploy.groups import RunPlan, read_run
from hetopt.errors import OutputError

__all__ = ["ExportResult", "export_run", "catalog_of"]


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_run` wrote.

    Attributes
    ----------
    plan
        The run as serving groups.
    out_dir
        ``<run>/deploy``.
    files
        The written files, in order.
    rows
        One ``{deployment, group, device, replicas, devices_per_replica, role}`` per manifest.
    validated
        Manifests that passed schema validation (all of them, or the export failed).
    seconds
        Wall time of the export.
    """

    plan: RunPlan
    out_dir: Path
    files: tuple[Path, ...]
    rows: tuple[Mapping[str, Any], ...]
    validated: int
    seconds: float


def catalog_of(cfg: Mapping[str, Any]) -> Any:
    """The hardware catalog the run was planned on (its ``hardware.catalog_path`` and
    ``extra_rows``)."""
    from hetopt.hardware import load_catalog

    hw = cfg.get("hardware") or {}
    return load_catalog(hw.get("catalog_path"), extra_rows=tuple(hw.get("extra_rows") or ()))


def _yaml_docs(docs: list[dict[str, Any]]) -> str:
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when PyYAML has it
    return yaml.dump_all(docs, Dumper=dumper, sort_keys=False, explicit_start=True)


def export_run(run_dir: str | Path, overwrite: bool = False) -> ExportResult:
    """Write ``<run_dir>/deploy/`` for a finished ``hetopt plan`` or ``hetopt fleet`` run.

    Raises
    ------
    InputError
        Not a finished run, a damaged file, ``kubernetes-validate`` missing, or (as
        :class:`~hetopt.deploy.k8s.DeployError`) a device without a known device plugin.
    OutputError
        ``deploy/`` exists and ``overwrite`` is false, or a file cannot be written.
    """
    from hetopt.atomic import write_json_atomic, write_text_atomic
    from hetopt.deploy.k8s import (
        DeployError,
        check_fits_a_node,
        deployment,
        is_disaggregated,
        resolve_targets,
        topology,
        validate_manifests,
        vllm_args,
    )

    start = time.perf_counter()
    plan = read_run(run_dir)
    out_dir = plan.run_dir / "deploy"
    if out_dir.exists() and not overwrite:
        raise OutputError(
            f"{out_dir} already exists (an earlier export); hetopt export does not overwrite "
            f"it. Remove it, or pass overwrite=true to replace its files."
        )
    groups = [g for g in plan.groups if g.replicas > 0]
    if not groups:
        raise DeployError(
            f"{plan.run_dir}: the plan counts no device replicas (a workload with a measured "
            f"profile is planned on its own abstract devices, not on catalog hardware), so "
            f"there is nothing to deploy. Export a plan of a catalog workload."
        )
    targets = resolve_targets(sorted({g.device for g in groups}), catalog_of(plan.config))
    disagg = is_disaggregated(groups)
    manifests, rows, args = [], [], {}
    names: dict[str, str] = {}
    for g in groups:
        check_fits_a_node(g, targets[g.device])
        d = deployment(g, targets[g.device], plan.name, g.model in disagg)
        name = d["metadata"]["name"]
        names[g.label] = name
        manifests.append(d)
        role = d["spec"]["template"]["metadata"]["labels"].get("llm-d.ai/role", "operators")
        rows.append(
            {
                "deployment": name,
                "group": g.label,
                "device": g.device,
                "resource": targets[g.device].resource or "cpu",
                "replicas": g.replicas,
                "devices_per_replica": g.devices_per_replica,
                "role": role,
            }
        )
        if g.is_llm:
            args[name] = vllm_args(g, g.model in disagg)
    validated = validate_manifests(manifests, str(plan.run_dir))
    topo = topology(groups, names, targets)
    files = (
        out_dir / "deployments.yaml",
        out_dir / "vllm_args.json",
        out_dir / "topology.yaml",
        out_dir / "summary.csv",
    )
    write_text_atomic(files[0], _yaml_docs(manifests))
    write_json_atomic(files[1], args)
    write_text_atomic(files[2], _yaml_docs([topo]))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["deployment"])
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(files[3], buf.getvalue())
    return ExportResult(plan, out_dir, files, tuple(rows), validated, time.perf_counter() - start)
