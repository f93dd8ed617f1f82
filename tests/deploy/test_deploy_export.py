"""`hetopt export`: manifests of the default plan and the enterprise fleet validate, and their
replicas and device resources equal the counts in the plan's own files.

Expected numbers are read here from plan.json and the fleet's CSV tables with json and csv,
never through hetopt.deploy; manifests are validated with kubernetes_validate.validate itself.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate")

from hetopt.cli.main import main  # noqa: E402
from hetopt.hardware import load_catalog  # noqa: E402

PLUGIN = {"NVIDIA": "nvidia.com/gpu", "AMD": "amd.com/gpu", "Intel": "habana.ai/gaudi"}


@pytest.fixture(scope="module")
def plan_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("deploy") / "plan"
    assert main(["plan", f"hydra.run.dir={run}"]) == 0
    assert main(["export", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def fleet_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("deploy") / "fleet"
    assert main(["fleet", f"hydra.run.dir={run}"]) == 0
    assert main(["export", str(run)]) == 0
    return run


def _manifests(run: Path) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((run / "deploy" / "deployments.yaml").read_text()))


def _devices_by_type(manifests: list[dict[str, Any]]) -> Counter[str]:
    """Devices per device type: replicas x the per-pod device resource (or 1 CPU socket)."""
    vendors = {d.name: (d.vendor, d.kind) for d in load_catalog().devices}
    held: Counter[str] = Counter()
    for m in manifests:
        pod = m["spec"]["template"]["spec"]
        device = pod["nodeSelector"]["hetopt.io/device-type"]
        vendor, kind = vendors[device]
        limits = pod["containers"][0]["resources"]["limits"]
        per = 1 if kind == "cpu" else limits[PLUGIN[vendor]]
        held[device] += m["spec"]["replicas"] * per
    return held


def _by_pool_key(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        m["metadata"]["annotations"]["hetopt.io/pool-key"]: m
        for m in manifests
        if "hetopt.io/pool-key" in m["metadata"]["annotations"]
    }


def _limit(m: dict[str, Any]) -> int:
    (value,) = m["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"].values()
    return int(value)


@pytest.mark.parametrize("which", ["plan_run", "fleet_run"])
def test_every_manifest_passes_kubernetes_schema_validation(
    which: str, request: pytest.FixtureRequest
) -> None:
    manifests = _manifests(request.getfixturevalue(which))
    assert manifests
    for m in manifests:
        kubernetes_validate.validate(m, "1.37.0", strict=True)  # raises on any violation
    names = [m["metadata"]["name"] for m in manifests]
    assert len(set(names)) == len(names)
    assert all(len(n) <= 63 for n in names)


def test_default_plan_replicas_and_devices_equal_plan_json(plan_run: Path) -> None:
    saved = json.loads((plan_run / "plan.json").read_text())
    manifests = _manifests(plan_run)
    totals = {r["device"]: r["total"] for r in saved["devices"] if r["total"]}
    assert dict(_devices_by_type(manifests)) == totals
    pools = _by_pool_key(manifests)
    assert set(pools) == {r["pool"] for r in saved["llm_pools"]}
    for r in saved["llm_pools"]:
        assert pools[r["pool"]]["spec"]["replicas"] == r["replicas"]
        assert _limit(pools[r["pool"]]) == r["devices_per_replica"]


def test_fleet_replicas_and_devices_equal_fleet_tables(fleet_run: Path) -> None:
    with open(fleet_run / "devices.csv") as fh:
        totals = {r["device"]: int(r["total"]) for r in csv.DictReader(fh) if int(r["total"])}
    with open(fleet_run / "llm_pools.csv") as fh:
        pool_rows = list(csv.DictReader(fh))
    manifests = _manifests(fleet_run)
    assert dict(_devices_by_type(manifests)) == totals
    pools = _by_pool_key(manifests)
    assert set(pools) == {r["llm_pool"] for r in pool_rows}
    for r in pool_rows:
        assert pools[r["llm_pool"]]["spec"]["replicas"] == int(r["replicas"])
        assert _limit(pools[r["llm_pool"]]) == int(r["devices_per_replica"])
    with open(fleet_run / "placement.csv") as fh:
        dedicated = [r for r in csv.DictReader(fh) if r["config"].startswith("tp")]
    for r in dedicated:
        if r["llm_pool"]:
            continue
        label = f"{r['tenant']}/{r['op']}"
        (m,) = [x for x in manifests if x["metadata"]["annotations"]["hetopt.io/group"] == label]
        assert m["spec"]["replicas"] * _limit(m) == int(r["dedicated_devices"])


def test_vllm_args_follow_each_configuration(plan_run: Path) -> None:
    saved = json.loads((plan_run / "plan.json").read_text())
    args = json.loads((plan_run / "deploy" / "vllm_args.json").read_text())
    pools = _by_pool_key(_manifests(plan_run))
    for r in saved["llm_pools"]:
        line = args[pools[r["pool"]]["metadata"]["name"]]
        config = {p.rstrip("0123456789"): p.lstrip("tpb") for p in r["config"].split("/")}
        assert line[:2] == ["vllm", "serve"]
        assert line[line.index("--served-model-name") + 1] == r["pool"].split("/")[0]
        assert line[line.index("--tensor-parallel-size") + 1] == config["tp"]
        assert line[line.index("--pipeline-parallel-size") + 1] == config.get("pp", "1")
        assert line[line.index("--max-num-seqs") + 1] == config["b"]


def test_disaggregated_plan_has_separate_prefill_and_decode_workers(plan_run: Path) -> None:
    saved = json.loads((plan_run / "plan.json").read_text())
    phases = {r["pool"].split("/")[2] for r in saved["llm_pools"]}
    assert phases == {"prefill", "decode"}  # the default plan disaggregates
    llm = [
        m
        for m in _manifests(plan_run)
        if "llm-d.ai/role" in m["spec"]["template"]["metadata"]["labels"]
    ]
    roles = sorted(m["spec"]["template"]["metadata"]["labels"]["llm-d.ai/role"] for m in llm)
    assert roles == ["decode", "prefill"]
    for m in llm:
        assert "--kv-transfer-config" in m["spec"]["template"]["spec"]["containers"][0]["args"]
    topo = yaml.safe_load((plan_run / "deploy" / "topology.yaml").read_text())
    (service,) = topo["services"]
    assert service["mode"] == "disaggregated"
    assert len(service["prefill_workers"]) == 1 and len(service["decode_workers"]) == 1
    assert service["kv_transfer"]["vllm_kv_transfer_config"]["kv_connector"] == "NixlConnector"


def test_a_second_export_refuses_to_overwrite(
    plan_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (plan_run / "deploy" / "deployments.yaml").read_text()
    assert main(["export", str(plan_run)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (plan_run / "deploy" / "deployments.yaml").read_text() == before


def test_a_device_without_a_device_plugin_exits_2_naming_it(
    plan_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(plan_run, run, ignore=shutil.ignore_patterns("deploy"))
    b200 = next(d for d in load_catalog().devices if d.name == "B200")
    row = {k: v for k, v in b200.model_dump().items() if v is not None}
    row |= {"name": "NPU-X1", "vendor": "Intel", "kind": "accelerator"}
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["hardware"]["extra_rows"] = [row]
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "plan.json").write_text((run / "plan.json").read_text().replace("B200", "NPU-X1"))
    assert main(["export", str(run)]) == 2
    err = capsys.readouterr().err
    assert "NPU-X1" in err and "device plugin" in err and "Traceback" not in err
    assert not (run / "deploy").exists()


def test_cpu_pool_requests_the_sockets_cores_and_memory(tmp_path: Path) -> None:
    run = tmp_path / "cpu"
    assert main(["plan", "hardware.devices=[Xeon-SPR,H100]", f"hydra.run.dir={run}"]) == 0
    assert main(["export", str(run)]) == 0
    saved = json.loads((run / "plan.json").read_text())
    xeon = next(d for d in load_catalog().devices if d.name == "Xeon-SPR")
    manifests = _manifests(run)
    for m in manifests:
        kubernetes_validate.validate(m, "1.37.0", strict=True)
    totals = {r["device"]: r["total"] for r in saved["devices"] if r["total"]}
    assert "Xeon-SPR" in totals  # the plan pools its small operators on a CPU
    assert dict(_devices_by_type(manifests)) == totals
    (cpu,) = [
        m
        for m in manifests
        if m["spec"]["template"]["spec"]["nodeSelector"]["hetopt.io/device-type"] == "Xeon-SPR"
    ]
    requests = cpu["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert requests == {"cpu": str(xeon.cores), "memory": f"{int(xeon.mem_gb)}Gi"}


def test_aggregated_plan_gives_one_worker_serving_both_phases(tmp_path: Path) -> None:
    run = tmp_path / "agg"
    overrides = ["workload=rag_agent", "costs.aggregated=true", f"hydra.run.dir={run}"]
    assert main(["plan", *overrides]) == 0
    assert main(["export", str(run)]) == 0
    saved = json.loads((run / "plan.json").read_text())
    (pool,) = saved["llm_pools"]
    assert pool["config"].startswith("agg/")  # this plan serves the call aggregated
    (m,) = _by_pool_key(_manifests(run)).values()
    assert m["spec"]["template"]["metadata"]["labels"]["llm-d.ai/role"] == "both"
    assert m["spec"]["replicas"] == pool["replicas"]
    args = m["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--enable-chunked-prefill" in args and "--kv-transfer-config" not in args
    topo = yaml.safe_load((run / "deploy" / "topology.yaml").read_text())
    assert [s["mode"] for s in topo["services"]] == ["aggregated"]


def test_dedicated_llm_replicas_take_their_model_from_the_saved_workload(tmp_path: Path) -> None:
    run = tmp_path / "off"
    assert main(["plan", "costs.llm_pools=off", f"hydra.run.dir={run}"]) == 0
    assert main(["export", str(run)]) == 0
    saved = json.loads((run / "plan.json").read_text())
    assert not saved["llm_pools"]  # every LLM operator has its own replicas
    manifests = _manifests(run)
    totals = {r["device"]: r["total"] for r in saved["devices"] if r["total"]}
    assert dict(_devices_by_type(manifests)) == totals
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    model = cfg["workload"]["nodes"]["llm"]["model"]
    llm = [m for m in manifests if m["spec"]["template"]["spec"]["containers"][0]["name"] == "vllm"]
    assert len(llm) == 2
    for m in llm:
        args = m["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[args.index("--served-model-name") + 1] == model
