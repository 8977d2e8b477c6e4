"""Crystal shapes: spheres, ellipsoids and faceted (Wulff) polyhedra in any orientation.

A shape is evaluated at arbitrary points (nm, sample frame, components (z, y, x) along axis 0),
so the same crystal fills a voxel grid (anti-aliased) and selects the atoms of an atomistic
model. Sizes are the diameter of the inscribed sphere (the distance between the closest pair of
opposite facets; the diameter for a sphere) [nm]. Shapes are centred on the origin.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from .._validate import check_positive
from ..errors import ConfigError

__all__ = [
    "Sphere", "Ellipsoid", "Polyhedron", "sphere", "ellipsoid", "cube", "octahedron",
    "cuboctahedron", "truncated_octahedron", "wulff", "random_faceted", "random_orientation",
    "orientation_from_axes", "family_normals",
]


def family_normals(hkl) -> np.ndarray:
    """Unit normals of all planes of the cubic family {hkl}, in the crystal frame, shape (M, 3)."""
    base = np.abs(np.asarray(hkl, dtype=float))
    out = set()
    for perm in itertools.permutations(base):
        for signs in itertools.product((1, -1), repeat=3):
            out.add(tuple(np.array(perm) * signs))
    normals = np.array(sorted(out), dtype=float)
    return normals / np.linalg.norm(normals, axis=1, keepdims=True)


def random_orientation(rng=None) -> np.ndarray:
    """Uniformly random rotation matrix (crystal → sample frame), seeded by `rng`."""
    return Rotation.random(random_state=np.random.default_rng(rng)).as_matrix()


def orientation_from_axes(crystal_direction, sample_axis=(1.0, 0.0, 0.0)) -> np.ndarray:
    """Rotation matrix that brings `crystal_direction` (e.g. the hkl of the reflection) onto
    `sample_axis` ((z, y, x) components; z by default), with the smallest rotation."""
    a = np.asarray(crystal_direction, dtype=float)
    b = np.asarray(sample_axis, dtype=float)
    if not np.any(a) or not np.any(b):
        raise ConfigError("orientation_from_axes needs two non-zero directions")
    rot, _ = Rotation.align_vectors(b[None] / np.linalg.norm(b), a[None] / np.linalg.norm(a))
    return rot.as_matrix()


@dataclass(frozen=True)
class Sphere:
    """Sphere of `diameter` [nm] centred on the origin."""

    diameter: float

    def distance_and_normal(self, points):
        """Signed distance to the surface [nm] (negative inside) and outward unit normal."""
        p = np.asarray(points, dtype=float)
        r = np.sqrt(np.sum(p * p, axis=0))
        normal = p / np.maximum(r, 1e-12)
        return r - self.diameter / 2, normal

    def radial_extent(self, directions):
        """[nm] Distance from the centre to the surface along unit `directions` (3, ...)."""
        return np.full(np.asarray(directions).shape[1:], self.diameter / 2)

    @property
    def volume(self) -> float:
        """[nm³]"""
        return np.pi / 6 * self.diameter**3


@dataclass(frozen=True)
class Ellipsoid:
    """Ellipsoid with full axis lengths `axes` [nm] along the rotated sample axes."""

    axes: tuple
    orientation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def distance_and_normal(self, points):
        """Approximate signed distance [nm] (exact on the surface's normal line at the
        vertices) and outward unit normal."""
        semi = np.asarray(self.axes, dtype=float) / 2
        local = np.tensordot(np.asarray(self.orientation).T, np.asarray(points, dtype=float), axes=1)
        scaled = local / semi.reshape((3,) + (1,) * (local.ndim - 1))
        rho = np.sqrt(np.sum(scaled**2, axis=0))
        grad = scaled / semi.reshape((3,) + (1,) * (local.ndim - 1))
        gnorm = np.maximum(np.sqrt(np.sum(grad**2, axis=0)), 1e-12)
        normal = np.tensordot(np.asarray(self.orientation), grad / gnorm, axes=1)
        return (rho - 1) * rho / gnorm, normal

    def radial_extent(self, directions):
        """[nm] Distance from the centre to the surface along unit `directions`."""
        semi = np.asarray(self.axes, dtype=float) / 2
        local = np.tensordot(np.asarray(self.orientation).T, np.asarray(directions, dtype=float), axes=1)
        s = local / semi.reshape((3,) + (1,) * (local.ndim - 1))
        return 1 / np.sqrt(np.sum(s * s, axis=0))

    @property
    def volume(self) -> float:
        """[nm³]"""
        return np.pi / 6 * float(np.prod(self.axes))


@dataclass(frozen=True)
class Polyhedron:
    """Convex polyhedron {r : n_i·r ≤ d_i} with unit normals in the sample frame.

    Attributes
    ----------
    normals : (M, 3) ndarray
        Outward unit facet normals, (z, y, x) components.
    distances : (M,) ndarray
        [nm] Distance of each facet from the centre.
    """

    normals: np.ndarray
    distances: np.ndarray

    def distance_and_normal(self, points):
        """Signed distance [nm] (exact inside, a lower bound outside) and the normal of the
        nearest facet."""
        p = np.asarray(points, dtype=float)
        flat = p.reshape(3, -1)
        best = np.full(flat.shape[1], -np.inf)
        idx = np.zeros(flat.shape[1], dtype=np.intp)
        for i, (n, d) in enumerate(zip(self.normals, self.distances)):
            s = n @ flat - d
            better = s > best
            best = np.where(better, s, best)
            idx[better] = i
        normal = self.normals[idx].T.reshape(p.shape)
        return best.reshape(p.shape[1:]), normal

    def radial_extent(self, directions):
        """[nm] Distance from the centre to the surface along unit `directions` (3, ...)."""
        d = np.asarray(directions, dtype=float)
        cos = np.tensordot(self.normals, d, axes=1)  # (M, ...)
        with np.errstate(divide="ignore"):
            t = np.where(cos > 1e-12, self.distances.reshape((-1,) + (1,) * (d.ndim - 1)) / cos, np.inf)
        return t.min(axis=0)

    @property
    def volume(self) -> float:
        """[nm³] Exact volume (convex hull of the facet-plane intersections)."""
        from scipy.spatial import ConvexHull, HalfspaceIntersection

        halfspaces = np.hstack([self.normals, -self.distances[:, None]])
        hs = HalfspaceIntersection(halfspaces, np.zeros(3))
        return float(ConvexHull(hs.intersections).volume)


def sphere(diameter) -> Sphere:
    """Sphere of `diameter` [nm]."""
    return Sphere(check_positive(diameter, "diameter", "nm"))


def ellipsoid(axes, orientation=None) -> Ellipsoid:
    """Ellipsoid with full axis lengths `axes` = (a_z, a_y, a_x) [nm] before rotation."""
    axes = tuple(check_positive(a, "ellipsoid axis", "nm") for a in axes)
    if len(axes) != 3:
        raise ConfigError(f"an ellipsoid needs 3 axis lengths, got {axes}")
    return Ellipsoid(axes, np.eye(3) if orientation is None else np.asarray(orientation, dtype=float))


def wulff(size, energies, orientation=None, *, perturbation=None) -> Polyhedron:
    """Wulff polyhedron: facet family {hkl} at a distance proportional to its surface energy.

    Parameters
    ----------
    size : float
        [nm] Inscribed-sphere diameter (closest facet-to-facet distance).
    energies : dict
        Surface energy of each family, e.g. ``{(1, 0, 0): 1.0, (1, 1, 1): 0.87}``
        (any unit; only ratios matter). Families that lie outside the others do not show.
    orientation : (3, 3) ndarray, optional
        Rotation U (crystal → sample frame).
    perturbation : (M,) ndarray, optional
        Relative change of each facet's distance (random faceted crystals).
    """
    size = check_positive(size, "size", "nm")
    if not energies:
        raise ConfigError("wulff needs at least one facet family with its surface energy")
    normals, gammas = [], []
    for hkl, gamma in energies.items():
        check_positive(gamma, f"surface energy of {hkl}")
        fam = family_normals(hkl)
        normals.append(fam)
        gammas.append(np.full(len(fam), float(gamma)))
    normals, gammas = np.vstack(normals), np.concatenate(gammas)
    if perturbation is not None:
        gammas = gammas * (1 + np.asarray(perturbation, dtype=float))
    u = np.eye(3) if orientation is None else np.asarray(orientation, dtype=float)
    distances = gammas * (size / 2) / gammas.min()
    return Polyhedron((u @ normals.T).T.copy(), distances)


def cube(size, orientation=None) -> Polyhedron:
    """Cube bounded by {100}; `size` [nm] is the edge length."""
    return wulff(size, {(1, 0, 0): 1.0}, orientation)


def octahedron(size, orientation=None) -> Polyhedron:
    """Regular octahedron bounded by {111}; `size` [nm] is the facet-to-facet distance."""
    return wulff(size, {(1, 1, 1): 1.0}, orientation)


def cuboctahedron(size, orientation=None) -> Polyhedron:
    """Cuboctahedron ({100} and {111}, vertices at cube-edge midpoints); `size` [nm] is the
    {100}-to-{100} distance."""
    return wulff(size, {(1, 0, 0): 1.0, (1, 1, 1): 2 / np.sqrt(3)}, orientation)


def truncated_octahedron(size, orientation=None) -> Polyhedron:
    """Truncated octahedron (square {100} and hexagonal {111} facets, the equilibrium shape
    of many fcc nanocrystals); `size` [nm] is the {111}-to-{111} distance."""
    return wulff(size, {(1, 0, 0): 2 / np.sqrt(3), (1, 1, 1): 1.0}, orientation)


def random_faceted(size, rng=None, *, orientation=None) -> Polyhedron:
    """A random Wulff-like fcc crystal: random {100}/{111}/{110} energies, each facet moved by
    up to ±12 %, in `orientation` (random if omitted; pass the crystal's own so the facets are
    its lattice planes). Seeded by `rng`; `size` [nm] as in :func:`wulff`."""
    rng = np.random.default_rng(rng)
    energies = {(1, 1, 1): 1.0, (1, 0, 0): rng.uniform(1.02, 1.25), (1, 1, 0): rng.uniform(1.15, 1.4)}
    orientation = random_orientation(rng) if orientation is None else orientation
    n_facets = 8 + 6 + 12
    return wulff(size, energies, orientation, perturbation=rng.uniform(-0.12, 0.12, n_facets))
