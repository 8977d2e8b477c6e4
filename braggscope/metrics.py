"""Comparing a reconstruction with the truth, the same way in every test and benchmark.

The trivial ambiguities of phase retrieval are removed first: the twin (ρ*(-r)), the shift (to
sub-voxel precision, as a phase ramp in q) and the global phase (and scale). DESIGN.md: success
is an error under 0.1 against the band-limited truth.
"""
from __future__ import annotations

import numpy as np
import scipy.fft
from scipy import ndimage

__all__ = ["align_to", "register", "compare", "reconstruction_error", "band_limited"]


def band_limited(obj, shape, *, window=None):
    """The truth as the measured data can carry it, on the reconstruction's grid of `shape`.

    The continuum simulator's data are the DFT of the object zero-padded to the data shape, so
    the reconstruction grid has the object's voxel size: the truth is `obj` zero-padded
    (centred) to `shape`. If the measurement kept only a centred q-`window` (shape) of that DFT,
    the truth is low-passed to it (Fourier crop), then resampled on the window's coarser grid.
    """
    obj = np.asarray(obj)
    padded = np.zeros(shape, dtype=np.complex64)
    start = [(m - n) // 2 for n, m in zip(obj.shape, shape)]
    padded[tuple(slice(a, a + n) for a, n in zip(start, obj.shape))] = obj
    if window is None:
        return padded
    f = scipy.fft.fftshift(scipy.fft.fftn(scipy.fft.ifftshift(padded)))
    crop = tuple(slice((n - w) // 2, (n - w) // 2 + w) for n, w in zip(shape, window))
    return (scipy.fft.fftshift(scipy.fft.ifftn(scipy.fft.ifftshift(f[crop]))) * np.prod(window) / np.prod(shape)
            ).astype(np.complex64)


def register(moving, reference, upsample=20):
    """(`moving` shifted onto `reference`, the shift [voxels], the registration error): the
    sub-voxel shift is scikit-image's phase cross-correlation of the amplitudes, which no phase
    ramp or global phase disturbs (error 0 for amplitudes equal up to a scale), applied as a
    phase ramp in Fourier space."""
    from skimage.registration import phase_cross_correlation

    shift, error, _ = phase_cross_correlation(np.abs(reference), np.abs(moving), upsample_factor=upsample,
                                              normalization=None)
    f = ndimage.fourier_shift(scipy.fft.fftn(moving), shift)
    return scipy.fft.ifftn(f), shift, float(error)


def align_to(obj, truth):
    """`obj` with twin, shift and global phase/scale chosen to best match `truth`.

    Returns (aligned object, dict with 'twin', 'shift' [voxels], 'error')."""
    best = None
    for twin in (False, True):
        candidate = np.conj(np.flip(obj)) if twin else np.asarray(obj)
        shifted, shift, _ = register(candidate, truth)
        alpha = np.vdot(shifted, truth) / max(np.vdot(shifted, shifted).real, 1e-30)
        aligned = alpha * shifted
        err = float(np.linalg.norm(aligned - truth) / np.linalg.norm(truth))
        if best is None or err < best[1]["error"]:
            best = (aligned, {"twin": twin, "shift": shift, "error": err})
    return best


def reconstruction_error(obj, truth, *, support=None) -> dict:
    """Normalised complex error and phase errors of `obj` against `truth` (same shape); the
    dict of :func:`compare`."""
    return compare(obj, truth, support=support)[1]


def compare(obj, truth, *, support=None):
    """Align `obj` on `truth` once and measure it.

    Returns
    -------
    aligned : ndarray
        `obj` after the twin, shift and global phase/scale that best match `truth`.
    errors : dict
        error (‖αρ - ρ_t‖/‖ρ_t‖ after the ambiguities), phase_rms [rad] (amplitude-weighted inside
        the true support), phase_rms_inner (without the outer voxel layer), support_ratio
        (reconstructed support size / true support size, when `support` is given), twin, shift.
    """
    truth = np.asarray(truth)
    aligned, info = align_to(np.asarray(obj), truth)
    inside = np.abs(truth) > 0.5 * np.abs(truth).max()
    inner = ndimage.binary_erosion(inside)
    dphi = np.angle(aligned * np.conj(truth))
    weight = np.abs(truth)
    rms = lambda m: float(np.sqrt(np.sum(weight[m] * dphi[m] ** 2) / max(np.sum(weight[m]), 1e-30)))
    out = {"error": info["error"], "phase_rms": rms(inside), "phase_rms_inner": rms(inner) if inner.any() else np.nan,
           "twin": info["twin"], "shift": [float(s) for s in info["shift"]]}
    if support is not None:
        out["support_ratio"] = float(np.sum(support) / max(inside.sum(), 1))
    return aligned, out
