"""Passes over agent modules: inline nested agents, decompose, annotate costs, place.

Each pass takes a module in the current :func:`~hetopt.mlir.dialect.agent_context` and rewrites
it in place; :func:`hetopt.mlir.compile.compile_plan` prints the module after every pass.

* :func:`inline_agents` replaces each ``agent.call`` by the callee's body, node ids prefixed
  with the agent's path (``researcher/search``); edges into the agent fan out to its sources,
  edges out of it leave from its exits, as :func:`hetopt.graph.decompose.decompose` does.
* :func:`decompose_module` applies rewrite patterns (MLIR's greedy pattern driver with Python
  patterns): ``llm.call -> llm.prefill, llm.kv_transfer, llm.decode``;
  ``tool.invoke -> tool.lookup, agent.edge(response), tool.compute``; a mixture-of-experts
  model's prefill and decode each become ``gate.select, expert.tp_prefill|tp_decode,
  merge.expert_outputs, comm.allreduce`` (the paper's Figure 7c). Every op then carries ``op``,
  the id of the planner operator it belongs to.
* :func:`annotate_costs` attaches each operator's resource vector (the numbers the optimiser
  uses) as a ``cost`` dictionary.
* :func:`place` writes a plan's decisions (device, configuration, count) as ``placement``.

:func:`operator_structure` reads the operator graph back out of a decomposed module; the tests
check it against :func:`~hetopt.graph.decompose.decompose`, two independent implementations of
the same rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch_mlir import ir
from torch_mlir.rewrite import (
    PatternRewriter,
    RewritePatternSet,
    apply_patterns_and_fold_greedily,
)

from hetopt.errors import InputError
from hetopt.graph.architectures import BYTES_PER_ELEMENT, Architecture, load_architectures
from hetopt.graph.decompose import PARSE_FLOPS_PER_BYTE, OperatorGraph
from hetopt.mlir.convert import attr, attrs_of, top_function

NODE_OPS = (
    "llm.call",
    "model.encode",
    "tool.invoke",
    "memory.load",
    "memory.store",
    "memory.kv_cache",
    "compute.run",
    "control.route",
    "control.llm",
    "control.encode",
)


def _msg() -> ir.Type:
    return ir.Type.parse("!agent.msg")


def _top(module: ir.Module) -> ir.Operation:
    """The module's top agent function."""
    return top_function(module)


def _body(fn: ir.Operation) -> ir.Block:
    return fn.regions[0].blocks[0]


def _create(
    name: str,
    operands: Sequence[ir.Value],
    attributes: Mapping[str, ir.Attribute],
    result: bool = True,
) -> ir.Operation:
    return ir.Operation.create(
        name,
        results=[_msg()] if result else [],
        operands=list(operands),
        attributes=dict(attributes),
    )


def _copy_attrs(op: ir.Operation, **changes: ir.Attribute) -> dict[str, ir.Attribute]:
    out = {name: op.attributes[name] for name in op.attributes}
    out.update(changes)
    return out


def _recreate(op: ir.Operation, operands: Sequence[ir.Value]) -> ir.Operation:
    """Replace ``op`` by the same op with other operands (variadic counts may change)."""
    with ir.InsertionPoint(op):
        if op.name == "func.return":
            new = ir.Operation.create("func.return", operands=list(operands))
            fn = op.parent
            fn.attributes["function_type"] = ir.TypeAttr.get(
                ir.FunctionType.get([_msg()], [_msg()] * len(operands))
            )
        else:
            new = ir.Operation.create(
                op.name,
                results=[r.type for r in op.results],
                operands=list(operands),
                attributes=_copy_attrs(op),
            )
    for old, r in zip(op.results, new.results, strict=True):
        old.replace_all_uses_with(r)
    op.erase()
    return new


def _users(value: ir.Value) -> list[ir.Operation]:
    seen: list[ir.Operation] = []
    for use in value.uses:
        owner = use.owner.operation
        if all(owner != s for s in seen):
            seen.append(owner)
    return seen


# --------------------------------------------------------------------------------------------
# Inlining nested agents
# --------------------------------------------------------------------------------------------


def _inline_call(call: ir.Operation, module: ir.Module) -> None:
    a = attrs_of(call)
    prefix = f"{a['node']}/"
    callee = next(
        op.operation
        for op in module.body.operations
        if op.operation.name == "func.func" and attrs_of(op.operation)["sym_name"] == a["callee"]
    )
    body = _body(callee)
    inputs = list(call.operands)
    entries: list[str] = []
    exits: list[ir.Value] = []
    cloned: list[tuple[ir.Operation, ir.Operation]] = []

    def mapped(v: ir.Value) -> ir.Value:
        owner = v.owner.operation
        new = next(n for o, n in cloned if o == owner)
        return new.results[ir.OpResult(v).result_number]

    with ir.InsertionPoint(call):
        for op in body.operations:
            op = op.operation
            if op.name == "func.return":
                exits = [mapped(v) for v in op.operands]
                continue
            operands: list[ir.Value] = []
            for v in op.operands:
                operands.extend(inputs if isinstance(v.owner, ir.Block) else [mapped(v)])
            changes: dict[str, ir.Attribute] = {}
            oa = attrs_of(op)
            if "node" in oa:
                changes["node"] = attr(prefix + oa["node"])
                if all(isinstance(v.owner, ir.Block) for v in op.operands):
                    entries.append(prefix + oa["node"])
            if op.name == "agent.back_edge":
                changes["target"] = attr(prefix + oa["target"])
            cloned.append(
                (
                    op,
                    ir.Operation.create(
                        op.name,
                        results=[r.type for r in op.results],
                        operands=operands,
                        attributes=_copy_attrs(op, **changes),
                    ),
                )
            )
    result = call.results[0]
    for user in _users(result):
        if user.name == "agent.edge":
            with ir.InsertionPoint(user):
                copies = [_create("agent.edge", [x], _copy_attrs(user)).result for x in exits]
            for consumer in _users(user.results[0]):
                operands = []
                for v in consumer.operands:
                    operands.extend(copies if v == user.results[0] else [v])
                _recreate(consumer, operands)
            user.erase()
        elif user.name == "agent.back_edge":
            if len(exits) != 1:
                raise InputError(
                    f"back edge from agent '{a['node']}' leaves an agent with {len(exits)} exits;"
                    " give its subgraph a single sink."
                )
            _recreate(user, exits)
        else:  # func.return or another node's operand list
            operands = []
            for v in user.operands:
                operands.extend(exits if v == result else [v])
            _recreate(user, operands)
    for op in list(_body(call.parent).operations):
        op = op.operation
        if op.name == "agent.back_edge" and attrs_of(op)["target"] == a["node"]:
            if len(entries) != 1:
                raise InputError(
                    f"back edge into agent '{a['node']}' enters an agent with {len(entries)} "
                    "sources; give its subgraph a single source."
                )
            op.attributes["target"] = attr(entries[0])
    call.erase()


def inline_agents(module: ir.Module) -> None:
    """Inline every ``agent.call`` into the top function and drop the nested functions."""
    top = _top(module)
    while True:
        calls = [op.operation for op in _body(top).operations if op.operation.name == "agent.call"]
        if not calls:
            break
        _inline_call(calls[0], module)
    for op in list(module.body.operations):
        if op.operation.name == "func.func" and op.operation != top:
            op.operation.erase()


# --------------------------------------------------------------------------------------------
# Decomposition patterns
# --------------------------------------------------------------------------------------------


def _arch(a: Mapping[str, Any], archs: Mapping[str, Architecture]) -> Architecture:
    try:
        return archs[str(a["model"]).lower()]
    except KeyError:
        raise InputError(
            f"node '{a['node']}': unknown model '{a['model']}'. Known: {sorted(archs)}."
        ) from None


def _llm_pattern(archs: Mapping[str, Architecture]) -> Any:
    def rewrite(op: ir.OpView, rewriter: PatternRewriter) -> bool:
        o = op.operation
        a = attrs_of(o)
        arch = _arch(a, archs)
        path = a["node"]
        base = {
            k: o.attributes[k]
            for k in ("node", "model", "precision", "input_tokens", "output_tokens")
        }
        extra: dict[str, ir.Attribute] = {
            k: o.attributes[k] for k in ("description", "devices") if k in a
        }
        with rewriter.ip:
            value = _phase(arch, "prefill", list(o.operands), {**base, **extra}, path)
            if a["output_tokens"] > 0:
                kv = arch.kv_cache_bytes(int(a["input_tokens"]), 1, str(a["precision"]))
                value = _create(
                    "llm.kv_transfer",
                    [value],
                    {
                        "node": attr(path),
                        "op": attr(f"{path}.kv_transfer"),
                        "payload_bytes": attr(kv),
                    },
                ).result
                value = _phase(arch, "decode", [value], {**base, **extra}, path)
        rewriter.replace_op(o, [value])
        return False

    return rewrite


def _phase(
    arch: Architecture,
    phase: str,
    operands: list[ir.Value],
    base: dict[str, ir.Attribute],
    path: str,
) -> ir.Value:
    op_id = attr(f"{path}.{phase}")
    if not arch.is_moe:
        return _create(f"llm.{phase}", operands, {**base, "op": op_id}).result
    moe = {"node": base["node"], "op": op_id}
    value = _create(
        "gate.select",
        operands,
        {
            **moe,
            "part": attr("gate"),
            "n_experts": attr(arch.n_experts, integer=True),
            "experts_per_token": attr(arch.experts_per_token, integer=True),
        },
    ).result
    value = _create(
        f"expert.tp_{phase}", [value], {**base, "op": op_id, "part": attr("experts")}
    ).result
    value = _create(
        "merge.expert_outputs",
        [value],
        {
            **moe,
            "part": attr("merge"),
            "experts_per_token": attr(arch.experts_per_token, integer=True),
        },
    ).result
    # Tensor parallelism all-reduces the hidden state twice per layer (attention, experts).
    key = "output_tokens" if phase == "decode" else "input_tokens"
    tokens = ir.IntegerAttr(base[key]).value
    bpe = BYTES_PER_ELEMENT[ir.StringAttr(base["precision"]).value]
    return _create(
        "comm.allreduce",
        [value],
        {
            **moe,
            "part": attr("allreduce"),
            "message_bytes": attr(float(2 * tokens * arch.d_model * arch.n_layers * bpe)),
        },
    ).result


def _tool_pattern(op: ir.OpView, rewriter: PatternRewriter) -> bool:
    o = op.operation
    a = attrs_of(o)
    path = a["node"]
    extra: dict[str, ir.Attribute] = {
        k: o.attributes[k] for k in ("description", "devices") if k in a
    }
    response = float(a["response_bytes"])
    flops = a.get("compute_flops", PARSE_FLOPS_PER_BYTE * response)
    mem = a.get("compute_mem_bytes", response if "compute_flops" not in a else 0.0)
    with rewriter.ip:
        look = _create(
            "tool.lookup",
            list(o.operands),
            {
                **{
                    k: o.attributes[k]
                    for k in ("node", "latency_s", "request_bytes", "response_bytes")
                },
                **extra,
                "op": attr(f"{path}.lookup"),
            },
        ).result
        edge = _create(
            "agent.edge",
            [look],
            {
                "index": attr(-1, integer=True),
                "payload_bytes": attr(response),
                "probability": attr(1.0),
            },
        ).result
        comp = _create(
            "tool.compute",
            [edge],
            {
                "node": o.attributes["node"],
                **extra,
                "op": attr(f"{path}.compute"),
                "flops": attr(float(flops)),
                "mem_bytes": attr(float(mem)),
            },
        ).result
    rewriter.replace_op(o, [comp])
    return False


def _name_pattern(op: ir.OpView, rewriter: PatternRewriter) -> bool:
    """Single-operator nodes keep their op and gain ``op`` = the node path."""
    o = op.operation
    if "op" in o.attributes:
        return True  # already named: no match
    o.attributes["op"] = o.attributes["node"]
    return False


def decompose_module(
    module: ir.Module, architectures: Mapping[str, Architecture] | None = None
) -> None:
    """Inline nested agents, then rewrite every node op into its operators (in place).

    Raises
    ------
    InputError
        An unknown model, or a back edge into or out of an agent with several entries/exits.
    """
    archs = dict(architectures or load_architectures())
    inline_agents(module)
    patterns = RewritePatternSet()
    llm = _llm_pattern(archs)
    patterns.add("llm.call", llm)
    patterns.add("control.llm", llm)
    patterns.add("tool.invoke", _tool_pattern)
    for name in (
        "model.encode",
        "control.encode",
        "memory.load",
        "memory.store",
        "memory.kv_cache",
        "compute.run",
        "control.route",
    ):
        patterns.add(name, _name_pattern)
    apply_patterns_and_fold_greedily(module, patterns.freeze())
    first: dict[str, str] = {}
    for op in _body(_top(module)).operations:
        a = attrs_of(op.operation)
        if "op" in a and "node" in a:
            first.setdefault(a["node"], a["op"])
    for op in _body(_top(module)).operations:
        o = op.operation
        if o.name == "agent.back_edge":
            o.attributes["target"] = attr(first[attrs_of(o)["target"]])


# --------------------------------------------------------------------------------------------
# Reading the operator graph back, annotating, placing
# --------------------------------------------------------------------------------------------


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
    for item in _body(_top(module)).operations:
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
    for item in _body(_top(module)).operations:
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
    for item in _body(_top(module)).operations:
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


_CONFIG = re.compile(r"(?:tp(?P<tp>\d+))?(?:/?pp(?P<pp>\d+))?/?(?:b(?P<b>\d+))?")


def parse_config(config: str) -> tuple[int, int]:
    """``(tensor-parallel degree, batch)`` of a cost-table configuration (``tp4/b32``, ``b1``)."""
    m = _CONFIG.fullmatch(config.strip())
    if not m:
        return 1, 1
    return int(m.group("tp") or 1), int(m.group("b") or 1)


def place(module: ir.Module, placement: Sequence[Mapping[str, Any]]) -> None:
    """Write each operator's placement onto its ops: ``placement = {device, config, tp,
    batch, count, latency_s}``; a KV transfer gets the devices at both ends.

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
    body = _body(_top(module))
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
        o.attributes["placement"] = attr(
            {
                "device": str(row["device"]),
                "config": str(row["config"]),
                "tp": tp,
                "batch": batch,
                "count": int(row["count"]),
                "latency_s": float(row["latency_s"]),
            }
        )
    for item in body.operations:
        o = item.operation
        if o.name != "llm.kv_transfer":
            continue
        src = _producer(o.operands[0])
        dst = _users(o.results[0])
        ends = [
            attrs_of(x).get("placement", {}).get("device", "?")
            for x in ([src] if src is not None else []) + dst[:1]
        ]
        o.attributes["placement"] = attr({"from": ends[0], "to": ends[-1]})
