"""Model architectures as data, and the FLOP and byte formulas the cost model builds on.

Each :class:`Architecture` is one row of ``hetopt/graph/data/architectures.yaml`` with a
``source``. The formulas are the usual dense-transformer estimates (no sparsity, as in the paper's
§5 setup):

* weights: ``params * bytes_per_element``;
* KV cache per token, the paper's formula (3) with ISL = BS = 1:
  ``2 * n_layers * d_model * (n_kv_heads / n_heads) * bytes_per_element``
  (Llama-3-70B fp16: 327,680 bytes; Llama-3-8B fp16: 131,072 bytes);
* prefill of ``t`` tokens: ``2 * params * t`` for the matrix multiplies plus causal attention
  ``2 * n_layers * t**2 * d_model`` (``QK^T`` and ``AV`` each cost ``2 * t**2 * d_model`` per layer
  for full attention; the causal mask halves their sum);
* one decode step at context ``c``: ``2 * params + 4 * n_layers * c * d_model``;
* one bidirectional (encoder) forward over ``t`` tokens: ``2 * params * t + 4 * n_layers * t**2 *
  d_model``.

This module also holds :func:`read_yaml_file`, the YAML reader the whole graph package shares.

Examples
--------
>>> arch = get_architecture("Llama-3-70B")
>>> arch.kv_bytes_per_token("fp16")
327680.0
"""

from __future__ import annotations

import difflib
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from hetopt.errors import InputError, UnknownNameError
from hetopt.inputs import load_yaml_input

log = logging.getLogger(__name__)

BYTES_PER_ELEMENT: dict[str, float] = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "fp8": 1.0}
"""Bytes per weight/activation element for each precision hetopt knows (the paper's BPE)."""

ARCHITECTURES_PATH = Path(__file__).parent / "data" / "architectures.yaml"
"""The architecture table shipped with hetopt."""

FAMILIES = ("decoder", "encoder")


# --------------------------------------------------------------------------------------------
# YAML reading shared by the graph package
# --------------------------------------------------------------------------------------------


def read_yaml_file(path: str | Path, what: str = "YAML file") -> Any:
    """Read one YAML file, turning every I/O or syntax problem into an :class:`InputError`.

    A thin name for :func:`hetopt.inputs.load_yaml_input`, the one safe YAML reader (local
    files only, size and alias expansion capped, duplicate keys refused).

    Parameters
    ----------
    path
        File to read.
    what
        The kind of file or option, for messages.

    Returns
    -------
    Any
        The parsed document.

    Raises
    ------
    InputError
        The file is missing, unreadable, empty, binary or not UTF-8, or its YAML is malformed
        (the message gives the line and column), or a mapping repeats a key.
    """
    return load_yaml_input(path, what)


# --------------------------------------------------------------------------------------------
# Architectures
# --------------------------------------------------------------------------------------------


def bytes_per_element(precision: str, where: str = "") -> float:
    """Bytes per element of ``precision``.

    Parameters
    ----------
    precision
        One of :data:`BYTES_PER_ELEMENT` (``fp32``, ``fp16``, ``bf16``, ``fp8``).
    where
        Context for the error message (file, node, field), if known.

    Raises
    ------
    InputError
        The precision is unknown.
    """
    try:
        return BYTES_PER_ELEMENT[precision]
    except (KeyError, TypeError):
        prefix = f"{where}: " if where else ""
        raise InputError(
            f"{prefix}unknown precision {precision!r}. Use one of {sorted(BYTES_PER_ELEMENT)}."
        ) from None


def _check_tokens(value: int, name: str) -> None:
    if value < 0:
        raise InputError(f"{name} must be >= 0, got {value}. Pass a non-negative token count.")


@dataclass(frozen=True)
class Architecture:
    """A transformer's shape: enough to derive weights, KV cache and FLOPs.

    Attributes
    ----------
    name
        Lower-case catalog name, e.g. ``llama-3-70b``.
    family
        ``decoder`` (autoregressive: prefill, KV cache, decode) or ``encoder`` (one forward pass).
    params
        Total parameter count.
    n_layers, d_model, n_heads, n_kv_heads, d_ff, vocab_size
        Transformer layers, hidden size, attention heads, key/value heads (GQA), feed-forward
        width and vocabulary size.
    source
        Where the numbers come from.
    n_experts, experts_per_token
        Mixture of experts: feed-forward experts per layer and how many each token is routed
        to (``0, 0`` for a dense model). Every expert's weights stay resident; only the routed
        ones cost FLOPs (see :attr:`active_params`).
    """

    name: str
    family: Literal["decoder", "encoder"]
    params: float
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_ff: int
    vocab_size: int
    source: str
    n_experts: int = 0
    experts_per_token: int = 0

    @property
    def is_moe(self) -> bool:
        """True for a mixture-of-experts model."""
        return self.n_experts > 0

    @property
    def expert_params(self) -> float:
        """Parameters of one expert across all layers: a SwiGLU FFN, ``3 * d_model * d_ff``
        per layer (0 for a dense model)."""
        return 3.0 * self.d_model * self.d_ff * self.n_layers if self.is_moe else 0.0

    @property
    def active_params(self) -> float:
        """Parameters one token multiplies with: all of them for a dense model, the shared
        ones plus ``experts_per_token`` experts for a mixture of experts (Mixtral-8x7B:
        46.7 B total, 12.9 B active)."""
        return self.params - (self.n_experts - self.experts_per_token) * self.expert_params

    def weight_bytes(self, precision: str) -> float:
        """Bytes of the weights: ``params * bytes_per_element``."""
        return self.params * bytes_per_element(precision)

    def kv_bytes_per_token(self, precision: str) -> float:
        """KV-cache bytes per token, the paper's formula (3) with ISL = BS = 1.

        ``2 * n_layers * d_model * (n_kv_heads / n_heads) * bytes_per_element`` (keys and
        values, every layer, the GQA share of the hidden size).
        """
        bpe = bytes_per_element(precision)
        return 2.0 * self.n_layers * self.d_model * (self.n_kv_heads / self.n_heads) * bpe

    def kv_cache_bytes(self, tokens: int, batch: int, precision: str) -> float:
        """KV cache of ``batch`` sequences of ``tokens`` tokens (formula (3): ISL x BS x ...)."""
        _check_tokens(tokens, "tokens")
        if batch < 1:
            raise InputError(f"batch must be >= 1, got {batch}. Pass a positive batch size.")
        return self.kv_bytes_per_token(precision) * tokens * batch

    def prefill_flops(self, tokens: int) -> float:
        """FLOPs of a causal prefill over ``tokens`` tokens (batch 1).

        ``2 * active_params * tokens`` for the weight multiplies plus ``2 * n_layers * tokens**2 *
        d_model`` for causal attention (``QK^T`` and ``AV``, halved by the causal mask).
        """
        _check_tokens(tokens, "tokens")
        return 2.0 * self.active_params * tokens + 2.0 * self.n_layers * tokens**2 * self.d_model

    def decode_flops_per_token(self, context_tokens: int) -> float:
        """FLOPs of one decode step attending to ``context_tokens`` cached tokens.

        ``2 * active_params + 4 * n_layers * context_tokens * d_model``.
        """
        _check_tokens(context_tokens, "context_tokens")
        return 2.0 * self.active_params + 4.0 * self.n_layers * context_tokens * self.d_model

    def decode_flops(self, input_tokens: int, output_tokens: int) -> float:
        """FLOPs of decoding ``output_tokens`` tokens after a prompt of ``input_tokens`` (batch 1).

        The sum of :meth:`decode_flops_per_token` over contexts ``input_tokens + k`` for
        ``k = 0 .. output_tokens - 1``, in closed form.
        """
        _check_tokens(input_tokens, "input_tokens")
        _check_tokens(output_tokens, "output_tokens")
        n = output_tokens
        context_sum = n * input_tokens + n * (n - 1) / 2.0
        return 2.0 * self.active_params * n + 4.0 * self.n_layers * self.d_model * context_sum

    def forward_flops(self, tokens: int) -> float:
        """FLOPs of one bidirectional (encoder) forward over ``tokens`` tokens.

        ``2 * params * tokens + 4 * n_layers * tokens**2 * d_model`` (full, unmasked attention).
        """
        _check_tokens(tokens, "tokens")
        return 2.0 * self.active_params * tokens + 4.0 * self.n_layers * tokens**2 * self.d_model


_INT_FIELDS = ("n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff", "vocab_size")
_MOE_FIELDS = ("n_experts", "experts_per_token")


def _architecture_from_dict(name: str, raw: Any, where: str) -> Architecture:
    """Validate one YAML entry; ``where`` names the file for messages."""
    allowed = [f.name for f in fields(Architecture) if f.name != "name"]
    required = [k for k in allowed if k not in _MOE_FIELDS]
    if not isinstance(raw, Mapping):
        raise InputError(
            f"{where}: architecture '{name}' must be a mapping of {allowed}, got "
            f"{type(raw).__name__}. Write it as 'name: {{family: ..., params: ..., ...}}'."
        )
    unknown = sorted(set(raw) - set(allowed))
    missing = [k for k in required if k not in raw]
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"unknown field(s) {unknown}")
        if missing:
            parts.append(f"missing field(s) {missing}")
        raise InputError(
            f"{where}: architecture '{name}' has {' and '.join(parts)}. Each entry needs "
            f"{required}, and a mixture of experts adds {list(_MOE_FIELDS)}."
        )
    family = raw["family"]
    if family not in FAMILIES:
        raise InputError(
            f"{where}: architecture '{name}' field 'family' is {family!r}. Use 'decoder' for "
            "autoregressive LLMs or 'encoder' for single-pass models."
        )
    params = raw["params"]
    if isinstance(params, bool) or not isinstance(params, int | float) or not params > 0:
        raise InputError(
            f"{where}: architecture '{name}' field 'params' must be a positive number, got "
            f"{params!r}. Write the parameter count, e.g. 8.03e+9."
        )
    ints: dict[str, int] = {}
    for key in _INT_FIELDS:
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(
                f"{where}: architecture '{name}' field '{key}' must be a positive integer, got "
                f"{value!r}. Copy it from the model's config.json."
            )
        ints[key] = value
    if ints["n_kv_heads"] > ints["n_heads"] or ints["n_heads"] % ints["n_kv_heads"]:
        raise InputError(
            f"{where}: architecture '{name}' has n_kv_heads={ints['n_kv_heads']} and "
            f"n_heads={ints['n_heads']}; n_kv_heads must divide n_heads (use n_kv_heads = n_heads "
            "for multi-head attention)."
        )
    moe = {key: raw.get(key, 0) for key in _MOE_FIELDS}
    for key, value in moe.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(
                f"{where}: architecture '{name}' field '{key}' must be a whole number >= 0, got "
                f"{value!r}."
            )
    if (moe["n_experts"] > 0) != (moe["experts_per_token"] > 0) or (
        moe["experts_per_token"] > moe["n_experts"]
    ):
        raise InputError(
            f"{where}: architecture '{name}' has n_experts={moe['n_experts']} and "
            f"experts_per_token={moe['experts_per_token']}. A mixture of experts needs "
            "1 <= experts_per_token <= n_experts; a dense model leaves both out."
        )
    source = raw["source"]
    if not isinstance(source, str) or not source.strip():
        raise InputError(
            f"{where}: architecture '{name}' field 'source' is empty. Cite where the numbers come "
            "from (model card, config.json, paper)."
        )
    arch = Architecture(
        name=name, family=family, params=float(params), source=source.strip(), **ints, **moe
    )
    if arch.active_params <= 0:
        raise InputError(
            f"{where}: architecture '{name}': {moe['n_experts']} experts of "
            f"{arch.expert_params:.3g} parameters do not fit in params={params:g}. Check params, "
            "d_model, d_ff and n_layers."
        )
    return arch


@functools.lru_cache(maxsize=8)
def _load_cached(path: str) -> tuple[Architecture, ...]:
    data = read_yaml_file(path)
    if not isinstance(data, Mapping) or not data:
        raise InputError(
            f"{path}: expected a mapping from model name to architecture fields, got "
            f"{type(data).__name__}. Write one 'name: {{family: ..., params: ...}}' entry per model."
        )
    archs: dict[str, Architecture] = {}
    for raw_name, raw in data.items():
        name = str(raw_name).strip().lower()
        if name in archs:
            raise InputError(
                f"{path}: architecture '{name}' appears twice (names are case-insensitive). "
                "Keep one entry."
            )
        archs[name] = _architecture_from_dict(name, raw, str(path))
    log.debug("loaded %d architectures from %s", len(archs), path)
    return tuple(archs.values())


def load_architectures(path: str | Path | None = None) -> dict[str, Architecture]:
    """Load an architecture table.

    Parameters
    ----------
    path
        YAML file mapping model names to :class:`Architecture` fields; the packaged table
        (:data:`ARCHITECTURES_PATH`) when omitted.

    Returns
    -------
    dict[str, Architecture]
        Architectures keyed by lower-case name (a fresh dict: mutate it freely).

    Raises
    ------
    InputError
        The file is unreadable or malformed, or an entry is missing a field or has a bad value.

    Examples
    --------
    >>> archs = load_architectures()
    >>> archs["llama-3-8b"].n_layers
    32
    """
    resolved = Path(path) if path is not None else ARCHITECTURES_PATH
    return {a.name: a for a in _load_cached(str(resolved))}


def get_architecture(name: str, catalog: Mapping[str, Architecture] | None = None) -> Architecture:
    """Look an architecture up by name, case-insensitively.

    Parameters
    ----------
    name
        Model name, e.g. ``"Llama-3-70B"``.
    catalog
        Architectures keyed by lower-case name; the packaged table when omitted.

    Raises
    ------
    UnknownNameError
        The name is not in the catalog; the message lists the known names and the closest one.
    """
    archs = catalog if catalog is not None else load_architectures()
    key = str(name).strip().lower()
    if key in archs:
        return archs[key]
    raise UnknownNameError(unknown_model_message(name, archs))


def unknown_model_message(name: str, catalog: Mapping[str, Architecture], where: str = "") -> str:
    """One-paragraph message for a model name that ``catalog`` does not know."""
    known = sorted(catalog)
    close = difflib.get_close_matches(str(name).strip().lower(), known, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    prefix = f"{where}: " if where else ""
    return (
        f"{prefix}unknown model '{name}'.{hint} Known models: {', '.join(known)}. Use one of "
        "them, or add an entry (with a source) to the architecture table."
    )
