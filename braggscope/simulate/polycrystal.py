"""Numerical polycrystals for Laue microdiffraction: Voronoi grains on a voxel grid, each with its
orientation, crystal structure, uniform elastic strain and the simulator's defects.

Sample frame: the project's (z, y, x) convention (:mod:`braggscope.physics`) with z the outward
normal of the sample surface; the grid's first layer touches the surface (z from 0 down to
-depth). A grain's orientation maps its crystal Cartesian frame to that sample frame, as a
:class:`~braggscope.simulate.Crystal`'s does.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from .._validate import check_grid_shape, check_positive
from ..errors import ConfigError
from .dislocations import StraightDislocation, straight_dislocation_derivatives
from .planar import FaultedStacking, TwinBoundary
from .structure import CrystalStructure, get_structure

__all__ = ["Grain", "Polycrystal", "voronoi_polycrystal", "random_dislocations", "twin_operation",
           "dislocation_density", "grain_defects", "GRAIN_CONTENTS"]

GRAIN_CONTENTS = ("perfect", "dislocations", "gnd", "twin", "faults")

_B110 = np.array([[1, 1, 0], [1, -1, 0], [1, 0, 1], [1, 0, -1], [0, 1, 1], [0, 1, -1]], float) / 2
_N111 = np.array([[1, 1, 1], [1, 1, -1], [1, -1, 1], [-1, 1, 1]], float) / np.sqrt(3)


@dataclass(frozen=True)
class Grain:
    """One grain.

    Attributes
    ----------
    orientation : (3, 3) ndarray
        Crystal Cartesian frame → sample frame (z, y, x).
    structure : CrystalStructure or str
    strain : (3, 3) ndarray
        Uniform elastic strain of the grain (sample frame, symmetric), e.g. from the neighbours.
    defects : tuple
        Simulator defects (dislocations, loops, dilatation centres, twin boundaries, faulted
        stacking; sample frame, nm).
    poisson_ratio : float, optional
        ν of the isotropic fields of the defects; the structure's own (Voigt average of its
        elastic constants) unless given.
    """

    orientation: np.ndarray
    structure: CrystalStructure | str = "Cu"
    strain: np.ndarray = field(default_factory=lambda: np.zeros((3, 3)))
    defects: tuple = ()
    poisson_ratio: float | None = None

    def __post_init__(self):
        u = np.asarray(self.orientation, dtype=float)
        if u.shape != (3, 3) or not np.allclose(u @ u.T, np.eye(3), atol=1e-6) or np.linalg.det(u) < 0:
            raise ConfigError("a grain's orientation must be a 3×3 proper rotation (crystal → sample frame)")
        eps = np.asarray(self.strain, dtype=float)
        if eps.shape != (3, 3) or not np.allclose(eps, eps.T):
            raise ConfigError("a grain's strain must be a symmetric 3×3 tensor")
        object.__setattr__(self, "orientation", u)
        object.__setattr__(self, "strain", eps)
        object.__setattr__(self, "structure", get_structure(self.structure))
        object.__setattr__(self, "defects", tuple(self.defects))
        if self.poisson_ratio is None:
            object.__setattr__(self, "poisson_ratio", self.structure.poisson_ratio)

    @property
    def twins(self) -> tuple:
        return tuple(d for d in self.defects if isinstance(d, TwinBoundary))

    @property
    def faults(self) -> tuple:
        return tuple(d for d in self.defects if isinstance(d, FaultedStacking))

    def distortion(self, points) -> np.ndarray:
        """Lattice distortion β = ∇u (..., 3, 3) [dimensionless], β_ij = ∂u_i/∂r_j in the sample
        frame, at `points` (3, ...) [nm]: the grain's strain plus every defect's closed-form gradient."""
        p = np.asarray(points, dtype=float)
        beta = np.broadcast_to(self.strain, p.shape[1:] + (3, 3)).copy()
        lines = [d for d in self.defects if isinstance(d, StraightDislocation)]
        if lines:  # all straight dislocations at once: (3 directions j, 3 components i, points)
            grad = straight_dislocation_derivatives(lines, p.reshape(3, -1), np.eye(3), poisson_ratio=self.poisson_ratio)
            beta += np.transpose(grad, (2, 1, 0)).reshape(p.shape[1:] + (3, 3))
        for defect in self.defects:
            if isinstance(defect, (TwinBoundary, StraightDislocation, FaultedStacking)):
                continue
            for j in range(3):
                axis = np.eye(3)[j]
                beta[..., :, j] += np.moveaxis(defect.directional_derivative(p, axis, poisson_ratio=self.poisson_ratio),
                                               0, -1)
        return beta

    def domains(self, points) -> np.ndarray:
        """Orientation domain (...) of `points` (3, ...): 0 in the parent, i + 1 on the twinned
        side of the grain's i-th twin boundary (the last one wins where they overlap)."""
        p = np.asarray(points, dtype=float)
        out = np.zeros(p.shape[1:], dtype=np.int32)
        for i, twin in enumerate(self.twins):
            out[twin.domain(p)] = i + 1
        return out

    def domain_orientation(self, domain) -> np.ndarray:
        """Orientation of domain `domain` (0: the parent; i + 1: mirrored across twin i)."""
        if domain == 0:
            return self.orientation
        return twin_operation(self.twins[domain - 1].normal) @ self.orientation

    def describe(self) -> dict:
        """JSON-able ground truth: orientation, structure, strain, defects."""
        return {"structure": self.structure.name, "orientation": self.orientation.tolist(),
                "strain": self.strain.tolist(), "defects": [d.describe() for d in self.defects]}


def twin_operation(normal) -> np.ndarray:
    """The twin law of fcc {111} twins as a proper rotation: 180° about the twin-plane normal
    (sample frame), which gives the same lattice as the mirror."""
    n = np.asarray(normal, dtype=float)
    n = n / np.linalg.norm(n)
    return 2 * np.outer(n, n) - np.eye(3)


def dislocation_density(defects, box_nm) -> float:
    """[1/m²] Length of the straight dislocations of `defects` inside the box `box_nm` (3,) [nm]
    (z ∈ [-box_z, 0], y and x centred), sampled every 1 nm along each line, per box volume."""
    box = np.asarray(box_nm, dtype=float)
    lo, hi = np.array([-box[0], -box[1] / 2, -box[2] / 2]), np.array([0.0, box[1] / 2, box[2] / 2])
    reach = float(np.linalg.norm(box)) + 1.0
    s = np.arange(-reach, reach, 1.0)
    length = 0.0
    for d in defects:
        if isinstance(d, StraightDislocation):
            along = d.position[:, None] + d.line[:, None] * s
            length += float(np.all((along >= lo[:, None]) & (along <= hi[:, None]), axis=0).sum())
    return length / float(np.prod(box)) * 1e18


@dataclass(frozen=True)
class Polycrystal:
    """Grains on a voxel grid.

    Attributes
    ----------
    grain_map : (nz, ny, nx) int ndarray
        Index into `grains` of every voxel (-1: no material).
    voxel_size : float
        [nm] Edge of the cubic voxels.
    grains : tuple of Grain
    """

    grain_map: np.ndarray
    voxel_size: float
    grains: tuple

    def __post_init__(self):
        gm = np.asarray(self.grain_map)
        if gm.ndim != 3 or not np.issubdtype(gm.dtype, np.integer):
            raise ConfigError("grain_map must be a 3-D integer array (nz, ny, nx)")
        if gm.max() >= len(self.grains):
            raise ConfigError(f"grain_map names grain {gm.max()} but only {len(self.grains)} grains are given")
        check_positive(self.voxel_size, "voxel_size", "nm")
        object.__setattr__(self, "grains", tuple(self.grains))

    @property
    def points(self) -> np.ndarray:
        """[nm] Voxel centres (3, nz, ny, nx), (z, y, x) components: z = -(i + ½) h below the
        surface, y and x centred on the grid."""
        nz, ny, nx = self.grain_map.shape
        h = self.voxel_size
        z = -(np.arange(nz) + 0.5) * h
        y = (np.arange(ny) - (ny - 1) / 2) * h
        x = (np.arange(nx) - (nx - 1) / 2) * h
        return np.stack(np.meshgrid(z, y, x, indexing="ij"))


def _textured_orientations(n, rng, texture):
    """`n` orientations with the crystal direction texture[0] along the sample normal within a
    Gaussian spread of texture[1] degrees (a fibre texture), or uniformly random if None."""
    if texture is None:
        return Rotation.random(n, random_state=rng).as_matrix()
    direction, spread = np.asarray(texture[0], dtype=float), float(texture[1])
    align, _ = Rotation.align_vectors([[1.0, 0.0, 0.0]], [direction / np.linalg.norm(direction)])
    about_normal = Rotation.from_rotvec(np.outer(rng.uniform(0, 2 * np.pi, n), [1.0, 0.0, 0.0]))
    tilt_axis = rng.normal(size=(n, 3))
    tilt_axis[:, 0] = 0
    tilt_axis /= np.linalg.norm(tilt_axis, axis=1, keepdims=True)
    tilt = Rotation.from_rotvec(tilt_axis * np.radians(rng.normal(0, spread, n))[:, None])
    return (tilt * about_normal * align).as_matrix()


def voronoi_polycrystal(shape, voxel_size, n_grains, *, structure="Cu", texture=None, strain_rms=5e-4,
                        seed=0) -> Polycrystal:
    """A Voronoi polycrystal of `n_grains` grains on a grid of `shape` (nz, ny, nx) voxels of
    `voxel_size` [nm], with random orientations (or a fibre `texture` = (crystal direction along
    the surface normal, spread [deg])) and random uniform elastic strains of RMS `strain_rms`."""
    shape = check_grid_shape(shape)
    if len(shape) != 3 or int(n_grains) < 1:
        raise ConfigError("voronoi_polycrystal needs a 3-D shape and at least one grain")
    rng = np.random.default_rng(seed)
    extent = np.array(shape) * voxel_size
    seeds = rng.uniform(0, 1, (int(n_grains), 3)) * extent
    seeds[:, 0] *= -1
    grid = Polycrystal(np.zeros(shape, dtype=np.int32), voxel_size, (None,))
    pts = grid.points.reshape(3, -1).T + np.array([0.0, extent[1] / 2, extent[2] / 2])
    _, owner = cKDTree(seeds).query(pts)
    orientations = _textured_orientations(int(n_grains), rng, texture)
    grains = []
    for u in orientations:
        e = rng.normal(0, strain_rms, (3, 3))
        grains.append(Grain(u, structure, strain=(e + e.T) / 2))
    return Polycrystal(owner.reshape(shape).astype(np.int32), voxel_size, tuple(grains))


def random_dislocations(orientation, lattice_parameter, density_m2, box_nm, *, rng, geometrically_necessary=False):
    """Straight a/2<110> dislocations at `density_m2` [1/m²] through a box of `box_nm` (3,)
    [nm] centred on the origin (z below the surface: the box spans z ∈ [-box_z, 0]).

    Statistically stored (default): random slip systems, lines and signs, so their rotations
    cancel on average and the spots broaden. Geometrically necessary: edge dislocations of one
    slip system and one sign (b ⊥ line, both in the glide plane), whose rotations add up to a
    lattice curvature κ = ρ b that streaks the spots."""
    box = np.asarray(box_nm, dtype=float)
    # the number of lines crossing the box's cross-section normal to their mean direction
    count = int(rng.poisson(density_m2 * 1e-18 * box[1] * box[2]))
    system = rng.integers(4)
    out = []
    for _ in range(count):
        plane = _N111[system if geometrically_necessary else rng.integers(4)]
        b_choices = _B110[np.abs(_B110 @ plane) < 1e-9]
        b = b_choices[0] if geometrically_necessary else b_choices[rng.integers(len(b_choices))]
        b = b * (1 if geometrically_necessary or rng.uniform() < 0.5 else -1)
        b_hat = b / np.linalg.norm(b)
        line = np.cross(plane, b_hat) if geometrically_necessary else _random_in_plane(plane, rng)
        position = rng.uniform(-0.5, 0.5, 3) * box - np.array([box[0] / 2, 0.0, 0.0])
        out.append(StraightDislocation(burgers=orientation @ b * lattice_parameter, line=orientation @ line,
                                       position=position))
    return out


def _path_in_box(axis, box):
    """[nm] Where the ray from the surface's centre along `axis` (sample frame, pointing into the
    sample) leaves the box `box` (z ∈ [-box_z, 0], y and x centred)."""
    a = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    if a[0] >= 0:
        raise ConfigError(f"the beam axis {a} does not point into the sample (its z component must be negative)")
    reach = np.array([box[0], box[1] / 2, box[2] / 2]) / np.maximum(np.abs(a), 1e-12)
    return a * reach.min()


def _random_in_plane(normal, rng):
    v = np.cross(normal, rng.normal(size=3))
    return v / np.linalg.norm(v)


def grain_defects(content, orientation, structure, box_nm, rng, *, beam_axis=None) -> list:
    """Random defects of one `content` (see GRAIN_CONTENTS) for a grain of `orientation`
    (crystal → sample) filling the box `box_nm` (z below the surface): 'perfect' none;
    'dislocations' stored ones at ρ log-uniform in 10¹³–3·10¹⁴ m⁻²; 'gnd' geometrically necessary
    ones at 3·10¹²–3·10¹³ m⁻² on 10¹²–10¹³ m⁻² stored ones; 'twin' a {111} twin boundary through
    the beam's axis at 30–70 % of the axis's path through the box, so that both domains are in the
    beam (`beam_axis`: the beam's direction in the sample frame, the axis entering at the
    surface's centre; without it, through the box's central line at 30–70 % of its depth);
    'faults' intrinsic stacking faults (a Shockley a/6<112> fault vector) on one {111} family at a
    mean spacing log-uniform in 5–50 nm (fault probabilities of 0.4–4 % per layer, a heavily
    faulted low-fault-energy metal: sparser faults streak the spots by less than a pixel). (Below
    about 10¹³ m⁻² stored dislocations hardly change the spots of a 100 nm voxel model.)"""
    structure = get_structure(structure)
    a = structure.lattice[0]
    box = np.asarray(box_nm, dtype=float)
    if content == "dislocations":
        return random_dislocations(orientation, a, 10 ** rng.uniform(13.0, 14.5), box, rng=rng)
    if content == "gnd":
        stored = random_dislocations(orientation, a, 10 ** rng.uniform(12.0, 13.0), box, rng=rng)
        return stored + random_dislocations(orientation, a, 10 ** rng.uniform(12.5, 13.5), box, rng=rng,
                                            geometrically_necessary=True)
    if content == "twin":
        plane = np.array([1.0, 1.0, 1.0]) * rng.choice([-1, 1], 3)
        point = np.array([-box[0], 0.0, 0.0]) if beam_axis is None else _path_in_box(beam_axis, box)
        return [TwinBoundary(normal=orientation @ plane / np.sqrt(3), point=rng.uniform(0.3, 0.7) * point,
                             plane_hkl=plane)]
    if content == "faults":
        plane = np.array([1.0, 1.0, 1.0]) * rng.choice([-1, 1], 3)
        shockley = np.roll([1.0, 1.0, -2.0], rng.integers(3)) * plane / 6
        return [FaultedStacking(normal=orientation @ plane / np.sqrt(3), fault_vector=orientation @ shockley * a,
                                spacing=10 ** rng.uniform(np.log10(5.0), np.log10(50.0)), plane_hkl=plane)]
    if content != "perfect":
        raise ConfigError(f"unknown grain content {content!r}; choose one of {', '.join(GRAIN_CONTENTS)}")
    return []
