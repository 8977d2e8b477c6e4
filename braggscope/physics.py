"""The one place that owns braggscope's conventions: frames, units and the phase sign.

Frames and units
----------------
* Arrays are indexed (z, y, x) = axes (0, 1, 2). Every 3-vector (a Bragg vector G, a Burgers
  vector, a line direction, a position) is written with its components in that same order,
  in the *sample frame* of the array. Lengths are in nm, G in 1/nm with |G| = 2π/d_hkl.
* A crystal's orientation is a rotation matrix U whose columns are the cubic axes [100], [010],
  [001] written in the sample frame: v_sample = U @ v_crystal. U = identity puts [100] along z
  (axis 0), [010] along y and [001] along x.

Phase convention (DESIGN.md)
----------------------------
The object is ρ(r) = |ρ(r)| exp(i G·u(r)), the forward model is I = |FFT(ρ)|² with numpy's FFT
sign, F(Δq) = Σ_r ρ(r) exp(-i Δq·r), and the strain along G is ε = ∂(G·u/|G|)/∂r_G.
Because |Σ f exp(±i q·r)|² does not depend on the sign of the kernel, the physical kinematical
intensity of atoms at R + u(R) near G is I(G + δ) = |FFT(exp(-i G·u))(δ)|², so with this phase
sign the array pixel at frequency Δq holds the physical intensity at q = G - Δq. The atomistic
sum (:func:`braggscope.simulate.atomistic_intensity`) samples q = G - Δq so that both
diffraction models fill the same array with the same picture.
"""
from __future__ import annotations

import numpy as np

from ._validate import check_vector
from .errors import ConfigError

#: A Gaussian's full width at half maximum over its standard deviation, 2 √(2 ln 2): PSF and beam
#: widths are given as FWHM at the interface and used as σ inside.
FWHM_PER_SIGMA = float(2 * np.sqrt(2 * np.log(2)))

__all__ = [
    "FWHM_PER_SIGMA",
    "bragg_vector",
    "phase_from_displacement",
    "object_from_displacement",
    "wrap_phase",
]


def bragg_vector(hkl, *, lattice_parameter, orientation=None) -> np.ndarray:
    """Bragg (scattering) vector G of the reflection hkl in the sample frame.

    Parameters
    ----------
    hkl : (3,) sequence of int
        Miller indices of the reflection, in the crystal's cubic frame.
    lattice_parameter : float
        [nm] Cubic lattice parameter a.
    orientation : (3, 3) ndarray, optional
        Rotation U from crystal to sample frame (columns = cubic axes in (z, y, x)); identity
        if omitted.

    Returns
    -------
    g_vector : (3,) ndarray of float64
        [1/nm] G = U @ (2π/a) (h, k, l), components in (z, y, x) order; |G| = 2π/d_hkl.

    Raises
    ------
    ConfigError
        If hkl is 0 0 0 or not finite.
    """
    h = check_vector(hkl, "hkl")
    if not np.any(h):
        raise ConfigError("hkl = 0 0 0 is the direct beam, not a Bragg reflection; give e.g. --hkl 1 1 1")
    u = np.eye(3) if orientation is None else np.asarray(orientation, dtype=float)
    return u @ (2 * np.pi / float(lattice_parameter) * h)


def phase_from_displacement(displacement, g_vector) -> np.ndarray:
    """Object phase G·u (not wrapped).

    Parameters
    ----------
    displacement : (3, ...) ndarray
        [nm] Displacement field, components (z, y, x) along axis 0.
    g_vector : (3,) ndarray
        [1/nm] Bragg vector in the same frame.

    Returns
    -------
    phase : (...) ndarray of float64
        [rad] G·u.
    """
    u = np.asarray(displacement)
    g = np.asarray(g_vector, dtype=float)
    return np.tensordot(g, u, axes=(0, 0))


def wrap_phase(phase):
    """[rad] Phase wrapped into (-π, π]."""
    return np.pi - np.mod(np.pi - np.asarray(phase), 2 * np.pi)


def object_from_displacement(displacement, g_vector, *, amplitude) -> np.ndarray:
    """Complex crystal object ρ = amplitude · exp(i G·u), complex64.

    Parameters
    ----------
    displacement : (3, ...) ndarray
        [nm] Displacement field, components (z, y, x).
    g_vector : (3,) ndarray
        [1/nm] Bragg vector.
    amplitude : (...) ndarray
        Modulus of the object (the anti-aliased support, 0..1, or an electron density).

    Returns
    -------
    obj : (...) ndarray of complex64
    """
    phase = phase_from_displacement(displacement, g_vector)
    return (np.asarray(amplitude) * np.exp(1j * phase)).astype(np.complex64)
