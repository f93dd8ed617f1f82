"""The ``hetopt`` command line: Hydra at the edge, rich output, exit 2 on user errors."""
