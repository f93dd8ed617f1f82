"""``hetopt calibrate``: refresh the cost model's fitted coefficients.

``hetopt calibrate`` measures a grid of prefill and decode steps in aiconfigurator's silicon
database (the ``calibration`` extra), fits the step model per device and precision, and writes
into ``outputs/calibrate/<timestamp>/`` (or ``out=DIR``):

* ``calibration.csv``: the table, in the format hetopt ships and reads
  (``costs.calibration=<this file>`` plans with it);
* ``measurements.csv``: the measured points, with their source;
* ``points.csv``: every point with its prediction and whether it was held out;
* ``summary.md``: held-out error per device, precision and phase.

``ship=true`` also replaces the table shipped inside hetopt. ``measurements=my.csv`` fits a
user's own measurements instead of the database (no extra needed beyond SciPy).
``published=<csv>`` (default: the published throughput shipped in
``hetopt/costs/data/published_llm_throughput.csv``; ``published=none`` skips it) calibrates
accelerators that only have vendor-published static-batch throughput (MI300X, Gaudi 3).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from rich.console import Console

from hetopt.errors import InputError

KEYS = ("out", "measurements", "published", "ship", "devices", "holdout_models",
        "holdout_seq_tokens")


def _parse(args: list[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or key not in KEYS:
            raise InputError(f"hetopt calibrate: unknown argument {arg!r}. It takes "
                             f"key=value pairs with keys {list(KEYS)}, e.g. `hetopt calibrate "
                             f"out=outputs/cal devices=H100,B200`.")
        parsed[key] = value
    return parsed


def cmd_calibrate(args: list[str], console: Console) -> int:
    """Run ``hetopt calibrate [out=DIR] [measurements=CSV] [devices=A,B] [ship=true]``."""
    from hetopt.costs import aic
    from hetopt.costs.calibrate import HoldOut, calibrate, fidelity_summary, load_published
    from hetopt.costs.calibration import CALIBRATION_PATH, PUBLISHED_PATH
    from hetopt.costs.fit import load_measurements, validate_measurements
    from hetopt.hardware import load_catalog
    from hetopt.report.tables import md_table

    opts = _parse(args)
    ship = opts.get("ship", "false").lower()
    if ship not in ("true", "false"):
        raise InputError(f"hetopt calibrate: ship must be true or false, got {ship!r}.")
    if ship == "true" and ("devices" in opts or "measurements" in opts):
        raise InputError("hetopt calibrate: ship=true replaces the whole shipped table, so it "
                         "refits every device from aiconfigurator's database; drop devices= and "
                         "measurements=, or plan with your table through "
                         "costs.calibration=<out>/calibration.csv instead.")
    holdout = HoldOut()
    if "holdout_models" in opts:
        holdout = HoldOut(tuple(m for m in opts["holdout_models"].split(",") if m),
                          holdout.seq_tokens)
    if "holdout_seq_tokens" in opts:
        try:
            seqs = tuple(int(s) for s in opts["holdout_seq_tokens"].split(",") if s)
        except ValueError:
            raise InputError("hetopt calibrate: holdout_seq_tokens must be a comma list of "
                             "integers, e.g. holdout_seq_tokens=2048.") from None
        holdout = HoldOut(holdout.models, seqs)
    out = Path(opts.get("out") or Path("outputs") / "calibrate"
               / dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S"))
    if out.exists() and not out.is_dir():
        raise InputError(f"hetopt calibrate: out={out} is a file; pass a directory.")
    catalog = load_catalog()
    published_path = opts.get("published", str(PUBLISHED_PATH))
    published = None if published_path.lower() == "none" else load_published(published_path)
    reserve: dict[str, float] = {}
    if "measurements" in opts:
        measurements = load_measurements(opts["measurements"])
        if aic.available():  # the engine reserve of GPUs aiconfigurator describes
            reserve = {d: aic.runtime_reserve_bytes(d)
                       for d in set(measurements["device"]) & set(aic.SYSTEMS)}
    else:
        grid = aic.Grid()
        if "devices" in opts:
            wanted = tuple(d for d in opts["devices"].split(",") if d)
            if not wanted:
                raise InputError(f"hetopt calibrate: devices= names no device; give a comma "
                                 f"list of {list(aic.SYSTEMS)}.")
            bad = [d for d in wanted if d not in aic.SYSTEMS]
            if bad:
                raise InputError(f"hetopt calibrate: devices {bad} have no aiconfigurator "
                                 f"silicon database; choose from {list(aic.SYSTEMS)}.")
            grid = aic.Grid(devices=wanted)
        with console.status("measuring in aiconfigurator's database...") as status:
            raw = aic.measure(grid, progress=lambda m: status.update(f"measuring {m}"))
        measurements = validate_measurements(raw, "aiconfigurator")
        reserve = {d: aic.runtime_reserve_bytes(d) for d in grid.devices}
    with console.status("fitting...") as status:
        result = calibrate(measurements, catalog, holdout, reserve_bytes=reserve,
                           progress=status.update, published=published)
    out.mkdir(parents=True, exist_ok=True)
    measurements.to_csv(out / "measurements.csv", index=False)
    result.points.to_csv(out / "points.csv", index=False)
    result.table.save(out / "calibration.csv")
    summary = fidelity_summary(result.points)
    derived = result.table.frame[result.table.frame["source"].str.contains("median of")]
    if len(derived):
        bands = derived.drop_duplicates(["device", "precision"])[
            ["device", "precision", "n_points", "heldout_geomean_error", "heldout_min_ratio",
             "heldout_max_ratio"]]
        console.print("published throughput (leave-one-out):")
        console.print(bands.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    (out / "summary.md").write_text(
        "# hetopt calibrate\n\n"
        f"Held out of the fit: models {list(holdout.models)}, input lengths "
        f"{list(holdout.seq_tokens)}. Error = exp(mean |log(predicted / measured)|); worst = "
        f"the ratio farthest from 1.\n\n" + md_table(summary) + "\n")
    console.print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    console.print(f"wrote {out}/calibration.csv, measurements.csv, points.csv, summary.md")
    if ship == "true":
        result.table.save(CALIBRATION_PATH)
        console.print(f"shipped: {CALIBRATION_PATH}")
    return 0
