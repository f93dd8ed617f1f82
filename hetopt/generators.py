"""Generated placement problems: random small instances for the agreement tests, and a hard
one for the time-limit tests and benchmarks (hand-derived instances are in
:mod:`hetopt.testing`)."""

from __future__ import annotations

import numpy as np

from hetopt.problem import PlacementProblem
from hetopt.sla import Sla
from hetopt.testing import Opt, tiny_problem


def random_problem(
    seed: int,
    n_ops: int = 4,
    n_devices: int = 3,
    *,
    with_loop: bool = True,
    llm_pools: bool = False,
) -> PlacementProblem:
    """A random small instance: a layered DAG, mixed exclusive/pooled options, maybe a loop.

    The end-to-end SLA is drawn between the fastest and the slowest conceivable latency, so
    instances range from infeasible to unconstrained. With ``llm_pools`` about 40 % of the
    options join one of two LLM pool keys per device and replica size, which other operators'
    options may share, a third of them on the key's second capacity (an aggregated replica's
    prefill chunks).
    """
    rng = np.random.default_rng(seed)
    devices = {f"D{j}": float(rng.choice([0.5, 1.0, 1.5, 2.0, 3.0])) for j in range(n_devices)}
    names = [f"op{i}" for i in range(n_ops)]
    ops: dict[str, list[Opt]] = {}
    for n in names:
        opts: list[Opt] = []
        for d in devices:
            for _ in range(int(rng.integers(1, 3))):
                lat = float(rng.choice([0.01, 0.02, 0.05, 0.08, 0.1, 0.2]))
                if llm_pools and rng.random() < 0.4:
                    dpr = int(rng.choice([1, 2]))
                    key = f"{d}/tp{dpr}/k{int(rng.integers(0, 2))}"
                    if all(o.key != key for o in opts):
                        load = float(rng.choice([0.3, 0.45, 0.6, 1.2]))
                        # a third of them load an aggregated replica's chunk budget, the rest
                        # its time (or decode slots): the pool covers the busier of the two
                        dim = "chunk" if rng.random() < 1 / 3 else ""
                        opts.append(Opt(d, lat, key=key, load=load, dpr=dpr, dim=dim))
                        continue
                if rng.random() < 0.5:
                    opts.append(Opt(d, lat, dedicated=int(rng.integers(1, 4))))
                else:
                    opts.append(
                        Opt(
                            d,
                            lat,
                            pool_load=float(rng.choice([0.2, 0.35, 0.5, 0.7])),
                            pool_mem_bytes=float(rng.choice([0.0, 4e9, 7e9])),
                        )
                    )
        ops[n] = opts
    edges = [
        (names[i], names[i + 1], float(rng.choice([0.0, 0.01, 0.03]))) for i in range(n_ops - 1)
    ]
    if n_ops >= 3 and rng.random() < 0.5:
        edges.append((names[0], names[2], 0.02))
    loops = []
    if with_loop and n_ops >= 3 and rng.random() < 0.6:
        loops.append(
            (names[1], names[0], 0.01, float(rng.choice([0.5, 1.0])), int(rng.integers(1, 3)))
        )
    lo = sum(min(o.latency_s for o in ops[n]) for n in names)
    hi = sum(max(o.latency_s for o in ops[n]) for n in names) * 3
    penalty = float(rng.choice([5.0, 20.0, 100.0])) if rng.random() < 0.3 else None
    sla = Sla(
        ttft_s=None,
        tbt_s=None,
        e2e_s=float(round(rng.uniform(lo, hi), 3)),
        penalty_usd_per_h_per_s=penalty,
        loop_iterations="max" if rng.random() < 0.5 else "expected",
    )
    mem = {d: 10e9 for d in devices} if rng.random() < 0.5 else None
    inventory = {next(iter(devices)): 3} if rng.random() < 0.3 else None
    return tiny_problem(
        ops,
        devices,
        edges,
        loops=loops,
        sla=sla,
        mem_bytes=mem,
        inventory=inventory,
        name=f"random{seed}",
    )


def hard_problem(n_ops: int = 40, seed: int = 0) -> PlacementProblem:
    """A chain of ``n_ops`` operators, 12 options each (pooled or dedicated on 6 device types),
    three types with a binding inventory and an SLA that rules out the slow options: a plan
    is easy to find, its optimality not provable in a second or two (measured on the 2-core
    development machine without a limit: HiGHS proves 80 operators in 4.5 s, CBC in 10.6 s,
    CP-SAT 40 operators in 29.6 s). The time-limit tests and
    ``benchmarks/bench_time_limits.py`` use it.

    Examples
    --------
    >>> p = hard_problem(8)
    >>> (p.n_ops, len(p.devices))
    (8, 6)
    """
    rng = np.random.default_rng(seed)
    devices = {f"D{j}": float(c) for j, c in enumerate(rng.uniform(1, 10, 6).round(3))}
    ops = {}
    for i in range(n_ops):
        opts = []
        for d in devices:
            for _ in range(2):
                lat = float(rng.uniform(0.01, 0.1))
                if rng.random() < 0.5:
                    opts.append(Opt(d, lat, pool_load=float(rng.uniform(0.05, 0.6))))
                else:
                    opts.append(
                        Opt(d, lat, dedicated=1, direct_usd_per_h=float(rng.uniform(0, 0.5)))
                    )
        ops[f"op{i}"] = opts
    names = list(ops)
    edges = [(a, b, 0.002) for a, b in zip(names[:-1], names[1:], strict=True)]
    return tiny_problem(
        ops,
        devices,
        edges,
        edge_cost_usd_per_h=[0.01] * len(edges),
        sla=Sla(ttft_s=None, tbt_s=None, e2e_s=0.045 * n_ops),
        inventory={d: n_ops // 4 for d in list(devices)[:3]},
    )
