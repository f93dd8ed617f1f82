"""Per-target code generation with IREE, and execution of CPU modules.

:func:`target_for` picks IREE's backend for a catalog device:

=============  ===============================  ==============================================
device          backend                          notes
=============  ===============================  ==============================================
CPU             ``llvm-cpu`` (named CPU)         plus a ``host`` build that runs here
NVIDIA          ``cuda`` (sm_80/86/89)           Hopper and Blackwell get sm_89 PTX: IREE 3.13
                                                 rejects sm_90/sm_100 (iree-org/iree#22147) and
                                                 the driver JIT-compiles the PTX forward
AMD             ``rocm`` (gfx942 for MI300X)     via ``--iree-hal-target-device=hip``
others          ``vulkan-spirv``                 portable fallback (Intel Gaudi has no backend)
=============  ===============================  ==============================================

A target can be overridden as ``backend[:arch]`` (``cuda:sm_80``, ``rocm:gfx90a``,
``llvm-cpu:znver4``, ``vulkan-spirv``, ``vmvx``). One module is compiled per device partition;
cross-device transfers stay with the planner and the replay.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hetopt.errors import InputError
from hetopt.hardware import Device
from hetopt.mlir.kernels import Kernel

CUDA_ARCH = {"A100": "sm_80", "A40": "sm_86", "L4": "sm_89", "L40S": "sm_89"}
"""NVIDIA devices whose architecture this IREE release accepts natively."""
NEWEST_CUDA_ARCH = "sm_89"
"""The newest CUDA architecture IREE 3.13 compiles for; Hopper and Blackwell fall back to it."""
ROCM_ARCH = {
    "MI300X": "gfx942",
    "MI325X": "gfx942",
    "MI250": "gfx90a",
    "MI250X": "gfx90a",
    "MI210": "gfx90a",
    "MI355X": "gfx950",
}
CPU_ARCH = {"Xeon-SPR": "sapphirerapids", "EPYC-Genoa": "znver4"}


@dataclass(frozen=True)
class Target:
    """How one device partition is compiled.

    Attributes
    ----------
    device
        Catalog device name.
    backend, arch
        IREE backend and architecture (``cuda``/``sm_89``, ``llvm-cpu``/``host``).
    element_type, accumulator_type
        Kernel input and accumulator element types.
    note
        Why this target was chosen, when it is a fallback.
    """

    device: str
    backend: str
    arch: str
    element_type: str
    accumulator_type: str
    note: str = ""

    @property
    def flags(self) -> tuple[str, ...]:
        """``iree-compile`` flags."""
        if self.backend == "llvm-cpu":
            return (
                "--iree-hal-target-device=local",
                "--iree-hal-local-target-device-backends=llvm-cpu",
                f"--iree-llvmcpu-target-cpu={self.arch or 'host'}",
            )
        if self.backend == "vmvx":
            return (
                "--iree-hal-target-device=local",
                "--iree-hal-local-target-device-backends=vmvx",
            )
        if self.backend == "cuda":
            return ("--iree-hal-target-device=cuda", f"--iree-cuda-target={self.arch}")
        if self.backend == "rocm":
            return ("--iree-hal-target-device=hip", f"--iree-rocm-target={self.arch}")
        if self.backend == "vulkan-spirv":
            flags = ["--iree-hal-target-device=vulkan"]
            if self.arch:
                flags.append(f"--iree-vulkan-target={self.arch}")
            return tuple(flags)
        raise InputError(f"unknown IREE backend '{self.backend}'")

    @property
    def label(self) -> str:
        """``backend:arch``."""
        return f"{self.backend}:{self.arch}" if self.arch else self.backend


BACKENDS = ("llvm-cpu", "vmvx", "cuda", "rocm", "vulkan-spirv")


@functools.cache
def available_backends() -> tuple[str, ...]:
    """Backends of the installed ``iree-base-compiler``."""
    from iree.compiler.tools import query_available_targets

    return tuple(query_available_targets())


def parse_target(device: str, spec: str) -> Target:
    """A target from an override ``backend[:arch]``; a user error names the device and lists
    the backends when the backend is unknown or not in the installed compiler."""
    backend, _, arch = spec.partition(":")
    backend = backend.strip()
    if backend not in BACKENDS or backend not in available_backends():
        raise InputError(
            f"mlir.targets.{device}={spec!r}: backend '{backend}' is not one hetopt compiles "
            f"with the installed IREE compiler. Use one of "
            f"{[b for b in BACKENDS if b in available_backends()]}, optionally with ':arch' "
            "(cuda:sm_80, rocm:gfx942, llvm-cpu:znver4)."
        )
    if backend == "cuda" and not arch:
        arch = NEWEST_CUDA_ARCH
    if backend == "rocm" and not arch:
        arch = "gfx942"
    if backend == "llvm-cpu" and not arch:
        arch = "host"
    gpu = backend in ("cuda", "rocm")
    return Target(device, backend, arch, "f16" if gpu else "f32", "f32", "override")


def target_for(device: Device, override: str | None = None) -> Target:
    """The IREE target of a catalog device (see the module docstring)."""
    if override:
        return parse_target(device.name, override)
    vendor = device.vendor.lower()
    if device.kind == "cpu":
        return Target(device.name, "llvm-cpu", CPU_ARCH.get(device.name, "host"), "f32", "f32")
    if vendor == "nvidia":
        arch = CUDA_ARCH.get(device.name)
        note = (
            ""
            if arch
            else (
                f"{device.name} is newer than IREE 3.13's CUDA targets; "
                f"{NEWEST_CUDA_ARCH} PTX, JIT-compiled by the driver"
            )
        )
        return Target(device.name, "cuda", arch or NEWEST_CUDA_ARCH, "f16", "f32", note)
    if vendor == "amd":
        return Target(device.name, "rocm", ROCM_ARCH.get(device.name, "gfx942"), "f16", "f32")
    return Target(
        device.name,
        "vulkan-spirv",
        "",
        "f32",
        "f32",
        f"no native IREE backend for {device.vendor} {device.name}; portable "
        "Vulkan/SPIR-V fallback",
    )


def host_target(device: str, element_type: str = "f32") -> Target:
    """The ``llvm-cpu`` build for this machine, used to execute and time kernels here."""
    return Target(device, "llvm-cpu", "host", element_type, "f32", "host build for checks")


class CompileFailure(Exception):
    """IREE rejected a module; ``reason`` holds its first diagnostics."""

    def __init__(self, target: Target, reason: str) -> None:
        super().__init__(f"{target.device} ({target.label}): {reason}")
        self.target = target
        self.reason = reason


def compile_module(text: str, target: Target) -> bytes:
    """Compile one partition's module to an IREE VM flatbuffer.

    Raises
    ------
    CompileFailure
        The compiler rejected the module for this target; the reason is its first error lines.
    """
    import iree.compiler as ireec

    try:
        return bytes(ireec.compile_str(text, extra_args=list(target.flags)))
    except ireec.CompilerToolError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if "error:" in line]
        raise CompileFailure(target, "; ".join(lines[:3]) or str(exc)[:400]) from None


@dataclass(frozen=True)
class KernelRun:
    """One kernel executed here: its numerical error and its time."""

    kernel: str
    max_abs_error: float
    max_rel_error: float
    measured_s: float
    repeats: int


def run_kernels(
    vmfb: bytes,
    kernels: Sequence[Kernel],
    min_time_s: float = 0.1,
    max_repeats: int = 200,
    driver: str = "local-task",
) -> list[KernelRun]:
    """Execute each kernel of a module with an IREE HAL driver (``local-task`` for host
    builds), compare with its NumPy reference and time it (median of repeated calls after one
    warm-up)."""
    import iree.runtime as rt

    module = rt.load_vm_flatbuffer(vmfb, driver=driver)
    runs = []
    for k in kernels:
        fn = module[k.name]
        args = k.inputs()
        got = np.asarray(fn(*args).to_host(), dtype=np.float64)
        want = np.asarray(k.reference(*args), dtype=np.float64)
        err = float(np.max(np.abs(got - want))) if got.size else 0.0
        scale = float(np.max(np.abs(want))) or 1.0
        times: list[float] = []
        start = time.perf_counter()
        while len(times) < max_repeats and (
            time.perf_counter() - start < min_time_s or len(times) < 3
        ):
            t0 = time.perf_counter()
            fn(*args)
            times.append(time.perf_counter() - t0)
        runs.append(KernelRun(k.name, err, err / scale, float(np.median(times)), len(times)))
    return runs
