"""Files a planning run leaves in its run directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from hetopt.pipeline import PlanOutcome
from hetopt.report.figures import plot_plan


def write_outputs(outcome: PlanOutcome, cfg: dict[str, Any], run_dir: Path, *,
                  config: bool = True, cost_table: bool = True, figure: bool = True) -> None:
    """Write plan.json, placement.csv and devices.csv, and unless turned off config.yaml,
    cost_table.csv and plan.png (a sweep point's record holds its config already)."""
    plan = outcome.plan
    run_dir.mkdir(parents=True, exist_ok=True)
    if config:
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (run_dir / "plan.json").write_text(json.dumps(plan.to_dict(), indent=2))
    plan.placement.to_csv(run_dir / "placement.csv", index=False)
    plan.devices.to_csv(run_dir / "devices.csv", index=False)
    if cost_table:
        outcome.table.frame.to_csv(run_dir / "cost_table.csv", index=False)
    if figure:
        plot_plan(plan, run_dir / "plan.png")
