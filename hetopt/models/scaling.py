"""Float-to-integer scaling for CP-SAT, in exactly one place.

CP-SAT needs integer coefficients. Latencies are expressed in whole microseconds, costs in units
of 1e-6 $/h (so a soft-SLA penalty of lambda $/h per second is lambda units per microsecond), pool loads in 1e-6 device-equivalents and memory in megabytes. Quantities that
must not be under-estimated (latency, load, memory) round up; budgets they are compared with
(the SLA, capacity, inventory) round down, so a CP-SAT solution is always feasible for the
unscaled problem. The error per term is at most one resolution step.
"""

from __future__ import annotations

import numpy as np

TIME_S = 1e-6
COST_USD_PER_H = 1e-6
LOAD_DEVICES = 1e-6
MEM_BYTES = 1e6
ITERATIONS = 1e-3

RESOLUTION = {
    "time_s": TIME_S,
    "cost_usd_per_h": COST_USD_PER_H,
    "load_devices": LOAD_DEVICES,
    "mem_bytes": MEM_BYTES,
    "iterations": ITERATIONS,
}


def up(values: np.ndarray | float, resolution: float) -> np.ndarray:
    """Round up to integer multiples of ``resolution``, ignoring float noise below 1e-6 step."""
    return np.ceil(np.round(np.asarray(values, dtype=float) / resolution, 6)).astype(np.int64)


def down(values: np.ndarray | float, resolution: float) -> np.ndarray:
    """Round down to integer multiples of ``resolution``, ignoring float noise."""
    return np.floor(np.round(np.asarray(values, dtype=float) / resolution, 6)).astype(np.int64)


def nearest(values: np.ndarray | float, resolution: float) -> np.ndarray:
    """Round to the nearest integer multiple of ``resolution`` (objective coefficients)."""
    return np.round(np.asarray(values, dtype=float) / resolution).astype(np.int64)
