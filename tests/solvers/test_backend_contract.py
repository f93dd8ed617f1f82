"""The solver contract: every backend declares its capabilities, a request it cannot serve is
refused before anything is built, and each backend's own status words survive, next to a
two-level status, on an optimal, an infeasible and a time-limited instance.

All solves here are real; nothing fakes a solver. Where a test checks that something is *not*
built, the builder is replaced by one that fails the test if called.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hetopt.cli.main import main
from hetopt.errors import InputError
from hetopt.fleet.problem import fleet_from_problems
from hetopt.generators import hard_problem
from hetopt.solvers import (
    BACKENDS,
    Backend,
    Capabilities,
    SolverOptions,
    SolveStatus,
    Termination,
    available_backends,
    get_backend,
    solve,
)
from hetopt.solvers.base import SolveProgress, WarmStart
from hetopt.solvers.registry import DRIVERS
from hetopt.testing import CONFORMANCE

# What each solver says in its own words (HiGHS's model status, CBC's "Result -" line or
# PuLP's solution status, CP-SAT's status name, the enumeration's count).
OPTIMAL_TEXT = {
    "highs": "Optimal",
    "cbc": "Optimal solution found",
    "cpsat": "OPTIMAL",
    "bruteforce": "4 assignments enumerated",
}
INFEASIBLE_TEXT = {
    "highs": "Infeasible",
    "cbc": "No Solution Exists",
    "cpsat": "INFEASIBLE",
    "bruteforce": "4 assignments",
}
# A time-limited solve: an instance each backend cannot finish within the limit.
TIME_LIMITED = {
    "highs": (80, 1.0, {"Time limit reached"}),
    "cbc": (80, 1.0, {"Stopped on time limit"}),
    "cpsat": (40, 1.0, {"FEASIBLE", "UNKNOWN"}),
    "bruteforce": (4, 0.05, {"20736 assignments", "20736 assignments enumerated"}),
}


def _never(*_args: object, **_kw: object) -> None:
    raise AssertionError("built or enumerated what the backend had already refused")


def test_every_registered_backend_declares_its_capabilities() -> None:
    assert set(available_backends()) == {"highs", "cbc", "cpsat", "bruteforce"}
    for name in available_backends():
        backend = BACKENDS[name]
        assert isinstance(backend, Backend), name
        assert backend.name == name
        assert isinstance(backend.capabilities, Capabilities)
        assert backend.capabilities.formulation in DRIVERS, name
    caps = {n: BACKENDS[n].capabilities for n in available_backends()}
    assert [n for n, c in caps.items() if c.fleet] == ["highs", "cbc", "cpsat"]
    assert [n for n, c in caps.items() if c.progress] == ["highs", "cpsat"]
    assert [n for n, c in caps.items() if c.warm_start] == ["highs", "cbc", "cpsat"]
    assert [n for n, c in caps.items() if c.integer_scaling] == ["cpsat"]
    assert caps["bruteforce"].max_assignments is not None


def test_importing_the_registry_loads_no_backend() -> None:
    code = (
        "import sys\n"
        "from hetopt.solvers.registry import available_backends, BACKENDS\n"
        "print(available_backends())\n"
        "print(sorted(m for m in sys.modules if m.startswith('hetopt.solvers.')"
        " and m.endswith(('_backend', 'bruteforce'))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1] == "[]"


@pytest.mark.parametrize("backend", ["highs", "cpsat"])
def test_declared_progress_is_reported(backend: str) -> None:
    reports: list[SolveProgress] = []
    res = solve(hard_problem(8), SolverOptions(backend=backend), on_progress=reports.append)
    assert res.status is SolveStatus.OPTIMAL
    assert reports and reports[-1].incumbent == pytest.approx(res.objective, rel=1e-6)


def test_hints_a_backend_does_not_take_are_dropped_not_refused() -> None:
    """Brute force takes no start and reports no progress: given both, it still solves, and
    the callback is never called."""
    problem = CONFORMANCE["worked_example"].build()
    reference = solve(problem, SolverOptions(backend="highs"))
    reports: list[SolveProgress] = []
    res = solve(
        problem,
        SolverOptions(backend="bruteforce"),
        warm_start=WarmStart.from_result(problem, reference),
        on_progress=reports.append,
    )
    assert res.status is SolveStatus.OPTIMAL and res.objective == pytest.approx(342.0)
    assert reports == []


def test_bruteforce_fleet_is_refused_before_anything_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hetopt.fleet.solve as fleet_solve

    for builder in ("build_milp", "build_cpsat"):
        monkeypatch.setattr(fleet_solve, builder, _never)
    monkeypatch.setattr(fleet_solve.heuristics, "greedy", _never)
    fp = fleet_from_problems([CONFORMANCE["worked_example"].build()], name="one")
    with pytest.raises(InputError) as err:
        fleet_solve.solve_fleet(fp, SolverOptions(backend="bruteforce"))
    text = str(err.value)
    assert "solver.backend=bruteforce cannot plan a fleet" in text
    assert "solver=highs, solver=cbc, solver=cpsat" in text


def test_bruteforce_fleet_through_the_cli_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fleet", "solver=bruteforce", f"hydra.run.dir={tmp_path / 'run'}"]) == 2
    out = capsys.readouterr()
    text = " ".join((out.out + out.err).split())
    assert "Traceback" not in text
    assert "solver.backend=bruteforce cannot plan a fleet" in text and "solver=highs" in text
    assert not (tmp_path / "run" / "fleet.json").exists()


def test_too_large_an_enumeration_is_refused_before_enumerating(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hetopt.solvers.bruteforce as bruteforce

    monkeypatch.setattr(bruteforce, "solve_bruteforce", _never)
    with pytest.raises(InputError) as err:
        solve(hard_problem(8), SolverOptions(backend="bruteforce"))
    assert "would enumerate 429,981,696 assignments" in str(err.value)  # 12 ** 8
    assert "solver=highs" in str(err.value)


def test_unknown_backend_names_the_key_and_the_closest() -> None:
    with pytest.raises(InputError) as err:
        get_backend("cpsta")
    assert "solver.backend=cpsta" in str(err.value) and "'cpsat'" in str(err.value)


@pytest.mark.parametrize("backend", sorted(OPTIMAL_TEXT))
def test_optimal_keeps_the_solvers_words(backend: str) -> None:
    res = solve(CONFORMANCE["worked_example"].build(), SolverOptions(backend=backend))
    assert res.status is SolveStatus.OPTIMAL
    assert res.termination is Termination.OPTIMAL
    assert res.solver_status_text == OPTIMAL_TEXT[backend]


@pytest.mark.parametrize("backend", sorted(INFEASIBLE_TEXT))
def test_infeasible_keeps_the_solvers_words(backend: str) -> None:
    res = solve(CONFORMANCE["two_stage_infeasible"].build(), SolverOptions(backend=backend))
    assert res.status is SolveStatus.INFEASIBLE and not res.has_solution
    assert res.termination is Termination.INFEASIBLE
    assert res.solver_status_text == INFEASIBLE_TEXT[backend]


@pytest.mark.parametrize("backend", sorted(TIME_LIMITED))
def test_time_limit_keeps_the_solvers_words(backend: str) -> None:
    n_ops, limit_s, texts = TIME_LIMITED[backend]
    res = solve(
        hard_problem(n_ops), SolverOptions(backend=backend, time_limit_s=limit_s, gap_rel=1e-9)
    )
    assert res.status in (SolveStatus.FEASIBLE, SolveStatus.NO_SOLUTION), res.message
    assert res.termination is Termination.TIME_LIMIT, (res.termination, res.message)
    assert res.solver_status_text in texts
    assert res.message.startswith(res.solver_status_text)


def test_highs_thread_counts_may_change_between_solves() -> None:
    """HiGHS sizes one thread pool per process at its first solve; a later solve asking for
    another size must still solve (the backend keeps no record of the pool: it rebuilds it)."""
    problem = CONFORMANCE["worked_example"].build()
    for threads in (1, 2, 1, 3):
        res = solve(problem, SolverOptions(backend="highs", threads=threads))
        assert res.status is SolveStatus.OPTIMAL, (threads, res.message)


@pytest.mark.parametrize("backend", ["highs", "cbc", "cpsat"])
def test_the_fleet_returns_the_registry_result(backend: str) -> None:
    """A fleet of one, solved through the same registry: the same SolveResult, with the
    tenant's plan, the solver's words and the single agent's optimum."""
    from hetopt.fleet.solve import solve_fleet

    problem = CONFORMANCE["worked_example"].build()
    single = solve(problem, SolverOptions(backend=backend))
    fleet = solve_fleet(
        fleet_from_problems([problem], name="one"),
        SolverOptions(backend=backend),
        method="monolithic",
    )
    res = fleet.solve
    assert res.status is SolveStatus.OPTIMAL and res.termination is Termination.OPTIMAL
    assert res.solver_status_text == OPTIMAL_TEXT[backend]
    assert res.tenant_choices == single.choices == (single.choice,)
    assert res.objective == pytest.approx(single.objective)
    assert fleet.objective_usd_per_h == res.objective and fleet.verified
