"""Guard against the highspy / ortools crash (google/or-tools#5246).

PuLP pre-loads highspy with RTLD_GLOBAL; with a highspy whose HiGHS differs from the one inside
ortools, importing pulp first and then solving with ortools' HiGHS segfaults. hetopt pins
highspy==1.12.0 (the HiGHS inside ortools 9.15) and imports ortools first. These tests run in
subprocesses so a segfault fails the test instead of killing pytest.

Nothing imports ortools or pulp at ``import hetopt`` any more; the later tests check that the
order still holds wherever pulp is loaded, and that importing the library or composing a config
loads no solver, MLIR or plotting library at all.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

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


# --- Where pulp loads now that nothing loads it at `import hetopt` -------------------------------
#
# PuLP (and with it highspy) is imported lazily, by the modules that build or solve a MILP. The
# guarantee above must hold wherever that happens: hetopt imports pulp in exactly one module,
# hetopt/_solverlibs.py, which loads ortools' native library first; and in a fresh interpreter every
# command that solves with PuLP has ortools loaded before pulp and highspy.

PACKAGE = Path(__file__).resolve().parents[1] / "hetopt"
ORTOOLS_NATIVE = "ortools.sat.python.cp_model_helper"  # the extension linked to libortools
SOLVER_LIBS_MODULES = (ORTOOLS_NATIVE, "pulp", "highspy")
HEAVY = (
    "ortools",
    "pulp",
    "highspy",
    "matplotlib",
    "torch_mlir",
    "iree",
    "langgraph",
    "langchain_core",
)


def _imported_names(tree: ast.AST) -> list[tuple[str, ast.stmt]]:
    names: list[tuple[str, ast.stmt]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(alias.name, node) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append((node.module, node))
    return names


def test_pulp_is_imported_in_one_module_after_ortools() -> None:
    loader = PACKAGE / "_solverlibs.py"
    body = ast.parse(loader.read_text()).body
    imports = [n for n, _ in _imported_names(ast.Module(body=body, type_ignores=[]))]
    assert imports.index("ortools.sat.python") < imports.index("pulp"), imports
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == loader:
            continue
        tree = ast.parse(path.read_text())
        top = [n for n, _ in _imported_names(ast.Module(body=tree.body, type_ignores=[]))]
        for name, node in _imported_names(tree):
            where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
            assert name.split(".")[0] != "pulp", (
                f"{where} imports pulp itself; use `from hetopt._solverlibs import pulp`"
            )
            if name.split(".")[0] == "highspy":  # inside a function, after pulp's module loaded
                assert "hetopt._solverlibs" in top, f"{where} imports highspy before pulp's loader"


def _load_order(code: str) -> dict[str, int]:
    """Run ``code`` in a fresh interpreter; the position in sys.modules of each solver library."""
    script = (
        f"{code}\nimport json, sys\nmods = list(sys.modules)\n"
        f"print(json.dumps({{m: mods.index(m) for m in {SOLVER_LIBS_MODULES!r} if m in mods}}))"
    )
    proc = _run(script)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cli(args: list[str]) -> str:
    return (
        "import tempfile\nfrom hetopt.cli.main import main\n"
        f"rc = main([*{args!r}, 'hydra.run.dir=' + tempfile.mkdtemp() + '/run'])\n"
        "assert rc == 0, rc"
    )


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(_cli(["plan", "workload=worked_example", "solver=highs"]), id="plan-highs"),
        pytest.param(_cli(["plan", "workload=worked_example", "solver=cbc"]), id="plan-cbc"),
        pytest.param(
            _cli(
                [
                    "fleet",
                    "fleet=synthetic",
                    "fleet.synthetic.n_ops=10",
                    "fleet.method=monolithic",
                    "solver=highs",
                    "fleet.baselines=[]",
                ]
            ),
            id="fleet-highs",
        ),
        pytest.param(
            "from hetopt.cli.main import main\n"
            f"assert main(['melange', {str(PACKAGE.parent / 'examples/melange/example.json')!r},"
            " 'solver=cbc']) == 0",
            id="melange-cbc",
        ),
        pytest.param("import hetopt.fleet.decomposition", id="fleet-decomposition-module"),
        pytest.param("import hetopt.solvers.pulp_backend", id="pulp-backend-module"),
        pytest.param("import hetopt.models.milp", id="milp-module"),
    ],
)
def test_ortools_loads_before_pulp_on_every_path(code: str) -> None:
    order = _load_order(code)
    assert "pulp" in order and "highspy" in order, f"the path did not load pulp: {order}"
    native = order[ORTOOLS_NATIVE]
    assert native < order["pulp"] and native < order["highspy"], order


QUIET = {
    "import hetopt": "import hetopt",
    "import hetopt.sla": "import hetopt.sla",
    "import hetopt.problem": "import hetopt.problem",
    "import hetopt.pipeline": "import hetopt.pipeline",
    "import hetopt.solvers": "import hetopt.solvers",
    "import hetopt.cli.config": "import hetopt.cli.config",
    "compose a config": (
        "from hetopt.cli.compose import compose_run\n"
        "from hetopt.cli.config import request_from_config\n"
        "request_from_config(compose_run('plan', ['workload=rag_agent', 'solver=cpsat']).cfg)"
    ),
}


@pytest.mark.parametrize("code", list(QUIET.values()), ids=list(QUIET))
def test_importing_the_library_or_composing_loads_no_solver_mlir_or_plotting(code: str) -> None:
    script = (
        f"{code}\nimport sys\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    proc = _run(script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]", f"{code!r} loaded {proc.stdout}"


def test_help_loads_neither_hydra_nor_pandas() -> None:
    script = (
        "import contextlib, io, sys\nfrom hetopt.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    assert main(['--help']) == 0\n"
        "assert 'usage: hetopt' in out.getvalue()\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        f"{{'hydra', 'omegaconf', 'pandas', 'numpy', *{HEAVY!r}}}))"
    )
    proc = _run(script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout


def test_a_solve_after_a_quiet_import_still_loads_ortools_first() -> None:
    # `import hetopt` no longer loads ortools, so this is the order a user script gets.
    order = _load_order(
        "import hetopt\nfrom hetopt.solvers import solve, SolverOptions\n"
        "from hetopt.testing import CONFORMANCE\n"
        "p = CONFORMANCE['worked_example'].build()\n"
        "assert solve(p, SolverOptions(backend='highs')).objective > 0"
    )
    assert order[ORTOOLS_NATIVE] < min(order["pulp"], order["highspy"]), order


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads Linux's /proc/self/maps")
def test_the_native_module_loaded_first_brings_ortools_own_highs() -> None:
    # The guard is worth something only if the module _solverlibs loads before pulp maps
    # libortools and the HiGHS bundled with it; an ortools release that moved them elsewhere
    # would leave the module order above intact and the guard empty.
    script = (
        f"import importlib\nimportlib.import_module({ORTOOLS_NATIVE!r})\n"
        "maps = open('/proc/self/maps').read()\n"
        "print(sorted({line.rsplit('/', 1)[-1] for line in maps.splitlines()"
        " if '/ortools/.libs/' in line and ('libhighs' in line or 'libortools' in line)}))"
    )
    proc = _run(script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['libhighs.so.1', 'libortools.so.9']", proc.stdout
