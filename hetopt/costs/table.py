"""Cost table: every operator x device x configuration, itemised (pipeline stage 3).

``build_cost_table`` evaluates the roofline model (:mod:`hetopt.costs.roofline`) and the LLM
serving model (:mod:`hetopt.costs.llm`) for every placeable operator on every catalog device and
returns a tidy frame with one row per candidate configuration. Infeasible candidates stay in
the table with ``feasible = False`` and a ``reason``, so an infeasible plan can explain itself.

A workload may instead carry a measured ``profile`` (latency and cost per operator and device);
then the table is read from the profile, as in the paper's worked example (Table 3).

Why one module: the modelled table (:func:`build_cost_table`) and the profiled one
(:func:`profile_cost_table`) write the same :data:`COLUMNS`, and the feasibility reasons the
placement problem explains with are those rows' own; splitting them would split one schema.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from hetopt.costs.aggregated import aggregated_configs
from hetopt.costs.calibration import (
    CALIBRATION_PATH,
    STEP_MODEL_VERSION,
    CalibrationEntry,
    load_calibration,
)
from hetopt.costs.llm import decode_config, decode_steps, llm_configs, prefill_config
from hetopt.costs.measured import measured_rows
from hetopt.costs.pools import (
    LLM_POOL_MODES,
    Lengths,
    call_of,
    class_group,
    class_label,
    context_classes,
    pool_key,
)
from hetopt.costs.roofline import RooflineTime, roofline_time
from hetopt.errors import InputError
from hetopt.graph.decompose import LlmWork, Operator, OperatorGraph, OpKind
from hetopt.hardware import Device, HardwareCatalog
from hetopt.sla import Sla

COLUMNS = (
    "op",
    "device",
    "config",
    "tp",
    "pp",
    "devices_per_replica",
    "batch",
    "exclusive",
    "feasible",
    "reason",
    "latency_s",
    "step_s",
    "busy_s",
    "requests_per_s",
    "mem_per_device_bytes",
    "compute_s",
    "memory_s",
    "network_s",
    "static_s",
    "sync_s",
    "binding",
    "direct_cost_usd",
    "cost_model",
    "error_band",
    "pool_key",
    "pool_dim",
)
"""``cost_model`` says where a row's time comes from: ``calibrated`` (the fitted step model),
``uncalibrated`` (the roofline on a device the calibration table does not cover), ``roofline``
(``costs.model=roofline``), ``measured`` (a measured profile) or ``profiled``. ``error_band``
is the calibrated model's held-out error on that device (``x1.05 (0.82-1.15)``). ``pool_key``
names the replicas an LLM row may share with other operators' rows (:mod:`hetopt.costs.pools`;
empty on other rows and with ``costs.llm_pools=off``); ``pool_dim`` is what an aggregated row
loads on its replicas: ``chunk`` (prefill chunk tokens) or ``slots`` (decode slots), empty on
every other row (one kind of capacity)."""

COST_MODELS = ("calibrated", "roofline")


@dataclass(frozen=True)
class CostParams:
    """Knobs of the cost model (the Hydra ``costs`` group).

    Attributes
    ----------
    tp_degrees
        Tensor-parallel degrees searched per LLM phase; capped by each device's scale-up domain.
    pp_degrees
        Pipeline-parallel degrees searched per LLM phase; stages beyond one chassis talk over
        RoCE (the device's scale-out bandwidth).
    prefill_batch_sizes, decode_batch_sizes
        Batch sizes searched per LLM phase.
    memory_reserve_fraction
        Share of device memory kept free (allocator fragmentation, CUDA context, runtime).
    max_utilization
        Highest planned utilisation of any replica or pool; the rest is headroom for bursts.
    link_gbit_per_s, link_latency_s
        Data-centre fabric between device pools (RoCE): payloads and KV caches crossing from
        one device type to another pay ``bytes / bandwidth + latency``.
    scale_up_hop_latency_s
        Per-hop latency of the scale-up fabric (NVLink, Infinity Fabric) in all-reduces.
    measured_profile
        CSV of measured LLM performance (:mod:`hetopt.costs.measured`) that replaces every
        model wherever it has rows.
    model
        ``calibrated`` (default): LLM phases use the step model fitted to measured data
        (:mod:`hetopt.costs.step`) on every device the calibration table covers, the roofline
        elsewhere (flagged ``uncalibrated``). ``roofline``: the uncalibrated roofline everywhere,
        for comparison.
    calibration
        A calibration table written by ``hetopt calibrate``; the shipped one if unset.
    runtime_reserve_gb
        Memory per device an LLM engine needs beside weights and KV cache (runtime,
        activations, communication buffers) on devices whose calibration states none (with
        ``model=calibrated``; the roofline keeps only ``memory_reserve_fraction``).
    aggregated
        Also offer aggregated serving (:mod:`hetopt.costs.aggregated`): prefill chunks and
        decode steps of a call on one replica, at every ``tp`` x decode batch x chunk size
        (``pp = 1``); the planner then chooses it or disaggregated replicas per call. Off by
        default: it multiplies each LLM call's options about tenfold (chat_agent: 87 -> 937)
        and the solve time with them. Needs ``llm_pools`` other than ``off`` (the two phases
        share the replica's pool).
    chunk_sizes
        Prefill chunk sizes (tokens per step) searched for aggregated serving.
    llm_pools
        Which LLM operators may share replicas (:mod:`hetopt.costs.pools`): ``buckets``
        (default: only the size buckets and slices of one call pool, at its longest bucket's
        lengths), ``model`` (every call of a model pools at the
        model's longest lengths), ``own`` (only equal lengths share) or ``off`` (every LLM
        operator gets its own replicas).
    sla_guard
        ``heldout`` (default): a calibrated configuration meets TTFT or TBT only if its step,
        divided by the most optimistic held-out prediction ratio of its device and phase, does
        (so the model's measured error cannot turn a feasible plan into a violation).
        ``none``: compare the prediction itself.
    """

    tp_degrees: tuple[int, ...] = (1, 2, 4, 8)
    pp_degrees: tuple[int, ...] = (1, 2, 4)
    prefill_batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    decode_batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)
    memory_reserve_fraction: float = 0.10
    max_utilization: float = 0.80
    link_gbit_per_s: float = 400.0
    link_latency_s: float = 10e-6
    scale_up_hop_latency_s: float = 2e-6
    measured_profile: str | None = None
    model: str = "calibrated"
    calibration: str | None = None
    runtime_reserve_gb: float = 3.9
    sla_guard: str = "heldout"
    llm_pools: str = "buckets"
    aggregated: bool = False
    chunk_sizes: tuple[int, ...] = (256, 512, 1024, 2048)

    def __post_init__(self) -> None:
        if self.llm_pools not in LLM_POOL_MODES:
            raise InputError(
                f"costs.llm_pools must be one of {list(LLM_POOL_MODES)}, got {self.llm_pools!r}."
            )
        if self.aggregated and self.llm_pools == "off":
            raise InputError(
                "costs.aggregated=true needs LLM pools (a call's prefill and decode share the "
                "aggregated replica's pool), but costs.llm_pools=off. Set costs.llm_pools="
                "buckets (the default), or costs.aggregated=false."
            )
        if self.model not in COST_MODELS:
            raise InputError(f"costs.model must be one of {list(COST_MODELS)}, got {self.model!r}.")
        if self.sla_guard not in ("heldout", "none"):
            raise InputError(
                f"costs.sla_guard must be 'heldout' or 'none', got {self.sla_guard!r}."
            )
        if self.runtime_reserve_gb < 0:
            raise InputError(
                f"costs.runtime_reserve_gb must be >= 0, got {self.runtime_reserve_gb}."
            )
        if not 0 <= self.memory_reserve_fraction < 1:
            raise InputError(
                f"costs.memory_reserve_fraction must be in [0, 1), got "
                f"{self.memory_reserve_fraction}."
            )
        if not 0 < self.max_utilization <= 1:
            raise InputError(
                f"costs.max_utilization must be in (0, 1], got {self.max_utilization}."
            )
        if self.link_gbit_per_s <= 0 or self.link_latency_s < 0:
            raise InputError("costs.link_gbit_per_s must be > 0 and costs.link_latency_s >= 0.")
        for name in (
            "tp_degrees",
            "pp_degrees",
            "prefill_batch_sizes",
            "decode_batch_sizes",
            "chunk_sizes",
        ):
            values = getattr(self, name)
            if not values or any(int(v) != v or v < 1 for v in values):
                raise InputError(f"costs.{name} must be a non-empty list of positive integers.")

    @property
    def link_bw_bytes_per_s(self) -> float:
        """Fabric bandwidth in bytes per second."""
        return self.link_gbit_per_s * 1e9 / 8


def cost_model_info(params: CostParams) -> dict[str, Any]:
    """What ``plan.json`` records about the cost model that timed a plan."""
    info: dict[str, Any] = {
        "model": params.model,
        "step_model_version": STEP_MODEL_VERSION,
        "sla_guard": params.sla_guard,
    }
    if params.model == "calibrated":
        table = load_calibration(params.calibration)
        info.update(
            calibration_table=table.version,
            calibration_path=str(params.calibration or CALIBRATION_PATH),
            calibrated_devices=sorted(table.devices()),
        )
    if params.measured_profile:
        info["measured_profile"] = params.measured_profile
    return info


@dataclass(frozen=True)
class Profile:
    """Measured latency and cost per operator and device (replaces the roofline).

    Attributes
    ----------
    devices
        Device names the profile covers; they need not be in the hardware catalog.
    ops
        ``{op_id: {device: {"latency_s": .., "cost_usd": ..}}}``; cost is per execution.
    transfers
        ``{"src->dst": {"latency_s": .., "cost_usd": ..}}`` paid when the two operators run on
        different devices.
    """

    devices: tuple[str, ...]
    ops: Mapping[str, Mapping[str, Mapping[str, float]]]
    transfers: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    @staticmethod
    def from_dict(data: Mapping[str, Any], source: str) -> Profile:
        """Validate a workload's ``profile`` block.

        Parameters
        ----------
        data
            The block as loaded from YAML.
        source
            File or workload name, used in error messages.
        """
        try:
            devices = tuple(str(d) for d in data["devices"])
            ops_in = data["ops"]
        except (KeyError, TypeError) as exc:
            raise InputError(
                f"{source}: the 'profile' block needs 'devices' (a list of names) and 'ops' "
                f"(a mapping op -> device -> {{latency_s, cost_usd}}); missing {exc}."
            ) from None
        ops: dict[str, dict[str, dict[str, float]]] = {}
        for op, per_dev in ops_in.items():
            ops[op] = {}
            for dev, entry in per_dev.items():
                if dev not in devices:
                    raise InputError(
                        f"{source}: profile.ops.{op} names device '{dev}', which is not in "
                        f"profile.devices {list(devices)}. Add it there or fix the name."
                    )
                ops[op][dev] = _profile_entry(entry, f"{source}: profile.ops.{op}.{dev}")
        transfers = {
            key: _profile_entry(entry, f"{source}: profile.transfers.{key}")
            for key, entry in (data.get("transfers") or {}).items()
        }
        return Profile(devices, ops, transfers)


def _profile_entry(entry: Any, where: str) -> dict[str, float]:
    out = {}
    for key in ("latency_s", "cost_usd"):
        value = entry.get(key) if isinstance(entry, Mapping) else None
        if not isinstance(value, int | float) or value < 0:
            raise InputError(f"{where}.{key} must be a number >= 0, got {value!r}.")
        out[key] = float(value)
    return out


@dataclass(frozen=True)
class CostTable:
    """Candidate configurations of every placeable operator (one row each).

    Attributes
    ----------
    frame
        Columns :data:`COLUMNS`; ``busy_s`` is device-seconds per execution for pooled
        operators, ``requests_per_s`` the throughput of one replica for exclusive ones.
    devices
        Device names the table spans, in catalog order.
    """

    frame: pd.DataFrame
    devices: tuple[str, ...]

    def feasible(self) -> pd.DataFrame:
        """Rows that can be chosen."""
        return self.frame[self.frame["feasible"]]

    def explain_op(self, op: str) -> str:
        """Why operator ``op`` has no feasible configuration, per device, in one sentence each."""
        rows = self.frame[self.frame["op"] == op]
        parts = []
        for dev, group in rows.groupby("device", sort=False):
            parts.append(f"{dev}: {group['reason'].iloc[_best_reason_index(group)]}")
        return "; ".join(parts) if parts else "no device was evaluated"


def _best_reason_index(group: pd.DataFrame) -> int:
    """The most informative infeasibility reason: the one with the lowest latency."""
    lat = group["latency_s"].fillna(math.inf).to_numpy()
    return int(lat.argmin())


_ROW_DEFAULTS: dict[str, Any] = {
    **{c: None for c in COLUMNS},
    "tp": 1,
    "pp": 1,
    "devices_per_replica": 1,
    "batch": 1,
    "exclusive": False,
    "feasible": True,
    "reason": "",
    "direct_cost_usd": 0.0,
    "static_s": 0.0,
    "sync_s": 0.0,
    "cost_model": "roofline",
    "error_band": "",
    "pool_key": "",
    "pool_dim": "",
}
"""What a row holds unless its maker says otherwise."""


def _row(op: Operator, device: str, config: str, **values: Any) -> dict[str, Any]:
    return {**_ROW_DEFAULTS, "op": op.id, "device": device, "config": config, **values}


def _time_columns(t: RooflineTime) -> dict[str, Any]:
    return dict(
        compute_s=t.compute_s,
        memory_s=t.memory_s,
        network_s=t.network_s,
        static_s=t.static_s,
        sync_s=t.sync_s,
        binding=t.binding,
    )


def _measured_llm_rows(
    op: Operator, device: Device, sla: Sla, mem_cap_bytes: float, rows: pd.DataFrame
) -> Iterator[dict[str, Any]]:
    """Rows from a measured profile: its step time and throughput replace the roofline's."""
    assert op.llm is not None
    prefill = op.kind is OpKind.PREFILL
    limit_s = sla.ttft_s if prefill else sla.tbt_s
    steps = 1 if prefill else decode_steps(op.llm)
    make = prefill_config if prefill else decode_config
    for rec in rows.itertuples():
        tp, pp, batch = int(rec.tp), int(rec.pp), int(rec.batch)
        mem = getattr(rec, "mem_per_device_bytes", None)
        if mem is None or not pd.notna(mem):
            mem = make(device, op.llm, tp, batch, 0.0, pp=pp).mem_per_device_bytes
        where = f"tp={tp} pp={pp} batch={batch} (measured)"
        reason = ""
        if mem > mem_cap_bytes:
            reason = f"needs {mem / 1e9:.1f} GB per device at {where}"
        elif limit_s is not None and rec.step_s > limit_s:
            reason = (
                f"{'TTFT' if prefill else 'TBT'} {rec.step_s * 1e3:.1f} ms > SLA "
                f"{limit_s * 1e3:.1f} ms at {where}"
            )
        latency = float(rec.step_s) * steps
        yield _row(
            op,
            device.name,
            f"measured tp{tp}/pp{pp}/b{batch}",
            tp=tp,
            pp=pp,
            devices_per_replica=tp * pp,
            batch=batch,
            exclusive=True,
            feasible=not reason,
            reason=reason,
            latency_s=latency,
            step_s=float(rec.step_s),
            busy_s=latency * tp * pp / batch,
            requests_per_s=float(rec.requests_per_s),
            mem_per_device_bytes=float(mem),
            compute_s=0.0,
            memory_s=0.0,
            network_s=0.0,
            binding="measured",
            cost_model="measured",
            error_band="",
        )


@dataclass(frozen=True)
class ServingContext:
    """How the LLM serving model times one device at one precision (one rule for every
    kind of LLM row).

    Attributes
    ----------
    calib
        The step model's coefficients (the device's own, or borrowed: ``calibrated`` False);
        None with ``costs.model=roofline`` or on a CPU without its own.
    calibrated
        The device has its own calibration entry.
    reserve_bytes
        The engine's memory reserve per device (0 with the roofline).
    provenance
        The rows' ``cost_model`` and ``error_band`` columns.
    """

    calib: CalibrationEntry | None
    calibrated: bool
    reserve_bytes: float
    sla_guard: str
    provenance: dict[str, str]

    def guard(self, prefill: bool) -> float:
        """Factor a step is multiplied by before TTFT/TBT checks (``costs.sla_guard``)."""
        if self.calib is None or self.sla_guard != "heldout":
            return 1.0
        low = self.calib.prefill_min_ratio if prefill else self.calib.decode_min_ratio
        return 1.0 / min(1.0, low)


def serving_context(device: Device, precision: str, params: CostParams) -> ServingContext:
    """The calibration, engine reserve, SLA guard and provenance of LLM rows on ``device``."""
    calib = None
    calibrated = False
    if params.model == "calibrated":
        table = load_calibration(params.calibration)
        calib = table.lookup(device.name, precision)
        calibrated = calib is not None
        if calib is None and device.kind != "cpu":
            calib = table.prior(precision)  # borrowed coefficients, flagged below
    # The engine reserve belongs to the calibrated serving model; costs.model=roofline is the
    # earlier model exactly, so that the two can be compared.
    reserve = 0.0
    if params.model == "calibrated":
        reserve = (
            calib.reserve_bytes
            if calibrated and calib is not None
            else params.runtime_reserve_gb * 1e9
        )
    provenance = dict(
        cost_model=(
            "calibrated"
            if calibrated
            else "roofline"
            if params.model == "roofline"
            else "uncalibrated"
        ),
        error_band=calib.error_band if calib is not None else "unknown",
    )
    return ServingContext(calib, calibrated, reserve, params.sla_guard, provenance)


def _llm_rows(
    op: Operator,
    device: Device,
    sla: Sla,
    params: CostParams,
    mem_cap_bytes: float,
    measured: pd.DataFrame | None = None,
) -> Iterator[dict[str, Any]]:
    assert op.llm is not None
    prefill = op.kind is OpKind.PREFILL
    rows = (
        None
        if measured is None
        else measured_rows(
            measured,
            device.name,
            op.kind.value,
            op.llm.arch.name,
            op.llm.precision,
            op.llm.input_tokens,
            op.llm.output_tokens,
        )
    )
    ctx = serving_context(device, op.llm.precision, params)
    calib, reserve = ctx.calib, ctx.reserve_bytes
    mem_cap_bytes -= reserve
    if rows is not None and len(rows):
        yield from _measured_llm_rows(op, device, sla, mem_cap_bytes, rows)
        return
    guard = ctx.guard(prefill)
    provenance = ctx.provenance
    batches = params.prefill_batch_sizes if prefill else params.decode_batch_sizes
    limit_s = sla.ttft_s if prefill else sla.tbt_s
    limit_name = "TTFT" if prefill else "TBT"
    points = [
        (tp, pp, batch)
        for tp in params.tp_degrees
        if not (tp > device.scale_up_domain or (tp > 1 and op.llm.arch.n_kv_heads % tp))
        for pp in params.pp_degrees
        if not (pp > 1 and (op.llm.arch.n_layers % pp or device.kind == "cpu"))
        for batch in batches
        if batch % pp == 0  # pp micro-batches of equal size
    ]
    configs = llm_configs(
        device, op.llm, prefill, points, params.scale_up_hop_latency_s, calib=calib
    )
    for (tp, pp, batch), cfg in zip(points, configs, strict=True):
        where = f"tp={tp} pp={pp} batch={batch}"
        reason = ""
        if cfg.mem_per_device_bytes > mem_cap_bytes:
            after = f" after the {reserve / 1e9:.1f} GB engine reserve" if reserve else ""
            reason = (
                f"needs {cfg.mem_per_device_bytes / 1e9:.1f} GB per device at "
                f"{where}, more than the {mem_cap_bytes / 1e9:.1f} GB usable"
                f"{after}"
            )
        elif limit_s is not None and cfg.step_s * guard > limit_s:
            margin = (
                f" (x{guard:.2f} held-out error guard: {cfg.step_s * guard * 1e3:.1f} ms)"
                if guard > 1.0
                else ""
            )
            reason = (
                f"{limit_name} {cfg.step_s * 1e3:.1f} ms{margin} > SLA "
                f"{limit_s * 1e3:.1f} ms at {where}"
            )
        label = f"tp{tp}/b{batch}" if pp == 1 else f"tp{tp}/pp{pp}/b{batch}"
        yield _row(
            op,
            device.name,
            label,
            tp=tp,
            pp=pp,
            devices_per_replica=cfg.devices,
            batch=batch,
            exclusive=True,
            feasible=not reason,
            reason=reason,
            latency_s=cfg.latency_s,
            step_s=cfg.step_s,
            busy_s=cfg.latency_s * cfg.devices / batch,
            requests_per_s=cfg.requests_per_s,
            mem_per_device_bytes=cfg.mem_per_device_bytes,
            **_time_columns(cfg.time),
            **provenance,
        )


def _keyed_llm_rows(
    op: Operator,
    device: Device,
    sla: Sla,
    params: CostParams,
    mem_cap_bytes: float,
    measured: pd.DataFrame | None,
    klass: Lengths | None,
) -> list[dict[str, Any]]:
    """An LLM operator's rows with their pool keys, plus rows at its context class.

    A class row (:mod:`hetopt.costs.pools`) takes its step, memory, feasibility and time
    columns from the configuration timed at the class's lengths, and its throughput
    (``requests_per_s``, hence its load) from the operator's own lengths; a decode's latency
    is its own steps at the class's step, a prefill's the class's (longest) prompt.
    """
    assert op.llm is not None
    own = list(_llm_rows(op, device, sla, params, mem_cap_bytes, measured))
    if params.llm_pools == "off":
        return own
    lengths = (op.llm.input_tokens, op.llm.output_tokens)
    call = call_of(op.node_id) if params.llm_pools == "buckets" else ""
    for row in own:
        row["pool_key"] = pool_key(op.llm, op.kind.value, device.name, row["config"], lengths, call)
    if klass is None or klass == lengths or any(r["cost_model"] == "measured" for r in own):
        return own  # measured rows exist at their own lengths only
    wide = replace(op.llm, input_tokens=klass[0], output_tokens=klass[1])
    at_class = list(_llm_rows(replace(op, llm=wide), device, sla, params, mem_cap_bytes, measured))
    if any(r["cost_model"] == "measured" for r in at_class):
        return own  # the two lengths are timed by different models: no common class
    prefill = op.kind is OpKind.PREFILL
    rows = list(own)
    for mine, theirs in zip(own, at_class, strict=True):
        latency = theirs["latency_s"] if prefill else decode_steps(op.llm) * theirs["step_s"]
        rows.append(
            {
                **theirs,
                "op": op.id,
                "config": class_label(theirs["config"], klass),
                "latency_s": latency,
                "busy_s": mine["busy_s"],
                "requests_per_s": mine["requests_per_s"],
                "pool_key": pool_key(
                    wide, op.kind.value, device.name, theirs["config"], klass, call
                ),
            }
        )
    return rows


def _aggregated_rows(
    op: Operator, device: Device, sla: Sla, params: CostParams, mem_cap_bytes: float
) -> list[dict[str, Any]]:
    """An LLM phase's rows of aggregated serving (:mod:`hetopt.costs.aggregated`).

    Both phases of a call get a row per ``(tp, B, C)`` with the same pool key
    (``.../agg/<device>/tp<tp>/b<B>/c<C>/...``): the prefill loads the replica's chunk budget
    (``pool_dim`` ``chunk``; its latency and step are the TTFT, ``ceil(n_in / C)`` steps), the
    decode its slots (``slots``; latency ``decode_steps x tau``, step ``tau``). Every row needs
    ``tau`` within TBT (the replica's decode sequences wait for each chunk) and its memory; a
    prefill row its TTFT within the bound.
    """
    assert op.llm is not None
    llm, prefill = op.llm, op.kind is OpKind.PREFILL
    ctx = serving_context(device, llm.precision, params)
    cap = mem_cap_bytes - ctx.reserve_bytes
    points = [
        (tp, batch, chunk)
        for tp in params.tp_degrees
        if not (tp > device.scale_up_domain or (tp > 1 and llm.arch.n_kv_heads % tp))
        for batch in params.decode_batch_sizes
        for chunk in params.chunk_sizes
    ]
    configs = aggregated_configs(
        device, llm, points, params.scale_up_hop_latency_s, calib=ctx.calib
    )
    lengths = (llm.input_tokens, llm.output_tokens)
    call = call_of(op.node_id) if params.llm_pools == "buckets" else ""
    rows = []
    for cfg in configs:
        config = f"tp{cfg.tp}/b{cfg.decode_batch}/c{cfg.chunk_tokens}"
        reason = ""
        tau_guarded = cfg.step_s * ctx.guard(prefill=False)
        ttft_guarded = cfg.ttft_s * ctx.guard(prefill=True)
        if cfg.mem_per_device_bytes > cap:
            reason = (
                f"needs {cfg.mem_per_device_bytes / 1e9:.1f} GB per device aggregated at "
                f"{config}, more than the {cap / 1e9:.1f} GB usable"
            )
        elif sla.tbt_s is not None and tau_guarded > sla.tbt_s:
            reason = f"TBT {tau_guarded * 1e3:.1f} ms > SLA {sla.tbt_s * 1e3:.1f} ms at {config}"
        elif prefill and sla.ttft_s is not None and ttft_guarded > sla.ttft_s:
            reason = f"TTFT {ttft_guarded * 1e3:.1f} ms > SLA {sla.ttft_s * 1e3:.1f} ms at {config}"
        latency = cfg.ttft_s if prefill else cfg.decode_latency_s
        batch = 1 if prefill else cfg.decode_batch
        rows.append(
            _row(
                op,
                device.name,
                f"agg/{config}",
                tp=cfg.tp,
                pp=1,
                devices_per_replica=cfg.tp,
                batch=batch,
                exclusive=True,
                feasible=not reason,
                reason=reason,
                latency_s=latency,
                step_s=cfg.ttft_s if prefill else cfg.step_s,
                busy_s=latency * cfg.tp / batch,
                requests_per_s=cfg.chunk_requests_per_s if prefill else cfg.slot_requests_per_s,
                mem_per_device_bytes=cfg.mem_per_device_bytes,
                pool_key=pool_key(llm, "agg", device.name, config, lengths, call),
                pool_dim="chunk" if prefill else "slots",
                **_time_columns(cfg.time),
                **ctx.provenance,
            )
        )
    return rows


def _work_row(op: Operator, device: Device, mem_cap_bytes: float) -> dict[str, Any]:
    work = op.work
    assert work is not None
    t = roofline_time(
        device,
        flops=work.flops,
        mem_bytes=work.mem_bytes,
        net_bytes=work.net_bytes,
        precision=work.precision,
        static_s=work.static_latency_s,
    )
    reason = ""
    if work.footprint_bytes > mem_cap_bytes:
        reason = (
            f"needs {work.footprint_bytes / 1e9:.1f} GB resident, more than the "
            f"{mem_cap_bytes / 1e9:.1f} GB usable"
        )
    return _row(
        op,
        device.name,
        "b1",
        feasible=not reason,
        reason=reason,
        latency_s=t.total_s,
        step_s=t.total_s,
        busy_s=t.busy_s,
        requests_per_s=1.0 / t.busy_s if t.busy_s > 0 else math.inf,
        mem_per_device_bytes=work.footprint_bytes,
        **_time_columns(t),
    )


def _unsupported_row(op: Operator, device: Device, reason: str) -> dict[str, Any]:
    return _row(op, device.name, "-", feasible=False, reason=reason, latency_s=math.inf)


def _precision_of(op: Operator) -> str:
    if op.llm is not None:
        return op.llm.precision
    assert op.work is not None
    return op.work.precision


def build_cost_table(
    graph: OperatorGraph,
    catalog: HardwareCatalog,
    sla: Sla,
    params: CostParams | None = None,
    measured: pd.DataFrame | None = None,
) -> CostTable:
    """Evaluate every placeable operator on every device of ``catalog``.

    Parameters
    ----------
    graph
        Decomposed operator graph.
    catalog
        Devices to consider.
    sla
        Per-phase SLA: prefill configurations slower than ``ttft_s`` and decode configurations
        with a step slower than ``tbt_s`` are marked infeasible.
    params
        Cost-model knobs; defaults if omitted.
    measured
        A measured LLM profile (:func:`hetopt.costs.measured.load_measured_profile`); its rows
        replace the roofline's for the (device, phase, model, precision, lengths) it covers.

    Returns
    -------
    CostTable
    """
    params = params or CostParams()
    rows: list[dict[str, Any]] = []
    llm_rows: dict[tuple[OpKind, LlmWork, str, str], list[dict[str, Any]]] = {}
    placeable = [op for op in graph.ops if op.placeable]
    pooled = params.llm_pools in ("buckets", "model")
    classes = context_classes(placeable, params.llm_pools) if pooled else {}
    for op in graph.ops:
        if not op.placeable:
            continue
        for device in catalog.devices:
            if op.devices is not None and device.name not in op.devices:
                rows.append(
                    _unsupported_row(
                        op, device, f"the node restricts placement to {list(op.devices)}"
                    )
                )
                continue
            precision = _precision_of(op)
            if not device.supports(precision):
                rows.append(_unsupported_row(op, device, f"{device.name} has no {precision}"))
                continue
            mem_cap = device.mem_bytes * (1.0 - params.memory_reserve_fraction)
            if op.llm is not None:
                before = len(rows)
                # Operators with the same phase, model and lengths (an agent calling one model
                # many times) get the same rows on a device: computed once, stamped per operator
                # (per call, when the call names the pool keys: llm_pools=buckets).
                call = call_of(op.node_id) if params.llm_pools == "buckets" else ""
                key = (op.kind, op.llm, device.name, call)
                if key not in llm_rows:
                    klass = classes.get(class_group(op, params.llm_pools)) if pooled else None
                    llm_rows[key] = _keyed_llm_rows(
                        op, device, sla, params, mem_cap, measured, klass
                    )
                    if params.aggregated and params.llm_pools != "off":
                        llm_rows[key] += _aggregated_rows(op, device, sla, params, mem_cap)
                rows.extend({**row, "op": op.id} for row in llm_rows[key])
                if len(rows) == before:
                    rows.append(
                        _unsupported_row(
                            op,
                            device,
                            "no tensor-parallel degree fits the device's scale-up domain",
                        )
                    )
            else:
                rows.append(_work_row(op, device, mem_cap))
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return CostTable(frame, catalog.names)


def profile_cost_table(graph: OperatorGraph, profile: Profile) -> CostTable:
    """Cost table read from a measured profile instead of the roofline.

    Every placeable operator must appear in ``profile.ops``. Profiled costs are per execution
    and occupy no device pool (the profile's cost already includes the hardware).
    """
    rows = []
    for op in graph.ops:
        if not op.placeable:
            continue
        if op.id not in profile.ops:
            raise InputError(
                f"profile: operator '{op.id}' has no entry in profile.ops (profiled operators: "
                f"{sorted(profile.ops)}). Add latency_s and cost_usd for it per device."
            )
        for dev, entry in profile.ops[op.id].items():
            rows.append(
                _row(
                    op,
                    dev,
                    "profiled",
                    feasible=True,
                    latency_s=entry["latency_s"],
                    step_s=entry["latency_s"],
                    busy_s=0.0,
                    requests_per_s=math.inf,
                    mem_per_device_bytes=0.0,
                    compute_s=0.0,
                    memory_s=0.0,
                    network_s=0.0,
                    binding="profiled",
                    direct_cost_usd=entry["cost_usd"],
                    cost_model="profiled",
                )
            )
    return CostTable(pd.DataFrame(rows, columns=list(COLUMNS)), profile.devices)
