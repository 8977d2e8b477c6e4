"""Geometry of a Bragg rocking scan: from the detector frame (rocking frame, detector row,
detector column) to q in the laboratory frame. Written once, used by the simulator's
detector-frame mode and by :mod:`braggscope.strain`.

Laboratory frame, components in (z, y, x) order like every vector in braggscope: z along the
incident beam, y vertical up, x horizontal. The detector arm is at elevation `delta` above the
horizontal plane and azimuth `gamma` towards x: k_f = k (cos δ cos γ, sin δ, cos δ sin γ).
Detector rows run downwards (-∂k̂_f/∂δ), columns towards +γ; one pixel subtends
pixel_size / distance. The sample rocks about `rocking_axis` ('x' for a vertical scattering
plane, as ID01's eta; 'y' for a horizontal one; or any lab direction, as a rocking circle that
the circles outside it have tilted) by `rocking_step` per frame. In the small-angle
approximation of BCDI, frame/pixel offsets k map linearly to q = Q + B k, Q = k_f - k_i.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validate import check_choice, check_positive
from .errors import ConfigError

__all__ = ["Geometry", "wavelength_nm", "object_voxel_from_q_basis", "scattered_direction", "HC_KEV_NM",
           "INCIDENT_DIRECTION"]

HC_KEV_NM = 1.239841984  # [keV·nm] h·c
INCIDENT_DIRECTION = np.array([1.0, 0.0, 0.0])  # k_i / k in the lab frame (z, y, x): the beam runs along z


def scattered_direction(delta=0.0, gamma=0.0) -> np.ndarray:
    """k_f / k (z, y, x) towards a detector at elevation `delta` and azimuth `gamma` [deg]."""
    d, g = np.radians(delta), np.radians(gamma)
    return np.array([np.cos(d) * np.cos(g), np.sin(d), np.cos(d) * np.sin(g)])


def wavelength_nm(energy_kev) -> float:
    """[nm] X-ray wavelength at `energy_kev` [keV]."""
    return HC_KEV_NM / check_positive(energy_kev, "energy", "keV")


@dataclass(frozen=True, kw_only=True)
class Geometry:
    """A rocking-curve measurement.

    Attributes
    ----------
    energy : float
        [keV] Photon energy.
    detector_distance : float
        [m] Sample-to-detector distance.
    pixel_size : float
        [µm] Detector pixel size.
    rocking_step : float
        [deg] Rocking-angle step between frames (sign = direction).
    delta : float
        [deg] Detector elevation (vertical 2θ component).
    gamma : float
        [deg] Detector azimuth (horizontal 2θ component).
    rocking_axis : {'x', 'y'} or (3,) sequence of float
        Lab axis of the rocking rotation: x or y, or a direction (z, y, x) (normalised on
        construction, kept as a tuple).
    """

    energy: float
    detector_distance: float
    pixel_size: float
    rocking_step: float
    delta: float = 0.0
    gamma: float = 0.0
    rocking_axis: str = "x"

    def __post_init__(self):
        check_positive(self.energy, "energy", "keV")
        check_positive(self.detector_distance, "detector_distance", "m")
        check_positive(self.pixel_size, "pixel_size", "µm")
        if not np.isfinite(self.rocking_step) or self.rocking_step == 0:
            raise ConfigError(f"`rocking_step` must be a non-zero angle [deg], got {self.rocking_step!r}")
        if isinstance(self.rocking_axis, str):
            check_choice(self.rocking_axis, "rocking_axis", {"x", "y"})
        else:
            axis = np.asarray(self.rocking_axis, float)
            if axis.shape != (3,) or not np.all(np.isfinite(axis)) or np.linalg.norm(axis) == 0:
                raise ConfigError(f"`rocking_axis` must be 'x', 'y' or a non-zero direction (z, y, x), "
                                  f"got {self.rocking_axis!r}")
            object.__setattr__(self, "rocking_axis", tuple(float(v) for v in axis / np.linalg.norm(axis)))

    @classmethod
    def for_reflection(cls, *, d_spacing, energy, detector_distance, pixel_size, rocking_step,
                       rocking_axis="x") -> "Geometry":
        """The geometry at the Bragg condition of planes of spacing `d_spacing` [nm], with the
        scattering plane vertical (rocking about x) or horizontal (rocking about y)."""
        lam = wavelength_nm(energy)
        s = lam / (2 * check_positive(d_spacing, "d_spacing", "nm"))
        if s >= 1:
            raise ConfigError(f"no Bragg condition: d = {d_spacing} nm is below λ/2 = {lam / 2:.4f} nm at {energy} keV")
        two_theta = float(np.degrees(2 * np.arcsin(s)))
        angles = {"delta": two_theta, "gamma": 0.0} if rocking_axis == "x" else {"delta": 0.0, "gamma": two_theta}
        return cls(energy=energy, detector_distance=detector_distance, pixel_size=pixel_size,
                   rocking_step=rocking_step, rocking_axis=rocking_axis, **angles)

    @property
    def wavelength(self) -> float:
        """[nm]"""
        return wavelength_nm(self.energy)

    @property
    def k(self) -> float:
        """[1/nm] Wavenumber 2π/λ."""
        return 2 * np.pi / self.wavelength

    @property
    def q_bragg(self) -> np.ndarray:
        """[1/nm] Q = k_f - k_i at the centre of the detector and of the rocking curve (z, y, x)."""
        return self.k * (scattered_direction(self.delta, self.gamma) - INCIDENT_DIRECTION)

    def q_basis(self) -> np.ndarray:
        """[1/nm] B (3×3): column j is the change of q per index step along array axis j
        (rocking frame, detector row, detector column)."""
        d, g = np.radians(self.delta), np.radians(self.gamma)
        row = -np.array([-np.sin(d) * np.cos(g), np.cos(d), -np.sin(d) * np.sin(g)])  # downwards
        col = np.array([-np.sin(g), 0.0, np.cos(g)])  # towards +gamma
        pixel_angle = self.pixel_size * 1e-6 / self.detector_distance
        axis = {"x": np.array([0.0, 0.0, 1.0]), "y": np.array([0.0, 1.0, 0.0])}.get(self.rocking_axis)
        axis = np.asarray(self.rocking_axis) if axis is None else axis
        # rotating the sample by +dω (right-handed) moves the crystal's reciprocal lattice by
        # dω (axis × Q); the frame then records q = Q - dω axis × Q relative to the crystal.
        # Components are (z, y, x), an odd permutation of (x, y, z): axis × Q = -np.cross(axis, Q).
        rock = np.radians(self.rocking_step) * np.cross(axis, self.q_bragg)
        return np.stack([rock, self.k * pixel_angle * row, self.k * pixel_angle * col], axis=1)

    def real_space_voxel(self, shape) -> np.ndarray:
        """[nm] The dual basis of B over N, 2π (Bᵀ)⁻¹ diag(1/N): the real-space voxel edges up to
        their sign (the object's own voxel, sign included, is :meth:`object_voxel`)."""
        return _dual_edges(self.q_basis(), shape)

    def object_voxel(self, shape) -> np.ndarray:
        """[nm] Edges (3×3, columns, lab frame) of the voxels of an object reconstructed from
        detector-frame data of `shape`: the voxel at index offset n from N // 2 sits at r = A n.

        Pixel k of the data holds q = Q + B k, so the array's own frequency step is -B (the
        phase convention puts q = G - Δq at frequency Δq) and A = -2π (Bᵀ)⁻¹ diag(1/N)."""
        return object_voxel_from_q_basis(self.q_basis(), shape, frame="detector")

    def oversampling(self, crystal_size) -> np.ndarray:
        """Oversampling ratio along each detector-frame axis for a crystal of `crystal_size`
        [nm]: the real-space period |a_j| of axis j (a_i·b_j = 2π δ_ij) over the size (≥ 2 is needed)."""
        dual = _dual_edges(self.q_basis(), (1, 1, 1))  # real-space period per axis (columns)
        return np.linalg.norm(dual, axis=0) / check_positive(crystal_size, "crystal_size", "nm")


def object_voxel_from_q_basis(q_basis, shape, *, frame) -> np.ndarray:
    """[nm] Voxel edges (columns) of an object reconstructed from data whose pixel k holds
    q = G - B k ('orthogonal' frame, the simulator's FFT grid) or q = Q + B k ('detector' frame,
    a rocking scan): A = ±2π (Bᵀ)⁻¹ diag(1/N), the sign that of the array's own frequency step."""
    b = np.asarray(q_basis, dtype=float)
    n = np.asarray(shape, dtype=float)
    if b.shape != (len(n), len(n)):
        raise ConfigError(f"q_basis {b.shape} does not fit a {len(n)}-D array")
    check_choice(frame, "frame", {"orthogonal", "detector"})
    return (1.0 if frame == "orthogonal" else -1.0) * _dual_edges(b, shape)


def _dual_edges(q_basis, shape) -> np.ndarray:
    """2π (Bᵀ)⁻¹ diag(1/N): columns a_j with a_i·b_j = 2π δ_ij / N_j."""
    n = np.asarray(shape, dtype=float)
    return 2 * np.pi * np.linalg.inv(np.asarray(q_basis, dtype=float).T) / n[None, :]
