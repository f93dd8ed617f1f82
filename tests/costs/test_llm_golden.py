"""LLM configurations against numbers stored from hetopt at commit 7d5311a, bit for bit.

``data/llm_configs_7d5311a.json`` holds, as ``float.hex``, every number of the
:class:`~hetopt.costs.llm.LlmConfig` of a grid of devices (a calibrated GPU, a small one, one
on the borrowed prior), models (dense and MoE), precisions, both phases and pipelined and odd
configurations, calibrated and roofline. It was written by this module's :func:`configs` run
against commit 7d5311a, the last tree that timed the step model one configuration at a time
(``python -m tests.costs.test_llm_golden > tests/costs/data/llm_configs_7d5311a.json`` there).
A change that claims to keep the cost model's numbers must pass it unchanged; a change that
means to move them regenerates the file and says why in its commit.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from hetopt.costs.calibration import load_calibration
from hetopt.costs.llm import decode_config, prefill_config
from hetopt.graph.architectures import get_architecture
from hetopt.graph.decompose import LlmWork
from hetopt.hardware import load_catalog

GOLDEN = Path(__file__).parent / "data" / "llm_configs_7d5311a.json"
POINTS = ((1, 1, 1), (2, 1, 8), (4, 2, 32), (8, 1, 256), (1, 4, 7))


def _numbers(obj: Any) -> list[Any]:
    out: list[Any] = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out += _numbers(value)
        else:
            out.append(float(value).hex() if isinstance(value, float) else value)
    return out


def configs() -> dict[str, list[Any]]:
    """Every configuration of the grid, keyed ``device/model/precision/model/phase/tp/pp/b``."""
    catalog, table = load_catalog(), load_calibration()
    out: dict[str, list[Any]] = {}
    for device in ("H100", "L4", "MI300X"):
        dev = catalog.get(device)
        for model, n_in in (("llama-3-8b", 512), ("llama-3-70b", 2048), ("mixtral-8x7b", 2048)):
            for precision in ("fp16", "fp8"):
                if not dev.supports(precision):
                    continue
                calib = table.lookup(device, precision) or table.prior(precision)
                for kind, entry in (("calibrated", calib), ("roofline", None)):
                    work = LlmWork(get_architecture(model), precision, n_in, 128)
                    for phase, make in (("prefill", prefill_config), ("decode", decode_config)):
                        for tp, pp, batch in POINTS:
                            cfg = make(dev, work, tp, batch, 2e-6, pp=pp, calib=entry)
                            key = f"{device}/{model}/{precision}/{kind}/{phase}/{tp}/{pp}/{batch}"
                            out[key] = _numbers(cfg)
    return out


def test_llm_configurations_equal_the_stored_numbers() -> None:
    stored = json.loads(GOLDEN.read_text())
    now = configs()
    assert sorted(now) == sorted(stored)
    changed = [key for key in stored if now[key] != stored[key]]
    assert not changed, f"{len(changed)} configurations moved, e.g. {changed[:3]}"


if __name__ == "__main__":
    json.dump(configs(), sys.stdout, separators=(",", ":"), sort_keys=True)
