"""Mélange's ILP as hetopt's keyed placement problem, solved and verified.

:func:`melange_problem` builds the problem with its raw inputs; :func:`plan_melange` solves it
with any backend and checks the plan with the independent oracle and with Mélange's own C1/C2
(see :mod:`hetopt.melange`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hetopt.errors import InputError, SolverLimitError
from hetopt.melange.instance import MelangeInstance
from hetopt.models.evaluate import evaluate_choice
from hetopt.oracle import DeviceInput, OpInput, VerifyInputs, evaluate_assignment
from hetopt.problem import PlacementProblem, replicas_for_load
from hetopt.sla import Sla
from hetopt.solvers import SolverOptions, SolveStatus, Termination, solve
from hetopt.solvers.base import solver_verdict

__all__ = ["COST_TOL", "CONFIG", "MelangeResult", "melange_problem", "plan_melange"]

COST_TOL = 1e-9
"""Relative tolerance between the plan's cost and the oracle's recomputation."""

CONFIG = "replica"
"""Configuration label of every option: one GPU per replica."""


def _check_slice_factor(slice_factor: int | None, instance: MelangeInstance) -> int:
    chosen = instance.slice_factor if slice_factor is None else slice_factor
    if isinstance(chosen, bool) or not isinstance(chosen, (int, np.integer)) or chosen < 1:
        raise InputError(
            f"slice_factor={chosen!r} is not an integer >= 1. Give how many equal slices "
            f"each bucket is cut into (Mélange recommends 4)."
        )
    return int(chosen)


def melange_problem(instance: MelangeInstance, slice_factor: int | None = None) -> PlacementProblem:
    """The keyed placement problem of a Mélange instance, with its raw inputs.

    Parameters
    ----------
    instance
        The checked instance.
    slice_factor
        Slices per bucket; default the instance's own.

    Returns
    -------
    PlacementProblem
        One operator ``b<i>x<j>/s<s>`` per slice of every bucket with a positive share
        (visits ``share / S`` at rate ``R``); one option per GPU type that serves the bucket,
        adding ``r_b / (S T[b, g])`` replicas to the shared pool keyed by the GPU's name (one
        GPU per replica, every GPU type that serves something is a key); no edges, no SLA,
        latency 0. ``raw_inputs`` carries the same as cost-table rows (``requests_per_s`` =
        ``T[b, g]``, ``pool_key`` = the GPU's name, utilisation cap 1) for the oracle and the
        brute-force backend.

    Examples
    --------
    >>> from hetopt.melange import MELANGE_EXAMPLE, melange_instance
    >>> p = melange_problem(melange_instance(MELANGE_EXAMPLE), slice_factor=2)
    >>> p.ops[:3], p.key_names, p.n_options
    (('b0x0/s0', 'b0x0/s1', 'b0x1/s0'), ('A10G', 'A100-80GB'), 16)
    >>> p.opt_key_load[:2].tolist()  # 6 req/s of b0x0 in two slices: 3 / 2 and 3 / 20
    [1.5, 0.15]
    """
    s_count = _check_slice_factor(slice_factor, instance)
    rate = instance.total_request_rate
    ops: list[str] = []
    visits: list[float] = []
    opts: list[tuple[int, int, float]] = []  # (operator, gpu, throughput)
    for name, i, j, share in instance.buckets():
        if share <= 0:
            continue
        for s in range(s_count):
            ops.append(f"{name}/s{s}")
            visits.append(share / s_count)
            opts += [(len(ops) - 1, g, gpu.tputs[i][j]) for g, gpu in enumerate(instance.gpus)]
    opts = [o for o in opts if o[2] > 0]
    used = sorted({g for _, g, _ in opts})
    key_of = {g: k for k, g in enumerate(used)}
    devices = instance.gpu_names
    n_opt = len(opts)
    opt_op = np.array([i for i, _, _ in opts], dtype=int)
    opt_gpu = np.array([g for _, g, _ in opts], dtype=int)
    tput = np.array([t for _, _, t in opts], dtype=float)
    load = rate * np.asarray(visits)[opt_op] / tput
    zeros = np.zeros(n_opt)
    return PlacementProblem(
        name=instance.name,
        request_rate_per_s=rate,
        ops=tuple(ops),
        op_visits=np.asarray(visits, dtype=float),
        op_kind=("request",) * len(ops),
        devices=devices,
        device_cost_usd_per_h=np.array([g.cost_usd_per_h for g in instance.gpus]),
        device_carbon_kg_per_h=np.zeros(len(devices)),
        device_mem_bytes=np.full(len(devices), math.inf),
        device_inventory=np.full(len(devices), math.inf),
        opt_op=opt_op,
        opt_device=opt_gpu,
        opt_config=(CONFIG,) * n_opt,
        opt_row=np.arange(n_opt),
        opt_latency_s=zeros.copy(),
        opt_dedicated=np.zeros(n_opt, dtype=int),
        opt_pooled=np.zeros(n_opt, dtype=bool),
        opt_pool_load=zeros.copy(),
        opt_pool_mem_bytes=zeros.copy(),
        opt_direct_usd_per_h=zeros.copy(),
        key_names=tuple(devices[g] for g in used),
        key_device=np.array(used, dtype=int),
        key_devices_per_replica=np.ones(len(used), dtype=int),
        opt_key=np.array([key_of[g] for g in opt_gpu], dtype=int),
        opt_key_load=load,
        edge_src=np.zeros(0, dtype=int),
        edge_dst=np.zeros(0, dtype=int),
        edge_is_back=np.zeros(0, dtype=bool),
        edge_latency_s=np.zeros(0),
        edge_cost_usd_per_h=np.zeros(0),
        sinks=tuple(range(len(ops))),
        loops=(),
        sla=Sla(ttft_s=None, tbt_s=None),
        edge_probability=np.zeros(0),
        raw_inputs=_raw_inputs(instance, ops, visits, opts),
    )


def _raw_inputs(
    instance: MelangeInstance,
    ops: Sequence[str],
    visits: Sequence[float],
    opts: Sequence[tuple[int, int, float]],
) -> VerifyInputs:
    """The instance as the oracle reads it: one exclusive cost-table row per (slice, GPU)
    with ``requests_per_s = T[b, g]`` and ``pool_key`` = the GPU's name, utilisation cap 1."""
    rows = pd.DataFrame(
        [
            {
                "op": ops[i],
                "device": instance.gpus[g].name,
                "config": CONFIG,
                "tp": 1,
                "pp": 1,
                "exclusive": True,
                "feasible": True,
                "latency_s": 0.0,
                "step_s": 0.0,
                "busy_s": 0.0,
                "requests_per_s": t,
                "mem_per_device_bytes": 0.0,
                "direct_cost_usd": 0.0,
                "pool_key": instance.gpus[g].name,
            }
            for i, g, t in opts
        ]
    )
    return VerifyInputs(
        name=instance.name,
        request_rate_per_s=instance.total_request_rate,
        ops=tuple(OpInput(op, v, "request") for op, v in zip(ops, visits, strict=True)),
        rows=rows,
        devices=tuple(DeviceInput(g.name, usd_per_h=g.cost_usd_per_h) for g in instance.gpus),
        edges=(),
        loops=(),
        sinks=tuple(ops),
        sla=Sla(ttft_s=None, tbt_s=None),
        max_utilization=1.0,
        memory_reserve_fraction=0.0,
    )


# --- Solving and verifying ----------------------------------------------------------------------


@dataclass(frozen=True)
class MelangeResult:
    """A solved Mélange instance: GPU counts, each bucket's split, cost and verification.

    Attributes
    ----------
    instance
        The instance solved.
    slice_factor
        Slices per bucket used.
    backend
        The solver backend.
    status, termination
        The solve's status and why it stopped; ``optimal`` only when proven.
    gap, bound
        Relative gap and best bound ($/h).
    runtime_s
        Wall-clock seconds of the solve (model building included).
    gpu_counts
        GPUs of each type, every type of the instance listed (0 when unused).
    gpu_load
        Summed load per GPU type, in GPUs' worth (``sum of rate / throughput``).
    cost_usd_per_h
        ``sum_g cost_g * count_g``, summed as Mélange sums it.
    split
        Per bucket with a positive share: the fraction of its slices on each GPU type.
    verified
        True when the oracle recomputes the same cost with no violation and Mélange's C1/C2
        hold for the plan as recomputed from the instance.
    verification
        What the checks found (empty when ``verified``).
    recomputed_cost_usd_per_h
        The oracle's TCO of the plan.
    assignment
        ``{operator: GPU type}``.
    """

    instance: MelangeInstance
    slice_factor: int
    backend: str
    status: SolveStatus
    termination: Termination
    gap: float
    bound: float
    runtime_s: float
    gpu_counts: Mapping[str, int]
    gpu_load: Mapping[str, float]
    cost_usd_per_h: float
    split: Mapping[str, Mapping[str, float]]
    verified: bool
    verification: tuple[str, ...]
    recomputed_cost_usd_per_h: float
    assignment: Mapping[str, str] = field(default_factory=dict)

    @property
    def proven_optimal(self) -> bool:
        """True when the backend proved the plan optimal."""
        return self.status is SolveStatus.OPTIMAL

    @property
    def verdict(self) -> str:
        """How the solve ended, claiming no more than was proven (``proven optimal``, ...)."""
        return solver_verdict(self.status, self.gap)

    def as_melange(self) -> dict[str, float]:
        """Mélange's own output form: ``{gpu: count, ..., "cost": total $/h}``.

        Every GPU type of the instance is listed, in the file's order, as Mélange's solver
        lists them.
        """
        out: dict[str, float] = {g: int(n) for g, n in self.gpu_counts.items()}
        out["cost"] = self.cost_usd_per_h
        return out


def plan_melange(
    instance: MelangeInstance,
    options: SolverOptions | None = None,
    slice_factor: int | None = None,
) -> MelangeResult:
    """Solve a Mélange instance with a hetopt backend and verify the plan.

    Parameters
    ----------
    instance
        The checked instance (:func:`load_melange`).
    options
        Solver settings (default: HiGHS, 60 s); any backend of
        :func:`hetopt.solvers.available_backends` (brute force only on tiny instances).
    slice_factor
        Slices per bucket; default the instance's own.

    Returns
    -------
    MelangeResult

    Raises
    ------
    InputError
        A bad ``slice_factor``, an unknown backend, or brute force on too large an instance.
    SolverLimitError
        The solver stopped at its limit before finding any plan.

    Examples
    --------
    >>> from hetopt.melange import MELANGE_EXAMPLE, melange_instance
    >>> res = plan_melange(melange_instance(MELANGE_EXAMPLE), SolverOptions(backend="cpsat"))
    >>> dict(res.gpu_counts), round(res.cost_usd_per_h, 9)
    ({'A10G': 3, 'A100-80GB': 1}, 6.7)
    >>> [sorted(s.values()) for s in res.split.values()].count([0.0, 1.0])  # none split
    4
    >>> sum(s["A10G"] for s in res.split.values())  # one whole bucket on the 3 A10Gs (ties)
    1.0
    """
    options = options or SolverOptions()
    s_count = _check_slice_factor(slice_factor, instance)
    problem = melange_problem(instance, s_count)
    result = solve(problem, options)
    if result.choice is None:
        raise SolverLimitError(
            f"Mélange instance {instance.source or instance.name}: solver {result.backend} "
            f"stopped ({result.termination.value}) without any plan after "
            f"{result.runtime_s:.1f} s. Raise solver.time_limit_s, lower slice_factor, or use "
            f"solver=highs."
        )
    choice = result.choice
    ev = evaluate_choice(problem, choice)
    counts = {g: 0 for g in instance.gpu_names}
    for k, key in enumerate(problem.key_names):
        counts[key] = int(ev.key_counts[k])
    assignment = {
        problem.ops[i]: problem.devices[problem.opt_device[o]] for i, o in enumerate(choice)
    }
    cost = 0.0
    for gpu in instance.gpus:  # in Mélange's order, so the float sum is Mélange's
        cost += counts[gpu.name] * gpu.cost_usd_per_h
    load, issues = _melange_check(instance, s_count, assignment, counts)
    recomputed, oracle_issues = _oracle_check(problem, assignment, counts, cost)
    issues += oracle_issues
    return MelangeResult(
        instance=instance,
        slice_factor=s_count,
        backend=result.backend,
        status=result.status,
        termination=result.termination,
        gap=result.gap,
        bound=result.bound,
        runtime_s=result.runtime_s,
        gpu_counts=counts,
        gpu_load=load,
        cost_usd_per_h=cost,
        split=_split(instance, s_count, assignment),
        verified=not issues,
        verification=tuple(issues),
        recomputed_cost_usd_per_h=recomputed,
        assignment=assignment,
    )


def _split(
    instance: MelangeInstance, s_count: int, assignment: Mapping[str, str]
) -> dict[str, dict[str, float]]:
    """Per bucket with a positive share, the fraction of its slices on each GPU type."""
    out: dict[str, dict[str, float]] = {}
    for name, _, _, share in instance.buckets():
        if share <= 0:
            continue
        on = [assignment[f"{name}/s{s}"] for s in range(s_count)]
        out[name] = {g: on.count(g) / s_count for g in instance.gpu_names}
    return out


def _melange_check(
    instance: MelangeInstance,
    s_count: int,
    assignment: Mapping[str, str],
    counts: Mapping[str, int],
) -> tuple[dict[str, float], list[str]]:
    """Mélange's constraints recomputed from the instance alone: every slice of every bucket
    with a positive share is on one GPU type that serves it (C1), and each type's GPUs cover
    the summed ``rate / throughput`` of its slices (C2)."""
    issues: list[str] = []
    load = dict.fromkeys(instance.gpu_names, 0.0)
    tputs = {g.name: g.tputs for g in instance.gpus}
    for name, i, j, share in instance.buckets():
        if share <= 0:
            continue
        for s in range(s_count):
            gpu = assignment.get(f"{name}/s{s}")
            if gpu not in tputs or tputs[gpu][i][j] <= 0:
                issues.append(f"slice {s} of bucket {name} is on {gpu!r}, which cannot serve it")
                continue
            load[gpu] += share * instance.total_request_rate / s_count / tputs[gpu][i][j]
    for gpu, total in load.items():
        need = int(replicas_for_load(total))
        if counts.get(gpu, 0) < need:
            issues.append(
                f"{gpu}: {counts.get(gpu, 0)} GPUs cannot carry a load of {total:.6f} GPUs "
                f"(Mélange's C2 needs {need})"
            )
    return load, issues


def _oracle_check(
    problem: PlacementProblem, assignment: Mapping[str, str], counts: Mapping[str, int], cost: float
) -> tuple[float, list[str]]:
    """The independent oracle's recomputation of the plan with its published GPU counts: no
    violation, every used GPU type's pool of the published size, the same cost."""
    assert problem.raw_inputs is not None
    rec = evaluate_assignment(
        problem.raw_inputs,
        {op: (gpu, CONFIG) for op, gpu in assignment.items()},
        pool_counts={},
        llm_pool_counts={g: n for g, n in counts.items() if n > 0},
    )
    issues = [f"oracle: {v}" for v in rec.violations]
    if rec.sla_violation:
        issues.append(f"oracle: {rec.sla_violation}")
    if not abs(rec.tco_usd_per_h - cost) <= COST_TOL * max(1.0, abs(cost)):
        issues.append(
            f"oracle: the plan costs {rec.tco_usd_per_h:.9g} $/h recomputed, not the "
            f"{cost:.9g} $/h reported"
        )
    return rec.tco_usd_per_h, issues
