"""Operation-level step model of LLM prefill and decode, fitted to measured data.

One engine step (a prefill of ``batch`` prompts, one decode step of ``batch`` sequences, or
the mixed step of aggregated serving: decode steps and one prefill chunk, :func:`mixed_step_work`)
on one device of a ``tp``-way tensor-parallel group is the sum of the kernels it launches:

* **GEMMs** per layer: QKV projection, output projection, gated MLP up (gate + up) and down;
  the LM head once per step on the last token of each sequence. A GEMM of shape ``(M, N, K)``
  costs ``max(2MNK / (P x e_c), bytes / (BW x e_m)) + f_gemm``.
* **Context attention** (prefill): causal ``QK^T`` and ``AV`` over ``batch x isl^2 / 2``
  positions; **generation attention** (decode): every sequence reads its whole KV cache.
* **Elementwise, norm and quantisation** kernels: RMS norms, rotary embedding, SiLU x gate,
  residual adds, and at fp8 the activation quantisation before each GEMM. Their traffic is in
  16-bit activations whatever the weight precision.
* **Tensor-parallel all-reduce** (two per layer), per group size: ``latency + max(2 (tp-1)/tp x
  bytes / (BW_link x e_link), s x (bytes / 1 MB)^p)``. The ring term is the bandwidth bound;
  the power law is what NCCL and custom all-reduce kernels achieve on mid-size messages (a few
  hundred kB to tens of MB), whose effective bandwidth grows with the message.
* A **per-step framework overhead** (scheduler, sampling, launch gaps).

Each kernel family ``k`` has an asymptotic efficiency ``e_k`` (a fraction of the datasheet peak)
and every launch pays a latency floor ``f``; the *achieved* fraction of peak of a kernel with
work ``W`` is therefore ``W / (peak x t) = e_k W / (W + e_k peak f)``: a saturating curve in the
work size, small for short prompts and batch 1, approaching ``e_k`` for large GEMMs. One floor
is shared by all kernels because step times cannot tell per-family floors apart (they all
scale with the layer count); context attention adds its own fixed cost per layer, which the
decode-only launch counts separate from the shared floor. The coefficients are
fitted per device and precision (:mod:`hetopt.costs.fit`) and shipped in
:mod:`hetopt.costs.calibration`. Because ``e_k <= 1`` and ``f_k >= 0``, no prediction is faster
than the roofline of the same work at 100 % of peak (:func:`roofline_floor_s`).

Why one module: every field of :class:`StepWork` is written by the step builders here
(:func:`step_work`, :func:`mixed_step_work`, sharing their kernel-by-kernel helpers) and read
by :func:`predict_step` and :func:`roofline_floor_s`; apart, a field's meaning would live in
one file and its timing in another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from hetopt.graph.architectures import Architecture

ACT_BYTES = 2.0
"""Activations and attention run in 16-bit whatever the weight precision (fp8 GEMMs quantise
their input on the fly; FMHA stays bf16)."""

ELEMENTWISE_KERNELS_PER_LAYER = 4
"""Two RMS norms, rotary embedding and SiLU x gate per layer (residual adds are fused)."""

QUANT_KERNELS_PER_LAYER = 4
"""At fp8: one activation-quantisation kernel in front of each of the four GEMMs."""


@dataclass(frozen=True)
class ModelShape:
    """The transformer dimensions the step model needs (one decoder layer, repeated).

    Attributes
    ----------
    name
        Model name (for messages and provenance).
    n_layers, d_model, n_heads, n_kv_heads, head_dim, d_ff, vocab_size
        Layer count, hidden size, query heads, key/value heads, per-head width, MLP width and
        vocabulary size.
    n_experts, experts_per_token
        Mixture of experts (``0, 0`` for a dense model).
    """

    name: str
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    d_ff: int
    vocab_size: int
    n_experts: int = 0
    experts_per_token: int = 0

    @staticmethod
    def from_architecture(arch: Architecture) -> ModelShape:
        """The shape of a catalog architecture (``head_dim = d_model / n_heads``).

        Examples
        --------
        >>> from hetopt.graph.architectures import get_architecture
        >>> ModelShape.from_architecture(get_architecture("llama-3-8b")).head_dim
        128
        """
        return ModelShape(
            arch.name,
            arch.n_layers,
            arch.d_model,
            arch.n_heads,
            arch.n_kv_heads,
            arch.d_model // arch.n_heads,
            arch.d_ff,
            arch.vocab_size,
            arch.n_experts,
            arch.experts_per_token,
        )


@dataclass(frozen=True)
class StepCoefficients:
    """Fitted coefficients of the step model for one device and precision.

    Efficiencies are fractions of the datasheet peak (``0 < e <= 1``); floors are seconds.

    Attributes
    ----------
    kernel_floor_s
        Latency floor of every kernel launch (GEMM, attention, elementwise).
    gemm_eff_compute, gemm_eff_memory
        GEMM kernels.
    ctx_attn_eff_compute, ctx_attn_floor_s
        Context (prefill) attention, and its fixed cost per layer beyond the kernel floor.
    gen_attn_eff_memory
        Generation (decode) attention, bound by reading the KV cache.
    elementwise_eff_memory
        Norm, rotary, activation and quantisation kernels.
    allreduce_latency_s_tp2, allreduce_eff_bw_tp2, allreduce_latency_s_tp4, allreduce_eff_bw_tp4, allreduce_latency_s_tp8, allreduce_eff_bw_tp8
        Tensor-parallel all-reduce per group size (2, 4, 8 devices; larger groups use the
        8-device pair): fixed latency and efficiency of the scale-up link. Group size matters
        beyond the ring formula: PCIe systems cross root complexes and sockets at 4 and 8.
    allreduce_size_s_tp2, allreduce_size_s_tp4, allreduce_size_s_tp8, allreduce_size_exponent
        The all-reduce's message-size law: seconds for a 1 MB message per group size, and the
        exponent shared by all group sizes.
    step_overhead_s
        Per-step framework overhead.
    """

    kernel_floor_s: float = 0.0
    gemm_eff_compute: float = 0.7
    gemm_eff_memory: float = 0.8
    ctx_attn_eff_compute: float = 0.7
    ctx_attn_floor_s: float = 0.0
    gen_attn_eff_memory: float = 0.8
    elementwise_eff_memory: float = 0.8
    allreduce_latency_s_tp2: float = 0.0
    allreduce_eff_bw_tp2: float = 1.0
    allreduce_latency_s_tp4: float = 0.0
    allreduce_eff_bw_tp4: float = 1.0
    allreduce_latency_s_tp8: float = 0.0
    allreduce_eff_bw_tp8: float = 1.0
    allreduce_size_s_tp2: float = 0.0
    allreduce_size_s_tp4: float = 0.0
    allreduce_size_s_tp8: float = 0.0
    allreduce_size_exponent: float = 1.0
    step_overhead_s: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if ("eff" in f.name or "exponent" in f.name) and not 0 < value <= 1:
                raise ValueError(f"{f.name} must be in (0, 1], got {value}")
            if not value >= 0:
                raise ValueError(f"{f.name} must be >= 0, got {value}")

    def as_vector(self) -> np.ndarray:
        """The coefficients in field order (what :mod:`hetopt.costs.fit` optimises)."""
        return np.array([getattr(self, f.name) for f in fields(self)], dtype=float)

    @staticmethod
    def from_vector(values: np.ndarray | list[float]) -> StepCoefficients:
        """Inverse of :meth:`as_vector`."""
        names = [f.name for f in fields(StepCoefficients)]
        return StepCoefficients(**{n: float(v) for n, v in zip(names, values, strict=True)})


COEFFICIENT_NAMES = tuple(f.name for f in fields(StepCoefficients))


@dataclass(frozen=True)
class DevicePeaks:
    """Datasheet peaks of one device, in base units.

    Attributes
    ----------
    flops_per_s
        Dense tensor peak at the GEMM precision.
    attn_flops_per_s
        Dense 16-bit tensor peak (attention runs in 16 bit).
    mem_bw_bytes_per_s
        Device-memory bandwidth.
    link_bw_bytes_per_s
        Scale-up bandwidth per direction (NVLink, PCIe, Infinity Fabric).
    """

    flops_per_s: Any
    attn_flops_per_s: Any
    mem_bw_bytes_per_s: Any
    link_bw_bytes_per_s: Any


@dataclass(frozen=True)
class StepWork:
    """The work of one step on one device, per kernel family (arrays over GEMM shapes).

    Attributes
    ----------
    gemm_flops, gemm_bytes, gemm_count
        One entry per distinct GEMM shape: FLOPs and bytes of one launch and how many launches.
    ctx_attn_flops, ctx_attn_bytes, gen_attn_flops, gen_attn_bytes
        Attention work of the whole step (all layers); ``attn_launches`` kernels.
    elementwise_bytes, elementwise_launches
        Elementwise traffic of the whole step and its kernel count.
    allreduce_bytes, allreduce_launches, tp
        Message size of one all-reduce, their number, and the group size.
    gen_attn_launches
        How many of the ``attn_launches`` are generation-attention kernels, which do not pay
        the context-attention floor: all of a decode step's, none of a prefill's, one per layer
        of a mixed step (:func:`mixed_step_work`). 0 by default: then every attention launch of
        a step with context attention pays that floor.
    """

    gemm_flops: Any
    gemm_bytes: Any
    gemm_count: Any
    ctx_attn_flops: Any
    ctx_attn_bytes: Any
    gen_attn_flops: Any
    gen_attn_bytes: Any
    attn_launches: Any
    elementwise_bytes: Any
    elementwise_launches: Any
    allreduce_bytes: Any
    allreduce_launches: Any
    tp: Any
    gen_attn_launches: Any = 0


_WHOLE = ("attn_launches", "elementwise_launches", "allreduce_launches", "tp", "gen_attn_launches")
"""The :class:`StepWork` fields that count whole things (plain ``int`` in a single step)."""


def _widths(shape: ModelShape, tp_f: Any) -> tuple[Any, Any, Any]:
    """Per-device query width, key/value width and MLP width of one layer."""
    hd = shape.head_dim
    return shape.n_heads * hd / tp_f, shape.n_kv_heads * hd / tp_f, shape.d_ff / tp_f


def _context_attention(
    seqs: Any,
    q_tokens: Any,
    prefix: Any,
    q_width: Any,
    kv_width: Any,
    n_layers: Any,
    kv_bytes: float,
) -> tuple[Any, Any]:
    """(FLOPs, bytes) of causal attention of ``seqs`` chunks of ``q_tokens`` new tokens, each
    after ``prefix`` tokens already in the KV cache, over all layers.

    Query ``i`` of a chunk (1-based) attends to ``prefix + i`` positions: ``q (q + 1) / 2 +
    q x prefix`` pairs per chunk. Bytes: the chunk's Q, K, V and output in 16 bit, the KV-cache
    write of its new tokens and the read of the prefix's. A prefill has ``prefix = 0``, and the
    added prefix terms are then exact zeros.
    """
    pairs = seqs * q_tokens * (q_tokens + 1) / 2.0 + seqs * q_tokens * prefix
    flops = 4.0 * pairs * q_width * n_layers
    rows = n_layers * seqs * q_tokens
    nbytes = rows * (2 * q_width + 2 * kv_width) * ACT_BYTES
    nbytes = nbytes + rows * 2 * kv_width * kv_bytes  # the KV-cache write
    nbytes = nbytes + n_layers * seqs * prefix * 2 * kv_width * kv_bytes  # the prefix's read
    return flops, nbytes


def _generation_attention(
    seqs: Any, kv_tokens: Any, q_width: Any, kv_width: Any, n_layers: Any, kv_bytes: float
) -> tuple[Any, Any]:
    """(FLOPs, bytes) of one decode token of ``seqs`` sequences reading ``kv_tokens`` each."""
    flops = 4.0 * seqs * kv_tokens * q_width * n_layers
    nbytes = n_layers * seqs * (kv_tokens * 2 * kv_width * kv_bytes + 2 * q_width * ACT_BYTES)
    return flops, nbytes


def _step_of(
    shape: ModelShape,
    *,
    weight_bytes: float,
    tp_f: Any,
    n_layers: Any,
    tokens: Any,
    head_rows: Any,
    lm_head: bool,
    attention: tuple[Any, Any, Any, Any],
    attn_launches: Any,
    gen_attn_launches: Any,
    zero: Any,
) -> StepWork:
    """The :class:`StepWork` of a step whose GEMMs, norms and all-reduces see ``tokens``
    tokens, whose LM head sees ``head_rows`` rows, with the given attention work
    ``(ctx FLOPs, ctx bytes, gen FLOPs, gen bytes)``; ``zero`` has the points' shape."""
    q_width, kv_width, ff = _widths(shape, tp_f)
    # MoE: each token runs experts_per_token experts; a step reads the weights of every
    # expert some token is routed to (at most all of them).
    if shape.n_experts:
        mlp_tokens = tokens * shape.experts_per_token
        mlp_weight_copies = np.minimum(float(shape.n_experts), mlp_tokens)
    else:
        mlp_tokens, mlp_weight_copies = tokens, np.ones_like(tokens)
    one = np.ones_like(tokens)
    # (M, N, K, weight copies) per layer, then the LM head, which always has a slot (count 0 on
    # non-final stages) so that works stack; one column per GEMM shape.
    shapes = [
        (tokens, q_width + 2 * kv_width, shape.d_model, one),
        (tokens, shape.d_model, q_width, one),
        (mlp_tokens, 2 * ff, shape.d_model, mlp_weight_copies),
        (mlp_tokens, shape.d_model, ff, mlp_weight_copies),
        (head_rows, shape.vocab_size / tp_f, shape.d_model, one),
    ]
    m, n, k, copies = (
        np.stack(np.broadcast_arrays(*(np.asarray(g[i], dtype=float) for g in shapes)), axis=-1)
        for i in range(4)
    )
    counts = np.stack([*([n_layers] * 4), np.full_like(n_layers, 1.0 if lm_head else 0.0)], -1)
    counts = np.broadcast_to(counts, m.shape).copy()  # (points, 5) even when layers is one number
    # norms, residuals and rotary per token; SiLU x gate per routed token (MoE: per expert)
    elt_per_layer = ACT_BYTES * (
        tokens * (6 * shape.d_model + 2 * (q_width + kv_width)) + mlp_tokens * 3 * ff
    )
    elt_launches = ELEMENTWISE_KERNELS_PER_LAYER
    if weight_bytes < ACT_BYTES:  # fp8: quantise each GEMM's input (read 16 bit, write 8 bit)
        quant = (tokens * (shape.d_model + q_width) + mlp_tokens * (shape.d_model + ff)) * (
            ACT_BYTES + weight_bytes
        )
        elt_per_layer = elt_per_layer + quant
        elt_launches += QUANT_KERNELS_PER_LAYER
    ctx_flops, ctx_bytes, gen_flops, gen_bytes = attention
    return StepWork(
        gemm_flops=2.0 * m * n * k,
        gemm_bytes=(m * k + m * n) * ACT_BYTES + k * n * weight_bytes * copies,
        gemm_count=counts,
        ctx_attn_flops=ctx_flops,
        ctx_attn_bytes=ctx_bytes,
        gen_attn_flops=gen_flops,
        gen_attn_bytes=gen_bytes,
        attn_launches=attn_launches,
        elementwise_bytes=n_layers * elt_per_layer,
        elementwise_launches=np.rint(n_layers * elt_launches) + zero,
        allreduce_bytes=tokens * shape.d_model * ACT_BYTES + zero,
        allreduce_launches=np.where(tp_f > 1, np.rint(2 * n_layers), 0.0) + zero,
        tp=tp_f + zero,
        gen_attn_launches=gen_attn_launches,
    )


def _plain(work: StepWork) -> StepWork:
    """One step: plain numbers, as the scalar fields always were (whole counts as int)."""
    return StepWork(
        **{
            f.name: getattr(work, f.name)
            if f.name.startswith("gemm_")
            else (int if f.name in _WHOLE else float)(getattr(work, f.name))
            for f in fields(StepWork)
        }
    )


def step_work(
    shape: ModelShape,
    *,
    weight_bytes: float,
    kv_bytes: float,
    tp: Any,
    batch: Any,
    q_tokens: int,
    kv_tokens: int,
    layers: Any = None,
    lm_head: bool = True,
) -> StepWork:
    """Work of one engine step on one device of a ``tp``-way group.

    ``tp``, ``batch`` and ``layers`` may be equal-length arrays: the result is then the stacked
    work of that many steps (what :func:`stack_work` would build from them one by one, to the
    last bit), which :func:`predict_step` times in one call. The cost table times every
    configuration of an LLM phase on a device this way.

    Parameters
    ----------
    shape
        The model.
    weight_bytes, kv_bytes
        Bytes per weight and per KV-cache element (1 at fp8, 2 at fp16).
    tp
        Tensor-parallel degree.
    batch
        Sequences in the step.
    q_tokens
        New tokens per sequence: the prompt length in prefill, 1 in decode.
    kv_tokens
        Tokens each sequence attends to (prefill: the prompt; decode: the cached context).
    layers
        Layers this device runs (``n_layers / pp`` for a pipeline stage); all by default.
    lm_head
        Whether the step includes the LM head (the last pipeline stage).

    Examples
    --------
    >>> from hetopt.graph.architectures import get_architecture
    >>> s = ModelShape.from_architecture(get_architecture("llama-3-8b"))
    >>> w = step_work(s, weight_bytes=2, kv_bytes=2, tp=1, batch=1, q_tokens=1, kv_tokens=1024)
    >>> int(w.gemm_count.sum())  # 4 GEMMs x 32 layers + the LM head
    129
    >>> many = step_work(s, weight_bytes=2, kv_bytes=2, tp=np.array([1, 2]),
    ...                  batch=np.array([1, 8]), q_tokens=1, kv_tokens=1024)
    >>> many.gemm_flops.shape
    (2, 5)
    """
    stacked = np.ndim(tp) > 0 or np.ndim(batch) > 0 or np.ndim(layers) > 0
    n_layers = np.asarray(shape.n_layers if layers is None else layers, dtype=float)
    tp_f = np.asarray(tp, dtype=float)
    batch_f = np.asarray(batch, dtype=float)
    q_width, kv_width, _ = _widths(shape, tp_f)
    zero = np.zeros(np.broadcast(tp_f, batch_f, n_layers).shape)
    # Attention over all layers.
    if q_tokens > 1:  # causal prefill (the KV-cache write is in the context bytes)
        ctx = _context_attention(batch_f, q_tokens, 0, q_width, kv_width, n_layers, kv_bytes)
        attention = (*ctx, zero, zero)
        gen_launches = zero
    else:
        gen = _generation_attention(batch_f, kv_tokens, q_width, kv_width, n_layers, kv_bytes)
        attention = (zero, zero, *gen)
        gen_launches = np.rint(n_layers) + zero
    work = _step_of(
        shape,
        weight_bytes=weight_bytes,
        tp_f=tp_f,
        n_layers=n_layers,
        tokens=batch_f * q_tokens,
        head_rows=batch_f,
        lm_head=lm_head,
        attention=attention,
        attn_launches=np.rint(n_layers) + zero,
        gen_attn_launches=gen_launches,
        zero=zero,
    )
    return work if stacked else _plain(work)


def mixed_step_work(
    shape: ModelShape,
    *,
    weight_bytes: float,
    kv_bytes: float,
    tp: Any,
    decode_batch: Any,
    decode_ctx: Any,
    chunk_tokens: Any,
    chunk_prefix: Any,
    layers: Any = None,
    lm_head: bool = True,
) -> StepWork:
    """Work of one *mixed* engine step: decode steps and one prefill chunk together.

    What an engine with chunked prefill (vLLM's) runs in one step of aggregated serving:
    ``B = decode_batch`` sequences each make one token at a context of ``decode_ctx`` tokens,
    and one prefill chunk of ``C = chunk_tokens`` new tokens extends a prompt that already
    has ``P = chunk_prefix`` tokens in the KV cache. Per layer:

    * the GEMMs, norms, rotary, quantisation and the two all-reduces run on ``B + C`` tokens;
    * context attention of the chunk over its prefix: ``C (P + (C + 1) / 2)`` query-key
      pairs, 4 FLOPs per pair per query column, the chunk's Q, K, V and output in 16 bit, the
      KV-cache write of ``C`` tokens and the read of ``P`` (as :func:`step_work` for a prefill,
      plus the prefix);
    * generation attention of the ``B`` sequences, as :func:`step_work`'s decode step;
    * one context-attention kernel and one generation-attention kernel (each only when its
      part is present: an empty step launches none); the context-attention floor
      (``ctx_attn_floor_s``) is paid by the context kernel alone.

    The LM head runs on ``B + 1`` rows when ``C > 0``: the decode sequences and the chunk's
    last token. Only the chunk that ends its prompt needs that row; counting it on every chunk
    keeps one shape for every step of a prompt, at the price of one row of ``vocab / tp``
    (at most one extra decode sequence's LM-head work).

    Every argument but ``shape``, the byte sizes and ``lm_head`` may be an array (equal
    lengths, or numbers): the result is then the stacked work of that many steps, as with
    :func:`step_work`. With ``C = 0`` the work is :func:`step_work`'s decode step of ``B``
    sequences (``B >= 1``), and with ``B = 0, P = 0`` its prefill of one prompt of ``C``
    tokens (``C >= 2``; :func:`step_work` treats a one-token step as decode), field by field
    and to the last bit.

    Parameters
    ----------
    shape
        The model.
    weight_bytes, kv_bytes
        Bytes per weight and per KV-cache element (1 at fp8, 2 at fp16).
    tp
        Tensor-parallel degree.
    decode_batch
        Decode sequences in the step (``B >= 0``).
    decode_ctx
        Tokens each decode sequence attends to.
    chunk_tokens
        New prompt tokens of the prefill chunk (``C >= 0``; 0 is a plain decode step).
    chunk_prefix
        Prompt tokens already in the KV cache before the chunk (``P >= 0``).
    layers
        Layers this device runs; all by default.
    lm_head
        Whether the step includes the LM head.

    Returns
    -------
    StepWork
        What :func:`predict_step` times.

    Raises
    ------
    ValueError
        If a token count or the batch is negative.

    Examples
    --------
    >>> from hetopt.graph.architectures import get_architecture
    >>> s = ModelShape.from_architecture(get_architecture("llama-3-8b"))
    >>> w = mixed_step_work(s, weight_bytes=2, kv_bytes=2, tp=1, decode_batch=8,
    ...                     decode_ctx=1024, chunk_tokens=512, chunk_prefix=1536)
    >>> float(w.gemm_flops[0] / (2 * 6144 * 4096))  # QKV projection: M = B + C
    520.0
    >>> float(w.gemm_flops[4] / (2 * s.vocab_size * 4096))  # LM head: M = B + 1
    9.0
    >>> w.ctx_attn_flops == 4 * 512 * (1536 + 513 / 2) * 4096 * 32  # 4 x pairs x width x layers
    True
    >>> w.attn_launches, w.gen_attn_launches  # one context, one generation kernel per layer
    (64, 32)
    >>> decode = step_work(s, weight_bytes=2, kv_bytes=2, tp=1, batch=8, q_tokens=1,
    ...                    kv_tokens=1024)
    >>> bool(w.gen_attn_bytes == decode.gen_attn_bytes)
    True
    """
    values = (decode_batch, decode_ctx, chunk_tokens, chunk_prefix)
    if any(np.any(np.asarray(v) < 0) for v in values):
        raise ValueError(f"token counts and the batch must be >= 0, got {values}")
    stacked = any(np.ndim(v) > 0 for v in (tp, *values, layers))
    n_layers = np.asarray(shape.n_layers if layers is None else layers, dtype=float)
    tp_f = np.asarray(tp, dtype=float)
    batch_f, ctx_f, chunk_f, prefix_f = (np.asarray(v, dtype=float) for v in values)
    q_width, kv_width, _ = _widths(shape, tp_f)
    zero = np.zeros(np.broadcast(tp_f, batch_f, ctx_f, chunk_f, prefix_f, n_layers).shape)
    has_chunk = np.where(chunk_f > 0, 1.0, 0.0)
    has_decode = np.where(batch_f > 0, 1.0, 0.0)
    # one chunk, or none (then its prefix is not read either)
    ctx = _context_attention(has_chunk, chunk_f, prefix_f, q_width, kv_width, n_layers, kv_bytes)
    gen = _generation_attention(batch_f, ctx_f, q_width, kv_width, n_layers, kv_bytes)
    work = _step_of(
        shape,
        weight_bytes=weight_bytes,
        tp_f=tp_f,
        n_layers=n_layers,
        tokens=batch_f + chunk_f,
        head_rows=batch_f + has_chunk,
        lm_head=lm_head,
        attention=(ctx[0] + zero, ctx[1] + zero, gen[0] + zero, gen[1] + zero),
        attn_launches=np.rint(n_layers) * (has_chunk + has_decode) + zero,
        gen_attn_launches=np.rint(n_layers) * has_decode + zero,
        zero=zero,
    )
    return work if stacked else _plain(work)


@dataclass(frozen=True)
class StepTime:
    """Predicted time of one step, itemised by kernel family (seconds; arrays when the work
    was stacked)."""

    gemm_s: Any
    attention_s: Any
    elementwise_s: Any
    allreduce_s: Any
    overhead_s: Any
    compute_bound_s: Any
    memory_bound_s: Any

    @property
    def total_s(self) -> Any:
        """The step time."""
        return (
            self.gemm_s + self.attention_s + self.elementwise_s + self.allreduce_s + self.overhead_s
        )


def predict_step(work: StepWork, peaks: DevicePeaks, c: StepCoefficients) -> StepTime:
    """Time of one step with coefficients ``c`` (see the module docstring).

    ``work`` and ``peaks`` may hold arrays with a leading dimension of points (as
    :func:`stack_work` builds); the result then holds arrays too.

    Examples
    --------
    >>> from hetopt.graph.architectures import get_architecture
    >>> s = ModelShape.from_architecture(get_architecture("llama-3-8b"))
    >>> w = step_work(s, weight_bytes=2, kv_bytes=2, tp=1, batch=1, q_tokens=1, kv_tokens=1024)
    >>> peaks = DevicePeaks(989e12, 989e12, 3.35e12, 450e9)
    >>> t = predict_step(w, peaks, StepCoefficients(kernel_floor_s=2e-6,
    ...                                             step_overhead_s=1e-3))
    >>> round(float(t.total_s) * 1e3, 2)
    7.23
    >>> bool(t.total_s >= roofline_floor_s(w, peaks))
    True
    """
    scalar = np.ndim(work.tp) == 0
    flops_peak = peaks.flops_per_s if scalar else np.expand_dims(peaks.flops_per_s, -1)
    bw_gemm = peaks.mem_bw_bytes_per_s if scalar else np.expand_dims(peaks.mem_bw_bytes_per_s, -1)
    g_compute = work.gemm_flops / (flops_peak * c.gemm_eff_compute)
    g_memory = work.gemm_bytes / (bw_gemm * c.gemm_eff_memory)
    compute_wins = g_compute >= g_memory
    gemm = np.sum(work.gemm_count * (np.maximum(g_compute, g_memory) + c.kernel_floor_s), axis=-1)
    compute_bound = np.sum(work.gemm_count * g_compute * compute_wins, axis=-1)
    memory_bound = np.sum(work.gemm_count * g_memory * ~compute_wins, axis=-1)
    attn_f = (
        work.ctx_attn_flops / (peaks.attn_flops_per_s * c.ctx_attn_eff_compute)
        + work.gen_attn_flops / peaks.attn_flops_per_s
    )
    attn_b = work.ctx_attn_bytes / peaks.mem_bw_bytes_per_s + work.gen_attn_bytes / (
        peaks.mem_bw_bytes_per_s * c.gen_attn_eff_memory
    )
    extra = np.where(np.asarray(work.ctx_attn_flops) > 0, c.ctx_attn_floor_s, 0.0)
    # Generation kernels pay the shared floor only; in a prefill (no generation launches) or a
    # decode step (no context-attention extra) this is the one-product form to the last bit.
    gen_launches = work.gen_attn_launches
    attention = (
        np.maximum(attn_f, attn_b)
        + (work.attn_launches - gen_launches) * (c.kernel_floor_s + extra)
        + gen_launches * c.kernel_floor_s
    )
    compute_bound = compute_bound + np.where(attn_f >= attn_b, attn_f, 0.0)
    memory_bound = memory_bound + np.where(attn_f < attn_b, attn_b, 0.0)
    elementwise = (
        work.elementwise_bytes / (peaks.mem_bw_bytes_per_s * c.elementwise_eff_memory)
        + work.elementwise_launches * c.kernel_floor_s
    )
    tp = np.asarray(work.tp, dtype=float)
    latency = _by_group(
        tp, c.allreduce_latency_s_tp2, c.allreduce_latency_s_tp4, c.allreduce_latency_s_tp8
    )
    eff = _by_group(tp, c.allreduce_eff_bw_tp2, c.allreduce_eff_bw_tp4, c.allreduce_eff_bw_tp8)
    size_s = _by_group(tp, c.allreduce_size_s_tp2, c.allreduce_size_s_tp4, c.allreduce_size_s_tp8)
    ring = 2.0 * (tp - 1.0) / np.maximum(tp, 1.0) * work.allreduce_bytes
    message = np.maximum(np.asarray(work.allreduce_bytes, dtype=float) / 1e6, 1e-12)
    # numpy's power may differ in the last bit between a scalar and an array (SIMD kernels):
    # raise an array always, so one point costs the same alone or stacked with others
    scaled = np.power(np.atleast_1d(message), c.allreduce_size_exponent).reshape(message.shape)
    allreduce = work.allreduce_launches * (
        latency + np.maximum(ring / (peaks.link_bw_bytes_per_s * eff), size_s * scaled)
    )
    allreduce = np.where(tp > 1, allreduce, 0.0)
    return StepTime(
        gemm, attention, elementwise, allreduce, c.step_overhead_s, compute_bound, memory_bound
    )


def _by_group(tp: np.ndarray, tp2: float, tp4: float, tp8: float) -> Any:
    """The coefficient of each all-reduce group size (2, up to 4, larger)."""
    if np.ndim(tp) == 0:
        return tp2 if tp <= 2 else (tp4 if tp <= 4 else tp8)
    return np.select([tp <= 2, tp <= 4], [tp2, tp4], tp8)


def stack_work(works: list[StepWork]) -> StepWork:
    """Stack the work of many steps into one :class:`StepWork` of arrays (for fitting)."""
    values = {
        f.name: np.stack([np.asarray(getattr(w, f.name), dtype=float) for w in works])
        for f in fields(StepWork)
    }
    return StepWork(**values)


def roofline_floor_s(work: StepWork, peaks: DevicePeaks) -> Any:
    """The fastest any step with this work could run: its roofline at 100 % of every peak.

    ``max(sum FLOPs / peak FLOP/s, sum bytes / peak bandwidth)`` over all kernels; link traffic
    is ignored (it only adds time).
    """
    flops_s = (
        np.sum(work.gemm_count * work.gemm_flops, axis=-1) / peaks.flops_per_s
        + (work.ctx_attn_flops + work.gen_attn_flops) / peaks.attn_flops_per_s
    )
    bytes_total = (
        np.sum(work.gemm_count * work.gemm_bytes, axis=-1)
        + work.ctx_attn_bytes
        + work.gen_attn_bytes
        + work.elementwise_bytes
    )
    return np.maximum(flops_s, bytes_total / peaks.mem_bw_bytes_per_s)


def achieved_fraction(work_units: float, peak_per_s: float, eff: float, floor_s: float) -> float:
    """Achieved fraction of peak of one kernel: ``W / (peak x (W / (peak e) + floor))``.

    Examples
    --------
    >>> round(achieved_fraction(1e12, 1e15, 0.8, 0.0), 3)
    0.8
    >>> achieved_fraction(1e6, 1e15, 0.8, 5e-6) < 0.001
    True
    """
    if work_units <= 0:
        return 0.0
    t = work_units / (peak_per_s * eff) + floor_s
    return work_units / (peak_per_s * t) if math.isfinite(t) and t > 0 else 0.0
