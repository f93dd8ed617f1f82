"""Float-to-integer scaling for CP-SAT, in exactly one place.

CP-SAT needs integer coefficients, so every quantity is rounded to a resolution. How it is
rounded decides what CP-SAT's answer means for the exact (unscaled) problem, so there are two
roundings:

* :data:`CONSERVATIVE` (the historical one): quantities that must not be under-estimated
  (latency, load, memory, loop iterations) round up and the budgets they are compared with
  (the SLA, device memory) round down, so every solution of the integer model is feasible for
  the exact problem. Its optimum and bound, however, say nothing about the exact optimum: a
  plan that meets the SLA by less than the rounding is cut off, so its "optimal" can be dearer
  than the exact optimum. Latencies are whole microseconds, costs 1e-6 $/h (rounded to the
  nearest), loads 1e-6 device-equivalents, memory megabytes.
* :data:`RELAXED`: the opposite directions (demands down, budgets up, costs down) at a finer
  resolution (nanoseconds, 1e-12 $/h, 1e-9 devices, bytes; the cost step is fine enough that a
  soft SLA's penalty of lambda $/h per second is lambda * 1000 whole units per nanosecond). Every exact-feasible plan is
  feasible for it and costs no less in it, so its optimum (or bound) is a valid lower bound on
  the exact optimum. Its solution may miss the exact SLA by up to one step per term; the
  backend checks it against the exact evaluation.

:mod:`hetopt.solvers.cpsat_backend` solves the relaxed model, keeps its plan when the exact
evaluation accepts it, and falls back on the conservative model for a plan otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def _floor_exact(values: np.ndarray | float, resolution: float) -> np.ndarray:
    """Round down with no noise allowance (a bound must never exceed the true value)."""
    return np.floor(np.asarray(values, dtype=float) / resolution).astype(np.int64)


def _ceil_exact(values: np.ndarray | float, resolution: float) -> np.ndarray:
    """Round up with no noise allowance."""
    return np.ceil(np.asarray(values, dtype=float) / resolution).astype(np.int64)


@dataclass(frozen=True)
class Scaling:
    """One way of turning the problem's floats into CP-SAT integers.

    Attributes
    ----------
    name
        ``conservative`` or ``relaxed``.
    time_s, cost_usd_per_h, load_devices, mem_bytes, iterations
        The unit of one integer step of each quantity.
    relaxed
        False: demands round up and budgets down (a plan of the model is exact-feasible).
        True: demands and costs round down, budgets up (the model's optimum is a lower bound
        on the exact optimum).

    Examples
    --------
    >>> CONSERVATIVE.demand(1.0000004, CONSERVATIVE.time_s).item()
    1000001
    >>> RELAXED.demand(1.0000004, RELAXED.time_s).item()
    1000000400
    >>> CONSERVATIVE.budget(2.5e-6, 1e-6).item(), RELAXED.budget(2.5e-6, 1e-6).item()
    (2, 3)
    """

    name: str
    time_s: float
    cost_usd_per_h: float
    load_devices: float
    mem_bytes: float
    iterations: float
    relaxed: bool

    def demand(self, values: np.ndarray | float, resolution: float) -> np.ndarray:
        """A quantity that uses a budget (latency, load, memory, iterations)."""
        return _floor_exact(values, resolution) if self.relaxed else up(values, resolution)

    def budget(self, values: np.ndarray | float, resolution: float) -> np.ndarray:
        """A budget a demand is compared with (SLA, device memory)."""
        return _ceil_exact(values, resolution) if self.relaxed else down(values, resolution)

    def cost(self, values: np.ndarray | float) -> np.ndarray:
        """An objective coefficient: nearest (conservative) or rounded down (relaxed)."""
        if self.relaxed:
            return _floor_exact(values, self.cost_usd_per_h)
        return nearest(values, self.cost_usd_per_h)

    @property
    def resolution(self) -> dict[str, float]:
        """Unit per integer step of each quantity (what a result reports)."""
        return {
            "time_s": self.time_s,
            "cost_usd_per_h": self.cost_usd_per_h,
            "load_devices": self.load_devices,
            "mem_bytes": self.mem_bytes,
            "iterations": self.iterations,
        }


CONSERVATIVE = Scaling(
    "conservative", TIME_S, COST_USD_PER_H, LOAD_DEVICES, MEM_BYTES, ITERATIONS, relaxed=False
)
RELAXED = Scaling("relaxed", 1e-9, 1e-12, 1e-9, 1.0, ITERATIONS, relaxed=True)
