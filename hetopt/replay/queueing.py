"""Closed-form queueing results the replay is validated against (Erlang C lives in
:mod:`hetopt.plan.queueing`, which also sizes the planner's queued TTFT)."""

from __future__ import annotations

from hetopt.plan.queueing import erlang_c


def erlang_c_wait_s(arrival_rate_per_s: float, service_rate_per_s: float, servers: int) -> float:
    """Mean waiting time in queue of M/M/c (Erlang C).

    Parameters
    ----------
    arrival_rate_per_s, service_rate_per_s
        Poisson arrival rate and the exponential service rate of one server.
    servers
        Number of servers ``c``; the load ``arrival / (c x service)`` must be below 1.

    Returns
    -------
    float
        Mean time a job waits before service, in seconds.

    Examples
    --------
    >>> round(erlang_c_wait_s(25.0, 10.0, 4), 4)
    0.0213
    """
    a = arrival_rate_per_s / service_rate_per_s
    rho = a / servers
    if not 0 <= rho < 1:
        raise ValueError(f"unstable queue: load {rho:.3f} >= 1")
    return erlang_c(servers, a) / (servers * service_rate_per_s - arrival_rate_per_s)
