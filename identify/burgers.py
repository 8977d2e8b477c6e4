"""Burgers vectors of the dislocations in a crystal measured at several reflections.

One reflection shows a dislocation only through G·b: its phase winds by G·b round the line.
Three or more reflections whose G are not coplanar give b itself: round a circuit C right-handed
about the line direction t, the wrapped phase steps of reflection j add up to 2π n_j = ∮ G_j·du
= −G_j·b (the simulator's convention: ∮ du = −b), n_j an integer for a perfect dislocation, so
b = −2π 𝐆⁺ n (𝐆 the (n, 3) matrix of the G_j).

The lines are the phase vortices of every reflection (:func:`~braggscope.identify.vortices.vortex_lines`),
merged; the circuits are squares of 2 `radius` + 1 voxels in the grid plane most nearly normal to
the line, centred on each of its voxels, wherever the square lies in the support. The line
direction t is oriented along the circuit's right-handed normal, so (b, t) follow one convention
(the simulator's: its StraightDislocation(burgers=b, line=t) comes back as b along t; a test
holds it). With the
crystal's orientation U and lattice parameter a the vector is also given in the cubic axes and
named by the nearest perfect or partial Burgers vector of an fcc crystal.
"""
from __future__ import annotations

import itertools

import numpy as np

from .vortices import close_core_tubes, trace_lines, vortex_lines

__all__ = ["burgers_vectors", "FCC_BURGERS"]

# the fcc Burgers vectors a line can carry, (denominator, indices) of a/d<uvw>: perfect a/2<110>,
# Shockley a/6<112>, Frank a/3<111>, and a<100> (a junction's)
FCC_BURGERS = ((2, (1, 1, 0)), (6, (1, 1, 2)), (3, (1, 1, 1)), (1, (1, 0, 0)))


def _family(indices):
    """Every signed permutation of `indices` (3,), without repeats, as an (M, 3) array."""
    out = {tuple(s * v for s, v in zip(signs, p)) for p in itertools.permutations(indices)
           for signs in itertools.product((1, -1), repeat=3)}
    return np.array(sorted(out))


def _nearest(b_crystal):
    """(name such as 'a/2[1 0 -1]', distance [a]) of the fcc Burgers vector nearest to
    `b_crystal` [a]."""
    best = None
    for denominator, indices in FCC_BURGERS:
        members = _family(indices)
        distance = np.linalg.norm(members / denominator - b_crystal, axis=1)
        k = int(np.argmin(distance))
        if best is None or distance[k] < best[1]:
            prefix = "a" if denominator == 1 else f"a/{denominator}"
            best = (f"{prefix}[{' '.join(str(int(v)) for v in members[k])}]", float(distance[k]))
    return best


def _circuit(point, axis, radius, shape):
    """Voxel indices (M, 3) of the square circuit of half-width `radius` about `axis` centred at
    `point`, right-handed about +axis (along (axis + 2) mod 3 first, then (axis + 1) mod 3; the
    first voxel repeated at the end), or None where it leaves the array."""
    side, edge = np.arange(-radius, radius), np.full(2 * radius, radius)
    du = np.concatenate([side, edge, -side, -edge, [-radius]])
    dv = np.concatenate([-edge, side, edge, -side, [-radius]])
    idx = np.repeat(np.asarray(point)[None], len(du), axis=0)
    idx[:, (axis + 2) % 3] += du
    idx[:, (axis + 1) % 3] += dv
    if (idx < 0).any() or (idx >= np.array(shape)).any():
        return None
    return idx


def _windings(objects, path):
    """Phase winding (sum of the wrapped steps / 2π) of each object round the voxel path."""
    values = np.stack([o[tuple(path.T)] for o in objects])
    return np.angle(values[:, 1:] * np.conj(values[:, :-1])).sum(axis=1) / (2 * np.pi)


def burgers_vectors(objects, supports, *, g_vectors, voxel_size, orientation=None, lattice_parameter=None,
                    radius=3, min_length=3.0) -> list:
    """The Burgers vector of every dislocation line found in the reconstructions of one crystal
    at several reflections (aligned, on one grid: :func:`braggscope.strain.align_reflections`).

    Parameters
    ----------
    objects : sequence of (Z, Y, X) ndarray of complex
    supports : sequence of ndarray of bool
    g_vectors : (n, 3) array_like
        [1/nm] The Bragg vectors in the grid's frame, not coplanar.
    voxel_size : float or (3, 3) array_like
        [nm] The grid's voxel (cubic edge or edges as columns).
    orientation : (3, 3) array_like, optional
        U (crystal → the grid's frame) to give b in the cubic axes and name it.
    lattice_parameter : float, optional
        [nm] a, for the same.
    radius : int
        [voxels] Half-width of the square circuits.
    min_length : float
        [voxels] Shorter vortex lines are left out (noise).

    Returns
    -------
    list of dict
        Per line: 'centre_nm' (from the grid's centre) and 'direction' (t, unit, grid frame
        z y x), 'circuits' (how many lay in the support), 'windings' (the n_j most circuits gave),
        'agreement' (the share of circuits that gave them), 'burgers_nm' (b = −2π 𝐆⁺ n, grid frame); with
        the orientation also 'burgers_crystal' [a], 'nearest' (e.g. 'a/2[1 0 -1]') and
        'nearest_distance' [a]. Lines with no circuit in the support are left out.
    """
    from braggscope.strain.field import voxel_matrix
    from braggscope.strain.tensor import _g_matrix

    objects = [np.asarray(o) for o in objects]
    g = _g_matrix(g_vectors, len(objects))
    a = voxel_matrix(voxel_size, 3)
    supports = [np.asarray(s, bool) for s in supports]
    common = close_core_tubes(np.logical_and.reduce(supports), 2)
    found = [vortex_lines(o, s)[0] for o, s in zip(objects, supports)]
    lines = trace_lines(np.logical_or.reduce(found), None, a, min_length=min_length)
    pinv = np.linalg.pinv(g)
    out = []
    for line in lines:
        entry = _line_burgers(line, objects, common, pinv, a, radius)
        if entry is None:
            continue
        if orientation is not None and lattice_parameter is not None:
            crystal = np.asarray(orientation, float).T @ entry["burgers_nm"] / lattice_parameter
            name, distance = _nearest(crystal)
            entry |= {"burgers_crystal": crystal, "nearest": name, "nearest_distance": distance}
        out.append(entry)
    return out


def _line_burgers(line, objects, support, pinv, voxel, radius):
    """The entry of one traced line: circuits about each of its voxels, their median windings."""
    t = np.asarray(line["direction"], float)
    index_direction = np.linalg.solve(voxel, t)  # t in array-index units
    axis = int(np.argmax(np.abs(index_direction)))
    sign = np.sign(index_direction[axis])
    windings = []
    for point in line["voxels"]:
        path = _circuit(point, axis, radius, support.shape)
        if path is None or not support[tuple(path.T)].all():
            continue
        windings.append(sign * _windings(objects, path))
    if not windings:
        return None
    rows, counts = np.unique(np.rint(np.array(windings)).astype(int), axis=0, return_counts=True)
    n = rows[np.argmax(counts)]  # the windings most circuits give
    centre = np.asarray(line["centre_nm"], float) - (np.array(support.shape) // 2) @ voxel.T
    return {"centre_nm": centre, "direction": t, "circuits": len(windings), "windings": n.tolist(),
            "agreement": float(counts.max() / counts.sum()), "burgers_nm": -2 * np.pi * pinv @ n}
