"""Closed-form queueing results the replay is validated against."""

from __future__ import annotations

import math


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
    top = a**servers / math.factorial(servers) / (1 - rho)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(servers)) + top)
    return p_wait / (servers * service_rate_per_s - arrival_rate_per_s)
