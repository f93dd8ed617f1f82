"""Files a planning run leaves in its run directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from hetopt.pipeline import PlanOutcome
from hetopt.report.figures import plot_plan


def write_outputs(outcome: PlanOutcome, cfg: dict[str, Any], run_dir: Path) -> None:
    """Write plan.json, plan.png, placement/devices/cost-table CSVs and config.yaml."""
    plan = outcome.plan
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (run_dir / "plan.json").write_text(json.dumps(plan.to_dict(), indent=2))
    plan.placement.to_csv(run_dir / "placement.csv", index=False)
    plan.devices.to_csv(run_dir / "devices.csv", index=False)
    outcome.table.frame.to_csv(run_dir / "cost_table.csv", index=False)
    plot_plan(plan, run_dir / "plan.png")
