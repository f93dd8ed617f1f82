"""hetopt: plan AI-agent infrastructure on heterogeneous hardware.

The pipeline (see ``ARCHITECTURE``): agent graph -> granular operators -> hardware catalog ->
cost table (roofline, LLM serving, TCO) -> placement problem -> MILP / CP-SAT -> verified plan.
Start with :func:`hetopt.pipeline.plan_agent` or the ``hetopt plan`` command.
"""

# Importing hetopt loads no solver, MLIR or plotting library: each loads where it is used.
# PuLP is imported in one place only, hetopt/_solverlibs.py, after OR-Tools (the order the
# highspy / ortools clash needs, google/or-tools#5246; tests/test_import_order.py guards it).
__version__ = "0.1.0"
