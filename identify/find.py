"""Find the defects of a reconstructed crystal: the physics baseline or the U-Net, one defect list.

>>> import numpy as np
>>> from braggscope.simulate import Crystal, sphere, simulate_sample
>>> from braggscope.strain import strain_field
>>> xtal = Crystal(sphere(60.0), "Pt")
>>> s = simulate_sample(xtal, [xtal.dislocation((0.5, 0.5, 0), (1, 1, 0))], shape=(32,) * 3, voxel_size=2.5,
...                     hkl=(1, 1, 1))
>>> field = strain_field(s.obj, s.support, g_vector=s.g_vector, voxel_size=2.5)
>>> report = find_defects(field, method="baseline")
>>> [(d["type"], d["winding"]) for d in report.defects]
[('dislocation', 1)]
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field as dc_field

import numpy as np
from scipy import ndimage

from braggscope._validate import check_choice
from braggscope.errors import ConfigError
from braggscope.io.cxi import atomic_path

from .data import CLASSES, base_channels, physics_channels, physics_maps
from .planes import fit_plane, mean_jump, planar_defects, plane_area
from .vortices import mean_edge, trace_lines, vortex_lines

__all__ = ["DefectReport", "find_defects", "baseline_defects", "unet_defects"]

_PLANE_TYPES = {2: "stacking_fault", 3: "twin_boundary"}


@dataclass
class DefectReport:
    """The defects found in one crystal.

    Attributes
    ----------
    defects : list of dict
        JSON-able, one per defect: 'id', 'type' ('dislocation', 'dislocation_loop',
        'stacking_fault', 'twin_boundary'), 'method', 'confidence' (0–1), 'voxel_count',
        'voxels' (indices: a line's centre line, a plane's voxels), 'centre_nm' and 'extent_nm'
        (z, y, x; centre relative to the grid's centre voxel N//2), for lines 'line_direction',
        'length_nm', 'polyline_nm' (ordered, smoothed points, same origin), 'winding' (|G·b|/2π from the phase vortices, None where none is integer),
        'closed'; for planes 'plane_normal', 'area_nm2', 'phase_jump_rad'.
    labels : ndarray of uint8
        Class per voxel (indices of CLASSES).
    method : str
    voxel : (3, 3) ndarray
        [nm] Voxel edges as columns.
    probabilities : ndarray, optional
        (classes, ...) U-Net class probabilities.
    """

    defects: list
    labels: np.ndarray
    method: str
    voxel: np.ndarray
    probabilities: np.ndarray | None = None
    metadata: dict = dc_field(default_factory=dict)

    def counts(self) -> dict:
        """Number of defects of each type."""
        out = {}
        for d in self.defects:
            out[d["type"]] = out.get(d["type"], 0) + 1
        return out

    def to_json(self, path):
        """Write the defect list (and the method, voxel, counts, metadata) atomically."""
        doc = {"method": self.method, "voxel_nm": np.asarray(self.voxel).tolist(), "classes": list(CLASSES),
               "counts": self.counts(), "metadata": self.metadata, "defects": self.defects}
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(doc, indent=1, default=_jsonable))
        return path


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON-able: {type(value).__name__}")


def _object(field):
    amp = np.nan_to_num(np.asarray(field.amplitude, np.float32))
    phase = np.nan_to_num(np.asarray(field.phase, np.float32))
    if amp.ndim != 3:
        raise ConfigError(f"defect identification needs a 3-D crystal, got maps of shape {amp.shape}")
    return (amp * np.exp(1j * phase)).astype(np.complex64)


def _origin(shape, voxel):
    return (np.array(shape) // 2) @ np.asarray(voxel).T


def _line_entry(line, voxel, shape, method, confidence):
    return {"type": "dislocation_loop" if line["closed"] else "dislocation", "method": method,
            "confidence": float(confidence), "voxel_count": int(line["mask"].sum()), "voxels": line["voxels"],
            "centre_nm": line["centre_nm"] - _origin(shape, voxel), "extent_nm": line["extent_nm"],
            "line_direction": line["direction"], "length_nm": line["length_nm"],
            "polyline_nm": line["polyline_nm"] - _origin(shape, voxel),
            "winding": int(line["winding"]) if line["winding"] else None, "closed": line["closed"]}


def _plane_entry(kind, mask, normal, centre, extent, area, jump, voxel, method, confidence):
    return {"type": kind, "method": method, "confidence": float(confidence), "voxel_count": int(mask.sum()),
            "voxels": np.argwhere(mask), "centre_nm": centre - _origin(mask.shape, voxel), "extent_nm": extent,
            "plane_normal": normal, "area_nm2": float(area), "phase_jump_rad": float(jump)}


def _number(defects):
    for i, d in enumerate(defects):
        d["id"] = i
    return defects


def baseline_defects(field, *, close_radius=2, jump=1.0, min_length=3.0, min_plane_voxels=20) -> DefectReport:
    """Defects from the physics alone (no training): dislocation lines from the phase vortices
    in the closed support (:mod:`.vortices`), then faults and twin boundaries from the planar
    phase and amplitude jumps away from the cores (:mod:`.planes`).

    Confidence: for a line, the fraction of its plaquettes whose winding is the line's; for a
    plane, the fraction of its voxels within 0.75 voxel of the fitted plane."""
    obj = _object(field)
    voxel = np.asarray(field.voxel, float)
    line_voxels, winding = vortex_lines(obj, field.support, close_radius=close_radius)
    lines = trace_lines(line_voxels, winding, voxel, min_length=min_length)
    cores = np.zeros(obj.shape, bool)
    defects = []
    for line in lines:
        w = np.abs(winding[:, line["mask"]])
        agree = float(np.mean(w[w > 0] == line["winding"])) if (w > 0).any() else 0.0
        defects.append(_line_entry(line, voxel, obj.shape, "baseline", agree))
        cores |= line["mask"]
    tubes = ndimage.binary_dilation(cores, iterations=3)  # steps exceed 1 rad within ~2 voxels of a core
    labels = np.zeros(obj.shape, np.uint8)
    for plane in planar_defects(obj, field.support, voxel, exclude=tubes, jump=jump, min_voxels=min_plane_voxels):
        defects.append(_plane_entry(plane["type"], plane["mask"], plane["normal"], plane["centre_nm"],
                                    plane["extent_nm"], plane["area_nm2"], plane["phase_jump_rad"], voxel, "baseline",
                                    plane["inlier_fraction"]))
        labels[plane["mask"]] = 2 if plane["type"] == "stacking_fault" else 3
    labels[ndimage.binary_dilation(cores) & np.asarray(field.support, bool)] = 1
    return DefectReport(defects=_number(defects), labels=labels, method="baseline", voxel=voxel)


def unet_defects(field, model=None, *, device="cpu", tile=128, overlap=16, min_length=3.0,
                 min_plane_voxels=15, min_inliers=0.7) -> DefectReport:
    """Defects from the U-Net's voxel classes (the shipped weights unless `model` is given):
    dislocation voxels traced into lines (with the phase vortices' winding where one is
    integer), fault and twin voxels fitted with planes (pieces with fewer than `min_inliers` of
    their voxels within 0.75 voxel of the plane are not planes and are dropped). Confidence: the
    class's mean probability over the defect's voxels. Volumes larger than `tile` go by
    overlapping tiles."""
    from .unet import load_unet, predict_tiled

    shape = _object(field).shape
    voxel = np.asarray(field.voxel, float)
    model = load_unet(device=device) if model is None else model
    base = base_channels(field)
    maps = physics_maps(base)  # the vortices and jumps of the input channels, reused for the list
    inputs = np.concatenate([base, physics_channels(base, maps)])
    prob = predict_tiled(model, inputs, tile=tile, overlap=overlap, device=device)
    near = ndimage.binary_dilation(np.asarray(field.support, bool))
    labels = (prob.argmax(axis=0) * near).astype(np.uint8)
    defects = []
    for line in trace_lines(labels == 1, maps["winding"], voxel, min_length=min_length, thin=True):
        defects.append(_line_entry(line, voxel, shape, "unet", prob[1][line["mask"]].mean()))
    for cls, kind in _PLANE_TYPES.items():
        pieces, count = ndimage.label(labels == cls, np.ones((3, 3, 3)))
        for k in range(1, count + 1):
            mask = pieces == k
            if mask.sum() < min_plane_voxels:
                continue
            pos = np.argwhere(mask) @ voxel.T
            centre, normal, inliers = fit_plane(pos, tolerance=0.75 * mean_edge(voxel))
            if inliers.mean() < min_inliers:
                labels[mask] = 0
                continue
            defects.append(_plane_entry(kind, mask, normal, centre, np.ptp(pos, axis=0),
                                        plane_area(mask.sum(), normal, voxel),
                                        mean_jump(maps["residual"], maps["crossings"], mask), voxel, "unet",
                                        prob[cls][mask].mean()))
    return DefectReport(defects=_number(defects), labels=labels, method="unet", voxel=voxel, probabilities=prob,
                        metadata={"weights": getattr(model, "meta", {}).get("script", "given model")})


def find_defects(field, *, method="unet", model=None, device="cpu") -> DefectReport:
    """Defects of a :class:`~braggscope.strain.StrainField` by `method` 'unet' (default) or
    'baseline' (see :func:`unet_defects`, :func:`baseline_defects`)."""
    check_choice(method, "method", {"unet", "baseline"})
    if method == "baseline":
        return baseline_defects(field)
    return unet_defects(field, model, device=device)
