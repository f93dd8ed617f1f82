"""The packaged hardware catalog, its validation messages, and adding a device by a row."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from hetopt.errors import InputError, UnknownNameError
from hetopt.hardware import (
    DEFAULT_CATALOG_PATH,
    DEVICE_FIELDS,
    REQUIRED_FIELDS,
    Device,
    HardwareCatalog,
    describe_schema,
    load_catalog,
)

REQUIRED_DEVICES = (
    "A40",
    "A100",
    "Gaudi3",
    "MI300X",
    "H100",
    "B200",
    "H200",
    "L4",
    "L40S",
    "Xeon-SPR",
    "EPYC-Genoa",
)

# paper Table 5: price ($), operating cost ($/h)
TABLE5 = {
    "A40": (3_000, 0.15),
    "A100": (8_000, 0.25),
    "Gaudi3": (12_500, 0.49),
    "MI300X": (20_000, 0.52),
    "H100": (25_000, 0.60),
    "B200": (40_000, 0.83),
}

GOOD_ROW = {
    "name": "MyGPU",
    "vendor": "NVIDIA",
    "kind": "gpu",
    "fp16_tflops": "100",
    "fp8_tflops": "200",
    "fp32_tflops": "",
    "mem_gb": "24",
    "mem_bw_gb_per_s": "500",
    "scale_up_bw_gb_per_s": "32",
    "scale_up_domain": "8",
    "scale_out_bw_gbit_per_s": "100",
    "tdp_w": "150",
    "price_usd": "2000",
    "operating_cost_usd_per_h": "0.1",
    "cloud_usd_per_h": "",
    "compute_efficiency": "0.7",
    "bandwidth_efficiency": "0.8",
    "cores": "",
    "source": "test datasheet",
    "notes": "",
}


def _packaged_rows() -> list[dict[str, str]]:
    with DEFAULT_CATALOG_PATH.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _write_csv(path: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> Path:
    columns = list(DEVICE_FIELDS) if columns is None else columns
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _with(row: dict[str, str], **changes: str) -> dict[str, str]:
    return {**row, **changes}


@pytest.fixture(scope="module")
def catalog() -> HardwareCatalog:
    return load_catalog()


# ------------------------------------------------------------------ packaged data


def test_packaged_catalog_has_required_devices(catalog: HardwareCatalog) -> None:
    assert set(REQUIRED_DEVICES) <= set(catalog.names)
    assert len(catalog) >= len(REQUIRED_DEVICES)


def test_csv_header_is_exactly_the_schema() -> None:
    with DEFAULT_CATALOG_PATH.open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert tuple(header) == DEVICE_FIELDS


def test_every_row_cites_a_source(catalog: HardwareCatalog) -> None:
    for device in catalog:
        assert device.source.strip(), device.name


@pytest.mark.parametrize(
    ("name", "price_usd", "op_usd_per_h"), [(n, p, o) for n, (p, o) in TABLE5.items()]
)
def test_table5_price_and_operating_cost_exact(
    catalog: HardwareCatalog, name: str, price_usd: float, op_usd_per_h: float
) -> None:
    device = catalog.get(name)
    assert device.price_usd == price_usd
    assert device.operating_cost_usd_per_h == op_usd_per_h
    assert "Table 5" in device.source


def test_h100_flops_are_dense(catalog: HardwareCatalog) -> None:
    h100 = catalog.get("H100")
    assert h100.fp16_tflops == 989
    assert h100.peak_flops_per_s("fp16") == pytest.approx(989e12)
    assert h100.peak_flops_per_s("bf16") == h100.peak_flops_per_s("fp16")
    assert h100.peak_flops_per_s("fp8") == pytest.approx(1979e12)
    assert h100.notes is not None and "1979" in h100.notes  # the paper's figure is recorded


def test_normalised_table5_figures_record_the_paper_value(catalog: HardwareCatalog) -> None:
    for name, paper_tflops in {"A40": "75", "A100": "322", "Gaudi3": "1678"}.items():
        notes = catalog.get(name).notes or ""
        assert "Normalised" in notes and paper_tflops in notes, name


def test_a40_has_no_fp8(catalog: HardwareCatalog) -> None:
    a40 = catalog.get("A40")
    assert not a40.supports("fp8")
    assert a40.supports("fp16") and a40.supports("bf16")
    with pytest.raises(InputError, match=r"'A40' has no fp8.*fp32, fp16, bf16"):
        a40.peak_flops_per_s("fp8")
    with pytest.raises(InputError, match="Unknown precision"):
        a40.peak_flops_per_s("int4")


def test_si_accessors(catalog: HardwareCatalog) -> None:
    h100 = catalog.get("H100")
    assert h100.mem_bytes == pytest.approx(80e9)
    assert h100.mem_bw_bytes_per_s == pytest.approx(3.35e12)
    assert h100.effective_mem_bw_bytes_per_s == pytest.approx(3.35e12 * 0.8)
    assert h100.effective_flops_per_s("fp16") == pytest.approx(989e12 * 0.7)
    assert h100.scale_up_bw_bytes_per_s == pytest.approx(450e9)  # NVLink4, one direction
    assert h100.scale_out_bw_bytes_per_s == pytest.approx(400e9 / 8)
    assert catalog.get("Xeon-SPR").scale_up_bw_bytes_per_s == 0.0


def test_cpus_are_single_socket_and_cheaper_to_run(catalog: HardwareCatalog) -> None:
    for name in ("Xeon-SPR", "EPYC-Genoa"):
        cpu = catalog.get(name)
        assert cpu.kind == "cpu" and cpu.scale_up_domain == 1 and cpu.cores
        assert not cpu.supports("fp8")
        assert cpu.compute_efficiency < 0.7
    assert catalog.get("Xeon-SPR").cores == 56
    assert catalog.get("EPYC-Genoa").cores == 96


def test_accelerators_have_eight_way_scale_up(catalog: HardwareCatalog) -> None:
    for device in catalog:
        if device.kind != "cpu":
            assert device.scale_up_domain == 8, device.name


def test_lookup_is_case_insensitive_and_select_keeps_order(catalog: HardwareCatalog) -> None:
    assert catalog.get("epyc-genoa").name == "EPYC-Genoa"
    assert "h100" in catalog
    picked = catalog.select(["B200", "gaudi3", "B200"])
    assert picked.names == ("B200", "Gaudi3")
    assert catalog.select("L4").names == ("L4",)


def test_to_frame_and_schema(catalog: HardwareCatalog) -> None:
    frame = catalog.to_frame()
    assert list(frame.index) == list(catalog.names)
    assert frame.loc["H100", "mem_bw_gb_per_s"] == 3350
    assert pd.isna(frame.loc["A40", "fp8_tflops"])
    schema = describe_schema()
    assert list(schema.columns) == ["attribute", "unit", "required", "description"]
    assert tuple(schema["attribute"]) == DEVICE_FIELDS
    required = set(schema.loc[schema["required"], "attribute"])
    assert required == set(REQUIRED_FIELDS)
    assert {"name", "price_usd", "source"} <= required
    assert schema.set_index("attribute").loc["mem_bw_gb_per_s", "unit"] == "GB/s"


def test_unknown_name_suggests_closest(catalog: HardwareCatalog) -> None:
    with pytest.raises(UnknownNameError) as info:
        catalog.get("H10")
    message = str(info.value)
    assert "Did you mean 'H100'?" in message
    assert "B200" in message and "add a row" in message
    with pytest.raises(UnknownNameError, match="'Gaudi3'"):
        catalog.select(["gaudi-3"])


# ------------------------------------------------------------------ bad rows


def test_negative_bandwidth_names_row_and_field(tmp_path: Path) -> None:
    rows = [
        _with(row, mem_bw_gb_per_s="-5") if row["name"] == "H100" else row
        for row in _packaged_rows()
    ]
    path = _write_csv(tmp_path / "devices.csv", rows)
    with pytest.raises(InputError) as info:
        load_catalog(path)
    message = str(info.value)
    assert message.startswith(
        "devices.csv row 'H100', field 'mem_bw_gb_per_s': Input should be greater than 0 (got -5)"
    )
    assert f"Fix the value in {path} or remove the row." in message
    assert "\n" not in message


def test_missing_price_is_rejected(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "mine.csv", [_with(GOOD_ROW, price_usd="")])
    expected = r"mine.csv row 'MyGPU', field 'price_usd': Field required"
    with pytest.raises(InputError, match=expected):
        load_catalog(path)


def test_unknown_vendor_is_rejected(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "mine.csv", [_with(GOOD_ROW, vendor="Nvidia")])
    expected = r"row 'MyGPU', field 'vendor': .*'NVIDIA'.*\(got Nvidia\)"
    with pytest.raises(InputError, match=expected):
        load_catalog(path)


def test_duplicate_name_is_rejected(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "mine.csv", [GOOD_ROW, _with(GOOD_ROW, name="mygpu")])
    with pytest.raises(InputError, match=r"'mygpu' is used by two rows"):
        load_catalog(path)


def test_missing_column_is_named(tmp_path: Path) -> None:
    columns = [c for c in DEVICE_FIELDS if c not in ("tdp_w", "source")]
    path = _write_csv(tmp_path / "mine.csv", [GOOD_ROW], columns=columns)
    with pytest.raises(InputError, match=r"missing the required column\(s\) tdp_w, source"):
        load_catalog(path)


def test_unknown_column_is_named(tmp_path: Path) -> None:
    path = _write_csv(
        tmp_path / "mine.csv", [{**GOOD_ROW, "colour": "green"}], columns=[*DEVICE_FIELDS, "colour"]
    )
    with pytest.raises(InputError, match="unknown column.*'colour'"):
        load_catalog(path)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(InputError, match="nope.csv was not found"):
        load_catalog(path)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"compute_efficiency": "1.5"}, "compute_efficiency"),
        ({"bandwidth_efficiency": "0"}, "bandwidth_efficiency"),
        ({"scale_up_domain": "0"}, "scale_up_domain"),
        ({"scale_up_bw_gb_per_s": ""}, "scale_up_bw_gb_per_s"),
        ({"kind": "tpu"}, "kind"),
        ({"name": "my gpu"}, "name"),
        ({"source": "  "}, "source"),
        ({"kind": "cpu"}, "cores"),
        ({"fp16_tflops": "lots"}, "fp16_tflops"),
    ],
)
def test_field_validation(tmp_path: Path, change: dict[str, str], field: str) -> None:
    path = _write_csv(tmp_path / "mine.csv", [_with(GOOD_ROW, **change)])
    with pytest.raises(InputError, match=f"field '{field}'"):
        load_catalog(path)


def test_several_bad_cells_in_one_paragraph(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "mine.csv", [_with(GOOD_ROW, mem_gb="-1", tdp_w="0")])
    with pytest.raises(InputError) as info:
        load_catalog(path)
    message = str(info.value)
    assert "field 'mem_gb'" in message and "field 'tdp_w'" in message
    assert message.count("Fix the value") == 1


def test_device_model_is_frozen_and_strict(catalog: HardwareCatalog) -> None:
    h100 = catalog.get("H100")
    with pytest.raises(ValueError, match="frozen"):
        h100.price_usd = 1.0
    with pytest.raises(ValueError, match="Extra inputs"):
        Device.model_validate({**h100.model_dump(), "colour": "green"})


# ------------------------------------------------------------------ adding a device


def test_user_adds_a_device_by_adding_a_row(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "devices.csv", [*_packaged_rows(), GOOD_ROW])
    catalog = load_catalog(path)
    mine = catalog.get("mygpu")
    assert mine.peak_flops_per_s("fp8") == pytest.approx(200e12)
    assert mine.mem_bytes == pytest.approx(24e9)
    assert not mine.supports("fp32")
    assert set(REQUIRED_DEVICES) < set(catalog.names)


def test_extra_rows_and_with_devices(catalog: HardwareCatalog) -> None:
    extended = load_catalog(extra_rows=[{**GOOD_ROW, "mem_gb": 32, "cores": None}])
    assert extended.get("MyGPU").mem_gb == 32
    assert extended.names[: len(catalog)] == catalog.names
    with pytest.raises(InputError, match="extra_rows row 'MyGPU', field 'tdp_w'"):
        load_catalog(extra_rows=[{**GOOD_ROW, "tdp_w": -1}])
    with pytest.raises(InputError, match="used by two rows"):
        load_catalog(extra_rows=[{**GOOD_ROW, "name": "H100"}])

    mine = extended.get("MyGPU")
    assert catalog.with_devices([mine]).names[-1] == "MyGPU"
    with pytest.raises(InputError, match="appears twice"):
        extended.with_devices([mine])
