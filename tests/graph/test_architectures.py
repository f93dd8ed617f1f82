"""Architecture table, formula (3) anchors and the FLOP formulas."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hetopt.errors import InputError, UnknownNameError
from hetopt.graph.architectures import (
    BYTES_PER_ELEMENT,
    get_architecture,
    load_architectures,
    read_yaml_file,
)

SHIPPED = (
    "llama-3-8b",
    "llama-3-70b",
    "llama-3.2-3b",
    "llama-3.2-1b",
    "whisper-large-v3",
    "xtts-v2",
    "bert-base",
    "bge-base-en",
)


def test_every_shipped_model_is_present_with_a_source() -> None:
    archs = load_architectures()
    for name in SHIPPED:
        assert name in archs
        assert archs[name].source
    assert all(key == key.lower() for key in archs)


def test_llama_3_numbers() -> None:
    a8, a70 = get_architecture("llama-3-8b"), get_architecture("llama-3-70b")
    assert (a8.n_layers, a8.d_model, a8.n_heads, a8.n_kv_heads, a8.d_ff, a8.vocab_size) == (
        32,
        4096,
        32,
        8,
        14336,
        128256,
    )
    assert a8.params == pytest.approx(8.03e9)
    assert (a70.n_layers, a70.d_model, a70.n_heads, a70.n_kv_heads, a70.d_ff) == (
        80,
        8192,
        64,
        8,
        28672,
    )
    assert a70.params == pytest.approx(70.6e9)
    a3, a1 = get_architecture("llama-3.2-3b"), get_architecture("llama-3.2-1b")
    assert (a3.n_layers, a3.d_model, a3.n_heads, a3.n_kv_heads) == (28, 3072, 24, 8)
    assert (a1.n_layers, a1.d_model, a1.n_heads, a1.n_kv_heads) == (16, 2048, 32, 8)
    assert get_architecture("whisper-large-v3").family == "encoder"
    assert get_architecture("llama-3-8b").family == "decoder"


def test_formula_3_anchors() -> None:
    """Paper §5.2 formula (3), notes §10d: 320 KiB/token (70B), 128 KiB/token (8B) at fp16."""
    assert get_architecture("llama-3-70b").kv_bytes_per_token("fp16") == 327680
    assert get_architecture("llama-3-8b").kv_bytes_per_token("fp16") == 131072
    assert get_architecture("llama-3-70b").kv_bytes_per_token("fp8") == 163840
    assert get_architecture("llama-3-8b").kv_bytes_per_token("bf16") == 131072
    # 10.7 GB at 32K tokens (70B) and 4.29 GB (8B); 168 MB at ISL 512.
    assert get_architecture("llama-3-70b").kv_cache_bytes(32768, 1, "fp16") == pytest.approx(
        10.74e9, rel=1e-3
    )
    assert get_architecture("llama-3-8b").kv_cache_bytes(32768, 1, "fp16") == pytest.approx(
        4.295e9, rel=1e-3
    )
    assert get_architecture("llama-3-70b").kv_cache_bytes(512, 1, "fp16") == pytest.approx(
        167.8e6, rel=1e-3
    )
    assert get_architecture("llama-3-8b").kv_cache_bytes(100, 4, "fp16") == 131072 * 400


def test_weight_bytes() -> None:
    arch = get_architecture("llama-3-70b")
    assert arch.weight_bytes("fp16") == pytest.approx(141.2e9)
    assert arch.weight_bytes("fp8") == pytest.approx(70.6e9)
    assert arch.weight_bytes("fp32") == pytest.approx(282.4e9)


def test_flop_formulas() -> None:
    a = get_architecture("llama-3-8b")
    t = 1000
    assert a.prefill_flops(t) == 2 * a.params * t + 2 * a.n_layers * t**2 * a.d_model
    assert a.decode_flops_per_token(t) == 2 * a.params + 4 * a.n_layers * t * a.d_model
    assert a.forward_flops(t) == 2 * a.params * t + 4 * a.n_layers * t**2 * a.d_model
    summed = sum(a.decode_flops_per_token(1000 + k) for k in range(500))
    assert a.decode_flops(1000, 500) == pytest.approx(summed, rel=1e-12)
    assert a.decode_flops(1000, 0) == 0.0


def test_lookup_is_case_insensitive() -> None:
    assert get_architecture("Llama-3-70B") is get_architecture("llama-3-70b")
    assert get_architecture("  BERT-base ").name == "bert-base"


def test_unknown_model_lists_names_and_suggests() -> None:
    with pytest.raises(UnknownNameError) as err:
        get_architecture("llama-3-7b")
    msg = str(err.value)
    assert "llama-3-7b" in msg
    assert "Did you mean 'llama-3-8b'" in msg or "Did you mean 'llama-3-70b'" in msg
    assert "whisper-large-v3" in msg


def test_unknown_precision_names_it_and_the_allowed_ones() -> None:
    with pytest.raises(InputError) as err:
        get_architecture("llama-3-8b").kv_bytes_per_token("int4")
    assert "int4" in str(err.value)
    for name in BYTES_PER_ELEMENT:
        assert name in str(err.value)


def test_negative_tokens_rejected() -> None:
    with pytest.raises(InputError, match="tokens"):
        get_architecture("llama-3-8b").prefill_flops(-1)


def test_custom_table_errors_name_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "archs.yaml"
    path.write_text(
        "tiny:\n  family: decoder\n  params: 1.0e6\n  n_layers: 2\n  d_model: 64\n"
        "  n_heads: 4\n  n_kv_heads: 4\n  d_ff: 256\n  vocab_size: -3\n"
        "  source: test\n"
    )
    with pytest.raises(InputError) as err:
        load_architectures(path)
    assert str(path) in str(err.value) and "vocab_size" in str(err.value)

    path.write_text("tiny:\n  family: decoder\n  params: 1e6\n")
    with pytest.raises(InputError, match="missing field"):
        load_architectures(path)

    path.write_text("tiny: {family: decoder, params: 1e6\n")
    with pytest.raises(InputError) as err:
        load_architectures(path)
    assert str(path) in str(err.value) and "line" in str(err.value)


def test_custom_table_loads(tmp_path: Path) -> None:
    path = tmp_path / "archs.yaml"
    path.write_text(
        "Tiny-LM:\n  family: decoder\n  params: 1e6\n  n_layers: 2\n  d_model: 64\n"
        "  n_heads: 4\n  n_kv_heads: 2\n  d_ff: 256\n  vocab_size: 1000\n"
        "  source: made up\n"
    )
    archs = load_architectures(path)
    assert list(archs) == ["tiny-lm"]
    assert archs["tiny-lm"].params == 1e6
    assert get_architecture("TINY-LM", archs).kv_bytes_per_token("fp16") == 2 * 2 * 64 * 0.5 * 2


def test_yaml_reader_reads_exponent_floats_and_rejects_duplicate_keys(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("a: 2.0e8\nb: 1e9\nc: 1.5\nd: 10\ne: 1.0e-3\n")
    assert read_yaml_file(path) == {"a": 2.0e8, "b": 1e9, "c": 1.5, "d": 10, "e": 1e-3}
    path.write_text("a: 1\nb: 2\na: 3\n")
    with pytest.raises(InputError) as err:
        read_yaml_file(path)
    assert "duplicate key 'a'" in str(err.value) and "line 3" in str(err.value)
    with pytest.raises(InputError, match="cannot read"):
        read_yaml_file(tmp_path / "missing.yaml")


@given(
    tokens=st.integers(min_value=0, max_value=200_000),
    extra=st.integers(1, 10_000),
    name=st.sampled_from(SHIPPED),
)
def test_prefill_flops_monotone_in_tokens(tokens: int, extra: int, name: str) -> None:
    arch = get_architecture(name)
    assert arch.prefill_flops(tokens + extra) > arch.prefill_flops(tokens)
    assert arch.forward_flops(tokens + extra) > arch.forward_flops(tokens)
    assert arch.decode_flops_per_token(tokens + extra) > arch.decode_flops_per_token(tokens)
    assert arch.prefill_flops(tokens) >= 2 * arch.params * tokens


@given(
    tokens=st.integers(1, 100_000),
    batch=st.integers(1, 256),
    precision=st.sampled_from(sorted(BYTES_PER_ELEMENT)),
)
def test_kv_cache_linear_in_tokens_and_batch(tokens: int, batch: int, precision: str) -> None:
    arch = get_architecture("llama-3-70b")
    per_token = arch.kv_bytes_per_token(precision)
    assert arch.kv_cache_bytes(tokens, batch, precision) == pytest.approx(
        per_token * tokens * batch
    )
