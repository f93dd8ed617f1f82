"""Runtime replay: discrete-event verification of a plan with SimPy (pipeline stage 8)."""
