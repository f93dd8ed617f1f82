"""Replay settings (the Hydra ``replay`` group), kept apart from the simulation.

Composing a config needs :class:`ReplayConfig` only: importing this module loads no SimPy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hetopt.errors import InputError
from hetopt.replay.arrivals import ArrivalSpec
from hetopt.replay.control import ControllerConfig, FailureSpec, RouterConfig


@dataclass(frozen=True)
class ReplayConfig:
    """Replay settings (the Hydra ``replay`` group).

    Attributes
    ----------
    duration_s
        Simulated time during which requests arrive; in-flight requests then drain for up to
        ``drain_s``.
    warmup_s
        Requests arriving before this are simulated but left out of every statistic: latency
        percentiles, SLA attainment and per-stage and per-pool waits count only the requests
        (and their jobs) arriving in ``[warmup_s, duration_s)``; utilisation, devices held and
        pool load are measured over that time window. The request counts and the money held
        cover the whole replay.
    seed
        Seed of every random draw: the same seed gives the same replay.
    service
        ``deterministic`` service times, or ``exponential`` ones with the same means (for
        checking against queueing formulas).
    tool_latency_cv
        Coefficient of variation of static latencies (external APIs), lognormal; 0 = fixed.
    sample_s
        Interval of the utilisation time series.
    link_contention
        Queue transfers of 0.1 ms or more (KV caches) first come, first served on a link pool
        per (sending, receiving) device type, one link per sending device; False lets every
        transfer run at full bandwidth at once.
    router, controller, failures
        Fast-path routing, slow-path re-planning and injected device failures
        (:mod:`hetopt.replay.control`).
    """

    arrivals: ArrivalSpec = field(default_factory=ArrivalSpec)
    duration_s: float = 300.0
    warmup_s: float = 0.0
    drain_s: float = 600.0
    seed: int = 0
    service: str = "deterministic"
    tool_latency_cv: float = 0.0
    sample_s: float = 1.0
    link_contention: bool = True
    router: RouterConfig = field(default_factory=RouterConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    failures: tuple[FailureSpec, ...] = ()

    @property
    def dynamic(self) -> bool:
        """True when routing, admission control, re-planning or failures are in play.

        Otherwise every pool is one first-come-first-served queue over all of its slots, which
        is exactly what a least-loaded router over always-available replicas amounts to, and the
        replay takes that faster path.
        """
        return (
            self.router.policy != "least_loaded"
            or self.router.max_wait_s is not None
            or self.controller.enabled
            or bool(self.failures)
        )

    def __post_init__(self) -> None:
        if not self.duration_s > 0 or self.warmup_s < 0 or self.warmup_s >= self.duration_s:
            raise InputError(
                "replay.duration_s must be > 0 and replay.warmup_s in [0, duration_s)."
            )
        if self.service not in ("deterministic", "exponential"):
            raise InputError("replay.service must be 'deterministic' or 'exponential'.")
        if self.tool_latency_cv < 0 or not self.sample_s > 0 or self.drain_s < 0:
            raise InputError(
                "replay.tool_latency_cv and replay.drain_s must be >= 0, replay.sample_s > 0."
            )
