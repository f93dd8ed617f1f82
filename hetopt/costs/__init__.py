"""Cost models: roofline and LLM serving performance, cost tables, TCO and carbon."""
