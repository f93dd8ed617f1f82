"""The ``hetopt`` command line: Hydra at the edge, rich output, exit 2 on user errors."""

# The input edge wires its readers: importing hetopt.importers registers the reader of graph
# objects in code files (workload_file=my_agent.py:graph; LangGraph loads only when one is read),
# and importing hetopt.mlir the .mlir workload reader (light; torch-mlir loads only when an MLIR
# file is read).
import hetopt.importers  # noqa: F401, E402
import hetopt.mlir  # noqa: F401, E402
