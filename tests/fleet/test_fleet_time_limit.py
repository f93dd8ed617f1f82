"""Fleet solves under a real time limit: every backend and method stops on time (model building
included), returns a verified plan, and reports a gap only when a bound is known and
"optimal" only when proven. Real solvers on a synthetic fleet too large to prove in 2 s."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

from hetopt.cli.main import main
from hetopt.fleet import heuristics
from hetopt.fleet.evaluate import evaluate_fleet
from hetopt.fleet.generator import binding_inventory
from hetopt.fleet.problem import FleetProblem, build_fleet_problem
from hetopt.fleet.solve import solve_fleet
from hetopt.solvers.base import SolverOptions, SolveStatus

LIMIT_S = 2.0
MARGIN_S = 1.5


def _fleet(n_ops: int, binding: bool) -> FleetProblem:
    """A synthetic fleet of ``n_ops`` operators; with ``binding`` the three most used types are
    capped at 70 % of the greedy plan's use (the inventory binds)."""
    from hetopt.cli.compose import compose_config
    from hetopt.cli.fleet_cmd import fleet_request

    # Per-operator LLM replicas: with shared pools the greedy start alone can outlast the 2 s
    # limit on thousands of pool keys (a known gap, see the README's fleet section).
    req = fleet_request(
        compose_config(["fleet=synthetic", f"fleet.synthetic.n_ops={n_ops}", "costs.llm_pools=off"])
    )
    fp = build_fleet_problem(req.fleet, req.hardware, req.costs, req.tco)
    if not binding:
        return fp
    greedy = heuristics.greedy(fp)
    assert greedy.choices is not None
    caps = binding_inventory(
        fp.devices, evaluate_fleet(fp, greedy.choices).devices_per_type, 0.7, 3
    )
    inventory = np.array(
        [min(fp.device_inventory[j], caps.get(d, math.inf)) for j, d in enumerate(fp.devices)]
    )
    return fp.with_inventory(inventory)


@pytest.fixture(scope="module")
def fleets() -> dict[str, FleetProblem]:
    """Instances each backend cannot prove within the 2 s limit on a 2-core machine, measured
    without a limit there: HiGHS proves the 120-operator binding fleet in about 1.3-2.2 s, the
    300-operator one in 5.7 s (its model builds in about 0.5 s, so HiGHS has the rest of the
    limit to find a bound) and the 400-operator one in 11 s (but building that model takes 1 to
    1.3 s of the 2 s, and on a busy moment the limit passed before HiGHS had a bound: 3 of 7
    runs); CP-SAT proves 120 operators in 1.9 s and 200 in 5 s; the decomposition needs 24 s
    for 120; CBC proves 120 in 3 s and 200 in 28 s."""
    return {
        "binding": _fleet(120, binding=True),
        "binding200": _fleet(200, binding=True),
        "binding300": _fleet(300, binding=True),
    }


@pytest.mark.parametrize(
    ("backend", "method", "fleet"),
    [
        ("highs", "monolithic", "binding300"),
        ("cbc", "monolithic", "binding200"),
        ("cpsat", "monolithic", "binding200"),
        ("highs", "decomposition", "binding"),
    ],
)
def test_fleet_time_limit_returns_a_verified_plan_with_its_gap(
    fleets: dict[str, FleetProblem], backend: str, method: str, fleet: str
) -> None:
    t0 = time.perf_counter()
    res = solve_fleet(
        fleets[fleet],
        SolverOptions(backend=backend, time_limit_s=LIMIT_S, gap_rel=1e-9),
        method=method,
    )  # type: ignore[arg-type]
    wall = time.perf_counter() - t0
    assert wall <= LIMIT_S + MARGIN_S, wall
    assert res.status is SolveStatus.FEASIBLE, (res.status, res.message)
    assert res.has_solution and res.verified
    if backend == "cbc" and "CBC was stopped" in res.message:
        # CBC checks its limit only between nodes; on a loaded machine its root can outlast
        # the grace, and then it is stopped and no bound is known (and none is printed).
        assert math.isnan(res.bound_usd_per_h) and math.isnan(res.gap)
    else:
        assert math.isfinite(res.bound_usd_per_h) and math.isfinite(res.gap), res.message
        assert 1e-9 < res.gap < 1 and res.bound_usd_per_h <= res.objective_usd_per_h
    assert res.evaluation is not None
    assert res.objective_usd_per_h == pytest.approx(res.evaluation.objective_usd_per_h)


def test_issue_command_holds_the_limit_and_claims_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's 1000-operator monolithic CP-SAT run with a 1 s limit used to fail with a
    negative time limit. Where building the model takes the whole limit (a loaded machine) the
    greedy plan comes back with no invented bound or gap; where CP-SAT gets its slice, its
    bound is a true lower bound and the gap follows from it. Either way: unproven, on time."""
    run = tmp_path / "fleet"
    code = main(
        [
            "fleet",
            "fleet=synthetic",
            "fleet.synthetic.n_ops=1000",
            "solver=cpsat",
            "solver.time_limit_s=1",
            "fleet.method=monolithic",
            "fleet.baselines=[greedy]",
            f"run_dir={run}",
        ]
    )
    out = " ".join(capsys.readouterr().out.split()) + " ".join(capsys.readouterr().err.split())
    assert code == 2  # written, but not proven within fleet.gap_rel: SolverLimitError
    assert "Traceback" not in out and "must be > 0" not in out
    info = json.loads((run / "fleet_plan.json").read_text())
    assert info["status"] == "feasible" and info["verified"]
    if info["bound_usd_per_h"] is None:
        assert info["gap"] is None
    else:
        objective, bound = info["objective_usd_per_h"], info["bound_usd_per_h"]
        assert 0.0 <= bound <= objective
        assert info["gap"] == pytest.approx((objective - bound) / objective)
        assert info["gap"] > 0.0  # not proven
    assert info["build_s"] + info["solve_s"] <= 1.0 + MARGIN_S


def test_fleet_prints_no_gap_without_a_bound_and_no_optimal_with_a_gap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The printed line: no "-inf"/"nan" for an unknown bound; a proven plan within gap_rel is
    said to be within its gap, not plain "optimal"."""
    main(
        [
            "fleet",
            "fleet=synthetic",
            "fleet.synthetic.n_ops=1000",
            "solver=highs",
            "solver.time_limit_s=1",
            "fleet.method=monolithic",
            "fleet.baselines=[greedy]",
            f"run_dir={tmp_path / 'a'}",
        ]
    )
    captured = capsys.readouterr()
    out = " ".join((captured.out + captured.err).split())
    assert "no bound known" in out and "not proven optimal" in out
    assert "-inf" not in out and "nan%" not in out and "bound -" not in out
    assert (
        main(
            [
                "fleet",
                "fleet=enterprise",
                "fleet.gap_rel=0.05",
                "fleet.baselines=[greedy]",
                f"run_dir={tmp_path / 'b'}",
            ]
        )
        == 0
    )
    out = " ".join(capsys.readouterr().out.split())
    info = json.loads((tmp_path / "b" / "fleet_plan.json").read_text())
    assert info["status"] == "optimal"
    assert "proven" in out and "nan%" not in out and " nan " not in out
    if info["gap"] >= 1e-5:
        assert f"proven within {info['gap']:.3%} of the optimum" in out
