"""Shared plans for the replay tests."""

from __future__ import annotations

import pytest

from hetopt.hardware import HardwareCatalog, load_catalog
from hetopt.hardware.spec import HardwareSpec
from hetopt.pipeline import PlanOutcome, PlanRequest, plan_agent
from hetopt.workloads import Workload

MMC_RATE_PER_S = 25.0
MMC_SERVICE_S = 0.1


@pytest.fixture(scope="session")
def mmc() -> PlanOutcome:
    """One light operator (100 ms of fp32 work) at 25 req/s on a pool of Xeon CPUs: 4 of them."""
    cpu: HardwareCatalog = load_catalog().select(["Xeon-SPR"])
    flops = MMC_SERVICE_S * cpu.get("Xeon-SPR").effective_flops_per_s("fp32")
    workload = {
        "name": "mmc",
        "request_rate_per_s": MMC_RATE_PER_S,
        "edges": [],
        "nodes": {"work": {"kind": "general_compute", "work": {"flops": flops}}},
    }
    return plan_agent(
        PlanRequest(
            Workload.from_mapping(workload, "mmc"),
            baselines=(),
            hardware=HardwareSpec(devices=("Xeon-SPR",)),
        )
    )
