"""Structured-config schemas of the Hydra config tree, derived from the library's dataclasses.

Every group of ``configs/`` (``hardware``, ``sla``, ``costs``, ``tco``, ``solver``, ``replay``,
``mlir``, ``study``) is typed by a schema registered in Hydra's ConfigStore as ``hetopt_schema``,
which ``configs/config.yaml`` lists first in its defaults. Hydra then rejects an unknown key or a
value of the wrong type (``sla.e2e_s=fast``) while composing, naming the key; ranges are checked
when the library's frozen dataclasses are built from the composed config.

The schemas are generated from the dataclasses the config becomes (:class:`~hetopt.sla.Sla`,
:class:`~hetopt.costs.tco.TcoParams`, ...), so a field added to the library is a config key with
no second definition to keep in step. Types OmegaConf cannot hold are widened: ``Literal`` to
``str``, a union of several types to ``Any``, tuples to lists, mappings to ``Dict[str, ...]``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from functools import cache
from typing import Any, Literal, Optional, Union  # noqa: UP035  (OmegaConf needs these forms)

from hetopt.costs.table import CostParams
from hetopt.costs.tco import TcoParams
from hetopt.hardware.spec import HardwareSpec
from hetopt.mlir.options import CompileOptions
from hetopt.replay.config import ReplayConfig
from hetopt.sla import Sla
from hetopt.solvers import SolverOptions

_SCALARS = (int, float, str, bool)
# Keys that the config may leave null for the CLI to fill in before the dataclass is built.
_NULLABLE = {"ArrivalSpec": {"rate_per_s"}, "ControllerConfig": {"target_utilization"}}


def _omega_type(tp: Any) -> Any:
    """The closest type annotation OmegaConf 2.3 supports for ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp in _SCALARS or tp is Any:
        return tp
    if dataclasses.is_dataclass(tp):
        return schema_of(tp)  # type: ignore[arg-type]
    if origin is Literal:
        kinds = {type(a) for a in args}
        return kinds.pop() if len(kinds) == 1 and kinds <= set(_SCALARS) else Any
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        inner = _omega_type(rest[0]) if len(rest) == 1 else Any
        return Optional[inner] if len(rest) < len(args) and inner is not Any else inner  # noqa: UP045
    if origin is tuple or origin is list:
        elem = _omega_type(args[0]) if args else Any
        return typing.List[elem]  # type: ignore[valid-type]  # noqa: UP006
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        value = _omega_type(args[1]) if args else Any
        return typing.Dict[str, value]  # type: ignore[valid-type]  # noqa: UP006
    return Any


def _default(f: dataclasses.Field[Any], tp: Any) -> Any:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return dataclasses.field(default="???")  # OmegaConf's MISSING: the key is required
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.field(default_factory=_omega_type(type(value)))
    if isinstance(value, tuple | list):
        items = list(value)
        return dataclasses.field(default_factory=lambda: list(items))
    if isinstance(value, Mapping):
        items_map = dict(value)
        return dataclasses.field(default_factory=lambda: dict(items_map))
    return dataclasses.field(default=value)


@cache
def schema_of(cls: type, extra: tuple[tuple[str, Any, Any], ...] = ()) -> type:
    """A structured-config dataclass with the fields of the dataclass ``cls``.

    Parameters
    ----------
    cls
        A library dataclass (frozen or not).
    extra
        More fields as ``(name, type, default)``: keys the CLI reads before building ``cls``
        (e.g. ``replay.plan_dir``).

    Returns
    -------
    type
        A new (mutable) dataclass named ``<cls>Schema`` that OmegaConf can type-check.
    """
    hints = typing.get_type_hints(cls)
    spec: list[tuple[str, Any, dataclasses.Field[Any]]] = []
    for f in dataclasses.fields(cls):
        tp = _omega_type(hints[f.name])
        if f.name in _NULLABLE.get(cls.__name__, ()):
            tp = Optional[tp]  # noqa: UP045
        spec.append((f.name, tp, _default(f, tp)))
    for name, tp, default in extra:
        spec.append((name, tp, dataclasses.field(default=default)))
    return dataclasses.make_dataclass(f"{cls.__name__}Schema", spec)


@dataclasses.dataclass
class SweepSchema:
    """Settings of ``hetopt sweep`` / ``hetopt plan -m`` (the ``sweep`` block)."""

    figures: bool = False  # draw plan.png for every point (slow: about 0.3 s each)
    warm_start: bool = True  # hint each solve with the previous point's plan
    retry_failed: bool = True  # re-running a sweep re-plans points that errored or crashed
    chunk: Optional[str] = None  # noqa: UP045  set by the sweeper: the chunk of points a job runs (<driver>-<n>)


@dataclasses.dataclass
class StudySchema:
    """What-if study metadata (the ``study`` group): what the study figure plots."""

    name: Optional[str] = None  # noqa: UP045
    title: Optional[str] = None  # noqa: UP045
    x: Optional[str] = None  # noqa: UP045  swept key on the x axis
    hue: Optional[str] = None  # noqa: UP045  swept key drawn as one line per value
    x_label: Optional[str] = None  # noqa: UP045
    y: str = "tco_usd_per_h"  # results.csv column on the y axis
    kind: str = "lines"  # lines | pareto (TCO against carbon)
    log_x: bool = False
    note: Optional[str] = None  # noqa: UP045


@dataclasses.dataclass
class SyntheticFleetSchema:
    """A generated fleet (:mod:`hetopt.fleet.generator`)."""

    n_ops: int = 200  # placeable operators over all tenants
    n_device_types: int = 11  # packaged catalog entries, then generated variants
    seed: int = 0
    inventory_fraction: Optional[float] = None  # noqa: UP045  cap the most-used types at this share of the greedy plan's use
    limited_types: int = 3  # how many types get that cap


@dataclasses.dataclass
class FleetSchema:
    """A fleet (the ``fleet`` group): tenants listed, or a synthetic fleet."""

    name: Optional[str] = None  # noqa: UP045
    tenants: Optional[typing.List[Any]] = None  # noqa: UP006, UP045  [{name, workload, request_rate_per_s, sla, count}]
    synthetic: Optional[SyntheticFleetSchema] = None  # noqa: UP045
    method: str = "auto"  # auto | monolithic | decomposition
    gap_rel: float = 0.005  # stop when the proven gap is this small
    baselines: typing.List[str] = dataclasses.field(  # noqa: UP006
        default_factory=lambda: ["greedy", "heft", "homogeneous"]
    )
    replay: bool = False  # also replay the plan's traffic (the replay group's settings)


@dataclasses.dataclass
class CalibrateSchema:
    """Settings of ``hetopt calibrate`` (the ``calibrate`` block)."""

    measurements: Optional[str] = None  # noqa: UP045  a CSV of your own measurements; null: aiconfigurator
    published: Optional[str] = None  # noqa: UP045  published-throughput CSV; null: the shipped one; "none": skip
    ship: bool = False  # also replace the table shipped inside hetopt
    devices: Optional[typing.List[str]] = None  # noqa: UP006, UP045  aiconfigurator devices; null: all
    holdout_models: Optional[typing.List[str]] = None  # noqa: UP006, UP045  null: the default hold-out
    holdout_seq_tokens: Optional[typing.List[int]] = None  # noqa: UP006, UP045


def config_schema() -> type:
    """The schema of the whole composed config (``configs/config.yaml``)."""
    return dataclasses.make_dataclass(
        "HetoptConfigSchema",
        [
            ("workload", Any, dataclasses.field(default=None)),
            (
                "hardware",
                schema_of(HardwareSpec),
                dataclasses.field(default_factory=schema_of(HardwareSpec)),
            ),
            ("sla", schema_of(Sla), dataclasses.field(default_factory=schema_of(Sla))),
            (
                "costs",
                schema_of(CostParams),
                dataclasses.field(default_factory=schema_of(CostParams)),
            ),
            ("tco", schema_of(TcoParams), dataclasses.field(default_factory=schema_of(TcoParams))),
            (
                "solver",
                schema_of(SolverOptions),
                dataclasses.field(default_factory=schema_of(SolverOptions)),
            ),
            ("replay", _REPLAY, dataclasses.field(default_factory=_REPLAY)),
            ("mlir", _MLIR, dataclasses.field(default_factory=_MLIR)),
            ("sweep", SweepSchema, dataclasses.field(default_factory=SweepSchema)),
            ("study", StudySchema, dataclasses.field(default_factory=StudySchema)),
            ("workload_file", Optional[str], dataclasses.field(default=None)),  # noqa: UP045
            # The annotation file of a graph in code (workload_file=my_agent.py:graph).
            ("workload_annotations", Optional[str], dataclasses.field(default=None)),  # noqa: UP045
            ("fleet", FleetSchema, dataclasses.field(default_factory=FleetSchema)),
            ("fleet_file", Optional[str], dataclasses.field(default=None)),  # noqa: UP045
            (
                "baselines",
                list[str],
                dataclasses.field(  # noqa: UP006
                    default_factory=lambda: ["H100"]
                ),
            ),
            ("calibrate", CalibrateSchema, dataclasses.field(default_factory=CalibrateSchema)),
            # Replace a finished run in an explicit hydra.run.dir (hetopt/cli/outputs.py).
            ("overwrite", bool, dataclasses.field(default=False)),
        ],
    )


@cache
def mapping_keys() -> frozenset[str]:
    """Dotted paths of the config's mappings keyed by name (``hardware.inventory``, ...).

    A key of such a mapping (a device name) may be set without Hydra's leading ``+``.

    Examples
    --------
    >>> {"hardware.inventory", "mlir.targets"} <= mapping_keys()
    True
    """
    found: set[str] = set()

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if typing.get_origin(tp) in (Union, types.UnionType) and len(args) == 1:
                tp = args[0]
            if typing.get_origin(tp) is dict:
                found.add(prefix + f.name)
            elif dataclasses.is_dataclass(tp) and isinstance(tp, type):
                walk(tp, f"{prefix}{f.name}.")

    walk(config_schema(), "")
    return frozenset(found)


_REPLAY = schema_of(ReplayConfig, (("plan_dir", Optional[str], None),))  # noqa: UP045
_MLIR = schema_of(CompileOptions, (("plan_dir", Optional[str], None),))  # noqa: UP045


@cache
def register() -> None:
    """Store the schema in Hydra's ConfigStore as ``hetopt_schema`` (idempotent)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="hetopt_schema", node=config_schema())
