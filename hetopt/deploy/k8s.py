"""Serving groups as Kubernetes Deployments, vLLM arguments and an llm-d topology.

**Deployments** (``apps/v1``, one per :class:`~hetopt.deploy.groups.ServingGroup`):

* ``replicas`` is the plan's replica count; each pod asks for the group's devices per
  replica through the vendor's device plugin (:data:`DEVICE_PLUGINS`: NVIDIA's
  ``nvidia.com/gpu``, AMD's ``amd.com/gpu``, Intel Gaudi's ``habana.ai/gaudi``, Intel GPUs'
  ``gpu.intel.com/i915``) as both request and limit, and tolerates the plugin's usual
  ``NoSchedule`` taint of that name;
* a CPU group asks for the socket's cores and memory (catalog ``cores``, ``mem_gb``) per
  replica;
* ``nodeSelector`` ``hetopt.io/device-type: <catalog name>`` pins every pod to its device type:
  label the nodes once (``kubectl label node n1 hetopt.io/device-type=H100``). A device with no
  known plugin (or absent from the catalog) is refused, naming it (:class:`DeployError`).

**vLLM** (conventions of vLLM 0.11): an LLM replica runs ``vllm serve <model>
--tensor-parallel-size TP --pipeline-parallel-size PP --max-num-seqs BATCH`` (aggregated
groups add ``--enable-chunked-prefill --max-num-batched-tokens C+BATCH``, the step's chunk
plus one token per decode sequence, as hetopt's aggregated model times it). Where the plan
disaggregates (separate prefill and decode groups of one model), both add
``--kv-transfer-config '{"kv_connector":"NixlConnector","kv_role":"kv_both"}'`` (vLLM's NIXL
connector, the one llm-d and Dynamo use).

**Topology** (llm-d 0.3+ conventions for prefill/decode disaggregation): pods carry
``llm-d.ai/inferenceServing: "true"``, ``llm-d.ai/model`` and ``llm-d.ai/role`` (``prefill``,
``decode``, or ``both`` for aggregated serving), which llm-d's InferencePool and its P/D
scheduler select on; :func:`topology` lists, per model, the prefill and decode workers and
the KV transfer. Container images are the vendors' public vLLM builds
(:data:`VLLM_IMAGES`) and, for non-LLM operators, a placeholder (``OPERATOR_IMAGE``) to
replace with the agent's own tool and retrieval services.

Examples
--------
>>> from hetopt.deploy.groups import ServingGroup
>>> g = ServingGroup("llm-pool k", "H100", 3, 2, ("llm.decode",), "decode", "llama-3-8b",
...                  "fp16", tp=2, batch=32, pool_key="k")
>>> vllm_args(g, disaggregated=False)[:6]
['vllm', 'serve', 'meta-llama/Meta-Llama-3-8B', '--served-model-name', 'llama-3-8b', '--tensor-parallel-size']
>>> d = deployment(g, Target("NVIDIA", "gpu", "nvidia.com/gpu"), "plan", disaggregated=False)
>>> d["spec"]["replicas"], d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
(3, {'nvidia.com/gpu': 2})
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hetopt.deploy.groups import ServingGroup
from hetopt.errors import InputError

__all__ = [
    "DEVICE_PLUGINS",
    "KV_TRANSFER_CONFIG",
    "DeployError",
    "Target",
    "check_fits_a_node",
    "deployment",
    "deployment_name",
    "is_disaggregated",
    "resolve_targets",
    "topology",
    "validate_manifests",
    "vllm_args",
]

DEVICE_PLUGINS: dict[tuple[str, str], str] = {
    ("NVIDIA", "gpu"): "nvidia.com/gpu",
    ("AMD", "gpu"): "amd.com/gpu",
    ("Intel", "gpu"): "gpu.intel.com/i915",
    ("Intel", "gaudi"): "habana.ai/gaudi",
}
"""(vendor, kind) -> extended resource of the vendor's Kubernetes device plugin. Intel's
accelerators are keyed ``gaudi`` when the device's name starts with ``Gaudi``."""

VLLM_IMAGES = {
    "NVIDIA": "vllm/vllm-openai:v0.11.0",
    "AMD": "rocm/vllm:latest",
    "Intel": "vault.habana.ai/gaudi-docker/1.22.0/ubuntu24.04/habanalabs/vllm-installer:latest",
}
"""The vendor's public vLLM image (pin your own tag before deploying)."""

OPERATOR_IMAGE = "ghcr.io/your-org/agent-operators:latest"
"""Placeholder image of non-LLM operators (tools, retrieval, encoders): replace it."""

HF_MODELS = {
    "llama-3-8b": "meta-llama/Meta-Llama-3-8B",
    "llama-3-70b": "meta-llama/Meta-Llama-3-70B",
    "llama-3.2-1b": "meta-llama/Llama-3.2-1B",
    "llama-3.2-3b": "meta-llama/Llama-3.2-3B",
    "llama-3.1-405b": "meta-llama/Llama-3.1-405B",
}
"""hetopt architecture name -> Hugging Face model id for ``vllm serve``; others serve the name."""

KV_TRANSFER_CONFIG = {"kv_connector": "NixlConnector", "kv_role": "kv_both"}
"""vLLM's ``--kv-transfer-config`` for prefill and decode workers (NIXL, vLLM 0.11)."""

DEVICE_LABEL = "hetopt.io/device-type"
K8S_VERSION = "1.37.0"
"""The Kubernetes schema version manifests are validated against (kubernetes-validate 1.37.0)."""


class DeployError(InputError):
    """A plan that a deployment target cannot express (a device without a device plugin)."""


@dataclass(frozen=True)
class Target:
    """How pods reach one device type.

    Attributes
    ----------
    vendor, kind
        From the catalog.
    resource
        The device plugin's extended resource, or ``""`` for a CPU socket.
    cpu_cores, mem_gib
        A CPU socket's cores and memory (requests of a CPU replica); 0 for accelerators.
    per_node
        Devices one node (the catalog's ``scale_up_domain``) holds: the most one pod can ask for.
    """

    vendor: str
    kind: str
    resource: str
    cpu_cores: int = 0
    mem_gib: int = 0
    per_node: int = 1


def resolve_targets(devices: Sequence[str], catalog: Any) -> dict[str, Target]:
    """The :class:`Target` of every device type, or :class:`DeployError` naming the device.

    Examples
    --------
    >>> from hetopt.hardware import load_catalog
    >>> resolve_targets(["MI300X", "Gaudi3"], load_catalog())["Gaudi3"].resource
    'habana.ai/gaudi'
    >>> resolve_targets(["TPU-v9"], load_catalog())
    Traceback (most recent call last):
    ...
    hetopt.deploy.k8s.DeployError: Device 'TPU-v9' is not in the hardware catalog, so ...
    """
    names = {d.name: d for d in catalog.devices}
    out: dict[str, Target] = {}
    for name in devices:
        d = names.get(name)
        if d is None:
            raise DeployError(
                f"Device '{name}' is not in the hardware catalog, so hetopt export cannot tell "
                f"its vendor or Kubernetes device plugin. Export a plan of catalog devices, or "
                f"add the device with hardware.extra_rows (vendor and kind) and re-plan."
            )
        if d.kind == "cpu":
            out[name] = Target(d.vendor, d.kind, "", int(d.cores or 1), int(d.mem_gb))
            continue
        kind = "gaudi" if d.vendor == "Intel" and name.lower().startswith("gaudi") else d.kind
        resource = DEVICE_PLUGINS.get((d.vendor, kind))
        if resource is None:
            known = ", ".join(f"{v} {k}: {r}" for (v, k), r in DEVICE_PLUGINS.items())
            raise DeployError(
                f"Device '{name}' ({d.vendor} {d.kind}) has no known Kubernetes device plugin, "
                f"so the plan cannot be exported as Deployments (known: {known}). Re-plan "
                f"without it (hardware.devices=[...] excluding {name}), or export another plan."
            )
        out[name] = Target(d.vendor, d.kind, resource, per_node=int(d.scale_up_domain))
    return out


def check_fits_a_node(group: ServingGroup, target: Target) -> None:
    """Refuse a replica that needs more devices than one node holds, naming the device.

    A Deployment's pod runs on one node; a replica spread over nodes (pipeline stages on
    several servers) needs a multi-node workload (LeaderWorkerSet), which is not exported.

    Examples
    --------
    >>> g = ServingGroup("x", "H100", 1, 16, ("llm.decode",), "decode", "m", "fp16", 8, 2)
    >>> check_fits_a_node(g, Target("NVIDIA", "gpu", "nvidia.com/gpu", per_node=8))
    Traceback (most recent call last):
    ...
    hetopt.deploy.k8s.DeployError: 'x' needs 16 H100 per replica (tp8 x pp2), more than ...
    """
    if target.resource and group.devices_per_replica > target.per_node:
        raise DeployError(
            f"'{group.label}' needs {group.devices_per_replica} {group.device} per replica "
            f"(tp{group.tp} x pp{group.pp}), more than the {target.per_node} one node holds "
            f"(catalog scale_up_domain), and a Deployment's pod runs on one node; multi-node "
            f"replicas (LeaderWorkerSet) are not exported. Re-plan with a smaller pipeline "
            f"(costs.pp_degrees) or export another plan."
        )


def _dns(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")


def deployment_name(group: ServingGroup, prefix: str) -> str:
    """A DNS-1123 name (at most 63 characters), readable and unique by a hash of the label.

    Examples
    --------
    >>> deployment_name(ServingGroup("pool L4", "L4", 1, 1, ("stt",)), "voice_agent")
    'voice-agent-pool-l4-...'
    """
    digest = hashlib.sha1(group.label.encode()).hexdigest()[:6]
    if group.is_llm:
        body = f"{group.model}-{group.phase}-{group.device}"
    elif group.label.startswith("pool "):
        body = f"pool-{group.device}"
    else:
        body = f"{group.label}-{group.device}"
    stem = _dns(f"{prefix}-{body}")[: 63 - 7].strip("-")
    return f"{stem}-{digest}"


def _label_value(text: str) -> str:
    """A label value: at most 63 of ``[A-Za-z0-9._-]``, alphanumeric at both ends."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:63].strip("-._")


def vllm_args(group: ServingGroup, disaggregated: bool) -> list[str]:
    """The ``vllm serve`` command line of one LLM replica of ``group`` (vLLM 0.11)."""
    args = [
        "vllm",
        "serve",
        HF_MODELS.get(group.model, group.model),
        "--served-model-name",
        group.model,
        "--tensor-parallel-size",
        str(group.tp),
        "--pipeline-parallel-size",
        str(group.pp),
        "--max-num-seqs",
        str(group.batch),
        "--port",
        "8000",
    ]
    if group.precision == "fp8":
        args += ["--quantization", "fp8"]
    if group.phase == "agg":
        # vLLM's per-step token budget holds the chunk and one token per decode sequence
        budget = group.chunk_tokens + group.batch
        args += ["--enable-chunked-prefill", "--max-num-batched-tokens", str(budget)]
    elif disaggregated:
        args += ["--kv-transfer-config", json.dumps(KV_TRANSFER_CONFIG, separators=(",", ":"))]
    return args


def _resources(group: ServingGroup, target: Target) -> dict[str, dict[str, Any]]:
    if target.resource:
        per = {target.resource: group.devices_per_replica}
        return {"requests": dict(per), "limits": dict(per)}
    cpu = {
        "cpu": str(target.cpu_cores * group.devices_per_replica),
        "memory": f"{target.mem_gib * group.devices_per_replica}Gi",
    }
    return {"requests": cpu, "limits": dict(cpu)}


def deployment(
    group: ServingGroup, target: Target, prefix: str, disaggregated: bool
) -> dict[str, Any]:
    """The ``apps/v1`` Deployment of one serving group."""
    name = deployment_name(group, prefix)
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": _label_value(prefix)}
    pod_labels = dict(labels)
    annotations = {
        "hetopt.io/group": group.label,
        "hetopt.io/members": ",".join(group.members),
        "hetopt.io/devices-per-replica": str(group.devices_per_replica),
    }
    if group.is_llm:
        role = "both" if group.phase == "agg" or not disaggregated else group.phase
        pod_labels |= {
            "llm-d.ai/inferenceServing": "true",
            "llm-d.ai/model": _label_value(group.model),
            "llm-d.ai/role": role,
        }
        container: dict[str, Any] = {
            "name": "vllm",
            "image": VLLM_IMAGES.get(target.vendor, VLLM_IMAGES["NVIDIA"]),
            "command": vllm_args(group, disaggregated)[:2],
            "args": vllm_args(group, disaggregated)[2:],
            "ports": [{"name": "http", "containerPort": 8000}],
        }
        if group.pool_key:
            annotations["hetopt.io/pool-key"] = group.pool_key
    else:
        container = {
            "name": "operators",
            "image": OPERATOR_IMAGE,
            "env": [{"name": "HETOPT_OPERATORS", "value": ",".join(group.members)}],
        }
    container["resources"] = _resources(group, target)
    pod_spec: dict[str, Any] = {
        "nodeSelector": {DEVICE_LABEL: group.device},
        "containers": [container],
    }
    if target.resource:
        pod_spec["tolerations"] = [
            {"key": target.resource, "operator": "Exists", "effect": "NoSchedule"}
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": {
            "replicas": group.replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec},
        },
    }


def topology(
    groups: Sequence[ServingGroup], names: Mapping[str, str], targets: Mapping[str, Target]
) -> dict[str, Any]:
    """Per model: aggregated workers, or prefill and decode workers with the KV transfer.

    ``names`` maps a group's label to its Deployment name.
    """
    models: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for g in groups:
        if not g.is_llm:
            continue
        role = {"agg": "aggregated"}.get(g.phase, g.phase)
        worker = {
            "deployment": names[g.label],
            "device": g.device,
            "vendor": targets[g.device].vendor,
            "replicas": g.replicas,
            "tensor_parallel_size": g.tp,
            "pipeline_parallel_size": g.pp,
            "max_num_seqs": g.batch,
            "members": list(g.members),
        }
        models.setdefault(g.model, {}).setdefault(role, []).append(worker)
    services = []
    for model, roles in models.items():
        disagg = bool(roles.get("prefill")) and bool(roles.get("decode"))
        entry: dict[str, Any] = {
            "model": model,
            "mode": "disaggregated" if disagg else "aggregated",
            **{f"{r}_workers": w for r, w in roles.items()},
        }
        if disagg:
            vendors = sorted({w["vendor"] for r in ("prefill", "decode") for w in roles[r]})
            entry["kv_transfer"] = {"vllm_kv_transfer_config": KV_TRANSFER_CONFIG}
            if len(vendors) > 1:
                entry["kv_transfer"]["note"] = (
                    f"prefill and decode run on different vendors ({', '.join(vendors)}): the "
                    f"KV cache crosses through NIXL's host-memory path (UCX/RDMA); check that "
                    f"your NIXL build supports both"
                )
        services.append(entry)
    return {
        "format": "llm-d P/D disaggregation (llm-d 0.3+ labels llm-d.ai/role, vLLM 0.11 NIXL)",
        "services": services,
    }


def is_disaggregated(groups: Sequence[ServingGroup]) -> set[str]:
    """Models with both a prefill and a decode group (served with a KV transfer)."""
    phases: dict[str, set[str]] = {}
    for g in groups:
        if g.is_llm:
            phases.setdefault(g.model, set()).add(g.phase)
    return {m for m, p in phases.items() if {"prefill", "decode"} <= p}


def _validator(kubernetes_validate: Any, kind: str, api_version: str) -> Any:
    """kubernetes-validate's strict validator of one kind at :data:`K8S_VERSION`, built
    once per export the way ``kubernetes_validate.validate`` builds it per call (its schema
    files, its registry, Draft 2020-12); ``validate`` re-reads the schema JSON every call."""
    import jsonschema
    from referencing import Registry, Resource

    utils = kubernetes_validate.utils
    folder = f"kubernetes-json-schema/v{K8S_VERSION}-local-strict"
    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema = utils.schema_contents(f"{folder}/{kind.lower()}-{group}.json", K8S_VERSION)
    defs = utils.schema_contents(f"{folder}/_definitions.json", K8S_VERSION)
    registry = Resource.from_contents(defs) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def validate_manifests(manifests: Sequence[Mapping[str, Any]], where: str) -> int:
    """Validate every manifest against Kubernetes :data:`K8S_VERSION`'s OpenAPI schemas
    (``kubernetes-validate``'s strict schemas: no unknown field); return how many passed.

    Raises
    ------
    InputError
        ``kubernetes-validate`` is not installed (names the extra to install).
    DeployError
        A manifest fails validation (an error in hetopt; names the Deployment).

    Examples
    --------
    >>> import pytest; _ = pytest.importorskip("kubernetes_validate")
    >>> validate_manifests([{"apiVersion": "apps/v1", "kind": "Deployment",
    ...     "metadata": {"name": "x"}, "spec": {"replicaz": 1}}], "run")
    Traceback (most recent call last):
    ...
    hetopt.deploy.k8s.DeployError: run: Deployment 'x' fails Kubernetes 1.37.0 schema ...
    """
    try:
        import jsonschema
        import kubernetes_validate
        import kubernetes_validate.utils
    except ImportError:
        raise InputError(
            "hetopt export validates every manifest with kubernetes-validate, which is not "
            "installed. Install the deploy extra: pip install -e '.[deploy]' (or pip install "
            "kubernetes-validate==1.37.0)."
        ) from None
    validators: dict[tuple[str, str], Any] = {}
    for m in manifests:
        key = (str(m["kind"]), str(m["apiVersion"]))
        if key not in validators:
            validators[key] = _validator(kubernetes_validate, *key)
        error = jsonschema.exceptions.best_match(validators[key].iter_errors(dict(m)))
        if error is not None:
            raise DeployError(
                f"{where}: Deployment '{m['metadata']['name']}' fails Kubernetes "
                f"{K8S_VERSION} schema validation ({error.message} at "
                f"{'/'.join(map(str, error.absolute_path)) or 'top'}); nothing was written. "
                f"This is a hetopt bug; please report it with the run directory."
            )
    return len(manifests)
