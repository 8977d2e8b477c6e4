"""Scan planning: the physics of a scan design (:mod:`.sampling`), a simulated beamline that
measures, reconstructs and scores a scan of a known crystal (:mod:`.beamline`), a Bayesian
ask/tell planner (:mod:`.planner`) and the ranking of crystals from a coarse pre-scan
(:mod:`.prescan`).

>>> from braggscope.acquisition import Instrument, formula_design
>>> design = formula_design(300, "Pt", (1, 1, 1), Instrument())
>>> sorted(design.reasons)
['count_time', 'detector_distance', 'rocking_range', 'rocking_step']
"""
from .beamline import ScanResult, SimulatedBeamline, efficiency, random_beamline
from .planner import Observation, Planner, SearchSpace
from .sampling import (DEFAULT_SCAN, Design, Instrument, Scan, beam_time, dose, edge_count_rate, formula_design,
                       oversampling, peak_count_rate, rank_reflections, violations, visible)

__all__ = ["ScanResult", "SimulatedBeamline", "efficiency", "random_beamline", "Observation", "Planner",
           "SearchSpace", "DEFAULT_SCAN", "Design", "Instrument", "Scan", "beam_time", "dose", "edge_count_rate",
           "formula_design", "oversampling", "peak_count_rate", "rank_reflections", "violations", "visible"]
