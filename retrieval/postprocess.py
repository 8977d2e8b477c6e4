"""After the runs: combine the best ones, centre, remove the phase ramp and the global phase, put
every twin the same way round, and measure the resolution (PRTF).

All arrays are numpy and centred like the data (the origin of q at index n//2).

References
----------
P. Thibault, Phys. Rev. A 80, 043813 (2009) (mode decomposition of a set of solutions, as PyNX's
``pynx-cdi-analysis --modes`` does); H. N. Chapman et al., J. Opt. Soc. Am. A 23, 1179 (2006)
(phase-retrieval transfer function).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.fft
from scipy import ndimage

from braggscope.errors import ConfigError
from braggscope.io.cxi import validate_intensity
from braggscope.metrics import align_to
from braggscope.physics import FWHM_PER_SIGMA
from braggscope.simulate.diffraction import continuum_intensity

from .engine import best_runs
from .functional import convolve_intensity, poisson_llk

__all__ = ["Solution", "combine_runs", "centre_object", "remove_phase_ramp", "flip_twin", "prtf", "psf_fwhm",
           "write_solution"]


@dataclass(frozen=True, kw_only=True)
class Solution:
    """One object made from the best runs, ready for strain analysis.

    Attributes
    ----------
    obj : ndarray of complex64
        Combined object: centred on its support, linear phase ramp and global phase removed.
    support : ndarray of bool
        Voxels where |obj| exceeds `support_threshold` × its maximum.
    llk, free_llk : float
        Normalised Poisson LLK of the combined object (before the ramp removal, which shifts q).
    mode_fraction : float
        Share of the kept runs' power in the dominant mode (1 = all runs agree); 1 for 'average'.
    run_errors : ndarray
        Normalised distance of every kept run (aligned) to the combined object.
    twins_flipped : int
        Kept runs that were the twin of the best one.
    phase_ramp : tuple of float
        [rad/voxel] Linear phase ramp removed (a q offset of ramp / 2π cycles per voxel).
    prtf : dict
        'frequency' [cycles/voxel], 'prtf', 'resolution' [voxels, half period where PRTF < 1/e].
    method : str
        'mode' or 'average'.
    psf_fwhm : tuple of float or None
        [pixels] Width per axis of the best run's partial-coherence PSF (:func:`psf_fwhm`); None
        where the recipe refined no PSF.
    """

    obj: np.ndarray
    support: np.ndarray
    llk: float
    free_llk: float
    mode_fraction: float
    run_errors: np.ndarray
    twins_flipped: int
    phase_ramp: tuple
    prtf: dict = field(default_factory=dict)
    method: str = "mode"
    psf_fwhm: tuple | None = None


def flip_twin(obj):
    """The twin image ρ*(-r) of a centred object, on the same centre (index n//2 stays put); a
    real array (a support) is inverted the same way and keeps its dtype."""
    obj = np.asarray(obj)
    shift = tuple(1 if n % 2 == 0 else 0 for n in obj.shape)
    flipped = np.conj(np.flip(obj)) if np.iscomplexobj(obj) else np.flip(obj)
    return np.roll(flipped, shift, axis=tuple(range(obj.ndim)))


def centring_shift(support) -> tuple:
    """[voxels] The whole-voxel roll that puts the support's centre of mass at n//2."""
    com = ndimage.center_of_mass(np.asarray(support, float))
    return tuple(int(round(n // 2 - c)) for n, c in zip(np.shape(support), com))


def centre_object(obj, support):
    """Roll `obj` and `support` (by whole voxels) so that the support's centre of mass sits at n//2."""
    shift = centring_shift(support)
    axes = tuple(range(obj.ndim))
    return np.roll(obj, shift, axis=axes), np.roll(support, shift, axis=axes)


def remove_phase_ramp(obj, support):
    """Remove the linear phase ramp and the global phase of `obj` inside `support`.

    The ramp along each axis is the amplitude-weighted mean phase step between neighbours,
    arg Σ ρ(r+e) ρ*(r) over pairs inside the support, which a phase wrap does not disturb.
    The global phase is then set so that arg Σ_support ρ = 0.

    Returns (obj, ramp) with ramp in rad/voxel per axis."""
    obj = np.asarray(obj)
    support = np.asarray(support, bool)
    ramp = []
    for axis in range(obj.ndim):
        head = [slice(None)] * obj.ndim
        tail = [slice(None)] * obj.ndim
        head[axis], tail[axis] = slice(1, None), slice(None, -1)
        pairs = support[tuple(head)] & support[tuple(tail)]
        ramp.append(float(np.angle(np.sum((obj[tuple(head)] * np.conj(obj[tuple(tail)]))[pairs]))))
    grids = np.meshgrid(*[np.arange(n) - n // 2 for n in obj.shape], indexing="ij")
    flat = obj * np.exp(-1j * sum(g * r for g, r in zip(grids, ramp)))
    flat = flat * np.exp(-1j * np.angle(np.sum(flat[support])))
    return flat.astype(np.complex64), tuple(ramp)


def prtf(runs, intensity, mask=None, *, n_shells=None):
    """Phase-retrieval transfer function: |⟨F_k(q)⟩| / √I(q) averaged over shells of |q|.

    Parameters
    ----------
    runs : (K, ...) ndarray
        Aligned reconstructions (same twin, shift and global phase), centred.
    intensity, mask : ndarray
        The measured data and its mask (True = not measured).

    Returns
    -------
    dict
        'frequency' [cycles/voxel] shell centres, 'prtf' per shell, 'resolution' [voxels]: the
        half period 1/(2 f) where the PRTF first drops below 1/e (the largest f if it never does).
    """
    intensity, mask = validate_intensity(intensity, mask)
    mean_f = np.sqrt(continuum_intensity(np.mean(runs, axis=0)))  # |⟨F_k⟩| = |F(⟨ρ_k⟩)|: one FFT
    grids = np.meshgrid(*[(np.arange(n) - n // 2) / n for n in intensity.shape], indexing="ij")
    radius = np.sqrt(sum(g * g for g in grids))
    n_shells = n_shells or min(intensity.shape) // 2
    edges = np.linspace(0, 0.5, n_shells + 1)
    shell = np.digitize(radius, edges) - 1
    use = ~mask & (intensity > 0) & (shell < n_shells)
    ratio = mean_f[use] / np.sqrt(intensity[use])
    total = np.bincount(shell[use], weights=ratio, minlength=n_shells)
    count = np.bincount(shell[use], minlength=n_shells)
    curve = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    freq = 0.5 * (edges[1:] + edges[:-1])
    below = np.flatnonzero(curve < 1 / np.e)
    cutoff = freq[below[0]] if below.size else freq[-1]
    return {"frequency": freq, "prtf": curve, "resolution": float(1 / (2 * cutoff))}


def _dominant_mode(stack):
    """The first singular vector of the stack of runs (K, N), scaled like one run, and its share
    of the total power."""
    flat = stack.reshape(len(stack), -1)
    gram = flat @ flat.conj().T
    w, u = np.linalg.eigh(gram)
    mode = (u[:, -1].conj() @ flat) / np.sqrt(len(stack))
    mode *= np.sign(np.vdot(mode, flat[0]).real) or 1.0  # same sign as the best run
    return mode.reshape(stack.shape[1:]), float(w[-1] / max(w.sum(), 1e-30))


def combine_runs(result, intensity, mask=None, *, keep=None, method="mode", support_threshold=0.2) -> Solution:
    """Combine the best `keep` runs of a :class:`~braggscope.retrieval.engine.Reconstruction`.

    Every run is aligned on the best one (twin, sub-voxel shift, global phase and scale), then
    the dominant mode of the set ('mode') or their mean ('average') is taken; the result is
    centred and its phase ramp and global phase removed. `support_threshold` × max |ρ| gives the
    support of the combined object.
    """
    if method not in ("mode", "average"):
        raise ConfigError(f"unknown combination {method!r}; choose 'mode' or 'average'")
    intensity, mask = validate_intensity(intensity, mask)
    kept = best_runs(result, keep or len(result.llk))
    reference = kept.obj[0]
    aligned, twins = [reference], 0
    for run in kept.obj[1:]:
        moved, info = align_to(run, reference)
        aligned.append(moved)
        twins += bool(info["twin"])
    stack = np.asarray(aligned)
    if method == "mode":
        combined, fraction = _dominant_mode(stack)
    else:
        combined, fraction = stack.mean(axis=0), 1.0
    scale = np.linalg.norm(combined)
    errors = np.array([np.linalg.norm(a - combined) / max(scale, 1e-30) for a in stack])
    llk, free = _llk(combined, intensity, mask, result)
    curve = prtf(stack, intensity, mask)
    support = np.abs(combined) > support_threshold * np.abs(combined).max()
    centred, support = centre_object(combined, support)
    flat, ramp = remove_phase_ramp(centred, support)
    return Solution(obj=flat, support=support, llk=llk, free_llk=free, mode_fraction=fraction, run_errors=errors,
                    twins_flipped=twins, phase_ramp=ramp, prtf=curve, method=method,
                    psf_fwhm=None if result.psf is None else psf_fwhm(result.psf[0]))


def _llk(obj, intensity, mask, result):
    """Normalised Poisson LLK of `obj` (with the best run's PSF, if any) on the constrained pixels,
    and on the run's free pixels (NaN without any)."""
    import torch

    free = result.free_pixels if result.free_pixels is not None else np.zeros(mask.shape, bool)
    tensor = lambda a, dtype=np.float32: torch.from_numpy(np.ascontiguousarray(scipy.fft.ifftshift(a), dtype))[None]
    calc, iobs = tensor(continuum_intensity(obj)), tensor(intensity)
    if result.psf is not None:  # the best run's partial coherence, as the engine applies it
        calc = convolve_intensity(calc, torch.fft.rfftn(tensor(result.psf[0]), dim=tuple(range(1, calc.ndim))))
    llk = lambda pixels: float(poisson_llk(calc, iobs, tensor(pixels, bool))[0])
    return llk(~mask & ~free), (llk(free) if free.any() else float("nan"))


def psf_fwhm(psf) -> tuple:
    """[pixels] Width of a centred partial-coherence PSF along each axis: 2√(2 ln 2) × its RMS
    width about the array's centre (the FWHM for a Gaussian).

    >>> from braggscope.retrieval.functional import gaussian_psf
    >>> import numpy as np
    >>> np.round(psf_fwhm(np.fft.fftshift(gaussian_psf((32, 32), 1.5)[0].numpy())), 1)
    array([1.5, 1.5])
    """
    psf = np.asarray(psf, float)
    psf = psf / psf.sum()
    widths = []
    for axis in range(psf.ndim):
        profile = psf.sum(axis=tuple(a for a in range(psf.ndim) if a != axis))
        offset = np.arange(profile.size) - profile.size // 2
        widths.append(FWHM_PER_SIGMA * float(np.sqrt((profile * offset**2).sum())))
    return tuple(widths)


def write_solution(path, solution: Solution, result, *, config=None):
    """Write the combined object of a reconstruction as PyNX does (:func:`~braggscope.io.write_cxi_result`):
    its LLKs, the best run's LLK history, every run's LLKs, the mode fraction, the kept runs'
    distances, twins flipped, the removed ramp and the PRTF, with the engine's configuration and
    `config` (the caller's parameters); and the best run's PSF where the recipe refined one."""
    from braggscope.io import write_cxi_result

    return write_cxi_result(path, solution.obj, solution.support, llk=solution.llk, free_llk=solution.free_llk,
                            history=result.run_history(0), config=result.config | (config or {}),
                            results={"run_llk_poisson": result.llk, "run_free_llk_poisson": result.free_llk,
                                     "mode_fraction": solution.mode_fraction, "run_errors": solution.run_errors,
                                     "twins_flipped": solution.twins_flipped, "phase_ramp": list(solution.phase_ramp),
                                     "prtf_frequency": solution.prtf["frequency"], "prtf": solution.prtf["prtf"],
                                     "prtf_resolution": solution.prtf["resolution"]}
                            | ({} if solution.psf_fwhm is None else {"psf_fwhm_pixels": list(solution.psf_fwhm)}),
                            psf=None if result.psf is None else result.psf[0])
