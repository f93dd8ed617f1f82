"""Hardware catalog: devices as validated data rows with units and sources.

Load the packaged catalog with :func:`load_catalog`, look devices up with
:meth:`HardwareCatalog.get`, and read peaks in SI units from :class:`Device`.
"""

from __future__ import annotations

from hetopt.hardware.catalog import DEFAULT_CATALOG_PATH, HardwareCatalog, load_catalog
from hetopt.hardware.schema import (
    DEVICE_FIELDS,
    PRECISIONS,
    REQUIRED_FIELDS,
    Device,
    DeviceKind,
    Precision,
    Vendor,
    describe_schema,
)

__all__ = [
    "DEFAULT_CATALOG_PATH",
    "DEVICE_FIELDS",
    "PRECISIONS",
    "REQUIRED_FIELDS",
    "Device",
    "DeviceKind",
    "HardwareCatalog",
    "Precision",
    "Vendor",
    "describe_schema",
    "load_catalog",
]
