"""Dislocation lines from phase vortices: plaquette windings of exp(iφ), core-tube closing,
line tracing.

Around a dislocation line the phase G·u winds by G·b: the sum of the wrapped phase steps around
a voxel plaquette pierced by the line is 2π·G·b/2π, and zero elsewhere. The three plaquette
orientations give the discrete curl W of ∇φ/2π, an integer vector per plaquette pointing along
the line (right-handed: counter-clockwise seen from its tip), whose size is the winding number
n = G·b/2π. A dislocation core also leaves a tube of low amplitude that an amplitude-threshold
support cuts out; the support is closed before the search (without that the search finds
nothing, since no plaquette around the core has all four corners in the support).

Array axes are (z, y, x): a physical right-handed circuit about axis a runs along axis
(a + 2) mod 3 first, then along (a + 1) mod 3.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["close_core_tubes", "plaquette_winding", "vortex_lines", "centre_line", "trace_lines", "polyline", "mean_edge"]


def close_core_tubes(support, radius=2) -> np.ndarray:
    """The support with tunnels and holes up to about `radius` voxels wide closed: a
    morphological closing by a ball, then hole filling. Voxels outside the closing of the
    crystal's outline are not added."""
    support = np.asarray(support, bool)
    ball = _ball(radius, support.ndim)
    padded = np.pad(support, radius + 1)
    closed = ndimage.binary_closing(padded, ball)[(slice(radius + 1, -radius - 1),) * support.ndim]
    return ndimage.binary_fill_holes(closed | support)


def _ball(radius, ndim):
    grid = np.indices((2 * radius + 1,) * ndim) - radius
    return np.sum(grid**2, axis=0) <= radius**2 + 0.5


def _step(obj, axis):
    """Wrapped phase step arg(ρ(r + e_axis) ρ*(r)) [rad], shape one shorter along `axis`."""
    a = np.take(obj, range(obj.shape[axis] - 1), axis=axis)
    b = np.take(obj, range(1, obj.shape[axis]), axis=axis)
    return np.angle(b * np.conj(a))


def plaquette_winding(obj, support=None) -> np.ndarray:
    """Integer winding (3, Z-1, Y-1, X-1) of the phase of `obj` around the plaquette of normal
    axis a whose lowest corner is each voxel: the curl of ∇φ/2π, components (z, y, x). Only
    plaquettes with all four corners in `support` count."""
    obj = np.asarray(obj, np.complex64)
    if obj.ndim != 3:
        raise ValueError(f"plaquette windings need a 3-D object, got shape {obj.shape}")
    steps = [_step(obj, ax) for ax in range(3)]
    out = np.zeros((3,) + tuple(n - 1 for n in obj.shape), np.int8)
    inside = np.ones(out.shape[1:], bool) if support is None else _all_corners(np.asarray(support, bool))
    for a in range(3):
        p, q = (a + 2) % 3, (a + 1) % 3
        at = lambda shift: tuple(slice(int(i in shift), n - 1 + int(i in shift)) for i, n in enumerate(obj.shape))
        circulation = (steps[p][at(())] + steps[q][at((p,))]          # r → r+e_p → r+e_p+e_q
                       - steps[p][at((q,))] - steps[q][at(())])       # → r+e_q → r
        out[a] = np.rint(circulation / (2 * np.pi)).astype(np.int8) * inside
    return out


def _all_corners(support):
    """True at voxels r whose cube r … r + (1, 1, 1) lies in the support, shape (Z-1, Y-1, X-1)."""
    s = support
    out = np.ones(tuple(n - 1 for n in s.shape), bool)
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                out &= s[dz:dz + s.shape[0] - 1, dy:dy + s.shape[1] - 1, dx:dx + s.shape[2] - 1]
    return out


def vortex_lines(obj, support, *, close_radius=2, smooth=0.7):
    """Line voxels and windings of the phase vortices inside the closed support.

    The object is smoothed (Gaussian, `smooth` voxels, on the complex field: isolated vortices
    keep their winding, noise pairs closer than that annihilate) and the windings counted in the
    support closed by `close_radius` and eroded by one voxel (the surface's low amplitude holds
    noise vortices).

    Returns
    -------
    line : ndarray of bool
        The voxels at the lowest corner of every plaquette with a non-zero winding: a thin
        26-connected curve along each line.
    winding : (3, ...) ndarray of int8
        :func:`plaquette_winding` padded to the object's shape.
    """
    obj = np.asarray(obj, np.complex64)
    closed = close_core_tubes(support, close_radius)
    search = ndimage.binary_erosion(closed)
    if smooth > 0:
        obj = ndimage.gaussian_filter(obj.real, smooth) + 1j * ndimage.gaussian_filter(obj.imag, smooth)
    w = plaquette_winding(obj, search)
    winding = np.zeros((3,) + obj.shape, np.int8)
    winding[:, :-1, :-1, :-1] = w
    return np.any(winding != 0, axis=0), winding


def centre_line(mask, *, window=5, passes=2) -> np.ndarray:
    """The centre line of a tube mask: every voxel moved to the centroid of the mask within its
    `window`-voxel cube (`passes` times), rounded to a voxel. A tube a few voxels wide becomes a
    curve one or two voxels wide; scikit-image's 3-D skeletonize is not used because it deletes
    some thin diagonal tubes entirely."""
    mask = np.asarray(mask, bool)
    pos = np.argwhere(mask).astype(float)
    if len(pos) == 0:
        return mask
    weight = ndimage.uniform_filter(mask.astype(np.float32), window)
    sums = [ndimage.uniform_filter(np.where(mask, np.indices(mask.shape)[a], 0).astype(np.float32), window)
            for a in range(mask.ndim)]
    for _ in range(passes):
        at = tuple(np.clip(np.rint(pos).astype(int), 0, np.array(mask.shape) - 1).T)
        pos = np.stack([s[at] for s in sums], axis=1) / np.maximum(weight[at], 1e-6)[:, None]
    out = np.zeros_like(mask)
    out[tuple(np.clip(np.rint(pos).astype(int), 0, np.array(mask.shape) - 1).T)] = True
    return out


def trace_lines(line, winding, voxel, *, min_length=3.0, thin=False):
    """Dislocation lines from line voxels: 26-connected pieces, each measured along its
    skeleton.

    Parameters
    ----------
    line : ndarray of bool
        Line voxels: thin curves (:func:`vortex_lines`), or tubes with ``thin=True`` (reduced
        to their :func:`centre_line` first).
    winding : (3, ...) ndarray of int, or None
        Plaquette windings (:func:`vortex_lines`); None leaves 'winding' 0 and orients the
        direction arbitrarily.
    voxel : (3, 3) ndarray
        [nm] Voxel edges as columns (components z, y, x).
    min_length : float
        [voxels] Shorter pieces are dropped (noise vortex loops).

    Returns
    -------
    list of dict
        Per line: 'voxels' (M, 3) indices of its centre line, 'mask' (its voxels), 'direction'
        (unit, z y x, along the net curl), 'length_nm', 'polyline_nm' (:func:`polyline`, from
        voxel 0),
        'centre_nm', 'extent_nm', 'winding' (|G·b|/2π: the net curl per voxel of length, or the
        median plaquette winding of a loop), 'closed' (a loop: its plaquettes' windings cancel).
    """
    line = np.asarray(line, bool)
    skeleton = centre_line(line) if thin else line
    pieces, _ = ndimage.label(line, np.ones((3, 3, 3)))
    out = []
    for k, box in enumerate(ndimage.find_objects(pieces), start=1):
        mask = pieces == k
        idx = np.argwhere(skeleton & mask)
        if len(idx) == 0:
            idx = np.argwhere(mask)
        if _skeleton_length(idx) < min_length:
            continue
        w = np.zeros((3, 1), int) if winding is None else winding[(slice(None),) + box][:, mask[box]]
        out.append(_describe_line(idx, mask, w, np.asarray(voxel, float)))
    return out


def _skeleton_length(idx):
    """[voxels] Length of a skeleton: its minimum spanning tree over 26-neighbour links (a loop
    loses one link)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import minimum_spanning_tree
    from scipy.spatial import cKDTree

    pairs = np.array(sorted(cKDTree(idx).query_pairs(np.sqrt(3) + 1e-6)))
    if len(pairs) == 0:
        return float(min(len(idx), 1))
    steps = np.linalg.norm(idx[pairs[:, 0]] - idx[pairs[:, 1]], axis=1)
    graph = coo_matrix((steps, (pairs[:, 0], pairs[:, 1])), shape=(len(idx),) * 2)
    return float(minimum_spanning_tree(graph).sum() + 1.0)


def _line_length(idx, pos, centre, axes, closed, edge):
    """[nm] A straight piece: its extent along the principal axis; a loop: 2π times its mean
    radius in its plane; anything else: the spanning-tree length of its voxels `idx`."""
    rel = pos - centre
    off_axis = np.sqrt(np.mean(np.sum((rel - np.outer(rel @ axes[0], axes[0])) ** 2, axis=1)))
    if closed:
        in_plane = rel - np.outer(rel @ axes[2], axes[2])
        return float(2 * np.pi * np.mean(np.linalg.norm(in_plane, axis=1)))
    if off_axis < 1.5 * edge:
        return float(np.ptp(rel @ axes[0]) + edge)
    return _skeleton_length(idx) * edge


def _describe_line(idx, mask, w, voxel):
    pos = idx.astype(float) @ voxel.T
    centre = pos.mean(axis=0)
    _, _, axes = np.linalg.svd(pos - centre, full_matrices=False)
    direction = axes[0]
    net = w.sum(axis=1).astype(float)
    if net @ direction < 0:
        direction = -direction
    closed = bool(np.abs(w).sum() > 0 and np.linalg.norm(net) < 0.25 * np.abs(w).sum())
    edge = mean_edge(voxel)
    length = _line_length(idx, pos, centre, axes, closed, edge)
    winding = _winding(w, net, length / edge, closed)
    return {"voxels": idx, "mask": mask, "direction": direction, "length_nm": float(length),
            "polyline_nm": polyline(pos, direction, closed),
            "centre_nm": centre, "extent_nm": np.ptp(pos, axis=0), "winding": winding, "closed": closed}


def polyline(points, direction, closed, *, width=3) -> np.ndarray:
    """The points (M, 3) of a traced line in order — along `direction`, or by angle about the
    centre in the best-fit plane for a loop (closed: the first point repeated at the end) —
    smoothed by a running mean of `width` points (the ends kept), so a voxel staircase becomes
    a smooth polyline."""
    points = np.asarray(points, float)
    rel = points - points.mean(axis=0)
    if closed:
        _, _, axes = np.linalg.svd(rel, full_matrices=False)
        points = points[np.argsort(np.arctan2(rel @ axes[1], rel @ axes[0]))]
    else:
        points = points[np.argsort(rel @ np.asarray(direction, float))]
    if len(points) > width:
        kernel = np.ones(width) / width
        inner = np.stack([np.convolve(points[:, k], kernel, mode="valid") for k in range(3)], axis=1)
        points = np.vstack([points[:1], inner, points[-1:]])
    return np.vstack([points, points[:1]]) if closed else points


def _winding(w, net, length, closed):
    """|G·b|/2π of a line from its plaquette windings w (3, M): the net curl per voxel of length
    (a winding n > 1 splits into n unit vortices on the grid, which this counts); for a loop,
    whose net curl is zero, the median plaquette winding."""
    if closed:
        nonzero = np.abs(w)[np.abs(w) > 0]
        return int(np.median(nonzero)) if nonzero.size else 0
    return int(np.rint(np.linalg.norm(net) / max(length, 1.0)))


def mean_edge(voxel) -> float:
    """[nm] Mean length of the voxel edges (the columns of `voxel`)."""
    return float(np.mean(np.linalg.norm(np.asarray(voxel, float), axis=0)))
