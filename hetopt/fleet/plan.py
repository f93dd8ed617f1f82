"""Plan a fleet in one call: tenants in, verified fleet plan and baselines out."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from hetopt.costs.table import CostParams
from hetopt.costs.tco import TcoParams
from hetopt.errors import InputError, SolverLimitError
from hetopt.fleet import heuristics
from hetopt.fleet.evaluate import Choices, evaluate_fleet
from hetopt.fleet.generator import binding_inventory
from hetopt.fleet.problem import FleetProblem, build_fleet_problem
from hetopt.fleet.solve import FLEET_REQUEST, FleetResult, Method, explain_shortage, solve_fleet
from hetopt.fleet.spec import FleetSpec
from hetopt.fleet.verify import verify_fleet
from hetopt.hardware.spec import HardwareSpec
from hetopt.solvers.base import OnProgress, SolverOptions

log = logging.getLogger(__name__)
BASELINES = ("greedy", "heft", "homogeneous", "exhaustive")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class FleetRequest:
    """Everything :func:`plan_fleet` needs.

    Attributes
    ----------
    fleet
        The tenants.
    hardware, costs, tco, solver
        As for a single agent; ``hardware.inventory`` bounds the shared pools.
    method
        ``auto``, ``monolithic`` or ``decomposition`` (:func:`hetopt.fleet.solve.solve_fleet`).
    gap_rel
        Proven gap at which the solve stops (overrides ``solver.gap_rel``).
    baselines
        Baselines to run next to the plan: ``greedy``, ``heft``, ``homogeneous``,
        ``exhaustive``.
    inventory_fraction, limited_types
        When set, cap the ``limited_types`` most-used device types of the greedy plan at this
        share of their use (a binding inventory for what-if studies and benchmarks).
    """

    fleet: FleetSpec
    hardware: HardwareSpec = field(default_factory=HardwareSpec)
    costs: CostParams = field(default_factory=CostParams)
    tco: TcoParams = field(default_factory=TcoParams)
    solver: SolverOptions = field(default_factory=SolverOptions)
    method: Method = "auto"
    gap_rel: float = 0.005
    baselines: tuple[str, ...] = ("greedy", "heft", "homogeneous")
    inventory_fraction: float | None = None
    limited_types: int = 3

    def __post_init__(self) -> None:
        unknown = sorted(set(self.baselines) - set(BASELINES))
        if unknown:
            raise InputError(f"fleet.baselines names {unknown}; choose from {list(BASELINES)}.")
        if self.method not in ("auto", "monolithic", "decomposition"):
            raise InputError(
                f"fleet.method must be auto, monolithic or decomposition, got {self.method!r}."
            )
        if not 0 <= self.gap_rel < 1:
            raise InputError(f"fleet.gap_rel must be in [0, 1), got {self.gap_rel}.")


@dataclass(frozen=True)
class FleetOutcome:
    """A verified fleet plan, the problem it solves and the baselines next to it.

    ``violations`` is what the independent check (:func:`hetopt.fleet.verify.verify_fleet`)
    found; empty when the plan holds.
    """

    problem: FleetProblem
    result: FleetResult
    baselines: tuple[heuristics.HeuristicResult, ...]
    violations: tuple[str, ...] = ()

    @property
    def verified(self) -> bool:
        """True when the plan passed both the re-evaluation and the independent check."""
        return self.result.verified and not self.violations


def run_baseline(fp: FleetProblem, name: str, options: SolverOptions) -> heuristics.HeuristicResult:
    """Run one baseline by name; an intractable exhaustive run is reported, not raised."""
    if name == "greedy":
        return heuristics.greedy(fp)
    if name == "heft":
        return heuristics.heft(fp)
    if name == "homogeneous":

        def exact(only: FleetProblem) -> tuple[Choices | None, str]:
            res = solve_fleet(only, replace(options, time_limit_s=min(options.time_limit_s, 20.0)))
            return res.choices, str(res.status)

        return heuristics.homogeneous(fp, exact)
    try:
        return heuristics.exhaustive(fp)
    except InputError as exc:
        return heuristics.HeuristicResult("exhaustive", None, math.nan, 0.0, str(exc))


def plan_fleet(
    request: FleetRequest,
    progress: Progress | None = None,
    *,
    on_solve_progress: OnProgress | None = None,
) -> FleetOutcome:
    """Plan the cheapest deployment of every tenant on shared pools within the inventory.

    Raises
    ------
    InfeasibleError
        When the inventory cannot host the fleet within its SLAs: which pools are short and
        by how much.
    SolverLimitError
        When the time limit passes before any plan (not even the greedy one) is found.
    """
    say = progress or (lambda _msg: None)
    FLEET_REQUEST.check(request.solver.backend)  # before the cost tables are built
    fp = build_fleet_problem(request.fleet, request.hardware, request.costs, request.tco, say)
    if request.inventory_fraction is not None:
        ref = heuristics.greedy(fp)
        if ref.choices is not None:
            usage = evaluate_fleet(fp, ref.choices).devices_per_type
            caps = binding_inventory(
                fp.devices, usage, request.inventory_fraction, request.limited_types
            )
            inv = np.array(
                [
                    min(fp.device_inventory[j], caps.get(d, math.inf))
                    for j, d in enumerate(fp.devices)
                ]
            )
            fp = fp.with_inventory(inv)
            say(
                f"inventory capped at {request.inventory_fraction:.0%} of the greedy plan's "
                f"use: {caps}"
            )
    options = replace(request.solver, gap_rel=request.gap_rel)
    result = solve_fleet(
        fp, options, method=request.method, on_progress=on_solve_progress, progress=say
    )
    if not result.has_solution:
        say("no plan: finding which pools are short")
        shortage = explain_shortage(fp, request.solver)
        if shortage is not None:
            raise shortage
        raise SolverLimitError(
            f"No fleet plan was found within solver.time_limit_s={options.time_limit_s:g} "
            f"({result.status}: {result.message}) although the inventory can host the fleet; "
            f"the greedy start failed too. Raise solver.time_limit_s or try "
            f"fleet.method=monolithic."
        )
    assert result.choices is not None
    violations = verify_fleet(fp, result.choices, result.pool_counts, result.objective_usd_per_h)
    if violations:
        log.error("fleet plan failed the independent check: %s", "; ".join(violations))
    baselines = []
    for name in request.baselines:
        say(f"baseline: {name}")
        baselines.append(run_baseline(fp, name, options))
    return FleetOutcome(fp, result, tuple(baselines), violations)
