"""Turn a composed Hydra config (a plain dict) into the library's frozen dataclasses."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from hetopt.costs.table import CostParams
from hetopt.costs.tco import TcoParams
from hetopt.errors import InputError
from hetopt.hardware.spec import HardwareSpec
from hetopt.inputs import unknown_keys_message
from hetopt.pipeline import PlanRequest
from hetopt.sla import Sla
from hetopt.solvers.base import SolverOptions
from hetopt.workloads import Workload

if TYPE_CHECKING:
    from hetopt.replay.config import ReplayConfig

T = TypeVar("T")
_TUPLES = {
    "tp_degrees",
    "prefill_batch_sizes",
    "decode_batch_sizes",
    "devices",
    "extra_rows",
    "baselines",
}


def _build(cls: type[T], group: str, data: Mapping[str, Any] | None) -> T:
    if data is not None and not isinstance(data, Mapping):
        raise InputError(
            f"Config group '{group}' must be a mapping of keys to values, got "
            f"{type(data).__name__} {data!r}."
        )
    data = dict(data or {})
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(str(k) for k in set(data) - names)
    if unknown:
        raise InputError(
            f"Unknown key(s) {unknown_keys_message(unknown, sorted(names))} in config group "
            f"'{group}'. Valid keys: {sorted(names)}."
        )
    for key in _TUPLES & set(data):
        if data[key] is not None:
            data[key] = tuple(data[key])
    try:
        return cls(**data)
    except TypeError as exc:
        raise InputError(f"Config group '{group}': {exc}.") from None


def request_from_config(cfg: Mapping[str, Any]) -> PlanRequest:
    """Build a :class:`PlanRequest` from the resolved config mapping.

    The workload's own ``sla`` block supplies defaults for SLA fields that the ``sla`` group
    leaves null (e.g. the worked example's 120 ms end-to-end bound; the rule is
    :meth:`~hetopt.workloads.Workload.effective_sla`), and its ``baselines`` list, if any,
    replaces the config's baselines (the worked example compares against its own HP and CO
    devices).
    """
    if not isinstance(cfg.get("workload"), Mapping):
        raise InputError(
            f"The config's 'workload' must be a workload mapping (name, "
            f"request_rate_per_s, nodes, edges), got {cfg.get('workload')!r}. Pick "
            f"one with workload=<name> or workload_file=<path>."
        )
    data = dict(cfg["workload"])
    source = (
        f"workload file {cfg['workload_file']}"
        if cfg.get("workload_file")
        else f"workload '{data.get('name', '?')}'"
    )
    workload = Workload.from_mapping(data, source)
    hardware, sla, costs, tco, solver = settings_from_config(cfg)
    return PlanRequest(
        workload=workload,
        hardware=hardware,
        sla=sla,
        costs=costs,
        tco=tco,
        solver=solver,
        baselines=workload.effective_baselines(tuple(cfg.get("baselines") or ())),
    )


def settings_from_config(
    cfg: Mapping[str, Any],
) -> tuple[HardwareSpec, Sla, CostParams, TcoParams, SolverOptions]:
    """The ``hardware``, ``sla``, ``costs``, ``tco`` and ``solver`` groups as dataclasses (the
    settings a single plan and a fleet share)."""
    hardware = dict(cfg.get("hardware") or {})
    hardware["catalog_path"] = hardware.pop("catalog_path", None)
    hardware["inventory"] = dict(hardware.get("inventory") or {})
    return (
        _build(HardwareSpec, "hardware", hardware),
        _build(Sla, "sla", cfg.get("sla")),
        _build(CostParams, "costs", cfg.get("costs")),
        _build(TcoParams, "tco", cfg.get("tco")),
        _build(SolverOptions, "solver", cfg.get("solver")),
    )


def replay_config_from(cfg: Mapping[str, Any], plan_rate_per_s: float) -> ReplayConfig:
    """Build the :class:`ReplayConfig` of the ``replay`` group.

    A null arrival rate is the plan's rate; a null ``controller.target_utilization`` is the
    planner's ``costs.max_utilization``, so the controller sizes pools as the planner did.
    """
    from hetopt.replay.arrivals import ArrivalSpec
    from hetopt.replay.control import ControllerConfig, FailureSpec, RouterConfig
    from hetopt.replay.engine import ReplayConfig

    data = dict(cfg.get("replay") or {})
    data.pop("plan_dir", None)
    arrivals = dict(data.pop("arrivals", None) or {})
    if arrivals.get("rate_per_s") is None:
        arrivals["rate_per_s"] = plan_rate_per_s
    controller = dict(data.pop("controller", None) or {})
    if controller.get("target_utilization") is None:
        controller["target_utilization"] = float(
            (cfg.get("costs") or {}).get("max_utilization") or CostParams().max_utilization
        )
    router = data.pop("router", None)
    failures = data.pop("failures", None) or []
    if not isinstance(failures, list | tuple) or not all(isinstance(f, Mapping) for f in failures):
        raise InputError(
            f"replay.failures must be a list of {{device, count, at_s}} entries, got {failures!r}."
        )
    return _build(
        ReplayConfig,
        "replay",
        {
            **data,
            "arrivals": _build(ArrivalSpec, "replay.arrivals", arrivals),
            "router": _build(RouterConfig, "replay.router", router),
            "controller": _build(ControllerConfig, "replay.controller", controller),
            "failures": tuple(
                _build(FailureSpec, f"replay.failures[{k}]", f) for k, f in enumerate(failures)
            ),
        },
    )
