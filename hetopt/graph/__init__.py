"""Agent graphs (the paper's Table 1 IR), model architectures, and decomposition into operators.

Pipeline stage 1: a workload (YAML, dict or :class:`hetopt.graph.ir.GraphBuilder`) becomes an
:class:`hetopt.graph.ir.AgentGraph`, and :func:`hetopt.graph.decompose.decompose` turns it into an
:class:`hetopt.graph.decompose.OperatorGraph` of granular operators with resource vectors and
expected visits per request.

Import from the submodules (``hetopt.graph.architectures``, ``hetopt.graph.ir``,
``hetopt.graph.decompose``); this package re-exports nothing, so that the function
``decompose`` never shadows the module of the same name.
"""
