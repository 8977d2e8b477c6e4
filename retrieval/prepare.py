"""Data preparation before phasing: crop and centre on the Bragg peak, bin, subtract a
background, and mask what the crystal did not scatter (saturated pixels, hot pixels, aliens).

Every function takes counts and a mask (True = pixel not measured, as in
:mod:`braggscope.io.cxi`) and returns new arrays; :func:`prepare` runs the chain and reports
what it masked and why. The first axis of a 3-D array is the rocking frame, the last two are
detector pixels.

Aliens are found by the symmetry of the pattern: a crystal with small strain scatters nearly
the same intensity at q and -q about its Bragg peak (Friedel's law for a real object), so a
compact bright feature whose mirror image is dark was not scattered by the crystal.

>>> import numpy as np
>>> counts = np.zeros((8, 8)); counts[3:6, 3:6] = 100.0
>>> peak_position(counts)
(4.0, 4.0)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from braggscope._validate import check_choice
from braggscope.errors import ConfigError, ShapeError
from braggscope.io.cxi import validate_intensity

__all__ = ["PreparedData", "correct_detector", "peak_position", "crop_around_peak", "bin_pixels", "hot_pixels",
           "find_aliens", "prepare"]


@dataclass(frozen=True)
class PreparedData:
    """Counts ready for phasing and the account of what was done to them.

    Attributes
    ----------
    intensity : ndarray of float32
        [photons] Counts, masked pixels set to 0.
    mask : ndarray of bool
        True = not measured (left free by the Fourier constraint).
    offset : tuple of int
        Index, in the input array, of the crop's first voxel (before binning).
    report : dict
        Voxels masked per reason ('input', 'saturated', 'hot_pixels', 'aliens'), the aliens found
        (centre, voxels, counts) and the steps with their parameters.
    """

    intensity: np.ndarray
    mask: np.ndarray
    offset: tuple
    report: dict = field(default_factory=dict)


def correct_detector(frames, mask=None, *, dark=None, whitefield=None, min_flat=0.2):
    """Dark-subtracted, flat-field-corrected frames and the mask grown by the pixels the white
    field calls dead.

    counts' = max(frames - dark, 0) · mean(W) / W, with W the white field (minus the dark) and
    its mean taken over the live pixels; pixels where W is below `min_flat` of its median are
    masked (dead or shadowed), as are masked pixels (set to 0).

    Parameters
    ----------
    frames : (N, Y, X) ndarray
        [counts] Raw frames.
    mask : ndarray of bool, optional
        True = not measured (gaps, bad pixels).
    dark, whitefield : (Y, X) ndarray, optional
        [counts] The detector's dark image and its response to a uniform illumination.
    """
    counts = np.asarray(frames, dtype=np.float32)
    mask = np.zeros(counts.shape, bool) if mask is None else np.asarray(mask, bool).copy()
    for name, image in (("dark", dark), ("whitefield", whitefield)):
        if image is not None and np.shape(image) != counts.shape[-2:]:
            raise ShapeError(f"the {name} image {np.shape(image)} does not fit frames of {counts.shape[-2:]}",
                             expected=counts.shape[-2:], actual=np.shape(image))
    if dark is not None:
        counts = np.clip(counts - np.asarray(dark, np.float32), 0, None)
    if whitefield is not None:
        flat = np.asarray(whitefield, np.float64) - (0 if dark is None else np.asarray(dark, np.float64))
        dead = ~np.isfinite(flat) | (flat < min_flat * np.median(flat[np.isfinite(flat)]))
        gain = np.where(dead, 0.0, np.mean(flat[~dead]) / np.where(dead, 1.0, flat))
        counts = (counts * gain).astype(np.float32)
        mask |= dead
    return np.where(mask, 0, counts).astype(np.float32), mask


def peak_position(intensity, mask=None, *, method="com", window=5) -> tuple:
    """Position of the Bragg peak, in voxels.

    ``'max'`` is the brightest voxel of the data smoothed over one voxel (a single hot pixel does
    not win); ``'com'`` is the centre of mass of the `window`-wide cube around that maximum."""
    check_choice(method, "peak method", {"com", "max"})
    counts = np.where(mask, 0.0, intensity) if mask is not None else np.asarray(intensity, float)
    smooth = ndimage.uniform_filter(counts, 3)
    top = np.unravel_index(np.argmax(smooth), counts.shape)
    if method == "max":
        return tuple(float(i) for i in top)
    box = tuple(slice(max(t - window // 2, 0), t + window // 2 + 1) for t in top)
    com = ndimage.center_of_mass(counts[box])
    return tuple(float(s.start + c) for s, c in zip(box, com))


def crop_around_peak(intensity, shape, *, mask=None, method="com"):
    """Crop `shape` voxels centred on the Bragg peak (the peak lands on index n//2).

    Where the crop reaches outside the data, voxels are zero and masked.
    Returns (intensity, mask, offset) with offset the input index of the crop's first voxel."""
    intensity, mask = validate_intensity(intensity, mask)
    if len(shape) != intensity.ndim:
        raise ShapeError(f"crop shape {tuple(shape)} does not match {intensity.ndim}-D data",
                         expected=f"{intensity.ndim} sizes", actual=tuple(shape))
    centre = np.rint(peak_position(intensity, mask, method=method)).astype(int)
    offset = tuple(int(c - n // 2) for c, n in zip(centre, shape))
    out = np.zeros(shape, np.float32)
    out_mask = np.ones(shape, bool)
    src = tuple(slice(max(o, 0), min(o + n, size)) for o, n, size in zip(offset, shape, intensity.shape))
    dst = tuple(slice(s.start - o, s.stop - o) for s, o in zip(src, offset))
    out[dst], out_mask[dst] = intensity[src], mask[src]
    return out, out_mask, offset


def bin_pixels(intensity, factors, *, mask=None):
    """Sum counts over blocks of `factors` voxels (one factor per axis; sizes must divide).

    A binned pixel is masked if any of its voxels is: a partial sum would read low."""
    intensity, mask = validate_intensity(intensity, mask)
    factors = (int(factors),) * intensity.ndim if np.isscalar(factors) else tuple(int(f) for f in factors)
    if len(factors) != intensity.ndim or any(f < 1 or n % f for f, n in zip(factors, intensity.shape)):
        raise ConfigError(f"bin factors {factors} must be ≥ 1 and divide the shape {intensity.shape}")
    blocks = tuple(x for n, f in zip(intensity.shape, factors) for x in (n // f, f))
    axes = tuple(range(1, 2 * intensity.ndim, 2))
    binned = np.where(mask, 0, intensity).reshape(blocks).sum(axis=axes)
    return binned.astype(np.float32), mask.reshape(blocks).any(axis=axes)


def _frame_footprint(ndim):
    """3×3 neighbours within a detector frame (the centre excluded)."""
    footprint = np.zeros((1,) * (ndim - 2) + (3, 3), bool)
    footprint[..., :, :] = True
    footprint[(0,) * (ndim - 2) + (1, 1)] = False
    return footprint


def _filled(counts, mask):
    """Counts with each masked voxel replaced by its nearest measured one, so that gaps do not
    read as dark neighbours."""
    if not mask.any():
        return counts
    nearest = ndimage.distance_transform_edt(mask, return_distances=False, return_indices=True)
    return counts[tuple(nearest)]


def hot_pixels(intensity, mask=None, *, ratio=8.0, significance=8.0, min_counts=20.0):
    """Pixels far brighter than every one of their 8 neighbours in the same detector frame.

    A pixel is hot when its counts exceed `ratio` × (its brightest neighbour + 1), stand
    `significance` Poisson standard deviations above it, and reach `min_counts`. At the
    oversampling BCDI needs (≥ 2) a speckle's neighbour holds at least 0.4 of its peak (sinc² at
    half a fringe), so a real speckle is never alone. Masked neighbours are left out.
    Returns a bool array (True = hot)."""
    intensity, mask = validate_intensity(intensity, mask)
    counts = np.where(mask, 0, intensity)
    brightest = ndimage.maximum_filter(counts, footprint=_frame_footprint(counts.ndim), mode="nearest")
    return (counts > ratio * (brightest + 1)) & (counts - brightest > significance * np.sqrt(brightest + 1)) & \
        (counts >= min_counts) & ~mask


def _mirror(a, centre2):
    """a(K - p) with K = `centre2` (twice the peak position, rounded): the pattern reflected
    through its peak. Voxels whose mirror falls outside the array get NaN."""
    out = np.full(a.shape, np.nan)
    src, dst = [], []
    for k, n in zip(centre2, a.shape):
        lo, hi = max(k - n + 1, 0), min(k, n - 1)  # p such that 0 ≤ K - p < n
        dst.append(slice(lo, hi + 1))
        src.append(slice(k - hi, k - lo + 1))
    out[tuple(dst)] = np.flip(a[tuple(src)])
    return out


def find_aliens(intensity, mask=None, *, ratio=10.0, significance=6.0, min_counts=20.0, grow=1, centre=None):
    """Aliens: compact bright features that break the centro-symmetry of the crystal's pattern.

    A voxel is an alien candidate when its counts exceed `ratio` × (the brightest of the 3×3×3
    voxels around its mirror through the peak, + 1) by `significance` Poisson standard
    deviations, with at least `min_counts`. Candidates are grouped into connected features; each
    extends over its faint wings (connected voxels still 2 × and 3 σ above their mirror, a
    hysteresis threshold) and then by `grow` voxels. A mirror in a masked pixel is read from its
    nearest measured neighbour and must be beaten by 3 × `ratio`; where the mirror falls outside
    the array, a feature is kept only if it is detached from the crystal's pattern (the region
    connected to the peak above the background).

    Returns
    -------
    aliens : ndarray of bool
    features : list of dict
        Per alien: centre (voxel index), voxels, counts.
    """
    intensity, mask = validate_intensity(intensity, mask)
    counts = np.where(mask, 0, intensity).astype(float)
    centre = peak_position(counts, mask) if centre is None else centre
    k2 = tuple(int(round(2 * c)) for c in centre)
    filled = _filled(counts, mask)
    mirror = _mirror(ndimage.maximum_filter(filled, 5), k2)
    unknown = np.isnan(mirror)
    guessed = _mirror(mask.astype(float), k2) > 0  # mirror in a gap: read from its nearest neighbour
    smooth = ndimage.uniform_filter(filled, 3)
    background = max(float(np.percentile(smooth, 5)), 0.0)
    ref = np.where(unknown, background, mirror)
    excess = lambda factor, z: (counts > factor * (ref + 1)) & (counts - ref > z * np.sqrt(ref + 1)) & ~mask
    judged = ~unknown | ~_central_region(smooth, centre, background)  # no mirror: only away from the crystal
    candidate = excess(np.where(guessed, 3 * ratio, ratio), significance) & (counts >= min_counts) & judged
    labels, n = ndimage.label(candidate, structure=np.ones((3,) * counts.ndim))
    features = [{"centre": [int(round(c)) for c in ndimage.center_of_mass(labels == i)],
                 "voxels": int(size), "counts": float(total)}
                for i, size, total in zip(range(1, n + 1), ndimage.sum_labels(candidate, labels, range(1, n + 1)),
                                          ndimage.sum_labels(counts, labels, range(1, n + 1)))]
    wings = excess(2.0, 3.0) & judged
    aliens = ndimage.binary_propagation(candidate, structure=np.ones((3,) * counts.ndim), mask=wings | candidate)
    if grow:
        aliens = ndimage.binary_dilation(aliens, iterations=int(grow)) & ~mask
    return aliens, features


def _central_region(smooth, centre, background):
    """Voxels connected to the peak through a local mean count (`smooth`, over 3×3×3 voxels)
    1 photon and 3 standard deviations above the `background`."""
    labels, _ = ndimage.label(smooth > background + 1 + 3 * np.sqrt(background / 27))
    at_peak = labels[tuple(int(round(c)) for c in centre)]
    return labels == at_peak if at_peak else np.zeros(smooth.shape, bool)


def prepare(intensity, mask=None, *, shape=None, centre="com", bin=1, background=0.0, saturation=None,
            remove_hot_pixels=True, remove_aliens=True) -> PreparedData:
    """The usual chain before phasing, with a report of every masked voxel.

    Parameters
    ----------
    intensity : (Z, Y, X) or (Y, X) ndarray
        [photons] Raw counts (frames first).
    mask : ndarray of bool, optional
        True = known bad (gaps, dead pixels).
    shape : tuple of int, optional
        Crop this many voxels around the peak (before binning); the whole array if omitted.
    centre : {'com', 'max'}
        How the peak is located for the crop.
    bin : int or tuple of int
        Binning factor per axis, applied after the crop.
    background : float
        [photons/pixel] Subtracted from every pixel; what falls below 0 becomes 0.
    saturation : float, optional
        [photons] Pixels at or above this are masked.
    remove_hot_pixels, remove_aliens : bool
        Detect and mask them (:func:`hot_pixels`, :func:`find_aliens`).
    """
    counts, mask = validate_intensity(intensity, mask)
    masked = {"input": int(mask.sum())}
    if saturation is not None:
        saturated = (counts >= saturation) & ~mask
        masked["saturated"] = int(saturated.sum())
        mask = mask | saturated
    if remove_hot_pixels:
        hot = hot_pixels(counts, mask)
        masked["hot_pixels"] = int(hot.sum())
        mask = mask | hot
    offset = (0,) * counts.ndim
    if shape is not None:
        counts, mask, offset = crop_around_peak(counts, shape, mask=mask, method=centre)
    counts = np.clip(counts - background, 0, None) if background else counts
    if bin != 1:
        counts, mask = bin_pixels(counts, bin, mask=mask)
    features = []
    if remove_aliens:
        aliens, features = find_aliens(counts, mask)
        masked["aliens"] = int(aliens.sum())
        mask = mask | aliens
    counts = np.where(mask, 0, counts).astype(np.float32)
    if not (counts > 0).any():
        raise ConfigError("nothing is left after data preparation: every pixel is masked or zero")
    report = {"masked_voxels": masked, "aliens": features, "offset": list(offset),
              "steps": {"shape": list(shape) if shape is not None else None, "centre": centre, "bin": bin,
                        "background": background, "saturation": saturation,
                        "remove_hot_pixels": remove_hot_pixels, "remove_aliens": remove_aliens}}
    return PreparedData(intensity=counts, mask=mask, offset=offset, report=report)
