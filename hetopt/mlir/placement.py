"""Reading the operator graph back out of a decomposed agent module, annotating its costs and
writing a plan's placement onto it (the passes after :mod:`hetopt.mlir.passes`'s rewrites).

:func:`operator_structure` reads the operator graph back out of a decomposed module; the tests
check it against :func:`~hetopt.graph.decompose.decompose`, two independent implementations of
the same rules.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch_mlir import ir

from hetopt.costs.pools import config_parts
from hetopt.errors import InputError
from hetopt.graph.architectures import Architecture, load_architectures
from hetopt.graph.decompose import OperatorGraph
from hetopt.mlir.convert import attr, attrs_of, top_body, users_of


@dataclass(frozen=True)
class OperatorStructure:
    """Operators, forward edges and back edges of a decomposed module.

    Attributes
    ----------
    ops
        Planner operator ids, in module order.
    edges
        ``(src, dst, payload_bytes, probability)`` between operators.
    loops
        ``(src, dst, payload_bytes, expected_iterations, max_iterations)``.
    """

    ops: tuple[str, ...]
    edges: tuple[tuple[str, str, float, float], ...]
    loops: tuple[tuple[str, str, float, float, int], ...]

    def same_as(self, graph: OperatorGraph) -> bool:
        """True when ``graph`` (the planner's decomposition) has the same operators, edges
        and loops, in any order."""
        return (
            sorted(self.ops) == sorted(o.id for o in graph.ops)
            and sorted(self.edges)
            == sorted((e.src, e.dst, e.payload_bytes, e.probability) for e in graph.edges)
            and sorted(self.loops)
            == sorted(
                (
                    lp.back_src,
                    lp.back_dst,
                    lp.payload_bytes,
                    lp.expected_iterations,
                    lp.max_iterations,
                )
                for lp in graph.loops
            )
        )


def _producer(value: ir.Value) -> ir.Operation | None:
    owner = value.owner
    return None if isinstance(owner, ir.Block) else owner.operation


def operator_structure(module: ir.Module) -> OperatorStructure:
    """The operator graph of a decomposed module (see :class:`OperatorStructure`)."""
    ops: list[str] = []
    edges: list[tuple[str, str, float, float]] = []
    loops: list[tuple[str, str, float, float, int]] = []
    for item in top_body(module).operations:
        o = item.operation
        a = attrs_of(o)
        if o.name == "agent.back_edge":
            src = _producer(o.operands[0])
            assert src is not None
            loops.append(
                (
                    attrs_of(src)["op"],
                    a["target"],
                    a["payload_bytes"],
                    a["expected_iterations"],
                    a["max_iterations"],
                )
            )
            continue
        if "op" not in a:
            continue
        if a["op"] not in ops:
            ops.append(a["op"])
        for v in o.operands:
            p = _producer(v)
            if p is None:
                continue
            if p.name == "agent.edge":
                ea = attrs_of(p)
                src = _producer(p.operands[0])
                assert src is not None
                edges.append((attrs_of(src)["op"], a["op"], ea["payload_bytes"], ea["probability"]))
            elif attrs_of(p)["op"] != a["op"]:
                edges.append((attrs_of(p)["op"], a["op"], 0.0, 1.0))
    return OperatorStructure(tuple(ops), tuple(edges), tuple(loops))


def placed_ops(module: ir.Module) -> list[tuple[str, dict[str, Any]]]:
    """``(op name, attributes)`` of every operator op of the top function, in order."""
    out = []
    for item in top_body(module).operations:
        o = item.operation
        if "op" in o.attributes:
            out.append((o.name, attrs_of(o)))
    return out


_MOE_SHARE = ("gate", "merge")


def _moe_part_flops(part: str, tokens: int, arch: Architecture) -> float:
    """FLOPs of the router (``gate``) or the weighted combine (``merge``) over ``tokens``."""
    width = arch.n_experts if part == "gate" else arch.experts_per_token
    return 2.0 * tokens * arch.d_model * width * arch.n_layers


def annotate_costs(
    module: ir.Module, graph: OperatorGraph, architectures: Mapping[str, Architecture] | None = None
) -> None:
    """Attach ``cost = {flops, mem_bytes, net_bytes, footprint_bytes, static_latency_s,
    visits, max_visits}`` to every operator op: the resource vector the optimiser uses.

    A mixture-of-experts operator is split across its parts: ``gate.select`` and
    ``merge.expert_outputs`` carry their own arithmetic, ``comm.allreduce`` the message bytes
    as network traffic, and ``expert.tp_*`` the rest, so the parts add up to the operator.
    """
    archs = dict(architectures or load_architectures())
    ids = {o.id for o in graph.ops}
    for item in top_body(module).operations:
        o = item.operation
        a = attrs_of(o)
        if "op" not in a:
            continue
        if a["op"] not in ids:
            raise InputError(
                f"op '{o.name}' belongs to operator '{a['op']}', which the "
                "operator graph does not have; annotate the module it came from."
            )
        op = graph.op(a["op"])
        w = op.work
        cost: dict[str, float] = {"visits": op.visits, "max_visits": op.max_visits}
        if w is None:  # KV transfer
            cost.update(
                flops=0.0,
                mem_bytes=0.0,
                net_bytes=op.payload_bytes,
                footprint_bytes=0.0,
                static_latency_s=0.0,
            )
        else:
            cost.update(
                flops=w.flops,
                mem_bytes=w.mem_bytes,
                net_bytes=w.net_bytes,
                footprint_bytes=w.footprint_bytes,
                static_latency_s=w.static_latency_s,
            )
        if "part" in a and op.llm is not None:
            arch = archs.get(op.llm.arch.name, op.llm.arch)
            tokens = op.tokens_per_visit
            if a["part"] in _MOE_SHARE:
                cost.update(
                    flops=_moe_part_flops(a["part"], tokens, arch),
                    mem_bytes=0.0,
                    net_bytes=0.0,
                    footprint_bytes=0.0,
                )
            elif a["part"] == "allreduce":
                cost.update(
                    flops=0.0,
                    mem_bytes=0.0,
                    footprint_bytes=0.0,
                    net_bytes=float(a["message_bytes"]),
                )
            else:
                cost["flops"] -= sum(_moe_part_flops(p, tokens, arch) for p in _MOE_SHARE)
        o.attributes["cost"] = attr({k: float(v) for k, v in cost.items()})


def parse_config(config: str) -> tuple[int, int]:
    """``(tensor-parallel degree, batch)`` of a cost-table configuration (``tp4/b32``, ``b1``,
    ``tp2/b64/ctx8192x512`` at a context class, ``agg/tp4/b32/c512`` aggregated).

    >>> parse_config("tp2/pp2/b64/ctx8192x512"), parse_config("b1"), parse_config("profiled")
    ((2, 64), (1, 1), (1, 1))
    >>> parse_config("agg/tp4/b32/c512")  # aggregated serving: decode batch, chunk of 512
    (4, 32)
    """
    parts = config_parts(config)
    return (parts[0], parts[2]) if parts is not None else (1, 1)


def place(module: ir.Module, placement: Sequence[Mapping[str, Any]]) -> None:
    """Write each operator's placement onto its ops: ``placement = {device, config, tp,
    batch, count, latency_s}`` (and ``llm_pool``, the key of the LLM pool it shares with other
    operators, if any); a KV transfer gets the devices at both ends.

    Parameters
    ----------
    placement
        Rows of :attr:`hetopt.plan.plan.Plan.placement` (operator, device, config, count,
        latency_s).

    Raises
    ------
    InputError
        The plan has no placement for an operator of the module.
    """
    rows = {str(r["operator"]): r for r in placement}
    pools = Counter(str(r.get("llm_pool") or "") for r in placement)
    shared = {key for key, members in pools.items() if key and members > 1}
    body = top_body(module)
    for item in body.operations:
        o = item.operation
        a = attrs_of(o)
        if "op" not in a or o.name == "llm.kv_transfer":
            continue
        row = rows.get(a["op"])
        if row is None:
            raise InputError(
                f"the plan has no placement for operator '{a['op']}' (op "
                f"'{o.name}'); it was made for another graph. Re-plan."
            )
        tp, batch = parse_config(str(row["config"]))
        where: dict[str, Any] = {
            "device": str(row["device"]),
            "config": str(row["config"]),
            "tp": tp,
            "batch": batch,
            "count": int(row["count"]),
            "latency_s": float(row["latency_s"]),
        }
        if str(row.get("llm_pool") or "") in shared:
            where["llm_pool"] = str(row["llm_pool"])
        o.attributes["placement"] = attr(where)
    for item in body.operations:
        o = item.operation
        if o.name != "llm.kv_transfer":
            continue
        src = _producer(o.operands[0])
        dst = users_of(o.results[0])
        ends = [
            attrs_of(x).get("placement", {}).get("device", "?")
            for x in ([src] if src is not None else []) + dst[:1]
        ]
        o.attributes["placement"] = attr({"from": ends[0], "to": ends[-1]})
