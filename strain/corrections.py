"""Corrections applied to a reconstruction before its strain is taken."""
from __future__ import annotations

import numpy as np
import scipy.fft
from scipy.signal import windows

from braggscope._validate import check_choice

__all__ = ["apodize"]

_WINDOWS = {"blackman", "hann", "tukey"}


def apodize(obj, window="blackman") -> np.ndarray:
    """The object with its Fourier transform (the diffraction amplitude it models) multiplied
    by a separable `window` centred on the Bragg peak: the high-q noise of a reconstruction is
    damped at the cost of resolution, as bcdi and cdiutils offer before the strain step.

    Parameters
    ----------
    obj : ndarray of complex
        Centred object (the peak at index N // 2 of its FFT).
    window : {'blackman', 'hann', 'tukey'}
        scipy.signal window (tukey with α = 0.5).

    Returns
    -------
    ndarray of complex64
        Same total |FFT|² weighting at q = 0 (the window is 1 there).
    """
    check_choice(window, "apodisation window", _WINDOWS)
    obj = np.asarray(obj)
    spectrum = scipy.fft.fftshift(scipy.fft.fftn(scipy.fft.ifftshift(obj)))
    for axis, n in enumerate(obj.shape):
        w = windows.tukey(n, 0.5, sym=False) if window == "tukey" else windows.get_window(window, n, fftbins=True)
        shape = [1] * obj.ndim
        shape[axis] = n
        spectrum = spectrum * (w / w[n // 2]).reshape(shape)
    return scipy.fft.fftshift(scipy.fft.ifftn(scipy.fft.ifftshift(spectrum))).astype(np.complex64)
