"""Guard against the highspy / ortools crash (google/or-tools#5246).

PuLP pre-loads highspy with RTLD_GLOBAL; with a highspy whose HiGHS differs from the one inside
ortools, importing pulp first and then solving with ortools' HiGHS segfaults. hetopt pins
highspy==1.12.0 (the HiGHS inside ortools 9.15) and imports ortools first. These tests run in
subprocesses so a segfault fails the test instead of killing pytest.
"""

from __future__ import annotations

import subprocess
import sys

BAD_ORDER = """
import pulp, highspy
from ortools.math_opt.python import mathopt
from ortools.sat.python import cp_model
m = mathopt.Model(); x = m.add_integer_variable(lb=0, ub=10); m.add_linear_constraint(2 * x >= 3)
m.minimize(x)
r = mathopt.solve(m, mathopt.SolverType.HIGHS)
assert abs(r.objective_value() - 2) < 1e-9
p = pulp.LpProblem("t", pulp.LpMinimize); y = pulp.LpVariable("y", 0, 10, cat="Integer")
p += y; p += 2 * y >= 3
p.solve(pulp.HiGHS(msg=False)); assert abs(pulp.value(y) - 2) < 1e-9
c = cp_model.CpModel(); z = c.new_int_var(0, 10, "z"); c.add(2 * z >= 3); c.minimize(z)
s = cp_model.CpSolver(); assert s.solve(c) == cp_model.OPTIMAL and s.value(z) == 2
print("ok")
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_pulp_before_ortools_does_not_crash() -> None:
    proc = _run(BAD_ORDER)
    assert proc.returncode == 0, f"exit {proc.returncode} (139 = segfault): {proc.stderr}"
    assert proc.stdout.strip() == "ok"


def test_pinned_highspy_matches_ortools_highs() -> None:
    proc = _run("import highspy, importlib.metadata as m; print(m.version('highspy'))")
    assert proc.stdout.strip() == "1.12.0", "highspy must stay pinned to ortools' HiGHS"


def test_package_solves_with_every_backend_in_one_process() -> None:
    code = (
        "import hetopt\n"
        "from hetopt.solvers import solve, SolverOptions\n"
        "from hetopt.testing import CONFORMANCE\n"
        "p = CONFORMANCE['worked_example'].build()\n"
        "print(sorted({round(solve(p, SolverOptions(backend=b)).objective, 6)"
        " for b in ('highs', 'cbc', 'cpsat')}))\n"
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[342.0]"
