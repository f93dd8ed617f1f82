"""Find and read the shipped configuration tree (``configs/``) and its workloads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hetopt.errors import InputError, UnknownNameError
from hetopt.graph.architectures import read_yaml_file


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


def load_workload(name_or_path: str | Path) -> dict[str, Any]:
    """Read a workload by name (``voice_agent``), from a YAML file path, or from an MLIR file
    (``.mlir``, the agent dialects of :mod:`hetopt.mlir.convert`).

    Raises
    ------
    UnknownNameError
        For an unknown name; the message lists the shipped workloads.
    InputError
        For malformed YAML, with the file and line.
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = config_dir() / "workload" / f"{name_or_path}.yaml"
        if not path.is_file():
            raise UnknownNameError(
                f"Unknown workload '{name_or_path}'. Shipped workloads: "
                f"{list(workload_names())}; or pass a YAML file path."
            )
    if path.suffix == ".mlir":
        from hetopt.mlir.convert import import_workload

        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{path}: cannot read the file ({exc.strerror or exc}).") from None
        return import_workload(text, str(path))
    data = read_yaml_file(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: a workload file must hold a mapping (name, nodes, edges).")
    return data
