"""Reading users' files safely: one home for the checks every reader shares.

Every file hetopt reads on a user's behalf (workload YAML and MLIR, hardware catalog, measured
profile, size and arrival traces, fleet file, calibration tables, a saved plan's
``config.yaml``) goes through :func:`read_text_input`, and through :func:`load_yaml_input` or
:func:`read_csv_input` on top of it. They refuse, with an :class:`~hetopt.errors.InputError`
that names the file:

* a URL (``http://...``, ``s3://...``): inputs are local files, never fetched;
* a missing path, a directory, a device or pipe, a file larger than the reader's limit;
* an empty file, a compressed or otherwise binary file, text that is not UTF-8;
* YAML that is malformed (line and column), repeats a key, nests too deeply, or whose aliases
  expand into more than :data:`MAX_YAML_NODES` nodes (a "billion laughs" bomb fails in
  milliseconds instead of eating the machine's memory);
* CSV with a header and no rows, a ragged row, a repeated or missing column (with the closest
  valid name), and, through :func:`numeric_column` and :func:`text_column`, a blank cell or a
  cell such as ``12.1ms`` or ``8k`` (with the row and the column).

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> (d / "w.yaml").write_text("a: &x [1, 2]\\nb: *x\\n")
19
>>> load_yaml_input(d / "w.yaml", "workload file")
{'a': [1, 2], 'b': [1, 2]}
>>> (d / "e.csv").write_text("x,y\\n")
4
>>> read_csv_input(d / "e.csv", "size_trace")
Traceback (most recent call last):
...
hetopt.errors.InputError: size_trace: .../e.csv has a header but no data rows; add at least one row.
>>> is_url("https://example.com/t.csv"), is_url("traces/t.csv")
(True, False)
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import re
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hetopt.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

MAX_YAML_BYTES = 4 * 2**20
"""Largest YAML document read (workloads, fleets and saved configs are kilobytes)."""

MAX_YAML_NODES = 200_000
"""Most YAML nodes a document may hold once its aliases are expanded."""

MAX_TABLE_BYTES = 2 * 2**30
"""Largest CSV read (arrival and size traces may hold millions of requests)."""

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_MAGIC = {
    b"\x1f\x8b": "gzip-compressed",
    b"PK\x03\x04": "a zip archive",
    b"BZh": "bzip2-compressed",
    b"\xfd7zXZ\x00": "xz-compressed",
    b"\x28\xb5\x2f\xfd": "zstd-compressed",
    b"\x89PNG": "a PNG image",
    b"%PDF": "a PDF document",
    b"\x7fELF": "an executable",
    b"\xff\xfe": "UTF-16 text (save it as UTF-8)",
    b"\xfe\xff": "UTF-16 text (save it as UTF-8)",
}


def is_url(path: str | Path) -> bool:
    """True when ``path`` is written as a URL (``scheme://...``) rather than a local path."""
    return bool(_URL.match(str(path).strip()))


def local_path(path: str | Path, what: str) -> Path:
    """``path`` as a :class:`~pathlib.Path`; a URL or an empty name is an :class:`InputError`.

    hetopt never fetches its inputs: a URL in a workload or fleet file must not make it issue a
    network request (``pandas.read_csv`` would).
    """
    text = str(path)
    if not text.strip():
        raise InputError(f"{what}: the file name is empty; give the path of a local file.")
    if is_url(text):
        raise InputError(
            f"{what}: {text!r} is a URL; hetopt reads local files only and never "
            f"fetches one. Download the file and give its local path."
        )
    return Path(text)


def read_bytes_input(path: str | Path, what: str, max_bytes: int = MAX_TABLE_BYTES) -> bytes:
    """The bytes of a local regular file, or an :class:`InputError` naming ``what`` and the path.

    Parameters
    ----------
    path
        The file.
    what
        The option or kind of file, for messages (``costs.measured_profile``, ``workload file``).
    max_bytes
        Refuse larger files.
    """
    p = local_path(path, what)
    try:
        info = p.stat()
    except FileNotFoundError:
        raise InputError(
            f"{what}: cannot read {p}: the file does not exist. Check the path (relative paths start "
            f"from the current directory, {Path.cwd()})."
        ) from None
    except OSError as exc:
        raise InputError(f"{what}: cannot read {p} ({exc.strerror or exc}).") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(
            f"{what}: {p} is a directory, not a file. Give the path of the file itself."
        )
    if not stat.S_ISREG(info.st_mode):
        raise InputError(
            f"{what}: {p} is not a regular file (a device, pipe or socket). Give "
            f"the path of a file."
        )
    if info.st_size > max_bytes:
        raise InputError(
            f"{what}: {p} is {info.st_size:,} bytes, above the limit of "
            f"{max_bytes:,} for this kind of file. Is it the right file?"
        )
    try:
        return p.read_bytes()
    except OSError as exc:
        raise InputError(
            f"{what}: cannot read {p} ({exc.strerror or exc}). Check its permissions."
        ) from None


def read_text_input(path: str | Path, what: str, max_bytes: int = MAX_TABLE_BYTES) -> str:
    """The UTF-8 text of a local file (a leading byte-order mark dropped).

    Raises
    ------
    InputError
        A URL, a missing path, a directory, an over-size file (see :func:`read_bytes_input`),
        an empty file, a compressed or binary file, or bytes that are not UTF-8 (the message
        gives the line).
    """
    data = read_bytes_input(path, what, max_bytes)
    if not data.strip():
        raise InputError(
            f"{what}: {path} is empty. Give a file with content (was it "
            f"truncated, or not saved yet?)."
        )
    for magic, kind in _MAGIC.items():
        if data.startswith(magic):
            raise InputError(
                f"{what}: {path} is {kind}, not text. Give the plain-text file "
                f"(decompress or export it first)."
            )
    if b"\x00" in data:
        raise InputError(
            f"{what}: {path} is a binary file (it holds NUL bytes), not text. "
            f"Give the plain-text file."
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{what}: {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} on "
            f"line {line}); the file may be truncated or saved in another "
            f"encoding. Save it as UTF-8."
        ) from None


# --------------------------------------------------------------------------------------------
# YAML
# --------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e9`` and ``2.0e8`` as floats and rejects duplicate keys.

    YAML 1.1 (PyYAML's default) only reads ``2.0e+8`` as a float and ``2.0e8`` as a string, and
    silently keeps the last of two equal keys; both hide mistakes in hand-written files.
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9_]+|[0-9][0-9_]*)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:  # unhashable key: let construct_mapping report it
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _expanded_size(root: yaml.Node, source: str, limit: int) -> int:
    """Nodes in the document with every alias expanded, counted without expanding them."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            total = 1 + sum(size[id(c)] for c in _children(node))
            size[key] = min(total, limit + 1)
            continue
        if key in size:
            continue
        if key in on_path:
            mark = node.start_mark
            raise InputError(
                f"{source}: line {mark.line + 1}: an alias refers to the mapping or "
                f"list that contains it (a recursive anchor). Write the values out."
            )
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in size)
    return size[id(root)]


def parse_yaml_text(text: str, source: str) -> Any:
    """Parse one YAML document with hetopt's safe loader, capped in size and alias expansion.

    Parameters
    ----------
    text
        The document.
    source
        The file (or other origin) named in messages.

    Raises
    ------
    InputError
        Malformed YAML (line and column), a repeated key, nesting deeper than the parser can
        follow, a recursive anchor, or aliases expanding past :data:`MAX_YAML_NODES` nodes.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, source, MAX_YAML_NODES) > MAX_YAML_NODES:
            raise InputError(
                f"{source}: its aliases (*name) expand to more than {MAX_YAML_NODES:,} values "
                f"(a YAML alias bomb?). hetopt refuses such documents; write the values out "
                f"or use fewer nested aliases."
            )
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown line"
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise InputError(
            f"{source}: malformed YAML at {where}: {problem}. Fix the syntax there (indentation, "
            "a missing ':' or closing bracket, a tab, or a repeated key)."
        ) from None
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: malformed YAML ({exc}). Fix the file's syntax.") from None
    except RecursionError:
        raise InputError(
            f"{source}: the YAML nests lists or mappings too deeply to read. Flatten the document."
        ) from None
    finally:
        loader.dispose()


def load_yaml_input(
    path: str | Path, what: str = "YAML file", max_bytes: int = MAX_YAML_BYTES
) -> Any:
    """Read one local YAML file safely (:func:`read_text_input`, then :func:`parse_yaml_text`).

    Returns
    -------
    Any
        The parsed document.
    """
    text = read_text_input(path, what, max_bytes)
    return parse_yaml_text(text, f"{what} {path}" if what != "YAML file" else str(path))


# --------------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------------


def closest(key: str, valid: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The valid name closest to ``key`` (case-insensitive, :mod:`difflib`), or None."""
    by_folded = {str(v).casefold(): str(v) for v in valid}
    close = difflib.get_close_matches(str(key).casefold(), list(by_folded), n=1, cutoff=cutoff)
    return by_folded[close[0]] if close else None


def did_you_mean(key: str, valid: Iterable[str], cutoff: float = 0.6) -> str:
    """`` Did you mean 'x'?`` for the valid name closest to ``key``, or an empty string.

    >>> did_you_mean("request_rate_per_sec", ["request_rate_per_s", "nodes"])
    " Did you mean 'request_rate_per_s'?"
    """
    match = closest(key, valid, cutoff)
    return f" Did you mean '{match}'?" if match else ""


def unknown_keys_message(unknown: Sequence[str], valid: Iterable[str]) -> str:
    """The unknown keys, then the closest valid key of each that has one.

    >>> unknown_keys_message(["e2e", "colour"], ["e2e_s", "ttft_s"])
    "['e2e', 'colour'] (did you mean 'e2e_s' for 'e2e'?)"
    """
    valid = [str(v) for v in valid]
    pairs = [(str(k), closest(str(k), valid)) for k in unknown]
    hints = [f"'{m}' for '{k}'" for k, m in pairs if m]
    if len(unknown) == 1 and hints:
        return f"{[str(k) for k in unknown]} (did you mean '{pairs[0][1]}'?)"
    return f"{[str(k) for k in unknown]}" + (
        f" (did you mean {', '.join(hints)}?)" if hints else ""
    )


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------


def read_csv_input(
    path: str | Path,
    what: str,
    missing_hint: str = "",
    required: Sequence[str] = (),
    allow_empty: bool = False,
    rows_name: str = "data",
) -> pd.DataFrame:
    """Read a user's CSV, checked, with the file's line numbers as the index.

    Row ``i`` of the frame is line ``i + 2`` of the file (the header is line 1); wholly blank
    lines are dropped.

    Parameters
    ----------
    path
        A local CSV file.
    what
        The option or kind of file, for messages.
    missing_hint
        Added to the message when the file does not exist.
    required
        Columns the file must have; a missing one is named with the closest column present.
    allow_empty
        Accept a header without rows.
    rows_name
        What a row is, for the message on a header-only file (``measurement``).

    Raises
    ------
    InputError
        Everything :func:`read_text_input` refuses, malformed CSV, a repeated or missing
        column, or (unless ``allow_empty``) no data rows.
    """
    import pandas as pd

    try:
        text = read_text_input(path, what)
    except InputError as exc:
        if missing_hint and "does not exist" in str(exc):
            raise InputError(f"{exc}{missing_hint}") from None
        raise
    try:
        rows = csv.reader(io.StringIO(text, newline=""), strict=True)  # EOF in a quote
        header = next(rows)
        for cells in rows:
            if cells and len(cells) != len(header) and any(c.strip() for c in cells):
                raise InputError(
                    f"{what}: {path} line {rows.line_num} has {len(cells)} cells but the header "
                    f"has {len(header)} columns (a truncated row, or an unquoted comma). Give "
                    f"every row one cell per column; quote cells that hold commas."
                )
    except (csv.Error, StopIteration) as exc:
        raise InputError(
            f"{what}: cannot read {path} as CSV ({exc}: an unclosed quote, or a "
            f"file cut short). Close every quoted cell; re-export a truncated "
            f"file."
        ) from None
    names = [h.strip() for h in header]
    twice = sorted({h for h in names if names.count(h) > 1})
    if twice:
        raise InputError(
            f"{what}: {path} repeats the column(s) {twice} in its header; keep one of each."
        )
    if any(not h for h in names):
        raise InputError(
            f"{what}: {path} has a column without a name in its header (an extra "
            f"comma?). Name every column."
        )
    try:
        frame = pd.read_csv(io.StringIO(text), skip_blank_lines=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        detail = " ".join(str(exc).split())
        raise InputError(
            f"{what}: cannot read {path} as CSV ({detail}). Every row needs one "
            f"cell per header column; quote cells that hold commas."
        ) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame.dropna(how="all")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputError(
            f"{what}: {path} is missing column(s) "
            f"{unknown_keys_message(missing, frame.columns)}; it needs "
            f"{list(required)} (it has {list(frame.columns)})."
        )
    if frame.empty and not allow_empty:
        raise InputError(
            f"{what}: {path} has a header but no {rows_name} rows; add at least one row."
        )
    return frame


def numeric_column(
    frame: pd.DataFrame,
    column: str,
    where: str,
    *,
    minimum: float | None = None,
    strict: bool = False,
    integer: bool = False,
) -> np.ndarray:
    """The column as floats; a blank, non-numeric or out-of-range cell is an :class:`InputError`.

    Parameters
    ----------
    frame
        From :func:`read_csv_input` (its index is the line number minus 2).
    column
        The column.
    where
        The file, for messages (``"size_trace traces/t.csv"``).
    minimum, strict
        Every value must be ``>= minimum`` (``> minimum`` when ``strict``).
    integer
        Every value must be a whole number.
    """
    import numpy as np
    import pandas as pd

    column_values = frame[column]
    numbers = pd.to_numeric(column_values, errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(numbers)
    if integer:
        ok &= np.mod(numbers, 1.0) == 0
    if minimum is not None:
        ok &= (numbers > minimum) if strict else (numbers >= minimum)
    for k in np.flatnonzero(~ok):  # diagnose (or, for padded cells, accept) each suspect
        numbers[k] = _cell_number(
            column_values.iloc[k],
            f"{where} row {_line(column_values.index[k])}, column {column}",
            minimum,
            strict,
            integer,
        )
    return numbers


def _cell_number(raw: Any, at: str, minimum: float | None, strict: bool, integer: bool) -> float:
    import numpy as np

    if isinstance(raw, np.generic):
        raw = raw.item()  # messages show 0.5, not np.float64(0.5)
    if (
        raw is None
        or (isinstance(raw, float) and math.isnan(raw))
        or (isinstance(raw, str) and not raw.strip())
    ):
        raise InputError(f"{at}: the cell is blank. Fill in a number or remove the row.")
    try:
        number = float(raw.strip() if isinstance(raw, str) else raw)
    except (TypeError, ValueError):
        raise InputError(
            f"{at}: {raw!r} is not a number. Write plain numbers, without units "
            f"or suffixes (12.1ms -> 0.0121 in a _s column, 8k -> 8000)."
        ) from None
    if not math.isfinite(number):
        raise InputError(f"{at}: must be a finite number, got {raw!r}.")
    if integer and not number.is_integer():
        raise InputError(f"{at}: must be a whole number, got {raw!r}.")
    if minimum is not None and (number < minimum or (strict and number == minimum)):
        raise InputError(f"{at}: must be {'>' if strict else '>='} {minimum:g}, got {raw!r}.")
    return number


def text_column(frame: pd.DataFrame, column: str, where: str) -> list[str]:
    """The column as stripped strings; a blank cell is an :class:`InputError` (row, column)."""
    out = []
    for index, raw in frame[column].items():
        if raw is None or (isinstance(raw, float) and math.isnan(raw)) or not str(raw).strip():
            raise InputError(
                f"{where} row {_line(index)}, column {column}: the cell is blank. "
                f"Fill it in or remove the row."
            )
        out.append(str(raw).strip())
    return out


def _line(index: Any) -> int:
    try:
        return int(index) + 2
    except (TypeError, ValueError):
        return 0


def finite_number(value: object, where: str, hint: str = "") -> float:
    """``value`` as a finite float, or :class:`InputError` naming ``where`` (plus ``hint``)."""
    import numpy as np

    if (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or (isinstance(value, str) and not value.strip())
    ):
        raise InputError(f"{where}: the cell is blank; fill in a number.{hint}")
    if isinstance(value, np.generic):
        value = value.item()  # messages show 0.5, not np.float64(0.5)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"{where}: not a number ({value!r}).{hint}") from None
    if not math.isfinite(number):
        raise InputError(f"{where}: must be a finite number, got {value!r}.")
    return number


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


def is_plain_name(text: str) -> bool:
    """True when ``text`` can name a file inside a directory hetopt owns and nothing else:
    letters, digits, ``_``, ``-`` and ``.``, starting with a letter, digit or ``_``, at most 100
    characters, and no ``..`` (so never a path: workload names, study names).

    >>> is_plain_name("voice_agent"), is_plain_name("../etc/passwd"), is_plain_name("a/b")
    (True, False, False)
    """
    return bool(_PLAIN_NAME.fullmatch(text)) and ".." not in text
