"""Roofline execution-time model of one operator on one device (paper §3.1.1).

``t_ij = max_r(theta_ij^r / perf_j^r) + l_i + d_ij + delta_ij``: the time is set by the binding
resource r (compute, memory bandwidth, network) plus the operator's static latency ``l_i``, the
communication cost ``d_ij`` and the synchronisation overhead ``delta_ij`` (e.g. all-reduce).
``perf_j^r`` is the device's *effective* rate: the datasheet peak times a per-device efficiency
factor from the hardware catalog.
"""

from __future__ import annotations

from dataclasses import dataclass

from hetopt.hardware import Device

RESOURCES = ("compute", "memory", "network")


@dataclass(frozen=True)
class RooflineTime:
    """Itemised execution time of one operator on one device, in seconds.

    Attributes
    ----------
    compute_s, memory_s, network_s
        ``theta^r / perf^r`` for each resource r.
    static_s
        ``l_i``: latency that occupies no device resource (an external API call, say).
    comm_s
        ``d_ij``: pipeline or inter-device communication.
    sync_s
        ``delta_ij``: synchronisation, e.g. tensor-parallel all-reduce.
    """

    compute_s: float
    memory_s: float
    network_s: float
    static_s: float = 0.0
    comm_s: float = 0.0
    sync_s: float = 0.0

    @property
    def bound_s(self) -> float:
        """The roofline term ``max_r theta^r / perf^r``."""
        return max(self.compute_s, self.memory_s, self.network_s)

    @property
    def busy_s(self) -> float:
        """Time the device is occupied: everything except the static latency."""
        return self.bound_s + self.comm_s + self.sync_s

    @property
    def total_s(self) -> float:
        """``t_ij``: the roofline term plus all overheads."""
        return self.bound_s + self.static_s + self.comm_s + self.sync_s

    @property
    def binding(self) -> str:
        """Name of the resource whose term is largest (``compute``, ``memory`` or ``network``)."""
        terms = (self.compute_s, self.memory_s, self.network_s)
        return RESOURCES[terms.index(max(terms))]


def roofline_time(
    device: Device,
    *,
    flops: float,
    mem_bytes: float,
    precision: str,
    net_bytes: float = 0.0,
    static_s: float = 0.0,
    comm_s: float = 0.0,
    sync_s: float = 0.0,
) -> RooflineTime:
    """Time one execution of an operator with the given resource vector on ``device``.

    Parameters
    ----------
    device
        Catalog row; its effective (efficiency-scaled) peaks are used.
    flops, mem_bytes, net_bytes
        Work per execution: floating-point operations, DRAM/HBM traffic, scale-out traffic.
    precision
        Arithmetic precision of the FLOPs (``fp16``, ``bf16``, ``fp8``, ``fp32``).
    static_s, comm_s, sync_s
        Overheads added on top of the roofline term (see :class:`RooflineTime`).

    Returns
    -------
    RooflineTime

    Examples
    --------
    >>> from hetopt.hardware import load_catalog
    >>> h100 = load_catalog().get("H100")
    >>> t = roofline_time(h100, flops=1e12, mem_bytes=1e6, precision="fp16")
    >>> t.binding
    'compute'
    """
    compute_s = flops / device.effective_flops_per_s(precision) if flops > 0 else 0.0
    memory_s = mem_bytes / device.effective_mem_bw_bytes_per_s if mem_bytes > 0 else 0.0
    network_s = net_bytes / device.scale_out_bw_bytes_per_s if net_bytes > 0 else 0.0
    return RooflineTime(compute_s, memory_s, network_s, static_s, comm_s, sync_s)


def ring_allreduce_s(
    message_bytes: float, ranks: int, link_bw_bytes_per_s: float, hop_latency_s: float
) -> float:
    """Time of one ring all-reduce of ``message_bytes`` across ``ranks`` devices.

    The ring sends ``2 (p-1)/p`` of the message over each link in ``2 (p-1)`` steps, each paying
    the hop latency (the classic alpha-beta model).
    """
    if ranks <= 1:
        return 0.0
    steps = 2 * (ranks - 1)
    return steps * hop_latency_s + (steps / ranks) * message_bytes / link_bw_bytes_per_s
