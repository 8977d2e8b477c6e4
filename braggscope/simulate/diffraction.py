"""Kinematical Bragg diffraction of a crystal: continuum (FFT of the object) and atomistic
(sum over the displaced atoms), on an orthogonal grid or on the detector frame of a rocking scan.

Both fill arrays in the convention of :mod:`braggscope.physics`: centred (zero frequency at index
N // 2), pixel Δq holding the physical intensity at q = G - Δq, so that I = |FFT(ρ)|² for
ρ = |ρ| exp(iG·u). Any linear q-grid (an orthogonal one, or the non-orthogonal detector frame
whose columns are the q-steps per rocking frame and per detector pixel) is a type-1 non-uniform
FFT of the scatterers (finufft): A(k) = Σ_j c_j exp(-i (B k)·r_j).

References
----------
Atomistic kinematical BCDI: M. Dupraz et al., J. Appl. Cryst. 48, 621 (2015),
doi:10.1107/S1600576715005324; NUFFT: A. H. Barnett, J. Magland and L. af Klinteberg,
SIAM J. Sci. Comput. 41, C479 (2019), doi:10.1137/18M120885X.
"""
from __future__ import annotations

import numpy as np
import scipy.fft

from .._validate import check_grid_shape, check_positive
from ..errors import ConfigError, ShapeError
from .crystal import Crystal
from .planar import TwinBoundary
from .sample import displacement_field

__all__ = ["continuum_intensity", "kinematic_amplitude", "orthogonal_q_basis", "fcc_atoms", "circumradius",
           "atomistic_amplitude", "continuum_amplitude_on", "to_ase_atoms"]


def _pad_centred(obj, shape):
    shape = tuple(shape)
    if len(shape) != obj.ndim or any(s < o for s, o in zip(shape, obj.shape)):
        raise ShapeError(f"the diffraction grid {shape} must be at least the object's {obj.shape} "
                         "in every dimension", expected=obj.shape, actual=shape)
    out = np.zeros(shape, dtype=np.complex64)
    start = [s // 2 - o // 2 for s, o in zip(shape, obj.shape)]
    out[tuple(slice(a, a + o) for a, o in zip(start, obj.shape))] = obj
    return out


def continuum_intensity(obj, *, shape=None, oversampling=None, workers=-1) -> np.ndarray:
    """Diffracted intensity |FFT(ρ)|² of the object, centred, float32.

    Parameters
    ----------
    obj : (Z, Y, X) or (Y, X) ndarray of complex
        The object ρ, its origin at index N // 2.
    shape : tuple of int, optional
        Size of the diffraction array (the object is zero-padded, centred).
    oversampling : float, optional
        Alternatively, the padding factor per axis (2 doubles each size).
    workers : int
        Threads of scipy.fft (-1: all cores).

    Returns
    -------
    intensity : ndarray of float32
        |Σ_r ρ(r) exp(-i Δq·r)|², zero frequency at index N // 2 (Parseval: sum = N Σ|ρ|²).
    """
    obj = np.asarray(obj)
    if obj.ndim not in (2, 3):
        raise ShapeError(f"`obj` must be 2-D or 3-D, got shape {obj.shape}", expected="(Z, Y, X)", actual=obj.shape)
    if shape is None:
        factor = 1.0 if oversampling is None else check_positive(oversampling, "oversampling")
        shape = tuple(int(round(n * factor)) for n in obj.shape)
    padded = _pad_centred(obj, shape)
    amp = scipy.fft.fftshift(scipy.fft.fftn(scipy.fft.ifftshift(padded), workers=workers))
    return (amp.real**2 + amp.imag**2).astype(np.float32)


def orthogonal_q_basis(shape, voxel_size) -> np.ndarray:
    """[1/nm] q-step per array index of the FFT of a (Z, Y, X) or (Y, X) grid of `voxel_size`
    [nm]: diag(2π / (N_i h)). Columns are the steps along each array axis."""
    shape = check_grid_shape(shape)
    return np.diag([2 * np.pi / (n * check_positive(voxel_size, "voxel_size", "nm")) for n in shape])


def kinematic_amplitude(positions, weights, *, q_basis, shape, eps=1e-7) -> np.ndarray:
    """A(k) = Σ_j c_j exp(-i (B k)·r_j) on the centred integer grid k of `shape` (finufft type 1).

    Parameters
    ----------
    positions : (3, M) ndarray
        [nm] Scatterer positions r_j, components (z, y, x).
    weights : (M,) ndarray of complex
        c_j (form factor times exp(iG·r_j) for atoms; ρ for voxels).
    q_basis : (3, 3) ndarray
        [1/nm] B, the q-step per index along each array axis (columns).
    shape : tuple of 3 int
        Size of the output grid.
    eps : float
        Relative accuracy of the NUFFT.

    Returns
    -------
    amplitude : ndarray of complex128, `shape`
        Zero frequency at index N // 2.

    Notes
    -----
    (B k)·r = k·(Bᵀ r): the sum is a type-1 NUFFT at the points x = Bᵀ r, which must fit in one
    period 2π (the object must be smaller than the real-space field of view 2π/|B|).
    """
    import finufft

    x = np.asarray(q_basis, dtype=float).T @ np.asarray(positions, dtype=float)
    if np.abs(x).max() >= np.pi:
        raise ConfigError("the object is larger than the field of view of this q-grid (it would alias); "
                          "use a finer q-step (larger array or smaller pixel) or a smaller crystal")
    c = np.ascontiguousarray(weights, dtype=np.complex128)
    amp = finufft.nufft3d1(x[0], x[1], x[2], c, n_modes=tuple(shape), isign=-1, eps=eps)
    # finufft's modes run from -N/2, as fftshift's; index N // 2 is k = 0 for odd and even N.
    return amp


def continuum_amplitude_on(obj, *, voxel_size, q_basis, shape) -> np.ndarray:
    """Continuum amplitude of the voxel object `obj` (3-D, origin at N // 2) on any linear q-grid
    (for instance a rocking scan's detector frame), by a NUFFT over the non-zero voxels."""
    from .sample import grid_points

    obj = np.asarray(obj)
    occupied = obj != 0
    points = grid_points(obj.shape, voxel_size)[:, occupied]
    return kinematic_amplitude(points, obj[occupied], q_basis=q_basis, shape=shape)


def fcc_atoms(crystal: Crystal, defects=(), *, max_atoms=20_000_000) -> np.ndarray:
    """[nm] Positions (3, M) of the atoms of `crystal` displaced by the defects' field.

    The fcc lattice (an atom at the crystal centre) is cut by the crystal's shape; in twinned
    domains the atoms are the mirror images of the parent lattice through the twin plane.
    """
    a = crystal.lattice_parameter
    reach = circumradius(crystal.shape) + a
    n = int(np.ceil(reach / a))
    if 4 * (2 * n + 1) ** 3 > 8 * max_atoms:
        raise ConfigError(f"the crystal holds more than {max_atoms} atoms; use the continuum model or a smaller crystal")
    cells = np.arange(-n, n + 1)
    grid = np.stack(np.meshgrid(cells, cells, cells, indexing="ij")).reshape(3, -1).astype(float)
    grid = grid[:, np.sum(grid * grid, axis=0) * a * a <= reach * reach]
    basis = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]).T
    lattice = crystal.orientation @ ((grid[:, None, :] + basis[:, :, None]).reshape(3, -1) * a)
    twins = [d for d in defects if isinstance(d, TwinBoundary)]
    for twin in twins:
        mirrored = twin.mirror(lattice[:, ~twin.domain(lattice)])
        lattice = np.hstack([lattice[:, ~twin.domain(lattice)], mirrored[:, twin.domain(mirrored)]])
    sd, _ = crystal.shape.distance_and_normal(lattice)
    atoms = lattice[:, sd <= 0]
    if atoms.shape[1] > max_atoms:
        raise ConfigError(f"the crystal holds {atoms.shape[1]} atoms, more than max_atoms={max_atoms}")
    return atoms + displacement_field(defects, atoms, poisson_ratio=crystal.material.poisson_ratio)


def circumradius(shape_obj, n_directions=4000) -> float:
    """[nm] Largest centre-to-surface distance of a shape, from a Fibonacci sphere of directions
    (+3 % for the directions in between)."""
    i = np.arange(n_directions) + 0.5
    polar = np.arccos(1 - 2 * i / n_directions)
    azimuth = np.pi * (1 + 5**0.5) * i
    d = np.stack([np.cos(polar), np.sin(polar) * np.sin(azimuth), np.sin(polar) * np.cos(azimuth)])
    return 1.03 * float(np.max(shape_obj.radial_extent(d)))


def to_ase_atoms(atoms, crystal: Crystal):
    """The displaced atoms [nm] (3, M) as an ``ase.Atoms`` (Å, x y z order) for relaxation or
    export (``ase.io.write``); needs the optional package ASE (``pip install 'braggscope[atomistic]'``)."""
    try:
        from ase import Atoms
    except ImportError:
        from ..errors import OptionalDependencyError

        raise OptionalDependencyError("ase", "atomistic") from None
    positions = 10.0 * np.asarray(atoms, dtype=float)[::-1].T  # nm → Å, (z, y, x) → (x, y, z)
    return Atoms(symbols=[crystal.material.name] * positions.shape[0], positions=positions)


def atomistic_amplitude(atoms, *, g_vector, q_basis, shape, form_factor=1.0, eps=1e-7) -> np.ndarray:
    """Kinematical amplitude of `atoms` [nm] (3, M) around the Bragg vector `g_vector` [1/nm].

    The pixel at index offset k holds A = Σ_j f exp(i (G - B k)·r_j), the physical amplitude
    at q = G - Bk (see :mod:`braggscope.physics`), so |A|² matches :func:`continuum_intensity`
    of the same crystal up to the atomic density per voxel.
    """
    atoms = np.asarray(atoms, dtype=float)
    weights = form_factor * np.exp(1j * (np.asarray(g_vector) @ atoms))
    return kinematic_amplitude(atoms, weights, q_basis=q_basis, shape=shape, eps=eps)
