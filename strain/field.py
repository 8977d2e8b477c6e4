"""Phase → displacement → strain of one reconstructed crystal.

The strain along G is ε = ∂u_G/∂r_G with u_G = φ/|G| (DESIGN.md's phase convention
ρ = |ρ| exp(iG·u)), so ε = Ĝ·∇φ/|G|. The gradient comes from the wrapped phase steps
(:func:`~braggscope.strain.phase_gradient`) on the array's own grid, which may be
non-orthogonal: with the voxel edges a_j as the columns of A, the per-voxel derivatives
d_j = a_j·∇φ give ∇φ = (Aᵀ)⁻¹ d and ε = (A⁻¹ Ĝ)·d / |G|. Only the displacement map needs
an unwrapped phase; the strain never does.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from braggscope._validate import check_choice, check_finite, check_positive
from braggscope.errors import ConfigError, ShapeError
from braggscope.retrieval.postprocess import remove_phase_ramp

from .gradient import phase_gradient

__all__ = ["StrainField", "strain_field", "voxel_matrix", "unwrap_phase", "support_from_amplitude",
           "surface_layers", "crystal_size"]


@dataclass(frozen=True, kw_only=True)
class StrainField:
    """Amplitude, phase, displacement and strain of a crystal on one grid.

    Attributes
    ----------
    amplitude : ndarray of float32
        |ρ|, normalised to a maximum of 1.
    phase : ndarray of float32
        [rad] Wrapped phase after the ramp and offset removal; NaN outside the support.
    displacement : ndarray of float32
        [nm] u_G = φ_unwrapped / |G|; NaN outside the support.
    strain : ndarray of float32
        ε = ∂u_G/∂r_G (dimensionless); NaN outside the support.
    support : ndarray of bool
    voxel : (ndim, ndim) ndarray
        [nm] Voxel edges (columns) in the frame of `g_vector`; h·I on an orthogonal grid.
    g_vector : ndarray
        [1/nm] Bragg vector in the same frame.
    frame : str
        'lab', 'crystal', 'sample' or 'detector' (the grid's frame).
    phase_ramp : tuple of float
        [rad/voxel] Linear ramp removed along each array axis (0 if none was removed).
    ramp_strain : float
        The homogeneous strain that the removed ramp held: add it to `strain` for the strain
        relative to the reference lattice of G (the ramp also holds the data's centring error).
    strain_spread : ndarray of float32 or None
        Standard deviation of the strain over averaged reconstructions (uncertainty map).
    metadata : dict
        Free-form facts about how the field was made (e.g. 'runs' averaged).
    """

    amplitude: np.ndarray
    phase: np.ndarray
    displacement: np.ndarray
    strain: np.ndarray
    support: np.ndarray
    voxel: np.ndarray
    g_vector: np.ndarray
    frame: str = "lab"
    phase_ramp: tuple = ()
    ramp_strain: float = 0.0
    strain_spread: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def voxel_size(self):
        """[nm] Edge of the cubic voxel, or None if the grid is not orthogonal and isotropic."""
        h = abs(float(self.voxel[0, 0]))
        return h if np.allclose(np.abs(self.voxel), h * np.eye(len(self.voxel)), rtol=1e-9, atol=1e-12) else None

    def summary(self, *, bins=64) -> dict:
        """Statistics of the strain inside the support: mean, RMS (about zero and about the mean),
        extremes, the same for the outer two voxel layers ('surface') and the rest ('bulk'), and a
        histogram."""
        eps = self.strain[self.support]
        layers = surface_layers(self.support, 2)
        stats = {"voxels": int(self.support.sum()), "strain_mean": float(np.mean(eps)),
                 "strain_rms": float(np.sqrt(np.mean(eps ** 2))), "strain_std": float(np.std(eps)),
                 "strain_min": float(np.min(eps)), "strain_max": float(np.max(eps)),
                 "ramp_strain": float(self.ramp_strain)}
        for name, where in (("surface", layers), ("bulk", self.support & ~layers)):
            part = self.strain[where]
            stats[f"{name}_voxels"] = int(where.sum())
            stats[f"{name}_strain_mean"] = float(np.mean(part)) if part.size else float("nan")
            stats[f"{name}_strain_rms"] = float(np.sqrt(np.mean(part ** 2))) if part.size else float("nan")
        counts, edges = np.histogram(eps, bins=bins)
        stats["histogram_counts"], stats["histogram_edges"] = counts.tolist(), edges.tolist()
        return stats


def voxel_matrix(voxel, ndim) -> np.ndarray:
    """[nm] (ndim, ndim) voxel edges (columns) from a cubic edge h [nm] or a matrix."""
    if np.ndim(voxel) == 0:
        return check_positive(voxel, "voxel_size", "nm") * np.eye(ndim)
    a = check_finite(np.asarray(voxel, dtype=float), "voxel")
    if a.shape != (ndim, ndim) or abs(np.linalg.det(a)) < 1e-12 * np.abs(a).max() ** ndim:
        raise ShapeError(f"the voxel must be a size [nm] or a non-singular {ndim}×{ndim} matrix of edges, got "
                         f"{a.tolist()}", expected=(ndim, ndim), actual=a.shape)
    return a


def _g_in_grid(g_vector, ndim):
    g = check_finite(np.asarray(g_vector, dtype=float), "g_vector")
    if g.shape not in ((3,), (ndim,)):
        raise ShapeError(f"g_vector must have 3 components (z, y, x), got {g.tolist()}", expected=(3,), actual=g.shape)
    norm = np.linalg.norm(g)
    if norm == 0:
        raise ConfigError("G = 0 (hkl 0 0 0) is the direct beam, not a Bragg reflection")
    if ndim == 2 and g.shape == (3,):
        if abs(g[0]) > 1e-6 * norm:
            raise ConfigError("a 2-D object lies in the (y, x) plane; its strain along G needs G in that plane "
                              f"(g_z = 0), got G = {g.tolist()}")
        g = g[1:]
    return g


def support_from_amplitude(obj, threshold=0.3) -> np.ndarray:
    """Voxels whose amplitude exceeds `threshold` × the maximum (an isosurface), holes filled."""
    amp = np.abs(np.asarray(obj))
    if not amp.max() > 0:
        raise ConfigError("the object is zero everywhere; there is no crystal to take a support from")
    return ndimage.binary_fill_holes(amp > threshold * amp.max())


def surface_layers(support, depth=2) -> np.ndarray:
    """The outer `depth` voxel layers of `support` (voxels within `depth` face steps of the outside)."""
    support = np.asarray(support, bool)
    padded = np.pad(support, depth)
    inner = ndimage.binary_erosion(padded, iterations=depth)
    return (padded & ~inner)[tuple(slice(depth, -depth) for _ in range(support.ndim))]


def unwrap_phase(phase, support) -> np.ndarray:
    """[rad] `phase` unwrapped inside `support` (scikit-image's reliability-sorting unwrapper), NaN
    outside; arrays without a wrap inside the support are returned as they are. Only the
    support's bounding box is unwrapped."""
    box = ndimage.find_objects(support.astype(np.uint8))[0]
    sub, inside = phase[box], support[box]
    out = np.full(phase.shape, np.nan, np.float32)
    wrapped = any(np.any(np.abs(np.diff(np.where(inside, sub, np.nan), axis=a)) > np.pi) for a in range(sub.ndim))
    if wrapped:
        from skimage.restoration import unwrap_phase as _unwrap

        sub = _unwrap(np.ma.masked_array(np.where(inside, sub, 0), ~inside)).filled(np.nan)  # no NaN: it hangs on them
    out[box] = np.where(inside, sub, np.nan)
    return out


def _support_centre(support):
    """Index of the support voxel nearest the support's centre of mass."""
    centre = tuple(int(round(c)) for c in ndimage.center_of_mass(support))
    if not support[centre]:  # a hollow or concave crystal
        idx = np.argwhere(support)
        centre = tuple(idx[np.argmin(np.sum((idx - np.array(centre)) ** 2, axis=1))])
    return centre


def _check(obj, support):
    obj = np.asarray(obj)
    if not np.iscomplexobj(obj) or obj.ndim not in (2, 3):
        raise ShapeError(f"the object must be a 2-D or 3-D complex array, got {obj.dtype} of shape {obj.shape}",
                         expected="(Z, Y, X) complex", actual=obj.shape)
    if support is None:
        raise ConfigError("no support given: pass the reconstruction's support (or make one with "
                          "support_from_amplitude(obj, 0.3))")
    support = np.asarray(support)
    if support.shape != obj.shape:
        raise ShapeError(f"support shape {support.shape} differs from the object's {obj.shape}",
                         expected=obj.shape, actual=support.shape)
    support = support.astype(bool)
    if support.sum() < 2 ** obj.ndim:
        raise ConfigError(f"the support holds {int(support.sum())} voxel(s); a crystal needs a non-empty support")
    check_finite(obj[support], "object")
    return obj.astype(np.complex64, copy=False), support


def strain_field(obj, support, *, g_vector, voxel_size, remove_ramp=True, reference="mean", jump=1.0, order=4,
                 frame="lab") -> StrainField:
    """Displacement and strain along G of a reconstructed crystal.

    Parameters
    ----------
    obj : (Z, Y, X) or (Y, X) ndarray of complex
        Reconstructed object ρ = |ρ| exp(iG·u), on any linear grid.
    support : ndarray of bool
        The crystal's voxels (an isosurface of the amplitude or the retrieval's support); a voxel
        none of whose neighbours is in it is dropped (it has no phase gradient).
    g_vector : (3,) array_like
        [1/nm] Bragg vector in the frame of `voxel_size`'s edges (components z, y, x).
    voxel_size : float or (ndim, ndim) array_like
        [nm] Cubic voxel edge, or the voxel edges as columns (a detector-frame grid:
        :meth:`braggscope.geometry.Geometry.object_voxel`).
    remove_ramp : bool
        Remove the linear phase ramp (the amplitude-weighted mean phase step along each axis,
        wrap-free): the strain is then relative to the crystal's mean lattice, as bcdi and
        cdiutils report it; the removed part is returned as `ramp_strain`.
    reference : {'mean', 'centre'}
        Phase offset: the amplitude-weighted circular mean of the phase is 0, or the phase at
        the support's centre is 0.
    jump : float
        [rad] Change of the phase step taken as a planar defect (see :func:`phase_gradient`).
    order : {2, 4}
        Order of the bulk central difference (see :func:`phase_gradient`).
    frame : str
        Name of the grid's frame, stored with the result.

    Returns
    -------
    StrainField
    """
    obj, support = _check(obj, support)
    check_choice(reference, "phase reference", {"mean", "centre"})
    a = voxel_matrix(voxel_size, obj.ndim)
    g = _g_in_grid(g_vector, obj.ndim)
    box = ndimage.find_objects(support.astype(np.uint8))[0]
    box = tuple(slice(max(s.start - 2, 0), s.stop + 2) for s in box)
    sub, inside = obj[box], support[box]
    ramp = (0.0,) * obj.ndim
    if remove_ramp:
        sub, ramp = remove_phase_ramp(sub, inside)
    if reference == "mean":  # amplitude-weighted circular mean, wrap-free
        sub = sub * np.exp(-1j * np.angle(np.sum(sub[inside])))
    else:
        sub = sub * np.exp(-1j * np.angle(sub[_support_centre(inside)]))
    g_norm = np.linalg.norm(g)
    weights = np.linalg.solve(a, g / g_norm) / g_norm  # ε = w·d with d [rad/voxel]
    grad = phase_gradient(sub, inside, jump=jump, order=order)
    strain = np.full(obj.shape, np.nan, np.float32)
    strain[box] = np.tensordot(weights.astype(np.float32), grad, axes=1)
    support = support & ~np.isnan(strain)  # a voxel with no support neighbour has no gradient: dropped
    if not support.any():
        raise ConfigError("no voxel of the support has the neighbours a phase gradient needs: the crystal is "
                          "too thin on this grid")
    phase = np.full(obj.shape, np.nan, np.float32)
    phase[box] = np.where(support[box], np.angle(sub), np.nan)
    unwrapped = unwrap_phase(phase, support)  # then the 2π multiple that keeps the reference near 0
    level = np.nanmean(unwrapped) if reference == "mean" else unwrapped[_support_centre(support)]
    unwrapped -= np.float32(2 * np.pi * np.round(level / (2 * np.pi)))
    amplitude = np.abs(obj)
    return StrainField(amplitude=(amplitude / amplitude.max()).astype(np.float32), phase=phase,
                       displacement=(unwrapped / g_norm).astype(np.float32), strain=strain, support=support,
                       voxel=a, g_vector=np.asarray(g_vector, dtype=float), frame=frame, phase_ramp=tuple(ramp),
                       ramp_strain=float(weights @ np.asarray(ramp)))


def crystal_size(field) -> float:
    """[nm] The largest extent of the crystal: twice the largest distance of a support voxel from
    the support's centroid."""
    points = np.argwhere(field.support) @ np.asarray(field.voxel).T
    return float(2 * np.max(np.linalg.norm(points - points.mean(axis=0), axis=1))) if len(points) else 0.0
