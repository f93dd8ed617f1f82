"""Lagrangian decomposition of the fleet: per-tenant subproblems coupled by shared pools.

Relaxing the fleet's coupling rows (inventory with multipliers ``mu_j >= 0``; shared pools
priced at their load, without the ceiling and the one-device minimum; shared LLM pools priced
at their load too, without the ceiling, see :func:`key_weights`; shared footprints) leaves one
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

Why it wins at scale: the subproblems are small and solved to optimality, so their sum is a
much stronger bound than the LP relaxation of the monolithic model (the rounding of shared
pools and shared LLM pools is the only slack: at most one device per pool and one replica
per shared LLM pool), and the master only chooses among a few plans per tenant.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from hetopt.fleet.evaluate import Choices, evaluate_fleet
from hetopt.fleet.master import Column, column, master_prices, solve_master
from hetopt.fleet.problem import FleetProblem
from hetopt.models.evaluate import KEY_DIMS
from hetopt.problem import PlacementProblem
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
        (:func:`fluid_key_usd_per_h`); None: no option is on one.

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


def key_weights(fp: FleetProblem, start: Choices | None = None) -> np.ndarray:
    """How the subproblems split each shared LLM pool's replica price over its capacities.

    A pool of ``m_k`` replicas covers the fleet's load on each capacity ``d``, so for weights
    ``w_kd >= 0`` with ``sum_d w_kd = 1``

        m_k  >=  max_d L_kd  >=  sum_d w_kd L_kd  =  sum_t sum_d w_kd L_tkd,

    which is separable by tenant: an option of load ``l`` on capacity ``d`` of pool ``k`` pays
    ``w_kd dpr_k (c_j + mu_j) l`` in its subproblem and ``LB(mu)`` stays a lower bound for any
    such weights. Weight 1 on *every* capacity would charge ``sum_d L_kd``, which exceeds
    ``max_d L_kd`` once both capacities carry load (aggregated serving), so it is not a bound.
    The weights are fixed for a whole run (the subproblems' prices move only with ``mu``).

    A pool whose options all load one capacity puts weight 1 on it (the exact fluid cost). A
    pool with both: weight 1 on the busier capacity of ``start`` (the plan the run starts
    from, whose busiest capacity is likely the optimum's), else half on each.

    Returns
    -------
    numpy.ndarray
        ``[key, dim]`` weights, each row summing to 1.

    Examples
    --------
    >>> import numpy as np
    >>> from hetopt.fleet.problem import fleet_from_problems
    >>> from hetopt.testing import Opt, tiny_problem
    >>> ops = {"prefill": [Opt("G", 0.1, key="g", load=0.2, dim="chunk")],
    ...        "decode": [Opt("G", 0.1, key="g", load=0.7)]}
    >>> fp = fleet_from_problems([tiny_problem(ops, {"G": 10.0})])
    >>> key_weights(fp).tolist(), key_weights(fp, ((0, 1),)).tolist()
    ([[0.5, 0.5]], [[1.0, 0.0]])
    """
    used = np.zeros((fp.n_keys, KEY_DIMS), dtype=bool)
    for p, fk in zip(fp.tenants, fp.opt_fleet_key, strict=True):
        on = fk >= 0
        used[fk[on], p.opt_key_dim[on]] = True  # type: ignore[index]
    weight = used / np.maximum(used.sum(axis=1, keepdims=True), 1)
    if start is not None:
        load = evaluate_fleet(fp, start).key_load
        both = used.all(axis=1) & (load.max(axis=1, initial=0.0) > 0)
        weight[both] = np.eye(KEY_DIMS)[load[both].argmax(axis=1)]
    return weight


def fluid_key_usd_per_h(
    fp: FleetProblem, t: int, price_usd_per_h: np.ndarray, weight: np.ndarray
) -> np.ndarray:
    """What each of tenant ``t``'s options pays in its subproblem for its load on the fleet's
    shared LLM pools: ``w_kd dpr_k price_j load`` (:func:`key_weights`), 0 off the pools."""
    p = fp.tenants[t]
    key = fp.opt_fleet_key[t]
    on = key >= 0
    out = np.zeros(p.n_options)
    k = key[on]
    replica_usd_per_h = fp.key_devices_per_replica[k] * price_usd_per_h[fp.key_device[k]]
    out[on] = (
        replica_usd_per_h * weight[k, p.opt_key_dim[on]] * p.opt_key_load[on]  # type: ignore[index]
    )
    return out


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
    run = ColumnGeneration(fp, options, deadline, key_weights(fp, start))
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
        if time.perf_counter() < deadline:
            run.improve(iteration)
        gap = run.gap()
        (progress or _quiet)(
            f"round {iteration}: bound {run.best_lb:.3f} $/h, plan {run.best_ub:.3f} $/h, gap "
            f"{gap:.3%}, {run.subproblems} subproblems"
        )
        if on_progress is not None and math.isfinite(run.best_ub):
            on_progress(
                SolveProgress("decomposition", time.perf_counter() - t0, run.best_ub, run.best_lb)
            )
        if gap <= options.gap_rel or not run.finite.any() or time.perf_counter() >= deadline:
            break
        if not run.next_prices(prices, lb):
            break
    return run.result(iteration)


def _quiet(_msg: str) -> None:
    """No progress lines."""


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
    key_weight
        How subproblems price the shared LLM pools' capacities (:func:`key_weights`; default
        from no start plan).
    """

    def __init__(
        self,
        fp: FleetProblem,
        options: SolverOptions,
        deadline: float,
        key_weight: np.ndarray | None = None,
    ) -> None:
        self.fp, self.options, self.deadline = fp, options, deadline
        self.key_weight = key_weights(fp) if key_weight is None else key_weight
        self.sub_options = replace(options, threads=1, gap_rel=min(options.gap_rel, 1e-6))
        self.sub_cap_s = max(1.0, options.time_limit_s / 4)
        self.classes = [int(c) for c in np.unique(fp.tenant_class)]
        self.rep = {c: int(np.flatnonzero(fp.tenant_class == c)[0]) for c in self.classes}
        self.count = {c: int((fp.tenant_class == c).sum()) for c in self.classes}
        self.finite = np.isfinite(fp.device_inventory)
        # Without binding inventory or memory, the first round's plan needs no master re-solves.
        self.coupled = bool(self.finite.any()) or any(
            fp.memory_may_bind(j) for j in range(fp.n_devices)
        )
        self.inventory = np.where(self.finite, fp.device_inventory, 0.0)
        self.columns: dict[int, list[Column]] = {c: [] for c in self.classes}
        self.best_choices: Choices | None = None
        self.best_ub = math.inf
        self.best_lb = -math.inf
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

    def relaxed_use(self, col: Column) -> np.ndarray:
        """Devices per type that ``col`` uses in the relaxation its subproblem solved:
        dedicated, pooled load, and its weighted load on shared LLM pools
        (``dpr_k sum_d w_kd L_kd``), each at its fluid size."""
        fp = self.fp
        replicas = (col.key_load * self.key_weight).sum(axis=1)
        keys = np.bincount(
            fp.key_device, weights=replicas * fp.key_devices_per_replica, minlength=fp.n_devices
        )
        return col.dedicated + col.load + keys

    def subproblem(self, c: int, price: np.ndarray, keep: np.ndarray | None = None) -> SolveResult:
        """Solve class ``c``'s subproblem at ``price`` (only its options in ``keep``)."""
        t = self.rep[c]
        p = self.fp.tenants[t]
        fluid = fluid_key_usd_per_h(self.fp, t, price, self.key_weight)
        if keep is not None:
            p, fluid = p.restrict(keep), fluid[keep]
        self.subproblems += 1
        return solve(priced(p, price, fluid), self.sub_options, deadline=self.until(self.sub_cap_s))

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
        return None

    def _still_optimal(self, c: int, prices: _Prices) -> bool:
        """True when class ``c``'s last plan stays optimal: only devices it does not use got
        dearer since its last solve."""
        if c not in self.current or prices.prev_mu is None:
            return False
        used = self.relaxed_use(self.currentcolumn(c)) > 0
        dmu = prices.mu - prices.prev_mu
        return not (dmu < -1e-12).any() and not (used & (np.abs(dmu) > 1e-12)).any()

    def escape_columns(self, price: np.ndarray) -> None:
        """Add each class's plan without the limited types its first plan uses, so the master
        can move tenants off a scarce type at their true cost."""
        fp = self.fp
        for c in self.classes:
            if c not in self.current or time.perf_counter() >= self.deadline:
                continue
            scarce = self.finite & (self.relaxed_use(self.currentcolumn(c)) > 0)
            if not scarce.any():
                continue
            p = fp.tenants[self.rep[c]]
            keep = ~scarce[p.opt_device]
            if not all(keep[p.opt_op == i].any() for i in range(p.n_ops)):
                continue
            alt = self.subproblem(c, price, keep)
            if alt.choice is not None:
                kept = np.flatnonzero(keep)
                self.addcolumn(c, tuple(int(kept[o]) for o in alt.choice))

    def bound(self, mu: np.ndarray) -> float:
        """This round's Lagrangian bound (-inf unless every class was solved); raises the best."""
        if not (self.complete and len(self.current) == len(self.classes)):
            return -math.inf
        lb = sum(self.count[c] * self.current[c][1] for c in self.classes) - float(
            mu @ self.inventory
        )
        self.best_lb = max(self.best_lb, lb)
        return lb

    # -- the restricted master -----------------------------------------------------------------
    def improve(self, iteration: int) -> None:
        """Try this round's plans as a fleet plan, then let the restricted master MIP pick the
        best plan among all columns under the exact coupling."""
        fp = self.fp
        tenant_class = [int(fp.tenant_class[t]) for t in range(fp.n_tenants)]
        if all(c in self.current for c in tenant_class):
            plan = tuple(self.current[c][0] for c in tenant_class)
            ev = evaluate_fleet(fp, plan)
            if ev.feasible and ev.objective_usd_per_h < self.best_ub:
                self.best_ub, self.best_choices = ev.objective_usd_per_h, plan
        if self.coupled or iteration == 1:
            master = solve_master(
                fp, self.columns, self.options, self.best_choices, self.until(10.0)
            )
            if master is not None:
                ev = evaluate_fleet(fp, master)
                if ev.feasible and ev.objective_usd_per_h < self.best_ub - 1e-9:
                    self.best_ub, self.best_choices = ev.objective_usd_per_h, master

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
                usage += self.count[c] * self.relaxed_use(self.currentcolumn(c))
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
