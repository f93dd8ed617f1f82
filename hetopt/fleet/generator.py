"""Seeded synthetic fleets: tenants drawn from the shipped agent templates, catalogs widened with
device variants, and inventories that bind.

* :func:`synthetic_fleet` draws tenants (template, request rate, SLA tier) until the fleet has
  the requested number of placeable operators. Rates and tiers come from small discrete sets,
  so large fleets contain identical tenants, as real ones do (one application per customer).
* :func:`synthetic_devices` widens the packaged catalog to ``n`` device types with variants of
  its entries: an older **generation** (0.6x compute, 0.7x bandwidth, half the price), a
  **refresh** (1.3x compute, 1.25x bandwidth, 1.5x memory, 1.4x price), a **price** variant
  (a 20 % reseller discount) and a **precision** variant without FP8 (a software stack that
  runs FP8 models in FP16). Each variant is jittered by up to 10 %, seeded.
* :func:`binding_inventory` caps the device types a plan uses most at a fraction of that use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hetopt.errors import InputError
from hetopt.fleet.spec import FleetSpec, TenantSpec, tenant_sla
from hetopt.graph.ir import AgentGraph
from hetopt.hardware import load_catalog
from hetopt.sla import Sla
from hetopt.workloads import load_workload

TEMPLATES = (
    "voice_agent",
    "rag_agent",
    "coding_agent",
    "supervisor_agent",
    "mixed_sizes",
    "chat_agent",
)
RATE_FACTORS = (0.5, 1.0, 2.0, 4.0)
# SLA tiers: per-phase limits and the end-to-end bound as a multiple of the template's own
# (``None`` drops the end-to-end bound; templates without one get ``E2E_S`` x multiple).
TIERS: Mapping[str, tuple[float, float, float | None]] = {
    "interactive": (0.25, 0.02, 1.0),
    "standard": (0.5, 0.04, 1.5),
    "batch": (2.0, 0.1, None),
}
E2E_S = {
    "voice_agent": 15.0,
    "rag_agent": 12.0,
    "coding_agent": 90.0,
    "supervisor_agent": 120.0,
    "mixed_sizes": 20.0,
    "chat_agent": 10.0,
}
VARIANTS = ("prev", "next", "lease", "nofp8")


def synthetic_fleet(n_ops: int, seed: int = 0, templates: Sequence[str] = TEMPLATES) -> FleetSpec:
    """A fleet of about ``n_ops`` placeable operators (at least ``n_ops``, at most one tenant
    more), drawn reproducibly from ``templates``.

    Parameters
    ----------
    n_ops
        Target number of placeable operators over all tenants.
    seed
        Random seed: the same seed gives the same fleet.
    templates
        Shipped workload names to draw tenants from.
    """
    if n_ops < 1:
        raise InputError(f"synthetic fleet: n_ops must be >= 1, got {n_ops}.")
    rng = np.random.default_rng(seed)
    workloads = {name: load_workload(name) for name in templates}
    sizes = {name: _n_placeable(w.graph) for name, w in workloads.items()}
    tenants: list[TenantSpec] = []
    total = 0
    while total < n_ops:
        fits = [n for n in templates if sizes[n] <= max(n_ops - total, min(sizes.values()))]
        name = str(rng.choice(fits))
        wl = workloads[name]
        rate = wl.request_rate_per_s * float(rng.choice(RATE_FACTORS))
        tier = str(rng.choice(list(TIERS)))
        ttft, tbt, e2e_mult = TIERS[tier]
        e2e = None if e2e_mult is None else E2E_S.get(name, 30.0) * e2e_mult
        # The tier is the whole SLA: the template's own sla defaults are not applied.
        sla = tenant_sla(Sla(ttft_s=ttft, tbt_s=tbt), None, {"e2e_s": e2e}, name)
        tenants.append(TenantSpec(f"{name}-{len(tenants):04d}-{tier}", wl, rate, sla))
        total += sizes[name]
    return FleetSpec(f"synthetic-{n_ops}ops-seed{seed}", tuple(tenants))


def _n_placeable(graph: AgentGraph) -> int:
    from hetopt.graph.decompose import decompose

    return sum(op.placeable for op in decompose(graph).ops)


def synthetic_devices(
    n_types: int, seed: int = 0
) -> tuple[tuple[str, ...], tuple[dict[str, Any], ...]]:
    """``n_types`` device types: packaged entries first, then seeded variants of them.

    Returns
    -------
    tuple
        ``(names, extra_rows)`` for :class:`~hetopt.hardware.spec.HardwareSpec` (``devices`` and
        ``extra_rows``).
    """
    catalog = load_catalog()
    base = list(catalog.names)
    if n_types < 2:
        raise InputError(f"synthetic devices: need at least 2 device types, got {n_types}.")
    rng = np.random.default_rng(seed + 7919)
    if n_types == len(base):
        return tuple(base), ()
    if n_types < len(base):
        # Keep one CPU and the cheapest-to-richest spread of accelerators.
        cpus = [d.name for d in catalog.devices if d.kind == "cpu"][:1]
        gpus = [
            d.name for d in sorted(catalog.devices, key=lambda d: d.price_usd) if d.kind != "cpu"
        ]
        picks = np.linspace(0, len(gpus) - 1, n_types - len(cpus)).round().astype(int)
        return tuple(cpus + [gpus[k] for k in sorted(set(picks.tolist()))][:n_types]), ()
    accelerators = [d for d in catalog.devices if d.kind != "cpu"]
    pairs = [
        (d, v) for v in VARIANTS for d in accelerators if not (v == "nofp8" and not d.fp8_tflops)
    ]
    order = rng.permutation(len(pairs))
    rows = []
    for k in order[: n_types - len(base)]:
        device, variant = pairs[int(k)]
        rows.append(_variant(device.model_dump(), variant, rng))
    if len(rows) < n_types - len(base):
        raise InputError(
            f"synthetic devices: at most {len(base) + len(pairs)} types can be "
            f"generated, asked for {n_types}."
        )
    return tuple(base + [r["name"] for r in rows]), tuple(rows)


def _variant(row: dict[str, Any], variant: str, rng: np.random.Generator) -> dict[str, Any]:
    jitter = float(rng.uniform(0.9, 1.1))
    out = dict(row)
    out["name"] = f"{row['name']}-{variant}"
    compute = {"prev": 0.6, "next": 1.3}.get(variant, 1.0) * (
        jitter if variant in ("prev", "next") else 1.0
    )
    for key in ("fp16_tflops", "fp8_tflops", "fp32_tflops"):
        if out[key]:
            out[key] = round(out[key] * compute, 1)
    if variant in ("prev", "next"):
        out["mem_bw_gb_per_s"] = round(
            row["mem_bw_gb_per_s"] * (0.7 if variant == "prev" else 1.25), 1
        )
    if variant == "next":
        out["mem_gb"] = round(row["mem_gb"] * 1.5)
    price = {"prev": 0.5, "next": 1.4, "lease": 0.8}.get(variant, 1.0) * jitter
    out["price_usd"] = round(row["price_usd"] * price)
    out["operating_cost_usd_per_h"] = round(
        row["operating_cost_usd_per_h"] * (price if variant != "lease" else 1.0), 3
    )
    if out.get("cloud_usd_per_h"):
        out["cloud_usd_per_h"] = round(out["cloud_usd_per_h"] * price, 3)
    if variant == "prev":
        out["age_years"] = 0.0
        out["tdp_w"] = round(row["tdp_w"] * 0.8)
    if variant == "nofp8":
        out["fp8_tflops"] = None
    out["source"] = f"synthetic {variant} variant of {row['name']} (hetopt.fleet.generator)"
    out["notes"] = f"Generated: {variant} variant, jitter {jitter:.3f}."
    return out


def binding_inventory(
    devices: Sequence[str],
    usage: Sequence[float] | np.ndarray,
    fraction: float = 0.7,
    n_limited: int = 3,
) -> dict[str, int]:
    """Cap the ``n_limited`` most-used device types at ``fraction`` of their use (rounded down).

    Parameters
    ----------
    devices
        Device-type names.
    usage
        Devices of each type in a reference (e.g. unconstrained) plan.
    fraction
        Share of the reference use that stays available.
    n_limited
        How many types get a limit.
    """
    if not 0 <= fraction <= 1:
        raise InputError(f"binding_inventory: fraction must be in [0, 1], got {fraction}.")
    ranked = sorted(range(len(devices)), key=lambda j: -usage[j])[:n_limited]
    return {devices[j]: int(math.floor(fraction * usage[j])) for j in ranked if usage[j] > 0}
