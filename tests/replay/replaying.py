"""Replaying a planned outcome, written once for the replay tests."""

from __future__ import annotations

from hetopt.pipeline import PlanOutcome
from hetopt.replay.engine import ReplayConfig, ReplayResult, replay


def replay_outcome(out: PlanOutcome, config: ReplayConfig) -> ReplayResult:
    """Replay ``out``'s plan against its own problem, cost table and graph under ``config``."""
    return replay(out.plan, out.problem, out.table.frame, config, graph=out.graph)
