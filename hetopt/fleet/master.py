"""The decomposition's restricted master: one column per tenant under the exact coupling.

A *column* is one tenant plan a subproblem found, with what it adds to the fleet: its own cost
(dedicated replicas, direct cost, transfers, soft-SLA penalty), dedicated devices and pooled load
per device type, its load on each shared LLM pool and capacity, and the footprints it makes
resident. The master picks one column per tenant so that the shared pools, the shared LLM
pools, the inventory and device memory hold exactly (pool ceilings, the one-device minimum,
integer LLM replicas ``m_k``, footprints), which gives the decomposition its feasible plans and
upper bounds; its LP relaxation prices the inventory for the next round (the duals of the
inventory rows). :func:`build_master` lists the constraint families top to bottom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from hetopt._solverlibs import pulp  # ortools first, then pulp (see there)
from hetopt.fleet.evaluate import Choices, evaluate_fleet
from hetopt.fleet.problem import FleetProblem
from hetopt.models import milp
from hetopt.models.evaluate import KEY_DIMS
from hetopt.problem import replicas_for_load
from hetopt.solvers.base import Deadline, SolverOptions, SolveStatus
from hetopt.solvers.registry import get_backend


@dataclass(frozen=True)
class Column:
    """One tenant plan the master can pick.

    Attributes
    ----------
    choice
        Option per operator of the tenant's problem.
    own_usd_per_h
        Its own cost: dedicated replicas, direct cost, transfers and soft-SLA penalty (neither
        shared pools' devices nor shared LLM pools' replicas, which the master prices).
    dedicated, load
        Dedicated devices and pooled load it adds per device type (shared LLM pools' replicas
        are not in ``dedicated``: they are the master's ``m_k``).
    pooled_on
        Device types it pools an operator on (each then holds at least one device).
    prints
        Footprints (fleet keys) it makes resident.
    key_load
        Its load on each shared LLM pool of the fleet, per capacity (``[key, dim]``, replicas).
    """

    choice: tuple[int, ...]
    own_usd_per_h: float
    dedicated: np.ndarray
    load: np.ndarray
    pooled_on: np.ndarray
    prints: frozenset[int]
    key_load: np.ndarray = field(default_factory=lambda: np.zeros((0, KEY_DIMS)))

    @property
    def key_floor(self) -> np.ndarray:
        """Replicas each shared LLM pool needs for this column alone (its busiest capacity's
        ceiling): a pool it uses holds at least that many, whoever else shares it."""
        return replicas_for_load(self.key_load.max(axis=1, initial=0.0)).astype(int)


def column(fp: FleetProblem, t: int, choice: tuple[int, ...]) -> Column:
    """Tenant ``t``'s plan ``choice`` as a column, costed by the fleet evaluator."""
    p = fp.tenants[t]
    c = np.asarray(choice, dtype=int)
    dev = p.opt_device[c]
    n = fp.n_devices
    single = replace(
        fp,
        tenants=(p,),
        tenant_names=(fp.tenant_names[t],),
        tenant_class=np.zeros(1, dtype=int),
        tenant_template=(fp.tenant_template[t],),
        opt_footprint=(fp.opt_footprint[t],),
        opt_fleet_key=(fp.opt_fleet_key[t],),
    )
    ev = evaluate_fleet(single, (choice,))
    # the master sizes both kinds of pools for the whole fleet: take their devices out
    own = (
        ev.objective_usd_per_h
        - float(fp.device_cost_usd_per_h @ ev.pool_counts)
        - float(fp.key_usd_per_h() @ ev.key_counts)
    )
    return Column(
        tuple(int(o) for o in choice),
        own,
        np.bincount(dev, weights=p.opt_dedicated[c], minlength=n),
        np.bincount(dev, weights=p.opt_pool_load[c], minlength=n),
        np.bincount(dev, weights=p.opt_pooled[c].astype(float), minlength=n) > 0,
        frozenset(int(k) for k in fp.opt_footprint[t][c] if k >= 0),
        ev.key_load,
    )


Lambdas = list[list[pulp.LpVariable]]
"""``lambda[t][k]``: tenant ``t`` takes column ``k`` of its class."""
Choosing = list[list[tuple[pulp.LpVariable, Column]]]
"""Per tenant, each ``lambda[t][k]`` with its column."""


def build_master(
    fp: FleetProblem, columns: dict[int, list[Column]], relax: bool
) -> tuple[pulp.LpProblem, Lambdas, dict[int, pulp.LpConstraint]]:
    """The restricted master over the columns: one column per tenant, exact coupling rows.

    Families: one column per tenant; per device type the shared pool (load and one-device
    minimum), the inventory (dedicated devices, pool devices and the shared LLM pools'
    ``dpr_k m_k``) and footprints; per shared LLM pool its replicas ``m_k`` (load per capacity
    and each column's own ceiling); symmetry among identical tenants. The objective is the
    columns' own cost plus every pool's devices and every LLM pool's replicas.

    Returns the model, the column choices ``lambda`` and the inventory rows by device (whose
    duals price the inventory); ``relax`` gives the LP relaxation (``n_j``, ``m_k`` and
    ``lambda`` continuous).
    """
    prob = pulp.LpProblem("hetopt_fleet_master", pulp.LpMinimize)
    cat = "Continuous" if relax else "Binary"
    count = "Continuous" if relax else "Integer"
    lam, cost = _add_one_column_per_tenant(prob, fp, columns, cat)
    n = [prob.add_variable(f"n[{j}]", lowBound=0, cat=count) for j in range(fp.n_devices)]
    m = [prob.add_variable(f"m[{k}]", lowBound=0, cat=count) for k in range(fp.n_keys)]
    choosing: Choosing = [
        list(zip(lt, columns[int(fp.tenant_class[t])], strict=True)) for t, lt in enumerate(lam)
    ]
    _add_llm_pool_rows(prob, fp, choosing, m)
    inventory_rows: dict[int, pulp.LpConstraint] = {}
    for j, dev in enumerate(fp.devices):
        _add_pool_rows(prob, choosing, n[j], j, dev)
        if math.isfinite(fp.device_inventory[j]):
            keys = [(int(fp.key_devices_per_replica[k]), m[k]) for k in fp.keys_on(j)]
            inventory_rows[j] = _add_inventory_row(
                prob, choosing, n[j], j, fp.device_inventory[j], dev, keys
            )
        if fp.memory_may_bind(j):
            _add_memory_rows(prob, fp, choosing, j, cat)
    _add_symmetry_rows(prob, fp, lam)
    key_usd = fp.key_usd_per_h()
    prob += (
        pulp.LpAffineExpression(cost)
        + pulp.lpSum(fp.device_cost_usd_per_h[j] * n[j] for j in range(fp.n_devices))
        + pulp.lpSum(float(key_usd[k]) * m[k] for k in range(fp.n_keys))
    )
    return prob, lam, inventory_rows


def _add_one_column_per_tenant(
    prob: pulp.LpProblem, fp: FleetProblem, columns: dict[int, list[Column]], cat: str
) -> tuple[Lambdas, list[tuple[pulp.LpVariable, float]]]:
    """``sum_k lambda_tk = 1`` for every tenant; returns ``lambda`` and each column's own cost
    (dedicated, direct, transfer and soft-SLA penalty)."""
    lam: Lambdas = []
    cost = []
    for t in range(fp.n_tenants):
        cols = columns[int(fp.tenant_class[t])]
        lt = [
            prob.add_variable(f"l[{t},{k}]", lowBound=0, upBound=1, cat=cat)
            for k in range(len(cols))
        ]
        prob += pulp.lpSum(lt) == 1, f"one[{t}]"
        cost += [(v, col.own_usd_per_h) for v, col in zip(lt, cols, strict=True)]
        lam.append(lt)
    return lam, cost


def _add_pool_rows(
    prob: pulp.LpProblem, choosing: Choosing, n_j: pulp.LpVariable, j: int, dev: str
) -> None:
    """Pool ``j`` holds ``n_j >= sum load_jk lambda_tk`` devices, and one at least once any
    tenant pools an operator on it: ``n_j >= sum_k lambda_tk`` over its columns pooled on j."""
    load_terms = []
    for t, pairs in enumerate(choosing):
        on = [v for v, col in pairs if col.pooled_on[j]]
        if on:
            prob += n_j >= pulp.lpSum(on), f"exists[{dev},{t}]"
        load_terms += [(v, col.load[j]) for v, col in pairs if col.load[j]]
    if load_terms:
        prob += n_j >= pulp.LpAffineExpression(load_terms), f"load[{dev}]"


def _add_llm_pool_rows(
    prob: pulp.LpProblem, fp: FleetProblem, choosing: Choosing, m: list[pulp.LpVariable]
) -> None:
    """Each shared LLM pool ``k`` covers the chosen columns' load on each of its capacities,
    ``m_k >= sum load_tkd lambda_tk``, and holds at least the replicas any chosen column needs
    alone, ``m_k >= sum_c ceil(load_tc) lambda_tc`` per tenant (implied for integer ``m_k``;
    it keeps the LP bound of the per-column ceilings)."""
    load: dict[tuple[int, int], list[tuple[float, pulp.LpVariable]]] = {}
    for t, pairs in enumerate(choosing):
        floor: dict[int, list[tuple[pulp.LpVariable, int]]] = {}
        for v, col in pairs:
            ceiling = col.key_floor
            for k, dim in zip(*np.nonzero(col.key_load > 0), strict=True):
                load.setdefault((int(k), int(dim)), []).append((float(col.key_load[k, dim]), v))
            for k in np.flatnonzero(ceiling):
                floor.setdefault(int(k), []).append((v, int(ceiling[k])))
        for k, terms in floor.items():
            prob += m[k] >= pulp.LpAffineExpression(terms), f"llm_floor[{fp.key_names[k]},{t}]"
    for (k, dim), terms in sorted(load.items()):
        milp.add_pool_load(prob, m[k], terms, f"llm_load[{fp.key_names[k]},{dim}]")


def _add_inventory_row(
    prob: pulp.LpProblem,
    choosing: Choosing,
    n_j: pulp.LpVariable,
    j: int,
    inventory_j: float,
    dev: str,
    keys: list[tuple[int, pulp.LpVariable]],
) -> pulp.LpConstraint:
    """Dedicated, pooled and shared LLM pools' devices of type ``j`` within its inventory:
    ``sum dedicated_jk lambda_tk + sum_k dpr_k m_k + n_j <= inventory_j``."""
    ded_terms = [
        (v, col.dedicated[j]) for pairs in choosing for v, col in pairs if col.dedicated[j]
    ]
    ded_terms += [(m_k, dpr) for dpr, m_k in keys]
    row = pulp.LpAffineExpression(ded_terms) + n_j <= inventory_j
    prob.addConstraint(row, f"inventory[{dev}]")
    return row


def _add_memory_rows(
    prob: pulp.LpProblem, fp: FleetProblem, choosing: Choosing, j: int, cat: str
) -> None:
    """Footprints resident on pool ``j`` fit a device: ``z_f >= lambda_tk`` for each column
    that uses footprint ``f``, and ``sum bytes_f z_f <= memory_j``."""
    keys = [int(k) for k in np.flatnonzero(fp.footprint_device == j)]
    z = {k: prob.add_variable(f"z[{k}]", lowBound=0, upBound=1, cat=cat) for k in keys}
    for pairs in choosing:
        for v, col in pairs:
            for k in col.prints & set(keys):
                prob += z[k] >= v, f"res[{k},{v.name}]"
    prob += (
        pulp.lpSum(fp.footprint_bytes[k] / 1e9 * z[k] for k in z) <= fp.device_mem_bytes[j] / 1e9,
        f"mem[{fp.devices[j]}]",
    )


def _add_symmetry_rows(prob: pulp.LpProblem, fp: FleetProblem, lam: Lambdas) -> None:
    """Identical tenants take columns in order: ``sum_k k lambda_ak <= sum_k k lambda_bk`` for
    consecutive tenants ``a, b`` of a class (their plans are interchangeable)."""
    for cls in np.unique(fp.tenant_class):
        members = np.flatnonzero(fp.tenant_class == cls)
        for a, b in zip(members[:-1], members[1:], strict=True):
            prob += (
                (
                    pulp.lpSum(k * v for k, v in enumerate(lam[a]))
                    <= pulp.lpSum(k * v for k, v in enumerate(lam[b]))
                ),
                f"sym[{a},{b}]",
            )


def master_prices(
    fp: FleetProblem,
    columns: dict[int, list[Column]],
    options: SolverOptions,
    deadline: Deadline | None = None,
) -> np.ndarray | None:
    """Inventory prices ``mu_j >= 0``: the duals of the master LP's inventory rows."""
    prob, _, rows = build_master(fp, columns, relax=True)
    highs = replace(options, backend="highs")
    status = (
        get_backend("highs").run(prob, highs, deadline or Deadline.after(highs.time_limit_s)).status
    )
    if status is not SolveStatus.OPTIMAL:
        return None
    mu = np.zeros(fp.n_devices)
    for j, row in rows.items():
        if row.pi is not None:
            mu[j] = max(0.0, -float(row.pi))
    return mu


def solve_master(
    fp: FleetProblem,
    columns: dict[int, list[Column]],
    options: SolverOptions,
    incumbent: Choices | None,
    deadline: Deadline | None = None,
) -> Choices | None:
    """Pick one column per tenant under the exact coupling (restricted master MIP)."""
    prob, lam, _ = build_master(fp, columns, relax=False)
    start = False
    if incumbent is not None:
        for t, lt in enumerate(lam):
            cols = columns[int(fp.tenant_class[t])]
            hit = [k for k, col in enumerate(cols) if col.choice == incumbent[t]]
            if not hit:
                break
            for k, v in enumerate(lt):
                v.setInitialValue(1.0 if k == hit[0] else 0.0)
        else:
            start = True
    highs = replace(options, backend="highs")
    values = {v: v.varValue for v in prob.variables() if v.varValue is not None} if start else None
    status = (
        get_backend("highs")
        .run(prob, highs, deadline or Deadline.after(highs.time_limit_s), None, values)
        .status
    )
    if status not in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
        return None
    out = []
    for t, lt in enumerate(lam):
        cols = columns[int(fp.tenant_class[t])]
        k = int(np.argmax([v.varValue or 0.0 for v in lt]))
        out.append(cols[k].choice)
    return tuple(out)
