"""Reading a plan out of a solved model, and writing a plan into a model as its start.

Every formulation (:mod:`hetopt.models.milp`, :mod:`hetopt.models.cpsat`, the fleet's) has a
binary ``x[o]`` per option and an integer ``n[j]`` per shared pool, so one decoder serves them
all. A backend hands back a reader of its variables' values (``varValue``, ``solver.value``);
it never decodes a plan itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from hetopt.models.evaluate import key_counts
from hetopt.problem import PlacementProblem

ValueReader = Callable[[Any], float]


def read_choice(problem: PlacementProblem, x: Sequence[Any], value: ValueReader) -> tuple[int, ...]:
    """The chosen option of each operator: the option whose ``x`` is largest (1 in an integer
    solution; the first on a tie).

    >>> from hetopt.testing import Opt, tiny_problem
    >>> p = tiny_problem({"a": [Opt("C", 1.0), Opt("G", 0.5)]}, {"C": 1.0, "G": 2.0})
    >>> read_choice(p, [0, 1], lambda v: float(v))
    (1,)
    """
    choice = []
    for i in range(problem.n_ops):
        opts = problem.options_of(i)
        values = np.array([value(x[int(o)]) or 0.0 for o in opts], dtype=float)
        choice.append(int(opts[np.argmax(values)]))
    return tuple(choice)


def read_counts(n: Sequence[Any], value: ValueReader) -> tuple[int, ...]:
    """Shared-pool devices per device type, rounded to whole devices."""
    return tuple(int(round(value(v) or 0.0)) for v in n)


def start_values(
    problem: PlacementProblem,
    x: Sequence[Any],
    n: Sequence[Any],
    chosen: Mapping[int, int],
    pools: Mapping[int, int],
    *,
    every_operator: bool,
    replicas: Sequence[Any] = (),
) -> dict[Any, float]:
    """Start values per variable for the plan ``chosen`` (``{operator: option}``) with
    ``pools`` (``{device index: devices}``); empty when ``chosen`` names nothing.

    ``every_operator`` gives every operator's options a value, all off for an operator the
    plan does not name (a MIP start is a full assignment, which HiGHS and CBC repair);
    otherwise such operators get no hint (CP-SAT completes a partial hint). ``replicas``
    (the shared LLM pools' ``m[k]``) start at the replicas the plan's loads need when the plan
    names every operator.
    """
    if not chosen:
        return {}
    out: dict[Any, float] = {}
    for i in range(problem.n_ops):
        if i in chosen or every_operator:
            for o in problem.options_of(i):
                out[x[int(o)]] = 1.0 if chosen.get(i) == int(o) else 0.0
    for j, count in pools.items():
        out[n[j]] = float(count)
    if replicas and len(chosen) == problem.n_ops:
        opts = np.array(list(chosen.values()), dtype=int)
        for k, count in enumerate(key_counts(problem, opts)):
            out[replicas[k]] = float(count)
    return out
