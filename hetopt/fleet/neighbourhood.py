"""Pool-group neighbourhood search: re-solve the tenants of one pool group at a time.

The restricted master (:mod:`hetopt.fleet.master`) recombines whole tenant plans, and pool
trimming (:mod:`hetopt.fleet.trim`) moves one operator at a time; neither can re-fill a
group of shared LLM pools, where the cheapest plan moves a few operators of several tenants
at once so that each pool's last replica is full. This search does that with the fleet MILP
itself (:func:`hetopt.fleet.models.build_milp`), on a few candidate options per operator:

* a *pool group* is a set of tenants linked through shared LLM pools (two tenants are linked
  when their options share a pool); no pool is shared between groups, so one group's pools
  can be re-filled while every other tenant keeps its plan;
* the MILP is built once per candidate set, over every tenant's candidates (the same set for
  identical tenants, so the model's symmetry rows stay valid);
* each step frees one group (its tenants may take any candidate), fixes every other tenant
  at the incumbent, starts HiGHS from the incumbent and gives it a slice of the time; after
  the passes over the groups, one last step frees every tenant at once (groups still trade
  the inventory and the shared device pools);
* the step's plan is kept only when the exact evaluation
  (:func:`~hetopt.fleet.evaluate.evaluate_fleet`) finds it feasible and cheaper.

It is a heuristic on the incumbent: it lowers the plan's cost, never the bound (the MILP's
own bound holds for the restricted, partly fixed model only, so it is not reported).
On the 2,000-operator benchmark fleet (``benchmarks/bench_fleet.py``, six groups), a 60 s
decomposition ends at 1015 $/h with it, 1024 $/h without.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from networkx.utils import UnionFind

from hetopt.fleet.evaluate import Choices, evaluate_fleet
from hetopt.fleet.models import BuildInterrupted, FleetMilp, build_milp
from hetopt.fleet.problem import FleetProblem
from hetopt.models.solution import read_choice
from hetopt.solvers import get_backend
from hetopt.solvers.base import MIN_SOLVE_SLICE_S, Deadline, SolverOptions

STEP_CAP_S = 10.0
"""Longest slice one group's step gets: shorter steps make more passes (2000x20, 300 s limit:
the plan reached 1013.7 $/h at 98 s with 10 s steps, at 127 s with 25 s ones)."""

GROUP_PASSES = 2
"""Passes over the groups before every tenant is freed at once: later passes gain little
(2000x20, 300 s limit: passes 3 to 5 took 1014.0 to 1013.6 $/h)."""


def pool_groups(fp: FleetProblem) -> list[np.ndarray]:
    """Tenants linked through shared LLM pools, one array per group, largest first; tenants
    with no option on a shared pool are left out.

    Examples
    --------
    Tenants ``a`` and ``b`` can both use pool ``g``; ``c`` uses only ``h``.

    >>> from hetopt.fleet.problem import fleet_from_problems
    >>> from hetopt.testing import Opt, tiny_problem
    >>> def tenant(name, key):
    ...     ops = {"llm": [Opt("G", 0.1, key=key, load=0.5)]}
    ...     return tiny_problem(ops, {"G": 10.0}, outside_keys={key}, name=name)
    >>> fp = fleet_from_problems([tenant("a", "g"), tenant("b", "g"), tenant("c", "h")])
    >>> [g.tolist() for g in pool_groups(fp)]
    [[0, 1], [2]]
    """
    linked = UnionFind()
    for t, fk in enumerate(fp.opt_fleet_key):
        keys = np.unique(fk[fk >= 0]).tolist()
        if keys:
            linked.union(("tenant", t), *(("pool", k) for k in keys))
    groups = (
        np.array(sorted(t for kind, t in members if kind == "tenant"))
        for members in linked.to_sets()
    )
    return sorted(groups, key=lambda g: (-len(g), int(g[0])))


def canonical(fp: FleetProblem, choices: Choices) -> Choices:
    """``choices`` with the plans of identical tenants reordered so that their first
    operator's option never decreases along a class: the order the fleet MILP's symmetry rows
    ask for (:func:`hetopt.fleet.models.add_symmetry_milp`). Identical tenants have identical
    options, so the fleet plan and its cost are the same.

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> fp = SimpleNamespace(tenant_class=np.array([0, 1, 0]))
    >>> canonical(fp, ((2, 0), (1,), (1, 1)))
    ((1, 1), (1,), (2, 0))
    """
    out = list(choices)
    for cls in np.unique(fp.tenant_class):
        members = [int(t) for t in np.flatnonzero(fp.tenant_class == cls)]
        plans = sorted((choices[t] for t in members), key=lambda c: c[0] if c else 0)
        for t, plan in zip(members, plans, strict=True):
            out[t] = plan
    return tuple(out)


class GroupSearch:
    """The fleet MILP over candidate options, built once, and the search over its groups.

    Parameters
    ----------
    fp
        The fleet problem.
    candidates
        Per tenant, a mask of the options the search may give it (identical tenants must have
        the same mask); the incumbent's options must be among them.
    options
        The run's solver options (HiGHS solves each step with its ``threads`` and ``seed``).
    deadline
        ``time.perf_counter()`` value at which building stops (then :attr:`ready` is False).

    Examples
    --------
    Two tenants on pool g or h (10 $/h a replica), with 0.6 and 0.4 of a replica. Started
    on a pool each (20 $/h), the search puts both on one pool: 1.0 replica, 10 $/h.

    >>> import time
    >>> from hetopt.fleet.problem import fleet_from_problems
    >>> from hetopt.testing import Opt, tiny_problem
    >>> def tenant(name, load):
    ...     ops = {"llm": [Opt("G", 0.1, key="g", load=load), Opt("G", 0.1, key="h", load=load)]}
    ...     return tiny_problem(ops, {"G": 10.0}, outside_keys={"g", "h"}, name=name)
    >>> fp = fleet_from_problems([tenant("a", 0.6), tenant("b", 0.4)])
    >>> masks = [np.ones(2, dtype=bool)] * 2
    >>> search = GroupSearch(fp, masks, SolverOptions(), time.perf_counter() + 10)
    >>> plan = search.search(((0,), (1,)), time.perf_counter() + 5)
    >>> plan[0] == plan[1], evaluate_fleet(fp, plan).objective_usd_per_h
    (True, 10.0)
    """

    def __init__(
        self,
        fp: FleetProblem,
        candidates: Sequence[np.ndarray],
        options: SolverOptions,
        deadline: float,
    ) -> None:
        self.fp = fp
        self.options = replace(options, backend="highs", gap_rel=1e-6)
        self.kept = [np.flatnonzero(m) for m in candidates]
        self.local = [{int(o): r for r, o in enumerate(k)} for k in self.kept]
        self.sub = replace(
            fp,
            tenants=tuple(p.restrict(m) for p, m in zip(fp.tenants, candidates, strict=True)),
            opt_footprint=tuple(a[m] for a, m in zip(fp.opt_footprint, candidates, strict=True)),
            opt_fleet_key=tuple(a[m] for a, m in zip(fp.opt_fleet_key, candidates, strict=True)),
        )
        self.groups = pool_groups(fp)
        self.model: FleetMilp | None
        try:
            self.model = build_milp(self.sub, deadline=Deadline(deadline, 0.0))
        except BuildInterrupted:
            self.model = None
        self.steps = 0
        self.best: Choices = ()  # the search's best plan and its cost
        self.best_usd_per_h = float("inf")

    @property
    def ready(self) -> bool:
        """The model was built in time."""
        return self.model is not None

    def covers(self, choices: Choices) -> bool:
        """Every option of ``choices`` is a candidate."""
        return all(
            all(int(o) in loc for o in plan) for plan, loc in zip(choices, self.local, strict=True)
        )

    def search(
        self,
        incumbent: Choices,
        deadline: float,
        progress: Callable[[str], None] | None = None,
    ) -> Choices:
        """Free one group at a time, largest first, in passes (:data:`GROUP_PASSES` at most)
        until a pass finds nothing cheaper; then, with time left, free every tenant at once (groups still trade the
        inventory and the shared device pools). Stops at ``deadline``; returns the best plan
        (``incumbent`` when no step improved it)."""
        best = canonical(self.fp, incumbent)
        if self.model is None or not self.covers(best):
            return incumbent
        self.best, self.best_usd_per_h = best, evaluate_fleet(self.fp, best).objective_usd_per_h
        improved, passes = True, 0
        while improved and passes < GROUP_PASSES and time.perf_counter() < deadline:
            improved, passes = False, passes + 1
            for i, group in enumerate(self.groups):
                left_s = deadline - time.perf_counter()
                if left_s < MIN_SOLVE_SLICE_S:
                    break
                slice_s = max(MIN_SOLVE_SLICE_S, min(STEP_CAP_S, left_s / (len(self.groups) - i)))
                label = f"group of {len(group)} tenants"
                improved |= self._try(group, time.perf_counter() + slice_s, label, progress)
        if len(self.groups) > 1 and deadline - time.perf_counter() >= MIN_SOLVE_SLICE_S:
            everyone = np.arange(self.fp.n_tenants)
            self._try(everyone, deadline, "all groups together", progress)
        return self.best

    def _try(
        self,
        free: np.ndarray,
        until: float,
        label: str,
        progress: Callable[[str], None] | None,
    ) -> bool:
        """One step from the best plan with ``free``'s tenants free; True when it is kept."""
        plan = self._step(self.best, free, until)
        if plan is None:
            return False
        ev = evaluate_fleet(self.fp, plan)
        if not (ev.feasible and ev.objective_usd_per_h < self.best_usd_per_h - 1e-9):
            return False
        self.best, self.best_usd_per_h = canonical(self.fp, plan), ev.objective_usd_per_h
        if progress is not None:
            progress(f"{label} re-solved: plan {self.best_usd_per_h:.3f} $/h")
        return True

    def _step(self, incumbent: Choices, group: np.ndarray, until: float) -> Choices | None:
        """The MILP's plan with only ``group``'s tenants free, started from ``incumbent``."""
        model = self.model
        assert model is not None
        free = set(group.tolist())
        start = tuple(
            tuple(loc[int(o)] for o in plan)
            for plan, loc in zip(incumbent, self.local, strict=True)
        )
        for var in model.prob.variables():
            var.varValue = None  # no value left from the last step: HiGHS completes the start
        values: dict[Any, float] = {}
        for t, xt in enumerate(model.x):
            chosen = set(start[t])
            for o, var in enumerate(xt):
                value = 1.0 if o in chosen else 0.0
                values[var] = value
                var.lowBound, var.upBound = (0, 1) if t in free else (value, value)
        ev = evaluate_fleet(self.sub, start)
        values.update({var: float(ev.pool_counts[j]) for j, var in enumerate(model.n)})
        values.update({var: float(ev.key_counts[k]) for k, var in enumerate(model.m)})
        self.steps += 1
        raw = get_backend("highs").run(
            model.prob, self.options, Deadline(until, until - time.perf_counter()), None, values
        )
        if raw.value is None:
            return None
        plan = tuple(
            read_choice(p, xt, raw.value) for p, xt in zip(self.sub.tenants, model.x, strict=True)
        )
        return tuple(
            tuple(int(kept[o]) for o in c) for c, kept in zip(plan, self.kept, strict=True)
        )
