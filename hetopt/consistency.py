"""Consistency checks run by the problem builders before anything is built or solved.

In the style of PyPSA's ``consistency.py``: one named ``check_*`` function per rule, each saying
what is wrong and how to fix it. :func:`hetopt.problem.build_problem` and
:func:`hetopt.fleet.problem.build_fleet_problem` call them, so a single agent and a fleet
refuse the same inputs with the same words.

Examples
--------
>>> check_request_rate(2.0)
>>> check_request_rate(0)
Traceback (most recent call last):
...
hetopt.errors.InputError: workload.request_rate_per_s must be a positive number, got 0.
>>> check_inventory_names({"H10": 4}, ("H100", "L4"))
Traceback (most recent call last):
...
hetopt.errors.InputError: hardware.inventory names ['H10'], which are not among the devices considered ['H100', 'L4']. Did you mean 'H100'? Fix the names or add the devices to hardware.devices.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from hetopt.costs.table import CostTable
from hetopt.errors import InfeasibleError, InputError
from hetopt.hardware.spec import check_inventory
from hetopt.inputs import did_you_mean

__all__ = [
    "check_every_op_placeable",
    "check_inventory",
    "check_inventory_names",
    "check_request_rate",
    "check_same_devices",
]


def check_request_rate(request_rate_per_s: float) -> None:
    """The request rate is a positive, finite number of requests per second."""
    if not (request_rate_per_s > 0 and math.isfinite(request_rate_per_s)):
        raise InputError(
            f"workload.request_rate_per_s must be a positive number, got {request_rate_per_s!r}."
        )


def check_inventory_names(inventory: Mapping[str, Any], devices: Sequence[str]) -> None:
    """Every ``hardware.inventory`` key names a device the plan considers (with a hint)."""
    unknown = sorted(set(inventory) - set(devices))
    if unknown:
        hints = "".join(did_you_mean(u, devices, cutoff=0.5) for u in unknown)
        raise InputError(
            f"hardware.inventory names {unknown}, which are not among the devices considered "
            f"{list(devices)}.{hints} Fix the names or add the devices to "
            f"hardware.devices."
        )


def check_same_devices(devices_per_problem: Sequence[Sequence[str]]) -> None:
    """Every tenant problem of a fleet lists the same device types in the same order."""
    first = tuple(devices_per_problem[0])
    if any(tuple(d) != first for d in devices_per_problem):
        raise InputError(
            "fleet_from_problems: every tenant problem must list the same "
            "device types in the same order."
        )


def check_every_op_placeable(
    ops: Sequence[str], table: CostTable, feasible: Collection[str]
) -> None:
    """Every operator has at least one feasible option (``feasible``: the operators that do);
    otherwise an :class:`InfeasibleError` that says, per device, why each one has none."""
    empty = [op for op in ops if op not in feasible]
    if empty:
        details = " ".join(f"'{op}': {table.explain_op(op)}." for op in empty)
        raise InfeasibleError(
            f"No device can run {len(empty)} operator(s) within the SLA and memory limits. "
            f"{details} Relax sla.ttft_s / sla.tbt_s, allow more tensor parallelism "
            f"(costs.tp_degrees), use a lower precision, or add a faster or larger device."
        )
