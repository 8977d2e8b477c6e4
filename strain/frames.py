"""From the grid a crystal was reconstructed on to an orthogonal grid in the lab or crystal frame.

A reconstruction from a rocking scan lives on the detector frame's skewed grid (voxel edges
from :meth:`braggscope.geometry.Geometry.object_voxel`). The strain is best computed there,
where no interpolation has touched the phase (:func:`braggscope.strain.strain_field` takes the
skewed voxel), and the maps then resampled (:func:`resample`). A complex object can also be
resampled itself (:func:`to_orthogonal`): it is zero outside the crystal, so a surface voxel's
interpolated value keeps the right phase, and a phase wrap is no edge to it.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from braggscope._validate import check_positive
from braggscope.errors import ConfigError, ShapeError

from .field import StrainField, voxel_matrix

__all__ = ["to_orthogonal", "resample", "crystal_rotation", "rotation_to_axis"]


def _corners(support, a):
    """[nm] Lab positions (ndim, M) of the support's bounding-box corners, origin at index N // 2."""
    box = ndimage.find_objects(support.astype(np.uint8))[0]
    centre = np.array([n // 2 for n in support.shape])
    ranges = [(s.start - 1, s.stop) for s in box]
    idx = np.array(np.meshgrid(*ranges, indexing="ij")).reshape(support.ndim, -1)
    return a @ (idx - centre[:, None])


def _plan(support, voxel, rotation, voxel_size, shape):
    """The affine map (matrix, offset) from output to input indices, the output shape, h and R."""
    if support.ndim != 3:
        raise ShapeError(f"resampling needs a 3-D grid, got shape {support.shape}", expected="(Z, Y, X)",
                         actual=support.shape)
    if not support.any():
        raise ConfigError("the support is empty; there is no crystal to resample")
    a = voxel_matrix(voxel, 3)
    r = np.eye(3) if rotation is None else np.asarray(rotation, dtype=float)
    if r.shape != (3, 3) or not np.allclose(r @ r.T, np.eye(3), atol=1e-6):
        raise ConfigError(f"`rotation` must be a 3×3 rotation matrix, got {np.round(r, 6).tolist()}")
    h = abs(np.linalg.det(a)) ** (1 / 3) if voxel_size is None else check_positive(voxel_size, "voxel_size", "nm")
    if shape is None:
        reach = np.abs(r @ _corners(support, a)).max(axis=1) / h
        shape = tuple(int(2 * np.ceil(v) + 3) for v in reach)
    # output voxel p sits at Rᵀ (p - c_out) h in the lab, which is input index A⁻¹ Rᵀ h (p - c_out) + c_in
    m = np.linalg.solve(a, r.T) * h
    offset = np.array([n // 2 for n in support.shape], float) - m @ np.array([n // 2 for n in shape], float)
    return m, offset, tuple(shape), float(h), r


def _resampler(m, offset, shape, order):
    return lambda v: ndimage.affine_transform(np.asarray(v, np.float32), m, offset=offset, output_shape=shape,
                                              order=order, mode="constant", cval=0.0, prefilter=order > 1)


def to_orthogonal(obj, support, voxel, *, rotation=None, voxel_size=None, shape=None, order=1):
    """Resample a complex object and its support onto an orthogonal grid.

    Parameters
    ----------
    obj : (Z, Y, X) ndarray of complex
        Object on a linear grid whose voxel edges are the columns of `voxel`.
    support : ndarray of bool
    voxel : float or (3, 3) array_like
        [nm] Input voxel edges in the lab frame (a cubic edge for an orthogonal input).
    rotation : (3, 3) array_like, optional
        R taking lab components to the output frame's (v_out = R v_lab), e.g.
        :func:`crystal_rotation`; identity (lab frame) if omitted.
    voxel_size : float, optional
        [nm] Output cubic voxel; default: the input voxel's volume, |det A|^(1/3).
    shape : tuple of int, optional
        Output grid; default: the smallest grid centred on the origin that holds the support.
    order : int
        Spline order of the interpolation (1: trilinear).

    Returns
    -------
    obj_out : ndarray of complex64
    support_out : ndarray of bool
        Where the interpolated support exceeds 0.5.
    voxel_size : float
        [nm]
    """
    obj = np.asarray(obj)
    support = np.asarray(support, bool)
    if obj.shape != support.shape:
        raise ShapeError(f"object {obj.shape} and support {support.shape} differ in shape", expected=obj.shape,
                         actual=support.shape)
    m, offset, shape, h, _ = _plan(support, voxel, rotation, voxel_size, shape)
    resample = _resampler(m, offset, shape, order)
    out = resample(obj.real) + 1j * resample(obj.imag)
    return out.astype(np.complex64), resample(support) > 0.5, h


def resample(field: StrainField, *, rotation=None, voxel_size=None, shape=None, frame="lab") -> StrainField:
    """A strain field computed on its own grid (e.g. the detector frame's, where no interpolation
    has touched the phase) resampled onto an orthogonal grid in the lab or a rotated frame.

    Strain and displacement are interpolated trilinearly with the support as weight (values
    from outside the crystal never enter), the phase through exp(iφ), the amplitude as it is.

    Parameters
    ----------
    field : StrainField
    rotation, voxel_size, shape
        As for :func:`to_orthogonal`.
    frame : str
        Name of the output frame ('lab', 'crystal', ...).
    """
    m, offset, shape, h, r = _plan(field.support, field.voxel, rotation, voxel_size, shape)
    interp = _resampler(m, offset, shape, 1)
    weight = interp(field.support)
    inside = weight > 0.5
    safe = np.maximum(weight, np.float32(1e-6))
    weighted = lambda v: np.where(inside, interp(np.where(field.support, v, 0)) / safe, np.nan).astype(np.float32)
    phase = np.angle(interp(np.cos(np.nan_to_num(field.phase))) + 1j * interp(np.sin(np.nan_to_num(field.phase))))
    spread = None if field.strain_spread is None else weighted(field.strain_spread)
    return StrainField(amplitude=interp(field.amplitude), phase=np.where(inside, phase, np.nan).astype(np.float32),
                       displacement=weighted(field.displacement), strain=weighted(field.strain), support=inside,
                       voxel=h * np.eye(3), g_vector=r @ field.g_vector, frame=frame, phase_ramp=field.phase_ramp,
                       ramp_strain=field.ramp_strain, strain_spread=spread, metadata=dict(field.metadata))


def crystal_rotation(orientation) -> np.ndarray:
    """R taking sample/lab components to the crystal's cubic frame ([100], [010], [001] as the
    output's z, y, x) for an orientation U whose columns are the cubic axes in the lab: R = Uᵀ."""
    u = np.asarray(orientation, dtype=float)
    if u.shape != (3, 3) or not np.allclose(u @ u.T, np.eye(3), atol=1e-6):
        raise ConfigError("the orientation must be a 3×3 rotation matrix (columns: the cubic axes in the lab frame)")
    return u.T


def rotation_to_axis(g_vector, axis=(0.0, 1.0, 0.0)) -> np.ndarray:
    """The smallest rotation R with R Ĝ = `axis` (e.g. G vertical, along y, as bcdi shows it)."""
    from scipy.spatial.transform import Rotation

    g = np.asarray(g_vector, dtype=float)
    rot, _ = Rotation.align_vectors(np.asarray(axis, dtype=float)[None], g[None])
    return rot.as_matrix()
