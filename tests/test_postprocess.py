"""After the runs: twin flip, phase ramp, centring, mode decomposition and PRTF."""
import numpy as np
import pytest

from braggscope.metrics import reconstruction_error
from braggscope.retrieval import combine_runs, flip_twin, prtf, reconstruct, remove_phase_ramp
from braggscope.retrieval.postprocess import centre_object
from braggscope.simulate import continuum_intensity


def test_twin_has_the_same_intensity_and_keeps_the_centre(rng):
    obj = np.zeros((9, 10, 12), complex)
    obj[3:6, 4:8, 5:9] = rng.normal(size=(3, 4, 4)) + 1j * rng.normal(size=(3, 4, 4))
    twin = flip_twin(obj)
    intensity = lambda o: np.abs(np.fft.fftn(np.fft.ifftshift(o))) ** 2  # float64, unlike continuum_intensity
    np.testing.assert_allclose(intensity(twin), intensity(obj), rtol=1e-6, atol=1e-9)
    point = np.zeros((8, 8)); point[4, 4] = 1
    assert flip_twin(point)[4, 4] == 1
    np.testing.assert_allclose(flip_twin(flip_twin(obj)), obj)
    support = np.abs(obj) > 0  # a support is inverted with the object and stays a mask
    assert flip_twin(support).dtype == bool
    np.testing.assert_array_equal(flip_twin(support), np.abs(twin) > 0)


def test_phase_ramp_and_global_phase_are_removed_through_wraps():
    support = np.zeros((20, 24, 28), bool)
    support[4:16, 5:19, 6:22] = True
    z, y, x = np.meshgrid(*[np.arange(n) - n // 2 for n in support.shape], indexing="ij")
    ramp = (0.9, -1.7, 2.5)  # steep: the phase wraps many times across the crystal
    obj = support * np.exp(1j * (ramp[0] * z + ramp[1] * y + ramp[2] * x + 2.0))
    flat, found = remove_phase_ramp(obj, support)
    np.testing.assert_allclose(found, ramp, atol=1e-5)
    assert np.abs(np.angle(flat[support])).max() < 1e-4


def test_centring_moves_the_support_to_the_middle():
    support = np.zeros((16, 16), bool)
    support[1:5, 10:14] = True
    obj, sup = centre_object(support.astype(complex), support)
    com = np.argwhere(sup).mean(axis=0)
    assert np.all(np.abs(com - 8) <= 0.5) and sup.sum() == 16 and np.array_equal(obj != 0, sup)


def test_mode_of_the_best_runs_beats_each_run(small_crystal_counts):
    truth, counts = small_crystal_counts
    r = reconstruct(counts, n_runs=5, rng=1, device="cpu")
    sol = combine_runs(r, counts, keep=3)
    truth_flat, _ = remove_phase_ramp(truth, np.abs(truth) > 0.2 * np.abs(truth).max())
    err = reconstruction_error(sol.obj, truth_flat)["error"]
    singles = [reconstruction_error(remove_phase_ramp(o, s)[0], truth_flat)["error"] for o, s in zip(r.obj[:3], r.support[:3])]
    assert err < 0.03 and err <= min(singles) + 1e-3
    assert sol.mode_fraction > 0.99 and (sol.run_errors < 0.05).all()
    assert 0.5 < sol.llk < 1.5 and sol.free_llk > 0.5
    assert sol.obj[24, 24, 24] != 0 and abs(np.angle(sol.obj[sol.support].sum())) < 1e-3
    assert sol.prtf["resolution"] < 2.5  # voxels: noise at 1e8 photons reaches the data's edge


def test_prtf_falls_where_the_runs_disagree(rng):
    obj = np.zeros((64, 64), complex)
    obj[24:40, 20:44] = 1
    intensity = continuum_intensity(obj)
    same = prtf(np.array([obj, obj]), intensity)
    assert np.nanmin(same["prtf"]) > 0.99 and same["resolution"] == pytest.approx(1.0, abs=0.05)
    # runs that agree on the phases below 0.25 cycles/voxel and not above: resolution 2 voxels
    f = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(obj)))
    q = np.hypot(*np.meshgrid(*[(np.arange(64) - 32) / 64] * 2, indexing="ij"))
    runs = [np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(f * np.exp(2j * np.pi * rng.uniform(size=f.shape) * (q > 0.25)))))
            for _ in range(16)]
    assert prtf(np.array(runs), intensity)["resolution"] == pytest.approx(2.0, rel=0.1)
