"""Mélange's problem as an input: plan one LLM across GPU types from Mélange's JSON file.

Mélange (Griggs et al. 2024, ``github:tyler-griggs/melange-release``) sizes a heterogeneous
GPU fleet for one LLM. Its input (``melange/config/example.json``) holds a
``workload_distribution`` (rows: input-size bins, columns: output-size bins, cells: shares of
the requests, summing to 1), ``gpu_info`` (``{name: {"cost": $/h, "tputs": [[req/s]]}}``, the
most requests per second ONE GPU of that type sustains for each bucket under the SLO),
``total_request_rate`` (req/s) and ``slice_factor`` (each bucket is cut into that many equal
slices). Its ILP (``melange/solver.py``) gives each slice to one GPU type (C1) and buys
``y_g >= sum of the slices' rate / throughput`` GPUs of each type (C2), at least cost.

That ILP is hetopt's placement problem with shared LLM replica pools
(``docs/design/shared-replicas.md`` section 3.5, ``docs/melange.md``):

* every (bucket, slice) with a positive share is an operator ``b<i>x<j>/s<s>`` visited
  ``share / S`` times per request at the request rate ``R``;
* every GPU type that serves the bucket (throughput > 0) is an option of it, whose load is
  ``r_b / (S T[b, g])`` replicas (no utilisation cap: ``max_util = 1``);
* every GPU type that serves some bucket is a shared pool key of one GPU per replica (even
  when only one slice can use it), so its pool holds
  ``ceil(summed load)`` GPUs: Mélange's ``y_g``;
* there are no edges, no latency and no SLA (the SLO is inside the profiled throughputs).

:func:`load_melange` reads the file (every mistake an :class:`~hetopt.errors.InputError`
naming the file, the key and the fix), :func:`melange_problem` builds the keyed problem with
its raw inputs (so the brute-force backend and the oracle work), and :func:`plan_melange`
solves it with any backend, reads the GPU counts and each bucket's split, and verifies the
plan twice: with the independent oracle (:mod:`hetopt.oracle`) and with Mélange's own C1/C2
recomputed from the instance. Reading and checking the file is :mod:`hetopt.melange.instance`;
the problem, the solve and the checks are :mod:`hetopt.melange.plan`.

Examples
--------
>>> inst = melange_instance(MELANGE_EXAMPLE, "example")
>>> res = plan_melange(inst)
>>> res.as_melange()
{'A10G': 3, 'A100-80GB': 1, 'cost': 6.7}
>>> res.verified, res.verdict
(True, 'proven optimal')
>>> round(plan_melange(inst, slice_factor=4).cost_usd_per_h, 2)
5.69
"""

from hetopt.melange.instance import (
    MELANGE_EXAMPLE,
    SHARE_TOL,
    GpuType,
    MelangeInstance,
    bucket_name,
    load_melange,
    melange_instance,
)
from hetopt.melange.plan import MelangeResult, melange_problem, plan_melange

__all__ = [
    "MELANGE_EXAMPLE",
    "SHARE_TOL",
    "GpuType",
    "MelangeInstance",
    "MelangeResult",
    "bucket_name",
    "load_melange",
    "melange_instance",
    "melange_problem",
    "plan_melange",
]
