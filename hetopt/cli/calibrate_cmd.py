"""``hetopt calibrate``: refresh the cost model's fitted coefficients.

``hetopt calibrate`` measures a grid of prefill and decode steps in aiconfigurator's silicon
database (the ``calibration`` extra), fits the step model per device and precision, and writes
into its run directory, ``hydra.run.dir`` (default ``outputs/calibrate/<timestamp>/``;
``out=DIR`` is an alias):

* ``calibration.csv``: the table, in the format hetopt ships and reads
  (``costs.calibration=<this file>`` plans with it);
* ``measurements.csv``: the measured points, with their source;
* ``points.csv``: every point with its prediction and whether it was held out;
* ``summary.md``: held-out error per device, precision and phase.

Its settings are the ``calibrate`` block of the config (``calibrate.devices=[H100,B200]``);
the bare keys ``devices=H100,B200``, ``ship=true``, ... are accepted too.
``ship=true`` also replaces the table shipped inside hetopt. ``measurements=my.csv`` fits a
user's own measurements instead of the database (no extra needed beyond SciPy).
``published=<csv>`` (default: the published throughput shipped in
``hetopt/costs/data/published_llm_throughput.csv``; ``published=none`` skips it) calibrates
accelerators that only have vendor-published static-batch throughput (MI300X, Gaudi 3).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

from hetopt.atomic import atomic_path, write_csv_atomic, write_text_atomic
from hetopt.cli.outputs import RunDir
from hetopt.errors import InputError

# The keys of the ``calibrate`` block, which may also be given bare (``devices=H100,B200``);
# ``out=DIR`` is an alias of ``hydra.run.dir=DIR``.
KEYS = ("measurements", "published", "ship", "devices", "holdout_models", "holdout_seq_tokens")
_LISTS = ("devices", "holdout_models", "holdout_seq_tokens")


def legacy_overrides(args: list[str]) -> list[str]:
    """Turn the bare keys of ``hetopt calibrate`` into overrides of the ``calibrate`` block.

    Examples
    --------
    >>> legacy_overrides(["devices=H100,B200", "out=o", "ship=true", "sla.e2e_s=3"])
    ['calibrate.devices=[H100,B200]', 'hydra.run.dir=o', 'calibrate.ship=true', 'sla.e2e_s=3']
    """
    out = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key == "out":
            out.append(f"hydra.run.dir={value}")
        elif sep and key in KEYS:
            if key in _LISTS and not value.startswith("["):
                value = f"[{value}]"
            out.append(f"calibrate.{key}={value}")
        else:
            out.append(arg)
    return out


def cmd_calibrate(cfg: dict[str, Any], run: RunDir, console: Console) -> int:
    """Run ``hetopt calibrate [calibrate.measurements=CSV] [calibrate.devices=[A,B]] ...``."""
    from hetopt.costs import aic
    from hetopt.costs.calibrate import HoldOut, calibrate, fidelity_summary, load_published
    from hetopt.costs.calibration import CALIBRATION_PATH, PUBLISHED_PATH
    from hetopt.costs.fit import load_measurements, validate_measurements
    from hetopt.hardware import load_catalog
    from hetopt.report.tables import md_table

    opts = {k: v for k, v in (cfg.get("calibrate") or {}).items() if v is not None}
    ship = "true" if opts.pop("ship", False) else "false"
    if ship == "true" and ("devices" in opts or "measurements" in opts):
        raise InputError(
            "hetopt calibrate: ship=true replaces the whole shipped table, so it "
            "refits every device from aiconfigurator's database; drop devices= and "
            "measurements=, or plan with your table through "
            "costs.calibration=<out>/calibration.csv instead."
        )
    holdout = HoldOut()
    if "holdout_models" in opts:
        holdout = HoldOut(tuple(str(m) for m in opts["holdout_models"] if m), holdout.seq_tokens)
    if "holdout_seq_tokens" in opts:
        holdout = HoldOut(holdout.models, tuple(int(s) for s in opts["holdout_seq_tokens"]))
    out = run.out
    catalog = load_catalog()
    published_path = opts.get("published", str(PUBLISHED_PATH))
    published = None if published_path.lower() == "none" else load_published(published_path)
    reserve: dict[str, float] = {}
    if "measurements" in opts:
        measurements = load_measurements(opts["measurements"])
        if aic.available():  # the engine reserve of GPUs aiconfigurator describes
            reserve = {
                d: aic.runtime_reserve_bytes(d)
                for d in set(measurements["device"]) & set(aic.SYSTEMS)
            }
    else:
        grid = aic.Grid()
        if "devices" in opts:
            wanted = tuple(str(d) for d in opts["devices"] if d)
            if not wanted:
                raise InputError(
                    f"hetopt calibrate: devices= names no device; give a comma "
                    f"list of {list(aic.SYSTEMS)}."
                )
            bad = [d for d in wanted if d not in aic.SYSTEMS]
            if bad:
                raise InputError(
                    f"hetopt calibrate: devices {bad} have no aiconfigurator "
                    f"silicon database; choose from {list(aic.SYSTEMS)}."
                )
            grid = aic.Grid(devices=wanted)
        with console.status("measuring in aiconfigurator's database...") as status:
            raw = aic.measure(grid, progress=lambda m: status.update(f"measuring {m}"))
        measurements = validate_measurements(raw, "aiconfigurator")
        reserve = {d: aic.runtime_reserve_bytes(d) for d in grid.devices}
    with console.status("fitting...") as status:
        result = calibrate(
            measurements,
            catalog,
            holdout,
            reserve_bytes=reserve,
            progress=status.update,
            published=published,
        )
    write_csv_atomic(out / "measurements.csv", measurements)
    write_csv_atomic(out / "points.csv", result.points)
    with atomic_path(out / "calibration.csv") as tmp:
        result.table.save(tmp)
    summary = fidelity_summary(result.points)
    derived = result.table.frame[result.table.frame["source"].str.contains("median of")]
    if len(derived):
        bands = derived.drop_duplicates(["device", "precision"])[
            [
                "device",
                "precision",
                "n_points",
                "heldout_geomean_error",
                "heldout_min_ratio",
                "heldout_max_ratio",
            ]
        ]
        console.print("published throughput (leave-one-out):")
        console.print(bands.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    write_text_atomic(
        out / "summary.md",
        "# hetopt calibrate\n\n"
        f"Held out of the fit: models {list(holdout.models)}, input lengths "
        f"{list(holdout.seq_tokens)}. Error = exp(mean |log(predicted / measured)|); worst = "
        f"the ratio farthest from 1.\n\n" + md_table(summary) + "\n",
    )
    console.print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    console.print(f"wrote {run.path}/calibration.csv, measurements.csv, points.csv, summary.md")
    if ship == "true":
        with atomic_path(CALIBRATION_PATH) as tmp:
            result.table.save(tmp)
        console.print(f"shipped: {CALIBRATION_PATH}")
    return 0
