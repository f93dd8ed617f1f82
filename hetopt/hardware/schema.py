"""One device of the hardware catalog: a validated row of ``devices.csv``.

A :class:`Device` keeps the units of the CSV (TFLOP/s, GB, GB/s, Gbit/s, W, $, $/h), so a row
reads the same in the file, in Python and in the docs. Downstream stages should use the SI
accessors (``peak_flops_per_s``, ``mem_bytes``, ``mem_bw_bytes_per_s``, ...), which convert
once, here. Decimal prefixes throughout: 1 GB = 1e9 bytes, 1 TFLOP/s = 1e12 FLOP/s.

Conventions worth knowing before adding a row:

- FLOP/s are *dense* vendor peaks (no 2:4 sparsity). bf16 shares the ``fp16_tflops`` column.
- Both bandwidth columns are per device and *per direction*, the figure a transfer or a ring
  all-reduce sees. Vendors quote scale-up fabrics with both directions summed (NVLink4 "900
  GB/s"), so halve that figure: H100 is 450 GB/s here. NIC rates (400 Gbit/s) are already
  per direction.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from hetopt.errors import InputError

Precision = Literal["fp32", "fp16", "bf16", "fp8"]
"""Numeric precision of a computation; bf16 runs at the fp16 rate."""

Vendor = Literal["NVIDIA", "AMD", "Intel"]
DeviceKind = Literal["gpu", "accelerator", "cpu"]

PRECISIONS: tuple[str, ...] = get_args(Precision)

_TERA = 1e12
_GIGA = 1e9

# precision -> the column that holds its dense peak
_PRECISION_COLUMN: dict[str, str] = {
    "fp32": "fp32_tflops",
    "fp16": "fp16_tflops",
    "bf16": "fp16_tflops",
    "fp8": "fp8_tflops",
}


def _field(
    unit: str,
    description: str,
    default: Any = ...,
    **constraints: Any,
) -> Any:
    """A pydantic ``Field`` that also records the unit for :func:`describe_schema`."""
    return Field(default, description=description, json_schema_extra={"unit": unit}, **constraints)


class Device(BaseModel):
    """One accelerator, GPU or CPU socket, with its peaks, prices and source.

    Fields are in the units of ``devices.csv``; use the SI properties for arithmetic.

    Examples
    --------
    >>> from hetopt.hardware import load_catalog
    >>> h100 = load_catalog().get("H100")
    >>> h100.peak_flops_per_s("fp16")
    989000000000000.0
    >>> h100.supports("fp8"), load_catalog().get("A40").supports("fp8")
    (True, False)
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    name: str = _field(
        "",
        "Short identifier used on the command line (letters, digits, '-', '_').",
        min_length=1,
        max_length=40,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$",
    )
    vendor: Vendor = _field("", "Vendor: NVIDIA, AMD or Intel.")
    kind: DeviceKind = _field("", "gpu, accelerator (non-GPU AI chip) or cpu (one socket).")
    fp16_tflops: float = _field(
        "TFLOP/s", "Dense FP16/BF16 peak (matrix units where present, no sparsity).", gt=0
    )
    fp8_tflops: float | None = _field(
        "TFLOP/s", "Dense FP8 peak; empty if the device has no FP8 support.", None, gt=0
    )
    fp32_tflops: float | None = _field(
        "TFLOP/s", "Dense FP32 peak (vector units, not TF32); empty if not published.", None, gt=0
    )
    mem_gb: float = _field("GB", "Device memory capacity (1 GB = 1e9 bytes).", gt=0)
    mem_bw_gb_per_s: float = _field("GB/s", "Peak device-memory bandwidth.", gt=0)
    scale_up_domain: int = _field(
        "devices",
        "Most devices in one scale-up (shared-memory fabric) chassis; 1 = no scale-up fabric.",
        ge=1,
    )
    scale_up_bw_gb_per_s: float | None = _field(
        "GB/s",
        "Scale-up fabric bandwidth per device and per direction (half the vendor's "
        "bidirectional figure: NVLink4 900 -> 450). Required when scale_up_domain > 1.",
        None,
        gt=0,
        validate_default=True,
    )
    scale_out_bw_gbit_per_s: float = _field(
        "Gbit/s", "Scale-out (RoCE/InfiniBand) NIC line rate per device, per direction.", gt=0
    )
    tdp_w: float = _field("W", "Thermal design power (maximum rated board/socket power).", gt=0)
    price_usd: float = _field("USD", "Purchase price of one device (capex).", gt=0)
    operating_cost_usd_per_h: float = _field(
        "USD/h",
        "Operating cost per device-hour besides financed capex (paper Table 5 column).",
        ge=0,
    )
    cloud_usd_per_h: float | None = _field(
        "USD/h", "On-demand cloud price per device-hour; empty if none is known.", None, gt=0
    )
    compute_efficiency: float = _field(
        "fraction", "Fraction of peak FLOP/s achievable in practice, in (0, 1].", gt=0, le=1
    )
    bandwidth_efficiency: float = _field(
        "fraction",
        "Fraction of peak memory bandwidth achievable in practice, in (0, 1].",
        gt=0,
        le=1,
    )
    cores: int | None = _field(
        "cores", "CPU cores per socket; required for kind=cpu.", None, gt=0, validate_default=True
    )
    source: str = _field(
        "", "Where every figure comes from (datasheet, paper table, derivation).", min_length=1
    )
    notes: str | None = _field("", "Normalisations, derivations and assumptions.", None)
    embodied_kgco2: float | None = _field(
        "kgCO2e",
        "Manufacturing (embodied) emissions of one device; empty: estimated from "
        "the TCO parameters' embodied_base_kgco2 + embodied_kgco2_per_gb x mem_gb.",
        None,
        ge=0,
    )
    age_years: float | None = _field(
        "years",
        "Age of an installed (already owned) device; empty: bought new. An installed "
        "device costs what keeping it costs (resale value forgone), not its price.",
        None,
        ge=0,
    )

    @field_validator("source")
    @classmethod
    def _source_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("source must cite where the figures come from, not be blank")
        return value

    @field_validator("scale_up_bw_gb_per_s")
    @classmethod
    def _scale_up_bw_needed(cls, value: float | None, info: ValidationInfo) -> float | None:
        domain = info.data.get("scale_up_domain")
        if value is None and isinstance(domain, int) and domain > 1:
            raise ValueError(
                f"scale_up_domain is {domain}, so a scale-up bandwidth per device is needed "
                "(or set scale_up_domain to 1)"
            )
        return value

    @field_validator("cores")
    @classmethod
    def _cpu_needs_cores(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is None and info.data.get("kind") == "cpu":
            raise ValueError("a cpu row needs its core count")
        return value

    # ---------------------------------------------------------------- precision

    @property
    def precisions(self) -> tuple[str, ...]:
        """The precisions this device has a peak for, in :data:`PRECISIONS` order."""
        return tuple(p for p in PRECISIONS if getattr(self, _PRECISION_COLUMN[p]) is not None)

    def supports(self, precision: str) -> bool:
        """Whether the catalog gives this device a peak for ``precision``.

        Parameters
        ----------
        precision
            One of ``fp32``, ``fp16``, ``bf16``, ``fp8``.

        Returns
        -------
        bool
            ``False`` for an unsupported or unknown precision.
        """
        column = _PRECISION_COLUMN.get(precision)
        return column is not None and getattr(self, column) is not None

    def peak_flops_per_s(self, precision: str) -> float:
        """Dense peak FLOP/s at ``precision`` (bf16 runs at the fp16 rate).

        Parameters
        ----------
        precision
            One of ``fp32``, ``fp16``, ``bf16``, ``fp8``.

        Returns
        -------
        float
            Peak FLOP/s (not TFLOP/s).

        Raises
        ------
        InputError
            If the precision is unknown or the device has no peak for it; there is no
            silent fallback to another precision.
        """
        column = _PRECISION_COLUMN.get(precision)
        if column is None:
            raise InputError(
                f"Unknown precision {precision!r} requested for device {self.name!r}. "
                f"Use one of {', '.join(PRECISIONS)}."
            )
        tflops = getattr(self, column)
        if tflops is None:
            raise InputError(
                f"Device {self.name!r} has no {precision} peak (column {column!r} is empty in "
                f"the hardware catalog); it supports {', '.join(self.precisions)}. Run the model "
                f"at one of those precisions, pick a device with {precision} support, or fill in "
                f"{column!r} for {self.name!r} if the hardware has it."
            )
        return float(tflops) * _TERA

    def effective_flops_per_s(self, precision: str) -> float:
        """Achievable FLOP/s: :meth:`peak_flops_per_s` times ``compute_efficiency``.

        Parameters
        ----------
        precision
            One of ``fp32``, ``fp16``, ``bf16``, ``fp8``.

        Returns
        -------
        float
            FLOP/s.
        """
        return self.peak_flops_per_s(precision) * self.compute_efficiency

    # ---------------------------------------------------------------- SI units

    @property
    def mem_bytes(self) -> float:
        """Device memory capacity in bytes."""
        return self.mem_gb * _GIGA

    @property
    def mem_bw_bytes_per_s(self) -> float:
        """Peak device-memory bandwidth in bytes/s."""
        return self.mem_bw_gb_per_s * _GIGA

    @property
    def effective_mem_bw_bytes_per_s(self) -> float:
        """Achievable memory bandwidth: peak times ``bandwidth_efficiency``, bytes/s."""
        return self.mem_bw_bytes_per_s * self.bandwidth_efficiency

    @property
    def scale_up_bw_bytes_per_s(self) -> float:
        """Scale-up bandwidth per device and direction in bytes/s.

        0.0 when the device has no scale-up fabric (``scale_up_domain == 1``); callers only
        need it for tensor parallelism within a domain, which such a device cannot form.
        """
        if self.scale_up_bw_gb_per_s is None:
            return 0.0
        return self.scale_up_bw_gb_per_s * _GIGA

    @property
    def scale_out_bw_bytes_per_s(self) -> float:
        """Scale-out NIC rate per device and direction in bytes/s."""
        return self.scale_out_bw_gbit_per_s * _GIGA / 8.0

    @property
    def power_w(self) -> float:
        """Rated power (TDP) in W; the paper's TCO runs every node at this figure."""
        return self.tdp_w


DEVICE_FIELDS: tuple[str, ...] = tuple(
    [
        "name",
        "vendor",
        "kind",
        "fp16_tflops",
        "fp8_tflops",
        "fp32_tflops",
        "mem_gb",
        "mem_bw_gb_per_s",
        "scale_up_bw_gb_per_s",
        "scale_up_domain",
        "scale_out_bw_gbit_per_s",
        "tdp_w",
        "price_usd",
        "operating_cost_usd_per_h",
        "cloud_usd_per_h",
        "compute_efficiency",
        "bandwidth_efficiency",
        "cores",
        "source",
        "notes",
        "embodied_kgco2",
        "age_years",
    ]
)
"""The columns of ``devices.csv``, in file order."""

REQUIRED_FIELDS: tuple[str, ...] = tuple(
    name for name in DEVICE_FIELDS if Device.model_fields[name].is_required()
)
"""Columns that must be present (and non-empty in every row)."""

if set(DEVICE_FIELDS) != set(Device.model_fields):  # pragma: no cover - a developer mistake
    raise RuntimeError("DEVICE_FIELDS is out of sync with Device.model_fields")


def describe_schema() -> pd.DataFrame:
    """The catalog schema as a table, for the docs and ``hetopt hardware --schema``.

    Returns
    -------
    pandas.DataFrame
        One row per CSV column, in file order, with columns ``attribute``, ``unit``,
        ``required`` and ``description``.

    Examples
    --------
    >>> describe_schema().set_index("attribute").loc["tdp_w", "unit"]
    'W'
    """
    rows = []
    for name in DEVICE_FIELDS:
        info = Device.model_fields[name]
        extra = info.json_schema_extra
        unit = extra.get("unit", "") if isinstance(extra, dict) else ""
        rows.append(
            {
                "attribute": name,
                "unit": unit,
                "required": info.is_required(),
                "description": info.description or "",
            }
        )
    return pd.DataFrame(rows, columns=["attribute", "unit", "required", "description"])
