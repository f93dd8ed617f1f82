"""hetopt's agent dialects in MLIR: loading them, parsing and verifying modules.

The dialects (``agent``, ``llm``, ``model``, ``tool``, ``memory``, ``compute``, ``control``, and
after decomposition ``gate``, ``expert``, ``merge``, ``comm``) are written in IRDL in
``data/agent.irdl.mlir`` and loaded into an MLIR context with ``irdl.load_dialects``. MLIR's own
verifier then checks every op: operand and result types, and that each required attribute is
present with the right kind. Malformed IR is rejected by MLIR, not by hand-written checks; this
module only turns MLIR's diagnostics into a :class:`~hetopt.errors.InputError` that names the
file, line, op and reason.

The bindings are the upstream MLIR Python bindings shipped in the ``torch-mlir`` wheel
(``torch_mlir.ir``); the PyPI name ``mlir-python-bindings`` is a placeholder. IREE's bindings
cannot load IRDL, so code generation (:mod:`hetopt.mlir.codegen`) hands IREE plain text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from torch_mlir import ir
from torch_mlir.dialects import irdl

from hetopt.errors import InputError

DIALECT_PATH = Path(__file__).parent / "data" / "agent.irdl.mlir"
"""The IRDL definition of hetopt's dialects."""


@cache
def dialect_text() -> str:
    """The IRDL source of the dialects."""
    return DIALECT_PATH.read_text(encoding="utf-8")


@cache
def op_names() -> tuple[str, ...]:
    """Every op the dialects define, as ``dialect.op``."""
    names: list[str] = []
    dialect = ""
    for line in dialect_text().splitlines():
        if m := re.match(r"\s*irdl\.dialect @(\w+)", line):
            dialect = m.group(1)
        elif m := re.match(r"\s*irdl\.operation @(\w+)", line):
            names.append(f"{dialect}.{m.group(1)}")
    return tuple(names)


@contextmanager
def agent_context() -> Iterator[ir.Context]:
    """An MLIR context with hetopt's dialects loaded (and an unknown location active).

    Examples
    --------
    >>> with agent_context():
    ...     m = parse_module('func.func @f(%q: !agent.msg) -> !agent.msg { return %q : !agent.msg }')
    >>> m.operation.verify()
    True
    """
    with ir.Context() as ctx, ir.Location.unknown():
        irdl.load_dialects(ir.Module.parse(dialect_text()))
        yield ctx


def _describe(exc: ir.MLIRError) -> str:
    parts = []
    for diag in exc.error_diagnostics or []:
        loc = str(diag.location)
        m = re.search(r'"[^"]*":(\d+):(\d+)', loc)
        where = f"line {m.group(1)}, column {m.group(2)}" if m else "unknown line"
        text = " ".join(diag.message.split())
        op = ""
        for note in diag.notes:
            if match := re.search(r'"([a-z_]+\.[a-z_]+)"', note.message):
                op = f" (op '{match.group(1)}')"
                break
        parts.append(f"{where}{op}: {text}")
    return "; ".join(parts) if parts else " ".join(str(exc).split())


def parse_module(text: str, source: str = "<mlir>") -> ir.Module:
    """Parse and verify MLIR text in the current :func:`agent_context`.

    Parameters
    ----------
    text
        Module assembly.
    source
        File name for messages.

    Raises
    ------
    InputError
        The text does not parse or does not verify; the message gives the line, the op and
        MLIR's reason, and lists the ops hetopt's dialects define when an op is unknown.
    """
    try:
        module = ir.Module.parse(text)
    except ir.MLIRError as exc:
        detail = _describe(exc)
        hint = ""
        if "unregistered" in detail or "not found" in detail or "unknown" in detail.lower():
            hint = f" hetopt's dialects define: {', '.join(op_names())} (plus func.func/return)."
        raise InputError(f"{source}: malformed agent MLIR at {detail}.{hint}") from None
    return module


def verify(module: ir.Module, source: str = "<mlir>") -> None:
    """Run MLIR's verifier on ``module``; raise :class:`InputError` naming the op on failure."""
    try:
        module.operation.verify()
    except ir.MLIRError as exc:
        raise InputError(f"{source}: the module does not verify: {_describe(exc)}.") from None
