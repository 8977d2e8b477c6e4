"""The full strain tensor of a crystal measured at several reflections.

One reflection gives the phase φ_j = G_j·u: the displacement along G_j only. Three or more
reflections whose G_j are not coplanar give all of u. With the wrap-free phase gradients
(:func:`~braggscope.strain.phase_gradient`) in Cartesian components, ∂_k φ_j = Σ_i G_ji ∂_k u_i,
so at every voxel the displacement gradient J_ik = ∂u_i/∂r_k is the least-squares solution of

    Φ = 𝐆 J,   Φ_jk = ∂_k φ_j,   𝐆 the (n, 3) matrix of the Bragg vectors,

J = 𝐆⁺ Φ with the pseudo-inverse 𝐆⁺ (the same for every voxel). The strain tensor is
ε = (J + Jᵀ)/2 and the lattice rotation ω = (J − Jᵀ)/2 [rad]. With more than three reflections
the misfit of Φ − 𝐆J measures how well the reconstructions agree with one displacement field
(a twin or a misregistered run shows there). No unwrapping is needed: a dislocation's cut, or a
2π wrap, is not in the gradients.

The reconstructions must lie on one grid in one frame, with each G_j written in that frame: the
sample's frame, reached by turning each scan's lab-frame object back through its goniometer
setting (:func:`braggscope.strain.to_orthogonal` with `rotation`, and
:func:`braggscope.io.beamline.circle_rotation` for the circles). Reconstructions of one
crystal come out shifted against each other and some as the twin ρ*(−r):
:func:`align_reflections` puts them on the first one.

References
----------
M. C. Newton, S. J. Leake, R. Harder and I. K. Robinson, Nat. Mater. 9, 120 (2010) (three
reflections, the displacement vector); F. Hofmann et al., Sci. Rep. 7, 45993 (2017) (six
reflections, the full strain tensor by least squares).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from braggscope._validate import check_positive
from braggscope.errors import ConfigError, ShapeError
from braggscope.metrics import register
from braggscope.physics import bragg_vector
from braggscope.retrieval.postprocess import flip_twin, remove_phase_ramp

from .field import _check, voxel_matrix
from .gradient import phase_gradient

__all__ = ["StrainTensor", "strain_tensor", "align_reflections", "OrientationFit", "orientation_from_reflections"]


@dataclass(frozen=True, kw_only=True)
class StrainTensor:
    """Displacement gradient, strain and rotation tensors of a crystal on one grid.

    Attributes
    ----------
    gradient : (3, 3, Z, Y, X) ndarray of float32
        J_ik = ∂u_i/∂r_k (dimensionless), components (z, y, x) of the grid's frame; NaN outside
        the support.
    support : (Z, Y, X) ndarray of bool
        Voxels inside every reflection's support.
    misfit : (Z, Y, X) ndarray of float32 or None
        RMS over the reflections and the three directions of (∇φ_j − (𝐆J)_j)/|G_j| (dimensionless,
        like a strain): how far the reflections are from one displacement field. None with three
        reflections (no redundancy).
    g_vectors : (n, 3) ndarray
        [1/nm] The Bragg vectors, in the grid's frame.
    voxel : (3, 3) ndarray
        [nm] Voxel edges (columns).
    ramp_gradient : (3, 3) ndarray
        The homogeneous J that the removed phase ramps held (zeros if none was removed): add it
        to `gradient` for the gradient relative to the lattice of the G_j.
    frame : str
        The grid's frame ('sample', 'lab', 'crystal').
    """

    gradient: np.ndarray
    support: np.ndarray
    misfit: np.ndarray | None
    g_vectors: np.ndarray
    voxel: np.ndarray
    ramp_gradient: np.ndarray
    frame: str = "sample"
    metadata: dict = field(default_factory=dict)

    @property
    def strain(self) -> np.ndarray:
        """(3, 3, ...) ε = (J + Jᵀ)/2."""
        return 0.5 * (self.gradient + np.swapaxes(self.gradient, 0, 1))

    @property
    def rotation(self) -> np.ndarray:
        """(3, 3, ...) [rad] ω = (J − Jᵀ)/2; ω_ik is the lattice's rotation in the (i, k) plane."""
        return 0.5 * (self.gradient - np.swapaxes(self.gradient, 0, 1))

    @property
    def dilatation(self) -> np.ndarray:
        """ΔV/V = tr ε."""
        return np.trace(self.gradient, axis1=0, axis2=1)

    def along(self, direction, other=None) -> np.ndarray:
        """ε_ab = â·ε·b̂ between the unit vectors along `direction` and `other` (= `direction`
        if None: the normal strain along it), components (z, y, x) of the grid's frame."""
        a = _unit(direction)
        b = a if other is None else _unit(other)
        return np.einsum("i,ik...,k->...", a, self.strain, b)

    def in_frame(self, rotation, frame=None) -> "StrainTensor":
        """The same tensors with components in the frame where v' = R v (same grid), e.g.
        R = Uᵀ for the crystal's cubic axes of an orientation U; `frame` names it (default: the
        name it had)."""
        r = np.asarray(rotation, float)
        if r.shape != (3, 3) or not np.allclose(r @ r.T, np.eye(3), atol=1e-6):
            raise ConfigError("the rotation must be a 3×3 orthogonal matrix")
        turned = np.einsum("ia,ab...,kb->ik...", r, self.gradient, r).astype(np.float32)
        return StrainTensor(gradient=turned, support=self.support, misfit=self.misfit, g_vectors=self.g_vectors @ r.T,
                            voxel=r @ self.voxel, ramp_gradient=r @ self.ramp_gradient @ r.T,
                            frame=frame or self.frame, metadata=self.metadata)


def _unit(v):
    v = np.asarray(v, float)
    norm = np.linalg.norm(v)
    if v.shape != (3,) or not norm > 0:
        raise ConfigError(f"a direction needs 3 components (z, y, x), not all zero; got {v.tolist()}")
    return v / norm


def _g_matrix(g_vectors, n_objects):
    """The (n, 3) matrix of the Bragg vectors, refused where they do not span three dimensions."""
    g = np.asarray(g_vectors, float)
    if g.shape != (n_objects, 3):
        raise ShapeError(f"need one G (3 components, z, y, x) per reflection: {n_objects} objects, G of shape "
                         f"{g.shape}", expected=(n_objects, 3), actual=g.shape)
    if n_objects < 3:
        raise ConfigError(f"the strain tensor needs at least 3 reflections whose G are not coplanar, got {n_objects}")
    s = np.linalg.svd(g / np.linalg.norm(g, axis=1, keepdims=True), compute_uv=False)
    if s[2] < 0.05 * s[0]:
        raise ConfigError("the reflections' G are (nearly) coplanar: the displacement normal to their plane is not "
                          f"measured (singular values of the unit G: {np.round(s, 3).tolist()})")
    return g


def strain_tensor(objects, supports, *, g_vectors, voxel_size, remove_ramp=True, jump=1.0, order=4,
                  frame="sample") -> StrainTensor:
    """Displacement gradient and strain tensor from n ≥ 3 reconstructions of one crystal.

    Parameters
    ----------
    objects : sequence of (Z, Y, X) ndarray of complex
        ρ_j = |ρ_j| exp(iG_j·u), on one grid and aligned (:func:`align_reflections`).
    supports : sequence of ndarray of bool, or one
        Each reconstruction's support (or one for all); the tensor is computed where all hold.
    g_vectors : (n, 3) array_like
        [1/nm] The Bragg vectors in the grid's frame (components z, y, x); not coplanar.
    voxel_size : float or (3, 3) array_like
        [nm] Cubic voxel edge, or the voxel edges as columns.
    remove_ramp : bool
        Remove each reconstruction's linear phase ramp first (as :func:`strain_field` does): the
        tensor is then relative to the crystal's mean lattice, and the removed part is in
        `ramp_gradient`. A ramp also holds each data set's centring error.
    jump, order
        As :func:`~braggscope.strain.phase_gradient` (planar-defect threshold [rad], stencil order).
    frame : str
        Name of the grid's frame, stored with the result.

    Returns
    -------
    StrainTensor
    """
    objects = list(objects)
    g = _g_matrix(g_vectors, len(objects))
    one = isinstance(supports, np.ndarray) and supports.ndim == 3
    supports = [supports] * len(objects) if one else list(supports)
    if len(supports) != len(objects):
        raise ShapeError(f"{len(supports)} supports for {len(objects)} objects", expected=len(objects),
                         actual=len(supports))
    checked = [_check(o, s) for o, s in zip(objects, supports)]
    if any(o.ndim != 3 or o.shape != checked[0][0].shape for o, _ in checked):
        raise ShapeError("the reconstructions must be 3-D and on one grid: shapes "
                         f"{[o.shape for o, _ in checked]}", expected=checked[0][0].shape, actual=None)
    support = np.logical_and.reduce([s for _, s in checked])
    if support.sum() < 8:
        raise ConfigError("the supports of the reflections do not overlap: align the reconstructions first "
                          "(align_reflections)")
    a = voxel_matrix(voxel_size, 3)
    box = tuple(slice(max(b.start - 2, 0), b.stop + 2) for b in ndimage.find_objects(support.astype(np.uint8))[0])
    phi, ramps = _phase_gradients([o[box] for o, _ in checked], support[box], a, remove_ramp, jump, order)
    pinv = np.linalg.pinv(g)  # (3, n)
    gradient = np.full((3, 3) + support.shape, np.nan, np.float32)
    gradient[(slice(None), slice(None)) + box] = np.tensordot(pinv.astype(np.float32), phi, axes=1)  # J = 𝐆⁺Φ
    valid = support & ~np.isnan(gradient).any(axis=(0, 1))
    gradient[:, :, ~valid] = np.nan
    misfit = None
    if len(objects) > 3:
        misfit = np.full(support.shape, np.nan, np.float32)
        misfit[box] = _misfit(phi, g)
    return StrainTensor(gradient=gradient, support=valid, misfit=misfit, g_vectors=g, voxel=a,
                        ramp_gradient=pinv @ ramps, frame=frame,
                        metadata={"reflections": len(objects), "ramps_removed": bool(remove_ramp)})


def _misfit(phi, g):
    """RMS over reflections and directions of (Φ − 𝐆𝐆⁺Φ)/|G_j|: the part of the phase gradients
    Φ (n, 3, ...) that no one displacement field explains."""
    rest = phi - np.tensordot((g @ np.linalg.pinv(g)).astype(np.float32), phi, axes=1)
    return np.sqrt(np.mean((rest / np.linalg.norm(g, axis=1).reshape(-1, 1, 1, 1, 1)) ** 2, axis=(0, 1)))


def _phase_gradients(objects, support, voxel, remove_ramp, jump, order):
    """(Φ (n, 3, ...) [rad/nm]: the Cartesian phase gradients ∇φ_j = (Aᵀ)⁻¹ d_j from the
    wrap-free steps d_j along the array axes, the removed ramps (n, 3) [rad/nm])."""
    to_cartesian = np.linalg.inv(voxel.T)
    phase_grads, ramps = [], []
    for obj in objects:
        ramp = np.zeros(3)
        if remove_ramp:
            obj, ramp = remove_phase_ramp(obj, support)
        d = phase_gradient(obj, support, jump=jump, order=order)
        phase_grads.append(np.tensordot(to_cartesian.astype(np.float32), d, axes=1))
        ramps.append(to_cartesian @ np.asarray(ramp))
    return np.stack(phase_grads), np.stack(ramps)


def align_reflections(objects, *, reference=0, g_vectors=None, voxel_size=None, threshold=0.3):
    """Reconstructions of one crystal at several reflections, shifted onto the `reference` one,
    each taken as it is or as its twin ρ*(−r).

    The shift is the sub-voxel peak of the amplitudes' cross-correlation
    (:func:`braggscope.metrics.register`, applied in Fourier space). The twins: given the
    `g_vectors` and `voxel_size`, the twins of the reflections whose G the others span (the
    redundant ones: all four {111}; of 111, -111, 1-11 and 200 all but 1-11) are chosen together
    as the combination whose strain tensor fits one displacement field best (the lowest median
    misfit of :func:`strain_tensor` over the supports at `threshold` × the amplitude's maximum),
    which a centrosymmetric crystal cannot defeat. Every other object takes its own choice
    between the registration errors of it and of its twin, which needs a crystal shape without a
    centre of symmetry.

    Returns
    -------
    aligned : list of ndarray of complex64
        The objects, shifted (and twinned where chosen).
    info : list of dict
        Per object: 'shift' (voxels, applied), 'twin' (bool), 'error' and 'twin_error' (the
        registration errors, 0 = amplitudes equal up to a scale), 'twin_rule' ('misfit' or
        'amplitude': which decided it), 'twin_undecided' (the amplitude decided it and the two
        errors lie within a factor UNDECIDED_TWIN of each other: a shape with a centre of symmetry,
        whose twin no other reflection checks); given `g_vectors` also 'misfit' (the chosen
        combination's median misfit, on every entry; None with three reflections).
    """
    objects = [np.asarray(o) for o in objects]
    if len({o.shape for o in objects}) != 1:
        raise ShapeError(f"the reconstructions must be on one grid: shapes {[o.shape for o in objects]}",
                         expected=objects[0].shape, actual=None)
    ref = objects[reference]
    fits = [[register(obj, ref) + (False,)] + ([] if i == reference else [register(flip_twin(obj), ref) + (True,)])
            for i, obj in enumerate(objects)]
    choice = [min(range(len(f)), key=lambda k: f[k][2]) for f in fits]  # by the amplitude
    checked, misfit = [False] * len(objects), None
    if g_vectors is not None:
        checked = [i != reference and r for i, r in enumerate(_redundant(_g_matrix(g_vectors, len(objects))))]
        choice, misfit = _twins_by_misfit(fits, choice, checked, g_vectors, voxel_size, threshold)
    aligned, info = [], []
    for f, k, by_misfit in zip(fits, choice, checked):
        moved, shift, _, is_twin = f[k]
        aligned.append(moved.astype(np.complex64))
        errors = sorted(candidate[2] for candidate in f)
        undecided = not by_misfit and len(f) > 1 and errors[1] < UNDECIDED_TWIN * errors[0]
        info.append({"shift": np.round(shift, 2).tolist(), "twin": is_twin, "error": f[0][2],
                     "twin_error": f[1][2] if len(f) > 1 else None, "twin_rule": "misfit" if by_misfit else "amplitude",
                     "twin_undecided": bool(undecided)} | ({} if misfit is None else {"misfit": misfit}))
    return aligned, info


UNDECIDED_TWIN = 1.25  # the amplitude tells a twin only where its registration error is this much worse


def _redundant(g):
    """Per reflection, whether the others' G still span three dimensions: only then does the
    misfit check that reflection's phase against the others."""
    return [np.linalg.matrix_rank(np.delete(g, j, axis=0) / np.linalg.norm(g), tol=1e-6) == 3 for j in range(len(g))]


def _twins_by_misfit(fits, choice, checked, g_vectors, voxel_size, threshold):
    """(the candidate index per object, the median misfit) of the twin combination of the
    `checked` objects whose tensor fits one displacement field best; the others keep `choice`."""
    from .field import support_from_amplitude

    g = _g_matrix(g_vectors, len(fits))
    if len(fits) < 4:  # no reflection to check another: nothing to choose by
        return choice, None
    voxel = voxel_matrix(voxel_size, 3)
    supports = [[support_from_amplitude(candidate[0], threshold) for candidate in f] for f in fits]
    # each candidate's phase gradient once, on its own support (the choice needs no common stencils)
    phis = [[_phase_gradients([c[0]], s, voxel, True, 1.0, 4)[0][0] for c, s in zip(f, fs)]
            for f, fs in zip(fits, supports)]
    best = None
    for flips in itertools.product(*[range(len(f)) if c else [k] for f, k, c in zip(fits, choice, checked)]):
        common = np.logical_and.reduce([s[k] for s, k in zip(supports, flips)])
        misfit = _misfit(np.stack([p[k] for p, k in zip(phis, flips)]), g)[common]
        misfit = float(np.median(misfit[~np.isnan(misfit)]))
        if best is None or misfit < best[1]:
            best = (list(flips), misfit)
    return best


@dataclass(frozen=True)
class OrientationFit:
    """The crystal orientation that best turns the reflections' cubic G into the measured ones.

    Attributes
    ----------
    orientation : (3, 3) ndarray
        U, crystal → measured frame (columns: the cubic axes), as :class:`braggscope.simulate.Crystal`
        and :func:`braggscope.strain.crystal_rotation` take it.
    misfit_deg : (n,) ndarray
        [deg] Angle between each measured G and U·G_hkl.
    lattice_strain : (n,) ndarray
        |G_hkl| / |G_measured| − 1: each reflection's mean d-spacing against the lattice parameter's.
    """

    orientation: np.ndarray
    misfit_deg: np.ndarray
    lattice_strain: np.ndarray


def orientation_from_reflections(hkls, g_vectors, *, lattice_parameter, weights=None) -> OrientationFit:
    """Orientation U of a cubic crystal from n ≥ 2 measured Bragg vectors of known hkl.

    The rotation that turns the unit vectors of the G_hkl = (2π/a)(h, k, l) onto those measured
    (Kabsch's least squares, scipy's ``Rotation.align_vectors``); the lengths give each
    reflection's lattice strain apart from it.

    Parameters
    ----------
    hkls : (n, 3) array_like of int
        Miller indices of the reflections, crystal frame.
    g_vectors : (n, 3) array_like
        [1/nm] The measured G (components z, y, x), e.g. each scan's G at the Bragg peak turned
        into the sample frame.
    lattice_parameter : float
        [nm] Cubic lattice parameter a.
    weights : (n,) array_like, optional
        Relative weights of the directions (1 each).

    Examples
    --------
    >>> from braggscope.physics import bragg_vector
    >>> from scipy.spatial.transform import Rotation
    >>> u = Rotation.from_euler("xyz", [10, 20, 30], degrees=True).as_matrix()
    >>> g = [bragg_vector(h, lattice_parameter=0.4, orientation=u) for h in [(1, 1, 1), (2, 0, 0)]]
    >>> fit = orientation_from_reflections([(1, 1, 1), (2, 0, 0)], g, lattice_parameter=0.4)
    >>> bool(np.allclose(fit.orientation, u)), fit.misfit_deg.round(6).tolist()
    (True, [0.0, 0.0])
    """
    hkl = np.asarray(hkls, float)
    g = np.asarray(g_vectors, float)
    if hkl.ndim != 2 or hkl.shape[1] != 3 or g.shape != hkl.shape:
        raise ShapeError(f"need one measured G per hkl, 3 components each: hkls {hkl.shape}, G {g.shape}",
                         expected=hkl.shape, actual=g.shape)
    a = check_positive(lattice_parameter, "lattice_parameter", "nm")
    cubic = np.stack([bragg_vector(h, lattice_parameter=a) for h in hkl])
    cu, gu = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in (cubic, g))
    if len(hkl) < 2 or np.linalg.svd(cu, compute_uv=False)[1] < 1e-3:
        raise ConfigError("an orientation needs at least two reflections that are not parallel (e.g. 111 and 200; "
                          "111 and 222 are the same direction)")
    turn, _ = Rotation.align_vectors(gu, cu, weights=weights)
    u = turn.as_matrix()
    fitted = cu @ u.T
    misfit = np.degrees(np.arctan2(np.linalg.norm(np.cross(fitted, gu), axis=1), np.sum(fitted * gu, axis=1)))
    strain = np.linalg.norm(cubic, axis=1) / np.linalg.norm(g, axis=1) - 1
    return OrientationFit(u, misfit, strain)
