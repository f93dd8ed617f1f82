"""Compose the Hydra config tree (the CLI's one entry into Hydra's compose API).

:func:`compose_run` composes ``configs/`` (plus the user's ``--config-dir`` directories, which
Hydra adds to its search path after the shipped tree) with the command line's overrides, and
returns both the job config and Hydra's own config (``hydra.run.dir``, the overrides), which
the CLI records in the run's ``.hydra/`` folder as Hydra does. :func:`compose_config` returns
only the resolved job config as a plain dict.

Two conveniences are applied to the overrides first: ``run_dir=X`` is an alias of
``hydra.run.dir=X``, and a device key of a mapping keyed by device name
(``hardware.inventory.B200=8``, ``mlir.targets.H100=cuda:sm_80``) needs no leading ``+``.
A ``workload_file`` or ``fleet_file`` replaces the ``workload`` or ``fleet`` block, and the
command line's ``workload.*`` or ``fleet.*`` keys then apply on top of the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hetopt.errors import InputError
from hetopt.inputs import did_you_mean

__all__ = ["Composition", "compose_config", "compose_run", "request_from_config_checked"]


@dataclass(frozen=True)
class Composition:
    """A composed command line.

    Attributes
    ----------
    cfg
        The resolved job config as plain data (``workload_file`` / ``fleet_file`` applied).
    job
        The job config as Hydra composed it (an OmegaConf node; ``.hydra/config.yaml``).
    hydra
        ``{"hydra": ...}``: Hydra's own config (``.hydra/hydra.yaml``).
    overrides
        The task overrides, as ``.hydra/overrides.yaml`` records them.
    run_dir
        The resolved ``hydra.run.dir``.
    explicit_run_dir
        Whether the user chose the run directory (``hydra.run.dir=`` or ``run_dir=``).
    sweep_dir
        The resolved ``hydra.sweep.dir`` (interpolations such as ``${now:...}`` resolved once,
        so a sweep's driver and its workers agree on it).
    imported
        For ``workload_file=my_agent.py:graph``: the
        :class:`~hetopt.importers.ImportResult` (its assumptions and YAML); else None.
    """

    cfg: dict[str, Any]
    job: Any
    hydra: Any
    overrides: tuple[str, ...]
    run_dir: Path
    explicit_run_dir: bool
    sweep_dir: Path
    imported: Any = None


def normalise_overrides(overrides: Sequence[str]) -> list[str]:
    """Apply the CLI's aliases: ``run_dir=`` -> ``hydra.run.dir=``; ``+`` optional on device keys.

    Examples
    --------
    >>> normalise_overrides(["run_dir=out/a", "mlir.targets.H100=cuda:sm_80", "sla.e2e_s=3"])
    ['hydra.run.dir=out/a', '++mlir.targets.H100=cuda:sm_80', 'sla.e2e_s=3']
    """
    from hetopt.cli.schema import mapping_keys

    keys = {o.partition("=")[0].lstrip("+~") for o in overrides if "=" in o}
    for a, b, why in (
        ("run_dir", "hydra.run.dir", "run_dir= is an alias of hydra.run.dir="),
        ("workload", "workload_file", "a workload_file replaces the workload group"),
        ("fleet", "fleet_file", "a fleet_file replaces the fleet group"),
    ):
        if a in keys and b in keys:
            raise InputError(
                f"Both {a}= and {b}= are given, and one would be ignored ({why}). Keep one of them."
            )
    maps = mapping_keys()
    out = []
    for o in overrides:
        key, sep, value = o.partition("=")
        if sep and key == "run_dir":
            o = f"hydra.run.dir={value}"
        elif sep and key[:1] not in "+~" and key.rpartition(".")[0] in maps:
            o = f"++{o}"
        out.append(o)
    return out


def compose_run(
    command: str, overrides: Sequence[str], config_dirs: Sequence[Path] = ()
) -> Composition:
    """Compose the config of ``hetopt <command> [overrides]``.

    Parameters
    ----------
    command
        The command; it is Hydra's job name (``hydra.job.name``), so the default run
        directory is ``outputs/<command>/<timestamp>``.
    overrides
        Hydra overrides from the command line.
    config_dirs
        ``--config-dir`` directories: more config groups and options.

    Raises
    ------
    InputError
        For an override Hydra or the schema rejects (one paragraph naming it and what is valid).
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf, open_dict
    from omegaconf.errors import OmegaConfBaseException

    from hetopt.cli.schema import register
    from hetopt.workloads import check_group_overrides, config_dir

    register()
    cdir = config_dir()
    check_group_overrides(list(overrides))
    given = normalise_overrides(overrides)
    if any(o.partition("=")[0].lstrip("+") == "workload_file" for o in given):
        # The workload.* keys are for the file, which may have keys the default workload lacks.
        given = [f"++{o}" if o.startswith("workload.") and "=" in o else o for o in given]
    extra = [d.resolve() for d in config_dirs]
    for d in extra:
        if not d.is_dir():
            raise InputError(
                f"--config-dir {d}: no such directory. Give a directory that "
                f"holds config groups (e.g. {d}/workload/my_agent.yaml)."
            )
    _check_config_dir_files(extra)
    search = searchpath_override(tuple(extra))
    if extra and any(o.partition("=")[0].lstrip("+") == "hydra.searchpath" for o in given):
        raise InputError(
            "Give extra config directories either with --config-dir or with "
            "hydra.searchpath=, not both."
        )
    try:
        with initialize_config_dir(config_dir=str(cdir), version_base="1.3", job_name=command):
            full = compose(
                config_name="config", overrides=[*given, *search], return_hydra_config=True
            )
        run_dir = Path(str(OmegaConf.select(full, "hydra.run.dir")))
        sweep_dir = Path(str(OmegaConf.select(full, "hydra.sweep.dir")))
        job = full.copy()
        with open_dict(job):
            del job["hydra"]
        hydra_cfg = OmegaConf.masked_copy(full, "hydra")
        data: Any = OmegaConf.to_container(job, resolve=True)
        # As typed: an override may hold an interpolation (hydra.run.dir=runs/${sla.ttft_s}).
        task = [str(o) for o in OmegaConf.to_container(full.hydra.overrides.task, resolve=False)]  # type: ignore[union-attr]
        hydra_list: Any = OmegaConf.to_container(full.hydra.overrides.hydra, resolve=False)
        hydra_ovr = [str(o) for o in hydra_list]
    except (HydraException, OmegaConfBaseException) as exc:
        raise InputError(_override_error(list(overrides), exc, cdir, extra)) from None
    except AssertionError:
        # OmegaConf asserts when an override sets a key under a null node (fleet.synthetic.n_ops
        # without fleet=synthetic, hardware.devices.x=1).
        raise InputError(_null_node_message(list(overrides), cdir)) from None
    except (yaml.YAMLError, UnicodeDecodeError, ValueError) as exc:
        # A --config-dir group file Hydra could not read (checked again below, naming it).
        _check_config_dir_files(extra)
        raise InputError(
            f"A config file of {[str(d) for d in extra] or [str(cdir)]} could not "
            f"be read: {exc}".replace("\n", " ")
        ) from None
    assert isinstance(data, dict)
    cfg: dict[str, Any] = {str(k): v for k, v in data.items()}
    imported = None
    if cfg.get("workload_file"):
        workload, imported = read_workload_file(cfg)
        cfg["workload"] = _overlay(workload, cfg, "workload", task)
    elif cfg.get("workload_annotations"):
        raise InputError(
            f"workload_annotations={cfg['workload_annotations']} is given without a graph to "
            f"annotate: it goes with workload_file=my_agent.py:graph (a LangGraph graph). "
            f"Add workload_file, or remove workload_annotations."
        )
    if cfg.get("fleet_file"):
        cfg["fleet"] = _overlay(
            {**(cfg.get("fleet") or {}), **_read_fleet_file(Path(str(cfg["fleet_file"])))},
            cfg,
            "fleet",
            task,
        )
    if extra and isinstance((cfg.get("fleet") or {}).get("tenants"), list):
        cfg["fleet"] = {
            **cfg["fleet"],
            "tenants": _user_workloads(cfg["fleet"]["tenants"], cdir, extra),
        }
    _check_sla_group(cfg.get("sla"), task)
    explicit = any(o.partition("=")[0].lstrip("+") == "hydra.run.dir" for o in hydra_ovr)
    return Composition(
        cfg=cfg,
        job=job,
        hydra=hydra_cfg,
        overrides=tuple(task),
        run_dir=run_dir,
        explicit_run_dir=explicit,
        sweep_dir=sweep_dir,
        imported=imported,
    )


def read_workload_file(cfg: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    """The workload mapping of ``cfg``'s ``workload_file`` (with ``workload_annotations``), and
    the :class:`~hetopt.importers.ImportResult` when it is a graph in code (else None).

    Every command that reads ``workload_file`` (single runs, sweep points, sweep workers) reads
    it here.
    """
    from hetopt.workloads import load_workload_data, split_object_target

    text = str(cfg["workload_file"])
    annotations = cfg.get("workload_annotations")
    if split_object_target(text) is not None:
        from hetopt.importers import import_target

        result = import_target(text, annotations)
        return result.workload, result
    return load_workload_data(text, annotations=annotations), None


def workload_from_file(cfg: Mapping[str, Any], task: Sequence[str]) -> dict[str, Any]:
    """``cfg``'s ``workload_file`` (:func:`read_workload_file`) with the ``workload.*`` keys
    of the overrides ``task`` set on top, their values read from ``cfg``.

    What a single run composes; sweep points and the sweep's checks of its values read their
    workload here, so a ``workload.*`` override given with ``workload_file`` is never dropped.
    """
    return _overlay(read_workload_file(cfg)[0], cfg, "workload", task)


def _check_sla_group(sla: Any, task: Sequence[str]) -> None:
    """Refuse a composed ``sla`` group whose TTFT or TBT bound exceeds its end-to-end bound.

    Per-phase bounds the user set are checked against the end-to-end bound: those given on
    the command line, and those a group file sets to something other than the defaults. A
    per-phase bound the user did not touch (the default 250 ms TTFT, or a group file's TTFT
    when only ``sla.e2e_s`` is given on the command line, as in ``workload=worked_example
    sla.e2e_s=0.13``) is implied by a tighter end-to-end bound rather than contradicted, and
    the printed plan shows both.
    """
    from hetopt.sla import Sla, check_bounds

    if not isinstance(sla, Mapping):
        return
    given = {o.partition("=")[0].lstrip("+~") for o in task}
    defaults = Sla()

    def set_by_user(key: str) -> bool:
        if f"sla.{key}" in given:
            return True
        return "sla.e2e_s" not in given and sla.get(key) != getattr(defaults, key)

    block = {k: v for k, v in sla.items() if k not in ("ttft_s", "tbt_s") or set_by_user(k)}
    check_bounds(block, "sla (the sla group with the command line's sla.* overrides)")


def compose_config(overrides: list[str], config_dirs: Sequence[Path] = ()) -> dict[str, Any]:
    """The resolved job config of ``overrides`` as plain data (see :func:`compose_run`)."""
    return compose_run("plan", overrides, config_dirs).cfg


def _user_workloads(tenants: list[Any], cdir: Path, extra: Sequence[Path]) -> list[Any]:
    """Tenants whose ``workload`` names a ``--config-dir`` workload get its content inline."""
    from hetopt.workloads import load_workload_data

    out = []
    for tenant in tenants:
        name = tenant.get("workload") if isinstance(tenant, Mapping) else None
        if (
            isinstance(name, str)
            and "/" not in name
            and Path(name).suffix == ""
            and not (cdir / "workload" / f"{name}.yaml").is_file()
        ):
            found = [
                d / "workload" / f"{name}.yaml"
                for d in extra
                if (d / "workload" / f"{name}.yaml").is_file()
            ]
            if found:
                tenant = {**tenant, "workload": load_workload_data(str(found[0]))}
        out.append(tenant)
    return out


def _read_fleet_file(path: Path) -> dict[str, Any]:
    from hetopt.graph.architectures import read_yaml_file

    loaded = read_yaml_file(path)
    if not isinstance(loaded, Mapping):
        raise InputError(f"{path}: a fleet file must hold a mapping (name, tenants).")
    import dataclasses

    from hetopt.cli.schema import FleetSchema
    from hetopt.inputs import unknown_keys_message

    valid = [f.name for f in dataclasses.fields(FleetSchema)]
    unknown = sorted(str(k) for k in loaded if str(k) not in valid)
    if unknown:
        raise InputError(
            f"fleet file {path}: unknown top-level key(s) "
            f"{unknown_keys_message(unknown, valid)}. Valid keys: {valid}."
        )
    return {str(k): v for k, v in loaded.items()}


def _overlay(
    base: Mapping[str, Any], cfg: Mapping[str, Any], group: str, task: Sequence[str]
) -> dict[str, Any]:
    """``base`` (a file's content) with the command line's ``<group>.*`` keys set on top.

    The values are read from the composed ``cfg``, where the schema already type-checked them.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    node = OmegaConf.create(dict(base))
    composed = OmegaConf.create(dict(cfg))
    for o in OverridesParser.create().parse_overrides(list(task)):
        key = o.key_or_group
        if not key.startswith(group + "."):
            continue
        inner = key[len(group) + 1 :]
        if o.is_delete():
            parent, _, leaf = inner.rpartition(".")
            holder = OmegaConf.select(node, parent) if parent else node
            if holder is not None and leaf in holder:
                del holder[leaf]
            continue
        OmegaConf.update(node, inner, OmegaConf.select(composed, key), merge=False, force_add=True)
    data: Any = OmegaConf.to_container(node, resolve=True)
    return {str(k): v for k, v in data.items()}


def _override_error(
    overrides: list[str], exc: BaseException, cdir: Path, extra: Sequence[Path] = ()
) -> str:
    """One paragraph: what Hydra or OmegaConf rejected, why, and what is valid."""

    def flat(e: BaseException) -> str:
        return " ".join(line.strip() for line in str(e).strip().splitlines() if line.strip())

    detail = flat(exc)
    cause = exc.__cause__ or exc.__context__
    if cause is not None and flat(cause) and flat(cause) not in detail:
        detail += f" ({flat(cause)})"
    unknown = re.search(r"Could not override '([^']+)'.*?full_key: ([\w.]+)", detail)
    missing = re.search(r"Could not find '([\w-]+)/([^']+)'", detail)
    if unknown and (unknown[1] == unknown[2] or unknown[1].startswith(unknown[2] + ".")):
        # The overridden key, or a node on its path, does not exist: most likely a typo.
        return _unknown_key_message(overrides, unknown[1], unknown[2], cdir, extra)
    message = f"Bad override in {overrides}: {detail}"
    if missing:
        options = config_groups([cdir, *extra]).get(missing[1], [])
        message += did_you_mean(missing[2], options).replace(
            "Did you mean '", f"Did you mean '{missing[1]}="
        )
    if "Could not find" in detail or "group" in detail.lower():
        groups = config_groups([cdir, *extra])
        message += " Config groups and their options ({}): {}.".format(
            ", ".join(str(d) for d in [cdir, *extra]),
            "; ".join(f"{k}: {v}" for k, v in groups.items()),
        )
    elif "reference_type=Dict" in detail and "append" in detail:
        message += (
            " Keys of a mapping such as hardware.inventory take '+' the first time "
            "(e.g. '+hardware.inventory.H100=16')."
        )
    return message + (
        f" `hetopt list` shows the groups; {cdir}/config.yaml and the group files show the keys."
    )


def _check_config_dir_files(dirs: Sequence[Path]) -> None:
    """Read every YAML file of the ``--config-dir`` directories with hetopt's safe reader.

    Hydra loads the chosen group files itself, without hetopt's limits; reading them first
    refuses a binary or non-UTF-8 file, a syntax error (with line and column), an alias bomb
    or an oversized document with exit 2, naming the file.
    """
    from hetopt.inputs import load_yaml_input

    for d in dirs:
        for path in sorted(d.rglob("*.yaml")):
            load_yaml_input(path, "config file (--config-dir)")


def _null_node_message(overrides: list[str], cdir: Path) -> str:
    """An override below a node that is null in the composed config (so it cannot hold keys)."""
    nested = [o for o in overrides if o.partition("=")[0].lstrip("+~").count(".") >= 2]
    return (
        f"Bad override in {overrides}: {nested or 'a key'} sets a key under a config node "
        f"that is null here, so it has no keys to set (fleet.synthetic.* needs "
        f"fleet=synthetic; hardware.devices is a list, not a mapping). Choose the group "
        f"first (e.g. fleet=synthetic fleet.synthetic.n_ops=200) or set the whole value "
        f"(hardware.devices=[H100,B200]). {cdir}/config.yaml and the group files show the "
        f"keys."
    )


def _unknown_key_message(
    overrides: list[str], key: str, full_key: str, cdir: Path, extra: Sequence[Path]
) -> str:
    """``sla.e2e=1``: the node that lacks the key, the closest key it has, and all its keys."""
    parent, _, name = full_key.rpartition(".")
    known = config_groups([cdir, *extra])
    groups = [o for o in overrides if o.partition("=")[0] in known]  # choices, no typo in them
    keys: list[str] = []
    try:
        base = compose_run("plan", groups, extra).cfg
        node: Any = base
        for part in parent.split(".") if parent else []:
            node = node.get(part) if isinstance(node, Mapping) else None
        if isinstance(node, Mapping):
            keys = sorted(str(k) for k in node)
    except InputError:
        pass  # no base config to read keys from: the message goes without the key list
    where = f"'{parent}'" if parent else "the top level of the config"
    hint = did_you_mean(name, keys)
    if hint and parent:
        hint = hint.replace("Did you mean '", f"Did you mean '{parent}.")
    listed = f" Keys there: {keys}." if keys else ""
    return (
        f"Bad override '{key}' in {overrides}: '{name}' is not in {where}.{hint}{listed} "
        f"`hetopt <command> --help` lists the keys each command reads; {cdir}/config.yaml "
        f"and the group files show them all."
    )


def searchpath_override(config_dirs: tuple[Path, ...]) -> list[str]:
    """``hydra.searchpath=[file://...]`` for the ``--config-dir`` directories (none: ``[]``).

    Every compose gets the user's directories this way: single runs, a sweep's driver checks,
    and through Hydra's own overrides the sweeper and each worker (joblib processes, Ray tasks).
    Paths are quoted, so spaces and commas survive Hydra's override grammar.

    Examples
    --------
    >>> searchpath_override((Path("/a"), Path("/b c")))
    ["hydra.searchpath=['file:///a','file:///b c']"]
    """
    if not config_dirs:
        return []
    quoted = ",".join(
        "'" + f"file://{d.resolve()}".replace("\\", "\\\\").replace("'", "\\'") + "'"
        for d in config_dirs
    )
    return [f"hydra.searchpath=[{quoted}]"]


def config_groups(dirs: Sequence[Path]) -> dict[str, list[str]]:
    """Config groups and their options over the search path ``dirs`` (Hydra's own left out)."""
    groups: dict[str, set[str]] = {}
    for d in dirs:
        if not d.is_dir():
            continue
        for g in sorted(d.iterdir()):
            if g.is_dir() and g.name != "hydra":
                groups.setdefault(g.name, set()).update(p.stem for p in g.glob("*.yaml"))
    return {k: sorted(v) for k, v in sorted(groups.items())}


def request_from_config_checked(overrides: list[str]) -> None:
    """Compose ``overrides`` and build the request, raising user errors as they come."""
    from hetopt.cli.config import request_from_config

    request_from_config(compose_config(overrides))
