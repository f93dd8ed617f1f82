"""Independent recomputation of a placement from raw inputs (the verifier's and brute force's).

:func:`evaluate_assignment` takes an assignment by name (``{operator: (device, config)}``) and
recomputes everything a plan claims, with plain loops over the raw inputs:

* **dedicated devices** of an exclusive operator: ``tp pp ceil(rate visits / (requests_per_s
  max_utilization))`` from its cost-table row;
* **shared pools**: per device type, the ceiling of the summed pooled load ``rate visits busy_s /
  max_utilization`` (at least one device once anything runs there), holding every pooled
  footprint within ``memory (1 - reserve)``;
* **inventory**: dedicated + pooled devices per type against the available count;
* **end-to-end latency**: the longest source-to-sink path over the forward edges, plus each
  loop's cycle (entry to back edge) times its iterations (``sla.loop_iterations``), with an
  edge's transfer latency paid when its ends run on different device types;
* **TCO**: devices x $/h + direct (profiled) costs + transfer costs of crossed edges; the
  objective adds the soft SLA's penalty.

The inputs (:class:`VerifyInputs`) are built by :func:`verify_inputs` from the pipeline's raw
objects (the decomposed graph, the cost table's rows, the device TCO and memory, the
inventory, the SLA and cost parameters), with its own contraction of transfer operators into
edges. Nothing here reads :class:`hetopt.problem.PlacementProblem` arrays or calls the
formulations or :mod:`hetopt.plan.evaluate`, so a bug in any of them shows up as a
disagreement with :func:`hetopt.plan.verify.verify_plan`. The brute-force backend optimises
against this evaluation.

Examples
--------
>>> from hetopt.sla import Sla
>>> import pandas as pd
>>> rows = pd.DataFrame([
...     {"op": "a", "device": "X", "config": "c", "tp": 2, "pp": 1, "exclusive": True,
...      "feasible": True, "latency_s": 0.1, "step_s": 0.1, "busy_s": 0.0,
...      "requests_per_s": 1.0, "mem_per_device_bytes": 0.0, "direct_cost_usd": 0.0}])
>>> inputs = VerifyInputs(
...     "one", 3.0, (OpInput("a", 1.0, "compute"),), rows,
...     (DeviceInput("X", usd_per_h=2.0),), (), (), ("a",), Sla(ttft_s=None, tbt_s=None),
...     max_utilization=1.0)
>>> ev = evaluate_assignment(inputs, {"a": ("X", "c")})
>>> ev.dedicated["X"], ev.tco_usd_per_h, ev.e2e_latency_s
(6, 12.0, 0.1)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from hetopt.costs.table import CostParams, CostTable, Profile
from hetopt.costs.tco import DeviceTco
from hetopt.graph.decompose import OperatorGraph
from hetopt.sla import Sla

SECONDS_PER_HOUR = 3600.0
LATENCY_TOL_S = 1e-6  # one CP-SAT time step: a rounded plan may meet an SLA exactly
CEIL_TOL = 1e-9  # a load of 2.0000000001 device-equivalents still fits 2 devices
MEM_REL_TOL = 1e-9

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
"""Cost-table columns the recomputation reads (besides ``op``, ``device`` and ``config``)."""


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
        return {c: self.rows[c].tolist() for c in (*ROW_COLUMNS, "config")}

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


@dataclass(frozen=True)
class Recomputed:
    """What an assignment implies, recomputed from raw inputs.

    Attributes
    ----------
    op_devices
        Devices each operator dedicates (0 for pooled and profiled operators).
    dedicated, pool_load, pool_needed, pooled, pool_mem_bytes
        Per device type: dedicated devices, summed pooled load (device-equivalents), pool
        devices that load needs, pool devices judged (the given ones, else the needed), summed
        pooled footprint per device.
    e2e_latency_s
        Worst end-to-end latency with loops counted per the SLA.
    tco_usd_per_h, penalty_usd_per_h, carbon_kg_per_h
        Hourly cost, soft-SLA penalty and carbon.
    violations
        Capacity, memory and inventory violations, and assignment errors.
    sla_violation
        The hard end-to-end SLA's violation ("" when met or soft).
    unpooled_usd_per_h
        The part of the TCO not paid in devices: direct (profiled) and transfer costs.
    op_footprint_bytes
        Resident bytes each non-exclusive operator adds on every device of its pool.
    """

    op_devices: Mapping[str, int]
    dedicated: Mapping[str, int]
    pool_load: Mapping[str, float]
    pool_needed: Mapping[str, int]
    pooled: Mapping[str, int]
    pool_mem_bytes: Mapping[str, float]
    e2e_latency_s: float
    tco_usd_per_h: float
    penalty_usd_per_h: float
    carbon_kg_per_h: float
    violations: tuple[str, ...]
    sla_violation: str = ""
    unpooled_usd_per_h: float = math.nan
    op_footprint_bytes: Mapping[str, float] = field(default_factory=dict)

    @property
    def objective_usd_per_h(self) -> float:
        """TCO plus the soft-SLA penalty."""
        return self.tco_usd_per_h + self.penalty_usd_per_h

    @property
    def feasible(self) -> bool:
        """No violation, the hard SLA included."""
        return not self.violations and not self.sla_violation

    def total(self, device: str) -> int:
        """Dedicated + pooled devices of type ``device``."""
        return self.dedicated.get(device, 0) + self.pooled.get(device, 0)


def replicas_needed(inputs: VerifyInputs, op: OpInput, row: RowInput) -> int:
    """Replicas an exclusive operator needs: ``ceil(rate visits / (requests_per_s util))``."""
    need = inputs.request_rate_per_s * op.visits / (row.requests_per_s * inputs.max_utilization)
    return math.ceil(need - CEIL_TOL)


def evaluate_assignment(
    inputs: VerifyInputs,
    assignment: Mapping[str, tuple[str, str]],
    pool_counts: Mapping[str, int] | None = None,
    sla: Sla | None = None,
) -> Recomputed:
    """Recompute devices, memory, inventory, latency, TCO and objective of an assignment.

    Parameters
    ----------
    inputs
        The raw inputs.
    assignment
        ``{operator: (device, config)}`` for every placeable operator.
    pool_counts
        Pool devices per device type as the plan states them; None judges the minimum needed.
    sla
        The SLA to judge against (default: the inputs' own).

    Returns
    -------
    Recomputed
        With NaN numbers and a violation per operator when the assignment names rows that do
        not exist.
    """
    sla = sla or inputs.sla
    rows: dict[str, RowInput] = {}
    errors = []
    for op in inputs.ops:
        device, config = assignment.get(op.name, ("", ""))
        row = inputs.row(op.name, device, config)
        if row is None:
            errors.append(f"operator '{op.name}' has no cost-table row {device} {config}")
        else:
            rows[op.name] = row
    if errors:
        nan = math.nan
        return Recomputed({}, {}, {}, {}, {}, {}, nan, nan, nan, nan, tuple(errors))
    where = {name: assignment[name][0] for name in rows}
    op_devices, dedicated = _dedicated(inputs, rows, where)
    load, needed, mem = _pools(inputs, rows, where)
    pooled = dict(needed) if pool_counts is None else {d: int(n) for d, n in pool_counts.items()}
    violations = _capacity_violations(inputs, dedicated, load, needed, pooled, mem)
    latency = {name: row.latency_s for name, row in rows.items()}
    e2e = e2e_latency_s(inputs, latency, where, sla)
    devices_usd_per_h = 0.0
    carbon = 0.0
    for dev in inputs.devices:
        count = dedicated.get(dev.name, 0) + pooled.get(dev.name, 0)
        devices_usd_per_h += count * dev.usd_per_h
        carbon += count * dev.carbon_kg_per_h
    direct = 0.0
    for op in inputs.ops:
        runs_per_h = inputs.request_rate_per_s * op.visits * SECONDS_PER_HOUR
        direct += rows[op.name].direct_cost_usd * runs_per_h
    transfers = 0.0
    for edge in inputs.edges:
        if where[edge.src] != where[edge.dst]:
            transfers += edge.cost_usd_per_h
    tco = devices_usd_per_h + direct + transfers
    excess = 0.0 if sla.e2e_s is None else max(0.0, e2e - sla.e2e_s)
    penalty = 0.0 if sla.hard else (sla.penalty_usd_per_h_per_s or 0.0) * excess
    sla_violation = ""
    if sla.hard and sla.e2e_s is not None and e2e > sla.e2e_s + LATENCY_TOL_S:
        sla_violation = f"end-to-end latency {e2e:.6f} s exceeds the SLA {sla.e2e_s:.6f} s"
    return Recomputed(
        op_devices,
        dedicated,
        load,
        needed,
        pooled,
        mem,
        e2e,
        tco,
        penalty,
        carbon,
        tuple(violations),
        sla_violation,
        direct + transfers,
        {name: row.mem_per_device_bytes for name, row in rows.items() if not row.exclusive},
    )


def _dedicated(
    inputs: VerifyInputs, rows: Mapping[str, RowInput], where: Mapping[str, str]
) -> tuple[dict[str, int], dict[str, int]]:
    """Devices per exclusive operator, and their sum per device type."""
    op_devices: dict[str, int] = {}
    per_device: dict[str, int] = {}
    for op in inputs.ops:
        row = rows[op.name]
        count = row.tp * row.pp * replicas_needed(inputs, op, row) if row.exclusive else 0
        op_devices[op.name] = count
        per_device[where[op.name]] = per_device.get(where[op.name], 0) + count
    return op_devices, per_device


def _pools(
    inputs: VerifyInputs, rows: Mapping[str, RowInput], where: Mapping[str, str]
) -> tuple[dict[str, float], dict[str, int], dict[str, float]]:
    """Per device type: summed pooled load, pool devices it needs, summed footprints."""
    load: dict[str, float] = {}
    needed: dict[str, int] = {}
    mem: dict[str, float] = {}
    for op in inputs.ops:
        row, device = rows[op.name], where[op.name]
        if row.exclusive:
            continue
        mem[device] = mem.get(device, 0.0) + row.mem_per_device_bytes
        if row.pooled:
            share = inputs.request_rate_per_s * op.visits * row.busy_s / inputs.max_utilization
            load[device] = load.get(device, 0.0) + share
    for device, total in load.items():
        needed[device] = max(1, math.ceil(total - CEIL_TOL))
    return load, needed, mem


def _capacity_violations(
    inputs: VerifyInputs,
    dedicated: Mapping[str, int],
    load: Mapping[str, float],
    needed: Mapping[str, int],
    pooled: Mapping[str, int],
    mem: Mapping[str, float],
) -> list[str]:
    out = []
    usable_share = 1.0 - inputs.memory_reserve_fraction
    for dev in inputs.devices:
        name = dev.name
        if pooled.get(name, 0) < needed.get(name, 0):
            out.append(
                f"pool of {name} has {pooled.get(name, 0)} devices but its pooled load of "
                f"{load.get(name, 0.0):.3f} device-equivalents needs {needed[name]}"
            )
        usable = dev.mem_bytes * usable_share
        if mem.get(name, 0.0) > usable * (1 + MEM_REL_TOL):
            out.append(
                f"pooled operators on {name} need {mem[name] / 1e9:.2f} GB per device, more "
                f"than its {usable / 1e9:.2f} GB usable ({dev.mem_bytes / 1e9:.2f} GB less the "
                f"{inputs.memory_reserve_fraction:.0%} reserve)"
            )
        total = dedicated.get(name, 0) + pooled.get(name, 0)
        if total > dev.inventory:
            out.append(
                f"plan uses {total} x {name} but the inventory has {int(dev.inventory)} "
                f"({dedicated.get(name, 0)} dedicated + {pooled.get(name, 0)} pooled)"
            )
    return out


def e2e_latency_s(
    inputs: VerifyInputs,
    latency_s: Mapping[str, float],
    where: Mapping[str, str],
    sla: Sla | None = None,
) -> float:
    """Worst end-to-end latency: the longest path to a sink, plus every loop's cycle times its
    iterations; an edge adds its transfer latency when its ends are on different devices.

    Parameters
    ----------
    inputs
        The raw inputs (edges, loops, sinks).
    latency_s
        Latency of each placeable operator as placed.
    where
        Device type of each placeable operator.
    sla
        Says how many iterations a loop counts (default: the inputs' own SLA).
    """
    forward = [e for e in inputs.edges if not e.back]
    finish = _finish_times(forward, latency_s, where, start=None)
    worst = max((finish(s) or 0.0) for s in inputs.sinks) if inputs.sinks else 0.0
    for loop in inputs.loops:
        body = set(loop.body)
        inside = [e for e in forward if e.src in body and e.dst in body]
        cycle_finish = _finish_times(inside, latency_s, where, start=loop.back_dst)
        back = next(
            e for e in inputs.edges if e.back and (e.src, e.dst) == (loop.back_src, loop.back_dst)
        )
        cycle = (cycle_finish(loop.back_src) or 0.0) + _transfer_s(back, where)
        worst += inputs.loop_iterations(loop, sla) * cycle
    return worst


def _transfer_s(edge: EdgeInput, where: Mapping[str, str]) -> float:
    return edge.latency_s if where[edge.src] != where[edge.dst] else 0.0


def _finish_times(
    edges: list[EdgeInput],
    latency_s: Mapping[str, float],
    where: Mapping[str, str],
    start: str | None,
) -> Callable[[str], float | None]:
    """Finish time of an operator over ``edges`` (a DAG): its latency after its latest input.

    With ``start``, only operators reachable from ``start`` finish (None otherwise), and
    ``start`` begins at time 0; without it every operator without inputs begins at 0.
    """
    into: dict[str, list[EdgeInput]] = {}
    for e in edges:
        into.setdefault(e.dst, []).append(e)
    memo: dict[str, float | None] = {}

    def finish(op: str) -> float | None:
        if op in memo:
            return memo[op]
        ready = None
        for e in into.get(op, []):
            before = finish(e.src)
            if before is not None:
                arrive = before + _transfer_s(e, where)
                ready = arrive if ready is None else max(ready, arrive)
        if ready is None:
            memo[op] = latency_s[op] if start is None or op == start else None
        else:
            memo[op] = latency_s[op] + ready
        return memo[op]

    return finish
