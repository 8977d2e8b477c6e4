"""One call from a crystal with defects to a BCDI data set with its ground truth."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from .._validate import check_choice, check_grid_shape
from ..errors import ConfigError
from ..geometry import Geometry
from .crystal import Crystal
from .detector import Detector, Measurement, measure
from .diffraction import atomistic_amplitude, continuum_amplitude_on, continuum_intensity, fcc_atoms, \
    orthogonal_q_basis
from .sample import Sample, simulate_sample

__all__ = ["BCDIData", "simulate_bcdi", "align_to_geometry"]


@dataclass(frozen=True, kw_only=True)
class BCDIData:
    """A simulated measurement and the truth behind it.

    Attributes
    ----------
    intensity : ndarray of float32
        [photons] Measured counts, centred on the Bragg peak.
    mask : ndarray of bool
        True = ignore (gaps, saturation).
    noiseless : ndarray of float32
        [photons] The crystal's expected counts (after the PSF, scaled to the photon budget),
        without noise, aliens, background or detector defects.
    q_basis : (D, D) ndarray
        [1/nm] q-step per index along each array axis (the pixel at index offset k holds the
        physical intensity at q = G - B k for the orthogonal frame, Q + B k for the detector frame).
    frame : {'orthogonal', 'detector'}
    model : {'continuum', 'atomistic'}
    sample : Sample
        Ground truth on the orthogonal voxel grid.
    geometry : Geometry or None
    measurement : Measurement
        With the truth of gaps, hot pixels, aliens, saturation.
    """

    intensity: np.ndarray
    mask: np.ndarray
    noiseless: np.ndarray
    q_basis: np.ndarray
    frame: str
    model: str
    sample: Sample
    geometry: Geometry | None
    measurement: Measurement


def align_to_geometry(crystal: Crystal, hkl, geometry: Geometry, *, tolerance=0.01) -> Crystal:
    """The crystal turned (smallest rotation) so that its G_hkl coincides with the geometry's Q.

    Raises ConfigError if |G| and |Q| differ by more than `tolerance` (relative): the detector
    is not at the Bragg angle of this reflection."""
    g = crystal.g_vector(hkl)
    q = geometry.q_bragg
    if abs(np.linalg.norm(g) - np.linalg.norm(q)) > tolerance * np.linalg.norm(g):
        two_theta = 2 * np.degrees(np.arcsin(np.linalg.norm(g) * geometry.wavelength / (4 * np.pi)))
        raise ConfigError(f"the detector is not at the Bragg angle of {tuple(hkl)}: |Q| = {np.linalg.norm(q):.3f} "
                          f"but |G| = {np.linalg.norm(g):.3f} 1/nm; set 2θ = {two_theta:.3f}° "
                          "(Geometry.for_reflection does it)")
    rot, _ = Rotation.align_vectors(q[None], g[None])
    return dataclasses.replace(crystal, orientation=rot.as_matrix() @ crystal.orientation)


def simulate_bcdi(crystal: Crystal, defects=(), *, hkl, shape, voxel_size, data_shape=None,
                  model="continuum", geometry: Geometry | None = None, detector: Detector = Detector(),
                  rng=None) -> BCDIData:
    """Simulate a BCDI measurement of a defective crystal.

    Parameters
    ----------
    crystal : Crystal
    defects : sequence
        From the crystal's methods.
    hkl : (3,) sequence of int
        Reflection.
    shape : tuple of int
        Real-space grid (Z, Y, X) of the ground truth.
    voxel_size : float
        [nm] Voxel edge of the ground truth.
    data_shape : tuple of int, optional
        Size of the diffraction array (default: `shape`; twice `shape` gives oversampling 2
        more than the crystal's own).
    model : {'continuum', 'atomistic'}
        FFT of the voxel object, or kinematical sum over the displaced fcc atoms.
    geometry : Geometry, optional
        If given, the data are in the detector frame of this rocking scan: the crystal, its
        shape and its defects are turned together (R, the smallest turn that puts G on the
        geometry's Q, as a goniometer would; the truth's 'sample_rotation'), so that every
        reflection of one crystal and defect list sees the same crystal. Otherwise the data are
        on the orthogonal FFT grid of the crystal as given.
    detector : Detector
        Photons, noise, gaps, aliens, ...
    rng : numpy.random.Generator or int, optional
        Seed of the detector's random draws.

    Returns
    -------
    BCDIData
    """
    check_choice(model, "diffraction model", {"continuum", "atomistic"})
    shape = check_grid_shape(shape)
    data_shape = shape if data_shape is None else check_grid_shape(data_shape, "data_shape")
    turn = None
    if geometry is not None:
        if len(shape) != 3:
            raise ConfigError("the detector frame needs a 3-D grid")
        turn = align_to_geometry(crystal, hkl, geometry).orientation @ crystal.orientation.T  # sample → lab
    sample = simulate_sample(crystal, defects, shape=shape, voxel_size=voxel_size, hkl=hkl, rotation=turn)
    q_basis = orthogonal_q_basis(data_shape, voxel_size) if geometry is None else geometry.q_basis()
    if geometry is None and model == "continuum":
        intensity = continuum_intensity(sample.obj, shape=data_shape)
    else:
        if len(shape) != 3:
            raise ConfigError("the atomistic model needs a 3-D grid")
        # the sums use the array's frequency basis: -B in the detector frame, where pixel k is q = Q + B k
        sum_basis = q_basis if geometry is None else -q_basis
        if model == "atomistic":
            atoms = fcc_atoms(crystal, defects)
            atoms = atoms if turn is None else turn @ atoms
            amp = atomistic_amplitude(atoms, g_vector=sample.g_vector, q_basis=sum_basis, shape=data_shape)
        else:
            amp = continuum_amplitude_on(sample.obj, voxel_size=voxel_size, q_basis=sum_basis, shape=data_shape)
        intensity = amp.real**2 + amp.imag**2
    m = measure(intensity, detector, rng=rng)
    return BCDIData(intensity=m.intensity, mask=m.mask, noiseless=m.expected, q_basis=q_basis, frame="orthogonal" if geometry is None else "detector", model=model,
                    sample=sample, geometry=geometry, measurement=m)
