"""Random crystals and defect sets for training and test data (every draw from `rng`)."""
from __future__ import annotations

import numpy as np

from .._validate import check_choice
from .crystal import Crystal
from .shapes import random_faceted, random_orientation, sphere, truncated_octahedron

__all__ = ["random_crystal", "random_defects", "DEFECT_KINDS", "REFLECTIONS"]

DEFECT_KINDS = ("dislocation", "loop", "stacking_fault", "twin", "dilatation", "split_dislocation")
# the low-index fcc reflections BCDI measures, in the crystal frame (training and test data draw from them)
REFLECTIONS = ((1, 1, 1), (1, 1, -1), (1, -1, 1), (-1, 1, 1), (2, 0, 0), (0, 2, 0), (0, 0, 2), (2, 2, 0), (2, 0, 2))

_B110 = np.array([[1, 1, 0], [1, -1, 0], [1, 0, 1], [1, 0, -1], [0, 1, 1], [0, 1, -1]], float) / 2
_N111 = np.array([[1, 1, 1], [1, 1, -1], [1, -1, 1], [-1, 1, 1]], float)


def random_crystal(rng=None, *, size=(60.0, 250.0), materials=("Pt", "Au", "Ni", "Cu")) -> Crystal:
    """A random fcc crystal: faceted (70 %), truncated octahedron (20 %) or sphere (10 %),
    inscribed diameter uniform in `size` [nm], random material and orientation."""
    rng = np.random.default_rng(rng)
    d = rng.uniform(*size)
    pick = rng.uniform()
    orientation = random_orientation(rng)
    if pick < 0.7:
        shape = random_faceted(d, rng, orientation=orientation)
    elif pick < 0.9:
        shape = truncated_octahedron(d, orientation)
    else:
        shape = sphere(d)
    return Crystal(shape, str(rng.choice(materials)), orientation)


def _point_inside(crystal, rng, fraction):
    """[nm] A random point within `fraction` of the way from the centre to the surface."""
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    reach = float(crystal.shape.radial_extent(direction[:, None])[0])
    return direction * reach * fraction * rng.uniform() ** (1 / 3)


def _glide_system(rng):
    """A random a/2<110> Burgers vector [a], a {111} plane holding it and a line in that plane."""
    b = _B110[rng.integers(6)] * rng.choice([-1, 1])
    planes = [n for n in _N111 if abs(n @ b) < 1e-9]
    n = planes[rng.integers(len(planes))]
    e1, e2 = b / np.linalg.norm(b), np.cross(n, b) / np.linalg.norm(np.cross(n, b))
    phi = rng.uniform(0, np.pi)
    return b, n, np.cos(phi) * e1 + np.sin(phi) * e2


def _one_defect(kind, crystal, rng, size, depth, elasticity="isotropic"):
    if kind == "dislocation":
        b, _, line = _glide_system(rng)
        return crystal.dislocation(b, line, _point_inside(crystal, rng, depth or 0.6), elasticity=elasticity)
    if kind == "split_dislocation":
        b, n, line = _glide_system(rng)
        natural = crystal.split_dislocation(b, line, n).separation
        return crystal.split_dislocation(b, line, n, _point_inside(crystal, rng, depth or 0.5),
                                         natural * 2 ** rng.uniform(-1, 2))
    if kind == "loop":
        n = _N111[rng.integers(4)]
        radius = rng.uniform(0.08, 0.22) * size
        return crystal.loop(n / 3 * rng.choice([-1, 1]), n, _point_inside(crystal, rng, 0.4), radius, sides=6,
                            elasticity=elasticity)
    if kind == "stacking_fault":
        n = _N111[rng.integers(4)]
        shifts = [v / 6 for v in (np.array([n[0], n[1], -2 * n[2]]), np.array([n[0], -2 * n[1], n[2]]),
                                  np.array([-2 * n[0], n[1], n[2]]))]
        return crystal.stacking_fault(n, shifts[rng.integers(3)], _point_inside(crystal, rng, 0.3),
                                      rng.uniform(0.15, 0.35) * size)
    if kind == "twin":
        return crystal.twin(_N111[rng.integers(4)], _point_inside(crystal, rng, 0.4))
    return crystal.dilatation(_point_inside(crystal, rng, 0.6), rng.uniform(0.02, 0.05) * size,
                              rng.uniform(-1, 1) * 0.01 * (0.05 * size) ** 3)


def random_defects(crystal: Crystal, rng=None, *, kinds=DEFECT_KINDS, count=(0, 3), size=None,
                   depth=None, elasticity="isotropic") -> list:
    """A random list of defects for `crystal`: a number in `count` (inclusive range) of
    defects of the given `kinds`, sized relative to the crystal (`size` [nm], default its
    inscribed diameter). A split dislocation's ribbon is 0.5 to 4 times its isotropic
    equilibrium width (stress and surfaces widen or narrow real ones). Straight dislocations
    pass within `depth` of the way from the centre to the surface (default 0.6, split 0.5). The
    fields of straight dislocations and loops are in `elasticity` (:meth:`Crystal.dislocation`,
    :meth:`Crystal.loop`), the other defects' isotropic."""
    rng = np.random.default_rng(rng)
    for k in kinds:
        check_choice(k, "defect kind", set(DEFECT_KINDS))
    size = 2 * float(crystal.shape.radial_extent(np.eye(3)).min()) if size is None else float(size)
    n = int(rng.integers(count[0], count[1] + 1))
    return [_one_defect(str(rng.choice(kinds)), crystal, rng, size, depth, elasticity) for _ in range(n)]
