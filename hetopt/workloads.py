"""The input edge: read a workload (a shipped name, a YAML file, an MLIR file) into a typed
:class:`Workload`, and find the shipped configuration tree (``configs/``).

A workload file is read by the reader registered for its suffix (:func:`register_workload_reader`;
YAML is built in, :mod:`hetopt.mlir` registers ``.mlir``), giving the workload mapping; the
mapping becomes a :class:`Workload`, which is what the library plans. The rule that merges a
workload's ``sla:`` defaults with the user's SLA lives here, in :meth:`Workload.effective_sla`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hetopt.errors import InputError, UnknownNameError
from hetopt.inputs import (
    did_you_mean,
    is_plain_name,
    is_url,
    load_yaml_input,
    local_path,
    unknown_keys_message,
)

if TYPE_CHECKING:
    from hetopt.costs.table import Profile
    from hetopt.graph.ir import AgentGraph
    from hetopt.sla import Sla


WorkloadReader = Callable[[Path], Any]
"""Reads one workload file into the workload mapping (or anything else, which is refused)."""

ObjectReader = Callable[[Path, str, "str | Path | None"], Any]
"""Reads the object ``attr`` of a code file (``my_agent.py:graph``), with an optional
annotation file, into the workload mapping."""

_READERS: dict[str, WorkloadReader] = {}
_OBJECT_READERS: dict[str, ObjectReader] = {}


def register_workload_reader(suffix: str, reader: WorkloadReader) -> None:
    """Read files ending in ``suffix`` (``".mlir"``) with ``reader``.

    A file whose suffix has no reader is read as YAML. The package that owns a format registers
    its reader, so this module imports none of them: :mod:`hetopt.mlir` registers ``.mlir`` when
    it is imported (the CLI imports it before reading a workload file).
    """
    _READERS[suffix.lower()] = reader


def register_object_reader(suffix: str, reader: ObjectReader) -> None:
    """Read ``file<suffix>:object`` (``my_agent.py:graph``) with ``reader``.

    :mod:`hetopt.importers` registers ``.py`` (a LangGraph graph in the user's Python file) when
    it is imported; the CLI imports it before reading a workload file.
    """
    _OBJECT_READERS[suffix.lower()] = reader


def split_object_target(text: str) -> tuple[str, str] | None:
    """``(file, object)`` for a code file's object (``my_agent.py:graph``), else None.

    >>> split_object_target("my_agent.py:graph"), split_object_target("agent.yaml")
    (('my_agent.py', 'graph'), None)
    """
    path, sep, attr = str(text).rpartition(":")
    if not sep or not path or not Path(path).suffix:
        return None
    if not all(part.isidentifier() for part in attr.split(".")):
        return None
    return path, attr


def require_object_target(text: str) -> tuple[str, str]:
    """:func:`split_object_target`, or an :class:`InputError` saying to name the object."""
    target = split_object_target(text)
    if target is None:
        raise InputError(
            f"workload file {text}: a Python file holds code, not a workload; name the graph "
            f"object in it, e.g. workload_file={text}:graph (the module-level variable that "
            f"holds the compiled LangGraph graph)."
        )
    return target


@dataclass(frozen=True)
class Workload(Mapping[str, Any]):
    """One agent application as the planner reads it: graph, load and its own defaults.

    The library reads the typed fields. A workload also reads as the mapping it came from
    (``wl["nodes"]``, read-only), the workload file format, so that it can be written back
    out (MLIR export) and hashed (a fleet's template key).

    Attributes
    ----------
    graph
        The agent graph.
    request_rate_per_s
        Requests per second entering the agent.
    source
        Where the workload came from (``workload file x.yaml``), for messages.
    profile
        Measured latency and cost per operator and device, replacing the cost model; None:
        costed on the hardware catalog.
    sla_defaults
        The workload's ``sla:`` block: SLA fields it sets (checked keys and values); they apply
        where the user's SLA leaves a field null (:meth:`effective_sla`).
    baselines
        The workload's ``baselines:`` list (devices to compare against); empty: none of its own.
    data
        The mapping it was read from (what the mapping view reads).

    Examples
    --------
    >>> wl = load_workload("worked_example")
    >>> wl.name, wl.request_rate_per_s, wl.sla_defaults, wl.baselines
    ('worked_example', 1.0, {'e2e_s': 0.12}, ('HP', 'CO'))
    """

    graph: AgentGraph
    request_rate_per_s: float
    source: str = "<workload>"
    profile: Profile | None = None
    sla_defaults: Mapping[str, Any] = field(default_factory=dict)
    baselines: tuple[str, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_rate(self.request_rate_per_s, self.source)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    @property
    def name(self) -> str:
        """The agent graph's name."""
        return self.graph.name

    def with_rate(self, request_rate_per_s: float) -> Workload:
        """The same workload at another request rate (its mapping view says the same).

        >>> load_workload("rag_agent").with_rate(3.0)["request_rate_per_s"]
        3.0
        """
        rate = _check_rate(request_rate_per_s, self.source)
        return dataclasses.replace(
            self, request_rate_per_s=rate, data={**self.data, "request_rate_per_s": rate}
        )

    @staticmethod
    def from_mapping(
        data: Any, source: str = "<workload>", *, request_rate_per_s: float | None = None
    ) -> Workload:
        """Check and type the workload mapping (the workload file format).

        Parameters
        ----------
        data
            ``{name, description, request_rate_per_s, nodes, edges, profile?, sla?,
            baselines?}``.
        source
            Where it came from, named by every message.
        request_rate_per_s
            A rate given elsewhere (a fleet tenant's), replacing the mapping's own.

        Raises
        ------
        InputError
            A malformed graph, rate, profile, ``sla`` block or ``baselines`` list, naming
            ``source`` and the key.
        """
        from hetopt.costs.table import Profile
        from hetopt.graph.ir import agent_graph_from_dict

        if not isinstance(data, Mapping):
            raise InputError(
                f"{source}: a workload must be a mapping (name, request_rate_per_s, nodes, "
                f"edges), got {type(data).__name__}."
            )
        sla_defaults = _sla_block(data.get("sla"), source)
        graph = agent_graph_from_dict(data, source=source)
        rate = data.get("request_rate_per_s") if request_rate_per_s is None else request_rate_per_s
        rate_per_s = _check_rate(rate, source)
        profile_data = data.get("profile")
        profile = None if profile_data is None else Profile.from_dict(profile_data, source)
        baselines = data.get("baselines") or ()
        if not isinstance(baselines, list | tuple) or not all(
            isinstance(b, str) for b in baselines
        ):
            raise InputError(
                f"{source}: 'baselines' must be a list of device names such as [H100, B200], "
                f"got {baselines!r}."
            )
        return Workload(
            graph=graph,
            request_rate_per_s=rate_per_s,
            source=source,
            profile=profile,
            sla_defaults=sla_defaults,
            baselines=tuple(baselines),
            data=data,
        )

    def effective_sla(self, user: Sla) -> Sla:
        """The SLA a plan of this workload is held to: ``user``'s fields, and the workload's
        ``sla:`` defaults for the fields ``user`` leaves null.

        This is the one rule for SLA defaults: ``hetopt plan workload=worked_example`` (the
        ``sla`` group leaves ``e2e_s`` null, the workload sets 120 ms), the API's
        :class:`~hetopt.pipeline.PlanRequest`, and fleet tenants all apply it.

        Examples
        --------
        >>> from hetopt.sla import Sla
        >>> load_workload("worked_example").effective_sla(Sla()).e2e_s
        0.12
        >>> load_workload("worked_example").effective_sla(Sla(e2e_s=0.2)).e2e_s
        0.2
        """
        fill = {k: v for k, v in self.sla_defaults.items() if getattr(user, k) is None}
        return dataclasses.replace(user, **fill) if fill else user

    def effective_baselines(self, default: tuple[str, ...]) -> tuple[str, ...]:
        """The workload's own baselines if it lists any, else ``default``."""
        return self.baselines or default


def _check_rate(rate: Any, source: str) -> float:
    """``rate`` as a float if it is a positive, finite number of requests per second."""
    if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0 < rate < math.inf:
        raise InputError(
            f"{source}: 'request_rate_per_s' must be a positive number (requests entering "
            f"the agent per second), got {rate!r}. Set it in the workload file or with "
            f"`workload.request_rate_per_s=2.0`."
        )
    return float(rate)


def _sla_block(block: Any, source: str) -> dict[str, Any]:
    """A workload's ``sla:`` block, checked on its own: known keys, valid values, and per-phase
    bounds within its end-to-end bound."""
    from hetopt.sla import Sla, check_bounds

    if not block:
        return {}
    if not isinstance(block, Mapping):
        raise InputError(
            f"{source}: 'sla' must be a mapping such as {{e2e_s: 15.0}}, got {block!r}."
        )
    fields = [f.name for f in dataclasses.fields(Sla)]
    unknown = sorted(str(k) for k in set(block) - set(fields))
    if unknown:
        raise InputError(
            f"{source}: unknown key(s) {unknown_keys_message(unknown, fields)} in "
            f"its 'sla' block. Valid keys: {fields}."
        )
    try:
        Sla(**{"ttft_s": None, "tbt_s": None, **block})  # its values, checked on their own
    except InputError as exc:
        raise InputError(f"{source}: in its 'sla' block: {exc}") from None
    check_bounds(block, f"{source}: sla")
    return dict(block)


def config_dir() -> Path:
    """The Hydra config tree: ``$HETOPT_CONFIG_DIR`` or ``configs/`` next to the package."""
    env = os.environ.get("HETOPT_CONFIG_DIR")
    path = Path(env) if env else Path(__file__).resolve().parent.parent / "configs"
    if not (path / "config.yaml").is_file():
        raise InputError(
            f"hetopt's config tree was not found at {path}. Install hetopt from its repository "
            f"with `pip install -e .`, or point HETOPT_CONFIG_DIR at a copy of `configs/`."
        )
    return path


def workload_names() -> tuple[str, ...]:
    """Names accepted by ``workload=``."""
    return tuple(sorted(p.stem for p in (config_dir() / "workload").glob("*.yaml")))


def check_workload_name(name: str) -> str:
    """``name`` if it is a workload name (letters, digits, ``_``, ``-``, ``.``), else an
    :class:`InputError`: a name is looked up in ``configs/workload/``, never joined as a path."""
    if not is_plain_name(name):
        raise InputError(
            f"'{name}' is not a workload name: names are made of letters, digits, '_' and '-' "
            f"(shipped: {list(workload_names())}). To read a file of your own, give its path "
            f"with its .yaml or .mlir suffix (workload_file=path/to/agent.yaml)."
        )
    return name


def load_workload_data(
    name_or_path: str | Path, *, annotations: str | Path | None = None
) -> dict[str, Any]:
    """The workload mapping of a name (``voice_agent``) or of a file, read by the reader
    registered for its suffix (YAML unless registered otherwise; ``.mlir`` once
    :mod:`hetopt.mlir` is imported), or of an object in a code file (``my_agent.py:graph``, a
    LangGraph graph, once :mod:`hetopt.importers` is imported; ``annotations`` names its
    annotation file, else ``my_agent.hetopt.yaml`` next to it is read if present).

    The CLI composes command-line ``workload.*`` keys onto this mapping; the library plans the
    :class:`Workload` that :func:`load_workload` makes of it.

    Raises
    ------
    UnknownNameError
        For an unknown name; the message lists the shipped workloads (and the closest one).
    InputError
        For a name written as a path (``../x``), a URL, or a file that is missing, a directory,
        empty, binary, not UTF-8 or malformed (with the file and line).
    """
    text = str(name_or_path)
    target = split_object_target(text)
    if target is not None or Path(text).suffix.lower() in _OBJECT_SUFFIXES:
        return _load_object_data(text, target, annotations)
    if annotations is not None:
        raise InputError(
            f"workload file {text}: annotations ({annotations}) apply to a graph read from "
            f"code (workload_file=my_agent.py:graph); a workload file states every number "
            f"itself. Remove the annotations, or point workload_file at the graph object."
        )
    path = local_path(text, "workload file")
    if not path.suffix and not path.exists():
        name = check_workload_name(text)
        path = config_dir() / "workload" / f"{name}.yaml"
        if not path.is_file():
            raise UnknownNameError(
                f"Unknown workload '{name}'.{did_you_mean(name, workload_names())} Shipped "
                f"workloads: {list(workload_names())}; or pass a YAML file path."
            )
    suffix = path.suffix.lower()
    if suffix == ".mlir" and suffix not in _READERS:
        raise InputError(
            f"workload file {path}: .mlir workloads are read by hetopt.mlir, which is not "
            f"loaded. `import hetopt.mlir` before loading it (the hetopt command does)."
        )
    data = _READERS.get(suffix, _read_yaml)(path)
    if not isinstance(data, dict):
        raise InputError(
            f"workload file {path}: a workload file must hold a mapping (name, "
            f"request_rate_per_s, nodes, edges), got "
            f"{type(data).__name__}."
        )
    return data


_OBJECT_SUFFIXES = (".py",)
"""Code files: they hold a graph object, named after a colon (``my_agent.py:graph``)."""


def _load_object_data(
    text: str, target: tuple[str, str] | None, annotations: str | Path | None
) -> dict[str, Any]:
    file, attr = target if target is not None else require_object_target(text)
    path = local_path(file, "workload file")
    reader = _OBJECT_READERS.get(path.suffix.lower())
    if reader is None:
        raise InputError(
            f"workload file {text}: graphs in {path.suffix} files are read by hetopt.importers, "
            f"which is not loaded. `import hetopt.importers` before loading it (the hetopt "
            f"command does)."
        )
    data = reader(path, attr, annotations)
    if not isinstance(data, dict):
        raise InputError(f"workload file {text}: its reader returned {type(data).__name__}.")
    return data


def load_workload(name_or_path: str | Path) -> Workload:
    """Read a workload by name (``voice_agent``), from a YAML file path, or from an MLIR file
    (``.mlir``, the agent dialects of :mod:`hetopt.mlir.convert`; ``import hetopt.mlir`` first).

    Raises
    ------
    UnknownNameError, InputError
        As :func:`load_workload_data`, and for a malformed workload (:meth:`Workload.from_mapping`).

    Examples
    --------
    >>> wl = load_workload("rag_agent")
    >>> wl.source, wl.profile is None
    ("workload 'rag_agent'", True)
    """
    text = str(name_or_path)
    is_name = not Path(text).suffix and not Path(text).exists()
    source = f"workload '{text}'" if is_name else f"workload file {text}"
    return Workload.from_mapping(load_workload_data(text), source)


def _read_yaml(path: Path) -> Any:
    return load_yaml_input(path, "workload file")


def check_group_overrides(overrides: list[str]) -> None:
    """Refuse a config-group choice written as a path (``workload=../../x``, ``sla=/etc/x``).

    Hydra joins a group option to the group's folder, so ``..`` would read any YAML file on the
    machine as a workload. Options are names; a file of one's own goes through
    ``workload_file=`` or ``fleet_file=``.
    """
    groups = {p.name for p in config_dir().iterdir() if p.is_dir()}
    for override in overrides:
        key, sep, value = override.partition("=")
        group = key.lstrip("+~")
        if not sep or group not in groups:
            continue
        for choice in value.strip("[]").split(","):
            choice = choice.strip()
            if choice and (
                ".." in choice
                or choice.startswith(("/", "\\", "~"))
                or "\\" in choice
                or is_url(choice)
            ):
                options = sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))
                hint = (
                    " or workload_file=path/to/agent.yaml for a file of your own"
                    if group == "workload"
                    else " or fleet_file=path/to/fleet.yaml for a file of your own"
                    if group == "fleet"
                    else ""
                )
                raise InputError(
                    f"Override '{override}': '{choice}' is not a {group} name; config-group "
                    f"options are names, not paths. Choose one of {options}{hint}."
                )
