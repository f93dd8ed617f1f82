"""The MLIR stage: hetopt's agent dialects, import/export, passes, code generation with IREE.

``agent graph -> MLIR module -> decompose -> annotate costs -> place -> per-device partitions
-> linalg kernels -> IREE artefacts -> CPU execution and calibration`` (see
:func:`hetopt.mlir.compile.compile_plan` and ``hetopt compile``).
"""
