"""Phase retrieval: data preparation, the neural first guess that starts the runs near the solution
(:mod:`.neural`, trained by :mod:`.neural_training`), the torch engine (operators, reconstruct), the
PyNX back end, and the post-processing of the runs (mode decomposition, centring, phase ramp, twin, PRTF).

>>> from braggscope.retrieval import ER, RAAR, ShrinkWrap, parse_recipe
>>> str(ER() ** 200 * (ShrinkWrap() * RAAR() ** 20) ** 30)
'ER**200 * (ShrinkWrap * RAAR**20)**30'
"""
from .engine import DEFAULT_RECIPE, Reconstruction, autocorrelation_support, best_runs, default_chain, reconstruct
from .operators import (ER, HIO, OPERATORS, PSF, RAAR, Operator, Power, RetrievalState, Sequence, ShrinkWrap,
                        parse_recipe)
from .postprocess import (Solution, centre_object, combine_runs, flip_twin, prtf, psf_fwhm, remove_phase_ramp,
                          write_solution)
from .prepare import (PreparedData, bin_pixels, correct_detector, crop_around_peak, find_aliens, hot_pixels,
                      peak_position, prepare)
from .neural import first_guess, network_start, starts_from_guess
from .pynx_backend import pynx_available

__all__ = ["DEFAULT_RECIPE", "Reconstruction", "autocorrelation_support", "best_runs", "default_chain", "reconstruct",
           "first_guess", "network_start", "starts_from_guess", "write_solution", "ER", "HIO",
           "OPERATORS", "PSF", "RAAR", "Operator", "Power", "RetrievalState", "Sequence", "ShrinkWrap", "parse_recipe",
           "Solution", "centre_object", "combine_runs", "flip_twin", "prtf", "psf_fwhm", "remove_phase_ramp",
           "PreparedData", "bin_pixels", "correct_detector", "crop_around_peak", "find_aliens", "hot_pixels",
           "peak_position", "prepare", "pynx_available"]
