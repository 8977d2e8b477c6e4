"""Sample selection: a quick, coarse pre-scan of each candidate crystal, and the ranking of which
are worth a full scan — by size (does it fit the window with oversampling ≥ 2), signal (how long
a full scan must count), and signs of defects (a Bragg peak that breaks Friedel symmetry).

A perfect, unstrained crystal diffracts a centrosymmetric pattern, I(G + q) = I(G - q); strain
and defects break that symmetry, so the Friedel asymmetry beyond what Poisson noise gives is a
sign of them that needs no reconstruction.
"""
from __future__ import annotations

import numpy as np

from braggscope._validate import check_choice
from braggscope.errors import ConfigError
from braggscope.io.cxi import validate_intensity
from braggscope.retrieval.neural import estimate_oversampling
from braggscope.retrieval.prepare import peak_position

from .sampling import (MIN_OVERSAMPLING, Instrument, Scan, distance_for_oversampling, formula_design,
                       step_for_oversampling, scan_geometry)

__all__ = ["coarse_scan", "friedel_asymmetry", "assess", "rank_crystals"]


def coarse_scan(size, material, hkl, instrument: Instrument = Instrument(), *, frames=16, count_time=0.05,
                sigma=4.0) -> Scan:
    """A pre-scan of a crystal believed to be about `size` [nm]: `frames` frames of `count_time`
    [s], the detector plane and the rocking curve oversampled `sigma` times (generous, so that a
    crystal larger than believed is still sampled)."""
    step = step_for_oversampling(sigma, instrument, material, hkl, size)
    return Scan(rocking_range=frames * step, rocking_step=step, count_time=count_time,
                detector_distance=distance_for_oversampling(sigma, instrument, material, hkl, size), hkl=hkl)


def friedel_asymmetry(intensity, mask=None) -> float:
    """Σ|I(q) - I(-q)| over Σ(I(q) + I(-q)) about the peak's centre of mass, less what Poisson
    noise alone gives (E|ΔI| ≈ √(2 (I₁ + I₂) / π) for two draws of equal mean): about 0 for a
    perfect crystal, up to 1 for a strongly strained one."""
    intensity, mask = validate_intensity(intensity, mask)
    centre = np.round(peak_position(intensity, mask)).astype(int)
    half = [min(c, n - 1 - c) for c, n in zip(centre, intensity.shape)]
    if min(half) < 2:
        raise ConfigError("the peak sits on the edge of the array: no Friedel pairs to compare")
    box = tuple(slice(c - h, c + h + 1) for c, h in zip(centre, half))
    i, m = intensity[box].astype(float), mask[box]
    flip = (slice(None, None, -1),) * i.ndim
    mirrored, mirrored_mask = i[flip], m[flip]
    use = ~m & ~mirrored_mask
    total = i[use] + mirrored[use]
    noise = np.sqrt(2 * total / np.pi)
    return float(max(np.sum(np.abs(i[use] - mirrored[use]) - noise), 0.0) / max(total.sum(), 1e-30))


def assess(intensity, mask, scan: Scan, material, *, instrument: Instrument = Instrument(), name=None) -> dict:
    """What a pre-scan says about one crystal.

    Returns
    -------
    dict
        name; peak_rate [photons/s at the peak pixel]; size [nm], the largest extent from the
        autocorrelation; oversampling per axis at the pre-scan; asymmetry (Friedel, noise
        removed); saturated (pixels over the count-rate limit); full_scan: the formula design
        for the measured size as a dict, with its count time [s]."""
    intensity, mask = validate_intensity(intensity, mask)
    sigma = estimate_oversampling(intensity, mask)
    voxel = scan_geometry(scan, instrument, material).object_voxel(intensity.shape)
    extent = np.array(intensity.shape) / sigma * np.linalg.norm(voxel, axis=0)  # [nm] per array axis
    size = float(extent.max())
    peak_rate = float(intensity[~mask].max() / scan.count_time) if (~mask).any() else 0.0
    saturated = int(np.sum(intensity >= instrument.saturation_counts(scan.count_time)))  # clipped at the limit
    volume = float(np.pi / 6 * np.prod(extent))  # the ellipsoid in the measured extents
    design = formula_design(size, material, scan.hkl, instrument, volume=volume)
    return {"name": name, "peak_rate": peak_rate, "size": size, "oversampling": [float(s) for s in sigma],
            "asymmetry": friedel_asymmetry(intensity, mask), "saturated": saturated,
            "full_scan": {**design.scan.as_dict(), "reasons": design.reasons}}


def rank_crystals(assessments, *, goal="defects", min_peak_rate=100.0, max_size=None) -> list[dict]:
    """Rank pre-scanned crystals for a full scan.

    A crystal is worth it when its pre-scan was oversampled at least twice in every direction
    (its size is what was measured), its peak counts at least `min_peak_rate` [photons/s] (a full
    scan can reach signal at its window's edge), and it is no larger than `max_size` [nm] (the
    window's resolution). Among those, ``goal='defects'`` puts the strongest Friedel asymmetry
    first (the likeliest defects), ``goal='signal'`` the brightest peak. Each entry gains 'rank'
    (1 = best; 0 = not worth a full scan) and 'reasons'."""
    check_choice(goal, "goal", {"defects", "signal"})
    out = []
    for a in assessments:
        reasons = []
        if min(a["oversampling"]) < MIN_OVERSAMPLING:
            reasons.append(f"undersampled pre-scan (oversampling {min(a['oversampling']):.1f}): larger than believed")
        if a["peak_rate"] < min_peak_rate:
            reasons.append(f"weak: {a['peak_rate']:.3g} ph/s at the peak")
        if max_size is not None and a["size"] > max_size:
            reasons.append(f"{a['size']:.0f} nm is over the {max_size:.0f} nm the window resolves")
        if a["saturated"]:
            reasons.append(f"{a['saturated']} saturated pixels: measure it farther away")
        out.append({**a, "worth": not [r for r in reasons if "saturated" not in r], "reasons": reasons})
    key = (lambda a: -a["asymmetry"]) if goal == "defects" else (lambda a: -a["peak_rate"])
    ranked = sorted([a for a in out if a["worth"]], key=key) + [a for a in out if not a["worth"]]
    for i, a in enumerate(ranked):
        a["rank"] = i + 1 if a["worth"] else 0
        if a["worth"]:
            a["reasons"].insert(0, f"asymmetry {a['asymmetry']:.3f}, {a['peak_rate']:.3g} ph/s, {a['size']:.0f} nm")
    return ranked
