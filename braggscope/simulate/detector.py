"""A pixel detector in front of the diffracted intensity: partial coherence, photon budget,
background, Poisson noise, aliens, hot pixels, module gaps and saturation.

The first axis of a 3-D array is the rocking frame and the last two are detector pixels, so a
hot pixel or a gap is the same pixel in every frame. Everything random is drawn from `rng`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._validate import check_choice, check_finite
from ..errors import ConfigError, ShapeError
from ..physics import FWHM_PER_SIGMA

__all__ = ["Detector", "Measurement", "measure", "gap_mask", "pixel_integrated", "partially_coherent"]

# (chip size, gap between chips) [pixels] along rows and columns
_GAP_LAYOUTS = {
    "none": None,
    "maxipix": ((256, 4), (256, 4)),   # ESRF Maxipix 2×2: 256-pixel chips, 4-pixel gaps
    "eiger": ((256, 2), (256, 2)),     # Dectris Eiger: 256-pixel chips, 2-pixel gaps (module gaps not in a crop)
}


@dataclass(frozen=True, kw_only=True)
class Detector:
    """Detector and beam properties of a simulated measurement.

    Attributes
    ----------
    photons : float
        Total number of photons in the pattern before background and noise.
    background : float
        [photons/pixel] Mean flat background.
    gaps : {'none', 'maxipix', 'eiger'}
        Module-gap layout; gap pixels read 0 and are masked.
    gap_offset : tuple of int
        [pixels] Row and column of the first gap in the array (default: 5/8 of the size, so a
        gap crosses the pattern near, not on, the peak).
    hot_pixels : int
        Number of hot pixels (same pixel, every frame), reading near saturation.
    saturation : float or None
        [photons] Counts above this are clipped and masked (per pixel and frame).
    aliens : int
        Number of parasitic bright blobs (other crystals' peaks), away from the centre.
    psf_sigma : float
        [pixels] Gaussian blur of the intensity standing for partial coherence (0: none;
        :func:`partially_coherent`, with σ instead of the FWHM).
    noise : bool
        Draw Poisson counts (False keeps the expected counts).
    """

    photons: float = 1e8
    background: float = 0.0
    gaps: str = "none"
    gap_offset: tuple | None = None
    hot_pixels: int = 0
    saturation: float | None = None
    aliens: int = 0
    psf_sigma: float = 0.0
    noise: bool = True

    def __post_init__(self):
        if not np.isfinite(self.photons) or self.photons <= 0:
            raise ConfigError(f"`photons` must be a positive number, got {self.photons!r}")
        if self.background < 0 or self.psf_sigma < 0 or self.hot_pixels < 0 or self.aliens < 0:
            raise ConfigError("background, psf_sigma, hot_pixels and aliens must be ≥ 0")
        if self.saturation is not None and self.saturation <= 0:
            raise ConfigError(f"`saturation` must be positive or None, got {self.saturation!r}")
        check_choice(self.gaps, "gap layout", set(_GAP_LAYOUTS))


@dataclass(frozen=True)
class Measurement:
    """Simulated counts, the mask a user would have, and the truth of what was added.

    Attributes
    ----------
    intensity : ndarray of float32
        [photons] Counts (gaps read 0).
    mask : ndarray of bool
        True where a pixel must be ignored: gaps, saturated pixels. Hot pixels and aliens are
        not in it (data preparation must find them).
    expected : ndarray of float32
        [photons] The crystal's expected counts (after the PSF, scaled to the photon budget),
        without noise, aliens, background or detector defects.
    truth : dict of ndarray of bool
        'gaps', 'hot_pixels', 'aliens' (where an alien adds more than 3 σ of the crystal's
        Poisson noise), 'saturated'.
    """

    intensity: np.ndarray
    mask: np.ndarray
    expected: np.ndarray
    truth: dict = field(default_factory=dict)


def gap_mask(shape, layout, offset=None) -> np.ndarray:
    """Boolean mask of module-gap pixels for a detector-frame array `shape` (frames first)."""
    spec = _GAP_LAYOUTS[check_choice(layout, "gap layout", set(_GAP_LAYOUTS))]
    mask = np.zeros(shape[-2:], dtype=bool)
    if spec is not None:
        offset = tuple(int(5 * n / 8) for n in shape[-2:]) if offset is None else tuple(offset)
        for axis, ((chip, gap), start) in enumerate(zip(spec, offset)):
            idx = np.arange(shape[-2:][axis])
            in_gap = np.mod(idx - start, chip + gap) < gap
            if axis == 0:
                mask[in_gap, :] = True
            else:
                mask[:, in_gap] = True
    return np.broadcast_to(mask, shape).copy()


def pixel_integrated(intensity, width=1.0, shift=0.0) -> np.ndarray:
    """What pixels of finite size record of a point-sampled pattern: `intensity` integrated over a
    box `width` pixels wide along each axis (1: the whole pixel; 0: the point sample), centred
    `shift` pixels past each sample (one value, or one per axis).

    The box mean and the shift multiply the Fourier coefficients of the pattern along an axis by
    sinc(f w) and exp(2πi f s) (f in cycles per pixel). That is exact for a pattern sampled more
    than twice as finely as its fringes (linear oversampling > 2, as BCDI requires): its
    autocorrelation then fits in the array, and the pattern is a trigonometric polynomial of the
    pixel index, with no term at the Nyquist frequency (0.5 cycles per pixel; that term, which an
    oversampled pattern lacks, is dropped). A pattern cut from a larger one rings a little at the
    cut; values below 0 are clipped. Returns float64 of the input's shape."""
    data = np.asarray(intensity, float)
    width = np.broadcast_to(np.asarray(width, float), (data.ndim,))
    shift = np.broadcast_to(np.asarray(shift, float), (data.ndim,))
    if np.any(width < 0) or not (np.all(np.isfinite(width)) and np.all(np.isfinite(shift))):
        raise ConfigError(f"pixel width must be ≥ 0 and finite, shift finite; got {tuple(width)}, {tuple(shift)}")
    return _fourier_filtered(data, [lambda f, w=w, s=s: np.sinc(f * w) * np.exp(2j * np.pi * f * s)
                                    for w, s in zip(width, shift)])


def partially_coherent(intensity, fwhm) -> np.ndarray:
    """The pattern a partially coherent beam gives: the coherent `intensity` convolved with a
    Gaussian point-spread function of `fwhm` [pixels] full width at half maximum (one value, or
    one per axis; 0: fully coherent along that axis), as the PSF model of Clark et al., Nat.
    Commun. 3, 993 (2012) (doi:10.1038/ncomms1994), which the retrieval's PSF refines, has it. A
    detector's charge sharing blurs the same way and adds to it.

    The continuous convolution multiplies the pattern's Fourier coefficients along an axis by
    exp(-2π² σ² f²), σ = fwhm / FWHM_PER_SIGMA: exact for an oversampled pattern, as
    :func:`pixel_integrated` explains (a kernel sampled on the pixels, as scipy's
    ``gaussian_filter`` uses, is not, for σ under a pixel). The convolution is circular.
    Returns float64 of the input's shape, clipped at 0."""
    data = np.asarray(intensity, float)
    fwhm = np.broadcast_to(np.asarray(fwhm, float), (data.ndim,))
    if np.any(fwhm < 0) or not np.all(np.isfinite(fwhm)):
        raise ConfigError(f"PSF width (FWHM) must be ≥ 0 and finite, got {tuple(fwhm)} [pixels]")
    sigma = fwhm / FWHM_PER_SIGMA
    return _fourier_filtered(data, [lambda f, s=s: np.exp(-2 * (np.pi * s * f) ** 2) for s in sigma])


def _fourier_filtered(data, factors) -> np.ndarray:
    """`data` (float64) with its Fourier coefficients multiplied along each axis by `factors[axis](f)`
    (f: fftfreq, cycles per pixel) and the Nyquist term dropped; back in real space, clipped at 0."""
    import scipy.fft

    coefficients = scipy.fft.fftn(data)
    for axis, factor in enumerate(factors):
        f = scipy.fft.fftfreq(data.shape[axis])
        coefficients *= (factor(f) * (np.abs(f) < 0.5)).reshape([-1 if a == axis else 1 for a in range(data.ndim)])
    return np.maximum(scipy.fft.ifftn(coefficients).real, 0.0)


def _alien_blobs(shape, count, peak, rng):
    """Compact Gaussian blobs far from the centre (and not mirrored), as bright as 1e-3..1e-1
    of the Bragg peak. Returns their expected counts."""
    blobs = np.zeros(shape)
    centre = np.array(shape) // 2
    for _ in range(count):
        radius = rng.uniform(0.2, 0.45) * np.array(shape)
        direction = rng.normal(size=len(shape))
        pos = centre + direction / np.linalg.norm(direction) * radius
        sigma = rng.uniform(0.8, 2.0)
        grids = np.ogrid[tuple(slice(0, n) for n in shape)]
        r2 = sum((g - p) ** 2 for g, p in zip(grids, pos))
        blobs += peak * 10 ** rng.uniform(-3, -1) * np.exp(-r2 / (2 * sigma**2))
    return blobs


def measure(intensity, detector: Detector = Detector(), *, rng=None) -> Measurement:
    """Turn a noiseless intensity into what the detector records.

    Parameters
    ----------
    intensity : (Z, Y, X) or (Y, X) ndarray
        Expected intensity (any scale), centred.
    detector : Detector
        Photon budget, background, defects of the detector.
    rng : numpy.random.Generator or int, optional
        Seed of every random draw.

    Returns
    -------
    Measurement
    """
    rng = np.random.default_rng(rng)
    i = np.asarray(intensity, dtype=float)
    if i.ndim not in (2, 3):
        raise ShapeError(f"`intensity` must be 2-D or 3-D, got shape {i.shape}", expected="(Z, Y, X)", actual=i.shape)
    check_finite(i, "intensity")
    if np.any(i < 0) or not np.any(i > 0):
        raise ConfigError("`intensity` must be ≥ 0 and not all zero")
    if detector.psf_sigma > 0:
        i = partially_coherent(i, detector.psf_sigma * FWHM_PER_SIGMA)
    crystal = i * (detector.photons / i.sum())
    aliens = _alien_blobs(i.shape, detector.aliens, crystal.max(), rng)
    alien_mask = aliens > 3 * np.sqrt(crystal + detector.background + 1)  # 3 σ above the noise
    expected = crystal + aliens + detector.background
    counts = rng.poisson(expected).astype(float) if detector.noise else expected
    hot = np.zeros(i.shape, dtype=bool)
    if detector.hot_pixels:
        pixels = rng.choice(int(np.prod(i.shape[-2:])), size=detector.hot_pixels, replace=False)
        hot2d = np.zeros(i.shape[-2:], dtype=bool)
        hot2d.flat[pixels] = True
        hot = np.broadcast_to(hot2d, i.shape).copy()
        level = detector.saturation if detector.saturation is not None else max(counts.max(), 1.0)
        counts[hot] = rng.uniform(0.5, 1.0, hot.sum()) * level
    saturated = np.zeros(i.shape, dtype=bool)
    if detector.saturation is not None:
        saturated = counts > detector.saturation
        counts = np.minimum(counts, detector.saturation)
    gaps = gap_mask(i.shape, detector.gaps, detector.gap_offset)
    counts[gaps] = 0
    return Measurement(intensity=counts.astype(np.float32), mask=gaps | saturated, expected=crystal.astype(np.float32),
                       truth={"gaps": gaps, "hot_pixels": hot, "aliens": alien_mask & ~gaps, "saturated": saturated})
