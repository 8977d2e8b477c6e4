"""Put a crystal and its defects on a voxel grid: the complex object and its ground truth."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._validate import check_grid_shape, check_positive, check_vector
from ..errors import ConfigError
from ..physics import object_from_displacement, phase_from_displacement, wrap_phase
from .anisotropic import AnisotropicDislocation
from .crystal import Crystal
from .dislocations import DislocationLoop, StraightDislocation
from .planar import SplitDislocation, StackingFault, TwinBoundary

__all__ = ["Sample", "grid_points", "support_fraction", "displacement_field", "displacement_gradient", "simulate_sample",
           "object_at"]

_LINE_DEFECTS = (StraightDislocation, AnisotropicDislocation, DislocationLoop)


def grid_points(shape, voxel_size) -> np.ndarray:
    """[nm] Coordinates (3, *shape) of voxel centres, components (z, y, x); the voxel at index
    N // 2 of each axis is the origin (the FFT centre). A 2-D grid (Y, X) lies in the plane z = 0."""
    shape = check_grid_shape(shape)
    h = check_positive(voxel_size, "voxel_size", "nm")
    axes = [(np.arange(n) - n // 2) * h for n in shape]
    grids = np.meshgrid(*axes, indexing="ij")
    if len(shape) == 2:
        grids = [np.zeros(shape), *grids]
    return np.stack(grids)


def support_fraction(shape_obj, points, voxel_size, *, rotation=None) -> np.ndarray:
    """Anti-aliased occupancy (0..1, float32) of voxels of `voxel_size` [nm] centred on `points`.

    The signed distance to the surface is turned into the fraction of the voxel inside the
    crystal by a linear ramp whose width is the voxel's extent along the surface normal
    (h·Σ|n_i| over the grid axes), exact in the mean for flat facets. `rotation` R: the points
    are a grid's turned back by Rᵀ (a crystal turned by R), whose axes the normals R n meet."""
    sd, normal = shape_obj.distance_and_normal(points)
    if rotation is not None:
        normal = np.tensordot(np.asarray(rotation, float), normal, axes=1)
    in_grid = normal[1:] if points.shape[0] == 3 and np.ndim(sd) == 2 else normal
    width = voxel_size * np.maximum(np.sum(np.abs(in_grid), axis=0), 1e-6)
    return np.clip(0.5 - sd / width, 0.0, 1.0).astype(np.float32)


def displacement_field(defects, points, *, poisson_ratio) -> np.ndarray:
    """[nm] Sum of the displacements (3, ...) of `defects` at `points` [nm]."""
    return displacement_and_strain(defects, points, None, poisson_ratio=poisson_ratio)[0]


def displacement_and_strain(defects, points, direction, *, poisson_ratio, step=1e-3):
    """Displacement u [nm] (3, ...) and strain ε = d̂·(d̂·∇)u along the unit `direction` d̂ at
    `points` [nm] (ε is None if `direction` is None).

    Each defect's closed-form derivative is used (no cut walls); fields without one get a
    central difference of `step` [nm]."""
    d = None if direction is None else np.asarray(direction, dtype=float)
    u = np.zeros(np.shape(points))
    eps = None if d is None else np.zeros(np.shape(points)[1:])
    for defect in defects:
        if isinstance(defect, TwinBoundary):
            continue
        if d is None:
            u += defect.displacement(points, poisson_ratio=poisson_ratio)
            continue
        if hasattr(defect, "displacement_and_derivative"):
            du_part, ddu = defect.displacement_and_derivative(points, d, poisson_ratio=poisson_ratio)
        else:
            du_part = defect.displacement(points, poisson_ratio=poisson_ratio)
            ddu = _derivative(defect, points, d, poisson_ratio, step)
        u += du_part
        eps += np.tensordot(d, ddu, axes=1)
    return u, eps


def displacement_gradient(defects, points, *, poisson_ratio, step=1e-3) -> np.ndarray:
    """J_ik = ∂u_i/∂r_k (dimensionless), shape (3, 3, ...), of the summed `defects` at `points`
    [nm] (3, ...): each field's closed-form derivative where it has one (no cut walls), else a
    central difference of `step` [nm]. The truth that a strain tensor from several reflections
    is held to."""
    j = np.zeros((3,) + np.shape(points))
    for defect in defects:
        if isinstance(defect, TwinBoundary):
            continue
        for k, e in enumerate(np.eye(3)):
            j[:, k] += _derivative(defect, points, e, poisson_ratio, step)
    return j


def _derivative(defect, points, d, poisson_ratio, step):
    if hasattr(defect, "directional_derivative"):
        return defect.directional_derivative(points, d, poisson_ratio=poisson_ratio)
    shift = (step * d).reshape((3,) + (1,) * (np.ndim(points) - 1))
    plus = defect.displacement(points + shift, poisson_ratio=poisson_ratio)
    return (plus - defect.displacement(points - shift, poisson_ratio=poisson_ratio)) / (2 * step)


@dataclass(frozen=True, kw_only=True)
class Sample:
    """A simulated crystal on a voxel grid with its ground truth (numpy arrays, sample frame).

    Attributes
    ----------
    obj : ndarray of complex64
        ρ = amplitude · exp(i G·u).
    amplitude : ndarray of float32
        Anti-aliased occupancy times the twin domains' visibility at G.
    support : ndarray of bool
        Voxels more than half inside the crystal.
    displacement : (3, ...) ndarray of float32
        [nm] u, components (z, y, x).
    phase : ndarray of float32
        [rad] G·u, not wrapped.
    strain : ndarray of float32
        ε = ∂(G·u/|G|)/∂r_G, the closed-form derivative of the analytic field (no cut walls).
    dislocation_mask, fault_mask, twin_mask : ndarray of bool
        Dislocation-core tubes, stacking-fault and twin-boundary planes (inside the support).
    defects : list of dict
        JSON-able description of every defect.
    """

    obj: np.ndarray
    amplitude: np.ndarray
    support: np.ndarray
    displacement: np.ndarray
    phase: np.ndarray
    strain: np.ndarray
    dislocation_mask: np.ndarray
    fault_mask: np.ndarray
    twin_mask: np.ndarray
    defects: list
    g_vector: np.ndarray
    hkl: tuple
    voxel_size: float
    material: str
    orientation: np.ndarray
    metadata: dict = field(default_factory=dict)


def _plane_mask(signed_distance, normal, voxel_size, ndim):
    width = 0.5 * voxel_size * np.sum(np.abs(normal[-ndim:]))
    return np.abs(signed_distance) <= width


def _twin_amplitude(twins, hkl, points, voxel_size, ndim):
    factor = np.ones(points.shape[1:])
    for t in twins:
        visible = t.amplitude_factor(hkl)
        width = voxel_size * np.sum(np.abs(t.normal[-ndim:]))
        inside = np.clip(0.5 + t.plane_distance(points) / width, 0, 1)
        factor *= 1 - (1 - visible) * inside
    return factor


def object_at(crystal: Crystal, defects, points, *, hkl, voxel_size) -> np.ndarray:
    """The object ρ = amplitude · exp(i G·u) (complex64) at any `points` [nm] (3, ...) of the
    crystal's frame, e.g. the sheared voxel centres of a detector-frame grid.

    `voxel_size` [nm] is the width of the anti-aliasing ramp of the occupancy (the grid's voxel
    edge; for a sheared grid the cube root of its volume). Returns an array shaped like
    ``points[0]``."""
    hkl = tuple(int(v) for v in check_vector(hkl, "hkl"))
    h = check_positive(voxel_size, "voxel_size", "nm")
    points = np.asarray(points, dtype=float)
    occupancy = support_fraction(crystal.shape, points, h)
    twins = [d for d in defects if isinstance(d, TwinBoundary)]
    amplitude = occupancy * _twin_amplitude(twins, hkl, points, h, 3)
    g = crystal.g_vector(hkl)
    occupied = occupancy > 0
    u = np.zeros(points.shape)
    u[:, occupied] = displacement_field(defects, points[:, occupied], poisson_ratio=crystal.material.poisson_ratio)
    return object_from_displacement(u, g, amplitude=amplitude).astype(np.complex64)


def _ground_truth_masks(defects, points, support, voxel_size, core_radius, g, hkl, min_contrast):
    """Boolean masks (shaped like `support`) of cores, faults and twins whose phase or amplitude
    contrast at G reaches `min_contrast` [rad]; `points` (3, M) are the support's voxel centres.

    Contrast: |G·b| for a dislocation core (its phase winds by G·b), |G·R| wrapped to [-π, π]
    for a fault of vector R, π for a twin boundary whose domain is dark at hkl (else 0)."""
    ndim = support.ndim
    seen = lambda c: abs(c) >= min_contrast
    disl, fault, twin = (np.zeros(points.shape[1], bool) for _ in range(3))

    def fault_plane(plane_distance, normal, inside, fault_vector):
        if not seen(wrap_phase(g @ fault_vector)):
            return False
        return _plane_mask(plane_distance(points), normal, voxel_size, ndim) & inside(points)

    for d in defects:
        if isinstance(d, _LINE_DEFECTS) and seen(g @ d.burgers):
            disl |= d.distance(points) <= core_radius
        elif isinstance(d, StackingFault):
            fault |= fault_plane(d.plane_distance, d.loop.normal, d.inside, d.loop.burgers)
            if seen(g @ d.loop.burgers):
                disl |= d.loop.distance(points) <= core_radius
        elif isinstance(d, SplitDislocation):
            fault |= fault_plane(d.plane_distance, d.normal, d.inside, d.leading.burgers)
            for partial in (d.leading, d.trailing):
                if seen(g @ partial.burgers):
                    disl |= partial.distance(points) <= core_radius
        elif isinstance(d, TwinBoundary) and seen(np.pi * (1 - d.amplitude_factor(hkl))):
            twin |= _plane_mask(d.plane_distance(points), d.normal, voxel_size, ndim)
    return tuple(_scatter(m, support) for m in (disl, fault, twin))


def _scatter(values, where):
    out = np.zeros(where.shape, values.dtype)
    out[where] = values
    return out


def simulate_sample(crystal: Crystal, defects=(), *, shape, voxel_size, hkl, core_radius=None,
                    strain_step=1e-3, min_contrast=0.0, rotation=None) -> Sample:
    """Simulate a defective crystal on a voxel grid.

    Parameters
    ----------
    crystal : Crystal
        Shape, material and orientation.
    defects : sequence
        Defects built with the crystal's methods (dislocations, loops, stacking faults, twins,
        dilatation centres, smooth fields); their displacements add up.
    shape : tuple of int
        Grid size (Z, Y, X) or (Y, X) for a 2-D section through the centre.
    voxel_size : float
        [nm] Cubic voxel edge.
    hkl : (3,) sequence of int
        Reflection, crystal frame.
    core_radius : float, optional
        [nm] Radius of the dislocation-core tube in the ground-truth mask (1.5 voxels).
    strain_step : float
        [nm] Step of the central difference along G for fields without a closed-form
        derivative (surface relaxation).
    min_contrast : float
        [rad] Leave out of the ground-truth masks the defects that show less contrast at this
        reflection (a core whose |G·b| is below it, a fault whose wrapped |G·R| is, a twin
        whose domain scatters into hkl): the invisible ones. 0 keeps every defect.
    rotation : (3, 3) array_like, optional
        R: the crystal with its shape and defects turned by R (as a goniometer turns the sample;
        :func:`~braggscope.simulate.bcdi.align_to_geometry` gives the R of a reflection): the
        grid's points are taken back into the crystal's frame by Rᵀ, and the displacement, G and
        orientation are turned by R (the defect list stays in the crystal's own sample frame; R
        is in the metadata as 'sample_rotation').

    Returns
    -------
    Sample
    """
    shape = check_grid_shape(shape)
    voxel_size = check_positive(voxel_size, "voxel_size", "nm")
    hkl = tuple(int(v) for v in check_vector(hkl, "hkl"))
    g = crystal.g_vector(hkl)
    turn = np.eye(3) if rotation is None else np.asarray(rotation, float)
    if turn.shape != (3, 3) or not np.allclose(turn @ turn.T, np.eye(3), atol=1e-6) or np.linalg.det(turn) < 0:
        raise ConfigError("rotation must be a 3×3 proper rotation matrix (sample → lab)")
    points = grid_points(shape, voxel_size)
    if rotation is not None:
        points = np.tensordot(turn.T, points, axes=1)  # the crystal's own frame
    occupancy = support_fraction(crystal.shape, points, voxel_size, rotation=None if rotation is None else turn)
    support = occupancy > 0.5
    if support.sum() < 2 ** len(shape):
        raise ConfigError(f"the crystal covers {int(support.sum())} voxel(s) of {voxel_size} nm on this grid: the "
                          "voxel is about as large as the crystal; use a smaller voxel or a larger crystal")
    nu = crystal.material.poisson_ratio
    occupied = occupancy > 0  # fields are evaluated where the object is not zero
    u_in, eps_in = displacement_and_strain(defects, points[:, occupied], g / np.linalg.norm(g),
                                           poisson_ratio=nu, step=strain_step)
    u = np.zeros(points.shape)
    u[:, occupied] = u_in
    strain = np.zeros(shape)
    strain[occupied] = eps_in
    twins = [d for d in defects if isinstance(d, TwinBoundary)]
    amplitude = (occupancy * _twin_amplitude(twins, hkl, points, voxel_size, len(shape))).astype(np.float32)
    core = 1.5 * voxel_size if core_radius is None else check_positive(core_radius, "core_radius", "nm")
    disl, fault, twin = _ground_truth_masks(defects, points[:, support], support, voxel_size, core, g, hkl,
                                            float(min_contrast))
    turned = {} if rotation is None else {"sample_rotation": turn.tolist()}
    return Sample(
        obj=object_from_displacement(u, g, amplitude=amplitude), amplitude=amplitude, support=support,
        displacement=(u if rotation is None else np.tensordot(turn, u, axes=1)).astype(np.float32),
        phase=phase_from_displacement(u, g).astype(np.float32),
        strain=(strain * support).astype(np.float32), dislocation_mask=disl, fault_mask=fault, twin_mask=twin,
        defects=[d.describe() for d in defects], g_vector=turn @ g, hkl=hkl, voxel_size=voxel_size,
        material=crystal.material.name, orientation=turn @ crystal.orientation,
        metadata={"poisson_ratio": nu, "core_radius_nm": core, "lattice_parameter_nm": crystal.lattice_parameter}
        | turned,
    )
