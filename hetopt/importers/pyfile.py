"""Read a graph object out of the user's Python file: ``workload_file=my_agent.py:graph``.

:func:`import_target` imports the file as a module (its folder on ``sys.path`` while it runs,
as when the file is run as a script), takes the named object, finds its annotation file
(``my_agent.hetopt.yaml`` next to it, unless one is given) and imports the graph with
:func:`hetopt.importers.langgraph.from_langgraph`. Every failure is an
:class:`~hetopt.errors.InputError` naming the file and the object; when the user's own code
raises, its traceback (their frames only) follows hetopt's message, clearly marked as theirs.

Examples
--------
>>> annotation_file("examples/agents/react_agent.py", None)
PosixPath('examples/agents/react_agent.hetopt.yaml')
"""

from __future__ import annotations

import importlib.util
import re
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from hetopt.errors import InputError
from hetopt.importers.langgraph import require_langgraph
from hetopt.inputs import did_you_mean, load_yaml_input, local_path
from hetopt.workloads import require_object_target

if TYPE_CHECKING:
    from hetopt.importers.langgraph import ImportResult
    from hetopt.importers.traces import TraceProfile

ANNOTATION_SUFFIX = ".hetopt.yaml"


def _is_users(filename: str, folder: Path) -> bool:
    """Whether a frame's file is the user's: in ``folder``, and neither hetopt's nor an installed
    package's (a virtual environment or hetopt's checkout may sit inside ``folder``)."""
    if filename.startswith("<"):  # <frozen importlib._bootstrap>, <string>
        return False
    path = Path(filename).resolve()
    if not path.is_relative_to(folder) or "site-packages" in path.parts:
        return False
    theirs = (Path(__file__).resolve().parents[1], Path(sys.prefix).resolve())
    return not any(path.is_relative_to(p) for p in theirs)


def _user_traceback(exc: BaseException, folder: Path) -> str:
    """The traceback of ``exc`` with only the frames of the user's files (see :func:`_is_users`)."""
    tb = traceback.TracebackException.from_exception(exc)
    mine = [f for f in tb.stack if _is_users(f.filename, folder)]
    lines = []
    if mine:
        lines.append("Traceback (most recent call last):\n")
        lines += traceback.StackSummary.from_list(mine).format()
    lines += list(tb.format_exception_only())
    return "".join(lines).rstrip()


def _import_module(path: Path, where: str, attr: str) -> ModuleType:
    folder = path.resolve().parent
    name = "_hetopt_user_" + re.sub(r"\W", "_", path.stem)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InputError(f"{where}: Python cannot import this file. Give a .py file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # typing.get_type_hints (LangGraph's state schemas) looks here
    sys.path.insert(0, str(folder))
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(name, None)
        raise InputError(
            f"{where}: importing it raised {type(exc).__name__}, so hetopt could not read "
            f"'{attr}' from it. The error is in your code (traceback from your code below); fix "
            "it and run hetopt again.\n"
            f"----- traceback from {path} -----\n"
            f"{_user_traceback(exc, folder)}\n"
            f"----- end of the traceback from {path} -----"
        ) from None
    finally:
        if str(folder) in sys.path:  # the entry this function added (the first one)
            sys.path.remove(str(folder))
    return module


def load_object(file: str, attr: str) -> Any:
    """The object ``attr`` (dotted names allowed) of the Python file ``file``."""
    where = f"workload file {file}"
    path = local_path(file, "workload file")
    if path.suffix.lower() != ".py":
        raise InputError(
            f"{where}:{attr}: only Python files (.py) hold graph objects; give a .py file, or "
            "a workload YAML file without ':object'."
        )
    if not path.is_file():
        raise InputError(
            f"{where}: no such file, so there is no '{attr}' to read. Give the path of your "
            "agent's Python file."
        )
    require_langgraph(f"{where}:{attr}")
    obj: Any = _import_module(path, where, attr)
    done: list[str] = []
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in vars(obj) if not n.startswith("_")]
            raise InputError(
                f"{where} has no object '{'.'.join([*done, part])}'.{did_you_mean(part, names)} "
                f"Name the module-level variable that holds the compiled graph, e.g. "
                f"workload_file={file}:graph (names in it: {sorted(names)[:20]})."
            )
        obj = getattr(obj, part)
        done.append(part)
    return obj


def annotation_file(file: str, given: str | Path | None) -> Path | None:
    """The annotation file: ``given``, else ``<stem>.hetopt.yaml`` next to ``file`` if present."""
    if given is not None:
        path = local_path(given, "annotation file")
        if not path.is_file():
            raise InputError(
                f"annotation file {path}: no such file. Give the path of the YAML file with your "
                f"graph's annotations (or leave it out to use {Path(file).stem}"
                f"{ANNOTATION_SUFFIX} next to {file})."
            )
        return path
    found = Path(file).with_name(Path(file).stem + ANNOTATION_SUFFIX)
    return found if found.is_file() else None


def import_target(target: str, annotations: str | Path | None = None) -> ImportResult:
    """Import ``file.py:object`` (a LangGraph graph) with its annotations.

    Parameters
    ----------
    target
        ``path/to/my_agent.py:graph``.
    annotations
        An annotation file; None: ``my_agent.hetopt.yaml`` next to the Python file, if any.

    Raises
    ------
    InputError
        ``target`` names no object, the file is missing or fails to import (the user's
        traceback follows the message), the object is missing or not a LangGraph graph, or an
        annotation is wrong; each names the file and the object.
    """
    from hetopt.importers.langgraph import from_langgraph, is_langgraph_graph

    file, attr = require_object_target(target)
    source = f"workload file {file}:{attr}"
    obj = load_object(file, attr)
    if not is_langgraph_graph(obj):
        hint = (
            " It is a function: hetopt reads the graph object itself; assign the compiled graph "
            f"to a variable (graph = {attr}()) and name that."
            if callable(obj) and not hasattr(obj, "get_graph")
            else " Name the compiled graph (what StateGraph(...).compile() returns)."
        )
        raise InputError(
            f"{source}: '{attr}' is a {type(obj).__module__}.{type(obj).__qualname__}, not a "
            f"LangGraph graph.{hint}"
        )
    notes_path = annotation_file(file, annotations)
    notes = None if notes_path is None else load_yaml_input(notes_path, "annotation file")
    if notes is not None and not isinstance(notes, dict):
        raise InputError(
            f"annotation file {notes_path}: must hold a mapping (nodes, branches, loops, ...), "
            f"got {type(notes).__name__}."
        )
    origin = None if notes_path is None else f"annotation file {notes_path}"
    traces = None
    if notes is not None and "traces" in notes:
        assert notes_path is not None
        notes = dict(notes)
        profile = _traces(notes.pop("traces"), notes_path)
        traces = profile.annotations()
        origin = f"{origin} with traces {profile.source} ({profile.requests} requests)"
    result = from_langgraph(
        obj, notes, name=Path(file).stem, source=source, annotations_source=origin, traces=traces
    )
    if notes_path is None:
        result = type(result)(
            result.workload,
            (
                f"no annotation file: {Path(file).stem}{ANNOTATION_SUFFIX} is not next to "
                f"{file}, and none was given (workload_annotations=...).",
                *result.assumptions,
            ),
            result.source,
            None,
        )
    return result


def _traces(value: Any, notes_path: Path) -> TraceProfile:
    """The trace profile an annotation file's ``traces:`` names (a file or a list of files,
    relative to the annotation file)."""
    from hetopt.importers.traces import profile_traces

    files = [value] if isinstance(value, str) else value
    if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
        raise InputError(
            f"annotation file {notes_path}: 'traces' must name an OTLP JSON trace file or a "
            f"list of them (relative to the annotation file), got {value!r}."
        )
    try:
        return profile_traces([notes_path.parent / f for f in files])
    except InputError as exc:
        raise type(exc)(
            f"annotation file {notes_path}: its 'traces' {files} (relative to "
            f"{notes_path.parent}) cannot be used: {exc}"
        ) from None


def read_target(path: Path, attr: str, annotations: str | Path | None) -> dict[str, Any]:
    """The workload reader registered for ``.py`` (:func:`hetopt.workloads.load_workload_data`)."""
    return import_target(f"{path}:{attr}", annotations).workload
