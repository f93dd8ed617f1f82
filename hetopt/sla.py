"""Service-level agreement: per-phase LLM targets and an end-to-end bound over the agent graph."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from hetopt.errors import InputError


@dataclass(frozen=True)
class Sla:
    """What a plan must meet.

    Attributes
    ----------
    ttft_s
        Time to first token: upper bound on every LLM prefill's latency (None: no bound).
    tbt_s
        Token-to-token latency: upper bound on every decode step (None: no bound).
    e2e_s
        End-to-end latency bound over every source-to-sink path of the agent graph, loops
        unrolled ``loop_iterations`` times (None: no bound).
    penalty_usd_per_h_per_s
        ``lambda`` of the paper's soft SLA: the price of each second of end-to-end violation.
        None makes the SLA hard (``lambda -> infinity``).
    loop_iterations
        ``"max"`` bounds the latency of the worst case (every loop at its maximum iterations);
        ``"expected"`` bounds the latency of an average request.
    """

    ttft_s: float | None = 0.25
    tbt_s: float | None = 0.02
    e2e_s: float | None = None
    penalty_usd_per_h_per_s: float | None = None
    loop_iterations: Literal["max", "expected"] = "max"

    def __post_init__(self) -> None:
        for name in ("ttft_s", "tbt_s", "e2e_s", "penalty_usd_per_h_per_s"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value <= 0):
                raise InputError(
                    f"SLA field 'sla.{name}' must be a positive number of "
                    f"{'seconds' if name.endswith('_s') else 'dollars per hour per second'} "
                    f"or null, got {value!r}. Set it with e.g. `sla.{name}=0.25` or "
                    f"`sla.{name}=null`."
                )
        if self.loop_iterations not in ("max", "expected"):
            raise InputError(
                f"SLA field 'sla.loop_iterations' must be 'max' or 'expected', got "
                f"{self.loop_iterations!r}."
            )

    @property
    def hard(self) -> bool:
        """True when the end-to-end SLA is a hard constraint."""
        return self.penalty_usd_per_h_per_s is None
