"""Phase retrieval: the torch engine (operators, reconstruct) — the neural first guess, the PyNX
adapter and data preparation come with their issues.

>>> from braggscope.retrieval import ER, RAAR, ShrinkWrap, parse_recipe
>>> str(ER() ** 200 * (ShrinkWrap() * RAAR() ** 20) ** 30)
'ER**200 * (ShrinkWrap * RAAR**20)**30'
"""
from .engine import DEFAULT_RECIPE, Reconstruction, autocorrelation_support, best_runs, reconstruct
from .operators import ER, HIO, OPERATORS, RAAR, Operator, Power, RetrievalState, Sequence, ShrinkWrap, parse_recipe

__all__ = ["DEFAULT_RECIPE", "Reconstruction", "autocorrelation_support", "best_runs", "reconstruct", "ER", "HIO",
           "OPERATORS", "RAAR", "Operator", "Power", "RetrievalState", "Sequence", "ShrinkWrap", "parse_recipe"]
