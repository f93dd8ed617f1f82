"""Importers: agent descriptions from other tools (LangGraph graphs, OpenTelemetry traces) as
hetopt workload mappings."""
