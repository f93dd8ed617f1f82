"""A corpus of malformed inputs: every reader and command refuses each one with exit 2, no
traceback, and a message naming the file, row, column, field or key at fault.

Each case writes its small files into a fresh directory, runs the real CLI in-process
(``hetopt.cli.main.main``) from that directory and checks the exit status and the message.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from hetopt.cli.main import main

# ---------------------------------------------------------------------------- building blocks

WORKLOAD = """\
name: tiny
request_rate_per_s: 1.0
nodes:
  llm: {kind: model_execution, model: llama-3-8b, precision: fp16, input_tokens: 512, output_tokens: 64}
  tool: {kind: tool_call, lookup: {latency_s: 0.1, request_bytes: 100, response_bytes: 100}}
  out: {kind: general_compute, work: {flops: 1.0e+6, mem_bytes: 1.0e+6}}
edges:
  - {src: llm, dst: tool, payload_bytes: 100}
  - {src: tool, dst: out, payload_bytes: 100}
"""

BRANCHY = """\
name: branchy
request_rate_per_s: 1.0
nodes:
  route: {kind: general_compute, work: {flops: 1.0e+6, mem_bytes: 1.0e+6}}
  a: {kind: general_compute, work: {flops: 1.0e+6, mem_bytes: 1.0e+6}}
  b: {kind: general_compute, work: {flops: 1.0e+6, mem_bytes: 1.0e+6}}
edges:
  - {src: route, dst: a, probability: 0.9}
  - {src: route, dst: b, probability: 0.8}
"""

BUCKETED = """\
name: sized
request_rate_per_s: 1.0
nodes:
  llm: {kind: model_execution, model: llama-3-8b, precision: fp16, size_trace: TRACE}
edges: []
"""

ALIAS_BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
name: bomb
request_rate_per_s: 1.0
nodes: {x: {kind: general_compute}}
"""

PROFILE_HEADER = (
    "device,phase,model,precision,input_tokens,output_tokens,tp,pp,batch,step_s,"
    "requests_per_s,source\n"
)
PROFILE_ROW = "H100,decode,llama-3-8b,fp16,512,64,1,1,8,0.01,5.0,bench\n"

CATALOG_CSV = (
    Path(__file__).resolve().parent.parent / "hetopt" / "hardware" / "data" / "devices.csv"
).read_text(encoding="utf-8")
CATALOG_HEADER, CATALOG_FIRST = CATALOG_CSV.splitlines()[:2]

FLEET = """\
name: f
tenants:
  - {name: one, workload: chat_agent, request_rate_per_s: 1.0}
"""

MLIR_OK_PREFIX = 'module {\n  "agent.graph"() ({\n'
GZ = gzip.compress(b"name: x\nnodes: {}\n")
LATIN1 = "name: caf\xe9\nrequest_rate_per_s: 1\n".encode("latin-1")
TRUNCATED_UTF8 = "name: caf\u00e9".encode()[:-1]


def _wl(old: str, new: str, base: str = WORKLOAD) -> str:
    assert old in base, old
    return base.replace(old, new)


def _profile(*rows: str, header: str = PROFILE_HEADER) -> str:
    return header + "".join(rows)


def _catalog(first_row: str = CATALOG_FIRST, header: str = CATALOG_HEADER) -> str:
    return header + "\n" + first_row + "\n"


def _cell(row: str, column: str, value: str) -> str:
    """``row`` of the catalog with ``column`` set to ``value`` (cells without quoted commas)."""
    import csv
    import io

    cells = next(csv.reader(io.StringIO(row)))
    cells[CATALOG_HEADER.split(",").index(column)] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(cells)
    return out.getvalue()


@dataclass(frozen=True)
class Case:
    """One malformed input: files to write, the command line, and what the message must say.

    ``args`` may use ``{d}`` (the case's directory) and ``{plan}`` (a saved ``hetopt plan``).
    Every needle must appear in the error output (whitespace ignored).
    """

    id: str
    args: tuple[str, ...]
    needles: tuple[str, ...]
    files: dict[str, str | bytes] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None


def plan(id: str, files: dict[str, str | bytes], *args: str, needles: tuple[str, ...]) -> Case:
    return Case(id, ("plan", *args), needles, files)


def wl_case(id: str, text: str | bytes, *needles: str, name: str = "w.yaml") -> Case:
    """``hetopt plan workload_file=<text>``; the message must name the file and ``needles``."""
    return Case(id, ("plan", f"workload_file={{d}}/{name}"), (name, *needles), {name: text})


def prof_case(id: str, text: str | bytes, *needles: str, workload: str = WORKLOAD) -> Case:
    return Case(
        id,
        ("plan", "workload_file={d}/w.yaml", "costs.measured_profile={d}/p.csv", "baselines=[]"),
        ("p.csv", *needles),
        {"w.yaml": workload, "p.csv": text},
    )


def cat_case(id: str, text: str | bytes, *needles: str) -> Case:
    return Case(
        id,
        ("plan", "workload=chat_agent", "hardware.catalog_path={d}/c.csv", "baselines=[]"),
        ("c.csv", *needles),
        {"c.csv": text},
    )


def trace_case(id: str, text: str | bytes, *needles: str) -> Case:
    return Case(
        id,
        (
            "replay",
            "replay.plan_dir={plan}",
            "replay.arrivals.kind=trace",
            "replay.arrivals.trace_path={d}/t.csv",
        ),
        ("t.csv", *needles),
        {"t.csv": text},
    )


def size_case(id: str, text: str | bytes, *needles: str, trace: str = "{d}/s.csv") -> Case:
    return Case(
        id,
        ("plan", "workload_file={d}/w.yaml", "baselines=[]"),
        ("s.csv" if "s.csv" in trace else "w.yaml", *needles),
        {"w.yaml": BUCKETED.replace("TRACE", trace), "s.csv": text},
    )


def fleet_case(id: str, text: str | bytes, *needles: str) -> Case:
    return Case(
        id,
        ("fleet", "fleet_file={d}/f.yaml"),
        ("f.yaml", *needles),
        {"f.yaml": text},
        setup=lambda d: (d / "wdir.yaml").mkdir(),
    )


def saved_case(
    id: str, edit: Callable[[Path], None], *needles: str, command: str = "replay"
) -> Case:
    key = "replay.plan_dir" if command == "replay" else "mlir.plan_dir"
    return Case(id, (command, f"{key}={{d}}/saved"), needles, setup=edit)


def _edit(name: str, content: str | bytes | Callable[[str], str]) -> Callable[[Path], None]:
    """Copy the saved plan to ``<d>/saved`` and overwrite (or transform) one of its files."""

    def apply(saved: Path) -> None:
        path = saved / name
        if callable(content):
            path.write_text(content(path.read_text()))
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)

    return apply


def _plan_json(change: Callable[[dict], object]) -> Callable[[str], str]:
    def apply(text: str) -> str:
        data = json.loads(text)
        out = change(data)
        return json.dumps(data if out is None else out)

    return apply


def _set(path: tuple[str | int, ...], value: object) -> Callable[[dict], None]:
    def apply(data: dict) -> None:
        node: object = data
        for key in path[:-1]:
            node = node[key]  # type: ignore[index]
        node[path[-1]] = value  # type: ignore[index]

    return apply


# ---------------------------------------------------------------------------- the corpus

CASES: list[Case] = [
    # -- workload YAML: the file itself
    wl_case("wl-empty", "", "is empty"),
    wl_case("wl-whitespace", "  \n\n   \n", "is empty"),
    wl_case("wl-gzip", GZ, "gzip"),
    wl_case("wl-nul-bytes", b"name: x\x00\x00\nnodes: {}\n", "binary"),
    wl_case("wl-png", b"\x89PNG\r\n\x1a\n\x00\x00", "PNG"),
    wl_case("wl-latin1", LATIN1, "not UTF-8"),
    wl_case("wl-utf16", WORKLOAD.encode("utf-16"), "UTF-16"),
    prof_case("prof-utf16", _profile(PROFILE_ROW).encode("utf-16"), "UTF-16"),
    wl_case("wl-truncated-utf8", TRUNCATED_UTF8, "not UTF-8"),
    wl_case("wl-truncated-yaml", WORKLOAD[: WORKLOAD.index("edges") + 12], "malformed YAML"),
    wl_case("wl-alias-bomb", ALIAS_BOMB, "alias"),
    wl_case("wl-recursive-anchor", "a: &a [1, *a]\nname: x\n", "recursive"),
    wl_case("wl-deep-nesting", "a: " + "[" * 5000 + "]" * 5000 + "\n", "nests"),
    wl_case(
        "wl-malformed",
        "name: x\nnodes:\n  a: {kind: model_execution, model: x\n",
        "malformed YAML",
        "line",
    ),
    wl_case("wl-tab-indent", "name: x\nnodes:\n\ta: 1\n", "malformed YAML"),
    wl_case("wl-duplicate-key", WORKLOAD + "name: again\n", "duplicate key 'name'"),
    wl_case("wl-two-documents", WORKLOAD + "---\n" + WORKLOAD, "malformed YAML"),
    wl_case("wl-python-tag", "name: !!python/object/apply:os.system ['true']\n", "malformed YAML"),
    wl_case("wl-top-level-list", "- name: x\n- nodes: {}\n", "mapping"),
    wl_case("wl-top-level-scalar", "just a sentence\n", "mapping"),
    wl_case("wl-only-comment", "# nothing here\n", "mapping"),
    Case(
        "wl-directory",
        ("plan", "workload_file={d}/wdir"),
        ("wdir", "directory"),
        setup=lambda d: (d / "wdir").mkdir(),
    ),
    Case(
        "wl-directory-yaml-suffix",
        ("plan", "workload_file={d}/w.yaml"),
        ("w.yaml", "directory"),
        setup=lambda d: (d / "w.yaml").mkdir(),
    ),
    Case("wl-missing", ("plan", "workload_file={d}/nope.yaml"), ("nope.yaml", "does not exist")),
    Case(
        "wl-url",
        ("plan", "workload_file=https://example.com/w.yaml"),
        ("https://example.com/w.yaml", "URL"),
    ),
    Case("wl-dev-null", ("plan", "workload_file=/dev/null"), ("/dev/null", "not a regular")),
    # -- workload YAML: keys and values
    wl_case(
        "wl-misspelt-rate",
        _wl("request_rate_per_s", "request_rate_per_sec"),
        "request_rate_per_sec",
        "Did you mean 'request_rate_per_s'",
    ),
    wl_case("wl-misspelt-nodes", _wl("nodes:", "node:"), "Did you mean 'nodes'"),
    wl_case("wl-misspelt-edges", _wl("edges:", "edgse:"), "Did you mean 'edges'"),
    wl_case("wl-missing-rate", _wl("request_rate_per_s: 1.0\n", ""), "request_rate_per_s"),
    wl_case("wl-rate-string", _wl("1.0\n", "fast\n"), "request_rate_per_s", "fast"),
    wl_case("wl-rate-negative", _wl("1.0\n", "-2\n"), "request_rate_per_s"),
    wl_case("wl-rate-bool", _wl("1.0\n", "true\n"), "request_rate_per_s"),
    wl_case(
        "wl-nodes-list",
        _wl("  llm: {kind", "  - llm: {kind")
        .replace("  tool: {", "  - tool: {")
        .replace("  out: {", "  - out: {"),
        "nodes",
        "'id'",
    ),
    wl_case(
        "wl-nodes-list-with-sizes",
        "name: s\nrequest_rate_per_s: 1\nnodes:\n"
        "  - {id: llm, kind: model_execution, model: llama-3-8b, size_trace: t.csv}\n",
        "'nodes' is a list",
    ),
    wl_case(
        "wl-nodes-string",
        _wl("nodes:\n", "nodes: llm\nx:\n").split("x:\n")[0] + "edges: []\n",
        "'nodes'",
    ),
    wl_case("wl-nodes-empty", "name: e\nrequest_rate_per_s: 1\nnodes: {}\n", "'nodes'"),
    wl_case(
        "wl-edges-mapping",
        _wl(
            "edges:\n  - {src: llm, dst: tool, payload_bytes: 100}\n"
            "  - {src: tool, dst: out, payload_bytes: 100}\n",
            "edges: {src: llm, dst: tool}\n",
        ),
        "'edges'",
    ),
    wl_case(
        "wl-edge-not-mapping",
        _wl("  - {src: tool, dst: out, payload_bytes: 100}", "  - tool -> out"),
        "edge",
    ),
    wl_case("wl-edge-unknown-node", _wl("dst: out", "dst: outt"), "outt"),
    wl_case(
        "wl-edge-misspelt-key",
        _wl("payload_bytes: 100}\n  - {src: tool", "payload_byte: 100}\n  - {src: tool"),
        "payload_byte",
        "Did you mean 'payload_bytes'",
    ),
    wl_case(
        "wl-node-misspelt-key",
        _wl("output_tokens: 64", "output_token: 64"),
        "output_token",
        "output_tokens",
    ),
    wl_case("wl-node-unknown-kind", _wl("kind: tool_call", "kind: tool_cal"), "tool_cal"),
    wl_case(
        "wl-tokens-with-unit", _wl("input_tokens: 512", "input_tokens: 8k"), "input_tokens", "8k"
    ),
    wl_case(
        "wl-latency-with-unit", _wl("latency_s: 0.1", "latency_s: 12.1ms"), "latency_s", "12.1ms"
    ),
    wl_case("wl-tokens-negative", _wl("output_tokens: 64", "output_tokens: -64"), "output_tokens"),
    wl_case("wl-tokens-fraction", _wl("input_tokens: 512", "input_tokens: 512.5"), "input_tokens"),
    wl_case("wl-unknown-model", _wl("llama-3-8b", "llama-9"), "llama-9"),
    wl_case("wl-unknown-precision", _wl("precision: fp16", "precision: fp6"), "fp6"),
    wl_case("wl-branches-sum-1.7", BRANCHY, "'route'", "= 1.7"),
    wl_case("wl-probability-above-1", _wl("0.9", "1.5", BRANCHY), "probability"),
    wl_case("wl-probability-zero", _wl("0.9", "0", BRANCHY), "probability"),
    wl_case("wl-probability-string", _wl("0.9", "likely", BRANCHY), "probability", "likely"),
    wl_case(
        "wl-cycle-without-loop",
        _wl("  - {src: tool, dst: out, payload_bytes: 100}", "  - {src: tool, dst: llm}"),
        "unbounded cycle",
    ),
    wl_case(
        "wl-loop-missing-iterations",
        _wl(
            "  - {src: tool, dst: out, payload_bytes: 100}",
            "  - {src: tool, dst: llm, loop: {expected_iterations: 1}}",
        ),
        "max_iterations",
    ),
    wl_case(
        "wl-ttft-above-e2e", WORKLOAD + "sla: {ttft_s: 20.0, e2e_s: 10.0}\n", "ttft_s", "e2e_s"
    ),
    wl_case("wl-tbt-above-e2e", WORKLOAD + "sla: {tbt_s: 30.0, e2e_s: 10.0}\n", "tbt_s", "e2e_s"),
    wl_case("wl-sla-misspelt-key", WORKLOAD + "sla: {e2e: 10.0}\n", "e2e", "did you mean 'e2e_s'"),
    wl_case("wl-sla-not-mapping", WORKLOAD + "sla: 10\n", "'sla'"),
    wl_case("wl-sla-string-bound", WORKLOAD + "sla: {e2e_s: soon}\n", "e2e_s"),
    wl_case(
        "wl-size-buckets-sum",
        _wl(
            "input_tokens: 512, output_tokens: 64}",
            "size_buckets: [{input_tokens: 10, output_tokens: 5, weight: 0.9}, "
            "{input_tokens: 100, output_tokens: 5, weight: 0.8}]}",
        ),
        "size_buckets",
        "sum",
    ),
    wl_case(
        "wl-size-buckets-string",
        _wl(
            "input_tokens: 512, output_tokens: 64}",
            "size_buckets: [{input_tokens: 8k, output_tokens: 5, weight: 1.0}]}",
        ),
        "input_tokens",
        "8k",
    ),
    wl_case(
        "wl-size-buckets-missing-weight",
        _wl(
            "input_tokens: 512, output_tokens: 64}",
            "size_buckets: [{input_tokens: 8, output_tokens: 5}]}",
        ),
        "size_buckets[0]",
    ),
    # -- workload names
    Case("name-dotdot", ("plan", "workload=../../x"), ("../../x", "not a workload name")),
    Case(
        "name-dotdot-shipped",
        ("plan", "workload=../workload/voice_agent"),
        ("../workload/voice_agent", "names, not paths"),
    ),
    Case("name-absolute", ("plan", "workload=/etc/hostname"), ("/etc/hostname", "not a")),
    Case("name-sla-path", ("plan", "sla=../sla/relaxed"), ("../sla/relaxed", "sla name")),
    Case("name-fleet-path", ("fleet", "fleet=../fleet/enterprise"), ("../fleet/enterprise",)),
    Case("name-unknown", ("plan", "workload=voice_agnet"), ("voice_agnet",)),
    # -- workload MLIR
    wl_case("mlir-empty", "", "is empty", name="w.mlir"),
    wl_case("mlir-gzip", GZ, "gzip", name="w.mlir"),
    wl_case("mlir-latin1", LATIN1, "not UTF-8", name="w.mlir"),
    wl_case("mlir-garbage", "this is not mlir at all {{{\n", name="w.mlir"),
    wl_case("mlir-truncated", MLIR_OK_PREFIX, name="w.mlir"),
    Case(
        "mlir-directory",
        ("plan", "workload_file={d}/w.mlir"),
        ("w.mlir", "directory"),
        setup=lambda d: (d / "w.mlir").mkdir(),
    ),
    # -- size traces
    size_case("size-url", "", "URL", trace="https://example.com/sizes.csv"),
    size_case("size-s3-url", "", "URL", trace="s3://bucket/sizes.csv"),
    size_case("size-missing", "", "absent.csv", "does not exist", trace="{d}/absent.csv"),
    size_case("size-empty", "", "is empty"),
    size_case("size-header-only", "input_tokens,output_tokens\n", "no data rows"),
    size_case("size-gzip", GZ, "gzip"),
    size_case(
        "size-unit-ms",
        "input_tokens,output_tokens\n100,12.1ms\n",
        "row 2",
        "output_tokens",
        "12.1ms",
    ),
    size_case(
        "size-unit-k", "input_tokens,output_tokens\n100,10\n8k,20\n", "row 3", "input_tokens", "8k"
    ),
    size_case(
        "size-blank-cell",
        "input_tokens,output_tokens\n100,10\n,20\n",
        "row 3",
        "input_tokens",
        "blank",
    ),
    size_case(
        "size-missing-column", "input_token,output_tokens\n100,10\n", "input_tokens", "did you mean"
    ),
    size_case("size-negative", "input_tokens,output_tokens\n100,-1\n", "output_tokens"),
    size_case("size-zero-input", "input_tokens,output_tokens\n0,10\n", "input_tokens"),
    size_case("size-ragged", "input_tokens,output_tokens\n100,10,7,9\n", "line 2", "cells"),
    size_case("size-latin1", b"input_tokens,output_tokens\n100,10\n\xe9\xe9,1\n", "UTF-8"),
    size_case(
        "size-duplicate-column", "input_tokens,input_tokens,output_tokens\n1,2,3\n", "repeats"
    ),
    Case(
        "size-directory",
        ("plan", "workload_file={d}/w.yaml"),
        ("sdir", "directory"),
        {"w.yaml": BUCKETED.replace("TRACE", "{d}/sdir")},
        setup=lambda d: (d / "sdir").mkdir(),
    ),
    wl_case(
        "size-bins-not-number",
        _wl("input_tokens: 512, output_tokens: 64}", "size_trace: s.csv, size_input_bins: many}"),
        "size_input_bins",
    ),
    wl_case(
        "size-trace-not-string",
        _wl("input_tokens: 512, output_tokens: 64}", "size_trace: [1, 2]}"),
        "size_trace",
    ),
    wl_case(
        "size-trace-and-buckets",
        _wl(
            "input_tokens: 512, output_tokens: 64}",
            "size_trace: s.csv, size_buckets: [{input_tokens: 512, output_tokens: 64, weight: 1}]}",
        ),
        "size_buckets",
        "size_trace",
        "ignored",
    ),
    trace_case("trace-after-the-horizon", "timestamp_s\n1000\n2000\n", "after the replay"),
    # -- measured profiles
    prof_case("prof-empty", "", "is empty"),
    prof_case("prof-header-only", PROFILE_HEADER, "no data rows"),
    prof_case("prof-gzip", gzip.compress(_profile(PROFILE_ROW).encode()), "gzip"),
    prof_case(
        "prof-step-with-unit",
        _profile(PROFILE_ROW.replace("0.01", "12.1ms")),
        "row 2",
        "step_s",
        "12.1ms",
    ),
    prof_case(
        "prof-batch-with-k", _profile(PROFILE_ROW.replace(",8,", ",8k,")), "row 2", "batch", "8k"
    ),
    prof_case(
        "prof-blank-step",
        _profile(PROFILE_ROW, PROFILE_ROW.replace("0.01", "")),
        "row 3",
        "step_s",
        "blank",
    ),
    prof_case(
        "prof-blank-device", _profile(PROFILE_ROW.replace("H100", "")), "row 2", "device", "blank"
    ),
    prof_case("prof-blank-source", _profile(PROFILE_ROW.replace("bench", "")), "row 2", "source"),
    prof_case(
        "prof-unknown-device",
        _profile(PROFILE_ROW, PROFILE_ROW.replace("H100", "H200X")),
        "row 3",
        "H200X",
        "not a device",
    ),
    prof_case(
        "prof-device-wrong-case",
        _profile(PROFILE_ROW.replace("H100", "h100")),
        "h100",
        "Did you mean 'H100'",
    ),
    prof_case(
        "prof-unknown-model",
        _profile(PROFILE_ROW.replace("llama-3-8b", "llama-3-9b")),
        "row 2",
        "model",
        "llama-3-9b",
    ),
    prof_case(
        "prof-unknown-precision", _profile(PROFILE_ROW.replace("fp16", "fp4")), "precision", "fp4"
    ),
    prof_case(
        "prof-bad-phase", _profile(PROFILE_ROW.replace("decode", "decoding")), "phase", "decoding"
    ),
    prof_case(
        "prof-matches-nothing",
        _profile(PROFILE_ROW.replace(",512,", ",1024,")),
        "none of its rows matches",
    ),
    prof_case(
        "prof-negative-rate", _profile(PROFILE_ROW.replace("5.0,", "-5.0,")), "requests_per_s"
    ),
    prof_case("prof-zero-tp", _profile(PROFILE_ROW.replace(",1,1,8,", ",0,1,8,")), "tp"),
    prof_case("prof-fraction-batch", _profile(PROFILE_ROW.replace(",8,", ",8.5,")), "batch"),
    prof_case(
        "prof-missing-column",
        _profile(
            PROFILE_ROW.rsplit(",", 1)[0] + "\n", header=PROFILE_HEADER.replace(",source", "")
        ),
        "missing column",
        "source",
    ),
    prof_case(
        "prof-misspelt-column",
        _profile(PROFILE_ROW, header=PROFILE_HEADER.replace("step_s", "step")),
        "step_s",
        "did you mean",
    ),
    prof_case("prof-nan", _profile(PROFILE_ROW.replace("0.01", "nan")), "step_s"),
    prof_case("prof-inf", _profile(PROFILE_ROW.replace("0.01", "inf")), "step_s"),
    prof_case(
        "prof-ragged", _profile(PROFILE_ROW.replace("bench", "bench,extra")), "line 2", "cells"
    ),
    prof_case(
        "prof-latin1",
        (_profile(PROFILE_ROW.replace("bench", "caf\xe9"))).encode("latin-1"),
        "UTF-8",
    ),
    Case(
        "prof-url",
        ("plan", "workload_file={d}/w.yaml", "costs.measured_profile=http://10.0.0.1/p.csv"),
        ("http://10.0.0.1", "URL"),
        {"w.yaml": WORKLOAD},
    ),
    Case(
        "prof-directory",
        ("plan", "workload_file={d}/w.yaml", "costs.measured_profile={d}"),
        ("directory",),
        {"w.yaml": WORKLOAD},
    ),
    # -- hardware catalog
    cat_case("cat-empty", "", "is empty"),
    cat_case("cat-header-only", CATALOG_HEADER + "\n", "no device rows"),
    cat_case("cat-gzip", gzip.compress(CATALOG_CSV.encode()), "gzip"),
    cat_case(
        "cat-latin1", _catalog(_cell(CATALOG_FIRST, "notes", "caf\xe9")).encode("latin-1"), "UTF-8"
    ),
    cat_case(
        "cat-tflops-unit",
        _catalog(_cell(CATALOG_FIRST, "fp16_tflops", "149.7TF")),
        "fp16_tflops",
        "149.7TF",
    ),
    cat_case("cat-mem-k", _catalog(_cell(CATALOG_FIRST, "mem_gb", "48k")), "mem_gb", "48k"),
    cat_case("cat-blank-required", _catalog(_cell(CATALOG_FIRST, "price_usd", "")), "price_usd"),
    cat_case(
        "cat-negative-price", _catalog(_cell(CATALOG_FIRST, "price_usd", "-3000")), "price_usd"
    ),
    cat_case(
        "cat-misspelt-column",
        _catalog(header=CATALOG_HEADER.replace("mem_gb,", "mem_gib,")),
        "mem_gib",
        "did you mean 'mem_gb'",
    ),
    cat_case(
        "cat-missing-column",
        _catalog(
            ",".join(CATALOG_FIRST.split(",")[:3]), header=",".join(CATALOG_HEADER.split(",")[:3])
        ),
        "required column",
    ),
    cat_case("cat-ragged", _catalog(CATALOG_FIRST + ",x,y,z"), "more cells"),
    cat_case("cat-duplicate-name", _catalog(CATALOG_FIRST + "\n" + CATALOG_FIRST), "A40"),
    Case(
        "cat-url",
        ("plan", "hardware.catalog_path=ftp://example.com/c.csv"),
        ("ftp://example.com/c.csv", "URL"),
    ),
    Case("cat-directory", ("plan", "hardware.catalog_path={d}"), ("directory",)),
    Case("cat-missing", ("plan", "hardware.catalog_path={d}/none.csv"), ("none.csv",)),
    # -- arrival traces (replay)
    trace_case("trace-empty", "", "is empty"),
    trace_case("trace-header-only", "timestamp_s\n", "no data rows"),
    trace_case("trace-gzip", gzip.compress(b"timestamp_s\n0.1\n"), "gzip"),
    trace_case("trace-unit-ms", "timestamp_s\n0.1\n12.1ms\n", "row 3", "timestamp_s", "12.1ms"),
    trace_case("trace-blank", "timestamp_s,input_tokens\n0.1,5\n,6\n", "row 3", "blank"),
    trace_case("trace-decreasing", "timestamp_s\n0.5\n0.1\n", "row 3", "decrease"),
    trace_case("trace-negative", "timestamp_s\n-1\n", "timestamp_s"),
    trace_case("trace-missing-column", "timestamps\n0.1\n", "timestamp_s", "did you mean"),
    trace_case("trace-tokens-k", "timestamp_s,input_tokens\n0.1,8k\n", "input_tokens", "8k"),
    trace_case("trace-latin1", b"timestamp_s\n0.1\n\xe9\n", "UTF-8"),
    trace_case("trace-ragged", "timestamp_s\n0.1,4,5\n", "line 2", "cells"),
    Case(
        "trace-url",
        (
            "replay",
            "replay.plan_dir={plan}",
            "replay.arrivals.kind=trace",
            "replay.arrivals.trace_path=https://example.com/t.csv",
        ),
        ("URL",),
    ),
    Case(
        "trace-directory",
        (
            "replay",
            "replay.plan_dir={plan}",
            "replay.arrivals.kind=trace",
            "replay.arrivals.trace_path={d}",
        ),
        ("directory",),
    ),
    # -- fleet files
    fleet_case("fleet-empty", "", "is empty"),
    fleet_case("fleet-gzip", gzip.compress(FLEET.encode()), "gzip"),
    fleet_case("fleet-latin1", FLEET.replace("one", "caf\xe9").encode("latin-1"), "UTF-8"),
    fleet_case("fleet-alias-bomb", ALIAS_BOMB, "alias"),
    fleet_case(
        "fleet-malformed", "tenants:\n  - {name: a, workload: chat_agent\n", "malformed YAML"
    ),
    fleet_case("fleet-list", "- {name: one, workload: chat_agent}\n", "mapping"),
    fleet_case("fleet-tenants-mapping", "tenants: {one: chat_agent}\n", "tenants"),
    fleet_case(
        "fleet-tenant-misspelt",
        FLEET.replace("request_rate_per_s", "rate_per_s"),
        "rate_per_s",
        "did you mean 'request_rate_per_s'",
    ),
    fleet_case(
        "fleet-workload-dotdot",
        FLEET.replace("chat_agent", "../../etc/x"),
        "../../etc/x",
        "not a workload name",
    ),
    fleet_case(
        "fleet-workload-url", FLEET.replace("chat_agent", "http://example.com/w.yaml"), "URL"
    ),
    fleet_case(
        "fleet-workload-unknown",
        FLEET.replace("chat_agent", "chat_agnet"),
        "chat_agnet",
        "Did you mean 'chat_agent'",
    ),
    fleet_case(
        "fleet-ttft-above-e2e",
        FLEET.replace("1.0}", "1.0, sla: {ttft_s: 5, e2e_s: 2}}"),
        "ttft_s",
        "e2e_s",
    ),
    fleet_case(
        "fleet-sla-misspelt",
        FLEET.replace("1.0}", "1.0, sla: {e2e: 2}}"),
        "e2e",
        "did you mean 'e2e_s'",
    ),
    fleet_case("fleet-sla-not-mapping", FLEET.replace("1.0}", "1.0, sla: 2}"), "'sla'"),
    fleet_case("fleet-sla-string", FLEET.replace("1.0}", "1.0, sla: {e2e_s: soon}}"), "e2e_s"),
    fleet_case("fleet-rate-string", FLEET.replace("1.0}", "fast}"), "request_rate_per_s"),
    fleet_case("fleet-count-negative", FLEET.replace("1.0}", "1.0, count: -2}"), "count"),
    fleet_case("fleet-duplicate-names", FLEET + "  - {name: one, workload: chat_agent}\n", "one"),
    Case(
        "fleet-no-tenants",
        ("fleet", "fleet_file={d}/f.yaml"),
        ("tenants",),
        {"f.yaml": "name: f\ntenants: []\n"},
    ),
    Case("fleet-directory", ("fleet", "fleet_file={d}"), ("directory",)),
    Case("fleet-missing", ("fleet", "fleet_file={d}/nope.yaml"), ("nope.yaml",)),
    # -- saved plan and config (replay.plan_dir, mlir.plan_dir)
    Case("saved-missing-dir", ("replay", "replay.plan_dir={d}/none"), ("none",)),
    Case(
        "saved-is-a-file",
        ("replay", "replay.plan_dir={d}/f.txt"),
        ("f.txt", "directory"),
        {"f.txt": "x"},
    ),
    saved_case("saved-config-missing", lambda s: (s / "config.yaml").unlink(), "config.yaml"),
    saved_case("saved-plan-missing", lambda s: (s / "plan.json").unlink(), "plan.json"),
    saved_case(
        "saved-config-binary",
        _edit("config.yaml", gzip.compress(b"workload: {}\n")),
        "config.yaml",
        "gzip",
    ),
    saved_case("saved-config-empty", _edit("config.yaml", ""), "config.yaml", "empty"),
    saved_case(
        "saved-config-malformed",
        _edit("config.yaml", "workload: {name: [\n"),
        "config.yaml",
        "malformed YAML",
    ),
    saved_case(
        "saved-config-truncated", _edit("config.yaml", lambda t: t[: len(t) // 3]), "config.yaml"
    ),
    saved_case("saved-config-list", _edit("config.yaml", "- a\n- b\n"), "config.yaml"),
    saved_case(
        "saved-config-group-scalar",
        _edit(
            "config.yaml",
            lambda t: (
                t + "sla: fast\n"
                if "\nsla:" not in t
                else t.replace("\nsla:", "\nsla: fast\nold_sla:")
            ),
        ),
        "config.yaml",
    ),
    saved_case("saved-config-latin1", _edit("config.yaml", LATIN1), "config.yaml", "UTF-8"),
    saved_case(
        "saved-plan-invalid-json",
        _edit("plan.json", '{"placement": [}'),
        "plan.json",
        "not valid JSON",
    ),
    saved_case("saved-plan-empty", _edit("plan.json", ""), "plan.json", "empty"),
    saved_case("saved-plan-truncated", _edit("plan.json", lambda t: t[: len(t) // 2]), "plan.json"),
    saved_case(
        "saved-plan-pooled-string",
        _edit(
            "plan.json",
            _plan_json(
                lambda p: (
                    [row.update(pooled="two") for row in p["devices"]]
                    or p["devices"].append({"device": "HP", "pooled": "two"})
                )
            ),
        ),
        "plan.json",
        "pooled",
    ),
    saved_case(
        "saved-plan-objective-string",
        _edit("plan.json", _plan_json(_set(("solver", "objective"), "cheap"))),
        "plan.json",
        "objective",
    ),
    saved_case("saved-plan-list", _edit("plan.json", "[1, 2, 3]"), "plan.json"),
    saved_case(
        "saved-plan-no-placement",
        _edit("plan.json", _plan_json(lambda p: p.pop("placement") and None)),
        "plan.json",
        "placement",
    ),
    saved_case(
        "saved-plan-placement-string",
        _edit("plan.json", _plan_json(_set(("placement",), "llm on HP"))),
        "plan.json",
    ),
    saved_case(
        "saved-plan-other-graph",
        _edit(
            "plan.json",
            _plan_json(
                lambda p: [r.update(operator="x." + r["operator"]) for r in p["placement"]] and None
            ),
        ),
        "plan.json",
        "operator",
    ),
    saved_case("saved-plan-binary", _edit("plan.json", b"\x00\x01\x02"), "plan.json", "binary"),
    saved_case(
        "mlir-saved-config-binary",
        _edit("config.yaml", gzip.compress(b"x")),
        "config.yaml",
        "gzip",
        command="compile",
    ),
    saved_case("mlir-saved-plan-invalid", _edit("plan.json", "{"), "plan.json", command="compile"),
    # -- truncated and ragged files, row numbers that count blank lines
    size_case("size-truncated-row", "input_tokens,output_tokens\n100,10\n200", "line 3"),
    size_case(
        "size-row-after-blank-lines", "input_tokens,output_tokens\n1,1\n\n\n8k,2\n", "row 5", "8k"
    ),
    prof_case("prof-truncated-row", _profile(PROFILE_ROW, PROFILE_ROW[:30] + "\n"), "line 3"),
    trace_case("trace-truncated-row", "timestamp_s,input_tokens\n0.1,5\n0.2", "line 3"),
    cat_case("cat-truncated-row", _catalog(CATALOG_FIRST[:40]), "A40"),
    cat_case(
        "cat-duplicate-column",
        _catalog(CATALOG_FIRST + ",1", header=CATALOG_HEADER + ",mem_gb"),
        "repeats",
    ),
    saved_case(
        "saved-config-missing-group",
        _edit("config.yaml", lambda t: t.replace("\nsolver:", "\nsolver_gone:")),
        "config.yaml",
        "solver",
    ),
    saved_case(
        "saved-plan-device-negative",
        _edit(
            "plan.json", _plan_json(lambda p: p["devices"].append({"device": "HP", "pooled": -1}))
        ),
        "plan.json",
        "pooled",
    ),
    # -- more workload shapes
    wl_case("wl-nodes-null", "name: n\nrequest_rate_per_s: 1\nnodes:\n", "'nodes'"),
    wl_case("wl-edge-without-src", _wl("{src: tool, dst: out", "{dst: out"), "src"),
    wl_case(
        "wl-loop-with-probability",
        _wl(
            "  - {src: tool, dst: out, payload_bytes: 100}",
            "  - {src: tool, dst: llm, probability: 0.5, "
            "loop: {expected_iterations: 1, max_iterations: 2}}",
        ),
        "probability",
    ),
    wl_case(
        "wl-size-trace-relative-missing",
        _wl("input_tokens: 512, output_tokens: 64}", "size_trace: rel.csv}"),
        "rel.csv",
        "does not exist",
    ),
    wl_case(
        "wl-size-trace-file-url",
        _wl("input_tokens: 512, output_tokens: 64}", "size_trace: 'file:///etc/hosts'}"),
        "URL",
    ),
    wl_case("mlir-nul-bytes", b"module {\x00}\n", "binary", name="w.mlir"),
    Case("name-url", ("plan", "workload=http://example.com/w"), ("http://example.com/w",)),
    Case("name-backslash", ("plan", "workload=..\\x"), ("not a workload name",)),
    # -- more fleets
    fleet_case("fleet-tenant-not-mapping", "tenants:\n  - chat_agent\n", "tenants[0]"),
    fleet_case("fleet-count-fraction", FLEET.replace("1.0}", "1.0, count: 1.5}"), "count"),
    fleet_case(
        "fleet-workload-directory", FLEET.replace("chat_agent", "{d}/wdir.yaml"), "directory"
    ),
    # -- calibrate inputs
    Case(
        "calibrate-published-header-only",
        ("calibrate", "published={d}/p.csv", "out={d}/o"),
        ("p.csv", "no"),
        {"p.csv": "device,precision\n"},
    ),
    Case(
        "calibrate-measurements-url",
        ("calibrate", "measurements=https://x.org/m.csv", "out={d}/o"),
        ("URL",),
    ),
    # -- config values and groups
    plan("sla-ttft-above-e2e", {}, "sla.ttft_s=20", "sla.e2e_s=10", needles=("ttft_s", "e2e_s")),
    plan("sla-tbt-above-e2e", {}, "sla.tbt_s=20", "sla.e2e_s=10", needles=("tbt_s", "e2e_s")),
    plan(
        "inventory-negative",
        {},
        "+hardware.inventory.H100=-1",
        needles=("hardware.inventory.H100", ">= 0"),
    ),
    Case(
        "inventory-negative-fleet",
        ("fleet", "fleet_file={d}/f.yaml", "+hardware.inventory.H100=-4"),
        ("hardware.inventory.H100", ">= 0"),
        {"f.yaml": FLEET},
    ),
    plan(
        "inventory-fraction",
        {},
        "+hardware.inventory.H100=1.5",
        needles=("hardware.inventory.H100", "1.5"),
    ),
    plan(
        "inventory-unknown-device",
        {},
        "+hardware.inventory.H1OO=4",
        needles=("H1OO", "Did you mean 'H100'"),
    ),
    Case(
        "failure-misspelt-key",
        ("replay", "replay.plan_dir={plan}", "replay.failures=[{devise: HP, count: 1, at_s: 5}]"),
        ("devise", "FailureSpec"),
    ),
    Case(
        "arrivals-misspelt-key",
        ("replay", "replay.plan_dir={plan}", "+replay.arrivals.rate_per_sec=3"),
        ("rate_per_sec",),
    ),
    plan(
        "calibration-empty",
        {"k.csv": ""},
        "costs.calibration={d}/k.csv",
        needles=("k.csv", "is empty"),
    ),
    plan(
        "calibration-header-only",
        {"k.csv": "version,model_version,device\n"},
        "costs.calibration={d}/k.csv",
        needles=("k.csv",),
    ),
    plan("calibration-url", {}, "costs.calibration=https://example.com/k.csv", needles=("URL",)),
    Case(
        "calibrate-measurements-gzip",
        ("calibrate", "measurements={d}/m.csv", "out={d}/o"),
        ("m.csv", "gzip"),
        {"m.csv": gzip.compress(b"a,b\n1,2\n")},
    ),
    Case(
        "calibrate-measurements-empty",
        ("calibrate", "measurements={d}/m.csv", "out={d}/o"),
        ("m.csv", "empty"),
        {"m.csv": ""},
    ),
]


# ---------------------------------------------------------------------------- the test


@pytest.fixture(scope="module")
def saved_plan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ``hetopt plan`` run (the paper's worked example: tiny, profiled, fast)."""
    run = tmp_path_factory.mktemp("saved") / "run"
    assert main(["plan", "workload=worked_example", f"run_dir={run}"]) == 0
    return run


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_exits_2_naming_the_culprit(
    case: Case,
    tmp_path: Path,
    saved_plan: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, content in case.files.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content.replace("{d}", str(tmp_path)), encoding="utf-8")
    if case.setup is not None:
        if any("{d}/saved" in a for a in case.args):
            import shutil

            shutil.copytree(saved_plan, tmp_path / "saved")
            case.setup(tmp_path / "saved")
        else:
            case.setup(tmp_path)
    args = [a.replace("{d}", str(tmp_path)).replace("{plan}", str(saved_plan)) for a in case.args]
    if args[0] in ("plan", "replay", "compile", "fleet") and not any(
        a.startswith("run_dir=") for a in args
    ):
        args.append(f"run_dir={tmp_path / 'out'}")
    code = main(args)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert code == 2, f"exit {code}; stderr: {err}"
    flat = "".join(err.split())
    for needle in case.needles:
        assert "".join(needle.split()) in flat, f"{needle!r} not in: {err}"


def test_corpus_is_large_and_covers_every_reader() -> None:
    """The acceptance corpus is over 100 inputs; ours must be too, across every reader."""
    assert len(CASES) > 200
    assert len({c.id for c in CASES}) == len(CASES)
    prefixes = {c.id.split("-")[0] for c in CASES}
    assert {
        "wl",
        "mlir",
        "name",
        "size",
        "prof",
        "cat",
        "trace",
        "fleet",
        "saved",
        "calibration",
        "calibrate",
        "sla",
        "inventory",
    } <= prefixes


# ---------------------------------------------------------------------------- the shared reader


def test_alias_bomb_fails_fast_without_expanding() -> None:
    """The 12-line bomb (10^9 values once expanded) is refused in well under a second, in a few
    megabytes, before anything is constructed."""
    import time
    import tracemalloc

    from hetopt.errors import InputError
    from hetopt.inputs import MAX_YAML_NODES, parse_yaml_text

    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(InputError, match=f"more than {MAX_YAML_NODES:,}"):
        parse_yaml_text(ALIAS_BOMB, "bomb.yaml")
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 2.0 and peak < 20 * 2**20


def test_aliases_within_the_cap_still_work() -> None:
    from hetopt.inputs import parse_yaml_text

    doc = parse_yaml_text("base: &b {kind: general_compute}\nnodes: {x: *b, y: *b}\n", "ok")
    assert doc["nodes"] == {"x": {"kind": "general_compute"}, "y": {"kind": "general_compute"}}


def test_config_group_keys_suggest_the_closest() -> None:
    from hetopt.cli.config import _build
    from hetopt.errors import InputError
    from hetopt.replay.control import ControllerConfig
    from hetopt.sla import Sla

    with pytest.raises(InputError) as err:
        _build(Sla, "sla", {"e2e": 1.0})
    assert "'sla'" in str(err.value) and "did you mean 'e2e_s'" in str(err.value)
    with pytest.raises(InputError) as err:
        _build(ControllerConfig, "replay.controller", {"target_utilisation": 0.5})
    assert "did you mean 'target_utilization'" in str(err.value)
    with pytest.raises(InputError, match="must be a mapping"):
        _build(Sla, "sla", [1, 2])  # type: ignore[arg-type]


def test_partial_and_complete_branches_are_still_valid() -> None:
    """Only branches summing above 1 are refused: a 30 % optional step, or 0.6 + 0.4, is fine."""
    from hetopt.graph.ir import agent_graph_from_dict
    from hetopt.workloads import load_workload

    partial = BRANCHY.replace("probability: 0.8", "probability: 1.0").replace("0.9", "0.3")
    agent_graph_from_dict(yaml.safe_load(partial), "partial")
    agent_graph_from_dict(yaml.safe_load(BRANCHY.replace("0.9", "0.2")), "complete")
    agent_graph_from_dict(load_workload("supervisor_agent"), "supervisor")  # 0.6 + 0.4


def test_sla_bounds_are_checked_per_block() -> None:
    """The interactive group's 250 ms TTFT does not clash with the worked example's 120 ms
    end-to-end bound (they come from different blocks), but one block contradicting itself
    does, and a soft SLA (penalty) may set a TTFT above its end-to-end target."""
    from hetopt.cli.compose import compose_config
    from hetopt.cli.config import request_from_config
    from hetopt.errors import InputError

    req = request_from_config(compose_config(["workload=worked_example"]))
    assert req.sla.ttft_s == 0.25 and req.sla.e2e_s == 0.120
    with pytest.raises(InputError, match="ttft_s"):
        request_from_config(compose_config(["sla.ttft_s=2", "sla.e2e_s=1"]))
    soft = request_from_config(
        compose_config(["sla.ttft_s=2", "sla.e2e_s=1", "sla.penalty_usd_per_h_per_s=10"])
    )
    assert soft.sla.ttft_s == 2.0
    # Lowering only the end-to-end bound leaves the group's TTFT implied, not contradicted ...
    lowered = request_from_config(compose_config(["workload=worked_example", "sla.e2e_s=0.13"]))
    assert lowered.sla.ttft_s == 0.25 and lowered.sla.e2e_s == 0.13
    # ... but a per-phase bound set on the command line above the end-to-end one is refused,
    # and so is a group file that contradicts itself.
    with pytest.raises(InputError, match="tbt_s"):
        compose_config(["sla.tbt_s=20", "sla.e2e_s=10"])
    with pytest.raises(InputError, match="ttft_s"):
        compose_config(["sla.ttft_s=0.3", "sla.e2e_s=0.13"])


def test_profile_rows_for_other_devices_of_the_catalog_are_fine(tmp_path: Path) -> None:
    """A shared profile may cover devices this plan leaves out, as long as one row applies."""
    from hetopt.costs.measured import check_profile_matches, load_measured_profile

    path = tmp_path / "p.csv"
    path.write_text(_profile(PROFILE_ROW, PROFILE_ROW.replace("H100", "B200")))
    profile = load_measured_profile(path)
    check_profile_matches(
        profile, str(path), ["H100", "B200"], ["H100"], [("decode", "Llama-3-8B", "fp16", 512, 64)]
    )


@pytest.mark.parametrize(
    "name, content",
    [
        ("bomb.yaml", ALIAS_BOMB),
        ("w.yaml.gz", GZ),
        ("w.yaml", BUCKETED.replace("TRACE", "http://127.0.0.1:9/sizes.csv")),
    ],
)
def test_console_command_refuses_in_a_fresh_process(
    tmp_path: Path, name: str, content: str | bytes
) -> None:
    """The same through a real process: exit 2, one message, no traceback, and quickly (the
    alias bomb used to run until killed at 1.8 GB)."""
    import subprocess
    import sys
    import time

    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    start = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hetopt.cli.main",
            "plan",
            f"workload_file={path}",
            f"run_dir={tmp_path / 'out'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert name in "".join(proc.stderr.split())
    assert time.perf_counter() - start < 60
    assert not (tmp_path / "out" / "plan.json").exists()


def test_deeply_nested_mlir_is_refused_before_mlir_parses_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """5,000 nested modules crashed MLIR's recursive parser (segmentation fault, exit 139)."""
    from hetopt.cli.main import main

    deep = tmp_path / "deep.mlir"
    deep.write_text("module {" * 5000 + "}" * 5000 + "\n")
    assert main(["plan", f"workload_file={deep}", f"hydra.run.dir={tmp_path / 'run'}"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "deep.mlir" in err and "nested more than" in err


def test_a_file_cut_inside_a_quoted_cell_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The packaged catalog cut at 3,000 bytes ends inside a quoted source cell; the csv
    module's lenient mode took the half row as a device."""
    from hetopt.cli.main import main
    from hetopt.hardware.catalog import DEFAULT_CATALOG_PATH

    cut = tmp_path / "cut.csv"
    text = Path(DEFAULT_CATALOG_PATH).read_text()
    end = text.rindex('"', 0, 3000) + 5  # just past an opening quote of a source cell
    assert text[:end].count('"') % 2 == 1
    cut.write_text(text[:end])
    assert main(["catalog", f"hardware.catalog_path={cut}"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "cut.csv" in err and "unclosed quote" in err
