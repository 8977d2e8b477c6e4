"""Corrections applied to a reconstruction before its strain is taken: apodisation, and the
refraction and absorption of the incident and exit beams inside the crystal.

Refraction: inside the crystal the index is n = 1 − δ + iβ, so the wave that reaches a voxel and
the wave it scatters towards the detector carry an extra phase −kδL and amplitude exp(−kβL), L
the length of crystal crossed by the two beams (L_in from the entry surface to the voxel along
k_i, L_out from the voxel to the exit surface along k_f). In the physical amplitude, a sum over
the crystal of exp(−iq·r), a voxel's displacement and its beams' paths enter as the factors
exp(−iG·u) and exp(−ikδL) alike; the convention ρ = |ρ| exp(iG·u) conjugates both, so the
reconstruction's phase is G·u + kδL: an apparent displacement kδL / |G| along G (for Au at 9 keV,
kδ ≈ 1.7 rad per µm of path). bcdi's strain script offers a correction (`correct_refraction`);
the README's strain benchmark compares the two.

>>> import numpy as np
>>> support = np.ones((1, 1, 6), bool)
>>> beam_path_length(support, 1.0, (0.0, 0.0, 1.0))[0, 0]  # [nm] crystal ahead of each voxel
array([5.5, 4.5, 3.5, 2.5, 1.5, 0.5])
"""
from __future__ import annotations

import numpy as np
import scipy.fft
from scipy import ndimage
from scipy.signal import windows

from braggscope._validate import check_choice, check_finite, check_positive
from braggscope.errors import ConfigError
from braggscope.geometry import INCIDENT_DIRECTION, wavelength_nm

__all__ = ["apodize", "beam_path_length", "refraction_path", "correct_refraction", "refractive_index", "refraction_share",
           "twin_by_refraction"]

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


def _unit(direction, name):
    d = check_finite(np.asarray(direction, dtype=float), name)
    norm = np.linalg.norm(d)
    if d.shape != (3,) or norm == 0:
        raise ConfigError(f"{name} must be a non-zero 3-vector (z, y, x), got {d.tolist()}")
    return d / norm


def beam_path_length(support, voxel, direction, *, step=0.5) -> np.ndarray:
    """[nm] For each voxel of `support`, the length of crystal that a ray from its centre
    crosses along `direction` before it leaves the array (every piece of the support on the way,
    as a beam crosses every piece of material); 0 outside the support.

    The ray is sampled every `step` voxels (along the axis it moves fastest on) at the middle of
    each segment, the support interpolated linearly between voxels (so that the path changes
    smoothly from one voxel to the next): the error is about half a voxel along the ray where it
    leaves the crystal.

    Parameters
    ----------
    support : (Z, Y, X) ndarray of bool
    voxel : float or (3, 3) array_like
        [nm] Cubic voxel edge, or the voxel edges as columns in the frame of `direction`
        (a detector-frame grid: :meth:`braggscope.geometry.Geometry.object_voxel`).
    direction : (3,) array_like
        Direction of the ray (z, y, x), any length.
    step : float
        [voxels] Sampling step.
    """
    from .field import voxel_matrix

    support = np.asarray(support, bool)
    if support.ndim != 3:
        raise ConfigError(f"beam paths need a 3-D support, got {support.ndim}-D")
    per_nm = np.linalg.solve(voxel_matrix(voxel, 3), _unit(direction, "direction"))  # [voxels per nm]
    h = check_positive(step, "step", "voxels") / np.abs(per_nm).max()  # [nm] per sample
    start = np.argwhere(support).astype(float)
    lo, hi = start.min(axis=0) - 1, start.max(axis=0) + 1
    solid = np.pad(support.astype(np.float32), 1)  # zeros around: the support falls to 0 past the array's edge
    inside = np.zeros(len(start))
    for k in range(int(np.ceil(np.linalg.norm(hi - lo) / (h * np.linalg.norm(per_nm)))) + 2):
        points = start + (k + 0.5) * h * per_nm
        if not np.any(np.all((points >= lo) & (points <= hi), axis=1)):
            break
        inside += ndimage.map_coordinates(solid, points.T + 1, order=1, mode="constant", cval=0.0)
    path = np.zeros(support.shape)
    path[support] = inside * h
    return path


def refraction_path(support, voxel, *, incident, scattered) -> np.ndarray:
    """[nm] L_in + L_out per voxel: crystal crossed by the incident beam before it reaches the
    voxel (along −`incident` from it) and by the scattered beam after it (along `scattered`), both
    directions (z, y, x) in the frame of `voxel`'s edges (:func:`beam_path_length`)."""
    return (beam_path_length(support, voxel, -_unit(incident, "incident direction"))
            + beam_path_length(support, voxel, _unit(scattered, "scattered direction")))


def correct_refraction(obj, support, *, voxel, energy, delta, beta=0.0, scattered,
                       incident=INCIDENT_DIRECTION) -> np.ndarray:
    """The object with the refraction phase kδL removed and the absorption exp(−kβL) undone,
    L the beams' path in the crystal (:func:`refraction_path`), k = 2π/λ.

    The object must be the physical one of the twin pair: the paths of its inverted twin run
    the other way. Apply it on the reconstruction's own grid, before the strain (the phase ramp
    that :func:`~braggscope.strain.strain_field` removes takes the linear part of kδL with it).

    Parameters
    ----------
    obj : (Z, Y, X) ndarray of complex
        Reconstructed object ρ = |ρ| exp(iG·u).
    support : ndarray of bool
        The crystal's voxels.
    voxel : float or (3, 3) array_like
        [nm] Voxel edge or edges (columns) in the lab frame.
    energy : float
        [keV] Photon energy.
    delta, beta : float
        Refractive index decrement and absorption index (:func:`refractive_index`).
    scattered, incident : (3,) array_like
        Directions of k_f and k_i (z, y, x) in the lab frame: k_f at the detector angles
        (:func:`~braggscope.geometry.scattered_direction`), k_i along z.

    Returns
    -------
    ndarray of complex64
    """
    from .field import _check

    obj, support = _check(obj, support)
    delta = check_finite(float(delta), "delta")
    beta = check_finite(float(beta), "beta")
    if delta < 0 or beta < 0:
        raise ConfigError(f"delta and beta of an X-ray index n = 1 - delta + i beta are >= 0, got {delta}, {beta}")
    k = 2 * np.pi / wavelength_nm(energy)
    path = refraction_path(support, voxel, incident=incident, scattered=scattered)
    factor = np.exp(k * (beta - 1j * delta) * path)
    return (obj * factor).astype(np.complex64)


def refraction_share(obj, support, *, voxel, energy, delta, scattered, incident=INCIDENT_DIRECTION) -> float:
    """c: the bulk phase (support less two surface layers, unwrapped) fitted by least squares as a
    linear ramp plus c·kδL (:func:`refraction_path`). The physical one of a twin pair carries kδL
    and gives c near 1; its twin carries the paths run the other way. The displacement field's own
    curvature projects onto L too, so c spreads about 1 (−0.85 to 2.1 on the physical twin of 24
    simulated 300 nm Au crystals with 0.02 nm of smooth strain; README); a phase curved more
    strongly than kδL varies decides c instead (on a 600 nm Au ball at 9 keV, 3 rad of (r·Ĝ/R)²
    turns it over; ad hoc)."""
    from .field import _check, surface_layers, unwrap_phase

    obj, support = _check(obj, support)
    bulk = support & ~surface_layers(support, 2)
    if bulk.sum() < 10:
        raise ConfigError(f"the support's bulk holds {int(bulk.sum())} voxels: too few to fit the refraction phase")
    path = refraction_path(support, voxel, incident=incident, scattered=scattered)[bulk]
    phase = unwrap_phase(np.angle(obj), support)[bulk]
    design = np.column_stack([path, np.argwhere(bulk), np.ones(len(path))]).astype(float)
    return float(np.linalg.lstsq(design, phase, rcond=None)[0][0] / (2 * np.pi / wavelength_nm(energy) * delta))


def twin_by_refraction(obj, support, *, voxel, energy, delta, scattered, incident=INCIDENT_DIRECTION) -> tuple:
    """(object, support, flipped, c kept, c of the other) of the twin pair ρ(r), ρ*(−r): the one
    whose phase follows the refraction more (the larger :func:`refraction_share`). Ad hoc on 24
    simulated crystals (README) it kept the physical one for 21; where both c are close the choice
    is a guess."""
    from braggscope.retrieval.postprocess import flip_twin

    obj = np.asarray(obj)
    twin, twin_support = flip_twin(obj), flip_twin(np.asarray(support, bool))
    keys = dict(voxel=voxel, energy=energy, delta=delta, scattered=scattered, incident=incident)
    c, c_twin = refraction_share(obj, support, **keys), refraction_share(twin, twin_support, **keys)
    if c_twin > c:
        return twin, twin_support, True, c_twin, c
    return obj, np.asarray(support, bool), False, c, c_twin


def refractive_index(material, energy) -> tuple:
    """(δ, β) of the fcc metal `material` at `energy` [keV], n = 1 − δ + iβ: Chantler's
    scattering factors (xraydb) at the density of four atoms per cubic cell of the material's
    lattice parameter; β from the total attenuation (photo-absorption and scattering both take
    photons out of the coherent beam), β = λ / (4π × attenuation length)."""
    import xraydb

    from braggscope.materials import get_material

    m = get_material(material)
    density = 4 * xraydb.atomic_mass(m.name) / (6.02214076e23 * (m.lattice_parameter * 1e-7) ** 3)  # [g/cm³]
    delta, _, attenuation_cm = xraydb.xray_delta_beta(m.name, density, check_positive(energy, "energy", "keV") * 1e3)
    return float(delta), float(wavelength_nm(energy) * 1e-7 / (4 * np.pi * attenuation_cm))
