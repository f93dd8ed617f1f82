"""Compute kernels of placed operators, written in upstream MLIR (func, linalg, tensor, arith).

Every compute operator of a plan lowers to a few kernels of a configurable, small transformer
layer (:class:`KernelShape`): the GEMMs and the attention of prefill, decode and encoder
forward passes, the router of a mixture of experts, and the similarity scan of a vector-database
lookup. Tool calls, host logic and communication (KV transfers, all-reduces) are not lowered:
the planner and the replay own them.

Each :class:`Kernel` carries its MLIR function, its argument shapes, its FLOPs and minimum
memory traffic (for the roofline prediction) and a NumPy reference.

Element types follow the target: CPUs compute in f32; GPU kernels read f16 and accumulate in
f32 (the usual mixed precision; pure-f16 accumulation does not distribute on IREE's ROCm
backend); the portable Vulkan fallback uses f32, which every Vulkan device supports.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hetopt.errors import InputError

Array = np.ndarray
_NP = {"f32": np.float32, "f16": np.float16}
_BYTES = {"f32": 4, "f16": 2}


@dataclass(frozen=True)
class KernelShape:
    """The small transformer (and vector index) the kernels are generated for.

    Attributes
    ----------
    d_model, n_heads, d_ff
        Hidden size, attention heads, feed-forward width.
    prompt_tokens
        Tokens of a prefill or encoder pass.
    context_tokens
        KV-cache length a decode step attends to.
    max_decode_batch
        Cap on the plan's decode batch (the M of the decode GEMMs).
    n_experts
        Router width of a mixture-of-experts gate.
    vectors, queries
        Vector-search database rows and queries per call; the vector dimension is ``d_model``.
    """

    d_model: int = 512
    n_heads: int = 8
    d_ff: int = 2048
    prompt_tokens: int = 256
    context_tokens: int = 512
    max_decode_batch: int = 64
    n_experts: int = 8
    vectors: int = 16384
    queries: int = 16

    def __post_init__(self) -> None:
        for name in (
            "d_model",
            "n_heads",
            "d_ff",
            "prompt_tokens",
            "context_tokens",
            "max_decode_batch",
            "n_experts",
            "vectors",
            "queries",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"mlir.kernel.{name} must be a positive integer, got {value!r}.")
        if self.d_model % self.n_heads:
            raise InputError(
                f"mlir.kernel.n_heads={self.n_heads} must divide d_model={self.d_model}."
            )

    @property
    def head_dim(self) -> int:
        """``d_model / n_heads``."""
        return self.d_model // self.n_heads


@dataclass(frozen=True)
class Kernel:
    """One generated kernel.

    Attributes
    ----------
    name
        Function name in its partition's module.
    operator
        Planner operator it belongs to.
    part
        ``qkv``, ``attention``, ``out_proj``, ``ffn_up``, ``ffn_down``, ``router``, ``scan``.
    shape_class
        ``gemm`` (a matrix multiply with M >= 16), ``gemv`` (a skinny one), ``attention`` or
        ``scan``; the calibration fits GEMM-shaped kernels separately.
    flops, bytes
        Arithmetic and minimum memory traffic of one call (inputs read once, output written).
    args
        ``(shape, element type)`` of each argument.
    text
        The ``func.func`` in MLIR.
    reference
        NumPy function of the arguments giving the expected result.
    causal
        Attention only: the mask hides future tokens (prefill); encoders and decode steps see
        every key.
    """

    name: str
    operator: str
    part: str
    shape_class: str
    flops: float
    bytes: float
    args: tuple[tuple[tuple[int, ...], str], ...]
    text: str
    reference: Callable[..., Array] = field(compare=False, repr=False)
    causal: bool = False

    def inputs(self, seed: int = 0) -> list[Array]:
        """Deterministic random arguments (scaled so that f16 stays well conditioned)."""
        rng = np.random.default_rng(seed)
        out = []
        for shape, et in self.args:
            if self.part == "attention" and len(shape) == 2:  # the mask
                mask = np.zeros(shape, np.float32)
                if self.causal:
                    mask[np.triu_indices(shape[0], 1, shape[1])] = -1e9
                out.append(mask)
                continue
            scale = 1.0 / math.sqrt(shape[-1]) if len(shape) > 1 else 1.0
            out.append((rng.standard_normal(shape) * scale).astype(_NP[et]))
        return out


def _t(shape: Sequence[int], et: str) -> str:
    return "tensor<" + "x".join(str(d) for d in shape) + f"x{et}>"


def _matmul_text(name: str, m: int, k: int, n: int, et: str, acc: str, relu: bool) -> str:
    a, b, c = _t((m, k), et), _t((k, n), et), _t((m, n), acc)
    body = f"""    %r = linalg.matmul ins(%a, %b : {a}, {b}) outs(%f : {c}) -> {c}"""
    if relu:
        body += f"""
    %y = linalg.generic {{indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>], iterator_types = ["parallel", "parallel"]}} ins(%r : {c}) outs(%e : {c}) {{
    ^bb0(%x: {acc}, %o: {acc}):
      %z = arith.maximumf %x, %zero : {acc}
      linalg.yield %z : {acc}
    }} -> {c}"""
    result = "%y" if relu else "%r"
    return f"""  func.func @{name}(%a: {a}, %b: {b}) -> {c} {{
    %zero = arith.constant 0.0 : {acc}
    %e = tensor.empty() : {c}
    %f = linalg.fill ins(%zero : {acc}) outs(%e : {c}) -> {c}
{body}
    return {result} : {c}
  }}"""


def _attention_text(name: str, b: int, t: int, s: int, d: int, et: str, acc: str) -> str:
    q, kv, kt = _t((b, t, d), et), _t((b, s, d), et), _t((b, d, s), et)
    sc, mask, out = _t((b, t, s), acc), _t((t, s), acc), _t((b, t, d), acc)
    scale = repr(1.0 / math.sqrt(d))
    return f"""  func.func @{name}(%q: {q}, %k: {kv}, %v: {kv}, %mask: {mask}) -> {out} {{
    %zero = arith.constant 0.0 : {acc}
    %scale = arith.constant {scale} : {acc}
    %ek = tensor.empty() : {kt}
    %kt = linalg.transpose ins(%k : {kv}) outs(%ek : {kt}) permutation = [0, 2, 1]
    %es = tensor.empty() : {sc}
    %fs = linalg.fill ins(%zero : {acc}) outs(%es : {sc}) -> {sc}
    %s = linalg.batch_matmul ins(%q, %kt : {q}, {kt}) outs(%fs : {sc}) -> {sc}
    %m = linalg.generic {{indexing_maps = [affine_map<(b, i, j) -> (b, i, j)>, affine_map<(b, i, j) -> (i, j)>, affine_map<(b, i, j) -> (b, i, j)>], iterator_types = ["parallel", "parallel", "parallel"]}} ins(%s, %mask : {sc}, {mask}) outs(%es : {sc}) {{
    ^bb0(%x: {acc}, %mk: {acc}, %o: {acc}):
      %y = arith.mulf %x, %scale : {acc}
      %z = arith.addf %y, %mk : {acc}
      linalg.yield %z : {acc}
    }} -> {sc}
    %p = linalg.softmax dimension(2) ins(%m : {sc}) outs(%es : {sc}) -> {sc}
    %eo = tensor.empty() : {out}
    %fo = linalg.fill ins(%zero : {acc}) outs(%eo : {out}) -> {out}
    %o = linalg.batch_matmul ins(%p, %v : {sc}, {kv}) outs(%fo : {out}) -> {out}
    return %o : {out}
  }}"""


def _scan_text(name: str, q: int, d: int, n: int, et: str, acc: str) -> str:
    qs, db, sc, best = _t((q, d), et), _t((d, n), et), _t((q, n), acc), _t((q,), acc)
    return f"""  func.func @{name}(%q: {qs}, %db: {db}) -> {best} {{
    %zero = arith.constant 0.0 : {acc}
    %ninf = arith.constant -3.0e+38 : {acc}
    %e = tensor.empty() : {sc}
    %f = linalg.fill ins(%zero : {acc}) outs(%e : {sc}) -> {sc}
    %s = linalg.matmul ins(%q, %db : {qs}, {db}) outs(%f : {sc}) -> {sc}
    %eb = tensor.empty() : {best}
    %fb = linalg.fill ins(%ninf : {acc}) outs(%eb : {best}) -> {best}
    %r = linalg.reduce ins(%s : {sc}) outs(%fb : {best}) dimensions = [1]
      (%x: {acc}, %m: {acc}) {{
        %y = arith.maximumf %x, %m : {acc}
        linalg.yield %y : {acc}
      }}
    return %r : {best}
  }}"""


def _f32(x: Array) -> Array:
    return np.asarray(x, dtype=np.float32)


def _ref_matmul(relu: bool) -> Callable[..., Array]:
    def ref(a: Array, b: Array) -> Array:
        r = _f32(a) @ _f32(b)
        return np.maximum(r, 0.0) if relu else r

    return ref


def _ref_attention(q: Array, k: Array, v: Array, mask: Array) -> Array:
    s = _f32(q) @ _f32(k).transpose(0, 2, 1) / math.sqrt(q.shape[-1]) + mask
    s = np.exp(s - s.max(axis=-1, keepdims=True))
    return (s / s.sum(axis=-1, keepdims=True)) @ _f32(v)


def _ref_scan(q: Array, db: Array) -> Array:
    return (_f32(q) @ _f32(db)).max(axis=1)


def _ident(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")


def gemm(
    name: str,
    operator: str,
    part: str,
    m: int,
    k: int,
    n: int,
    et: str,
    acc: str,
    relu: bool = False,
) -> Kernel:
    """An ``[m, k] x [k, n]`` GEMM (optionally followed by a ReLU)."""
    return Kernel(
        name,
        operator,
        part,
        "gemm" if m >= 16 else "gemv",
        2.0 * m * n * k,
        float(_BYTES[et] * (m * k + k * n) + _BYTES[acc] * m * n),
        (((m, k), et), ((k, n), et)),
        _matmul_text(name, m, k, n, et, acc, relu),
        _ref_matmul(relu),
    )


def attention(
    name: str,
    operator: str,
    b: int,
    t: int,
    s: int,
    d: int,
    et: str,
    acc: str,
    causal: bool = False,
) -> Kernel:
    """Scaled-dot-product attention of ``b`` (batch x heads) groups, ``t`` queries over ``s``
    keys of width ``d``, with an additive mask."""
    flops = 4.0 * b * t * s * d + 5.0 * b * t * s
    nbytes = float(_BYTES[et] * (b * t * d + 2 * b * s * d) + _BYTES[acc] * (t * s + b * t * d))
    return Kernel(
        name,
        operator,
        "attention",
        "attention",
        flops,
        nbytes,
        (((b, t, d), et), ((b, s, d), et), ((b, s, d), et), ((t, s), acc)),
        _attention_text(name, b, t, s, d, et, acc),
        _ref_attention,
        causal=causal,
    )


_TRANSFORMER_PHASE = {
    "llm.prefill": "prefill",
    "expert.tp_prefill": "prefill",
    "model.encode": "encode",
    "control.encode": "encode",
    "llm.decode": "decode",
    "expert.tp_decode": "decode",
}
"""MLIR ops lowered to one transformer layer, by phase: a prefill is causal over the prompt, a
decode step attends one token per request to the whole context, an encoder sees all tokens."""


def operator_kernels(
    op_name: str, attrs: Mapping[str, Any], shape: KernelShape, et: str, acc: str
) -> list[Kernel]:
    """The kernels of one placed op (empty for ops that are not lowered).

    Parameters
    ----------
    op_name
        MLIR op name (``llm.prefill``, ``expert.tp_decode``, ``model.encode``, ...).
    attrs
        The op's attributes (``op`` and ``placement`` are read).
    shape
        The small transformer.
    et, acc
        Input and accumulator element types.
    """
    operator = str(attrs["op"])
    base = _ident(operator)
    d, f, h, dh = shape.d_model, shape.d_ff, shape.n_heads, shape.head_dim
    placement = attrs.get("placement") or {}
    phase = _TRANSFORMER_PHASE.get(op_name)
    if phase is not None:
        decode = phase == "decode"
        m = (
            min(int(placement.get("batch", 1)), shape.max_decode_batch)
            if decode
            else shape.prompt_tokens
        )
        t = 1 if decode else shape.prompt_tokens
        groups = h * (m if decode else 1)
        s = shape.context_tokens if decode else shape.prompt_tokens
        return [
            gemm(f"{base}__qkv", operator, "qkv", m, d, 3 * d, et, acc),
            attention(
                f"{base}__attention",
                operator,
                groups,
                t,
                s,
                dh,
                et,
                acc,
                causal=phase == "prefill",
            ),
            gemm(f"{base}__out_proj", operator, "out_proj", m, d, d, et, acc),
            gemm(f"{base}__ffn_up", operator, "ffn_up", m, d, f, et, acc, relu=True),
            gemm(f"{base}__ffn_down", operator, "ffn_down", m, f, d, et, acc),
        ]
    if op_name == "gate.select":
        part = str(attrs.get("part", "gate"))
        return [
            gemm(
                f"{base}__{part}_router",
                operator,
                "router",
                shape.prompt_tokens,
                d,
                shape.n_experts,
                et,
                acc,
            )
        ]
    if op_name == "memory.load":
        n, q = shape.vectors, shape.queries
        return [
            Kernel(
                f"{base}__scan",
                operator,
                "scan",
                "scan",
                2.0 * q * d * n + q * n,
                float(_BYTES[et] * (q * d + d * n) + _BYTES[acc] * q),
                (((q, d), et), ((d, n), et)),
                _scan_text(f"{base}__scan", q, d, n, et, acc),
                _ref_scan,
            )
        ]
    return []


def module_text(kernels: Sequence[Kernel]) -> str:
    """One module holding the kernels' functions (one device partition)."""
    return "module {\n" + "\n".join(k.text for k in kernels) + "\n}\n"
