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
* :func:`~hetopt.mlir.placement.annotate_costs` attaches each operator's resource vector (the numbers the optimiser
  uses) as a ``cost`` dictionary.
* :func:`~hetopt.mlir.placement.place` writes a plan's decisions (device, configuration, count) as ``placement``.

The last three (reading the operators back, annotating, placing) live in
:mod:`hetopt.mlir.placement`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch_mlir import ir
from torch_mlir.rewrite import (
    PatternRewriter,
    RewritePatternSet,
    apply_patterns_and_fold_greedily,
)

from hetopt.errors import InputError
from hetopt.graph.architectures import BYTES_PER_ELEMENT, Architecture, load_architectures
from hetopt.graph.decompose import PARSE_FLOPS_PER_BYTE
from hetopt.mlir.convert import attr, attrs_of, top_function, users_of

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
    for user in users_of(result):
        if user.name == "agent.edge":
            with ir.InsertionPoint(user):
                copies = [_create("agent.edge", [x], _copy_attrs(user)).result for x in exits]
            for consumer in users_of(user.results[0]):
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
