"""A finished run directory read as serving groups: what one Deployment each runs.

A *serving group* is a set of identical replicas on one device type: an LLM pool (one
``pool_key``, :mod:`hetopt.costs.pools`), an LLM operator's dedicated replicas, a non-LLM
operator's dedicated devices, or the shared pool of one device type that several small
operators time-share. :func:`read_run` reads the files ``hetopt plan`` (``plan.json``) or
``hetopt fleet`` (``placement.csv``, ``llm_pools.csv``, ``devices.csv``) wrote, with the saved
``config.yaml`` for the model each dedicated LLM operator runs, and returns the groups. It
never re-plans: the counts are the plan's own.

* an LLM pool: ``replicas`` and ``devices_per_replica`` of its ``llm_pools`` row;
* a dedicated LLM operator: its devices over ``tp x pp`` of its configuration;
* a dedicated non-LLM operator: one replica per device;
* a shared pool: the device type's pooled devices, one replica each.

Examples
--------
>>> parse_config("tp2/pp2/b32")
(2, 2, 32, 0)
>>> parse_config("agg/tp1/b64/c512")
(1, 1, 64, 512)
>>> parse_config("b1")
(1, 1, 1, 0)
>>> key_parts("llama-3-8b/fp16/decode/H100/tp1/pp2/b32/ctx2048x256@chat/llm")
('llama-3-8b', 'fp16', 'decode', 'H100', 'tp1/pp2/b32')
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hetopt.costs.pools import config_parts, key_family
from hetopt.errors import InputError
from hetopt.inputs import load_yaml_input, read_text_input

__all__ = [
    "RunPlan",
    "ServingGroup",
    "key_parts",
    "parse_config",
    "read_run",
]

_PHASES = ("prefill", "decode", "agg")


@dataclass(frozen=True)
class ServingGroup:
    """Identical replicas on one device type: what one Kubernetes Deployment runs.

    Attributes
    ----------
    label
        Readable identity (``llm-pool llama-3-8b/.../ctx1024x256@llm``, ``pool L4``,
        ``support-voice/stt``), unique within a run.
    device
        Device type (catalog name).
    replicas
        Replicas the plan counts.
    devices_per_replica
        Devices (GPUs, accelerators, CPU sockets) one replica holds: ``tp x pp`` for an LLM
        replica, 1 otherwise.
    members
        The operators it serves (``tenant/operator`` in a fleet).
    phase
        ``prefill``, ``decode``, ``agg`` (aggregated serving) for an LLM group, ``""`` otherwise.
    model, precision
        The LLM's architecture name and precision (``""`` for a non-LLM group).
    tp, pp, batch, chunk_tokens
        The configuration: parallel degrees, batch (``--max-num-seqs``), prefill chunk (``agg``
        only, else 0).
    pool_key
        The LLM pool key (``""`` for a dedicated operator or a non-LLM group).
    """

    label: str
    device: str
    replicas: int
    devices_per_replica: int
    members: tuple[str, ...]
    phase: str = ""
    model: str = ""
    precision: str = ""
    tp: int = 1
    pp: int = 1
    batch: int = 1
    chunk_tokens: int = 0
    pool_key: str = ""

    @property
    def is_llm(self) -> bool:
        """Whether the group serves an LLM phase (vLLM replicas)."""
        return bool(self.phase)

    @property
    def devices(self) -> int:
        """Devices the group holds: ``replicas x devices_per_replica``."""
        return self.replicas * self.devices_per_replica


@dataclass(frozen=True)
class RunPlan:
    """A run directory's plan as serving groups.

    Attributes
    ----------
    run_dir
        The run directory.
    kind
        ``plan`` (one agent) or ``fleet``.
    name
        Workload or fleet name.
    groups
        The serving groups, in the plan's order.
    device_totals
        Devices per type as the plan's device table states them (``total``), for checks.
    config
        The saved ``config.yaml``.
    """

    run_dir: Path
    kind: str
    name: str
    groups: tuple[ServingGroup, ...]
    device_totals: Mapping[str, int]
    config: Mapping[str, Any]


def parse_config(config: str) -> tuple[int, int, int, int]:
    """``(tp, pp, batch, chunk)`` of a configuration label (``tp2/pp2/b32``, ``agg/tp1/b8/c512``).

    Raises
    ------
    ValueError
        The label is not one hetopt writes.
    """
    parts = config_parts(config)
    if parts is None:
        raise ValueError(f"configuration {config!r} is not tp<N>/[pp<N>/]b<N> or b<N>")
    return parts


def key_parts(key: str) -> tuple[str, str, str, str, str]:
    """``(model, precision, phase, device, config)`` of an LLM pool key.

    Raises
    ------
    ValueError
        The key does not have hetopt's form (:func:`hetopt.costs.pools.pool_key`).
    """
    family, config = key_family(key)
    head = family.split("@", 1)[0].split("/")
    if len(head) != 5 or not config or head[2] not in _PHASES or not head[4].startswith("ctx"):
        raise ValueError(f"pool key {key!r} is not model/precision/phase/device/config/ctx...")
    model, precision, phase, device = head[:4]
    # an aggregated key's configuration is written agg/... in the plan's tables
    return model, precision, phase, device, f"agg/{config}" if phase == "agg" else config


def _phase_of(op: str, config: str) -> str:
    """``prefill``/``decode``/``agg`` for an LLM operator's configuration, else ``""``."""
    if config.startswith("agg/"):
        return "agg"
    if config.startswith("tp"):
        return "prefill" if op.endswith(".prefill") else "decode"
    return ""


def _models(data: Mapping[str, Any], source: str) -> dict[str, tuple[str, str]]:
    """Operator id and node id -> (model, precision) of every LLM operator of a workload
    mapping (the workload file format), by the planner's own decomposition."""
    from hetopt.graph.decompose import decompose
    from hetopt.graph.ir import agent_graph_from_dict

    out: dict[str, tuple[str, str]] = {}
    for op in decompose(agent_graph_from_dict(dict(data), source=source)).ops:
        if op.llm is not None:
            value = (op.llm.arch.name, op.llm.precision)
            out[op.id] = value
            out.setdefault(op.node_id, value)
    return out


def _model_of(models: Mapping[str, tuple[str, str]], op: str, where: str) -> tuple[str, str]:
    from hetopt.costs.pools import call_of

    node = op.rsplit(".", 1)[0]
    for key in (op, node, call_of(node)):
        if key in models:
            return models[key]
    raise InputError(
        f"{where}: LLM operator '{op}' is not an LLM node of the saved config.yaml's "
        f"workload; the plan and config.yaml come from different runs. Re-run the plan."
    )


def _whole(value: Any, field: str, where: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not (number >= 0 and number == int(number)):
        raise InputError(
            f"{where}: field '{field}' must be a whole number >= 0, got {value!r}; the file "
            f"is damaged. Re-run the plan to write it again."
        )
    return int(number)


def _config_of(config: str, field: str, where: str) -> tuple[int, int, int, int]:
    try:
        return parse_config(config)
    except ValueError as exc:
        raise InputError(f"{where}: field '{field}': {exc}; the file is damaged.") from None


def _pool_group(row: Mapping[str, Any], where: str, member_sep: str) -> ServingGroup:
    key = str(row.get("pool") or row.get("llm_pool") or "")
    try:
        model, precision, phase, device, config = key_parts(key)
    except ValueError as exc:
        raise InputError(f"{where}: {exc}; the file is damaged. Re-run the plan.") from None
    tp, pp, batch, chunk = _config_of(config, "pool", where)
    members = tuple(m for m in str(row.get("members") or "").split(member_sep) if m)
    return ServingGroup(
        label=f"llm-pool {key}",
        device=device,
        replicas=_whole(row.get("replicas"), "replicas", where),
        devices_per_replica=_whole(row.get("devices_per_replica"), "devices_per_replica", where),
        members=members,
        phase=phase,
        model=model,
        precision=precision,
        tp=tp,
        pp=pp,
        batch=batch,
        chunk_tokens=chunk,
        pool_key=key,
    )


def _dedicated_group(
    label: str, op: str, device: str, config: str, devices: int, models: Any, where: str
) -> ServingGroup:
    """A dedicated operator's group: LLM replicas of ``tp x pp`` devices, else one per device."""
    phase = _phase_of(op, config)
    if not phase:  # a tool, retrieval or encoder: one device per replica ("b4", "profiled")
        return ServingGroup(label, device, devices, 1, (label,))
    tp, pp, batch, chunk = _config_of(config, "config", where)
    per = tp * pp
    if devices % per:
        raise InputError(
            f"{where}: operator '{label}' holds {devices} {device} devices, not a multiple of "
            f"its configuration {config} ({per} per replica); the file is damaged."
        )
    model, precision = _model_of(models, op, where)
    return ServingGroup(
        label, device, devices // per, per, (label,), phase, model, precision, tp, pp, batch, chunk
    )


def _pool_groups(pooled: Mapping[str, int], members: Mapping[str, list[str]]) -> list[ServingGroup]:
    return [
        ServingGroup(f"pool {device}", device, pooled.get(device, 0), 1, tuple(ops))
        for device, ops in members.items()
    ]


def _read_single(run_dir: Path, cfg: Mapping[str, Any]) -> RunPlan:
    plan_file = run_dir / "plan.json"
    where = str(plan_file)
    try:
        saved = json.loads(read_text_input(plan_file, "saved plan"))
        placement = list(saved["placement"])
        pools = list(saved.get("llm_pools") or [])
        devices = {str(r["device"]): r for r in saved["devices"]}
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{where}: not valid JSON ({exc.msg} at line {exc.lineno}); the file is damaged. "
            f"Re-run `hetopt plan`."
        ) from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise InputError(
            f"{where}: not a hetopt plan (missing {exc}); re-run `hetopt plan`."
        ) from None
    models: dict[str, tuple[str, str]] = {}
    if any(
        not r.get("llm_pool") and _phase_of(str(r["operator"]), str(r["config"])) for r in placement
    ):
        models = _models(cfg["workload"], f"{run_dir}/config.yaml")
    groups = [_pool_group(r, where, ";") for r in pools]
    shared: dict[str, list[str]] = {}
    for row in placement:
        op, device, config = str(row["operator"]), str(row["device"]), str(row["config"])
        if row.get("llm_pool"):
            continue
        if row.get("shared_pool"):
            shared.setdefault(device, []).append(op)
            continue
        count = _whole(row.get("count"), f"placement[{op}].count", where)
        groups.append(_dedicated_group(op, op, device, config, count, models, where))
    pooled = {d: _whole(r.get("pooled"), f"devices[{d}].pooled", where) for d, r in devices.items()}
    groups += _pool_groups(pooled, shared)
    totals = {d: _whole(r.get("total"), f"devices[{d}].total", where) for d, r in devices.items()}
    name = str(saved.get("workload") or "plan")
    return RunPlan(run_dir, "plan", name, tuple(groups), totals, cfg)


def _csv_rows(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    text = read_text_input(path, "fleet plan table")
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise InputError(
            f"{path}: column(s) {missing} missing; this is not a `hetopt fleet` table or it "
            f"is damaged. Re-run `hetopt fleet`."
        )
    return list(reader)


def _fleet_models(cfg: Mapping[str, Any], run_dir: Path) -> dict[str, dict[str, tuple[str, str]]]:
    from hetopt.workloads import load_workload_data

    data = cfg.get("fleet") or {}
    if not isinstance(data, Mapping) or not data.get("tenants"):
        raise InputError(
            f"{run_dir}/config.yaml: the fleet has no 'tenants' list (a synthetic fleet runs on "
            f"made-up device types that no Kubernetes device plugin serves). Export a fleet of "
            f"catalog devices (fleet=enterprise or fleet_file=...)."
        )
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for tenant in data["tenants"]:
        name, workload = str(tenant.get("name")), tenant.get("workload")
        mapping = workload if isinstance(workload, Mapping) else load_workload_data(str(workload))
        out[name] = _models(mapping, f"{run_dir}/config.yaml tenant '{name}'")
    return out


def _read_fleet(run_dir: Path, cfg: Mapping[str, Any]) -> RunPlan:
    place_file, pools_file, dev_file = (
        run_dir / "placement.csv",
        run_dir / "llm_pools.csv",
        run_dir / "devices.csv",
    )
    place = _csv_rows(
        place_file, ("tenant", "op", "device", "config", "dedicated_devices", "pooled", "llm_pool")
    )
    pools = _csv_rows(pools_file, ("llm_pool", "devices_per_replica", "replicas", "members"))
    devs = _csv_rows(dev_file, ("device", "pool", "total"))
    groups = [_pool_group(r, str(pools_file), ";") for r in pools]
    models: dict[str, dict[str, tuple[str, str]]] | None = None
    shared: dict[str, list[str]] = {}
    for row in place:
        tenant, op, device, config = row["tenant"], row["op"], row["device"], row["config"]
        if row["llm_pool"]:
            continue
        label = f"{tenant}/{op}"
        if row["pooled"].strip().lower() == "true":
            shared.setdefault(device, []).append(label)
            continue
        if models is None and _phase_of(op, config):
            models = _fleet_models(cfg, run_dir)
        tenant_models = (models or {}).get(re.sub(r"#\d+$", "", tenant), {})
        devices = _whole(row["dedicated_devices"], f"{label}.dedicated_devices", str(place_file))
        groups.append(
            _dedicated_group(label, op, device, config, devices, tenant_models, str(place_file))
        )
    pooled = {r["device"]: _whole(r["pool"], f"{r['device']}.pool", str(dev_file)) for r in devs}
    groups += _pool_groups(pooled, shared)
    totals = {r["device"]: _whole(r["total"], f"{r['device']}.total", str(dev_file)) for r in devs}
    name = str((cfg.get("fleet") or {}).get("name") or "fleet")
    return RunPlan(run_dir, "fleet", name, tuple(groups), totals, cfg)


def read_run(run_dir: str | Path) -> RunPlan:
    """Read a finished ``hetopt plan`` or ``hetopt fleet`` run directory as serving groups.

    Raises
    ------
    InputError
        Not a directory, not a finished plan or fleet run, or a damaged file (named).

    Examples
    --------
    >>> read_run("/nonexistent/run")
    Traceback (most recent call last):
    ...
    hetopt.errors.InputError: /nonexistent/run: not a directory; point hetopt export at ...
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(
            f"{run_dir}: not a directory; point hetopt export at a run directory written by "
            f"`hetopt plan` (plan.json) or `hetopt fleet` (fleet_plan.json)."
        )
    cfg_file = run_dir / "config.yaml"
    if (run_dir / "fleet_plan.json").is_file():
        reader = _read_fleet
    elif (run_dir / "plan.json").is_file():
        reader = _read_single
    else:
        raise InputError(
            f"{run_dir}: holds neither plan.json nor fleet_plan.json; point hetopt export at "
            f"a finished `hetopt plan` or `hetopt fleet` run directory."
        )
    if not cfg_file.is_file():
        raise InputError(f"{cfg_file} is missing; the run directory is incomplete. Re-run it.")
    cfg = load_yaml_input(cfg_file, "saved config")
    if not isinstance(cfg, dict):
        raise InputError(f"{cfg_file}: not a hetopt run's config (a mapping); re-run the plan.")
    return reader(run_dir, cfg)
