"""The ``hetopt`` command line: Hydra at the edge, rich output, exit 2 on user errors."""

# The input edge wires its readers: importing hetopt.mlir registers the .mlir workload reader
# (light; torch-mlir loads only when an MLIR file is read).
import hetopt.mlir  # noqa: F401, E402
