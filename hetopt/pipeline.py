"""The whole planning pipeline as one function call: agent graph in, verified plan out.

``plan_agent`` chains the stages of the architecture (graph -> decomposition -> catalog -> cost
table -> placement problem -> solve -> plan -> verification) on plain, immutable inputs. It
never imports Hydra; the CLI builds a :class:`PlanRequest` from its config and calls this.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from hetopt.costs.measured import check_profile_matches, load_measured_profile
from hetopt.costs.table import (
    CostParams,
    CostTable,
    build_cost_table,
    cost_model_info,
    profile_cost_table,
)
from hetopt.costs.tco import DeviceTco, TcoParams, resolve_hardware
from hetopt.errors import InfeasibleError, SolverLimitError
from hetopt.graph.decompose import decompose
from hetopt.graph.operators import OperatorGraph, tokens_per_request
from hetopt.hardware import load_catalog
from hetopt.hardware.spec import HardwareSpec
from hetopt.models.evaluate import evaluate_choice
from hetopt.oracle import VerifyInputs, verify_inputs
from hetopt.plan.plan import Baseline, Plan, make_plan
from hetopt.plan.verify import verify_plan
from hetopt.problem import SECONDS_PER_HOUR, PlacementProblem, build_problem
from hetopt.sla import Sla
from hetopt.solvers import SolveResult, SolverOptions, SolveStatus, solve
from hetopt.solvers.base import OnProgress, WarmStart
from hetopt.workloads import Workload

log = logging.getLogger(__name__)
Progress = Callable[[str], None]

__all__ = [
    "HardwareSpec",  # re-exported from hetopt.hardware.spec, its home
    "PlanOutcome",
    "PlanRequest",
    "explain_infeasible",
    "plan_agent",
    "prepare",
    "resolve_hardware",  # re-exported from hetopt.costs.tco, its home
]


@dataclass(frozen=True)
class PlanRequest:
    """Everything ``plan_agent`` needs.

    Attributes
    ----------
    workload
        The agent to plan: graph, request rate, optional measured profile, and its own SLA
        defaults and baselines (:func:`~hetopt.workloads.load_workload`).
    sla
        The SLA; the fields it leaves null take the workload's ``sla:`` defaults
        (:meth:`~hetopt.workloads.Workload.effective_sla`), so after construction this is the
        SLA the plan is held to.
    baselines
        Device types to compare against as homogeneous (all-on-one-type) deployments; None
        (the default) takes the workload's own ``baselines:``, else ``("H100",)``.
    """

    workload: Workload
    hardware: HardwareSpec = field(default_factory=HardwareSpec)
    sla: Sla = field(default_factory=Sla)
    costs: CostParams = field(default_factory=CostParams)
    tco: TcoParams = field(default_factory=TcoParams)
    solver: SolverOptions = field(default_factory=SolverOptions)
    baselines: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.workload, Workload):
            raise TypeError(
                f"PlanRequest.workload must be a Workload (hetopt.workloads.load_workload(name) "
                f"or Workload.from_mapping(mapping)), got {type(self.workload).__name__}."
            )
        # Frozen, so set once here: the workload's defaults fill what the request leaves open.
        object.__setattr__(self, "sla", self.workload.effective_sla(self.sla))
        if self.baselines is None:
            object.__setattr__(self, "baselines", self.workload.effective_baselines(("H100",)))

    @property
    def workload_source(self) -> str:
        """Where the workload came from, for messages."""
        return self.workload.source


@dataclass(frozen=True)
class PlanOutcome:
    """A plan with the intermediate artefacts that produced it."""

    plan: Plan
    problem: PlacementProblem
    table: CostTable
    graph: OperatorGraph

    @property
    def inputs(self) -> VerifyInputs:
        """The raw inputs the plan was verified against (:func:`hetopt.plan.verify_plan`)."""
        if self.problem.raw_inputs is None:
            raise ValueError("the problem was not built by hetopt.pipeline.prepare")
        return self.problem.raw_inputs


def prepare(
    request: PlanRequest, progress: Progress | None = None
) -> tuple[PlacementProblem, CostTable, OperatorGraph, dict[str, DeviceTco]]:
    """Stages 1-4: graph, decomposition, catalog, cost table, placement problem.

    The problem carries its raw inputs (``problem.raw_inputs``, :mod:`hetopt.oracle`) for the
    independent verifier and the brute-force backend.
    """
    say = progress or (lambda _msg: None)
    say("decomposing the agent graph")
    graph = decompose(request.workload.graph)
    rate = request.workload.request_rate_per_s
    profile = request.workload.profile
    if profile is not None:
        table = profile_cost_table(graph, profile)
        tco: dict[str, DeviceTco] = {}
        mem: dict[str, float] = {}
        inventory = dict(request.hardware.inventory)
    else:
        catalog, inventory, tco, mem = resolve_hardware(request.hardware, request.tco, say)
        say(
            f"costing {sum(op.placeable for op in graph.ops)} operators on "
            f"{len(catalog.devices)} devices"
        )
        measured = None
        if request.costs.measured_profile:
            measured = load_measured_profile(request.costs.measured_profile)
            full = load_catalog(
                request.hardware.catalog_path, extra_rows=request.hardware.extra_rows
            )
            phases = [
                (
                    op.kind.value,
                    op.llm.arch.name,
                    op.llm.precision,
                    op.llm.input_tokens,
                    op.llm.output_tokens,
                )
                for op in graph.ops
                if op.llm is not None
            ]
            check_profile_matches(
                measured,
                request.costs.measured_profile,
                [*full.names, *catalog.names],
                catalog.names,
                phases,
            )
        table = build_cost_table(graph, catalog, request.sla, request.costs, measured)
    problem = build_problem(
        graph, table, tco, request.sla, rate, request.costs, mem, inventory, profile
    )
    # The raw inputs again, for the independent verifier and the brute-force backend.
    raw = verify_inputs(
        graph, table, tco, request.sla, rate, request.costs, mem, inventory, profile
    )
    problem = replace(problem, raw_inputs=raw)
    log.info(
        "problem %s: %d operators, %d options, %d edges, %d loops",
        problem.name,
        problem.n_ops,
        problem.n_options,
        len(problem.edge_src),
        len(problem.loops),
    )
    return problem, table, graph, tco


def explain_infeasible(problem: PlacementProblem, options: SolverOptions) -> InfeasibleError:
    """Say which constraint makes ``problem`` infeasible and what would make it feasible."""
    fastest = solve(problem, options, objective="latency")
    if fastest.has_solution:
        assert fastest.choice is not None
        ev = evaluate_choice(problem, fastest.choice)
        where = ", ".join(
            f"{problem.ops[i]} on {problem.devices[problem.opt_device[o]]}"
            for i, o in enumerate(fastest.choice)
        )
        tightest = math.ceil(ev.e2e_latency_s * 1e6) / 1e6
        return InfeasibleError(
            f"No placement meets the end-to-end SLA sla.e2e_s = {problem.sla.e2e_s:g} s "
            f"(loops counted at their {problem.sla.loop_iterations} iterations). The fastest "
            f"feasible plan takes {ev.e2e_latency_s:.6g} s ({where}), so the tightest SLA that "
            f"is feasible is sla.e2e_s={tightest:g}. Raise "
            f"sla.e2e_s to at least that, count loops at their expected iterations "
            f"(sla.loop_iterations=expected), make the SLA soft (sla.penalty_usd_per_h_per_s="
            f"...), or add faster devices.",
            tightest_e2e_s=tightest,
        )
    inv = {
        d: int(v)
        for d, v in zip(problem.devices, problem.device_inventory, strict=True)
        if math.isfinite(v)
    }
    return InfeasibleError(
        f"No placement fits the device capacity: even ignoring the end-to-end SLA, the "
        f"replicas and shared pools exceed the inventory {inv or '(unlimited)'} or the pooled "
        f"operators' footprints exceed device memory. Raise hardware.inventory, lower "
        f"workload.request_rate_per_s, or add devices."
    )


def _baseline(problem: PlacementProblem, device: str, options: SolverOptions) -> Baseline:
    if device not in problem.devices:
        return Baseline.impossible(device, f"{device} is not among the devices considered")
    j = problem.devices.index(device)
    try:
        only = problem.restrict(problem.opt_device == j)
    except InfeasibleError as exc:
        return Baseline.impossible(device, f"not possible on {device} alone: {exc}")
    per_request = problem.request_rate_per_s * SECONDS_PER_HOUR
    res = solve(only, options)
    if res.has_solution:
        assert res.choice is not None
        ev = evaluate_choice(only, res.choice)
        return Baseline(
            device, ev.tco_usd_per_h, ev.tco_usd_per_h / per_request, ev.e2e_latency_s, True
        )
    fastest = solve(only, options, objective="latency")
    if not fastest.has_solution:
        return Baseline.impossible(
            device, f"{device} alone cannot hold the workload ({res.status})"
        )
    assert fastest.choice is not None
    ev = evaluate_choice(only.with_sla(replace(only.sla, e2e_s=None)), fastest.choice)
    return Baseline(
        device,
        ev.tco_usd_per_h,
        ev.tco_usd_per_h / per_request,
        ev.e2e_latency_s,
        False,
        f"misses the SLA: {ev.e2e_latency_s:.6g} s > {problem.sla.e2e_s:g} s at best",
    )


def plan_agent(
    request: PlanRequest,
    progress: Progress | None = None,
    *,
    warm_start: WarmStart | None = None,
    on_solve_progress: OnProgress | None = None,
) -> PlanOutcome:
    """Plan the cheapest heterogeneous deployment of an agent that meets its SLA.

    Parameters
    ----------
    request
        Workload, hardware, SLA, cost, TCO and solver settings.
    progress
        Optional callback receiving one short line per stage.
    warm_start
        A previous plan to start the solver from (e.g. the neighbouring point of a sweep).
    on_solve_progress
        Called with the incumbent and bound as the solver improves them.

    Returns
    -------
    PlanOutcome
        The verified plan and the problem it solves. A plan stopped at the solver's time
        limit is returned too: ``plan.solve.status`` is ``feasible`` and ``plan.solve.gap`` says
        how far from proven optimal it may be.

    Raises
    ------
    InputError
        Malformed workload, unknown device or model, bad settings.
    InfeasibleError
        No plan meets the SLA; the message gives the tightest feasible SLA.
    SolverLimitError
        The time limit passed before any plan was found.

    Examples
    --------
    >>> from hetopt.pipeline import PlanRequest, plan_agent
    >>> from hetopt.workloads import load_workload
    >>> # the 120 ms bound and the HP/CO baselines come from the workload, as in the CLI
    >>> out = plan_agent(PlanRequest(load_workload("worked_example")))
    >>> round(out.plan.cost_usd_per_request, 3), round(float(out.plan.e2e_latency_s), 3)
    (0.095, 0.12)
    >>> [(b.device, round(b.cost_usd_per_request, 3)) for b in out.plan.baselines]
    [('HP', 0.11), ('CO', 0.06)]
    """
    say = progress or (lambda _msg: None)
    problem, table, graph, tco = prepare(request, say)
    say(
        f"solving with {request.solver.backend}: {problem.n_ops} operators, "
        f"{problem.n_options} options"
    )
    result: SolveResult = solve(
        problem, request.solver, warm_start=warm_start, on_progress=on_solve_progress
    )
    if result.status is SolveStatus.INFEASIBLE:
        say("infeasible: finding the tightest feasible SLA")
        raise explain_infeasible(problem, request.solver)
    if result.status is SolveStatus.NO_SOLUTION:
        raise SolverLimitError(
            f"Solver {result.backend} reached its time limit solver.time_limit_s="
            f"{request.solver.time_limit_s:g} before finding any plan ({result.message}). "
            f"Raise solver.time_limit_s or try solver=cpsat."
        )
    if not result.has_solution:
        raise RuntimeError(f"solver {result.backend} failed: {result.message}")
    assert result.choice is not None
    ev = evaluate_choice(problem, result.choice, result.pool_counts)
    baselines = []
    for device in request.baselines or ():
        say(f"baseline: everything on {device}")
        baselines.append(_baseline(problem, device, request.solver))
    plan = make_plan(
        problem,
        table,
        result,
        ev,
        tco,
        tokens_per_request(graph),
        baselines=tuple(baselines),
        cost_model=cost_model_info(request.costs),
    )
    outcome = PlanOutcome(plan, problem, table, graph)
    violations = verify_plan(plan, outcome.inputs)
    if violations:
        plan = replace(plan, violations=violations, sla={**plan.sla, "satisfied": False})
    if plan.violations:
        log.error("plan failed verification: %s", "; ".join(plan.violations))
    return replace(outcome, plan=plan)
