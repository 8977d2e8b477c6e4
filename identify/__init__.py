"""Defect identification in reconstructed crystals: a physics baseline (phase vortices and planar
jumps), a 3-D U-Net trained on simulated reconstructions, the defect list, and 3-D pictures; the
Burgers vectors of dislocations seen at several reflections (:func:`burgers_vectors`); and
defect recognition straight from the diffraction pattern (:class:`PatternClassifier`); loops,
precipitates and cavities in TEM micrographs (:class:`TEMSegmenter`, :mod:`.tem`); and the deviatoric
strain and defect content of grains from their Laue spots (:mod:`.laue`).

>>> from braggscope.identify import CLASSES
>>> CLASSES
('background', 'dislocation', 'fault', 'twin')
"""
from .burgers import burgers_vectors
from .data import CLASSES, input_channels
from .classifier import PatternClassifier, PatternVerdict, prepare_pattern
from .find import DefectReport, baseline_defects, find_defects, unet_defects
from .patterns import PATTERN_CLASSES, simulate_pattern
from .planes import fit_plane, planar_defects
from .tem import TEMResult, TEMSegmenter
from .unet import UNet, load_unet, predict_tiled
from .vortices import close_core_tubes, plaquette_winding, trace_lines, vortex_lines

__all__ = ["CLASSES", "input_channels", "PatternClassifier", "PatternVerdict", "prepare_pattern", "PATTERN_CLASSES",
           "simulate_pattern", "DefectReport", "baseline_defects", "find_defects", "unet_defects",
           "fit_plane", "planar_defects", "TEMResult", "TEMSegmenter", "UNet", "load_unet", "predict_tiled", "close_core_tubes",
           "plaquette_winding", "trace_lines", "vortex_lines", "burgers_vectors"]
