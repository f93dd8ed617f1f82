"""``hetopt plan -m ...``: Hydra multirun sweeps over any config value.

Each job of the sweep plans one point into its own Hydra job directory (``plan.json`` and
friends); a user error in one point is recorded in that directory's ``error.txt`` and the sweep
goes on. When the sweep ends, :class:`SweepSummary` (a Hydra callback) gathers every point into
``summary.csv`` in the sweep directory. Launchers are Hydra's: the basic one by default, or any
installed plugin (``hydra/launcher=joblib``).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import hydra
import pandas as pd
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from hetopt.errors import HetoptUserError
from hetopt.workloads import config_dir

log = logging.getLogger(__name__)


def run_point(cfg: dict[str, Any], run_dir: Path) -> float:
    """Plan one sweep point into ``run_dir``; return its TCO ($/h), or nan on a user error."""
    from hetopt.cli.config import request_from_config
    from hetopt.cli.outputs import write_outputs
    from hetopt.pipeline import plan_agent

    try:
        if cfg.get("workload_file"):
            from hetopt.workloads import load_workload

            cfg["workload"] = load_workload(str(cfg["workload_file"]))
        outcome = plan_agent(request_from_config(cfg))
    except HetoptUserError as exc:
        (run_dir / "error.txt").write_text(str(exc) + "\n")
        log.error("%s", exc)
        return math.nan
    write_outputs(outcome, cfg, run_dir)
    plan = outcome.plan
    log.info("%s: %.4f $/h, %s, verified=%s", plan.workload, plan.tco_usd_per_hour,
             plan.solve.status, plan.verified)
    return plan.tco_usd_per_hour


@hydra.main(config_path=str(config_dir()), config_name="config", version_base="1.3")
def sweep_app(cfg: DictConfig) -> float:
    """Hydra task: one sweep point."""
    data = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(data, dict)
    return run_point({str(k): v for k, v in data.items()},
                     Path(HydraConfig.get().runtime.output_dir))


class SweepSummary(Callback):
    """Gather every point of a finished sweep into ``summary.csv``."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Write ``summary.csv``: overrides, status, TCO, latency and solver figures per point."""
        root = Path(config.hydra.sweep.dir)
        rows = []
        for job in sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit()):
            overrides_file = job / ".hydra" / "overrides.yaml"
            overrides = (" ".join(OmegaConf.load(overrides_file))
                         if overrides_file.exists() else "")
            row: dict[str, Any] = {"job": int(job.name), "overrides": overrides}
            if (job / "plan.json").exists():
                plan = json.loads((job / "plan.json").read_text())
                solver = plan["solver"]
                row.update(status=solver["status"], tco_usd_per_hour=plan["tco_usd_per_hour"],
                           cost_usd_per_request=plan["cost_usd_per_request"],
                           e2e_latency_s=plan["e2e_latency_s"],
                           sla_satisfied=plan["sla"]["satisfied"], gap=solver["gap"],
                           runtime_s=solver["runtime_s"],
                           verified=plan["verification"]["passed"])
            elif (job / "error.txt").exists():
                row.update(status="error", error=(job / "error.txt").read_text().strip())
            rows.append(row)
        frame = pd.DataFrame(rows).sort_values("job")
        frame.to_csv(root / "summary.csv", index=False)
        log.info("sweep summary: %s", root / "summary.csv")
