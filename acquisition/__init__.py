"""Scan planning on a simulated beamline (issue: Bayesian optimiser).

Nothing is exported yet.
"""
__all__: list[str] = []
