"""Pool trimming: a local search that takes the last, part-filled replica out of shared LLM pools.

A fleet plan pays every shared LLM pool ``ceil(L)`` replicas for its load ``L``. Whatever the
plan's search saw, the ceilings it ends with are often expensive: on the 2,000-operator
benchmark fleet the last replicas of 58 pools hold about 5 % of the plan's cost. This search
looks at one pool at a time, cheapest last replica to empty first, and moves operators off it
to their next-best options (other pools with room, or other devices) until the last replica
is empty. The move is kept only when the independent evaluation
(:func:`~hetopt.fleet.evaluate.evaluate_fleet`) finds the whole plan feasible (SLA, memory,
inventory) and cheaper; otherwise the plan is left as it was.

It is a heuristic on the incumbent: it lowers the plan's cost, never the bound, and never
claims optimality. The decomposition (:mod:`hetopt.fleet.decomposition`) runs it on its start
and on each new incumbent.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from hetopt.fleet.evaluate import Choices, evaluate_fleet
from hetopt.fleet.heuristics import TenantLatency, meets_sla, option_cost_usd_per_h
from hetopt.fleet.problem import FleetProblem
from hetopt.problem import replicas_for_load

_TOL = 1e-9


def _users(fp: FleetProblem, choices: list[list[int]], key: int) -> list[tuple[int, int]]:
    """``(tenant, operator)`` of every operator whose option is on pool ``key``."""
    out: list[tuple[int, int]] = []
    for t, choice in enumerate(choices):
        on = fp.opt_fleet_key[t][np.asarray(choice, dtype=int)] == key
        out.extend((t, int(i)) for i in np.flatnonzero(on))
    return out


class _Mover:
    """Prices moving one operator off its pool, against the pools' load as it stands."""

    def __init__(self, fp: FleetProblem, choices: list[list[int]], key_load: np.ndarray) -> None:
        self.fp, self.choices = fp, choices
        self.key_load = key_load.copy()
        self.replica_usd = fp.key_usd_per_h()
        self.own = [option_cost_usd_per_h(p, fp.device_cost_usd_per_h) for p in fp.tenants]
        self._latency: dict[int, TenantLatency] = {}

    def latency(self, t: int) -> TenantLatency:
        cls = int(self.fp.tenant_class[t])
        if cls not in self._latency:
            self._latency[cls] = TenantLatency(self.fp.tenants[t])
        return self._latency[cls]

    def key_usd(self, t: int, opts: np.ndarray) -> np.ndarray:
        """What each of ``opts`` adds to its own shared pool's ceiling at the present load."""
        p, key = self.fp.tenants[t], self.fp.opt_fleet_key[t][opts]
        out = np.zeros(len(opts))
        on = np.flatnonzero(key >= 0)
        if len(on):
            k, dim = key[on], p.opt_key_dim[opts[on]]  # type: ignore[index]
            after = self.key_load[k].copy()
            after[np.arange(len(on)), dim] += p.opt_key_load[opts[on]]  # type: ignore[index]
            added = replicas_for_load(after.max(axis=1)) - replicas_for_load(
                self.key_load[k].max(axis=1)
            )
            out[on] = added * self.replica_usd[k]
        return out

    def best_move(self, t: int, op: int, key: int) -> tuple[int, float] | None:
        """The cheapest option of ``op`` off pool ``key`` that keeps the tenant's SLA, with
        what it costs more than the present option's own cost (the pool's saving aside)."""
        p = self.fp.tenants[t]
        choice = self.choices[t]
        now = choice[op]
        opts = np.flatnonzero(
            (p.opt_op == op) & (self.fp.opt_fleet_key[t] != key) & np.isfinite(self.own[t])
        )
        if not len(opts):
            return None
        delta = self.own[t][opts] + self.key_usd(t, opts) - self.own[t][now]
        lat_eval = self.latency(t)
        lats = [float(p.opt_latency_s[o]) for o in choice]
        devs = [int(p.opt_device[o]) for o in choice]
        for j in np.argsort(delta, kind="stable"):
            o = int(opts[j])
            lats[op], devs[op] = float(p.opt_latency_s[o]), int(p.opt_device[o])
            if meets_sla(p, lat_eval.e2e(lats, devs)):
                return o, float(delta[j])
        return None

    def take(self, t: int, op: int, new: int) -> None:
        """Move ``op`` of tenant ``t`` to option ``new`` and update the pools' load."""
        p, fk = self.fp.tenants[t], self.fp.opt_fleet_key[t]
        for o, sign in ((self.choices[t][op], -1.0), (new, 1.0)):
            if fk[o] >= 0:
                self.key_load[fk[o], p.opt_key_dim[o]] += sign * p.opt_key_load[o]  # type: ignore[index]
        self.choices[t][op] = new


def _empty_last_replica(
    fp: FleetProblem, choices: list[list[int]], key_load: np.ndarray, key: int
) -> list[list[int]] | None:
    """A plan with pool ``key``'s last replica emptied, if the moves' estimated cost stays
    under one replica's price; None otherwise."""
    level = float(replicas_for_load(key_load[key].max())) - 1.0  # replicas to keep
    mover = _Mover(fp, [list(c) for c in choices], key_load)
    saving = float(mover.replica_usd[key])
    users = _users(fp, mover.choices, key)
    first: list[tuple[float, int, int]] = []
    for t, op in users:
        move = mover.best_move(t, op, key)
        if move is not None:
            load = float(fp.tenants[t].opt_key_load[mover.choices[t][op]])  # type: ignore[index]
            first.append((move[1] / max(load, _TOL), t, op))
    spent = 0.0
    for _, t, op in sorted(first):
        if (mover.key_load[key] <= level + _TOL).all():
            break
        p = fp.tenants[t]
        dim = int(p.opt_key_dim[mover.choices[t][op]])  # type: ignore[index]
        if mover.key_load[key, dim] <= level + _TOL:
            continue  # this capacity is already within the kept replicas
        move = mover.best_move(t, op, key)  # again: earlier moves may have filled a pool
        if move is None:
            continue
        spent += move[1]
        if spent >= saving - _TOL:
            return None
        mover.take(t, op, move[0])
    if (mover.key_load[key] > level + _TOL).any():
        return None
    return mover.choices


def trim_pools(
    fp: FleetProblem,
    start: Choices,
    deadline_s: float,
    progress: Callable[[str], None] | None = None,
) -> Choices:
    """Empty the last replica of shared LLM pools while that makes the fleet plan cheaper.

    Pools are tried in order of their last replica's price per unit of load on it (the
    cheapest to empty and dearest to keep first); a pool that cannot be trimmed is not tried
    again until another move changes the plan. Stops at ``deadline_s``
    (``time.perf_counter()``) or when no pool can be trimmed.

    Parameters
    ----------
    fp
        The fleet problem.
    start
        A feasible fleet plan (one option index per operator, per tenant).
    deadline_s
        ``time.perf_counter()`` value at which to stop.
    progress
        Optional callback receiving one line per kept move.

    Returns
    -------
    Choices
        A plan that evaluates feasible and costs no more than ``start`` (``start`` itself
        when nothing helps or ``start`` is infeasible).

    Examples
    --------
    Two tenants whose LLM sits on pool ``g`` (0.6 replicas each, 10 $/h a replica, so two
    replicas: 20 $/h) or, at 2 $/h more, on pool ``h`` (4 $/h a replica, 0.3 each). Moving one
    tenant's LLM to ``h`` takes ``g`` from two replicas to one (16 $/h); moving the other too
    empties ``g``, and both fit one replica of ``h``: 8 $/h.

    >>> from hetopt.fleet.problem import fleet_from_problems
    >>> from hetopt.testing import Opt, tiny_problem
    >>> def tenant(name):
    ...     ops = {"llm": [Opt("G", 0.1, key="g", load=0.6),
    ...                    Opt("H", 0.1, key="h", load=0.3, direct_usd_per_h=2.0)]}
    ...     return tiny_problem(ops, {"G": 10.0, "H": 4.0}, outside_keys={"g", "h"}, name=name)
    >>> fp = fleet_from_problems([tenant("a"), tenant("b")])
    >>> evaluate_fleet(fp, ((0,), (0,))).objective_usd_per_h
    20.0
    >>> plan = trim_pools(fp, ((0,), (0,)), time.perf_counter() + 10)
    >>> plan, evaluate_fleet(fp, plan).objective_usd_per_h
    (((1,), (1,)), 8.0)
    """
    choices = [list(c) for c in start]
    ev = evaluate_fleet(fp, start)
    if not ev.feasible or not fp.n_keys:
        return start
    best = ev.objective_usd_per_h
    failed: set[int] = set()
    while time.perf_counter() < deadline_s:
        busiest = ev.key_load.max(axis=1, initial=0.0)
        need = replicas_for_load(busiest)
        fill = busiest - (need - 1.0)  # load on the last replica
        keys = [k for k in np.flatnonzero(need > 0) if int(k) not in failed]
        if not keys:
            break
        price = fp.key_usd_per_h()
        keys.sort(key=lambda k: -price[k] / max(float(fill[k]), _TOL))
        kept = False
        for k in keys:
            if time.perf_counter() >= deadline_s:
                break
            plan = _empty_last_replica(fp, choices, ev.key_load, int(k))
            if plan is not None:
                trial = evaluate_fleet(fp, plan)
                if trial.feasible and trial.objective_usd_per_h < best - _TOL:
                    if progress is not None:
                        progress(
                            f"trim: pool {int(k)} loses a replica, plan "
                            f"{best:.3f} -> {trial.objective_usd_per_h:.3f} $/h"
                        )
                    choices, ev, best = plan, trial, trial.objective_usd_per_h
                    failed.clear()
                    kept = True
                    break
            failed.add(int(k))
        if not kept:
            break
    out = tuple(tuple(c) for c in choices)
    return out if math.isfinite(best) else start
