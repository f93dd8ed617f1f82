"""The MLIR stage: hetopt's agent dialects, import/export, passes, code generation with IREE.

``agent graph -> MLIR module -> decompose -> annotate costs -> place -> per-device partitions
-> linalg kernels -> IREE artefacts -> CPU execution and calibration`` (see
:func:`hetopt.mlir.compile.compile_plan` and ``hetopt compile``).
"""

from pathlib import Path
from typing import Any

from hetopt.workloads import register_workload_reader


def _read_mlir_workload(path: Path) -> Any:
    # torch-mlir loads when an MLIR file is read, not when this package is imported.
    from hetopt.mlir.convert import read_mlir_workload

    return read_mlir_workload(path)


register_workload_reader(".mlir", _read_mlir_workload)
