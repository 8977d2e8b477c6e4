"""Planar defects of fcc crystals: stacking faults (bounded by partial-dislocation loops) and
{111} twin boundaries.

A stacking fault is the surface of a loop whose Burgers vector is the fault vector R — a Shockley
partial R = a/6<112> lying in the {111} plane, or a Frank partial R = a/3<111> normal to it — so
its displacement is the loop's (Burgers formula) and jumps by R across the fault: the object's
phase jumps by G·R, 0 or ±2π/3 modulo 2π depending on the reflection.

Many parallel faults across a grain (:class:`FaultedStacking`) are described by their spacing
alone; what they do to diffraction is their ensemble average, a streak of every reflection with
non-integer G·R/2π along the fault normal.

A coherent {111} twin turns the lattice on one side into its mirror image through the plane.
The twinned domain scatters into the Bragg peak G only if G is also a reciprocal-lattice vector of
the twin (G mirrored through the plane is an fcc reflection: all indices odd or all even), as for
G parallel to the twin normal; otherwise its own peaks lie at least 1/3 <111>* away and, in
the continuum model, the domain is dark at G.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validate import check_vector
from ..errors import ConfigError
from .dislocations import DislocationLoop, StraightDislocation

__all__ = ["StackingFault", "FaultedStacking", "SplitDislocation", "TwinBoundary", "twin_shares_reflection",
           "equilibrium_separation"]


@dataclass(frozen=True, kw_only=True)
class StackingFault:
    """A planar fault patch bounded by a partial-dislocation loop whose Burgers vector is the
    fault vector R (sample frame, nm)."""

    loop: DislocationLoop
    kind: str = "intrinsic"

    def displacement(self, points, *, poisson_ratio) -> np.ndarray:
        """[nm] Displacement (3, ...): the bounding partial loop's field, jumping by R across the fault."""
        return self.loop.displacement(points, poisson_ratio=poisson_ratio)

    def directional_derivative(self, points, direction, *, poisson_ratio) -> np.ndarray:
        """∂u/∂s along the unit `direction`, (3, ...), away from the fault plane."""
        return self.loop.directional_derivative(points, direction, poisson_ratio=poisson_ratio)

    def plane_distance(self, points) -> np.ndarray:
        """[nm] Signed distance to the fault plane (positive on the loop-normal side)."""
        p = np.asarray(points, dtype=float)
        return np.tensordot(self.loop.normal, p - self.loop.center.reshape((3,) + (1,) * (p.ndim - 1)), axes=1)

    def inside(self, points) -> np.ndarray:
        """True where a point projects inside the fault patch."""
        return self.loop.inside_polygon(points)

    def describe(self) -> dict:
        """JSON-able ground truth entry."""
        d = self.loop.describe()
        return {"type": "stacking_fault", "kind": self.kind, "fault_vector_nm": d["burgers_nm"],
                "position_nm": d["position_nm"], "plane_normal": d["plane_normal"],
                "radius_nm": d["radius_nm"], "area_nm2": d["area_nm2"]}


@dataclass(frozen=True, kw_only=True)
class FaultedStacking:
    """Parallel stacking faults across a whole grain at random heights along their normal (a
    Poisson process of mean spacing `spacing`), as heavy deformation or growth leaves them in
    low-fault-energy fcc metals. Too many to place one by one in a voxel model, they enter the
    diffraction through their ensemble average: each reflection's node becomes a streak along the
    normal (:meth:`rod`). They bend nothing, so they add no distortion β.

    Attributes
    ----------
    normal : (3,) ndarray
        Unit normal of the fault planes (sample frame).
    fault_vector : (3,) ndarray
        [nm] R, the displacement of the crystal on the +normal side of each fault relative to the
        other side (a Shockley a/6<112> in the plane for an intrinsic fault).
    spacing : float
        [nm] Mean distance between faults along the normal (the fault probability per {111}
        layer is d₁₁₁ / spacing).
    plane_hkl : (3,) ndarray
        The fault planes' Miller indices in the crystal frame.
    """

    normal: np.ndarray
    fault_vector: np.ndarray
    spacing: float
    plane_hkl: np.ndarray

    def __post_init__(self):
        n = check_vector(self.normal, "fault normal", nonzero=True)
        object.__setattr__(self, "normal", n / np.linalg.norm(n))
        object.__setattr__(self, "fault_vector", check_vector(self.fault_vector, "fault vector", nonzero=True))
        object.__setattr__(self, "plane_hkl", check_vector(self.plane_hkl, "fault plane hkl", nonzero=True))
        if not float(self.spacing) > 0:
            raise ConfigError(f"the mean fault spacing must be positive [nm], got {self.spacing}")

    def rod(self, g):
        """The streak the faults make of the node `g` (..., 3) [rad/nm, same frame]: a Lorentzian
        along the normal, (centre, half width at half maximum) (...,) [rad/nm].

        A column along the normal that crosses N faults carries the phase e^{-iNα}, α = G·R; with
        N Poisson over a length Δ, the pair correlation is exp(-|Δ|(1 - cos α)/L - iΔ sin α/L)
        (L the spacing), whose Fourier transform along the normal is a Lorentzian centred at
        -sin α / L with half width (1 - cos α) / L (Warren, X-ray Diffraction, ch. 13). A
        reflection with G·R ∈ 2πℤ stays sharp."""
        alpha = np.asarray(g, dtype=float) @ self.fault_vector
        return -np.sin(alpha) / self.spacing, (1 - np.cos(alpha)) / self.spacing

    def rotated(self, rotation) -> "FaultedStacking":
        """The same faults with their vectors in another frame (`rotation` (3, 3) maps to it)."""
        m = np.asarray(rotation, dtype=float)
        return FaultedStacking(normal=m @ self.normal, fault_vector=m @ self.fault_vector, spacing=self.spacing,
                               plane_hkl=self.plane_hkl)

    def describe(self) -> dict:
        """JSON-able ground truth entry."""
        return {"type": "faulted_stacking", "plane_hkl": self.plane_hkl.tolist(), "plane_normal": self.normal.tolist(),
                "fault_vector_nm": self.fault_vector.tolist(), "mean_spacing_nm": float(self.spacing)}


def equilibrium_separation(partial_burgers, character_deg, *, shear_modulus, poisson_ratio, fault_energy) -> float:
    """[nm] Width of the stacking-fault ribbon between two Shockley partials in isotropic
    elasticity, d = μ b_p² (2-ν) / (8π γ (1-ν)) · (1 - 2ν cos 2β / (2-ν)), where b_p [nm] is
    the partials' length, β the angle between the perfect Burgers vector and the line
    (`character_deg`: 0 screw, 90 edge), μ [GPa] the shear modulus and γ [mJ/m²] the fault
    energy (Hirth & Lothe, Theory of Dislocations, 2nd ed., eq. 10-20)."""
    beta = np.radians(character_deg)
    nu = float(poisson_ratio)
    scale = 1e3 * shear_modulus * float(partial_burgers) ** 2 / fault_energy  # GPa nm² / (mJ/m²) → nm
    return float(scale * (2 - nu) / (8 * np.pi * (1 - nu)) * (1 - 2 * nu * np.cos(2 * beta) / (2 - nu)))


@dataclass(frozen=True, kw_only=True)
class SplitDislocation:
    """A perfect dislocation b = b1 + b2 dissociated in its {111} glide plane into two Shockley
    partials with a stacking-fault ribbon between them, the form a relaxed fcc dislocation takes.

    The leading partial (b1) sits on the line through `position`; its cut runs across the
    ribbon and on, and the trailing partial (b2) sits `separation` further on with its cut
    beyond. Across the ribbon u jumps by b1 (the fault vector: G·b1 = 0 or ±2π/3 mod 2π), beyond
    the pair by b1 + b2 = b (invisible). Neither partial's G·b is a multiple of 2π, so the phase
    winds by a fraction of a turn about each.

    Attributes
    ----------
    leading, trailing : StraightDislocation
        The partials (sample frame, nm).
    normal : (3,) ndarray
        Unit normal of the glide plane.
    separation : float
        [nm] Ribbon width.
    """

    leading: StraightDislocation
    trailing: StraightDislocation
    normal: np.ndarray
    separation: float

    @property
    def across(self) -> np.ndarray:
        """Unit in-plane direction from the leading to the trailing partial."""
        return np.cross(self.normal, self.leading.line)

    def displacement(self, points, *, poisson_ratio) -> np.ndarray:
        """[nm] Displacement (3, ...): the sum of the partials' fields."""
        return sum(p.displacement(points, poisson_ratio=poisson_ratio) for p in (self.leading, self.trailing))

    def directional_derivative(self, points, direction, *, poisson_ratio) -> np.ndarray:
        """∂u/∂s along the unit `direction` (3, ...), away from the cores."""
        return sum(p.directional_derivative(points, direction, poisson_ratio=poisson_ratio)
                   for p in (self.leading, self.trailing))

    def plane_distance(self, points) -> np.ndarray:
        """[nm] Signed distance to the glide plane."""
        p = np.asarray(points, dtype=float)
        return np.tensordot(self.normal, p - self.leading.position.reshape((3,) + (1,) * (p.ndim - 1)), axes=1)

    def inside(self, points) -> np.ndarray:
        """True where a point projects onto the ribbon (between the partials)."""
        p = np.asarray(points, dtype=float)
        s = np.tensordot(self.across, p - self.leading.position.reshape((3,) + (1,) * (p.ndim - 1)), axes=1)
        return (s >= 0) & (s <= self.separation)

    def distance(self, points) -> np.ndarray:
        """[nm] Distance to the nearer partial."""
        return np.minimum(self.leading.distance(points), self.trailing.distance(points))

    def describe(self) -> dict:
        """JSON-able ground truth entry."""
        b = self.leading.burgers + self.trailing.burgers
        return {"type": "split_dislocation", "burgers_nm": b.tolist(),
                "partials_nm": [self.leading.burgers.tolist(), self.trailing.burgers.tolist()],
                "fault_vector_nm": self.leading.burgers.tolist(), "line_direction": self.leading.line.tolist(),
                "position_nm": self.leading.position.tolist(), "plane_normal": self.normal.tolist(),
                "separation_nm": float(self.separation)}


def twin_shares_reflection(hkl, twin_plane) -> bool:
    """True if the fcc reflection `hkl` is also a reflection of the domain twinned on `twin_plane`.

    The twin's reciprocal lattice is the parent's mirrored through the plane; hkl is shared if
    its mirror image hkl - 2 (hkl·m)/(m·m) m is an allowed fcc reflection (indices all odd or
    all even)."""
    h = np.asarray(hkl, dtype=float)
    m = np.asarray(twin_plane, dtype=float)
    mirrored = h - 2 * (h @ m) / (m @ m) * m
    if not np.allclose(mirrored, np.round(mirrored), atol=1e-9):
        return False
    parity = np.mod(np.round(mirrored).astype(int), 2)
    return bool(np.all(parity == parity[0]))


@dataclass(frozen=True, kw_only=True)
class TwinBoundary:
    """A coherent twin boundary: the side n·(r - p) > 0 is the twinned domain.

    Attributes
    ----------
    normal : (3,) ndarray
        Unit plane normal, sample frame.
    point : (3,) ndarray
        [nm] A point of the plane (on an atomic {111} plane of the parent lattice).
    plane_hkl : (3,) ndarray
        The plane's Miller indices in the crystal frame (e.g. 1 1 1).
    """

    normal: np.ndarray
    point: np.ndarray
    plane_hkl: np.ndarray

    def __post_init__(self):
        n = check_vector(self.normal, "twin normal", nonzero=True)
        object.__setattr__(self, "normal", n / np.linalg.norm(n))
        object.__setattr__(self, "point", check_vector(self.point, "twin point"))
        hkl = check_vector(self.plane_hkl, "twin plane hkl", nonzero=True)
        if not np.allclose(np.abs(hkl), np.abs(hkl[0])):
            raise ConfigError(f"fcc twin boundaries lie on {{111}} planes, got ({hkl})")
        object.__setattr__(self, "plane_hkl", hkl)

    def plane_distance(self, points) -> np.ndarray:
        """[nm] Signed distance to the twin plane (positive in the twinned domain)."""
        p = np.asarray(points, dtype=float)
        return np.tensordot(self.normal, p - self.point.reshape((3,) + (1,) * (p.ndim - 1)), axes=1)

    def domain(self, points) -> np.ndarray:
        """True in the twinned domain."""
        return self.plane_distance(points) > 0

    def amplitude_factor(self, hkl) -> float:
        """Amplitude of the twinned domain in the Bragg peak `hkl` (1 if shared, else 0). The
        phase is 0 because the plane contains atoms of both lattices."""
        return 1.0 if twin_shares_reflection(hkl, self.plane_hkl) else 0.0

    def mirror(self, points) -> np.ndarray:
        """Mirror image of `points` (3, ...) through the twin plane."""
        p = np.asarray(points, dtype=float)
        return p - 2 * self.normal.reshape((3,) + (1,) * (p.ndim - 1)) * self.plane_distance(p)

    def describe(self) -> dict:
        """JSON-able ground truth entry."""
        return {"type": "twin_boundary", "plane_hkl": self.plane_hkl.tolist(), "plane_normal": self.normal.tolist(),
                "position_nm": self.point.tolist()}
