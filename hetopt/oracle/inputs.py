"""The raw inputs of a placement, as the independent recomputation reads them.

:func:`verify_inputs` gathers them from the pipeline's raw objects (the decomposed graph, the
cost table's rows, device TCO and memory, inventory, SLA, cost parameters and a profile's
measured transfers), with its own contraction of transfer operators into edges; it never
reads :class:`hetopt.problem.PlacementProblem` arrays.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from hetopt.costs.table import CostParams, CostTable, Profile
from hetopt.costs.tco import DeviceTco
from hetopt.graph.decompose import OperatorGraph
from hetopt.sla import Sla

SECONDS_PER_HOUR = 3600.0

ROW_COLUMNS = (
    "latency_s",
    "step_s",
    "exclusive",
    "feasible",
    "tp",
    "pp",
    "requests_per_s",
    "busy_s",
    "mem_per_device_bytes",
    "direct_cost_usd",
)
"""Cost-table columns the recomputation reads (besides ``op``, ``device`` and ``config``; and
``pool_key`` where the table has it)."""


@dataclass(frozen=True)
class OpInput:
    """A placeable operator: its id, expected executions per request and kind."""

    name: str
    visits: float
    kind: str


@dataclass(frozen=True)
class DeviceInput:
    """One device type: its hourly cost (itemised), carbon, memory and availability.

    ``mem_bytes`` is the catalog's memory per device (``inf``: not limited); the usable share is
    ``1 - memory_reserve_fraction`` of it. ``inventory`` is ``inf`` when unlimited.
    """

    name: str
    usd_per_h: float = 0.0
    capex_usd_per_h: float = 0.0
    power_usd_per_h: float = 0.0
    opex_usd_per_h: float = 0.0
    carbon_kg_per_h: float = 0.0
    mem_bytes: float = math.inf
    inventory: float = math.inf


@dataclass(frozen=True)
class EdgeInput:
    """An edge between placeable operators, paid when its ends run on different device types."""

    src: str
    dst: str
    latency_s: float
    cost_usd_per_h: float = 0.0
    back: bool = False


@dataclass(frozen=True)
class LoopInput:
    """A bounded loop: the back edge ``back_src -> back_dst`` and the operators of its body."""

    back_src: str
    back_dst: str
    body: tuple[str, ...]
    expected_iterations: float
    max_iterations: int


@dataclass(frozen=True)
class RowInput:
    """The cost-table row of one (operator, device, config): the columns the checks read."""

    latency_s: float
    step_s: float
    exclusive: bool
    profiled: bool
    feasible: bool
    tp: int
    pp: int
    requests_per_s: float
    busy_s: float
    mem_per_device_bytes: float
    direct_cost_usd: float
    pool_key: str = ""
    pool_dim: str = ""

    @property
    def pooled(self) -> bool:
        """Runs in its device type's shared pool (neither exclusive nor profiled)."""
        return not self.exclusive and not self.profiled


@dataclass(frozen=True)
class VerifyInputs:
    """The raw inputs of one placement, as the independent recomputation reads them.

    Attributes
    ----------
    name
        Workload name.
    request_rate_per_s
        Requests entering the agent per second.
    ops
        Placeable operators.
    rows
        The cost table's rows (columns ``op``, ``device``, ``config`` and :data:`ROW_COLUMNS`),
        infeasible ones included.
    devices
        Every device type the table spans.
    edges
        Edges between placeable operators (transfer operators contracted), back edges included.
    loops
        Bounded loops.
    sinks
        Operators whose finish ends a request.
    sla
        The SLA the plan must meet.
    max_utilization, memory_reserve_fraction
        The cost parameters the counts and memory use.
    """

    name: str
    request_rate_per_s: float
    ops: tuple[OpInput, ...]
    rows: pd.DataFrame = field(repr=False)
    devices: tuple[DeviceInput, ...]
    edges: tuple[EdgeInput, ...]
    loops: tuple[LoopInput, ...]
    sinks: tuple[str, ...]
    sla: Sla
    max_utilization: float = CostParams.max_utilization
    memory_reserve_fraction: float = 0.0

    @functools.cached_property
    def _row_position(self) -> dict[tuple[str, str, str], int]:
        columns = (self.rows[c].tolist() for c in ("op", "device", "config"))
        return {
            (str(o), str(d), str(c)): k for k, (o, d, c) in enumerate(zip(*columns, strict=True))
        }

    @functools.cached_property
    def _columns(self) -> dict[str, list[object]]:
        out = {c: self.rows[c].tolist() for c in (*ROW_COLUMNS, "config")}
        for column in ("pool_key", "pool_dim"):
            values = self.rows.get(column)
            out[column] = (
                [] if values is None else [v if isinstance(v, str) else "" for v in values]
            )
        return out

    @functools.cached_property
    def _op_index(self) -> dict[str, OpInput]:
        return {o.name: o for o in self.ops}

    @functools.cached_property
    def _device_index(self) -> dict[str, DeviceInput]:
        return {d.name: d for d in self.devices}

    def op(self, name: str) -> OpInput | None:
        """The placeable operator ``name`` (None if the workload has none)."""
        return self._op_index.get(name)

    def device(self, name: str) -> DeviceInput | None:
        """The device type ``name`` (None if the table does not span it)."""
        return self._device_index.get(name)

    @functools.cached_property
    def _row_cache(self) -> dict[tuple[str, str, str], RowInput | None]:
        return {}

    def row(self, op: str, device: str, config: str) -> RowInput | None:
        """The cost-table row of ``op`` on ``device`` in ``config`` (None if there is none)."""
        key = (op, device, config)
        if key not in self._row_cache:
            self._row_cache[key] = self._read_row(key)
        return self._row_cache[key]

    def _read_row(self, key: tuple[str, str, str]) -> RowInput | None:
        k = self._row_position.get(key)
        if k is None:
            return None
        col = self._columns

        def num(name: str) -> float:
            value = col[name][k]
            return math.nan if value is None else float(value)  # type: ignore[arg-type]

        return RowInput(
            latency_s=num("latency_s"),
            step_s=num("step_s"),
            exclusive=bool(col["exclusive"][k]),
            profiled=col["config"][k] == "profiled",
            feasible=bool(col["feasible"][k]),
            tp=int(num("tp")),
            pp=int(num("pp")),
            requests_per_s=num("requests_per_s"),
            busy_s=num("busy_s"),
            mem_per_device_bytes=num("mem_per_device_bytes"),
            direct_cost_usd=num("direct_cost_usd"),
            pool_key=str(col["pool_key"][k]) if col["pool_key"] else "",
            pool_dim=str(col["pool_dim"][k]) if col["pool_dim"] else "",
        )

    def loop_iterations(self, loop: LoopInput, sla: Sla | None = None) -> float:
        """How often ``loop`` counts in the end-to-end latency under ``sla`` (default: own)."""
        mode = (sla or self.sla).loop_iterations
        return float(loop.max_iterations) if mode == "max" else loop.expected_iterations


def verify_inputs(
    graph: OperatorGraph,
    table: CostTable,
    device_tco: Mapping[str, DeviceTco],
    sla: Sla,
    request_rate_per_s: float,
    params: CostParams | None = None,
    device_mem_bytes: Mapping[str, float] | None = None,
    inventory: Mapping[str, int] | None = None,
    profile: Profile | None = None,
) -> VerifyInputs:
    """Gather the raw inputs of a placement (the same arguments as ``build_problem``).

    Parameters
    ----------
    graph
        The decomposed graph: operators with visits, edges with payloads, loops, sinks.
    table
        The cost table; every row is kept, infeasible ones too.
    device_tco
        Hourly TCO per device name; devices missing from it cost nothing per hour.
    sla
        The SLA the plan must meet.
    request_rate_per_s
        Requests entering the agent per second.
    params
        Utilisation cap, memory reserve and the fabric's bandwidth and latency.
    device_mem_bytes
        Catalog memory per device; missing names are not limited.
    inventory
        Available devices per name; missing names are unlimited.
    profile
        Measured transfers that replace the fabric model on their edges.
    """
    params = params or CostParams()
    placeable = [op for op in graph.ops if op.placeable]
    ops = tuple(OpInput(op.id, float(op.visits), op.kind.value) for op in placeable)
    names = {op.name for op in ops}
    devices = []
    for name in table.devices:
        tco = device_tco.get(name)
        devices.append(
            DeviceInput(
                name,
                usd_per_h=tco.total_usd_per_h if tco else 0.0,
                capex_usd_per_h=tco.capex_usd_per_h if tco else 0.0,
                power_usd_per_h=tco.power_usd_per_h if tco else 0.0,
                opex_usd_per_h=tco.opex_usd_per_h if tco else 0.0,
                carbon_kg_per_h=tco.carbon_kgco2_per_h if tco else 0.0,
                mem_bytes=float((device_mem_bytes or {}).get(name, math.inf)),
                inventory=float((inventory or {}).get(name, math.inf)),
            )
        )
    visits = {op.name: op.visits for op in ops}
    edges = []
    for src, dst, payload, back in _placeable_edges(graph):
        override = profile.transfers.get(f"{src}->{dst}") if profile is not None else None
        if override is None:
            latency = payload / params.link_bw_bytes_per_s + params.link_latency_s
            cost = 0.0
        else:
            latency = override["latency_s"]
            runs_per_h = request_rate_per_s * min(visits[src], visits[dst]) * SECONDS_PER_HOUR
            cost = override["cost_usd"] * runs_per_h
        edges.append(EdgeInput(src, dst, latency, cost, back))
    loops = tuple(
        LoopInput(
            lp.back_src,
            lp.back_dst,
            tuple(o for o in lp.body if o in names),
            lp.expected_iterations,
            lp.max_iterations,
        )
        for lp in graph.loops
    )
    return VerifyInputs(
        name=graph.name,
        request_rate_per_s=request_rate_per_s,
        ops=ops,
        rows=table.frame,
        devices=tuple(devices),
        edges=tuple(edges),
        loops=loops,
        sinks=tuple(s for s in graph.sinks if s in names),
        sla=sla,
        max_utilization=params.max_utilization,
        memory_reserve_fraction=params.memory_reserve_fraction,
    )


def _placeable_edges(graph: OperatorGraph) -> list[tuple[str, str, float, bool]]:
    """``(src, dst, payload_bytes, back)`` between placeable operators.

    A path through non-placeable operators (the KV transfer of ``prefill -> kv -> decode``)
    becomes one edge from the placeable operator before it to each placeable one after it,
    carrying the payload of the last non-placeable operator passed (the KV cache).
    """
    kept = {op.id for op in graph.ops if op.placeable}
    payload = {op.id: op.payload_bytes for op in graph.ops}
    out: list[tuple[str, str, float, bool]] = []
    for edge in graph.edges:
        if edge.src not in kept:
            continue
        todo = [(edge.dst, edge.payload_bytes)]
        while todo:
            node, carried = todo.pop(0)
            if node in kept:
                out.append((edge.src, node, carried, False))
                continue
            todo.extend((e.dst, payload[node]) for e in graph.edges if e.src == node)
    out.extend((lp.back_src, lp.back_dst, lp.payload_bytes, True) for lp in graph.loops)
    return out
