"""Options of the MLIR stage (the ``mlir`` config group), apart from the stage itself.

A module of its own so that the config schema (:mod:`hetopt.cli.schema`) can read the options
without loading the MLIR bindings: :mod:`hetopt.mlir.compile` imports torch-mlir and IREE.
:class:`CompileOptions` is re-exported there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hetopt.mlir.kernels import KernelShape

__all__ = ["CompileOptions"]


@dataclass(frozen=True)
class CompileOptions:
    """Options of the MLIR stage (the ``mlir`` config group).

    Attributes
    ----------
    kernel
        The small transformer the kernels are generated for.
    targets
        Per-device target overrides, ``{device: "backend[:arch]"}``.
    execute
        Run the kernels here with IREE's CPU runtime (numerical check and timing).
    calibrate
        Fit the CPU's efficiency factors to the measured times.
    min_time_s
        Minimum timing window per kernel.
    """

    kernel: KernelShape = field(default_factory=KernelShape)
    targets: Mapping[str, str] = field(default_factory=dict)
    execute: bool = True
    calibrate: bool = True
    min_time_s: float = 0.1
