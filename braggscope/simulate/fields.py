"""Smooth displacement fields: dilatation centres (point-defect clusters, small precipitates),
surface relaxation and random long-wavelength strain. All analytic at any point (nm)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validate import check_positive, check_vector

__all__ = ["DilatationCentre", "SurfaceRelaxation", "SmoothStrain"]


def _col(v, ndim):
    return np.asarray(v, dtype=float).reshape((3,) + (1,) * (ndim - 1))


@dataclass(frozen=True, kw_only=True)
class DilatationCentre:
    """A misfitting sphere (Eshelby inclusion; a cluster of interstitials if ΔV > 0, of
    vacancies if ΔV < 0).

    Outside the radius u = ΔV/(4π) r̂/r² (divergence-free: pure shear, no volume change),
    inside u = ΔV/(4π a³) r (uniform dilatation), continuous at r = a.

    Attributes
    ----------
    position : (3,) ndarray
        [nm] Centre, sample frame.
    radius : float
        [nm] Radius a of the cluster.
    volume_change : float
        [nm³] ΔV, the flux of u through any sphere enclosing the cluster.
    """

    position: np.ndarray
    radius: float
    volume_change: float

    def __post_init__(self):
        object.__setattr__(self, "position", check_vector(self.position, "position"))
        object.__setattr__(self, "radius", check_positive(self.radius, "radius", "nm"))

    def displacement(self, points, **_unused) -> np.ndarray:
        """[nm] Displacement (3, ...)."""
        p = np.asarray(points, dtype=float)
        d = p - _col(self.position, p.ndim)
        r = np.sqrt(np.sum(d * d, axis=0))
        scale = np.where(r > self.radius, 1 / np.maximum(r, 1e-12) ** 3, 1 / self.radius**3)
        return self.volume_change / (4 * np.pi) * d * scale

    def directional_derivative(self, points, direction, **_unused) -> np.ndarray:
        """∂u/∂s along the unit `direction`, (3, ...)."""
        p = np.asarray(points, dtype=float)
        d = p - _col(self.position, p.ndim)
        r = np.maximum(np.sqrt(np.sum(d * d, axis=0)), 1e-12)
        g = _col(direction, p.ndim)
        outside = g / r**3 - 3 * d * np.tensordot(direction, d, axes=1) / r**5
        return self.volume_change / (4 * np.pi) * np.where(r > self.radius, outside, g / self.radius**3)

    def describe(self) -> dict:
        """JSON-able ground truth entry."""
        return {"type": "dilatation_centre", "position_nm": self.position.tolist(), "radius_nm": self.radius,
                "volume_change_nm3": self.volume_change}


@dataclass(frozen=True, kw_only=True)
class SurfaceRelaxation:
    """Radial relaxation near the surface: u = s exp(-depth/λ) r̂, with depth the distance to
    the surface along the ray from the centre (continuous everywhere but at the centre).

    Attributes
    ----------
    amplitude : float
        [nm] s, outward (> 0) or inward (< 0) displacement at the surface.
    decay_length : float
        [nm] λ.
    shape : object
        The crystal shape (its ``radial_extent``).
    """

    amplitude: float
    decay_length: float
    shape: object

    def displacement(self, points, **_unused) -> np.ndarray:
        """[nm] Displacement (3, ...)."""
        p = np.asarray(points, dtype=float)
        r = np.sqrt(np.sum(p * p, axis=0))
        direction = p / np.maximum(r, 1e-12)
        depth = np.maximum(self.shape.radial_extent(direction) - r, 0)
        return self.amplitude * np.exp(-depth / self.decay_length) * direction

    def describe(self) -> dict:
        """JSON-able ground truth entry."""
        return {"type": "surface_relaxation", "amplitude_nm": self.amplitude, "decay_length_nm": self.decay_length}


@dataclass(frozen=True, kw_only=True)
class SmoothStrain:
    """Random long-wavelength displacement: a sum of plane-wave modes u = Σ a_k sin(k·r + φ_k)
    with wavelengths between `wavelength` and 3 × `wavelength` [nm] and RMS amplitude
    `amplitude` [nm]. Seeded by `rng`."""

    amplitude: float
    wavelength: float
    modes: int = 12
    rng: int = 0

    def _draw(self):
        g = np.random.default_rng(self.rng)
        dirs = g.normal(size=(self.modes, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        k = dirs * (2 * np.pi / (self.wavelength * g.uniform(1, 3, self.modes)))[:, None]
        amp = g.normal(size=(self.modes, 3)) * self.amplitude * np.sqrt(2 / (3 * self.modes))
        return k, amp, g.uniform(0, 2 * np.pi, self.modes)

    def displacement(self, points, **_unused) -> np.ndarray:
        """[nm] Displacement (3, ...)."""
        p = np.asarray(points, dtype=float)
        k, amp, phi = self._draw()
        out = np.zeros_like(p)
        for kk, aa, ph in zip(k, amp, phi):
            out += _col(aa, p.ndim) * np.sin(np.tensordot(kk, p, axes=1) + ph)
        return out

    def directional_derivative(self, points, direction, **_unused) -> np.ndarray:
        """∂u/∂s along the unit `direction`, (3, ...)."""
        p = np.asarray(points, dtype=float)
        k, amp, phi = self._draw()
        out = np.zeros_like(p)
        for kk, aa, ph in zip(k, amp, phi):
            out += _col(aa, p.ndim) * (kk @ direction) * np.cos(np.tensordot(kk, p, axes=1) + ph)
        return out

    def describe(self) -> dict:
        """JSON-able ground truth entry."""
        return {"type": "smooth_strain", "amplitude_nm": self.amplitude, "wavelength_nm": self.wavelength,
                "modes": self.modes, "seed": self.rng}


