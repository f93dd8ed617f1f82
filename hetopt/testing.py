"""Test helpers that ship with hetopt: tiny placement problems with hand-derived optima.

Every backend must reach the optimum of every instance in :data:`CONFORMANCE` (the pattern of
cvxpy's ``StandardTestLPs``). Instances are built directly as :class:`PlacementProblem` arrays,
so they test the formulations without the cost model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hetopt.oracle import DeviceInput, EdgeInput, LoopInput, OpInput, VerifyInputs
from hetopt.problem import LoopSpec, PlacementProblem
from hetopt.sla import Sla


@dataclass(frozen=True)
class Opt:
    """One option of a tiny instance: device name, latency, and how it uses hardware.

    An option either dedicates whole devices, or runs in its device type's pool (a load or a
    footprint), or adds ``load`` replicas of ``dpr`` devices to the LLM pool ``key`` (shared
    with every other operator's option of that key; alone, it holds ``dpr ceil(load)``
    devices), or none of these (a profiled option paid by ``direct_usd_per_h`` alone).
    ``dim`` is the capacity an aggregated replica's option loads (``chunk`` or ``slots``).
    """

    device: str
    latency_s: float
    dedicated: int = 0
    pool_load: float = 0.0
    pool_mem_bytes: float = 0.0
    direct_usd_per_h: float = 0.0
    key: str = ""
    load: float = 0.0
    dpr: int = 1
    dim: str = ""


def tiny_problem(
    ops: Mapping[str, Sequence[Opt]],
    device_cost_usd_per_h: dict[str, float],
    edges: Sequence[tuple[str, str, float]] = (),
    *,
    edge_cost_usd_per_h: Sequence[float] | None = None,
    loops: Sequence[tuple[str, str, float, float, int]] = (),
    sla: Sla | None = None,
    mem_bytes: dict[str, float] | None = None,
    inventory: dict[str, int] | None = None,
    name: str = "tiny",
    outside_keys: Collection[str] = (),
) -> PlacementProblem:
    """Build a :class:`PlacementProblem` by hand.

    Parameters
    ----------
    ops
        Operator name -> its options, in topological order.
    device_cost_usd_per_h
        Device name -> $/h.
    edges
        Forward edges ``(src, dst, cross_latency_s)``.
    edge_cost_usd_per_h
        Cost per edge when crossed (default 0).
    loops
        ``(back_src, back_dst, cross_latency_s, expected_iterations, max_iterations)``; the body
        is every operator on forward paths from back_dst to back_src.
    sla
        Defaults to no SLA at all.
    mem_bytes, inventory
        Per-device memory and inventory (default: unlimited).
    outside_keys
        LLM pool keys shared with operators outside this problem (a fleet's other tenants):
        pools even when one operator here uses them, as :func:`hetopt.problem.build_problem`
        makes them.

    The problem carries its raw inputs too (:func:`tiny_inputs`), for the brute-force backend.
    Options are labelled ``c0``, ``c1``, ... in each operator's list (``profiled`` for options
    that neither dedicate devices nor join a pool).
    """
    names = list(ops)
    devices = tuple(device_cost_usd_per_h)
    idx = {n: i for i, n in enumerate(names)}
    dev = {d: j for j, d in enumerate(devices)}
    flat = [(idx[n], o) for n in names for o in ops[n]]
    users: dict[str, set[int]] = {}
    for i, o in flat:
        if o.key:
            users.setdefault(o.key, set()).add(i)
    # shared, as build_problem does
    key_names = tuple(k for k in users if len(users[k]) > 1 or k in outside_keys)
    key_of = {k: n for n, k in enumerate(key_names)}
    first = {k: next(o for _, o in flat if o.key == k) for k in key_names}
    all_edges = [(s, d, lat, False) for s, d, lat in edges] + [
        (s, d, lat, True) for s, d, lat, _, _ in loops
    ]
    e_cost = list(edge_cost_usd_per_h or [0.0] * len(edges)) + [0.0] * len(loops)
    has_out = {s for s, _, _, _ in all_edges}
    loop_specs = []
    raw_loops = []
    for k, (s, d, _, exp, mx) in enumerate(loops):
        body = _between(names, edges, d, s)
        raw_loops.append(LoopInput(s, d, tuple(n for n in names if n in body), exp, mx))
        body_edges = tuple(
            e for e, (a, b, _, back) in enumerate(all_edges) if not back and a in body and b in body
        )
        loop_specs.append(
            LoopSpec(len(edges) + k, tuple(idx[n] for n in names if n in body), body_edges, exp, mx)
        )
    return PlacementProblem(
        name=name,
        request_rate_per_s=1.0,
        ops=tuple(names),
        op_visits=np.ones(len(names)),
        devices=devices,
        device_cost_usd_per_h=np.array([device_cost_usd_per_h[d] for d in devices], float),
        device_carbon_kg_per_h=np.zeros(len(devices)),
        device_mem_bytes=np.array([(mem_bytes or {}).get(d, math.inf) for d in devices], float),
        device_inventory=np.array([float((inventory or {}).get(d, math.inf)) for d in devices]),
        opt_op=np.array([i for i, _ in flat], int),
        opt_device=np.array([dev[o.device] for _, o in flat], int),
        opt_config=tuple(label for n in names for label in _labels(ops[n])),
        opt_row=np.arange(len(flat)),
        opt_latency_s=np.array([o.latency_s for _, o in flat], float),
        opt_dedicated=np.array(
            [
                o.dpr * math.ceil(o.load - 1e-9) if o.key and o.key not in key_of else o.dedicated
                for _, o in flat
            ],
            int,
        ),
        opt_pooled=np.array([o.pool_load > 0 or o.pool_mem_bytes > 0 for _, o in flat], bool),
        opt_pool_load=np.array([o.pool_load for _, o in flat], float),
        opt_pool_mem_bytes=np.array([o.pool_mem_bytes for _, o in flat], float),
        opt_direct_usd_per_h=np.array([o.direct_usd_per_h for _, o in flat], float),
        key_names=key_names,
        key_device=np.array([dev[first[k].device] for k in key_names], int),
        key_devices_per_replica=np.array([first[k].dpr for k in key_names], int),
        opt_key=np.array([key_of.get(o.key, -1) for _, o in flat], int),
        opt_key_load=np.array([o.load for _, o in flat], float),
        opt_key_dim=np.array([int(o.dim == "chunk") for _, o in flat], int),
        edge_src=np.array([idx[s] for s, _, _, _ in all_edges], int),
        edge_dst=np.array([idx[d] for _, d, _, _ in all_edges], int),
        edge_is_back=np.array([b for *_, b in all_edges], bool),
        edge_latency_s=np.array([lat for _, _, lat, _ in all_edges], float),
        edge_cost_usd_per_h=np.array(e_cost, float),
        sinks=tuple(idx[n] for n in names if n not in has_out),
        loops=tuple(loop_specs),
        sla=sla or Sla(ttft_s=None, tbt_s=None),
        raw_inputs=tiny_inputs(
            ops,
            device_cost_usd_per_h,
            [(s, d, lat, c, b) for (s, d, lat, b), c in zip(all_edges, e_cost, strict=True)],
            raw_loops,
            sla or Sla(ttft_s=None, tbt_s=None),
            mem_bytes,
            inventory,
            name,
        ),
    )


def _labels(options: Sequence[Opt]) -> list[str]:
    """Configuration label of each option: ``c<position>``, or ``profiled``."""
    out = []
    for k, opt in enumerate(options):
        pooled = opt.pool_load > 0 or opt.pool_mem_bytes > 0
        if sum((opt.dedicated > 0, pooled, bool(opt.key))) > 1:
            raise ValueError(
                f"option {opt} uses more than one of dedicated devices, a pool and an LLM "
                f"pool key; pick one"
            )
        exclusive = opt.dedicated > 0 or bool(opt.key)
        out.append("profiled" if not exclusive and not pooled else f"c{k}")
    return out


def tiny_inputs(
    ops: Mapping[str, Sequence[Opt]],
    device_cost_usd_per_h: Mapping[str, float],
    edges: Sequence[tuple[str, str, float, float, bool]],
    loops: Sequence[LoopInput],
    sla: Sla,
    mem_bytes: Mapping[str, float] | None = None,
    inventory: Mapping[str, int] | None = None,
    name: str = "tiny",
) -> VerifyInputs:
    """The raw inputs of a tiny instance, as cost-table rows at one request per second.

    Every operator runs once per request, utilisation is capped at 1 and no memory is
    reserved, so an option dedicating ``k`` devices is a ``tp = k`` row serving exactly the
    request rate (one replica), an option of LLM pool ``key`` a ``tp = dpr`` row with that
    ``pool_key`` serving ``1 / load`` requests per second, a pooled option's load is its
    ``busy_s``, and its direct cost is ``direct_usd_per_h / 3600`` per execution.

    Parameters
    ----------
    edges
        ``(src, dst, cross_latency_s, cross_cost_usd_per_h, back)``.
    """
    rows = []
    for op, options in ops.items():
        for opt, label in zip(options, _labels(options), strict=True):
            rows.append(
                {
                    "op": op,
                    "device": opt.device,
                    "config": label,
                    "tp": opt.dpr if opt.key else max(opt.dedicated, 1),
                    "pp": 1,
                    "exclusive": opt.dedicated > 0 or bool(opt.key),
                    "feasible": True,
                    "latency_s": opt.latency_s,
                    "step_s": opt.latency_s,
                    "busy_s": opt.pool_load,
                    "requests_per_s": (
                        1.0 / opt.load if opt.key else 1.0 if opt.dedicated > 0 else math.inf
                    ),
                    "mem_per_device_bytes": opt.pool_mem_bytes,
                    "direct_cost_usd": opt.direct_usd_per_h / 3600.0,
                    "pool_key": opt.key,
                    "pool_dim": opt.dim,
                }
            )
    frame = pd.DataFrame(rows)
    twice = frame[frame.duplicated(["op", "device", "config"])]
    if len(twice):
        raise ValueError(f"two profiled options of one operator on one device: {twice}")
    has_out = {s for s, _, _, _, _ in edges}
    return VerifyInputs(
        name=name,
        request_rate_per_s=1.0,
        ops=tuple(OpInput(op, 1.0, "compute") for op in ops),
        rows=frame,
        devices=tuple(
            DeviceInput(
                d,
                usd_per_h=cost,
                mem_bytes=(mem_bytes or {}).get(d, math.inf),
                inventory=float((inventory or {}).get(d, math.inf)),
            )
            for d, cost in device_cost_usd_per_h.items()
        ),
        edges=tuple(EdgeInput(s, d, lat, cost, back) for s, d, lat, cost, back in edges),
        loops=tuple(loops),
        sinks=tuple(op for op in ops if op not in has_out),
        sla=sla,
        max_utilization=1.0,
        memory_reserve_fraction=0.0,
    )


def _between(
    names: list[str], edges: Sequence[tuple[str, str, float]], start: str, end: str
) -> set[str]:
    fwd: dict[str, set[str]] = {}
    bwd: dict[str, set[str]] = {}
    for s, d, _ in edges:
        fwd.setdefault(s, set()).add(d)
        bwd.setdefault(d, set()).add(s)

    def reach(root: str, adj: dict[str, set[str]]) -> set[str]:
        seen, todo = {root}, [root]
        while todo:
            for nxt in adj.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    return reach(start, fwd) & reach(end, bwd)


@dataclass(frozen=True)
class Instance:
    """A conformance instance: the problem, its optimal objective and optimal devices."""

    build: Callable[[], PlacementProblem]
    objective_usd_per_h: float | None  # None: infeasible
    devices: dict[str, str] | None = None
    why: str = ""


def _two_stage(sla_s: float | None, penalty: float | None = None) -> PlacementProblem:
    return tiny_problem(
        {
            "A": [Opt("X", 0.10, dedicated=2), Opt("Y", 0.05, dedicated=1)],
            "B": [Opt("X", 0.20, dedicated=1), Opt("Y", 0.10, dedicated=1)],
        },
        {"X": 1.0, "Y": 3.0},
        [("A", "B", 0.05)],
        sla=Sla(ttft_s=None, tbt_s=None, e2e_s=sla_s, penalty_usd_per_h_per_s=penalty),
    )


def _worked_example() -> PlacementProblem:
    # Paper Table 3 at 1 request/s: $ per request x 3600 = $/h.
    h = 3600.0
    return tiny_problem(
        {
            "prefill": [
                Opt("HP", 0.080, direct_usd_per_h=0.080 * h),
                Opt("CO", 0.130, direct_usd_per_h=0.050 * h),
            ],
            "decode": [
                Opt("HP", 0.025, direct_usd_per_h=0.030 * h),
                Opt("CO", 0.030, direct_usd_per_h=0.010 * h),
            ],
        },
        {"HP": 0.0, "CO": 0.0},
        [("prefill", "decode", 0.010)],
        edge_cost_usd_per_h=[0.005 * h],
        sla=Sla(ttft_s=None, tbt_s=None, e2e_s=0.120),
    )


def _pooled(
    load_a: float,
    load_b: float,
    mem: float = 0.0,
    cap: float | None = None,
    inventory: dict[str, int] | None = None,
) -> PlacementProblem:
    return tiny_problem(
        {
            "A": [
                Opt("X", 0.01, pool_load=load_a, pool_mem_bytes=mem),
                Opt("Y", 0.01, pool_load=load_a / 2, pool_mem_bytes=mem),
            ],
            "B": [
                Opt("X", 0.01, pool_load=load_b, pool_mem_bytes=mem),
                Opt("Y", 0.01, pool_load=load_b / 2, pool_mem_bytes=mem),
            ],
        },
        {"X": 1.0, "Y": 3.0},
        [("A", "B", 0.0)],
        mem_bytes=None if cap is None else {"X": cap, "Y": cap},
        inventory=inventory,
    )


def _buckets(pooled: bool) -> PlacementProblem:
    # Two size buckets of one decode, 1 req/s each; loads are already divided by the 0.8
    # utilisation cap (a G replica serves 5 and 2.5 req/s, a C replica 2.08 and 1.04).
    def opt(device: str, load: float) -> Opt:
        if pooled:
            return Opt(device, 0.5, key=f"decode/{device}/tp1/b32", load=load)
        return Opt(device, 0.5, dedicated=math.ceil(load))

    return tiny_problem(
        {"S": [opt("G", 0.25), opt("C", 0.60)], "L": [opt("G", 0.50), opt("C", 1.20)]},
        {"G": 2.0, "C": 1.5},
    )


def _split(slices: int, sla_s: float | None = None) -> PlacementProblem:
    # One LLM phase at 5 req/s cut into equal slices (size_slices): a replica of A ($1/h)
    # serves 1 req/s at 0.9 s, one of B ($3.5/h) 4 req/s at 0.3 s; utilisation cap 1.
    def slice_options() -> list[Opt]:
        return [
            Opt("A", 0.9, key="A/tp1/b8", load=5.0 / slices),
            Opt("B", 0.3, key="B/tp1/b8", load=1.25 / slices),
        ]

    return tiny_problem(
        {f"s{k}": slice_options() for k in range(slices)},
        {"A": 1.0, "B": 3.5},
        sla=Sla(ttft_s=None, tbt_s=None, e2e_s=sla_s),
    )


def _serving(rate_per_s: float) -> PlacementProblem:
    # One call (2,000-token prompts, 200 decode steps) on H ($4/h), utilisation cap 1. Per
    # replica: disaggregated prefill 4 req/s at 0.5 req/s, 8 at 20 (batch 16); decode b16
    # 2.67 req/s (step 30 ms) at 0.5 req/s, b128 25 req/s at 20. Aggregated B = 32: at 0.5
    # req/s C = 512, tau 40 ms (chunk load 0.5 x 2000 x 0.04 / 512, slot load
    # 0.5 x 200 x 0.04 / 32); at 20 req/s C = 256, tau 35 ms.
    low = rate_per_s < 1
    prefill = 0.125 if low else 2.5
    decode = 0.1875 if low else 0.8
    tau, chunk = (0.040, 512) if low else (0.035, 256)
    agg_chunk = rate_per_s * 2000 * tau / chunk
    agg_slots = rate_per_s * 200 * tau / 32
    return tiny_problem(
        {
            "prefill": [
                Opt("H", 0.12, key="H/prefill/b16", load=prefill),
                Opt("H", 4 * tau, key="H/agg", load=agg_chunk, dim="chunk"),
            ],
            "decode": [
                Opt("H", 6.0, key="H/decode/b16", load=decode),
                Opt("H", 200 * tau, key="H/agg", load=agg_slots, dim="slots"),
            ],
        },
        {"H": 4.0},
        [("prefill", "decode", 0.0)],
    )


def _loop(sla_s: float, iterations: str) -> PlacementProblem:
    # llm -> tool, tool -> llm back edge; llm -> out. Worst case (max 2 iterations):
    # e2e = llm + out + 2 * (llm + tool + crossings).
    return tiny_problem(
        {
            "llm": [Opt("G", 0.10, dedicated=1), Opt("C", 0.40, dedicated=1)],
            "tool": [Opt("G", 0.05, dedicated=1), Opt("C", 0.05, pool_load=0.2)],
            "out": [Opt("G", 0.02, dedicated=1), Opt("C", 0.02, pool_load=0.2)],
        },
        {"G": 2.0, "C": 0.5},
        [("llm", "tool", 0.01), ("llm", "out", 0.01)],
        loops=[("tool", "llm", 0.01, 1.0, 2)],
        sla=Sla(ttft_s=None, tbt_s=None, e2e_s=sla_s, loop_iterations=iterations),  # type: ignore[arg-type]
    )


CONFORMANCE: dict[str, Instance] = {
    "two_stage_no_sla": Instance(
        lambda: _two_stage(None), 3.0, {"A": "X", "B": "X"}, "cheapest device everywhere: 2 + 1"
    ),
    "two_stage_sla_0.25": Instance(
        lambda: _two_stage(0.25),
        5.0,
        {"A": "X", "B": "Y"},
        "XX takes 0.30 s; XY 0.10+0.10+0.05 = 0.25 s at 2+3",
    ),
    "two_stage_sla_0.2": Instance(
        lambda: _two_stage(0.20), 6.0, {"A": "Y", "B": "Y"}, "only YY (0.15 s) meets 0.2 s; 3+3"
    ),
    "two_stage_infeasible": Instance(
        lambda: _two_stage(0.1), None, None, "the fastest plan takes 0.15 s"
    ),
    "soft_sla_cheap_violation": Instance(
        lambda: _two_stage(0.20, penalty=20.0),
        5.0,
        {"A": "X", "B": "X"},
        "lambda = 20 $/h/s: XX 3 + 20 x 0.10 = 5 beats YY 6, XY 5 + 20 x 0.05 = 6",
    ),
    "soft_sla_dear_violation": Instance(
        lambda: _two_stage(0.20, penalty=40.0),
        6.0,
        {"A": "Y", "B": "Y"},
        "lambda = 40 $/h/s: XX 3 + 4 = 7, XY 5 + 2 = 7, YY 6 meets the SLA",
    ),
    "worked_example": Instance(
        _worked_example,
        0.095 * 3600,
        {"prefill": "HP", "decode": "CO"},
        "paper Table 3: option B, $0.095 per request",
    ),
    "pooled_share": Instance(
        lambda: _pooled(0.5, 0.5), 1.0, {"A": "X", "B": "X"}, "both fit one X: ceil(0.5 + 0.5) = 1"
    ),
    "pooled_ceil": Instance(
        lambda: _pooled(0.6, 0.6),
        2.0,
        {"A": "X", "B": "X"},
        "ceil(1.2) = 2 X ($2) beats X + Y ($4)",
    ),
    "pooled_memory": Instance(
        lambda: _pooled(0.3, 0.3, mem=6e9, cap=10e9),
        4.0,
        None,
        "footprints 6 + 6 exceed either type's 10: split, 1 + 3",
    ),
    "pooled_inventory": Instance(
        lambda: _pooled(0.6, 0.6, inventory={"X": 1}),
        3.0,
        {"A": "Y", "B": "Y"},
        "one X cannot hold 1.2; X + Y costs 1 + 3, one Y (0.6) 3",
    ),
    "llm_pool_buckets_apart": Instance(
        lambda: _buckets(pooled=False),
        3.5,
        {"S": "C", "L": "G"},
        "each bucket rounds alone: S on C ceil(0.6) = 1 x 1.5, L on G ceil(0.5) = 1 x 2",
    ),
    "llm_pool_buckets_pooled": Instance(
        lambda: _buckets(pooled=True),
        2.0,
        {"S": "G", "L": "G"},
        "pooled on G ceil(0.25 + 0.5) = 1 x 2 beats 3.5 apart and C ceil(1.8) = 2 x 1.5",
    ),
    "llm_split_whole": Instance(
        lambda: _split(1),
        5.0,
        {"s0": "A"},
        "unsplit: all on A ceil(5) x 1 = 5 beats B ceil(1.25) = 2 x 3.5 = 7",
    ),
    "llm_split_5": Instance(
        lambda: _split(5),
        4.5,
        None,
        "slices of 1/5: four on one B (4 x 0.25 = 1) and one on one A (1.0): 3.5 + 1",
    ),
    "llm_split_10": Instance(
        lambda: _split(10),
        4.5,
        None,
        "slices of 1/10: eight on one B (0.8 x 1.25 = 1), two on one A (2 x 0.5 = 1)",
    ),
    "llm_split_4": Instance(
        lambda: _split(4),
        5.0,
        {f"s{k}": "A" for k in range(4)},
        "slices of 1/4: one B takes three (0.9375), the last needs ceil(1.25) = 2 A: 5.5;"
        " all on A: 5",
    ),
    "llm_split_sla": Instance(
        lambda: _split(5, sla_s=0.5),
        7.0,
        {f"s{k}": "B" for k in range(5)},
        "A's 0.9 s misses the 0.5 s SLA, so no slice may ride on A: ceil(1.25) = 2 B",
    ),
    "aggregated_wins": Instance(
        lambda: _serving(0.5),
        4.0,
        None,
        "one H replica holds chunk load 0.078 and slot load 0.125: ceil(max) = 1 x 4; apart,"
        " prefill and decode each need a replica: 8",
    ),
    "disaggregated_wins": Instance(
        lambda: _serving(20.0),
        16.0,
        None,
        "aggregated needs ceil(max(5.47, 4.38)) = 6 replicas (24); apart 3 prefill + 1 decode"
        " (16); mixed 28 or 32",
    ),
    "loop_max": Instance(
        lambda: _loop(0.45, "max"),
        4.5,
        {"llm": "G", "tool": "G", "out": "C"},
        "2 iterations: G,C,C takes 0.13 + 2 x 0.17 = 0.47 s > 0.45; G,G,C "
        "takes 0.13 + 2 x 0.15 = 0.43 s at 2 + 2 + 0.5",
    ),
    "loop_expected": Instance(
        lambda: _loop(0.285, "expected"),
        4.5,
        {"llm": "G", "tool": "G", "out": "C"},
        "1 iteration: G,G,C 0.28 s; G,C,G 0.29 s; G,C,C 0.30 s",
    ),
    "loop_expected_loose": Instance(
        lambda: _loop(0.40, "expected"),
        2.5,
        {"llm": "G", "tool": "C", "out": "C"},
        "1 iteration: G,C,C takes 0.30 s at 2 + ceil(0.4) x 0.5",
    ),
}
