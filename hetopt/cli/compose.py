"""Compose the Hydra config tree into a plain dict (the CLI's one entry into Hydra's compose API)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hetopt.errors import InputError


def compose_config(overrides: list[str]) -> dict[str, Any]:
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from hetopt.cli.schema import register
    from hetopt.workloads import check_group_overrides, config_dir

    register()
    cdir = config_dir()
    check_group_overrides(overrides)
    try:
        with initialize_config_dir(config_dir=str(cdir), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
        data: Any = OmegaConf.to_container(cfg, resolve=True)
    except (HydraException, OmegaConfBaseException) as exc:
        raise InputError(_override_error(overrides, exc, cdir)) from None
    assert isinstance(data, dict)
    out: dict[str, Any] = {str(k): v for k, v in data.items()}
    if out.get("workload_file"):
        from hetopt.workloads import load_workload

        out["workload"] = load_workload(str(out["workload_file"]))
    return out


def _override_error(overrides: list[str], exc: BaseException, cdir: Path) -> str:
    """One paragraph: what Hydra or OmegaConf rejected, why, and what is valid."""
    def flat(e: BaseException) -> str:
        return " ".join(line.strip() for line in str(e).strip().splitlines() if line.strip())

    detail = flat(exc)
    cause = exc.__cause__ or exc.__context__
    if cause is not None and flat(cause) and flat(cause) not in detail:
        detail += f" ({flat(cause)})"
    message = f"Bad override in {overrides}: {detail}"
    if "Could not find" in detail or "group" in detail.lower():
        groups = {g.name: sorted(p.stem for p in g.glob("*.yaml"))
                  for g in sorted(cdir.iterdir()) if g.is_dir()}
        message += (" Config groups and their options ({}): {}.".format(
            cdir, "; ".join(f"{k}: {v}" for k, v in groups.items())))
    elif "reference_type=Dict" in detail and "append" in detail:
        message += (" Keys of a mapping such as hardware.inventory take '+' the first time "
                    "(e.g. '+hardware.inventory.H100=16').")
    return message + (f" `hetopt list` shows the groups; {cdir}/config.yaml and the group files "
                      "show the keys.")


def request_from_config_checked(overrides: list[str]) -> None:
    """Compose ``overrides`` and build the request, raising user errors as they come."""
    from hetopt.cli.config import request_from_config

    request_from_config(compose_config(overrides))
