"""Which LLM cost-table rows may share replicas: pool keys and context classes.

Two LLM options are interchangeable replicas when they run the same model at the same
precision, the same phase, on the same device type, in the same configuration
(``tp/pp/batch``) and are timed at the same **context class**: the sequence lengths the
replica's step time, TBT or TTFT and memory are judged at. Such rows carry the same
``pool_key`` string in the cost table, and every operator assigned to a key adds its load to
one pool of replicas, sized ``ceil(summed load)`` (:mod:`hetopt.problem`).

Why a class and not each request's own lengths: a decode step's time grows with the summed
context of its batch (convex, piecewise affine in it, :func:`hetopt.costs.step.predict_step`),
so a batch mixing short and long requests is never slower per step than a batch of its longest
class, and by Jensen's inequality the time-sharing load ``sum_b rate_b steps_b step_b / batch``
computed at each bucket's *own* step over-estimates (is exact for the affine part of) the mixed
batch's occupancy. An option's **load** therefore uses its own lengths, while its **latency,
step and memory** use its class's. Prefill is treated alike: TTFT at the class's longest
prompt, throughput at the operator's own.

``costs.llm_pools`` chooses the classes (:data:`LLM_POOL_MODES`):

* ``buckets`` (default): each operator has rows at its own lengths and, when they differ, rows
  at the longest lengths among the size buckets and slices of its call (per phase), and its
  keys name the call (``...@<call>``), so the buckets and slices of one call pool and nothing
  else does: an agent without size buckets plans exactly as with ``off``;
* ``model``: the class spans every call of the model (per phase, over the whole graph), so
  calls of different lengths (and of equal lengths) pool too. It can save much more (a chain of calls of two models
  shares two pools per phase), at a price in solve time: each call gains a second set of
  options, and the MILP must decide which pools to open (``benchmarks/bench_llm_pools.py``);
* ``own``: rows at the operator's own lengths only: only calls of equal lengths share;
* ``off``: no keys; every LLM operator gets its own replicas (hetopt before shared pools).

A call's buckets and slices are the nodes :func:`hetopt.graph.buckets.expand_size_buckets`
wrote (``<node>-b<k>``, ``<node>-b<k>-s<s>``, ``<node>-s<s>``); :func:`call_of` strips those
suffixes. A node of the user's that happens to end so joins the class, which is always valid
(a class only needs to bound its members' lengths).

Examples
--------
>>> from hetopt.graph.architectures import get_architecture
>>> from hetopt.graph.operators import LlmWork
>>> llm = LlmWork(get_architecture("llama-3-8b"), "fp16", 512, 128)
>>> pool_key(llm, "decode", "H100", "tp1/b32", (2048, 256))
'llama-3-8b/fp16/decode/H100/tp1/b32/ctx2048x256'
>>> class_label("tp1/b32", (2048, 256))
'tp1/b32/ctx2048x256'
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from hetopt.graph.operators import LlmWork, Operator

LLM_POOL_MODES = ("buckets", "model", "own", "off")
"""Values of ``costs.llm_pools`` (see the module docstring)."""

Lengths = tuple[int, int]


_CONFIG = re.compile(
    r"(?:agg/)?(?:tp(?P<tp>\d+))?(?:/?pp(?P<pp>\d+))?/?(?:b(?P<b>\d+))?(?:/c(?P<c>\d+))?"
    r"(?:/ctx\d+x\d+)?"
)


def config_parts(config: str) -> tuple[int, int, int, int] | None:
    """``(tp, pp, batch, chunk_tokens)`` of an LLM configuration label as the cost table
    writes it (``tp2/pp2/b32``, ``b1``, ``agg/tp4/b32/c512``, with or without its context
    class); None for any other label (``profiled``). Omitted parts are 1 (``chunk_tokens`` 0).

    >>> config_parts("tp2/pp2/b64/ctx8192x512"), config_parts("b1"), config_parts("profiled")
    ((2, 2, 64, 0), (1, 1, 1, 0), None)
    >>> config_parts("agg/tp4/b32/c512")
    (4, 1, 32, 512)
    """
    m = _CONFIG.fullmatch(config.strip())
    if not m or not any(m.groups()):
        return None
    tp, pp, batch, chunk = (int(g) if g else 0 for g in m.groups())
    return tp or 1, pp or 1, batch or 1, chunk


def class_label(config: str, context: Lengths) -> str:
    """The configuration label of a row timed at ``context`` = (input, output) tokens."""
    return f"{config}/ctx{context[0]}x{context[1]}"


def pool_key(
    llm: LlmWork, phase: str, device: str, config: str, context: Lengths, call: str = ""
) -> str:
    """The pool key of an LLM row: model/precision/phase/device/config/context class, and
    ``@call`` when only the buckets of one call may share it (``costs.llm_pools=buckets``).

    >>> from hetopt.graph.architectures import get_architecture
    >>> llm = LlmWork(get_architecture("llama-3-8b"), "fp16", 512, 128)
    >>> pool_key(llm, "prefill", "L4", "tp1/b4", (512, 128), call="chat/llm")
    'llama-3-8b/fp16/prefill/L4/tp1/b4/ctx512x128@chat/llm'
    """
    key = f"{llm.arch.name}/{llm.precision}/{phase}/{device}/{class_label(config, context)}"
    return f"{key}@{call}" if call else key


def call_of(node_id: str) -> str:
    """The call a size bucket or slice node was expanded from (the node itself otherwise).

    >>> call_of("llm-b1-s3"), call_of("llm-b0"), call_of("agent/llm-s2"), call_of("planner")
    ('llm', 'llm', 'agent/llm', 'planner')
    """
    return _BUCKET_SUFFIX.sub("", node_id)


_BUCKET_SUFFIX = re.compile(r"(-b\d+)?(-s\d+)?$")


def class_group(op: Operator, mode: str) -> tuple[str, str, str, str]:
    """What shares a context class under ``mode``: (call or "", model, precision, phase)."""
    assert op.llm is not None
    call = call_of(op.node_id) if mode == "buckets" else ""
    return (call, op.llm.arch.name, op.llm.precision, op.kind.value)


def context_classes(
    ops: Iterable[Operator], mode: str = "model"
) -> dict[tuple[str, str, str, str], Lengths]:
    """The longest (input, output) lengths per :func:`class_group` among ``ops``.

    Component-wise: the longest prompt and the longest output, which may come from different
    operators (a class bounds both).

    Examples
    --------
    >>> from hetopt.graph.architectures import get_architecture
    >>> from hetopt.graph.operators import LlmWork, Operator, OpKind
    >>> arch = get_architecture("llama-3-8b")
    >>> ops = [
    ...     Operator("a.decode", OpKind.DECODE, "a", 1.0, llm=LlmWork(arch, "fp16", 512, 400)),
    ...     Operator("b.decode", OpKind.DECODE, "b", 1.0, llm=LlmWork(arch, "fp16", 4096, 64)),
    ... ]
    >>> context_classes(ops)
    {('', 'llama-3-8b', 'fp16', 'decode'): (4096, 400)}
    >>> sorted(context_classes(ops, "buckets").values())
    [(512, 400), (4096, 64)]
    """
    classes: dict[tuple[str, str, str, str], Lengths] = {}
    for op in ops:
        if op.llm is None:
            continue
        key = class_group(op, mode)
        n_in, n_out = classes.get(key, (0, 0))
        classes[key] = (max(n_in, op.llm.input_tokens), max(n_out, op.llm.output_tokens))
    return classes


def key_family(key: str) -> tuple[str, str]:
    """``(model/precision/phase/device + context class, configuration)`` of a pool key: keys
    of one family differ only in their configuration.

    >>> key_family("llama-3-8b/fp16/decode/H100/tp1/pp2/b32/ctx2048x256")
    ('llama-3-8b/fp16/decode/H100/ctx2048x256', 'tp1/pp2/b32')
    >>> key_family("llama-3-8b/fp16/decode/H100/tp1/b32/ctx2048x256@chat/llm")
    ('llama-3-8b/fp16/decode/H100/ctx2048x256@chat/llm', 'tp1/b32')
    """
    key, at, call = key.partition("@")
    parts = key.split("/")
    return "/".join(parts[:4] + parts[-1:]) + at + call, "/".join(parts[4:-1])
