"""Queueing at the planned load: how long a request waits for an LLM replica.

A plan sizes every LLM phase to carry its load at most at ``costs.max_utilization``, but a
request arriving at random still waits when every slot is busy. Each exclusive phase runs
``replicas x batch`` slots (the replay's model of continuous batching) that hold a request for
the phase's latency ``S``. Arrivals are Poisson at ``rate x visits``. The wait of such an
M/D/c queue is approximated from Erlang C (``C``, the probability of waiting, at offered load
``a = lambda S``): the mean wait of M/M/c, ``C S / (c - a)``, halved for deterministic service
(exact for c = 1, Pollaczek-Khinchine), with the M/M/c exponential tail at that mean:
``P(W > t) = C exp(-t / w)``, ``w = S / (2 (c - a))``.

:func:`queued_ttft` gives the TTFT (prefill wait + prefill) at the median and the 90th
percentile; the replay measures the same quantities (``stages.csv``: ``p50_wait_s``,
``p90_wait_s``), and the tests hold the two side by side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from hetopt.models.evaluate import held_devices, key_counts
from hetopt.problem import PlacementProblem


def erlang_c(servers: int, offered: float) -> float:
    """Probability that an arrival waits in an M/M/c queue (1 when the queue is unstable).

    Examples
    --------
    >>> round(erlang_c(1, 0.5), 3)  # M/M/1: the utilisation
    0.5
    >>> round(erlang_c(2, 1.0), 4)
    0.3333
    """
    if offered >= servers:
        return 1.0
    term, total = 1.0, 1.0
    for k in range(1, servers):
        term *= offered / k
        total += term
    last = term * offered / servers / (1 - offered / servers)
    return last / (total + last)


@dataclass(frozen=True)
class StageWait:
    """Waiting time of one exclusive phase at the planned load (seconds).

    Attributes
    ----------
    operator
        The phase (``llm.prefill``, ...).
    kind
        Its operator kind (``prefill`` or ``decode``).
    servers, service_s, utilisation
        Slots (replicas x batch), the time a request holds one, and the offered load per slot.
    p_wait, mean_wait_s, p50_wait_s, p90_wait_s
        Probability of waiting and the wait's mean, median and 90th percentile.
    """

    operator: str
    kind: str
    servers: int
    service_s: float
    utilisation: float
    p_wait: float
    mean_wait_s: float
    p50_wait_s: float
    p90_wait_s: float


def md_c_wait(
    servers: int, service_s: float, rate_per_s: float
) -> tuple[float, float, float, float]:
    """(P(wait), mean, median, 90th percentile) of the wait in an M/D/c queue (approximate).

    Examples
    --------
    >>> p, mean, p50, p90 = md_c_wait(1, 1.0, 0.5)  # M/D/1 at 50 %: mean wait 0.5 s exactly
    >>> round(mean, 3), p50, round(p90, 3)
    (0.5, 0.0, 1.609)
    """
    offered = rate_per_s * service_s
    if offered >= servers:
        return 1.0, math.inf, math.inf, math.inf
    c = erlang_c(servers, offered)
    scale = service_s / (2.0 * (servers - offered))  # mean of the exponential tail
    return (c, c * scale, _quantile(c, scale, 0.5), _quantile(c, scale, 0.9))


def _quantile(p_wait: float, scale_s: float, q: float) -> float:
    """Quantile q of a wait that is 0 with probability 1 - p and else exponential."""
    if p_wait <= 1 - q:
        return 0.0
    return scale_s * math.log(p_wait / (1 - q))


def stage_waits(
    problem: PlacementProblem, table: pd.DataFrame, choice: tuple[int, ...]
) -> list[StageWait]:
    """The wait of every exclusive (LLM) phase of a plan at its planned load.

    The members of a shared LLM pool queue together: one M/D/c queue whose arrivals are
    theirs summed and whose service time is their rate-weighted mean slot occupancy at the
    throughput the pool was sized with (``batch / requests_per_s``, each member at its own
    lengths); each member reports its own latency as its service time, with that queue's wait.
    """
    held = held_devices(problem, choice, key_counts(problem, choice))
    # shared pool and capacity -> (arrivals/s, offered load)
    queue: dict[tuple[int, int], tuple[float, float]] = {}
    for i, o in enumerate(choice):
        k = int(problem.opt_key[o])  # type: ignore[index]
        dim = int(problem.opt_key_dim[o])  # type: ignore[index]
        if k >= 0:
            row = table.loc[problem.opt_row[o]]
            occupancy = float(row["batch"]) / float(row["requests_per_s"])
            rate = problem.request_rate_per_s * float(problem.op_visits[i])
            arrivals, offered = queue.get((k, dim), (0.0, 0.0))
            queue[(k, dim)] = (arrivals + rate, offered + rate * occupancy)
    out = []
    for i, o in enumerate(choice):
        row = table.loc[problem.opt_row[o]]
        if not bool(row["exclusive"]) or row["config"] == "profiled":
            continue
        dpr = int(row["devices_per_replica"])
        servers = max(int(held[i]) // dpr, 1) * int(row["batch"])
        service = float(row["latency_s"])
        rate = problem.request_rate_per_s * float(problem.op_visits[i])
        k = int(problem.opt_key[o])  # type: ignore[index]
        dim = int(problem.opt_key_dim[o])  # type: ignore[index]
        arrivals, offered = queue[(k, dim)] if k >= 0 else (rate, rate * service)
        mean_service = offered / arrivals if k >= 0 else service
        p, mean, p50, p90 = md_c_wait(servers, mean_service, arrivals)
        out.append(
            StageWait(
                problem.ops[i],
                problem.op_kind[i],
                servers,
                service,
                offered / servers,
                p,
                mean,
                p50,
                p90,
            )
        )
    return out


def queued_ttft(waits: list[StageWait]) -> tuple[float | None, float | None]:
    """(median, 90th percentile) of prefill wait + prefill over the plan's prefill phases
    (the slowest one), or ``(None, None)`` without a prefill phase."""
    prefill = [w for w in waits if w.kind == "prefill"]
    if not prefill:
        return None, None
    return (
        max(w.service_s + w.p50_wait_s for w in prefill),
        max(w.service_s + w.p90_wait_s for w in prefill),
    )
