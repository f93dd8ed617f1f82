"""Importers: agent graphs written with an agent framework, read into hetopt's workload format.

``from_langgraph(graph, annotations)`` reads a LangGraph graph
(:mod:`hetopt.importers.langgraph`); ``import_target("my_agent.py:graph")`` reads one out of a
Python file (:mod:`hetopt.importers.pyfile`). Importing this package registers the ``.py``
workload reader, so that :func:`hetopt.workloads.load_workload_data` (and ``hetopt plan
workload_file=my_agent.py:graph``) reads ``file.py:object``. ``profile_traces(files)`` derives a
workload from OpenTelemetry GenAI traces (:mod:`hetopt.importers.traces`, ``hetopt profile``). LangGraph itself (the ``agents``
extra) is imported only when a graph is read.
"""

from hetopt.importers.langgraph import ImportResult, from_langgraph
from hetopt.importers.pyfile import import_target, read_target
from hetopt.importers.traces import TraceProfile, profile_traces
from hetopt.workloads import register_object_reader

register_object_reader(".py", read_target)

__all__ = ["ImportResult", "TraceProfile", "from_langgraph", "import_target", "profile_traces"]
