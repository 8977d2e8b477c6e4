"""Data preparation: crop, bin, hot pixels and aliens on simulated data whose truth is known."""
import numpy as np
import pytest

from braggscope.errors import ConfigError, FileFormatError, ShapeError
from braggscope.retrieval.prepare import bin_pixels, crop_around_peak, find_aliens, hot_pixels, peak_position, prepare
from braggscope.simulate import Crystal, Detector, random_crystal, random_defects, simulate_bcdi, truncated_octahedron


def _speckles(shape, rng, photons=1e7):
    """A random speckle pattern at oversampling 2 (|FFT|² of a random object half the array)."""
    obj = np.zeros(shape, complex)
    inner = tuple(slice(n // 4, 3 * n // 4) for n in shape)
    obj[inner] = rng.normal(size=obj[inner].shape) + 1j * rng.normal(size=obj[inner].shape)
    i = np.abs(np.fft.fftshift(np.fft.fftn(obj))) ** 2
    return rng.poisson(i * photons / i.sum()).astype(np.float32)


def test_peak_position_and_crop_centre_the_peak():
    counts = np.zeros((20, 30, 40), np.float32)
    counts[12, 7, 25] = 100
    counts[11:14, 6:9, 24:27] += 10
    assert peak_position(counts, method="max") == (12.0, 7.0, 25.0)
    assert np.allclose(peak_position(counts), (12, 7, 25), atol=1e-6)
    out, mask, offset = crop_around_peak(counts, (8, 16, 16))
    assert out[4, 8, 8] == counts.max() and offset == (8, -1, 17)
    assert mask[:, 0, :].all() and not mask[:, 1:, :].any()  # row -1 lies outside the data
    with pytest.raises(ShapeError):
        crop_around_peak(counts, (8, 8))


def test_binning_sums_counts_and_masks_partial_bins(rng):
    counts = rng.poisson(5.0, (8, 8, 8)).astype(np.float32)
    mask = np.zeros(counts.shape, bool)
    mask[0, 0, 0] = True
    binned, bmask = bin_pixels(counts, 2, mask=mask)
    assert binned.shape == (4, 4, 4) and bmask[0, 0, 0] and bmask.sum() == 1
    assert binned.sum() == counts[~mask].sum()
    with pytest.raises(ConfigError, match="divide"):
        bin_pixels(counts, 3)


def test_hot_pixels_are_found_and_speckles_are_not(rng):
    counts = _speckles((16, 64, 64), rng)
    hot = np.zeros(counts.shape, bool)
    hot[:, 10, 50] = hot[:, 40, 3] = True
    counts[hot] = 5e4
    found = hot_pixels(counts)
    assert found[hot].mean() > 0.9 and not found[~hot].any()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_aliens_on_defective_crystals_recall_and_false_positives(seed):
    rng = np.random.default_rng(seed)
    xtal = random_crystal(rng, size=(80, 160))
    defects = random_defects(xtal, rng, count=(1, 2), kinds=("dislocation", "loop", "stacking_fault"))
    d = simulate_bcdi(xtal, defects, hkl=(1, 1, 1), shape=(40,) * 3, voxel_size=5.0, data_shape=(64,) * 3,
                      detector=Detector(photons=1e8, aliens=3, gaps="maxipix"), rng=seed)
    m = d.measurement
    aliens, features = find_aliens(m.intensity, m.mask)
    truth = m.truth["aliens"]
    excess = m.intensity - m.expected
    assert excess[aliens & truth].sum() > 0.9 * excess[truth].sum()  # alien photons masked
    clean = ~truth & ~m.mask
    assert (aliens & clean).sum() < 0.005 * clean.sum()
    assert 1 <= len(features) <= 6


def test_prepare_reports_what_it_masked():
    xtal = Crystal(truncated_octahedron(120.0), "Pt")
    d = simulate_bcdi(xtal, hkl=(1, 1, 1), shape=(32,) * 3, voxel_size=6.0, data_shape=(64,) * 3,
                      detector=Detector(photons=1e8, hot_pixels=3, aliens=2, saturation=2e6, gaps="maxipix"), rng=4)
    m = d.measurement
    p = prepare(m.intensity, m.mask, shape=(48, 48, 48), saturation=2e6)
    assert p.intensity.shape == (48,) * 3 and p.offset == (8, 8, 8)
    counted = p.report["masked_voxels"]
    assert counted["input"] == m.mask.sum() and counted["hot_pixels"] > 0 and counted["aliens"] > 0
    assert (p.intensity[p.mask] == 0).all()
    with pytest.raises(ConfigError, match="NaN"):
        prepare(np.full((8, 8, 8), np.nan))
    with pytest.raises(FileFormatError, match="negative"):
        prepare(-np.ones((8, 8, 8)))
