"""Discrete-event replay of a plan on SimPy.

Every request walks the agent graph the plan placed:

* its path is sampled first: branch choices by their probabilities, and each loop's
  iterations (binomial, mean ``expected_iterations``, at most ``max_iterations``) every time the
  loop is entered; the walk unrolls loops into one operator *instance* per pass, and an operator
  fed by parallel branches waits for all of them (AND-join);
* an LLM phase holds one of its replicas' batch slots (``replicas x batch`` slots in all) for
  its batch latency, which is how continuous batching and batched prefill serve requests at the
  planned step time without simulating tokens one by one;
* a light operator holds one device of its device type's shared pool for its busy time, then
  waits out its static latency (an external API) without holding anything;
* an edge between different device types waits its transfer time (KV cache or payload over the
  fabric).

Each instance's queueing delay and service time are recorded, so the result says where the time
went; each request's latency is compared with the planner's prediction for the same path.

:func:`replay` wires the stages together, each in its own module: the pools the plan holds and
their sizing (:mod:`hetopt.replay.pools`), the path walker (:mod:`hetopt.replay.paths`), the
SimPy processes (:mod:`hetopt.replay.simulation`, with the router, controller and failures of
:mod:`hetopt.replay.control`) and the result tables (:mod:`hetopt.replay.accounting`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hetopt.graph.decompose import OperatorGraph
from hetopt.plan.plan import Plan
from hetopt.problem import PlacementProblem
from hetopt.replay.accounting import ReplayResult, Served, account
from hetopt.replay.arrivals import arrival_times
from hetopt.replay.config import ReplayConfig
from hetopt.replay.control import check_failures
from hetopt.replay.paths import PathSampler, path_graph
from hetopt.replay.pools import PoolSizing, devices_held, op_specs, plan_links, plan_pools
from hetopt.replay.simulation import Progress, Simulation

__all__ = ["Progress", "ReplayConfig", "ReplayResult", "pool_sizing", "replay"]


def pool_sizing(
    plan: Plan, problem: PlacementProblem, table: pd.DataFrame
) -> dict[str, tuple[int, PoolSizing]]:
    """Each pool of ``plan`` with its replicas and the planner's sizing rule for it.

    At the plan's own rate and utilisation cap the rule gives back the plan's counts; the
    controller applies it at the rate it measures.
    """
    pools, _ = plan_pools(plan, problem, table)
    return {s.name: (s.replicas, s.sizing) for s in pools}


def replay(
    plan: Plan,
    problem: PlacementProblem,
    table: pd.DataFrame,
    config: ReplayConfig,
    progress: Progress | None = None,
    *,
    graph: OperatorGraph,
) -> ReplayResult:
    """Replay request traffic through ``plan``.

    Parameters
    ----------
    plan
        A verified plan.
    problem
        The placement problem it answers (device counts, latencies, edges, loops).
    table
        The cost table frame (per-option batch, tp x pp, busy and static times).
    config
        Arrivals, horizon, seed, service-time model, router, controller and failures.
    progress
        Optional callback receiving short status lines.
    graph
        The decomposed graph the plan places: each operator's kind (its prefill ends the
        first token, its decode sets the time between tokens) and tokens ($/Mtok).

    Returns
    -------
    ReplayResult

    Examples
    --------
    A minute of the voice agent's traffic through its plan; every request is accounted for:

    >>> from hetopt.pipeline import PlanRequest, plan_agent
    >>> from hetopt.replay.arrivals import ArrivalSpec
    >>> from hetopt.workloads import load_workload
    >>> out = plan_agent(PlanRequest(load_workload("voice_agent"), baselines=()))
    >>> config = ReplayConfig(arrivals=ArrivalSpec(rate_per_s=2.0), duration_s=60.0, seed=0)
    >>> s = replay(out.plan, out.problem, out.table.frame, config, graph=out.graph).summary
    >>> s["arrived"] == s["completed"] + s["dropped"] + s["in_flight_at_end"] > 0
    True
    """
    rng = np.random.default_rng(config.seed)
    arrivals = arrival_times(config.arrivals, config.duration_s, rng)
    choice = np.asarray(plan.choice, dtype=int)
    dev = problem.opt_device[choice]
    cross = (dev[problem.edge_src] != dev[problem.edge_dst]).astype(float)
    ops, pools = op_specs(plan, problem, table, graph)
    check_failures(
        config.failures,
        devices_held(pools, problem.devices),
        replaced=config.controller.enabled,
    )
    links = plan_links(problem, dev, cross, pools, config.link_contention)
    sampler = PathSampler(
        path_graph(
            problem,
            cross,
            np.array([op.latency_s for op in ops]),
            np.array([op.tokens for op in ops]),
            links.edge_link,
        )
    )
    sim = Simulation(
        config, problem.devices, ops, pools, links.capacities, sampler, arrivals, rng, progress
    )
    records = sim.run()
    served = Served(pools, sim.pools, links.names, sim.links, arrivals, sim.dynamic)
    return account(plan, problem, config, ops, served, records)
