"""Lagrangian decomposition of the fleet: per-tenant subproblems coupled by shared pools.

Relaxing the fleet's coupling rows (inventory with multipliers ``mu_j >= 0``; shared pools
priced at their load, without the ceiling and the one-device minimum; shared LLM pools priced
at their load and their users' ceilings, see :class:`KeySplit`; shared footprints) leaves one
independent single-agent problem per tenant, in which a device of type ``j`` costs
``c_j + mu_j`` per hour. Identical tenants share one subproblem. For any ``mu``

    LB(mu) = sum_t bound_t(mu) - sum_j mu_j inventory_j  <=  fleet optimum,

using each subproblem's *proven* bound, so the bound stays valid when a subproblem stops early.
Subgradient steps (Polyak) on ``mu`` raise it. Every subproblem solution is kept as a column;
each round, a restricted master MIP picks one column per tenant under the exact coupling (pool
ceilings, one-device minimum, integer LLM replicas, inventory, footprints), which gives a
feasible fleet plan and the
upper bound (the master lives in :mod:`hetopt.fleet.master`). The solve stops when
``(UB - LB) / UB <= gap_rel`` or at the time limit.

With shared LLM pools two more stages run, because the pools' ceilings are what the fluid
bound and the master both miss: each new incumbent is trimmed (:mod:`hetopt.fleet.trim`) and
re-solved one pool group at a time with the fleet MILP (:mod:`hetopt.fleet.neighbourhood`),
and the last sixth of the time adds the ceilings to the best round's bound
(:mod:`hetopt.fleet.ceilings`).

Why it wins at scale: the subproblems are small and solved to optimality, so their sum is a
much stronger bound than the LP relaxation of the monolithic model (the rounding of shared
pools and shared LLM pools is the only slack: at most one device per pool and one replica
per shared LLM pool), and the master only chooses among a few plans per tenant.

Why one module: the Lagrangian bound, the subproblems' prices (``priced``, :class:`KeySplit`)
and the round loop must agree on one relaxation; split apart, a change to how a shared pool is
relaxed could reach the subproblems but not the bound's device use (``relaxed_use``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from hetopt.fleet.ceilings import ceiling_bound
from hetopt.fleet.evaluate import Choices, evaluate_fleet
from hetopt.fleet.master import Column, column, master_prices, solve_master
from hetopt.fleet.neighbourhood import GroupSearch
from hetopt.fleet.problem import FleetProblem
from hetopt.fleet.trim import trim_pools
from hetopt.models.evaluate import KEY_DIMS
from hetopt.problem import PlacementProblem, pareto_front, replicas_for_load
from hetopt.solvers import solve
from hetopt.solvers.base import (
    MIN_SOLVE_SLICE_S,
    Deadline,
    OnProgress,
    SolveProgress,
    SolveResult,
    SolverOptions,
    SolveStatus,
)

CANDIDATES_PER_OP = 3
"""Cheapest undominated options per operator that the pool groups' search may use, besides
the columns' and the incumbent's."""


@dataclass(frozen=True)
class DecompositionResult:
    """What the decomposition found.

    Attributes
    ----------
    status
        ``optimal`` (gap within ``gap_rel``), ``feasible`` (time limit), ``infeasible`` (some
        tenant's SLA fits no device mix, or the master found no plan on its columns).
    objective_usd_per_h, bound_usd_per_h
        Best plan's objective and the best Lagrangian bound.
    choices
        The best plan (None without one).
    iterations, subproblems
        Subgradient rounds and single-agent solves performed.
    infeasible_tenant
        Name of a tenant whose subproblem is infeasible (then the fleet is too).
    """

    status: SolveStatus
    objective_usd_per_h: float
    bound_usd_per_h: float
    choices: Choices | None
    iterations: int
    subproblems: int
    infeasible_tenant: str | None = None


def priced(
    p: PlacementProblem,
    price_usd_per_h: np.ndarray,
    opt_key_usd_per_h: np.ndarray | None = None,
) -> PlacementProblem:
    """The tenant's relaxed subproblem: devices at ``price``, pooled load paid linearly.

    Parameters
    ----------
    p
        The tenant's problem.
    price_usd_per_h
        Hourly price of each device type (list price plus the inventory multiplier).
    opt_key_usd_per_h
        Per option, what its load on a shared LLM pool of the fleet pays
        (:meth:`KeySplit.option_usd_per_h`); None: no option is on one.

    Returns
    -------
    PlacementProblem
        The tenant's own shared LLM pools are gone (``opt_key`` -1, no ``key_*``): the fleet's
        pools are coupling rows, relaxed into ``opt_key_usd_per_h``, so the single-agent solver
        must not size replicas of its own for them (their ``opt_dedicated`` is 0).
    """
    direct = p.opt_direct_usd_per_h + p.opt_pool_load * price_usd_per_h[p.opt_device]
    if opt_key_usd_per_h is not None:
        direct = direct + opt_key_usd_per_h
    return replace(
        p,
        device_cost_usd_per_h=price_usd_per_h,
        opt_direct_usd_per_h=direct,
        opt_pool_load=np.zeros_like(p.opt_pool_load),
        opt_pooled=np.zeros_like(p.opt_pooled),
        opt_pool_mem_bytes=np.zeros_like(p.opt_pool_mem_bytes),
        key_names=(),
        key_device=np.zeros(0, dtype=int),
        key_devices_per_replica=np.zeros(0, dtype=int),
        opt_key=np.full(p.n_options, -1, dtype=int),
    )


def undominated(sub: PlacementProblem) -> np.ndarray:
    """Options of a relaxed subproblem (:func:`priced`) that no other option of the same
    operator on the same device type beats: no slower and no dearer (the first of equals).

    In a relaxed subproblem every option's cost is its own (no pool is shared any more), and
    the device type fixes its transfers, so a beaten option is never needed for the optimum
    or for the proven bound. Device types with a finite inventory of their own are left alone
    (there an option's devices count too).

    Examples
    --------
    >>> from hetopt.testing import Opt, tiny_problem
    >>> p = tiny_problem({"a": [Opt("G", 0.1, dedicated=1), Opt("G", 0.2, dedicated=2),
    ...                         Opt("G", 0.05, dedicated=3), Opt("C", 0.3, dedicated=1)]},
    ...                  {"G": 10.0, "C": 1.0})
    >>> undominated(priced(p, p.device_cost_usd_per_h)).tolist()
    [True, False, True, True]
    """
    group = sub.opt_op * len(sub.devices) + sub.opt_device
    keep = pareto_front(group, sub.opt_latency_s, sub.opt_fixed_usd_per_h())
    return keep | ~np.isinf(sub.device_inventory)[sub.opt_device]


@dataclass(frozen=True)
class KeySplit:
    """How the subproblems share each shared LLM pool's replica price (the pool is relaxed).

    Pool ``k`` holds integer ``m_k`` replicas at ``c'_k = dpr_k (c_j + mu_j)`` each, with
    ``m_k >= L_kd`` on each capacity ``d`` and ``m_k >= sum_{o of i} ceil(load_o) x_o`` for
    every (tenant, operator) ``i`` that can use it (valid: one option per operator, integer
    ``m_k``). Dualising these rows with ``pi_kd = alpha_k w_kd c'_k`` and ``sigma_ik`` such that
    ``sum_d pi_kd + sum_i sigma_ik = c'_k`` (``w_kd >= 0``, ``sum_d w_kd = 1``) cancels
    ``m_k`` and leaves, per tenant option ``o`` of load ``l`` on capacity ``d`` of ``k``,

        c'_k (alpha_k w_kd l + share_o ceil(l)),   share_o = sigma_ik / c'_k,

    so ``LB(mu)`` stays a lower bound for *any* such split. Weight 1 on *every* capacity would
    charge ``sum_d L_kd``, which exceeds ``max_d L_kd`` once both capacities carry load
    (aggregated serving): not a bound.

    The first round pays every pool fluidly (``alpha = 1``, ``w`` half each on a pool with
    two capacities): a start plan's split would price the pools it happens to use, and a poor
    start (the greedy) then gives a weak bound (2,000-operator fleet: 876 against 985 $/h
    fluidly). Each later split is taken from the incumbent ``start`` when it changes:
    ``w`` is 1 on a pool's only capacity, else on ``start``'s busier one; a pool ``start`` does
    not use is paid fluidly (``alpha = 1``); a used pool shares
    ``sigma`` equally among its users' operators (all tenants of their class) and takes the
    ``alpha`` at which ``start``'s load ``L`` is charged exactly ``ceil(L)``,
    ``alpha L + (1 - alpha) F = ceil(L)`` with ``F`` the users' mean ceiling (clipped to
    ``[0, 1]``): a lightly loaded pool (``L <= 1``) is then paid as one replica shared by its
    users, a busy one fluidly.

    Attributes
    ----------
    weight
        ``[key, dim]``: ``alpha_k w_kd``.
    share
        Per tenant, ``share_o`` of each option (0 off the shared pools).
    """

    weight: np.ndarray
    share: tuple[np.ndarray, ...]

    def replicas(self, fp: FleetProblem, t: int, choice: Sequence[int]) -> np.ndarray:
        """Replicas per shared LLM pool that tenant ``t``'s ``choice`` pays in the relaxation."""
        p, c = fp.tenants[t], np.asarray(choice, dtype=int)
        key = fp.opt_fleet_key[t][c]
        on = key >= 0
        load = p.opt_key_load[c][on]  # type: ignore[index]
        fluid = self.weight[key[on], p.opt_key_dim[c][on]] * load  # type: ignore[index]
        floor = self.share[t][c][on] * replicas_for_load(load)
        return np.bincount(key[on], weights=fluid + floor, minlength=fp.n_keys)

    def priced(self, fp: FleetProblem, t: int, price_usd_per_h: np.ndarray) -> PlacementProblem:
        """Tenant ``t``'s relaxed subproblem at ``price`` (:func:`priced`) under this split."""
        return priced(fp.tenants[t], price_usd_per_h, self.option_usd_per_h(fp, t, price_usd_per_h))

    def option_usd_per_h(self, fp: FleetProblem, t: int, price_usd_per_h: np.ndarray) -> np.ndarray:
        """What each of tenant ``t``'s options pays in its subproblem for the shared LLM pools
        at ``price`` (0 off the pools)."""
        p = fp.tenants[t]
        key = fp.opt_fleet_key[t]
        on = key >= 0
        k = key[on]
        load = p.opt_key_load[on]  # type: ignore[index]
        replica_usd_per_h = fp.key_devices_per_replica[k] * price_usd_per_h[fp.key_device[k]]
        out = np.zeros(p.n_options)
        out[on] = replica_usd_per_h * (
            self.weight[k, p.opt_key_dim[on]] * load  # type: ignore[index]
            + self.share[t][on] * replicas_for_load(load)
        )
        return out


def key_split(fp: FleetProblem, start: Choices | None = None) -> KeySplit:
    """The split of :class:`KeySplit` for a run that starts from ``start``.

    Examples
    --------
    Two tenants with 0.2 replicas of prefill and of decode each on one pool: with the start
    plan the pool's single replica is shared as four equal ceilings (``alpha = 0``).

    >>> from hetopt.fleet.problem import fleet_from_problems
    >>> from hetopt.testing import Opt, tiny_problem
    >>> ops = {"prefill": [Opt("G", 0.1, key="g", load=0.2)],
    ...        "decode": [Opt("G", 0.1, key="g", load=0.2)]}
    >>> fp = fleet_from_problems([tiny_problem(ops, {"G": 10.0}, name=n) for n in "ab"])
    >>> key_split(fp).weight.tolist(), key_split(fp).share[0].tolist()
    ([[1.0, 0.0]], [0.0, 0.0])
    >>> split = key_split(fp, ((0, 1), (0, 1)))
    >>> split.weight.tolist(), split.share[0].tolist()
    ([[0.0, 0.0]], [0.25, 0.25])
    """
    used = np.zeros((fp.n_keys, KEY_DIMS), dtype=bool)
    for p, fk in zip(fp.tenants, fp.opt_fleet_key, strict=True):
        on = fk >= 0
        used[fk[on], p.opt_key_dim[on]] = True  # type: ignore[index]
    weight = used / np.maximum(used.sum(axis=1, keepdims=True), 1)
    share = tuple(np.zeros(p.n_options) for p in fp.tenants)
    if start is None or not fp.n_keys:
        return KeySplit(weight, share)
    load = evaluate_fleet(fp, start).key_load
    both = used.all(axis=1) & (load.max(axis=1, initial=0.0) > 0)
    weight[both] = np.eye(KEY_DIMS)[load[both].argmax(axis=1)]
    # users: (class, operator) pairs whose start option is on the pool, with their tenants
    users: dict[int, set[tuple[int, int]]] = {}
    ceilings = np.zeros(fp.n_keys)
    for t, choice in enumerate(start):
        p, c = fp.tenants[t], np.asarray(choice, dtype=int)
        key = fp.opt_fleet_key[t][c]
        for i in np.flatnonzero(key >= 0):
            users.setdefault(int(key[i]), set()).add((int(fp.tenant_class[t]), int(i)))
            ceilings[key[i]] += float(replicas_for_load(p.opt_key_load[c[i]]))  # type: ignore[index]
    size = np.bincount(fp.tenant_class)
    alpha = np.ones(fp.n_keys)
    for k, pairs in users.items():
        n_users = int(sum(int(size[cls]) for cls, _ in pairs))
        busiest = float(load[k].max())
        mean_ceiling = ceilings[k] / n_users
        need = float(replicas_for_load(busiest))
        if abs(busiest - mean_ceiling) > 1e-12:
            alpha[k] = max(0.0, min(1.0, (need - mean_ceiling) / (busiest - mean_ceiling)))
        for t in range(fp.n_tenants):
            for cls, op in pairs:
                if fp.tenant_class[t] == cls:
                    mine = (fp.tenants[t].opt_op == op) & (fp.opt_fleet_key[t] == k)
                    share[t][mine] = (1.0 - alpha[k]) / n_users
    return KeySplit(weight * alpha[:, None], share)


def solve_decomposed(
    fp: FleetProblem,
    options: SolverOptions,
    *,
    start: Choices | None = None,
    deadline_s: float | None = None,
    on_progress: OnProgress | None = None,
    progress: Callable[[str], None] | None = None,
    max_iterations: int = 50,
) -> DecompositionResult:
    """Run the decomposition (see the module docstring).

    Each round prices every tenant class at the current device prices (one subproblem each,
    skipped while its plan stays optimal), adds the plans as columns, takes the Lagrangian
    bound, lets the restricted master MIP pick the best fleet plan among the columns, and moves
    the prices (:class:`ColumnGeneration`).

    Parameters
    ----------
    fp
        The fleet problem.
    options
        ``backend`` solves the subproblems (``highs``, ``cbc`` or ``cpsat``); ``gap_rel`` is the
        stopping gap; ``time_limit_s`` bounds the whole run unless ``deadline_s`` is given.
    start
        A feasible plan (the greedy) to seed the columns and the incumbent.
    deadline_s
        ``time.perf_counter()`` value at which to stop.
    on_progress
        Called with the incumbent and bound after every round.
    progress
        Optional callback receiving one line per round.
    max_iterations
        Subgradient rounds at most.

    Returns
    -------
    DecompositionResult

    Examples
    --------
    Two identical tenants, each an LLM on two G devices and a light tool pooled on C (load
    0.6) or on G (load 0.1), with a single C: both tools share one G, 50 $/h.

    >>> from hetopt.fleet.problem import fleet_from_problems
    >>> from hetopt.testing import Opt, tiny_problem
    >>> def tenant(name):
    ...     ops = {"llm": [Opt("G", 0.1, dedicated=2)],
    ...            "tool": [Opt("C", 0.05, pool_load=0.6), Opt("G", 0.01, pool_load=0.1)]}
    ...     return tiny_problem(ops, {"G": 10.0, "C": 1.0}, name=name)
    >>> fp = fleet_from_problems([tenant("a"), tenant("b")], name="pair", inventory={"C": 1},
    ...                          templates=["t", "t"])
    >>> res = solve_decomposed(fp, SolverOptions(time_limit_s=20, gap_rel=1e-6))
    >>> round(res.objective_usd_per_h, 6), res.bound_usd_per_h <= res.objective_usd_per_h
    (50.0, True)
    """
    t0 = time.perf_counter()
    deadline = deadline_s if deadline_s is not None else t0 + options.time_limit_s
    # with shared LLM pools, the last sixth of the time adds their ceilings to the bound
    reserve_s = min(options.time_limit_s, deadline - t0) / 6 if fp.n_keys else 0.0
    until = deadline - reserve_s
    run = ColumnGeneration(fp, options, until, key_split(fp))  # fluid first (KeySplit)
    if start is not None:
        run.seed(start)
    prices = _Prices(np.zeros(fp.n_devices), best_mu=np.zeros(fp.n_devices))
    iteration = 0
    for iteration in range(1, max_iterations + 1):
        infeasible = run.price(prices, iteration)
        if infeasible is not None:
            return DecompositionResult(
                SolveStatus.INFEASIBLE,
                math.nan,
                run.best_lb,
                None,
                iteration,
                run.subproblems,
                infeasible,
            )
        if iteration == 1 and run.finite.any():
            run.escape_columns(fp.device_cost_usd_per_h + prices.mu)
        lb = run.bound(prices.mu)
        if time.perf_counter() < until:
            # with shared LLM pools the master only starts the search: the groups' search
            # re-fills the pools it leaves part-filled
            run.improve(iteration, cap_s=options.time_limit_s / 12 if fp.n_keys else 10.0)
            run.trim()
            run.search_groups(fp.device_cost_usd_per_h + prices.mu, progress)
            run.trim()
        gap = run.gap()
        (progress or _quiet)(
            f"round {iteration}: bound {run.best_lb:.3f} $/h, plan {run.best_ub:.3f} $/h, gap "
            f"{gap:.3%}, {run.subproblems} subproblems"
        )
        if on_progress is not None and math.isfinite(run.best_ub):
            on_progress(
                SolveProgress("decomposition", time.perf_counter() - t0, run.best_ub, run.best_lb)
            )
        moved = run.resplit()
        if gap <= options.gap_rel or time.perf_counter() >= until:
            break
        stepped = run.finite.any() and run.next_prices(prices, lb)
        if not (stepped or moved):
            # nothing left to price: the rest of the time goes to the master MIP, then to the
            # pool groups' neighbourhood search, then trimming
            left_s = until - time.perf_counter()
            cap_s = left_s - min(run.trim_reserve_s(), left_s / 2)
            if fp.n_keys:
                cap_s = min(cap_s, max(MIN_SOLVE_SLICE_S, left_s / 6))
            run.improve(iteration, cap_s=cap_s)
            run.trim()
            run.search_groups(fp.device_cost_usd_per_h + prices.mu, progress)
            run.trim()
            break
    run.raise_bound(deadline, progress)
    return run.result(iteration)


def _quiet(_msg: str) -> None:
    """No progress lines."""


@dataclass(frozen=True)
class _BoundRound:
    """The round that gave the best Lagrangian bound: what :func:`ceiling_bound` needs."""

    lb_usd_per_h: float
    price_usd_per_h: np.ndarray
    split: KeySplit
    class_bound_usd_per_h: dict[int, float]


@dataclass
class _Prices:
    """The inventory prices ``mu`` and the step state that moves them."""

    mu: np.ndarray
    best_mu: np.ndarray  # the prices of the best bound so far
    prev_mu: np.ndarray | None = None
    theta: float = 1.0  # Polyak step scale, halved after two rounds without a better bound
    stall: int = 0


class ColumnGeneration:
    """The state of one :func:`solve_decomposed` run: columns, incumbent and bound.

    Parameters
    ----------
    fp
        The fleet problem.
    options
        The run's solver options (subproblems solve with one thread to a tight gap).
    deadline
        ``time.perf_counter()`` value at which to stop.
    split
        How subproblems price the shared LLM pools (:func:`key_split`; default: fluidly).
    """

    def __init__(
        self,
        fp: FleetProblem,
        options: SolverOptions,
        deadline: float,
        split: KeySplit | None = None,
    ) -> None:
        self.fp, self.options, self.deadline = fp, options, deadline
        self.split = key_split(fp) if split is None else split
        self.split_from: Choices | None = None  # the plan the split was taken from
        self.split_moved = False  # the split changed since the last pricing round
        self.sub_options = replace(options, threads=1, gap_rel=min(options.gap_rel, 1e-6))
        self.sub_cap_s = max(1.0, options.time_limit_s / 4)
        self.classes = [int(c) for c in np.unique(fp.tenant_class)]
        self.rep = {c: int(np.flatnonzero(fp.tenant_class == c)[0]) for c in self.classes}
        self.count = {c: int((fp.tenant_class == c).sum()) for c in self.classes}
        self.finite = np.isfinite(fp.device_inventory)
        # Without binding inventory or memory, the first round's plan needs no master re-solves.
        self.coupled = (
            bool(self.finite.any())
            or fp.n_keys > 0
            or any(fp.memory_may_bind(j) for j in range(fp.n_devices))
        )
        self.inventory = np.where(self.finite, fp.device_inventory, 0.0)
        self.columns: dict[int, list[Column]] = {c: [] for c in self.classes}
        self.best_choices: Choices | None = None
        self.trimmed: Choices | None = None  # the last plan trim() returned
        self.trim_left_s = max(1.0, options.time_limit_s / 6)  # trimming's share of the run
        self.search_left_s = options.time_limit_s / 2  # the pool groups' search's share
        self.groups: GroupSearch | None = None  # its model, built on first use
        self.searched: Choices | None = None  # the last plan it returned
        self.best_ub = math.inf
        self.best_lb = -math.inf
        self.best_round: _BoundRound | None = None
        # per class: this round's plan and its proven bound at this round's prices
        self.current: dict[int, tuple[tuple[int, ...], float]] = {}
        self.complete = True  # every class solved at this round's prices: the bound is valid
        self.subproblems = 0

    def until(self, cap_s: float) -> Deadline:
        """The sooner of ``cap_s`` from now and the run's deadline."""
        return Deadline(min(time.perf_counter() + cap_s, self.deadline), cap_s)

    def addcolumn(self, c: int, choice: tuple[int, ...]) -> Column:
        """Class ``c``'s column for ``choice``, added unless already there."""
        for col in self.columns[c]:
            if col.choice == choice:
                return col
        col = column(self.fp, self.rep[c], choice)
        self.columns[c].append(col)
        return col

    def currentcolumn(self, c: int) -> Column:
        """The column of class ``c``'s plan this round."""
        return next(col for col in self.columns[c] if col.choice == self.current[c][0])

    def relaxed_use(self, c: int, col: Column) -> np.ndarray:
        """Devices per type that class ``c``'s ``col`` uses in the relaxation its subproblem
        solved: dedicated, pooled load, and what it pays of shared LLM pools
        (:meth:`KeySplit.replicas`), each at its fluid size."""
        fp = self.fp
        replicas = self.split.replicas(fp, self.rep[c], col.choice)
        keys = np.bincount(
            fp.key_device, weights=replicas * fp.key_devices_per_replica, minlength=fp.n_devices
        )
        return col.dedicated + col.load + keys

    def subproblem(self, c: int, price: np.ndarray, keep: np.ndarray | None = None) -> SolveResult:
        """Solve class ``c``'s subproblem at ``price`` (only its options in ``keep``) on its
        undominated options (:func:`undominated`); the plan indexes the tenant's options."""
        t = self.rep[c]
        sub = self.split.priced(self.fp, t, price)
        front = undominated(sub) if keep is None else keep & undominated(sub)
        self.subproblems += 1
        res = solve(sub.restrict(front), self.sub_options, deadline=self.until(self.sub_cap_s))
        if res.choice is None:
            return res
        kept = np.flatnonzero(front)
        return replace(res, choice=tuple(int(kept[o]) for o in res.choice))

    def seed(self, start: Choices) -> None:
        """Take a feasible ``start`` as the incumbent and its plans as the first columns."""
        ev = evaluate_fleet(self.fp, start)
        if ev.feasible:
            self.best_choices, self.best_ub = start, ev.objective_usd_per_h
            for t, choice in enumerate(start):
                self.addcolumn(int(self.fp.tenant_class[t]), tuple(choice))

    # -- pricing -------------------------------------------------------------------------------
    def price(self, prices: _Prices, iteration: int) -> str | None:
        """Solve every class's subproblem at ``prices``; returns the name of a tenant whose
        subproblem is infeasible (then so is the fleet), else None."""
        fp, mu = self.fp, prices.mu
        price = fp.device_cost_usd_per_h + mu
        self.complete = True
        for c in self.classes:
            if time.perf_counter() >= self.deadline and (
                self.best_choices is not None or iteration > 1
            ):
                self.complete = False  # out of time: this round gives no bound
                break
            if self._still_optimal(c, prices):
                continue
            res = self.subproblem(c, price)
            if not res.has_solution:
                if res.status is SolveStatus.INFEASIBLE:
                    return fp.tenant_names[self.rep[c]]
                self.current.pop(c, None)
                continue
            assert res.choice is not None
            self.addcolumn(c, res.choice)
            bound = res.bound if math.isfinite(res.bound) else -math.inf
            self.current[c] = (res.choice, bound)
        self.split_moved = False
        return None

    def _still_optimal(self, c: int, prices: _Prices) -> bool:
        """True when class ``c``'s last plan stays optimal: only devices it does not use got
        dearer since its last solve."""
        if c not in self.current or prices.prev_mu is None or self.split_moved:
            return False
        used = self.relaxed_use(c, self.currentcolumn(c)) > 0
        dmu = prices.mu - prices.prev_mu
        return not (dmu < -1e-12).any() and not (used & (np.abs(dmu) > 1e-12)).any()

    def escape_columns(self, price: np.ndarray) -> None:
        """Add each class's plan without the limited types its first plan uses, so the master
        can move tenants off a scarce type at their true cost."""
        fp = self.fp
        for c in self.classes:
            if c not in self.current or time.perf_counter() >= self.deadline:
                continue
            scarce = self.finite & (self.relaxed_use(c, self.currentcolumn(c)) > 0)
            if not scarce.any():
                continue
            p = fp.tenants[self.rep[c]]
            keep = ~scarce[p.opt_device]
            if not all(keep[p.opt_op == i].any() for i in range(p.n_ops)):
                continue
            alt = self.subproblem(c, price, keep)
            if alt.choice is not None:
                self.addcolumn(c, alt.choice)

    def bound(self, mu: np.ndarray) -> float:
        """This round's Lagrangian bound (-inf unless every class was solved); raises the best."""
        if not (self.complete and len(self.current) == len(self.classes)):
            return -math.inf
        lb = sum(self.count[c] * self.current[c][1] for c in self.classes) - float(
            mu @ self.inventory
        )
        if lb > self.best_lb:
            price = self.fp.device_cost_usd_per_h + mu
            bounds = {c: self.current[c][1] for c in self.classes}
            self.best_round = _BoundRound(lb, price, self.split, bounds)
        self.best_lb = max(self.best_lb, lb)
        return lb

    def raise_bound(self, deadline: float, progress: Callable[[str], None] | None = None) -> None:
        """Add the shared LLM pools' ceilings to the best round's bound
        (:func:`~hetopt.fleet.ceilings.ceiling_bound`, until ``deadline``)."""
        fp, best = self.fp, self.best_round
        if not fp.n_keys or best is None or self.gap() <= self.options.gap_rel:
            return
        if deadline - time.perf_counter() < MIN_SOLVE_SLICE_S:
            return
        cost, pay = {}, {}
        for c in self.classes:
            t = self.rep[c]
            pay[c] = best.split.option_usd_per_h(fp, t, best.price_usd_per_h)
            cost[c] = priced(fp.tenants[t], best.price_usd_per_h, pay[c]).opt_fixed_usd_per_h()
        cls = [int(c) for c in fp.tenant_class]
        res = ceiling_bound(
            fp,
            [cost[c] for c in cls],
            [pay[c] for c in cls],
            [best.class_bound_usd_per_h[c] for c in cls],
            fp.key_devices_per_replica * best.price_usd_per_h[fp.key_device],
            deadline,
            self.options,
        )
        self.best_lb = max(self.best_lb, best.lb_usd_per_h + res.usd_per_h)
        (progress or _quiet)(
            f"pool ceilings: bound {self.best_lb:.3f} $/h (+{res.usd_per_h:.3f} over "
            f"{res.families} pool families, {res.closed} proven), gap {self.gap():.3%}"
        )

    # -- the restricted master -----------------------------------------------------------------
    def improve(self, iteration: int, cap_s: float = 10.0) -> None:
        """Try this round's plans as a fleet plan, then let the restricted master MIP pick the
        best plan among all columns under the exact coupling (for ``cap_s`` at most)."""
        fp = self.fp
        tenant_class = [int(fp.tenant_class[t]) for t in range(fp.n_tenants)]
        if all(c in self.current for c in tenant_class):
            plan = tuple(self.current[c][0] for c in tenant_class)
            ev = evaluate_fleet(fp, plan)
            if ev.feasible and ev.objective_usd_per_h < self.best_ub:
                self.best_ub, self.best_choices = ev.objective_usd_per_h, plan
        if self.coupled or iteration == 1:
            master = solve_master(
                fp, self.columns, self.options, self.best_choices, self.until(cap_s)
            )
            if master is not None:
                ev = evaluate_fleet(fp, master)
                if ev.feasible and ev.objective_usd_per_h < self.best_ub - 1e-9:
                    self.best_ub, self.best_choices = ev.objective_usd_per_h, master

    def search_groups(
        self, price_usd_per_h: np.ndarray, progress: Callable[[str], None] | None = None
    ) -> None:
        """Re-solve a new incumbent one pool group at a time with the fleet MILP
        (:class:`~hetopt.fleet.neighbourhood.GroupSearch`; half the time limit at most over the
        whole run, leaving trimming what it has left); the candidates are each class's
        columns, the incumbent's options and each operator's :data:`CANDIDATES_PER_OP`
        cheapest undominated options at ``price``. The model is built again only when the
        incumbent uses an option it lacks."""
        fp = self.fp
        if not fp.n_keys or self.best_choices is None or self.best_choices == self.searched:
            return
        now = time.perf_counter()
        until = min(
            now + self.search_left_s,
            self.deadline - min(max(0.0, self.trim_left_s), (self.deadline - now) / 4),
        )
        if until - now < MIN_SOLVE_SLICE_S:
            return
        if (
            self.groups is None
            or not self.groups.ready
            or not self.groups.covers(self.best_choices)
        ):
            self.groups = GroupSearch(fp, self.candidates(price_usd_per_h), self.options, until)
        plan = self.groups.search(self.best_choices, until, progress) if self.groups.ready else None
        self.search_left_s -= time.perf_counter() - now
        self.searched = self.best_choices  # searched: not again unless the incumbent changes
        if plan is None:
            return
        ev = evaluate_fleet(fp, plan)
        if ev.feasible and ev.objective_usd_per_h < self.best_ub - 1e-9:
            self.best_ub, self.best_choices = ev.objective_usd_per_h, plan
            self.searched = plan
            for t, choice in enumerate(plan):
                self.addcolumn(int(fp.tenant_class[t]), tuple(choice))

    def candidates(self, price_usd_per_h: np.ndarray) -> list[np.ndarray]:
        """Per tenant, the options :meth:`search_groups` may give it (one mask per class)."""
        fp = self.fp
        masks: dict[int, np.ndarray] = {}
        for c in self.classes:
            t = self.rep[c]
            p = fp.tenants[t]
            sub = self.split.priced(fp, t, price_usd_per_h)
            cost, front = sub.opt_fixed_usd_per_h(), undominated(sub)
            mask = np.zeros(p.n_options, dtype=bool)
            for i in range(p.n_ops):
                on = np.flatnonzero((p.opt_op == i) & front)
                mask[on[np.argsort(cost[on], kind="stable")[:CANDIDATES_PER_OP]]] = True
            for col in self.columns[c]:
                mask[list(col.choice)] = True
            masks[c] = mask
        if self.best_choices is not None:
            for t, plan in enumerate(self.best_choices):
                masks[int(fp.tenant_class[t])][list(plan)] = True
        return [masks[int(fp.tenant_class[t])] for t in range(fp.n_tenants)]

    def trim(self) -> None:
        """Empty part-filled replicas of the incumbent's shared LLM pools where that makes it
        cheaper (:func:`~hetopt.fleet.trim.trim_pools`; a sixth of the time limit at most over
        the whole run); the trimmed plan's tenant plans become columns for the master."""
        fp = self.fp
        if not self.trim_reserve_s():
            return
        assert self.best_choices is not None
        start = time.perf_counter()
        plan = trim_pools(fp, self.best_choices, min(start + self.trim_left_s, self.deadline))
        self.trim_left_s -= time.perf_counter() - start
        self.trimmed = plan
        ev = evaluate_fleet(fp, plan)
        if ev.feasible and ev.objective_usd_per_h < self.best_ub - 1e-9:
            self.best_ub, self.best_choices = ev.objective_usd_per_h, plan
            for t, choice in enumerate(plan):
                self.addcolumn(int(fp.tenant_class[t]), tuple(choice))

    def trim_reserve_s(self) -> float:
        """The time :meth:`trim` would take at most now: 0 unless the incumbent changed since
        it last ran and trimming has time left."""
        if not self.fp.n_keys or self.best_choices is None or self.best_choices == self.trimmed:
            return 0.0
        return max(0.0, self.trim_left_s)

    def resplit(self) -> bool:
        """Take the shared LLM pools' split (:func:`key_split`) from the incumbent when it has
        changed since the split was last taken; True when the split moved (any split gives a
        valid bound, so the best bound so far stands)."""
        if not self.fp.n_keys or self.best_choices is None:
            return False
        if self.best_choices == self.split_from:
            return False
        self.split = key_split(self.fp, self.best_choices)
        self.split_from = self.best_choices
        self.split_moved = True
        return True

    def gap(self) -> float:
        """Relative gap between the incumbent and the best bound."""
        return (self.best_ub - self.best_lb) / max(abs(self.best_ub), 1e-9)

    # -- prices --------------------------------------------------------------------------------
    def next_prices(self, prices: _Prices, lb: float) -> bool:
        """Move the prices; False when the subgradient vanishes (nothing left to price).

        The master LP's inventory duals (column generation), smoothed towards the prices of the
        best bound so far (Wentges); a Polyak subgradient step when the LP gives none.
        """
        mu = prices.mu
        if lb >= self.best_lb - 1e-9:
            prices.best_mu = mu.copy()
        prices.prev_mu = mu
        duals = master_prices(
            self.fp,
            self.columns,
            self.options,
            self.until(max(self.deadline - time.perf_counter(), MIN_SOLVE_SLICE_S)),
        )
        if duals is not None and not np.allclose(duals, mu):
            prices.mu = 0.5 * duals + 0.5 * prices.best_mu
            if np.allclose(prices.mu, prices.prev_mu):
                prices.mu = duals
            return True
        return self._subgradient_step(prices, lb)

    def _subgradient_step(self, prices: _Prices, lb: float) -> bool:
        """A Polyak step along the inventory's excess use; False when there is none."""
        mu = prices.mu
        usage = np.zeros(self.fp.n_devices)
        for c in self.classes:
            if c in self.current:
                usage += self.count[c] * self.relaxed_use(c, self.currentcolumn(c))
        g = np.where(self.finite, usage - self.inventory, 0.0)
        g = np.where((mu <= 0) & (g < 0), 0.0, g)
        if not (np.abs(g) > 1e-9).any():
            return False
        if lb < self.best_lb - 1e-9:
            prices.stall += 1
            if prices.stall >= 2:
                prices.theta, prices.stall = prices.theta / 2, 0
        target = self.best_ub if math.isfinite(self.best_ub) else max(lb, 0.0) * 1.05 + 1.0
        step = prices.theta * max(target - lb, 1e-6) / float(g @ g)
        prices.mu = np.maximum(0.0, mu + step * g)
        return True

    # -- result --------------------------------------------------------------------------------
    def result(self, iteration: int) -> DecompositionResult:
        """The best plan found with its bound, or no solution."""
        if self.best_choices is None:
            return DecompositionResult(
                SolveStatus.NO_SOLUTION, math.nan, self.best_lb, None, iteration, self.subproblems
            )
        gap = self.gap()
        status = SolveStatus.OPTIMAL if gap <= self.options.gap_rel else SolveStatus.FEASIBLE
        return DecompositionResult(
            status, self.best_ub, self.best_lb, self.best_choices, iteration, self.subproblems
        )
