"""The torch reconstruction engine: from measured intensities to the complex object.

numpy in, numpy out; inside, one batch of N random starts runs on the chosen device with no
host-device copies in the loop (LLKs are copied back only every ``llk_every`` cycles).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from braggscope._backend import resolve_device
from braggscope._validate import check_choice
from braggscope.errors import ConfigError
from braggscope.io.cxi import validate_intensity

from .operators import Operator, RetrievalState, ShrinkWrap, parse_recipe

__all__ = ["DEFAULT_RECIPE", "Reconstruction", "reconstruct", "autocorrelation_support", "best_runs", "default_chain"]


def default_chain(cycles, *, psf=False, support_sigma=ShrinkWrap.sigma) -> str:
    """The default chain's shape at `cycles` cycles: three quarters with a shrink-wrap every 5–20
    cycles, HIO for the first half of them and RAAR for the second, then ER for the rest. The
    shrink-wrap's blur tightens from `support_sigma` (2 voxels unless said) to 0.7 voxels over
    those cycles, as in the 800-cycle default, so that a short chain also ends on a tight support.
    A start whose support is already close to the crystal's (a network's guess) starts tighter
    (:func:`~braggscope.retrieval.neural.seeded_chain`); PyNX's runner calls the blur's two ends
    `support_smooth_width_begin` and `_end`.

    HIO comes first, as PyNX's runner runs its `nb_hio` cycles before its `nb_raar`: on crystals
    whose phase winds around dislocations or jumps at faults, RAAR alone stalls far from the
    solution (LLK several times the truth's), while HIO's feedback gets out; RAAR then settles
    what HIO leaves noisy, and ER ends the chain.

    With `psf` the chain models partial coherence (measured data from a partly coherent beam, or
    a detector's blur): a PSF, a Gaussian of 1 pixel FWHM at first, is refined by Richardson–Lucy
    at every shrink-wrap of the RAAR cycles, and as often through the ER cycles (PyNX's runner
    starts its PSF at two thirds of its HIO and RAAR cycles). A chain under 10 cycles is too short
    for one.

    >>> default_chain(1000)
    'ER**260 * (ShrinkWrap(sigma_cycles=740) * RAAR**20)**19 * (ShrinkWrap(sigma_cycles=740, keep_when_exploded=True) * HIO**20)**18'
    >>> default_chain(100)
    'ER**30 * (ShrinkWrap(sigma_cycles=70) * RAAR**7)**5 * (ShrinkWrap(sigma_cycles=70, keep_when_exploded=True) * HIO**7)**5'
    >>> default_chain(100, support_sigma=1.0)
    'ER**30 * (ShrinkWrap(sigma=1.0, sigma_cycles=70) * RAAR**7)**5 * (ShrinkWrap(sigma=1.0, sigma_cycles=70, keep_when_exploded=True) * HIO**7)**5'
    >>> default_chain(40, psf=True)
    '(PSF * ER**5)**2 * (PSF * ShrinkWrap(sigma_cycles=30) * RAAR**5)**3 * (ShrinkWrap(sigma_cycles=30, keep_when_exploded=True) * HIO**5)**3'
    """
    cycles = int(cycles)
    if cycles < 8:
        raise ConfigError(f"a chain needs at least 8 cycles, got {cycles}")
    projections = 3 * cycles // 4
    every = min(20, max(5, projections // 10))
    blocks = projections // every
    projections = blocks * every  # whole shrink-wrap blocks; the blur ends at the last one
    hio_blocks = blocks // 2
    blur = "" if support_sigma == ShrinkWrap.sigma else f"sigma={float(support_sigma)}, "
    hio = _repeat(f"ShrinkWrap({blur}sigma_cycles={projections}, keep_when_exploded=True) * HIO**{every}", hio_blocks)
    raar = f"ShrinkWrap({blur}sigma_cycles={projections}) * RAAR**{every}"
    er = cycles - projections
    if not psf:
        parts = [f"ER**{er}", _repeat(raar, blocks - hio_blocks), hio]
    else:
        parts = [f"ER**{er % every}" if er % every else "", _repeat(f"PSF * ER**{every}", er // every),
                 _repeat(f"PSF * {raar}", blocks - hio_blocks), hio]
    return " * ".join(part for part in parts if part)


def _repeat(recipe, n) -> str:
    """`recipe` run `n` times, in the recipe grammar ('' for none)."""
    return "" if n == 0 else recipe if n == 1 else f"({recipe})**{n}"


DEFAULT_RECIPE = default_chain(800)  # 300 HIO, 300 RAAR (shrink-wrap every 20 cycles), 200 ER


@dataclass(frozen=True, kw_only=True)
class Reconstruction:
    """Result of :func:`reconstruct` (numpy, centred like the data).

    Attributes
    ----------
    obj : (B, ...) ndarray of complex64
        Every run's object, best (lowest free LLK, then LLK) first.
    support : (B, ...) ndarray of bool
    llk, free_llk : (B,) ndarray
        Final normalised Poisson LLK on the constrained and on the free pixels.
    history : list of dict
        cycle, operator, llk, free_llk, support_fraction (per run, in the order of `obj`), seconds.
    recipe : str
    config : dict
        Every parameter of the run (for the CXI file).
    free_pixels : ndarray of bool, optional
        The measured pixels held out of the constraint (centred).
    psf : (B, ...) ndarray, optional
        Partial-coherence PSF of every run (centred, sums to 1) when the recipe had a PSF.
    """

    obj: np.ndarray
    support: np.ndarray
    llk: np.ndarray
    free_llk: np.ndarray
    history: list
    recipe: str
    config: dict = field(default_factory=dict)
    free_pixels: np.ndarray | None = None
    psf: np.ndarray | None = None

    def run_history(self, k=0) -> list:
        """The history of run `k` alone (per-run arrays reduced to their k-th value)."""
        return _runs_of(self.history, k)


def _runs_of(history, index):
    """`history` with every per-run array indexed by `index` (an int, slice or order)."""
    return [{key: (v[index] if isinstance(v, np.ndarray) else v) for key, v in h.items()} for h in history]


def autocorrelation_support(intensity, *, threshold=0.1, sigma=2.0):
    """Initial support from the autocorrelation of the object (the inverse FFT of the intensity,
    twice the object's extent): its smoothed modulus above `threshold` × max. Centred, bool."""
    import scipy.fft
    from scipy import ndimage

    auto = np.abs(scipy.fft.fftshift(scipy.fft.ifftn(scipy.fft.ifftshift(np.asarray(intensity, float)))))
    smooth = ndimage.gaussian_filter(auto, sigma)
    return smooth > threshold * smooth.max()


def _free_pixels(measured, fraction, rng):
    """A random `fraction` of the measured pixels, held out of the constraint."""
    free = np.zeros(measured.shape, bool)
    idx = np.flatnonzero(measured)
    free.flat[rng.choice(idx, size=int(fraction * idx.size), replace=False)] = True
    return free


def _initial_objects(intensity, support, n_runs, rng):
    """Random phases inside the support, scaled so that Σ|ρ|² = Σ I / N (Parseval)."""
    phase = rng.uniform(0, 2 * np.pi, (n_runs,) + intensity.shape)
    obj = support * np.exp(1j * phase)
    scale = np.sqrt(intensity.sum() / intensity.size / max(support.sum(), 1))
    return (obj * scale).astype(np.complex64)


def reconstruct(intensity, recipe=DEFAULT_RECIPE, *, mask=None, support=None, obj=None, n_runs=1,
                free_fraction=0.05, llk_every=10, rng=None, device="auto", backend="torch",
                batch=None, progress=None) -> Reconstruction:
    """Reconstruct the complex object from a Bragg CDI pattern.

    Parameters
    ----------
    intensity : (Z, Y, X) or (Y, X) ndarray
        [photons] Measured intensity, centred on the Bragg peak.
    recipe : str or Operator
        Algorithm chain, e.g. ``'ER**200 * (ShrinkWrap * RAAR**20)**30'`` (600 RAAR with shrink-wrap
        every 20 cycles, then 200 ER: PyNX's ID01 default). The default, ``default_chain(800)``, runs
        300 HIO before 300 RAAR, as PyNX's runner does with ``nb_hio=300 nb_raar=300``.
    mask : ndarray of bool, optional
        True = pixel not measured (gaps, saturated, aliens): left free by the constraint.
    support : ndarray of bool, optional
        Initial support (centred); from the autocorrelation if omitted.
    obj : ndarray of complex, optional
        Initial object (centred), e.g. a network's first guess; random phases if omitted.
    n_runs : int
        Independent random starts (see `batch`).
    free_fraction : float
        Fraction of the measured pixels held out for the free LLK (0 for none).
    llk_every : int
        Cycles between LLK records.
    rng : numpy.random.Generator or int, optional
        Seed of the starts and of the free pixels.
    device : str
        'auto', 'cpu' or 'cuda'.
    batch : int, optional
        Runs iterated together as one tensor. Default: all of them on a GPU, one at a time on
        the CPU (where a batch is memory-bound and measured slower than the runs in turn).
    backend : {'torch', 'pynx'}
        Our engine, or ESRF's PyNX run on the same data, mask, free pixels and starts
        (:mod:`.pynx_backend`; one start after another, on the processing unit PyNX chooses).
    progress : callable, optional
        progress(cycle, llk) at every LLK record; the recipe's length is ``recipe.cycles``.

    Returns
    -------
    Reconstruction
        Runs sorted by free LLK (LLK when there are no free pixels), best first.
    """
    import torch

    intensity, mask = validate_intensity(intensity, mask)
    op = parse_recipe(recipe) if isinstance(recipe, str) else recipe
    if not isinstance(op, Operator):
        raise ConfigError(f"`recipe` must be a recipe string or an Operator, got {type(recipe).__name__}")
    if int(n_runs) < 1 or not 0 <= free_fraction < 0.5:
        raise ConfigError("`n_runs` must be ≥ 1 and `free_fraction` in [0, 0.5)")
    check_choice(backend, "backend", {"torch", "pynx"})
    rng = np.random.default_rng(rng)
    dev = resolve_device(device) if backend == "torch" else torch.device("cpu")
    support0 = autocorrelation_support(intensity) if support is None else np.asarray(support, bool)
    if support0.shape != intensity.shape or not support0.any():
        raise ConfigError(f"the initial support must be a non-empty bool array of shape {intensity.shape}")
    free = _free_pixels(~mask, free_fraction, rng) if free_fraction > 0 else np.zeros(mask.shape, bool)
    if obj is not None and np.shape(obj) not in (intensity.shape, (int(n_runs),) + intensity.shape):
        raise ConfigError(f"the initial object must have the data's shape {intensity.shape} (or one per run), "
                          f"got {np.shape(obj)}")
    start = _initial_objects(intensity, support0, int(n_runs), rng) if obj is None else \
        np.broadcast_to(np.asarray(obj, np.complex64), (int(n_runs),) + intensity.shape)
    shift = lambda a, batched: np.fft.ifftshift(a, axes=tuple(range(1 if batched else 0, a.ndim)))
    put = lambda a, batched=False: torch.from_numpy(np.ascontiguousarray(shift(a, batched))).to(dev)
    state = RetrievalState(
        obj=put(start, True), support=put(np.broadcast_to(support0, start.shape), True),
        amplitude=put(np.sqrt(intensity))[None], intensity=put(intensity)[None], measured=put(~mask & ~free)[None],
        free=put(free)[None], llk_every=int(llk_every), progress=progress)
    if backend == "pynx":
        state = _run_pynx(op, state)
    else:
        size = len(start) if batch is None and dev.type == "cuda" else int(batch or 1)
        state = _merge([op * state.replace(obj=state.obj[i:i + size], support=state.support[i:i + size], history=[])
                        for i in range(0, len(start), size)])
    return _finish(state, op, free, dict(recipe=str(op), n_runs=int(n_runs), free_fraction=free_fraction,
                                         llk_every=int(llk_every), device=str(dev), backend=backend,
                                         iobs_shape=intensity.shape))


def _merge(states):
    """One state from the states of consecutive groups of runs (same recipe, same records)."""
    import torch

    if len(states) == 1:
        return states[0]
    cat = lambda name: None if getattr(states[0], name) is None else torch.cat([getattr(s, name) for s in states])
    history = [{k: (np.concatenate([h[k] for h in records]) if isinstance(v, np.ndarray) else
                    (max(h[k] for h in records) if k == "seconds" else v)) for k, v in records[0].items()}
               for records in zip(*(s.history for s in states))]
    return states[-1].replace(obj=cat("obj"), support=cat("support"), psf=cat("psf"), otf=cat("otf"),
                              history=history)


def _run_pynx(op, state):
    """`state` after PyNX ran `op` on it (CPU tensors), with PyNX's LLK records as history."""
    import torch

    from .pynx_backend import run_pynx

    arr = lambda t: t.cpu().numpy()
    obj, support, histories = run_pynx(op, arr(state.intensity[0]), ~arr(state.measured[0]) & ~arr(state.free[0]),
                                       arr(state.free[0]), arr(state.support[0]), arr(state.obj),
                                       llk_every=state.llk_every)
    records = histories[0].get("llk_poisson", [])
    per_run = lambda key, i: np.array([dict(h.get(key, [])).get(records[i][0], np.nan) for h in histories])
    history = [{"cycle": c, "operator": "pynx", "llk": per_run("llk_poisson", i),
                "free_llk": per_run("llk_poisson_free", i), "llk_gaussian": per_run("llk_gaussian", i),
                "support_fraction": per_run("support_size", i) / obj[0].size, "seconds": np.nan}
               for i, (c, _) in enumerate(records)]
    return state.replace(obj=torch.from_numpy(obj), support=torch.from_numpy(support), history=history,
                         cycle=op.cycles)


def _finish(state, op, free, config):
    """Final LLKs, back to numpy and centred, runs sorted best first."""
    from . import functional as F

    _, calc = F.project_modulus(state.obj, state.amplitude, state.measured, otf=state.otf)
    state.record("final", calc)
    last = state.history[-1]
    has_free = bool(state.free.any())
    order = np.lexsort((last["llk"], last["free_llk"])) if has_free else np.argsort(last["llk"])
    unshift = lambda t: np.fft.fftshift(t.cpu().numpy(), axes=tuple(range(1, t.ndim)))
    return Reconstruction(obj=unshift(state.obj)[order], support=unshift(state.support)[order],
                          llk=last["llk"][order], free_llk=last["free_llk"][order], history=_runs_of(state.history, order),
                          recipe=str(op), config=config, free_pixels=free,
                          psf=None if state.psf is None else unshift(state.psf)[order])


def best_runs(result: Reconstruction, k=1) -> Reconstruction:
    """The `k` best runs of `result` (they are sorted already)."""
    if not 1 <= int(k) <= len(result.llk):
        raise ConfigError(f"`k` must be between 1 and {len(result.llk)}, got {k}")
    k = int(k)
    return dataclasses.replace(result, obj=result.obj[:k], support=result.support[:k], llk=result.llk[:k],
                               free_llk=result.free_llk[:k], history=_runs_of(result.history, slice(0, k)),
                               psf=None if result.psf is None else result.psf[:k])
