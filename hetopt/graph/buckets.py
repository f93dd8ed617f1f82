"""Request-size distributions: split an LLM call into size buckets the planner places apart.

A ``model_execution`` node may carry, instead of one (input, output) length,

* ``size_buckets: [{input_tokens, output_tokens, weight}, ...]`` - a histogram, or
* ``size_trace: path.csv`` - a trace with ``input_tokens`` and ``output_tokens`` columns, binned
  into ``size_input_bins`` x ``size_output_bins`` log-spaced cells (default 3 x 2); each bucket
  is represented by its longest request (so its latency bound holds for every request in it)
  and weighted by its share of the trace.

:func:`expand_size_buckets` rewrites such a node into one node per bucket, reached through the
same predecessors with the bucket's weight as branch probability (a source node gets a request
router in front), and leaving to the same successors. Each bucket then decomposes into its own
prefill and decode operators, so the optimiser may send short and long requests to different
device types: the Melange insight, as a placement decision.

``size_slices: S`` (an integer, default 1) cuts each bucket (or the node itself, without
buckets) into ``S`` equal slices, ``<node>-b<k>-s<s>`` (``<node>-s<s>``), each reached with
``1/S`` of its bucket's weight. Slices of one bucket are placed independently, so a bucket's
load may be split across device types in steps of ``1/S`` (Mélange's ``slice_factor``); slices
placed together share replicas (:mod:`hetopt.costs.pools`), and the end-to-end latency, a
worst path, holds for the slowest slice that carries traffic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from hetopt.errors import InputError
from hetopt.graph.params import as_integer, as_number
from hetopt.inputs import numeric_column, read_csv_input


def _log_bins(values: np.ndarray, bins: int) -> np.ndarray:
    """Index of each value's bin among ``bins`` log-spaced bins spanning the values."""
    lo, hi = max(values.min(), 1.0), max(values.max(), 1.0)
    if bins <= 1 or hi <= lo:
        return np.zeros(len(values), dtype=int)
    edges = np.geomspace(lo, hi, bins + 1)[1:-1]
    return np.searchsorted(edges, np.maximum(values, 1.0), side="right")


def _buckets_from_trace(
    path: str, where: str, input_bins: int, output_bins: int
) -> list[dict[str, Any]]:
    what = f"{where}: size_trace"
    trace = read_csv_input(path, what, required=("input_tokens", "output_tokens"))
    at = f"{what} {path}"
    lengths = np.column_stack(
        [
            numeric_column(trace, "input_tokens", at, minimum=1, integer=True),
            numeric_column(trace, "output_tokens", at, minimum=0, integer=True),
        ]
    )
    # Log-spaced bins between the shortest and longest request on each axis separate size
    # regimes (chat turns vs documents) even when one regime holds most requests.
    ki = _log_bins(lengths[:, 0], input_bins)
    ko = _log_bins(lengths[:, 1], output_bins)
    groups = pd.DataFrame({"ki": ki, "ko": ko, "i": lengths[:, 0], "o": lengths[:, 1]}).groupby(
        ["ki", "ko"]
    )
    buckets = [
        {
            "input_tokens": int(g["i"].max()),
            "output_tokens": int(g["o"].max()),
            "weight": len(g) / len(lengths),
        }
        for _, g in groups
    ]
    return sorted(buckets, key=lambda b: (b["input_tokens"], b["output_tokens"]))


def _validate(buckets: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(buckets, Sequence) or isinstance(buckets, str) or not buckets:
        raise InputError(
            f"{where}: size_buckets must be a non-empty list of {{input_tokens, "
            f"output_tokens, weight}}."
        )
    out = []
    for k, b in enumerate(buckets):
        if not isinstance(b, Mapping) or set(b) != {"input_tokens", "output_tokens", "weight"}:
            raise InputError(
                f"{where}: size_buckets[{k}] must have exactly input_tokens, "
                f"output_tokens and weight, got {b!r}."
            )
        at = f"{where}: size_buckets[{k}]"
        out.append(
            {
                "input_tokens": as_integer(b["input_tokens"], at, "input_tokens", minimum=1),
                "output_tokens": as_integer(b["output_tokens"], at, "output_tokens"),
                "weight": as_number(b["weight"], at, "weight", strict=True),
            }
        )
    total = sum(b["weight"] for b in out)
    if not math.isclose(total, 1.0, rel_tol=1e-6):
        raise InputError(
            f"{where}: size_buckets weights sum to {total:g}; they are shares of "
            f"the requests and must sum to 1."
        )
    return out


def expand_size_buckets(data: Mapping[str, Any], source: str = "<workload>") -> dict[str, Any]:
    """Rewrite every node with ``size_buckets`` or ``size_trace`` into one node per bucket.

    Parameters
    ----------
    data
        A workload mapping (``nodes``, ``edges``, ...); nested agents are expanded too.
    source
        For error messages.

    Returns
    -------
    dict
        A new mapping; the input is not modified.
    """
    out = dict(data)
    raw_nodes, raw_edges = data.get("nodes") or {}, data.get("edges") or []
    if not isinstance(raw_nodes, Mapping):
        if isinstance(raw_nodes, list) and any(
            isinstance(n, Mapping) and ("size_buckets" in n or "size_trace" in n) for n in raw_nodes
        ):
            raise InputError(
                f"{source}: 'nodes' is a list; write it as a mapping from node id "
                f"to fields ('nodes: {{llm: {{kind: ..., size_buckets: ...}}}}') "
                f"to give a node size buckets or a size trace."
            )
        return out  # the graph reader explains what is wrong with the nodes
    if not isinstance(raw_edges, list) or not all(isinstance(e, Mapping) for e in raw_edges):
        return out  # the graph reader names the malformed edge
    nodes = dict(raw_nodes)
    edges = [dict(e) for e in raw_edges]
    for node_id, raw in list(nodes.items()):
        if not isinstance(raw, Mapping):
            continue
        if isinstance(raw.get("subgraph"), Mapping):
            nodes[node_id] = {**raw, "subgraph": expand_size_buckets(raw["subgraph"], source)}
            continue
        where = f"{source}: node '{node_id}'"
        slices = as_integer(raw.get("size_slices", 1), where, "size_slices", minimum=1)
        if "size_slices" in raw and raw.get("kind") != "model_execution":
            raise InputError(
                f"{where}: size_slices splits an LLM call's load across devices; this node is "
                f"a {raw.get('kind')!r}. Put size_slices on a model_execution node, or remove it."
            )
        if "size_buckets" not in raw and "size_trace" not in raw and slices == 1:
            if "size_slices" in raw:
                nodes[node_id] = {k: v for k, v in raw.items() if k != "size_slices"}
            continue
        if any(e.get("loop") and node_id in (e.get("src"), e.get("dst")) for e in edges):
            raise InputError(
                f"{where}: size buckets on a node that closes a loop are not "
                f"supported; put the distribution on a node outside the loop."
            )
        if "size_trace" in raw and "size_buckets" in raw:
            raise InputError(
                f"{where}: has both size_buckets and size_trace, and one would be "
                f"ignored. Keep the trace (binned into buckets) or the buckets."
            )
        if "size_trace" in raw:
            trace = raw["size_trace"]
            if not isinstance(trace, str) or not trace.strip():
                raise InputError(
                    f"{where}: size_trace must be the path of a local CSV file "
                    f"(columns input_tokens,output_tokens), got {trace!r}."
                )
            buckets = _buckets_from_trace(
                trace,
                where,
                as_integer(raw.get("size_input_bins", 3), where, "size_input_bins", minimum=1),
                as_integer(raw.get("size_output_bins", 2), where, "size_output_bins", minimum=1),
            )
        elif "size_buckets" in raw:
            buckets = _validate(raw["size_buckets"], where)
        else:
            buckets = [{"weight": 1.0}]  # slices of the node's own lengths
        base = {
            k: v
            for k, v in raw.items()
            if k
            not in (
                "size_buckets",
                "size_trace",
                "size_input_bins",
                "size_output_bins",
                "size_slices",
            )
        }
        del nodes[node_id]
        ins = [e for e in edges if e.get("dst") == node_id]
        outs = [e for e in edges if e.get("src") == node_id]
        edges = [e for e in edges if e not in ins and e not in outs]
        if not ins:
            router = f"{node_id}-router"
            nodes[router] = {
                "kind": "control",
                "work": {"flops": 1.0e4, "mem_bytes": 1.0e4},
                "description": "request router in front of the size buckets",
            }
            ins = [{"src": router, "dst": node_id, "payload_bytes": 1024.0}]
        for k, bucket in enumerate(buckets):
            lengths = (
                {}
                if "input_tokens" not in bucket
                else {
                    "input_tokens": int(bucket["input_tokens"]),
                    "output_tokens": int(bucket["output_tokens"]),
                }
            )
            bucket_name = f"{node_id}-b{k}" if lengths else node_id
            for s in range(slices):
                name = bucket_name if slices == 1 else f"{bucket_name}-s{s}"
                share = bucket["weight"] / slices
                what = f"size bucket {k}" if lengths else "the node"
                nodes[name] = {
                    **base,
                    **lengths,
                    "description": (
                        f"{what}: {share:.1%} of requests"
                        if slices == 1
                        else f"{what}, slice {s + 1} of {slices}: {share:.1%} of requests"
                    ),
                }
                edges += [
                    {**e, "dst": name, "probability": e.get("probability", 1.0) * share}
                    for e in ins
                ]
                edges += [{**e, "src": name} for e in outs]
    out["nodes"] = nodes
    out["edges"] = edges
    return out
