"""The shared LLM pools' ceilings as a correction to the decomposition's Lagrangian bound.

The decomposition (:mod:`hetopt.fleet.decomposition`) relaxes each shared LLM pool ``k``: an
option ``o`` on it pays ``pay_o`` (:meth:`~hetopt.fleet.decomposition.KeySplit.option_usd_per_h`,
a share of the replica price ``c'_k``) instead of the pool's whole replicas, and

    LB = sum_t b_t - mu . inventory

with ``b_t`` the proven bound of tenant ``t``'s relaxed subproblem. :func:`ceiling_bound`
computes a correction ``C >= 0`` such that ``LB + C`` is still a lower bound on the fleet
optimum: it accounts for the replicas the pools must round up to, which ``LB`` does not see.

Proof. For a feasible fleet plan ``x`` (all costs at the same prices; a class's ``b_t`` may
come from an earlier round at prices no higher on any device, which only lowers it),

    cost(x) >= LB + sum_t r_t(x_t) + sum_k waste_k(x),

with ``r_t = f_t(x_t) - b_t >= 0`` (``f_t`` the tenant's relaxed cost, ``b_t <= min f_t``) and
``waste_k = c'_k m_k - sum_{o on k} pay_o x_o >= 0`` (the split's dualised rows hold for every
plan, :class:`~hetopt.fleet.decomposition.KeySplit`: what the options pay never exceeds the
integer replicas they need; shared device pools' rounding and the inventory slack, also
``>= 0``, are dropped). Edge costs and soft-SLA penalties are ``>= 0``, so ``f_t(x_t) >= sum_i
cost_{x_i}`` over its operators ``i``, with ``cost_o`` the relaxed cost of option ``o``
(``pay_o`` included). Let ``min_i`` be the cheapest option of operator ``i``, ``delta_o =
cost_o - min_{op(o)} >= 0`` and ``s_t = max(0, b_t - sum_i min_i)`` (the slack a binding SLA
forces on the tenant's bound). Then

    r_t >= max(0, sum_i delta_i - s_t) >= sum_i max(0, delta_i - s_t) = sum_i rho_{x_i},

the second step because ``delta >= 0`` and ``s_t >= 0``: when no ``delta_i`` exceeds ``s_t`` the
right side is 0; otherwise it is ``sum_{delta_i > s_t} delta_i - n s_t`` with ``n >= 1``,
at most ``sum_i delta_i - s_t``. Hence

    cost(x) >= LB + min_x [ sum_i rho_{x_i} + sum_k waste_k(x) ]

over the relaxation in which every operator picks any of its options and every pool holds
integer ``m_k >= L_kd`` on each capacity ``d`` (tenants' SLAs, inventory and everything else
dropped: the minimum only falls). That minimum separates into *families*: operators linked
through shared pools (two operators are linked when both have options on one pool). An operator
with no option on any pool adds ``min rho = 0``. Each family's minimum ``C_f`` is ``>= 0`` (all
terms are), so ``C = sum_f max(0, proven bound on C_f)``.

Solving a family: identical operators (same operator of tenants of one class) are aggregated
into one integer count per option, ``y_go in [0, n_g]``, ``sum_o y_go = n_g``, which removes the
symmetry among copies. With a cheap start (per operator its least ``rho``, ties to the smaller
payment) of objective ``tau``, options with ``rho_o >= tau`` are dropped: a plan using one costs
``>= tau`` already, so ``C_f >= min(tau, bound of the pruned family)``. So are options another
option of the operator beats (no more load on the same pool and capacity, no more ``rho -
pay``; or off the pools with no more ``rho`` than its ``rho - pay``): swapping them for it
never raises the objective.

Why any split: the argument uses only ``waste_k >= 0``, which every split of
:class:`~hetopt.fleet.decomposition.KeySplit` guarantees, and the prices the caller used for
``cost_o``, ``pay_o``, ``b_t`` and ``c'_k`` (the same ``mu`` as ``LB``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from networkx.utils import UnionFind

from hetopt._solverlibs import pulp  # ortools first, then pulp (see there)
from hetopt.fleet.problem import FleetProblem
from hetopt.models.evaluate import KEY_DIMS
from hetopt.problem import pareto_front, replicas_for_load
from hetopt.solvers import get_backend
from hetopt.solvers.base import MIN_SOLVE_SLICE_S, Deadline, SolverOptions, SolveStatus


@dataclass(frozen=True)
class CeilingBound:
    """What the pools' ceilings add to the Lagrangian bound.

    Attributes
    ----------
    usd_per_h
        ``C``: the sum of the families' proven corrections (``>= 0``).
    families
        Families whose start has a positive objective (the others add 0).
    closed
        Of those, families whose correction is proven optimal.
    """

    usd_per_h: float
    families: int
    closed: int


@dataclass
class _Group:
    """``n`` identical operators (one operator of the tenants of one class): its options'
    ``rho``, payment, fleet pool, load and capacity."""

    n: int
    rho: np.ndarray
    pay: np.ndarray
    key: np.ndarray
    load: np.ndarray
    dim: np.ndarray
    start: int = 0


@dataclass
class _Family:
    groups: list[_Group]
    start_usd_per_h: float = 0.0


def ceiling_bound(
    fp: FleetProblem,
    opt_cost: Sequence[np.ndarray],
    opt_pay: Sequence[np.ndarray],
    tenant_bound: Sequence[float],
    key_usd_per_h: np.ndarray,
    deadline: float,
    options: SolverOptions,
) -> CeilingBound:
    """The ceilings' correction ``C``: ``LB + C`` stays a lower bound (module docstring).

    Parameters
    ----------
    fp
        The fleet problem.
    opt_cost
        Per tenant, each option's cost in its relaxed subproblem (payment included).
    opt_pay
        Per tenant, each option's payment for the shared LLM pools (0 off them).
    tenant_bound
        Per tenant, the proven bound of its relaxed subproblem.
    key_usd_per_h
        Price of a replica of each shared LLM pool, at the same prices.
    deadline
        ``time.perf_counter()`` value at which to stop; families left get 0.
    options
        Solver settings (threads and seed are used).

    Returns
    -------
    CeilingBound

    Examples
    --------
    Two tenants, an LLM each: on pool g (10 $/h a replica, load 0.6, pays 6 $/h fluidly) or
    dedicated at 8 $/h. Each subproblem's bound is 6 (LB 12); both on g need 2 replicas (8 $/h
    of waste), one each way 6, both dedicated 2 + 2 = 4, the fleet optimum being 16.

    >>> from hetopt.fleet.problem import fleet_from_problems
    >>> from hetopt.testing import Opt, tiny_problem
    >>> ops = {"llm": [Opt("G", 0.1, key="g", load=0.6), Opt("H", 0.1, dedicated=1)]}
    >>> fp = fleet_from_problems([tiny_problem(ops, {"G": 10.0, "H": 8.0}, name=n,
    ...                                        outside_keys={"g"}) for n in "ab"])
    >>> cost, pay = [np.array([6.0, 8.0])] * 2, [np.array([6.0, 0.0])] * 2
    >>> res = ceiling_bound(fp, cost, pay, [6.0, 6.0], fp.key_usd_per_h(),
    ...                     time.perf_counter() + 10, SolverOptions())
    >>> round(res.usd_per_h, 6), res.families, res.closed
    (4.0, 1, 1)
    """
    families = _families(fp, opt_cost, opt_pay, tenant_bound)
    for fam in families:
        _start(fam, key_usd_per_h)
    todo = sorted(
        (f for f in families if f.start_usd_per_h > 1e-9), key=lambda f: -f.start_usd_per_h
    )
    sub = replace(options, backend="highs", gap_rel=1e-6)
    total, closed = 0.0, 0
    for left, fam in zip(range(len(todo), 0, -1), todo, strict=True):
        remaining_s = deadline - time.perf_counter()
        if remaining_s <= 0:
            break
        slice_s = max(remaining_s / left, MIN_SOLVE_SLICE_S)
        bound, proven = _solve(fam, key_usd_per_h, sub, Deadline.after(slice_s))
        total += bound
        closed += proven
    return CeilingBound(total, len(todo), closed)


def _families(
    fp: FleetProblem,
    opt_cost: Sequence[np.ndarray],
    opt_pay: Sequence[np.ndarray],
    tenant_bound: Sequence[float],
) -> list[_Family]:
    """Groups of identical operators with an option on a pool, joined into families by the
    pools they share (union-find over the pools)."""
    linked = UnionFind()  # pools, joined when one operator has options on both

    groups: dict[tuple[object, ...], _Group] = {}
    for t, p in enumerate(fp.tenants):
        cost = np.asarray(opt_cost[t], dtype=float)
        pay = np.asarray(opt_pay[t], dtype=float)
        fk, load, dim = fp.opt_fleet_key[t], p.opt_key_load, p.opt_key_dim
        assert load is not None and dim is not None  # filled in by PlacementProblem
        if not (fk >= 0).any():
            continue
        mins = np.full(p.n_ops, np.inf)
        np.minimum.at(mins, p.opt_op, cost)
        slack = max(0.0, float(tenant_bound[t]) - float(mins.sum()))
        rho = np.maximum(0.0, cost - mins[p.opt_op] - slack)
        # identical tenants (one class, the same data) share their groups
        sig = (
            int(fp.tenant_class[t]),
            fk.tobytes(),
            load.tobytes(),
            cost.tobytes(),
            pay.tobytes(),
            slack,
        )
        for i in range(p.n_ops):
            on = np.flatnonzero(p.opt_op == i)
            keys = np.unique(fk[on][fk[on] >= 0])
            if not len(keys):
                continue
            linked.union(*keys.tolist())
            g = groups.get((*sig, i))
            if g is not None:
                g.n += 1
                continue
            groups[(*sig, i)] = _Group(1, rho[on], pay[on], fk[on], load[on], dim[on])
    by_root: dict[int, _Family] = {}
    for g in groups.values():
        root = linked[int(g.key[g.key >= 0][0])]
        by_root.setdefault(root, _Family([])).groups.append(g)
    return list(by_root.values())


def _start(fam: _Family, key_usd_per_h: np.ndarray) -> None:
    """Each group's start option (least ``rho``, then least payment) and the start's exact
    objective (with the pools' ceilings)."""
    for g in fam.groups:
        g.start = int(np.lexsort((g.pay, g.rho))[0])
    fam.start_usd_per_h = _objective(fam, [g.start for g in fam.groups], key_usd_per_h)


def _objective(fam: _Family, choice: list[int], key_usd_per_h: np.ndarray) -> float:
    """``sum rho + sum_k c'_k ceil(max_d L_kd) - sum pay`` when every operator of each group
    takes its option in ``choice``."""
    load: dict[int, np.ndarray] = {}
    out = 0.0
    for g, o in zip(fam.groups, choice, strict=True):
        out += g.n * (float(g.rho[o]) - float(g.pay[o]))
        k = int(g.key[o])
        if k >= 0:
            load.setdefault(k, np.zeros(KEY_DIMS))
            load[k][int(g.dim[o])] += g.n * float(g.load[o])
    for k, per_dim in load.items():
        out += float(key_usd_per_h[k]) * float(replicas_for_load(per_dim.max()))
    return out


def _kept(g: _Group, tau: float) -> np.ndarray:
    """The options of ``g`` the family's model needs: below ``tau`` and undominated, and the
    start. On one pool and capacity, an option with no more load and no more ``rho - pay``
    than another beats it; off the pools only the least ``rho`` counts, and it beats every
    option on a pool whose ``rho - pay`` is no less (a pool's replicas cost ``>= 0`` more).
    Replacing beaten options never raises a plan's objective, so the bound holds."""
    net = g.rho - g.pay
    on = g.key >= 0
    front = pareto_front(np.where(on, g.key * KEY_DIMS + g.dim, -1), g.load * on, net)
    if (~on).any():
        front &= ~on | (net < g.rho[~on].min())
    keep = front & (g.rho < tau)
    keep[g.start] = True
    return np.flatnonzero(keep)


def _solve(
    fam: _Family, key_usd_per_h: np.ndarray, options: SolverOptions, deadline: Deadline
) -> tuple[float, bool]:
    """The family's proven correction ``max(0, min(tau, bound))`` and whether it is exact."""
    tau = fam.start_usd_per_h
    kept = [_kept(g, tau) for g in fam.groups]
    if all(len(k) == 1 for k in kept):
        return tau, True  # only the start is left: it is the minimum
    prob = pulp.LpProblem("hetopt_fleet_ceilings", pulp.LpMinimize)
    obj: list[tuple[pulp.LpVariable, float]] = []
    rows: dict[tuple[int, int], list[tuple[pulp.LpVariable, float]]] = {}
    floors: list[tuple[int, pulp.LpVariable, float]] = []
    warm: dict[pulp.LpVariable, float] = {}
    for gi, (g, keep) in enumerate(zip(fam.groups, kept, strict=True)):
        ys = []
        for o in keep:
            y = prob.add_variable(f"y[{gi},{o}]", lowBound=0, upBound=g.n, cat="Integer")
            ys.append(y)
            warm[y] = float(g.n if o == g.start else 0)
            obj.append((y, float(g.rho[o]) - float(g.pay[o])))
            k = int(g.key[o])
            if k >= 0:
                rows.setdefault((k, int(g.dim[o])), []).append((y, float(g.load[o])))
                ceiling = float(replicas_for_load(g.load[o]))
                floors.append((k, y, ceiling / g.n))
        prob += pulp.lpSum(ys) == g.n, f"one[{gi}]"
    keys = sorted({k for k, _ in rows})
    m = {k: prob.add_variable(f"m[{k}]", lowBound=0, cat="Integer") for k in keys}
    for (k, d), terms in sorted(rows.items(), key=lambda kv: kv[0]):
        prob += m[k] >= pulp.LpAffineExpression(terms), f"load[{k},{d}]"
    for n, (k, y, coef) in enumerate(floors):
        prob += m[k] >= coef * y, f"floor[{n}]"  # valid, weaker than each operator's own ceiling
    per_kd: dict[tuple[int, int], float] = {}
    for g in fam.groups:
        k = int(g.key[g.start])
        if k >= 0:
            kd = (k, int(g.dim[g.start]))
            per_kd[kd] = per_kd.get(kd, 0.0) + g.n * float(g.load[g.start])
    for k in keys:
        busiest = max((v for (kk, _), v in per_kd.items() if kk == k), default=0.0)
        warm[m[k]] = float(replicas_for_load(busiest))
    prob += pulp.LpAffineExpression(obj) + pulp.lpSum(float(key_usd_per_h[k]) * m[k] for k in keys)
    raw = get_backend("highs").run(prob, options, deadline, None, warm)
    bound = raw.bound if math.isfinite(raw.bound) else 0.0
    value = max(0.0, min(tau, bound))
    return value, raw.status is SolveStatus.OPTIMAL or bound >= tau - 1e-9
