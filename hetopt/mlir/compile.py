"""``plan -> MLIR (before and after each pass) -> per-target artefacts -> verification report``.

:func:`compile_plan` runs the whole MLIR stage on a planned workload:

1. export the agent graph to the agent dialects (``00-input.mlir``);
2. inline nested agents and decompose (``01-decomposed.mlir``); the operator graph read back
   from the IR must equal the planner's (a cross-check of two implementations);
3. annotate every op with its resource vector (``02-annotated.mlir``);
4. write the plan's placement onto the ops (``03-placed.mlir``);
5. group the placed compute ops by device, generate their linalg kernels (one module per
   partition, ``partition-<device>.mlir``) and compile each with IREE for the device's target;
6. compile the same kernels for this machine's CPU, run them with IREE's runtime against NumPy,
   time them, and calibrate the CPU cost model (predicted against measured, before and after).

A partition that fails to compile is reported with the compiler's reason; the others still
compile. Nothing here needs a GPU.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from hetopt.errors import InputError
from hetopt.graph.decompose import OperatorGraph
from hetopt.graph.ir import AgentGraph
from hetopt.hardware import HardwareCatalog
from hetopt.mlir.calibrate import Calibration, calibrate, host_cpu_name, host_model
from hetopt.mlir.codegen import (
    CompileFailure,
    Target,
    compile_module,
    host_target,
    run_kernels,
    target_for,
)
from hetopt.mlir.convert import export_module
from hetopt.mlir.dialect import agent_context, verify
from hetopt.mlir.kernels import Kernel, module_text, operator_kernels
from hetopt.mlir.options import CompileOptions
from hetopt.mlir.passes import decompose_module
from hetopt.mlir.placement import (
    annotate_costs,
    operator_structure,
    place,
    placed_ops,
)

log = logging.getLogger(__name__)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Partition:
    """One device partition and what became of it.

    Attributes
    ----------
    device, target
        Catalog device and its IREE target.
    operators
        Operators placed on the device.
    not_lowered
        Operators without compute kernels (tool calls, host logic, KV transfers).
    kernels
        Generated kernels, in the target's element types.
    host_kernels
        The same kernels in f32, run and timed on this machine.
    text
        The partition's MLIR module.
    artifact
        Compiled VM flatbuffer (empty when compilation failed).
    compile_s
        Compile time.
    error
        The compiler's reason when it failed.
    """

    device: str
    target: Target
    operators: tuple[str, ...]
    not_lowered: tuple[str, ...]
    kernels: tuple[Kernel, ...]
    host_kernels: tuple[Kernel, ...]
    text: str
    artifact: bytes = b""
    compile_s: float = 0.0
    error: str = ""

    @property
    def compiled(self) -> bool:
        """True when IREE produced an artefact."""
        return bool(self.artifact)


@dataclass(frozen=True)
class CompileReport:
    """Everything :func:`compile_plan` produced.

    Attributes
    ----------
    stages
        ``(file name, MLIR text)`` before and after each pass.
    partitions
        One per device that holds placed operators.
    kernels
        One row per kernel executed here: partition, kernel, operator, part, shape_class,
        element_type, flops, bytes, max_abs_error, max_rel_error, measured_s, repeats.
    calibration
        CPU calibration (``None`` when not executed).
    structure_matches
        The decomposed IR's operator graph equals the planner's.
    seconds
        Wall time of each step.
    """

    stages: tuple[tuple[str, str], ...]
    partitions: tuple[Partition, ...]
    kernels: pd.DataFrame
    calibration: Calibration | None
    structure_matches: bool
    seconds: Mapping[str, float]

    @property
    def failed(self) -> tuple[Partition, ...]:
        """Partitions IREE could not compile."""
        return tuple(p for p in self.partitions if not p.compiled and p.kernels)

    @property
    def numerically_ok(self) -> bool:
        """Every executed kernel matched NumPy (relative error under 1e-2 for f16, 1e-4 for
        f32)."""
        if self.kernels.empty:
            return True
        tol = self.kernels["element_type"].map({"f16": 1e-2, "f32": 1e-4})
        return bool((self.kernels["max_rel_error"] <= tol).all())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the content of ``verification.json``)."""
        cal = self.calibration
        return {
            "structure_matches_planner": self.structure_matches,
            "numerically_ok": self.numerically_ok,
            "partitions": [
                {
                    "device": p.device,
                    "target": p.target.label,
                    "backend": p.target.backend,
                    "note": p.target.note,
                    "operators": list(p.operators),
                    "not_lowered": list(p.not_lowered),
                    "kernels": [k.name for k in p.kernels],
                    "compiled": p.compiled,
                    "artifact_bytes": len(p.artifact),
                    "compile_s": round(p.compile_s, 3),
                    "error": p.error,
                }
                for p in self.partitions
            ],
            "kernels_executed": int(len(self.kernels)),
            "max_rel_error": float(self.kernels["max_rel_error"].max())
            if len(self.kernels)
            else None,
            "calibration": None
            if cal is None
            else {
                "host_model": cal.before.device,
                "host_cores": cal.before.host_cores,
                "before": {
                    "compute_efficiency": cal.before.compute_efficiency,
                    "bandwidth_efficiency": cal.before.bandwidth_efficiency,
                    "overhead_s": cal.before.overhead_s,
                },
                "after": {
                    "compute_efficiency": cal.after.compute_efficiency,
                    "bandwidth_efficiency": cal.after.bandwidth_efficiency,
                    "overhead_s": cal.after.overhead_s,
                },
                **cal.summary(),
            },
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def _partitions(
    ops: list[tuple[str, dict[str, Any]]], catalog: HardwareCatalog, options: CompileOptions
) -> list[Partition]:
    by_device: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for name, a in ops:
        device = (a.get("placement") or {}).get("device")
        if device and "from" not in a.get("placement", {}):
            by_device.setdefault(str(device), []).append((name, a))
    unknown = sorted(set(options.targets) - set(catalog.names))
    if unknown:
        raise InputError(
            f"mlir.targets names device(s) {unknown} that the catalog does not "
            f"have. Devices: {list(catalog.names)}."
        )
    out = []
    for device, members in by_device.items():
        target = target_for(catalog.get(device), options.targets.get(device))
        kernels: list[Kernel] = []
        host: list[Kernel] = []
        lowered: list[str] = []
        skipped: list[str] = []
        for name, a in members:
            ks = operator_kernels(
                name, a, options.kernel, target.element_type, target.accumulator_type
            )
            kernels.extend(ks)
            host.extend(
                ks
                if target.element_type == "f32"
                else operator_kernels(name, a, options.kernel, "f32", "f32")
            )
            (lowered if ks else skipped).append(str(a["op"]))
        operators = tuple(dict.fromkeys(str(a["op"]) for _, a in members))
        out.append(
            Partition(
                device,
                target,
                operators,
                tuple(o for o in dict.fromkeys(skipped) if o not in lowered),
                tuple(kernels),
                tuple(host),
                module_text(kernels) if kernels else "",
            )
        )
    return out


def compile_plan(
    graph: AgentGraph,
    op_graph: OperatorGraph,
    placement: pd.DataFrame,
    catalog: HardwareCatalog,
    options: CompileOptions | None = None,
    workload: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> CompileReport:
    """Run the MLIR stage on a plan (see the module docstring).

    Parameters
    ----------
    graph
        The agent graph that was planned.
    op_graph
        Its decomposition (the planner's operators).
    placement
        :attr:`hetopt.plan.plan.Plan.placement`.
    catalog
        Hardware catalog the plan was made with.
    options
        See :class:`CompileOptions`.
    workload
        Workload dict (rate and SLA go into the exported module).
    progress
        Called with a short message before each step.

    Returns
    -------
    CompileReport

    Examples
    --------
    >>> from hetopt.pipeline import PlanRequest, plan_agent
    >>> from hetopt.graph.ir import agent_graph_from_dict
    >>> from hetopt.hardware import load_catalog
    >>> from hetopt.workloads import load_workload
    >>> wl = load_workload("rag_agent")
    >>> outcome = plan_agent(PlanRequest(workload=wl))
    >>> report = compile_plan(agent_graph_from_dict(wl), outcome.graph, outcome.plan.placement,
    ...                       load_catalog(), CompileOptions(execute=False), wl)
    >>> report.structure_matches and not report.failed
    True
    """
    options = options or CompileOptions()
    say = progress or (lambda msg: None)
    seconds: dict[str, float] = {}
    stages: list[tuple[str, str]] = []
    t0 = time.perf_counter()
    with agent_context():
        say("exporting the agent graph to MLIR")
        module = export_module(graph, workload)
        stages.append(("00-input.mlir", str(module)))
        say("decomposing (MLIR rewrite patterns)")
        decompose_module(module)
        verify(module, "decomposed module")
        stages.append(("01-decomposed.mlir", str(module)))
        structure_matches = operator_structure(module).same_as(op_graph)
        annotate_costs(module, op_graph)
        verify(module, "annotated module")
        stages.append(("02-annotated.mlir", str(module)))
        place(module, placement.to_dict("records"))
        verify(module, "placed module")
        stages.append(("03-placed.mlir", str(module)))
        ops = placed_ops(module)
    seconds["passes"] = time.perf_counter() - t0

    partitions = _partitions(ops, catalog, options)
    compiled: list[Partition] = []
    t0 = time.perf_counter()
    for p in partitions:
        if not p.kernels:
            compiled.append(p)
            continue
        say(f"compiling {p.device} for {p.target.label} ({len(p.kernels)} kernels)")
        start = time.perf_counter()
        try:
            artifact = compile_module(p.text, p.target)
            error = ""
        except CompileFailure as exc:
            artifact, error = b"", exc.reason
            log.warning(
                "partition %s failed to compile for %s: %s", p.device, p.target.label, error
            )
        compiled.append(
            replace(p, artifact=artifact, compile_s=time.perf_counter() - start, error=error)
        )
        stages.append((f"partition-{p.device}.mlir", p.text))
    seconds["compile"] = time.perf_counter() - t0

    rows: list[dict[str, Any]] = []
    calibration = None
    if options.execute:
        t0 = time.perf_counter()
        rows = _execute(compiled, options, say)
        seconds["execute"] = time.perf_counter() - t0
        cpu_name = host_cpu_name(catalog)
        f32 = [r for r in rows if r["element_type"] == "f32"]
        if options.calibrate and cpu_name and f32:
            say("calibrating the CPU cost model")
            frame = pd.DataFrame(f32).drop_duplicates("kernel")
            calibration = calibrate(host_model(catalog.get(cpu_name)), frame)
    return CompileReport(
        tuple(stages), tuple(compiled), pd.DataFrame(rows), calibration, structure_matches, seconds
    )


def _execute(
    partitions: list[Partition], options: CompileOptions, say: Progress
) -> list[dict[str, Any]]:
    """Host builds: every partition's kernels in f32 (the calibration set: what a CPU
    placement would run), and the f16 kernels of GPU partitions as they are (a numerical check
    of the very IR the GPU compilers got)."""
    rows: list[dict[str, Any]] = []
    groups: dict[str, list[tuple[Partition, Kernel]]] = {
        "f32": [(p, k) for p in partitions for k in p.host_kernels],
        "f16": [(p, k) for p in partitions if p.target.element_type == "f16" for k in p.kernels],
    }
    for et, members in groups.items():
        if not members:
            continue
        kernels = [k for _, k in members]
        say(f"running {len(kernels)} {et} kernels on this CPU (IREE local-task)")
        try:
            vmfb = compile_module(module_text(kernels), host_target("host", et))
        except CompileFailure as exc:
            log.warning("host build (%s) failed: %s", et, exc.reason)
            continue
        timed = et == "f32"
        runs = run_kernels(
            vmfb,
            kernels,
            min_time_s=options.min_time_s if timed else 0.0,
            max_repeats=200 if timed else 1,
        )
        for (p, k), r in zip(members, runs, strict=True):
            rows.append(
                {
                    "partition": p.device,
                    "kernel": k.name,
                    "operator": k.operator,
                    "part": k.part,
                    "shape_class": k.shape_class,
                    "element_type": et,
                    "flops": k.flops,
                    "bytes": k.bytes,
                    "max_abs_error": r.max_abs_error,
                    "max_rel_error": r.max_rel_error,
                    "measured_s": r.measured_s if timed else float("nan"),
                    "repeats": r.repeats,
                }
            )
    return rows
