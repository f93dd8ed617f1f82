"""Formulations of the placement problem (the design card's ``models``).

:mod:`hetopt.models.milp` writes it as a mixed-integer linear program in PuLP (solved by HiGHS or
CBC); :mod:`hetopt.models.cpsat` writes it, independently, for OR-Tools CP-SAT. Both follow the
paper's §3.1.2 formulation extended with device counts and an end-to-end SLA over paths:

* assignment: each operator takes exactly one option (device type and configuration);
* capacity: each device type's shared pool covers the load of the pooled operators on it, and
  holds their footprints; dedicated replicas plus pool stay within the inventory;
* latency: finish-time potentials along every edge, paying the edge's transfer latency when the
  endpoints run on different device types, plus each bounded loop's cycle time times its
  iterations; the end-to-end latency minus a slack stays within the SLA;
* objective: TCO per hour (dedicated devices, pooled devices, profiled costs, cross-device
  transfers) plus ``lambda`` times the slack; its coefficients come from one place,
  :func:`hetopt.models.terms.objective_terms`, which the evaluators use too.

Each family is one small ``add_*`` function opening with its line of math; ``build()`` lists
them. The fleet (:mod:`hetopt.fleet.models`) reuses them per tenant and writes its shared pools
and inventory with the same row writers (``add_pool_exists``, ``add_pool_load``,
``add_pool_memory``, ``add_inventory``).
"""

from __future__ import annotations

from typing import Literal

Objective = Literal["cost", "latency"]
"""What a formulation minimises: ``cost`` (TCO per hour plus soft-SLA penalties, under the
SLA) or ``latency`` (the end-to-end latency, the SLA ignored; used to explain an infeasible
SLA)."""

__all__ = ["Objective"]
