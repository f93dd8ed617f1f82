"""Independent recomputation of a placement from raw inputs (the verifier's and brute force's).

:func:`evaluate_assignment` takes an assignment by name (``{operator: (device, config)}``) and
recomputes everything a plan claims, with plain loops over the raw inputs:

* **dedicated devices** of an exclusive operator: ``tp pp ceil(rate visits / (requests_per_s
  max_utilization))`` from its cost-table row;
* **shared pools**: per device type, the ceiling of the summed pooled load ``rate visits busy_s /
  max_utilization`` (at least one device once anything runs there), holding every pooled
  footprint within ``memory (1 - reserve)``;
* **inventory**: dedicated + pooled devices per type against the available count;
* **end-to-end latency**: the longest source-to-sink path over the forward edges, plus each
  loop's cycle (entry to back edge) times its iterations (``sla.loop_iterations``), with an
  edge's transfer latency paid when its ends run on different device types;
* **TCO**: devices x $/h + direct (profiled) costs + transfer costs of crossed edges; the
  objective adds the soft SLA's penalty.

The inputs (:class:`VerifyInputs`) are built by :func:`verify_inputs` from the pipeline's raw
objects (the decomposed graph, the cost table's rows, the device TCO and memory, the
inventory, the SLA and cost parameters), with its own contraction of transfer operators into
edges. Nothing here reads :class:`hetopt.problem.PlacementProblem` arrays or calls the
formulations or :mod:`hetopt.models.evaluate`, so a bug in any of them shows up as a
disagreement with :func:`hetopt.plan.verify.verify_plan`. The brute-force backend optimises
against this evaluation.

Examples
--------
>>> from hetopt.sla import Sla
>>> import pandas as pd
>>> rows = pd.DataFrame([
...     {"op": "a", "device": "X", "config": "c", "tp": 2, "pp": 1, "exclusive": True,
...      "feasible": True, "latency_s": 0.1, "step_s": 0.1, "busy_s": 0.0,
...      "requests_per_s": 1.0, "mem_per_device_bytes": 0.0, "direct_cost_usd": 0.0}])
>>> inputs = VerifyInputs(
...     "one", 3.0, (OpInput("a", 1.0, "compute"),), rows,
...     (DeviceInput("X", usd_per_h=2.0),), (), (), ("a",), Sla(ttft_s=None, tbt_s=None),
...     max_utilization=1.0)
>>> ev = evaluate_assignment(inputs, {"a": ("X", "c")})
>>> ev.dedicated["X"], ev.tco_usd_per_h, ev.e2e_latency_s
(6, 12.0, 0.1)
"""

from hetopt.oracle.inputs import (
    ROW_COLUMNS,
    SECONDS_PER_HOUR,
    DeviceInput,
    EdgeInput,
    LoopInput,
    OpInput,
    RowInput,
    VerifyInputs,
    verify_inputs,
)
from hetopt.oracle.recompute import (
    CEIL_TOL,
    LATENCY_TOL_S,
    MEM_REL_TOL,
    LlmPool,
    Recomputed,
    e2e_latency_s,
    evaluate_assignment,
    replicas_needed,
)

__all__ = [
    "CEIL_TOL",
    "LATENCY_TOL_S",
    "MEM_REL_TOL",
    "ROW_COLUMNS",
    "SECONDS_PER_HOUR",
    "DeviceInput",
    "EdgeInput",
    "LlmPool",
    "LoopInput",
    "OpInput",
    "Recomputed",
    "RowInput",
    "VerifyInputs",
    "e2e_latency_s",
    "evaluate_assignment",
    "replicas_needed",
    "verify_inputs",
]
