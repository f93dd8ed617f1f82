"""Hydra plugin shipped with hetopt: the sweeper ``hetopt sweep`` uses (hydra/sweeper=hetopt)."""
