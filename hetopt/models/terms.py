"""The objective's coefficients, in one place: what each decision costs per hour.

Every formulation (:mod:`hetopt.models.milp`, :mod:`hetopt.models.cpsat`, the fleet's
:mod:`hetopt.fleet.models`) and both evaluators (:mod:`hetopt.models.evaluate`,
:mod:`hetopt.fleet.evaluate`) price a plan with these terms:

``TCO = sum_o c_o x_o + sum_j c_j n_j + sum_k c_k m_k + sum_e c_e cross_e`` and
``objective = TCO + lambda * slack``, where ``c_o`` is an option's dedicated devices at their
hourly price plus its direct (profiled) cost, ``c_j`` one device of pool ``j``, ``c_k`` one
replica (``tp x pp`` devices) of shared LLM pool ``k``, ``c_e`` an edge crossing device types,
and ``lambda`` the soft SLA's price of one second of excess.

Examples
--------
>>> from hetopt.testing import Opt, tiny_problem
>>> p = tiny_problem({"a": [Opt("H100", 1.0, dedicated=2)]}, {"H100": 3.0})
>>> terms = objective_terms(p)
>>> terms.option_usd_per_h, terms.slack_usd_per_h_per_s
(array([6.]), 0.0)
>>> terms.tco_usd_per_h([0], [0], [])
6.0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from hetopt.problem import PlacementProblem

ArrayLike = np.ndarray | Sequence[float] | Sequence[int]


@dataclass(frozen=True)
class ObjectiveTerms:
    """The $/h coefficient of every decision of one agent's placement.

    Attributes
    ----------
    option_usd_per_h
        Per option ``x_o``: its dedicated devices at their hourly TCO plus its direct cost.
    device_usd_per_h
        Per device type ``j``: one device of its shared pool ``n_j``.
    edge_usd_per_h
        Per edge ``cross_e``: the transfer cost paid when its endpoints differ in device type.
    key_usd_per_h
        Per shared LLM pool ``m_k``: one replica, its ``tp x pp`` devices at their hourly TCO.
    slack_usd_per_h_per_s
        Per second of end-to-end latency over a soft SLA (0 when the SLA is hard or absent).
    """

    option_usd_per_h: np.ndarray
    device_usd_per_h: np.ndarray
    edge_usd_per_h: np.ndarray
    slack_usd_per_h_per_s: float
    key_usd_per_h: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def own_usd_per_h(self, choice: ArrayLike, cross: ArrayLike) -> float:
        """Cost a choice carries by itself: chosen options plus crossed edges (no pools)."""
        c = np.asarray(choice, dtype=int)
        return float(self.option_usd_per_h[c].sum() + self.edge_usd_per_h @ np.asarray(cross))

    def tco_usd_per_h(
        self, choice: ArrayLike, pools: ArrayLike, cross: ArrayLike, keys: ArrayLike = ()
    ) -> float:
        """TCO of a choice with ``pools`` devices per shared pool, ``keys`` replicas per shared
        LLM pool and ``cross`` edges crossed."""
        c = np.asarray(choice, dtype=int)
        replicas = np.asarray(keys, dtype=float) if len(keys) else np.zeros(len(self.key_usd_per_h))
        return float(
            self.option_usd_per_h[c].sum()
            + self.device_usd_per_h @ np.asarray(pools)
            + self.key_usd_per_h @ replicas
            + self.edge_usd_per_h @ np.asarray(cross)
        )

    def penalty_usd_per_h(self, excess_s: float) -> float:
        """What ``excess_s`` seconds over the end-to-end SLA cost (0 under a hard SLA)."""
        return self.slack_usd_per_h_per_s * excess_s


def objective_terms(problem: PlacementProblem) -> ObjectiveTerms:
    """The objective's coefficients for ``problem`` (see the module docstring)."""
    sla = problem.sla
    return ObjectiveTerms(
        option_usd_per_h=problem.opt_fixed_usd_per_h(),
        device_usd_per_h=problem.device_cost_usd_per_h,
        edge_usd_per_h=problem.edge_cost_usd_per_h,
        slack_usd_per_h_per_s=0.0 if sla.hard else float(sla.penalty_usd_per_h_per_s or 0.0),
        key_usd_per_h=problem.key_usd_per_h(),
    )
