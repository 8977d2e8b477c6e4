"""Strain and defect content of a grain from its Laue spots: a network trained on simulated frames.

Given a recorded frame, the grain's crystal structure and its indexed orientation (from LaueTools
or any indexing), the network reads the patches around the grain's strongest predicted spots
(with, for each, how the spot moves per unit of each deviatoric strain and rotation component,
and its measured centroid shift, signal-to-noise ratio and shape), a coarse view of the whole
frame, how much of each {111} twin variant's own spots the frame shows, how much the spots that
faults on each {111} plane would streak are elongated along their streaks, and the classical
centroid fit, and returns

* the deviatoric strain tensor (sample frame) as the centroid fit plus a learnt correction, with a
  standard deviation per component (heteroscedastic Gaussian output, scaled on held-out grains so
  that the errors match it);
* the defect content: perfect (elastic strain only), statistically stored dislocations,
  geometrically necessary dislocations (a lattice curvature: streaked spots), a twin or random
  stacking faults on one {111} family (the spots with G·R ∉ 2πℤ streaked along the fault
  normal), with temperature-scaled probabilities, and the dislocation density (log₁₀ ρ [1/m²]) with its σ.

The classical reading, a least-squares fit of the deviatoric strain and rotation to the spot
centroids' shifts (what LaueTools' strain refinement does), is :func:`fit_strain_from_centroids`;
the benchmark measures both.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation
from torch import nn

from braggscope.errors import ConfigError, FileFormatError
from braggscope.simulate.laue import Beam, LaueDetector, laue_pattern, laue_spots, node_pixels, record, spot_positions
from braggscope.simulate.polycrystal import GRAIN_CONTENTS, Grain, Polycrystal, dislocation_density, grain_defects
from braggscope.simulate.structure import get_structure

from .classifier import fit_temperature
from .unet import ConvBlock

__all__ = ["DEFECT_CLASSES", "DEVIATORIC_BASIS", "simulate_grain", "spot_inputs", "LaueNet", "LaueAnalyser",
           "GrainEstimate", "fit_strain_from_centroids", "centroid_fit", "grain_features", "patch_inputs",
           "twin_evidence", "fault_evidence", "pooled_frame", "deviatoric_components", "laue_weights_path"]

DEFECT_CLASSES = GRAIN_CONTENTS
STRUCTURES = ("Cu", "Ni", "Au", "Pt", "UO2")
SPOTS = 16  # strongest predicted spots read per grain
PATCH = 32  # [pixel] side of a spot's patch
POOL = 32  # the whole frame is max-pooled by this factor for the overview
GRID = (16, 12, 12)  # voxels of the simulated illuminated grain
VOXEL_NM = 100.0
STEP = 1e-3  # strain / rotation step of the spot-motion features


def _deviatoric_basis():
    """Five orthonormal traceless symmetric 3 × 3 tensors (sample frame, (z, y, x))."""
    e = np.zeros((5, 3, 3))
    e[0] = np.diag([1.0, -1.0, 0.0]) / np.sqrt(2)
    e[1] = np.diag([1.0, 1.0, -2.0]) / np.sqrt(6)
    for k, (i, j) in enumerate(((0, 1), (0, 2), (1, 2)), start=2):
        e[k, i, j] = e[k, j, i] = 1 / np.sqrt(2)
    return e


DEVIATORIC_BASIS = _deviatoric_basis()
_ROTATIONS = np.array([[[0, 0, 0], [0, 0, -1], [0, 1, 0]], [[0, 0, 1], [0, 0, 0], [-1, 0, 0]],
                       [[0, -1, 0], [1, 0, 0], [0, 0, 0]]], float)  # generators about z, y, x


def deviatoric_components(strain) -> np.ndarray:
    """The six distinct components (zz, yy, xx, zy, zx, yx) of the deviatoric part of `strain` (..., 3, 3)."""
    s = np.asarray(strain, dtype=float)
    d = s - np.trace(s, axis1=-2, axis2=-1)[..., None, None] * np.eye(3) / 3
    return np.stack([d[..., 0, 0], d[..., 1, 1], d[..., 2, 2], d[..., 0, 1], d[..., 0, 2], d[..., 1, 2]], axis=-1)


def laue_weights_path() -> Path:
    """The shipped weights of :class:`LaueNet` (made by :mod:`braggscope.identify.laue_training`)."""
    return Path(__file__).with_name("weights") / "laue_net.pt"


# --- simulated grains -------------------------------------------------------------------------

def _draw_orientation(structure, rng, detector, beam):
    """A random orientation (sample frame) with at least SPOTS spots away from the frame's edges."""
    while True:
        u = Rotation.random(random_state=rng).as_matrix()
        spots = laue_spots(structure, beam.sample_to_lab @ u, detector)
        if len(_pick_spots(spots, detector)) >= SPOTS:
            return u


def simulate_grain(seed, *, detector: LaueDetector | None = None, beam: Beam | None = None, label=None) -> dict:
    """One training/test example: a grain filling the illuminated volume (`GRID` voxels of
    `VOXEL_NM`), recorded on `detector`, with its truth.

    Drawn from `seed`: structure (Cu, Ni, Au, Pt or UO₂), orientation, a misorientation of the
    indexed orientation (σ 0.03°), the uniform elastic strain (σ 0.2–1.5 × 10⁻³ per component),
    the defect class (or `label`) and its content (:func:`~braggscope.simulate.polycrystal.grain_defects`),
    the flux (brightest pixel 2·10³–6·10⁴ counts) and the background (20–200 counts).

    Returns a dict: 'counts' (the frame), 'structure', 'orientation' (the indexed one, crystal →
    lab), 'label' (index into DEFECT_CLASSES), 'strain' (the six deviatoric components),
    'log_density' (log₁₀ ρ [1/m²], 0 without dislocations)."""
    detector, beam = detector or LaueDetector(), beam or Beam()
    rng = np.random.default_rng(seed)
    structure = get_structure(str(rng.choice(STRUCTURES)))
    label = DEFECT_CLASSES[rng.integers(len(DEFECT_CLASSES))] if label is None else label
    indexed = _draw_orientation(structure, rng, detector, beam)
    true = Rotation.from_rotvec(rng.normal(0, np.radians(0.03), 3)).as_matrix() @ indexed
    e = rng.normal(0, rng.uniform(0.2, 1.5) * 1e-3, (3, 3))
    box = np.array(GRID) * VOXEL_NM
    defects = grain_defects(label, true, structure, box, rng, beam_axis=beam.axis_in_sample)
    grain = Grain(true, structure, strain=(e + e.T) / 2, defects=tuple(defects))
    poly = Polycrystal(np.zeros(GRID, np.int32), VOXEL_NM, (grain,))
    pattern = laue_pattern(poly, detector, beam)
    frame = record(pattern, peak_counts=10 ** rng.uniform(3.3, 4.8), background=rng.uniform(20, 200), seed=rng)
    density = dislocation_density(grain.defects, box)
    return {"counts": frame.counts, "structure": structure.name, "orientation": beam.sample_to_lab @ indexed,
            "label": DEFECT_CLASSES.index(label),
            "strain": deviatoric_components(np.array(pattern.grains[0]["mean_strain"])),
            "log_density": np.log10(density) if density > 0 else 0.0}


# --- what the network reads -------------------------------------------------------------------

def _pick_spots(spots, detector, margin=PATCH):
    """Indices of the strongest distinct spots (harmonics merged) at least `margin` from the edges."""
    rows, cols = detector.shape
    inside = (spots.x > margin) & (spots.x < cols - margin) & (spots.y > margin) & (spots.y < rows - margin)
    picked = []
    for i in np.argsort(-spots.intensity):
        if inside[i] and all(np.hypot(spots.x[i] - spots.x[j], spots.y[i] - spots.y[j]) > 2 for j in picked):
            picked.append(i)
    return picked


def _spot_motion(structure, orientation, hkl, detector, to_lab):
    """(n, 16): how each spot moves [pixel] per STEP of the five deviatoric components and the
    three rotations (sample frame), by central differences."""
    out = []
    for generator in list(DEVIATORIC_BASIS) + list(_ROTATIONS):
        beta = to_lab @ (STEP * generator) @ to_lab.T
        xp, yp, _ = spot_positions(structure, orientation, hkl, detector, strain=beta)
        xm, ym, _ = spot_positions(structure, orientation, hkl, detector, strain=-beta)
        out += [(xp - xm) / 2, (yp - ym) / 2]
    return np.stack(out, axis=1)


def _patch(counts, x, y):
    half = PATCH // 2
    cx, cy = int(round(x)), int(round(y))
    return counts[cy - half:cy + half, cx - half:cx + half].astype(np.float32), x - cx, y - cy


def _normalise(patch):
    """Background (the patch's median) removed, log-scaled, peak 1."""
    signal = np.log1p(np.maximum(patch - np.median(patch), 0))
    return signal / max(float(signal.max()), 1e-6)


def spot_inputs(counts, structure, orientation, *, detector: LaueDetector | None = None, beam: Beam | None = None,
                pooled=None):
    """The network's inputs for one grain of a frame (`pooled`: :func:`pooled_frame` of `counts`
    if already made, as for every grain of one frame).

    Parameters
    ----------
    counts : (rows, cols) ndarray
        The recorded frame.
    structure : CrystalStructure or str
    orientation : (3, 3) ndarray
        The grain's indexed orientation, crystal → lab frame.

    Returns
    -------
    raw : (SPOTS, PATCH, PATCH)
        The frame's patches around the predicted spots (see :func:`patch_inputs`).
    geometry : (SPOTS, 19) float32
        Spot motions [pixel] per STEP of each deviatoric and rotation component (16), sub-pixel
        offset of the predicted spot in its patch (2), energy / 25 keV.
    overview : (2, rows // POOL, cols // POOL) float32
        The frame max-pooled, and the grain's predicted spots at the same scale.
    planar : (8,) float32
        :func:`twin_evidence` and :func:`fault_evidence`.
    """
    detector, beam = detector or LaueDetector(), beam or Beam()
    counts = np.asarray(counts)
    if counts.shape != tuple(detector.shape):
        raise ConfigError(f"the frame is {counts.shape} but the detector is {tuple(detector.shape)}")
    structure = get_structure(structure)
    spots = laue_spots(structure, orientation, detector)
    picked = _pick_spots(spots, detector)[:SPOTS]
    if len(picked) < SPOTS:
        raise ConfigError(f"only {len(picked)} spots of this grain fall on the frame away from its edges; "
                          f"the network needs {SPOTS}")
    hkl = spots.hkl[picked]
    motion = _spot_motion(structure, orientation, hkl, detector, beam.sample_to_lab)
    raw, offsets = [], []
    for i in picked:
        p, dx, dy = _patch(counts, spots.x[i], spots.y[i])
        raw.append(p)
        offsets.append((dx, dy, spots.energy[i] / 25.0))
    features = np.concatenate([motion, np.array(offsets)], axis=1)
    planar = np.concatenate([twin_evidence(counts, structure, orientation, detector, parent=spots),
                             fault_evidence(raw, structure, orientation, hkl, detector, offsets=offsets)])
    pooled = pooled_frame(counts, detector) if pooled is None else pooled
    return np.stack(raw), features.astype(np.float32), np.stack([pooled, _predicted_map(spots, pooled.shape)]), planar


def patch_inputs(raw, geometry):
    """The normalised patches (S, P, P) and the 26 features (S, 26) from raw patches (S, P, P) and
    the 19 geometric features of :func:`spot_inputs` (motions, offsets, energy): each spot's
    measured centroid shift [pixel], log₁₀(1 + SNR), RMS extents along its axes [pixel] and the
    major axis's cos 2φ, sin 2φ are appended (:func:`_spot_measures`)."""
    measured = np.array([_spot_measures(p, f[16], f[17]) for p, f in zip(raw, geometry)])
    measured[:, 2] = np.log10(1 + np.maximum(measured[:, 2], 0))
    patches = np.stack([_normalise(p) for p in raw]).astype(np.float32)
    return patches, np.concatenate([geometry, measured], axis=1).astype(np.float32)


def pooled_frame(counts, detector) -> np.ndarray:
    """The whole frame for the overview: background-free, log-scaled, max-pooled by POOL (float32)."""
    rows, cols = (n // POOL * POOL for n in detector.shape)
    frame = _normalise(np.asarray(counts)[:rows, :cols].astype(np.float32))
    return frame.reshape(rows // POOL, POOL, cols // POOL, POOL).max(axis=(1, 3)).astype(np.float32)


def _predicted_map(spots, shape):
    """The grain's predicted spots on the pooled grid, log-brightness 0…1."""
    predicted = np.zeros(shape, dtype=np.float32)
    iy, ix = (spots.y / POOL).astype(int), (spots.x / POOL).astype(int)
    ok = (iy < shape[0]) & (ix < shape[1])
    brightness = np.log1p(spots.intensity[ok] / spots.intensity.max() * 1e3) / np.log(1e3)
    np.maximum.at(predicted, (iy[ok], ix[ok]), brightness)
    return predicted


def _spot_measures(patch, dx, dy, *, radius=3, search=10, extent=8):
    """The spot in a raw patch whose predicted centre is (dx, dy) [pixel] from the patch's centre:
    (shift x, shift y, SNR, major, minor, cos 2φ, sin 2φ).

    Shift: the measured centroid − predicted position [pixel]: the peak of the Gaussian-smoothed
    (σ 1 pixel), background-free (the median) patch within `search` pixels of the prediction, then
    the intensity-weighted centroid in a (2·`radius` + 1)² window re-centred on it three times.
    SNR: the smoothed peak over the noise (the patch's median absolute deviation). Shape: the RMS
    extents [pixel] along the principal axes and the major axis's angle φ of the pixels above
    three times the noise within `extent` pixels of the centroid (a streak's length and direction)."""
    from scipy.ndimage import gaussian_filter

    half = PATCH // 2
    signal = np.asarray(patch, dtype=float) - np.median(patch)
    noise = 1.4826 * np.median(np.abs(signal)) + 1e-6
    smooth = gaussian_filter(signal, 1.0)
    yy, xx = np.mgrid[-half:half, -half:half]
    peak = np.argmax(np.where(np.hypot(xx - dx, yy - dy) <= search, smooth, -np.inf))
    cx, cy = float(xx.flat[peak]), float(yy.flat[peak])
    for _ in range(3):
        w = np.where((np.abs(xx - round(cx)) <= radius) & (np.abs(yy - round(cy)) <= radius), np.maximum(signal, 0), 0)
        if not w.sum() > 0:
            break
        cx, cy = (w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()
    w = np.where((np.hypot(xx - cx, yy - cy) <= extent) & (smooth > 3 * noise), signal, 0)
    shape = (0.0, 0.0, 0.0, 0.0)
    if w.sum() > 0:
        u, v = xx - cx, yy - cy
        cov = np.array([[(w * u * u).sum(), (w * u * v).sum()], [(w * u * v).sum(), (w * v * v).sum()]]) / w.sum()
        values, vectors = np.linalg.eigh(cov)
        phi = np.arctan2(vectors[1, 1], vectors[0, 1])
        shape = (np.sqrt(max(values[1], 0)), np.sqrt(max(values[0], 0)), np.cos(2 * phi), np.sin(2 * phi))
    return (cx - dx, cy - dy, smooth.flat[peak] / noise, *shape)


def twin_evidence(counts, structure, orientation, detector, *, parent=None, spots_per_variant=12,
                  min_snr=5.0) -> np.ndarray:
    """For each of the four {111} twin variants of a grain of `orientation` (crystal → lab), the
    share of its `spots_per_variant` strongest spots that the parent does not share (> 3 pixels
    from every parent spot) which the frame shows (SNR ≥ `min_snr`); sorted, largest first.
    `parent`: the grain's own :func:`laue_spots` if already computed."""
    parent = laue_spots(structure, orientation, detector) if parent is None else parent
    out = []
    for n in ((1, 1, 1), (1, 1, -1), (1, -1, 1), (-1, 1, 1)):
        n = np.array(n) / np.sqrt(3)
        twin = laue_spots(structure, orientation @ (2 * np.outer(n, n) - np.eye(3)), detector)
        alone = [i for i in _pick_spots(twin, detector)
                 if np.min(np.hypot(parent.x - twin.x[i], parent.y - twin.y[i]), initial=np.inf) > 3]
        seen = [_spot_measures(*_patch(counts, twin.x[i], twin.y[i]))[2] >= min_snr
                for i in alone[:spots_per_variant]]
        out.append(float(np.mean(seen)) if seen else 0.0)
    return np.sort(out)[::-1].astype(np.float32)


def _streak_geometry(structure, orientation, hkl, detector, plane):
    """For faults on the {111} `plane` (crystal frame) of a grain of `orientation` (crystal → lab):
    per reflection `hkl` (n, 3) the angle ψ [rad] of the streak on the detector (where a node's
    move along the fault normal takes the spot) and the visibility (1 - cos G·R)/1.5 averaged
    over the plane's three Shockley fault vectors R (0: never streaked; 1: by every one)."""
    n = orientation @ (np.asarray(plane, float) / np.sqrt(3))
    g = structure.g_vectors(hkl) @ orientation.T
    step = 1e-3 * np.linalg.norm(g, axis=1, keepdims=True) * n
    move = np.stack(node_pixels(g + step, detector), -1) - np.stack(node_pixels(g - step, detector), -1)
    shockley = np.stack([np.roll([1.0, 1.0, -2.0], k) * plane / 6 for k in range(3)])
    visibility = np.mean(1 - np.cos(2 * np.pi * np.asarray(hkl, float) @ shockley.T), axis=1) / 1.5
    return np.arctan2(move[:, 1], move[:, 0]), visibility


def fault_evidence(raw, structure, orientation, hkl, detector, *, offsets) -> np.ndarray:
    """For each of the four {111} fault planes of a grain, how much more the spots that faults on
    it would streak are elongated along their predicted streak than the spots they would leave
    sharp: Σ v·e / Σ v - Σ (1 - v)·e / Σ (1 - v), with v the spot's visibility and e = (major -
    minor RMS extent [pixel]) · cos 2(φ - ψ), φ the measured major axis and ψ the predicted
    streak (:func:`_streak_geometry`); sorted, largest first. Geometrically necessary dislocations
    streak every spot alike and cancel; random faults on one plane do not.
    `raw`: the patches of the spots `hkl`; `offsets`: their predicted sub-pixel (dx, dy, ...)."""
    structure = get_structure(structure)
    measures = np.array([_spot_measures(p, o[0], o[1]) for p, o in zip(raw, offsets)])
    elongation = measures[:, 3] - measures[:, 4]
    out = []
    for plane in ((1, 1, 1), (1, 1, -1), (1, -1, 1), (-1, 1, 1)):
        psi, v = _streak_geometry(structure, orientation, hkl, detector, np.array(plane, float))
        e = elongation * (measures[:, 5] * np.cos(2 * psi) + measures[:, 6] * np.sin(2 * psi))
        out.append(np.sum(v * e) / (v.sum() + 1e-6) - np.sum((1 - v) * e) / ((1 - v).sum() + 1e-6))
    return np.sort(out)[::-1].astype(np.float32)


def centroid_fit(features, *, min_snr=3.0, rounds=5, min_spots=8):
    """Least squares of the five deviatoric coefficients and three rotations (×STEP) on the spots'
    centroid shifts (features 19–20) through their motions (features 0–15), over the spots with a
    signal-to-noise ratio ≥ `min_snr` (feature 21 is log₁₀(1 + SNR)), dropping spots whose residual
    exceeds 3 × the median (at least 0.3 pixel) while `min_spots` remain.

    Returns (coefficients (8,), spots used, RMS residual [pixel]); the coefficients are NaN where
    fewer than `min_spots` spots pass, as eight unknowns need them."""
    a = np.stack([f[:16].reshape(8, 2).T for f in features])  # (S, 2, 8): x and y motion per component
    b = np.stack([f[19:21] for f in features])
    keep = 10 ** np.asarray([f[21] for f in features]) - 1 >= min_snr
    if keep.sum() < min_spots:
        return np.full(8, np.nan), int(keep.sum()), np.nan
    for _ in range(rounds):
        coeff, *_ = np.linalg.lstsq(a[keep].reshape(-1, 8), b[keep].reshape(-1), rcond=None)
        residual = np.linalg.norm(a @ coeff - b, axis=1)
        inliers = keep & (residual < max(3 * np.median(residual[keep]), 0.3))
        if inliers.sum() < min_spots or (inliers == keep).all():
            break
        keep = inliers
    return coeff, int(keep.sum()), float(np.sqrt(np.mean(residual[keep] ** 2)))


def fit_strain_from_centroids(features, **kwargs) -> np.ndarray:
    """Classical reading: the deviatoric strain (six components, sample frame) of :func:`centroid_fit`
    (what LaueTools' strain refinement does with matched spots); NaN where it cannot fit."""
    coeff, _, _ = centroid_fit(features, **kwargs)
    return deviatoric_components(np.tensordot(coeff[:5] * STEP, DEVIATORIC_BASIS, axes=1))


def grain_features(features, planar) -> np.ndarray:
    """(16,) grain-level inputs: the twin and fault evidence (8, :func:`spot_inputs`), the centroid
    fit's five strain coefficients (0 where it cannot fit), whether it fitted, the share of the
    spots it used and its RMS residual [pixel] (capped at 3)."""
    coeff, used, residual = centroid_fit(features)
    ok = bool(np.isfinite(coeff).all())
    return np.concatenate([planar, np.nan_to_num(coeff[:5]), [float(ok), used / len(features),
                                                             min(residual, 3.0) if ok else 3.0]]).astype(np.float32)


# --- the network ------------------------------------------------------------------------------

class LaueNet(nn.Module):
    """Spot patches + their motion features (a shared encoder, pooled over the spots by mean and
    max, so the order of the spots does not matter) and a coarse view of the whole frame →
    deviatoric strain (5 coefficients on DEVIATORIC_BASIS, ×10⁻³) and their log-variances,
    log₁₀ density and its log-variance, defect-class logits."""

    def __init__(self, width=8, n_features=26, n_grain_features=16):
        super().__init__()
        w = width
        self.patch = nn.Sequential(ConvBlock(2, 1, w), nn.MaxPool2d(2), ConvBlock(2, w, 2 * w), nn.MaxPool2d(2),
                                   ConvBlock(2, 2 * w, 4 * w), nn.MaxPool2d(2), ConvBlock(2, 4 * w, 8 * w),
                                   nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.spot = nn.Sequential(nn.Linear(8 * w + n_features, 128), nn.LeakyReLU(0.1), nn.Linear(128, 128),
                                  nn.LeakyReLU(0.1))
        self.overview = nn.Sequential(ConvBlock(2, 2, w), nn.MaxPool2d(2), ConvBlock(2, w, 2 * w), nn.MaxPool2d(2),
                                      ConvBlock(2, 2 * w, 4 * w), nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(256 + 4 * w + n_grain_features, 128), nn.LeakyReLU(0.1),
                                  nn.Linear(128, 10 + 2 + len(DEFECT_CLASSES)))

    def forward(self, patches, features, overview, grain):
        """patches (B, S, P, P), features (B, S, F), overview (B, 2, H, W), grain features (B, 16)
        (:func:`grain_features`) → (B, 12 + classes) raw outputs. The strain coefficients are the centroid
        fit's (where it fitted) plus the network's correction."""
        b, s = patches.shape[:2]
        per_spot = self.patch(patches.reshape(b * s, 1, *patches.shape[2:])).reshape(b, s, -1)
        per_spot = self.spot(torch.cat([per_spot, features], dim=-1))
        out = self.head(torch.cat([per_spot.mean(1), per_spot.amax(1), self.overview(overview), grain], dim=-1))
        return torch.cat([out[:, :5] + grain[:, 4:9], out[:, 5:]], dim=1)


def _scale_features(features):
    """Spot motions [pixel per 10⁻³] and centroid shifts [pixel] to order one."""
    f = features.clone()
    f[..., :16] = f[..., :16] / 5.0
    f[..., 19:21] = f[..., 19:21] / 5.0
    f[..., 21] = f[..., 21] / 2.0
    f[..., 22:24] = f[..., 22:24] / 4.0
    return f


@dataclass(frozen=True)
class GrainEstimate:
    """What the network reads from one grain: ``strain`` (3, 3) deviatoric, sample frame, and
    ``strain_sigma`` (3, 3); ``probabilities`` per defect class; ``log_density`` and its
    ``log_density_sigma`` (log₁₀ ρ [1/m²]; meaningful where dislocations are present)."""

    strain: np.ndarray
    strain_sigma: np.ndarray
    probabilities: dict
    log_density: float
    log_density_sigma: float

    @property
    def defect_class(self) -> str:
        return max(self.probabilities, key=self.probabilities.get)

    def to_dict(self) -> dict:
        return {"deviatoric_strain": self.strain.tolist(), "deviatoric_strain_sigma": self.strain_sigma.tolist(),
                "defect_class": self.defect_class, "probabilities": self.probabilities,
                "log10_dislocation_density_m2": self.log_density, "log10_density_sigma": self.log_density_sigma}


class LaueAnalyser:
    """The trained :class:`LaueNet` with its calibration (class temperature, σ scales)."""

    def __init__(self, model: LaueNet, *, temperature=1.0, sigma_scale=1.0, density_sigma_scale=1.0, meta=None):
        self.model = model.eval()
        self.temperature = float(temperature)
        self.sigma_scale = float(sigma_scale)
        self.density_sigma_scale = float(density_sigma_scale)
        self.meta = meta or {}

    @classmethod
    def load(cls, path=None) -> "LaueAnalyser":
        path = Path(path) if path is not None else laue_weights_path()
        if not path.is_file():
            raise FileFormatError(f"no Laue network weights at {path}; train them with "
                                  "python -m braggscope.identify.laue_training")
        state = torch.load(path, map_location="cpu", weights_only=False)
        model = LaueNet(**state["config"])
        model.load_state_dict(state["model"])
        return cls(model, temperature=state["temperature"], sigma_scale=state["sigma_scale"],
                   density_sigma_scale=state["density_sigma_scale"], meta=state.get("meta"))

    def save(self, path, config):
        from braggscope.io.cxi import atomic_path

        state = {"model": self.model.state_dict(), "config": config, "temperature": self.temperature,
                 "sigma_scale": self.sigma_scale, "density_sigma_scale": self.density_sigma_scale, "meta": self.meta}
        with atomic_path(Path(path)) as tmp:
            torch.save(state, tmp)

    @torch.no_grad()
    def raw(self, patches, features, overview, grain) -> torch.Tensor:
        """Raw outputs for batched inputs (numpy or tensors; `grain` from :func:`grain_features`)."""
        t = [torch.as_tensor(np.asarray(a), dtype=torch.float32) for a in (patches, features, overview, grain)]
        return self.model(t[0], _scale_features(t[1]), t[2], t[3])

    def decode(self, out) -> list:
        """GrainEstimates from raw outputs (B, 12 + classes)."""
        out = out.double().numpy()
        coeff, log_var = out[:, :5] * STEP, out[:, 5:10]
        sigma_c = np.exp(0.5 * log_var) * STEP * self.sigma_scale
        strain = np.tensordot(coeff, DEVIATORIC_BASIS, axes=1)
        # σ of each tensor entry from independent coefficient errors
        sigma = np.sqrt(np.tensordot(sigma_c**2, DEVIATORIC_BASIS**2, axes=1))
        probs = torch.softmax(torch.as_tensor(out[:, 12:]) / self.temperature, dim=1).numpy()
        return [GrainEstimate(strain[i], sigma[i], dict(zip(DEFECT_CLASSES, map(float, probs[i]))), float(out[i, 10]),
                              float(np.exp(0.5 * out[i, 11]) * self.density_sigma_scale)) for i in range(len(out))]

    def analyse_grains(self, counts, grains, *, detector=None, beam=None) -> list:
        """:meth:`analyse` for every (structure, orientation) of `grains` in one frame (its overview
        made once): a GrainEstimate per grain, or the ConfigError that says why it cannot be read
        (e.g. too few of its spots on the frame)."""
        detector = detector or LaueDetector()
        pooled = pooled_frame(counts, detector)
        out = []
        for structure, orientation in grains:
            try:
                out.append(self.analyse(counts, structure, orientation, detector=detector, beam=beam, pooled=pooled))
            except ConfigError as err:
                out.append(err)
        return out

    def analyse(self, counts, structure, orientation, *, detector=None, beam=None, pooled=None) -> GrainEstimate:
        """Strain and defect content of the grain of `orientation` (crystal → lab) in the frame `counts`."""
        raw, geometry, overview, planar = spot_inputs(counts, structure, orientation, detector=detector, beam=beam,
                                                     pooled=pooled)
        patches, features = patch_inputs(raw, geometry)
        grain = grain_features(features, planar)
        return self.decode(self.raw(patches[None], features[None], overview[None], grain[None]))[0]


def training_loss(out, strain_coeff, log_density, label):
    """Gaussian negative log-likelihood of the strain coefficients (×10⁻³) and of log₁₀ ρ (only
    where dislocations are present), plus the cross-entropy of the class."""
    mean, log_var = out[:, :5], out[:, 5:10].clamp(-12, 6)
    nll_strain = 0.5 * (log_var + (strain_coeff - mean) ** 2 / log_var.exp()).sum(1).mean()
    has = (label == DEFECT_CLASSES.index("dislocations")) | (label == DEFECT_CLASSES.index("gnd"))
    d_var = out[:, 11].clamp(-8, 4)
    nll_density = (0.5 * (d_var + (log_density - out[:, 10]) ** 2 / d_var.exp()) * has).sum() / has.sum().clamp(min=1)
    return nll_strain + nll_density + nn.functional.cross_entropy(out[:, 12:], label)


def strain_coefficients(components) -> np.ndarray:
    """The five DEVIATORIC_BASIS coefficients (×10⁻³) of six deviatoric components (..., 6)."""
    c = np.asarray(components, dtype=float)
    tensor = np.zeros(c.shape[:-1] + (3, 3))
    for k, (i, j) in enumerate(((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))):
        tensor[..., i, j] = tensor[..., j, i] = c[..., k]
    return np.einsum("...ij,kij->...k", tensor, DEVIATORIC_BASIS) / STEP


def calibrate(analyser: LaueAnalyser, out, coeff, log_density, label):
    """Fit the class temperature and the σ scales on held-out raw outputs."""
    analyser.temperature = fit_temperature(out[:, 12:], label)
    z = (torch.as_tensor(coeff) - out[:, :5]) / torch.exp(0.5 * out[:, 5:10])
    analyser.sigma_scale = float(z.pow(2).mean().sqrt())
    has = np.isin(np.asarray(label), [DEFECT_CLASSES.index("dislocations"), DEFECT_CLASSES.index("gnd")])
    zd = (torch.as_tensor(log_density) - out[:, 10]) / torch.exp(0.5 * out[:, 11])
    analyser.density_sigma_scale = float(zd[torch.as_tensor(has)].pow(2).mean().sqrt()) if has.any() else 1.0
