"""Reports: figures and tables of plans."""
