"""The hardware catalog: devices loaded from a CSV, looked up by name.

The packaged ``data/devices.csv`` holds the paper's Table 5 devices (with dense FLOP/s) plus a
few more GPUs and two server CPUs. Users add hardware by adding a row, to that file, to a copy
passed as ``path``, or as ``extra_rows``; every row goes through :class:`Device` validation and
a bad cell is reported with the file, the row and the column.
"""

from __future__ import annotations

import csv
import difflib
import io
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from hetopt.errors import InputError, UnknownNameError
from hetopt.hardware.schema import DEVICE_FIELDS, REQUIRED_FIELDS, Device
from hetopt.inputs import local_path, read_text_input, unknown_keys_message

logger = logging.getLogger(__name__)

DEFAULT_CATALOG_PATH: Path = Path(__file__).parent / "data" / "devices.csv"
"""The catalog shipped with hetopt."""


@dataclass(frozen=True)
class HardwareCatalog:
    """An immutable, ordered set of devices with unique (case-insensitive) names.

    Parameters
    ----------
    devices
        The devices, in catalog order.
    origin
        Where the devices came from (a path or a phrase); used in error messages.

    Examples
    --------
    >>> catalog = load_catalog()
    >>> catalog.get("h100").name
    'H100'
    >>> catalog.select(["B200", "Gaudi3"]).names
    ('B200', 'Gaudi3')
    """

    devices: tuple[Device, ...]
    origin: str = "in-memory catalog"

    def __post_init__(self) -> None:
        object.__setattr__(self, "devices", tuple(self.devices))
        seen: dict[str, str] = {}
        for device in self.devices:
            if not isinstance(device, Device):
                raise InputError(
                    f"HardwareCatalog ({self.origin}) got {type(device).__name__} where a "
                    "Device was expected. Build devices with Device(...) or load_catalog()."
                )
            key = device.name.casefold()
            if key in seen:
                raise InputError(
                    f"Device name {device.name!r} appears twice in {self.origin} (also as "
                    f"{seen[key]!r}; names are case-insensitive). Rename or remove one of them."
                )
            seen[key] = device.name

    # ------------------------------------------------------------------ lookup

    @property
    def names(self) -> tuple[str, ...]:
        """Device names in catalog order."""
        return tuple(device.name for device in self.devices)

    def __len__(self) -> int:
        return len(self.devices)

    def __iter__(self) -> Iterator[Device]:
        return iter(self.devices)

    def __contains__(self, name: object) -> bool:
        if isinstance(name, Device):
            name = name.name
        if not isinstance(name, str):
            return False
        return any(device.name.casefold() == name.casefold() for device in self.devices)

    def get(self, name: str) -> Device:
        """The device called ``name`` (case-insensitive).

        Parameters
        ----------
        name
            A device name such as ``"H100"`` or ``"epyc-genoa"``.

        Returns
        -------
        Device

        Raises
        ------
        UnknownNameError
            If no device has that name; the message lists the known names, suggests the
            closest one and says how to add a row.
        """
        wanted = str(name).strip().casefold()
        for device in self.devices:
            if device.name.casefold() == wanted:
                return device
        by_folded = {device.name.casefold(): device.name for device in self.devices}
        close = difflib.get_close_matches(wanted, list(by_folded), n=1, cutoff=0.5)
        hint = f" Did you mean {by_folded[close[0]]!r}?" if close else ""
        known = ", ".join(self.names) if self.devices else "(none)"
        raise UnknownNameError(
            f"Unknown device {name!r} in the hardware catalog ({self.origin}).{hint} Known "
            f"devices: {known}. To use another device, add a row for it to {DEFAULT_CATALOG_PATH} "
            "or to your own devices CSV (same columns, see hetopt.hardware.describe_schema()), "
            "loaded with load_catalog(path=...) or extra_rows=[...]."
        )

    def select(self, names: Iterable[str]) -> HardwareCatalog:
        """A catalog with only the named devices, in the order given (duplicates dropped).

        Parameters
        ----------
        names
            Device names (case-insensitive); a single string is taken as one name.

        Returns
        -------
        HardwareCatalog

        Raises
        ------
        UnknownNameError
            If any name is not in the catalog.
        """
        if isinstance(names, str):
            names = [names]
        picked: dict[str, Device] = {}
        for name in names:
            device = self.get(name)
            picked.setdefault(device.name, device)
        return HardwareCatalog(tuple(picked.values()), origin=self.origin)

    def with_devices(self, extra: Iterable[Device]) -> HardwareCatalog:
        """A catalog with ``extra`` devices appended.

        Parameters
        ----------
        extra
            Devices to add; their names must not clash with existing ones.

        Returns
        -------
        HardwareCatalog

        Raises
        ------
        InputError
            If a name is already taken.
        """
        return HardwareCatalog(self.devices + tuple(extra), origin=self.origin)

    def to_frame(self) -> pd.DataFrame:
        """The catalog as a table in CSV units, indexed by device name.

        Returns
        -------
        pandas.DataFrame
            One row per device; columns are the CSV columns except ``name``; empty cells
            are NaN (numbers) or None (text).
        """
        records = [device.model_dump() for device in self.devices]
        frame = pd.DataFrame.from_records(records, columns=list(DEVICE_FIELDS))
        return frame.set_index("name")


# ---------------------------------------------------------------------- loading


def load_catalog(
    path: str | Path | None = None,
    extra_rows: Sequence[Mapping[str, Any]] = (),
) -> HardwareCatalog:
    """Load and validate a devices CSV, plus optional extra rows.

    Parameters
    ----------
    path
        A CSV with the columns of :data:`~hetopt.hardware.schema.DEVICE_FIELDS` (optional
        columns may be left out). ``None`` loads the packaged catalog.
    extra_rows
        More rows as mappings from column name to value (strings as in the CSV, or numbers),
        appended after the file's rows.

    Returns
    -------
    HardwareCatalog

    Raises
    ------
    InputError
        If the file is missing or unreadable, required columns are missing, a column is
        unknown, a cell fails validation (the message names the file, the row's device and the
        column), or two rows share a name.

    Examples
    --------
    >>> catalog = load_catalog()
    >>> "H100" in catalog and "Xeon-SPR" in catalog
    True
    >>> row = dict(name="MyGPU", vendor="NVIDIA", kind="gpu", fp16_tflops="100", mem_gb="24",
    ...            mem_bw_gb_per_s="500", scale_up_domain="1", scale_out_bw_gbit_per_s="100",
    ...            tdp_w="150", price_usd="2000", operating_cost_usd_per_h="0.1",
    ...            compute_efficiency="0.7", bandwidth_efficiency="0.8", source="my datasheet")
    >>> load_catalog(extra_rows=[row]).get("mygpu").mem_bytes
    24000000000.0
    """
    csv_path = DEFAULT_CATALOG_PATH if path is None else local_path(path, "hardware.catalog_path")
    raw_rows = _read_csv(csv_path)
    label = csv_path.name

    devices: list[Device] = []
    problems: list[str] = []
    for line_no, row in raw_rows:
        where = _row_label(label, row, f"line {line_no}")
        device = _validate_row(row, where, problems)
        if device is not None:
            devices.append(device)
    if problems:
        raise InputError("; ".join(problems) + f". Fix the value in {csv_path} or remove the row.")

    for index, mapping in enumerate(extra_rows):
        row = _clean_mapping(mapping, f"extra_rows[{index}]")
        where = _row_label("extra_rows", row, f"entry {index}")
        device = _validate_row(row, where, problems)
        if device is not None:
            devices.append(device)
    if problems:
        raise InputError("; ".join(problems) + ". Fix the value in that extra row or drop it.")

    _check_unique(devices, csv_path)
    logger.debug(
        "loaded %d devices from %s (+%d extra rows)", len(devices), csv_path, len(extra_rows)
    )
    origin = str(csv_path) + (f" + {len(extra_rows)} extra rows" if extra_rows else "")
    return HardwareCatalog(tuple(devices), origin=origin)


def _read_csv(csv_path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, non-empty cells) for each data row; file-level problems raise."""
    what = "Hardware catalog file"
    try:
        text = read_text_input(csv_path, what)
    except InputError as exc:
        if "does not exist" in str(exc):
            raise InputError(
                f"Hardware catalog file {csv_path} was not found. Check the path, or omit it "
                f"to use the packaged catalog {DEFAULT_CATALOG_PATH}."
            ) from None
        raise
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)  # EOF in a quote
        header = [column.strip() for column in (reader.fieldnames or [])]
        reader.fieldnames = header
        _check_columns(header, csv_path)
        rows: list[tuple[int, dict[str, str]]] = []
        for record in reader:
            if None in record:
                raise InputError(
                    f"{csv_path.name} line {reader.line_num} has more cells than the header "
                    f"has columns (an unquoted comma in a text cell?). Quote that cell or "
                    f"remove the extra cells in {csv_path}."
                )
            cells = {
                key: value.strip()
                for key, value in record.items()
                if value is not None and value.strip()
            }
            if cells:
                rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise InputError(
            f"Hardware catalog file {csv_path} is not valid CSV ({exc}: an unclosed quote, "
            f"or a file cut short). Close every quoted cell; re-export a truncated file."
        ) from exc
    if not rows:
        raise InputError(
            f"Hardware catalog file {csv_path} has a header but no device rows; "
            f"add one row per device."
        )
    return rows


def _check_columns(header: Sequence[str], csv_path: Path) -> None:
    missing = [column for column in REQUIRED_FIELDS if column not in header]
    unknown = [column for column in header if column not in DEVICE_FIELDS]
    duplicated = sorted({column for column in header if header.count(column) > 1})
    parts = []
    if missing:
        parts.append(f"is missing the required column(s) {', '.join(missing)}")
    if unknown:
        parts.append(f"has unknown column(s) {unknown_keys_message(unknown, DEVICE_FIELDS)}")
    if duplicated:
        parts.append(f"repeats the column(s) {', '.join(duplicated)}")
    if parts:
        raise InputError(
            f"Hardware catalog file {csv_path} {' and '.join(parts)}. The columns are "
            f"{','.join(DEVICE_FIELDS)} (required: {', '.join(REQUIRED_FIELDS)}); fix the "
            "header line."
        )


def _clean_mapping(mapping: Mapping[str, Any], where: str) -> dict[str, Any]:
    unknown = [str(key) for key in mapping if key not in DEVICE_FIELDS]
    if unknown:
        raise InputError(
            f"{where} has unknown column(s) {unknown_keys_message(unknown, DEVICE_FIELDS)}. "
            f"The columns "
            f"are {','.join(DEVICE_FIELDS)}; rename or drop them."
        )
    cleaned: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, str):
            value = value.strip()
        if value is None or (isinstance(value, str) and not value):
            continue
        cleaned[key] = value
    return cleaned


def _row_label(label: str, row: Mapping[str, Any], fallback: str) -> str:
    name = row.get("name")
    if isinstance(name, str) and name:
        return f"{label} row {name!r}"
    return f"{label} {fallback}"


def _validate_row(row: dict[str, Any], where: str, problems: list[str]) -> Device | None:
    try:
        return Device.model_validate(row)
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "(row)"
            message = str(error["msg"]).removeprefix("Value error, ")
            missing = error["type"] == "missing" or error["input"] is None
            got = "the cell is empty or absent" if missing else f"got {error['input']}"
            problems.append(f"{where}, field {field!r}: {message} ({got})")
        return None


def _check_unique(devices: Sequence[Device], csv_path: Path) -> None:
    first: dict[str, str] = {}
    for device in devices:
        key = device.name.casefold()
        if key in first:
            raise InputError(
                f"{csv_path.name}: device name {device.name!r} is used by two rows (also "
                f"{first[key]!r}; names are case-insensitive). Rename or remove one of them in "
                f"{csv_path} (or in extra_rows)."
            )
        first[key] = device.name
