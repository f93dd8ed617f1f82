"""Plans out as deployments: Kubernetes manifests, vLLM arguments, llm-d topology.

``hetopt export <run dir>`` (:mod:`hetopt.cli.export_cmd`) reads a finished ``hetopt plan`` or
``hetopt fleet`` run and writes ``<run>/deploy/`` (:func:`export_run`). Validation needs the
optional ``deploy`` extra (``kubernetes-validate``), imported only when exporting.
"""

from hetopt.deploy.export import ExportResult, export_run
from hetopt.deploy.groups import RunPlan, ServingGroup, read_run

__all__ = ["ExportResult", "RunPlan", "ServingGroup", "export_run", "read_run"]
