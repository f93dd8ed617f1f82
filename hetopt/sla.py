"""Service-level agreement: per-phase LLM targets and an end-to-end bound over the agent graph."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

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
            if value is not None and (not _is_number(value) or value <= 0):
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


def check_bounds(values: Mapping[str, Any], where: str) -> None:
    """Refuse an SLA whose per-phase bounds exceed its own end-to-end bound.

    A request's first token and each of its token-to-token steps are part of its end-to-end
    latency, so under a hard end-to-end bound a larger TTFT or TBT bound is a mistake (most
    often a unit slip: ``ttft_s: 250`` for 250 ms). Checked on each SLA block as the user wrote
    it (the ``sla`` group, a workload's ``sla:``, a fleet tenant's ``sla:``), so a default TTFT
    of one block does not clash with an end-to-end bound from another.

    Parameters
    ----------
    values
        One SLA block (keys of :class:`Sla`; absent keys are unset).
    where
        The block, for messages (``sla``, ``workload file x.yaml: sla``).

    Raises
    ------
    InputError
        Naming both bounds and the fix.

    Examples
    --------
    >>> check_bounds({"ttft_s": 0.25, "e2e_s": 10.0}, "sla")
    >>> try:
    ...     check_bounds({"ttft_s": 20.0, "e2e_s": 10.0}, "sla")
    ... except InputError as exc:
    ...     print(str(exc)[:75])
    sla: the TTFT bound ttft_s = 20 s exceeds the end-to-end bound e2e_s = 10 s
    """
    e2e = values.get("e2e_s")
    if values.get("penalty_usd_per_h_per_s") is not None or not _is_number(e2e):
        return
    e2e_s = float(e2e)  # type: ignore[arg-type]  # _is_number checked it
    for key, label in (("ttft_s", "TTFT"), ("tbt_s", "token-to-token")):
        bound = values.get(key)
        if not _is_number(bound):
            continue
        bound_s = float(bound)  # type: ignore[arg-type]
        if bound_s > e2e_s:
            raise InputError(
                f"{where}: the {label} bound {key} = {bound_s:g} s exceeds the end-to-end "
                f"bound e2e_s = {e2e_s:g} s, which every request must meet whole. Lower "
                f"{key} (seconds, not milliseconds) or raise e2e_s; set {key} to null for no "
                f"per-phase bound."
            )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
