"""Find and read the shipped configuration tree (``configs/``) and its workloads."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from hetopt.errors import InputError, UnknownNameError
from hetopt.inputs import (
    MAX_YAML_BYTES,
    did_you_mean,
    is_url,
    load_yaml_input,
    local_path,
    read_text_input,
)

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


def config_dir() -> Path:
    """The Hydra config tree: ``$HETOPT_CONFIG_DIR`` or ``configs/`` next to the package."""
    env = os.environ.get("HETOPT_CONFIG_DIR")
    path = Path(env) if env else Path(__file__).resolve().parent.parent / "configs"
    if not (path / "config.yaml").is_file():
        raise InputError(
            f"hetopt's config tree was not found at {path}. Install hetopt from its repository "
            f"with `pip install -e .`, or point HETOPT_CONFIG_DIR at a copy of `configs/`."
        )
    return path


def workload_names() -> tuple[str, ...]:
    """Names accepted by ``workload=``."""
    return tuple(sorted(p.stem for p in (config_dir() / "workload").glob("*.yaml")))


def check_workload_name(name: str) -> str:
    """``name`` if it is a workload name (letters, digits, ``_``, ``-``, ``.``), else an
    :class:`InputError`: a name is looked up in ``configs/workload/``, never joined as a path."""
    if not _NAME.fullmatch(name) or ".." in name:
        raise InputError(
            f"'{name}' is not a workload name: names are made of letters, digits, '_' and '-' "
            f"(shipped: {list(workload_names())}). To read a file of your own, give its path "
            f"with its .yaml or .mlir suffix (workload_file=path/to/agent.yaml)."
        )
    return name


def load_workload(name_or_path: str | Path) -> dict[str, Any]:
    """Read a workload by name (``voice_agent``), from a YAML file path, or from an MLIR file
    (``.mlir``, the agent dialects of :mod:`hetopt.mlir.convert`).

    Raises
    ------
    UnknownNameError
        For an unknown name; the message lists the shipped workloads (and the closest one).
    InputError
        For a name written as a path (``../x``), a URL, or a file that is missing, a directory,
        empty, binary, not UTF-8 or malformed (with the file and line).
    """
    text = str(name_or_path)
    path = local_path(text, "workload file")
    if not path.suffix and not path.exists():
        name = check_workload_name(text)
        path = config_dir() / "workload" / f"{name}.yaml"
        if not path.is_file():
            raise UnknownNameError(
                f"Unknown workload '{name}'.{did_you_mean(name, workload_names())} Shipped "
                f"workloads: {list(workload_names())}; or pass a YAML file path."
            )
    if path.suffix == ".mlir":
        from hetopt.mlir.convert import import_workload

        source = read_text_input(path, "workload file", MAX_YAML_BYTES)
        _check_mlir_nesting(source, path)
        return import_workload(source, str(path))
    data = load_yaml_input(path, "workload file")
    if not isinstance(data, dict):
        raise InputError(
            f"workload file {path}: a workload file must hold a mapping (name, "
            f"request_rate_per_s, nodes, edges), got "
            f"{type(data).__name__}."
        )
    return data


def check_group_overrides(overrides: list[str]) -> None:
    """Refuse a config-group choice written as a path (``workload=../../x``, ``sla=/etc/x``).

    Hydra joins a group option to the group's folder, so ``..`` would read any YAML file on the
    machine as a workload. Options are names; a file of one's own goes through
    ``workload_file=`` or ``fleet_file=``.
    """
    groups = {p.name for p in config_dir().iterdir() if p.is_dir()}
    for override in overrides:
        key, sep, value = override.partition("=")
        group = key.lstrip("+~")
        if not sep or group not in groups:
            continue
        for choice in value.strip("[]").split(","):
            choice = choice.strip()
            if choice and (
                ".." in choice
                or choice.startswith(("/", "\\", "~"))
                or "\\" in choice
                or is_url(choice)
            ):
                options = sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))
                hint = (
                    " or workload_file=path/to/agent.yaml for a file of your own"
                    if group == "workload"
                    else " or fleet_file=path/to/fleet.yaml for a file of your own"
                    if group == "fleet"
                    else ""
                )
                raise InputError(
                    f"Override '{override}': '{choice}' is not a {group} name; config-group "
                    f"options are names, not paths. Choose one of {options}{hint}."
                )


MAX_MLIR_NESTING = 256  # regions/blocks deep; an agent graph needs a handful


def _check_mlir_nesting(text: str, path: Path) -> None:
    """Refuse MLIR nested deeper than :data:`MAX_MLIR_NESTING` before MLIR's recursive parser
    runs out of stack (5,000 nested modules crash the process with a segmentation fault).

    Braces inside string literals and comments are not counted.

    Examples
    --------
    >>> _check_mlir_nesting('module { func.func @f() { "x{{{" } }', Path("a.mlir"))
    """
    depth = 0
    in_string = escaped = False
    for number, line in enumerate(text.splitlines(), start=1):
        for k, ch in enumerate(line):
            if in_string:
                escaped = ch == "\\" and not escaped
                if ch == '"' and not escaped:
                    in_string = False
            elif ch == '"':
                in_string = True
            elif line.startswith("//", k):
                break  # a comment runs to the end of the line
            elif ch in "{(":
                depth += 1
                if depth > MAX_MLIR_NESTING:
                    raise InputError(
                        f"workload file {path}: line {number} is nested more than "
                        f"{MAX_MLIR_NESTING} levels deep; an agent graph needs a few. Flatten "
                        f"it (a nested agent is an agent.call to another func.func)."
                    )
            elif ch in "})":
                depth -= 1
