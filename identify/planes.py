"""Stacking faults and twin boundaries from planar jumps of the phase and the amplitude.

A stacking fault of fault vector R shifts the lattice on one side by R: the phase jumps by G·R
(±2π/3 modulo 2π for a Shockley or Frank fault at a reflection that sees it) across a plane,
while the wrapped phase step elsewhere is that of the smooth strain field. Voxel pairs whose step
departs from the local median step by more than `jump` rad mark the plane; the pieces are fitted
with planes by RANSAC. A twin boundary whose domain scatters weakly into G is an amplitude step
across a plane inside the crystal. A coherent twin leaves the phase continuous (at a shared
reflection the two lattices' planes normal to G coincide), so a planar phase jump is a fault, whatever
size the resolution leaves it (a 2π/3 step blurred over two voxel pairs measures less).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .vortices import mean_edge

__all__ = ["jump_voxels", "amplitude_steps", "fit_plane", "planar_defects", "plane_area", "mean_jump"]

def _pair_slices(axis, ndim):
    lo = tuple(slice(0, -1) if i == axis else slice(None) for i in range(ndim))
    hi = tuple(slice(1, None) if i == axis else slice(None) for i in range(ndim))
    return lo, hi


def jump_voxels(obj, support, *, jump=1.0, size=5):
    """Voxels on either side of a phase jump, and the jump's size.

    Returns
    -------
    mask : ndarray of bool
        Both voxels of every in-support pair whose wrapped step differs from the mean step of
        its `size`-voxel neighbourhood (along the same axis, jumps left out) by more than `jump`
        [rad].
    residual : ndarray of float32
        [rad] That difference, wrapped to (-π, π], at the pair's lower voxel (0 elsewhere).
    crossings : ndarray of int
        Number of jumping pairs that start at each voxel (one per axis crossed).
    """
    obj = np.asarray(obj, np.complex64)
    support = np.asarray(support, bool)
    mask = np.zeros(obj.shape, bool)
    residual = np.zeros(obj.shape, np.float32)
    crossings = np.zeros(obj.shape, np.int16)
    for axis in range(obj.ndim):
        lo, hi = _pair_slices(axis, obj.ndim)
        both = support[lo] & support[hi]
        step = np.angle(obj[hi] * np.conj(obj[lo]))
        local = _local_step(step, both, size, jump)
        res = np.angle(np.exp(1j * (step - local)))
        big = both & (np.abs(res) > jump)
        mask[lo] |= big
        mask[hi] |= big
        residual[lo] = np.where(big, res, residual[lo])
        crossings[lo] += big
    return mask, residual, crossings


def _local_step(step, where, size, jump):
    """Circular mean of the steps in the `size`-neighbourhood, over the pairs in `where` whose
    step is within `jump` of a first mean (so the jumps themselves do not pull it)."""
    unit = np.exp(1j * step) * where

    def mean(weights):
        w = weights.astype(np.float32)
        re = ndimage.uniform_filter((unit.real * w).astype(np.float32), size)
        im = ndimage.uniform_filter((unit.imag * w).astype(np.float32), size)
        return np.arctan2(im, re)

    first = mean(where)
    calm = where & (np.abs(np.angle(np.exp(1j * (step - first)))) <= jump)
    return mean(calm)


def amplitude_steps(amplitude, support, *, ratio=0.5, floor=0.25):
    """Both voxels of every pair inside the support eroded by two voxels where the amplitude drops by more
    than `ratio` while both sides stay above `floor` of the 99th-percentile amplitude: the
    boundary of a domain that scatters more weakly (a twin) inside the crystal."""
    amp = np.abs(np.asarray(amplitude))
    inner = ndimage.binary_erosion(np.asarray(support, bool), iterations=2)  # the surface's fall-off is no domain
    top = np.percentile(amp[inner], 99) if inner.any() else 1.0
    mask = np.zeros(amp.shape, bool)
    for axis in range(amp.ndim):
        lo, hi = _pair_slices(axis, amp.ndim)
        small, large = np.minimum(amp[lo], amp[hi]), np.maximum(amp[lo], amp[hi])
        step = inner[lo] & inner[hi] & (small > floor * top) & (small < ratio * large)
        mask[lo] |= step
        mask[hi] |= step
    return mask


def fit_plane(points, *, tolerance=1.0, trials=200, seed=0):
    """Robust plane through `points` (M, 3) [nm]: RANSAC on point triples (inliers within
    `tolerance` [nm]), then least squares (SVD) on the inliers.

    Returns (centre (3,), unit normal (3,), inlier mask (M,))."""
    pts = np.asarray(points, float)
    rng = np.random.default_rng(seed)
    best = np.ones(len(pts), bool)
    if len(pts) >= 4:
        triples = rng.integers(0, len(pts), (trials, 3))
        a, b, c = pts[triples[:, 0]], pts[triples[:, 1]], pts[triples[:, 2]]
        normals = np.cross(b - a, c - a)
        size = np.linalg.norm(normals, axis=1)
        ok = size > 1e-9
        normals, a = normals[ok] / size[ok, None], a[ok]
        if len(normals):
            dist = np.abs((pts[None] - a[:, None]) @ normals[..., None])[..., 0]
            counts = (dist <= tolerance).sum(axis=1)
            best = dist[np.argmax(counts)] <= tolerance
    centre = pts[best].mean(axis=0)
    _, _, vt = np.linalg.svd(pts[best] - centre, full_matrices=False)
    return centre, vt[-1], best


def plane_area(crossings, normal, voxel):
    """[nm²] Area of a plane of unit `normal` crossed by `crossings` voxel pairs: lines of pairs
    along edge a_i pierce it |n·a_i|/V times per unit area (V the voxel volume). A plane mask of
    the voxels within half their extent along n (the simulator's labels, thickness Σ|n·a_i|)
    holds the same number of voxels per unit area, so its voxel count may be passed instead."""
    return float(crossings * abs(np.linalg.det(voxel)) / max(np.sum(np.abs(normal @ voxel)), 1e-12))


def planar_defects(obj, support, voxel, *, exclude=None, jump=1.0, min_voxels=20, min_inliers=0.7):
    """Stacking faults and twin boundaries of a reconstructed crystal.

    Parameters
    ----------
    obj : (Z, Y, X) ndarray of complex
        The object (phase ramp removed or not: steps are compared with their neighbours').
    support : ndarray of bool
    voxel : (3, 3) ndarray
        [nm] Voxel edges as columns.
    exclude : ndarray of bool, optional
        Voxels to ignore (the dislocation cores, whose steps are large too).
    jump : float
        [rad] Phase-step departure that marks a jump.
    min_voxels : int
        Smaller pieces are dropped.
    min_inliers : float
        Pieces with a smaller fraction of their voxels within 0.75 voxel of the fitted plane are
        not planes (a shell of noise along the surface, a cloud around a core) and are dropped.

    Returns
    -------
    list of dict
        'type' ('stacking_fault' for a phase jump, 'twin_boundary' for an amplitude step), 'voxels' (M, 3), 'mask', 'normal' (unit,
        z y x, nm frame), 'centre_nm', 'extent_nm', 'area_nm2', 'phase_jump_rad' (mean wrapped
        jump, sign along the normal), 'inlier_fraction'.
    """
    voxel = np.asarray(voxel, float)
    inner = ndimage.binary_erosion(np.asarray(support, bool))
    keep = inner if exclude is None else inner & ~np.asarray(exclude, bool)
    phase_mask, residual, crossings = jump_voxels(obj, support, jump=jump)
    amp_mask = amplitude_steps(np.abs(obj), support) & keep & ~phase_mask
    out = []
    for mask, source in ((phase_mask & keep, "phase"), (amp_mask, "amplitude")):
        pieces, count = ndimage.label(mask, np.ones((3,) * mask.ndim))
        for k in range(1, count + 1):
            piece = pieces == k
            steps = crossings[piece].sum() if source == "phase" else piece.sum()
            if piece.sum() < min_voxels or steps < min_voxels // 2:
                continue
            plane = _describe_plane(piece, residual, crossings, voxel, source)
            if plane["inlier_fraction"] >= min_inliers:
                out.append(plane)
    return out


def mean_jump(residual, crossings, piece) -> float:
    """[rad] Circular mean of the |jumps| of the voxel pairs that start in `piece`."""
    jumps = residual[piece & (crossings > 0)]
    return float(np.angle(np.mean(np.exp(1j * np.abs(jumps))))) if jumps.size else 0.0


def _describe_plane(piece, residual, crossings, voxel, source):
    idx = np.argwhere(piece)
    pos = idx @ voxel.T
    centre, normal, inliers = fit_plane(pos, tolerance=0.75 * mean_edge(voxel))
    area = plane_area(int(crossings[piece].sum()) if source == "phase" else int(piece.sum()) // 2, normal, voxel)
    return {"type": "stacking_fault" if source == "phase" else "twin_boundary", "voxels": idx, "mask": piece,
            "normal": normal, "centre_nm": centre, "extent_nm": np.ptp(pos, axis=0), "area_nm2": area,
            "phase_jump_rad": mean_jump(residual, crossings, piece), "inlier_fraction": float(inliers.mean()),
            "source": source}
