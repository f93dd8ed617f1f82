"""hetopt: plan AI-agent infrastructure on heterogeneous hardware.

The pipeline (see ``ARCHITECTURE``): agent graph -> granular operators -> hardware catalog ->
cost table (roofline, LLM serving, TCO) -> placement problem -> MILP / CP-SAT -> verified plan.
Start with :func:`hetopt.pipeline.plan_agent` or the ``hetopt plan`` command.
"""

# OR-Tools first, PuLP second: PuLP pre-loads highspy with RTLD_GLOBAL, and a highspy whose
# HiGHS differs from the one bundled in ortools then crashes the process (google/or-tools#5246;
# hetopt pins highspy==1.12.0, the version inside ortools 9.15). tests/test_import_order.py
# guards this.
import ortools.sat.python.cp_model  # noqa: F401  isort: skip
import pulp  # noqa: F401  isort: skip

# torch-mlir (agent dialects) and IREE (code generation) load lazily in hetopt.mlir; both
# coexist with each other and with OR-Tools in either import order.
__version__ = "0.1.0"
