"""The neural first guess: its physics (loss, ambiguities, re-centring, symmetries), the window
and the way back to the data's grid, the shipped weights' scores, and `reconstruct --seed-net`."""
import json

import numpy as np
import pytest
import torch
from scipy import ndimage

from braggscope.errors import ConfigError
from braggscope.metrics import band_limited, reconstruction_error
from braggscope.retrieval import pynx_available, reconstruct
from braggscope.retrieval.engine import default_chain
from braggscope.retrieval.neural import (NET_SIZE, SEEDED_CYCLES, PhaseNet, default_weights_path,
                                         estimate_oversampling, first_guess, load_phase_net, network_frame,
                                         seeded_chain, starts_from_guess, to_data_grid)
from braggscope.retrieval.neural_training import (TEST_SEED, augment, fine_tune, poisson_loss, recentring_ramp,
                                                  simulate_pattern, supervised_loss)
from braggscope.simulate import Crystal, continuum_intensity, simulate_sample, sphere

N = NET_SIZE // 2


def _intensity(obj, size=NET_SIZE):
    f = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(np.pad(obj, (size - obj.shape[0]) // 2))))
    return np.abs(f) ** 2


@pytest.fixture(scope="module")
def pattern():
    """A held-out pattern of a crystal with a dislocation, at 10⁹ photons without gaps."""
    return simulate_pattern(TEST_SEED + 11, photons=1e9, gaps=False)


def test_poisson_loss_is_blind_to_the_trivial_ambiguities(pattern):
    truth = torch.from_numpy(pattern["truth"])[None]
    counts = torch.from_numpy(_intensity(pattern["truth"]).astype(np.float32))[None] * 1e3
    mask = torch.zeros_like(counts, dtype=torch.bool)
    twin = torch.conj(torch.roll(torch.flip(truth, (1, 2, 3)), (1, 1, 1), (1, 2, 3)))
    for same in (truth, truth * np.exp(1.3j), twin, torch.roll(truth, (2, -1, 3), (1, 2, 3)), truth * 7.0):
        assert float(poisson_loss(same, counts, mask)) == pytest.approx(0.0, abs=1e-4)
    blurred = torch.from_numpy(ndimage.gaussian_filter(pattern["truth"].real, 1) + 0j).to(torch.complex64)[None]
    assert float(poisson_loss(blurred, counts, mask)) > 0.05


def test_supervised_loss_removes_twin_shift_and_global_phase(pattern):
    truth = torch.from_numpy(pattern["truth"])[None]
    support = torch.from_numpy(pattern["support"])[None]
    logit = 20.0 * (support.float() - 0.5)
    twin = lambda a: torch.roll(torch.flip(a, (1, 2, 3)), (1, 1, 1), (1, 2, 3))
    for obj, lg in ((truth, logit), (truth * np.exp(2.0j) * 0.3, logit), (torch.conj(twin(truth)), twin(logit)),
                    (torch.roll(truth, (3, 0, -2), (1, 2, 3)), torch.roll(logit, (3, 0, -2), (1, 2, 3)))):
        error2, bce = supervised_loss(obj, lg, truth, support)
        assert float(error2) < 1e-6 and float(bce) < 1e-3
    wrong, _ = supervised_loss(truth.abs().to(torch.complex64), logit, truth, support)
    assert float(wrong) > 0.01  # the strain phase is not free


def test_recentring_a_pattern_puts_the_ramp_on_the_object():
    rng = np.random.default_rng(0)
    obj = (ndimage.gaussian_filter(rng.normal(size=(N,) * 3), 2) * np.exp(1j * rng.normal(size=(N,) * 3))
           ).astype(np.complex64)
    shift = (2, -1, 3)
    moved = np.roll(_intensity(obj), tuple(-s for s in shift), (0, 1, 2))  # index n//2 + s lands on n//2
    np.testing.assert_allclose(_intensity(obj * recentring_ramp(shift, obj.shape)), moved, rtol=1e-3,
                               atol=1e-4 * moved.max())


def test_augmentations_are_symmetries_of_the_pattern(pattern):
    counts, mask, truth, support = augment(_intensity(pattern["truth"]), pattern["mask"], pattern["truth"],
                                           pattern["support"], np.random.default_rng(3))
    np.testing.assert_allclose(_intensity(truth), counts, rtol=1e-3, atol=1e-5 * counts.max())


def test_training_pattern_is_its_truth_measured(pattern):
    measured = ~pattern["mask"]
    model = _intensity(pattern["truth"])[measured]
    assert np.corrcoef(model, pattern["counts"][measured])[0, 1] > 0.999
    assert pattern["support"].sum() > 1000 and np.abs(pattern["truth"]).max() == pytest.approx(1.0)


def _sphere_pattern(diameter_voxels, size):
    xtal = Crystal(sphere(diameter_voxels * 2.0), "Au")
    s = simulate_sample(xtal, [], shape=(size // 2,) * 3, voxel_size=2.0, hkl=(1, 1, 1))
    return s, continuum_intensity(s.obj, shape=(size,) * 3) * 1e4


@pytest.mark.parametrize("diameter, size, bins", [(20, 64, 1), (22, 128, 1), (14, 128, 2)])
def test_window_keeps_the_oversampling_the_network_knows(diameter, size, bins):
    _, intensity = _sphere_pattern(diameter, size)
    assert estimate_oversampling(intensity) == pytest.approx(np.full(3, size / diameter), rel=0.1)
    frame = network_frame(intensity)
    assert frame.bins == (bins,) * 3 and frame.intensity.shape == (NET_SIZE,) * 3
    assert np.unravel_index(frame.intensity.argmax(), frame.intensity.shape) == (NET_SIZE // 2,) * 3


def test_prediction_goes_back_onto_the_data_grid():
    """A ball of radius 6 network voxels on a 128³ pattern binned 1 (zoom 2) is a ball of radius
    12 data voxels, centred on n // 2."""
    z, y, x = np.indices((N,) * 3) - N // 2
    ball = (z**2 + y**2 + x**2) <= 36
    frame = network_frame(_sphere_pattern(20, 128)[1], bins=1)
    obj, support = to_data_grid(ball * np.exp(0.5j), ball, frame)
    assert support.sum() == pytest.approx(8 * ball.sum(), rel=0.05)
    assert ndimage.center_of_mass(support) == pytest.approx((64, 64, 64), abs=0.5)
    assert np.angle(obj[64, 64, 64]) == pytest.approx(0.5, abs=1e-5)


def test_network_is_2d_and_3d():
    for dims in (2, 3):
        out = PhaseNet(features=(4, 8, 8, 8), spatial_dims=dims)(torch.zeros((2, 2) + (NET_SIZE,) * dims))
        assert out.shape == (2, 4) + (N,) * dims


def test_missing_weights_and_wrong_dimension_say_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="no trained phase network"):
        load_phase_net(3, tmp_path / "none.pt")
    with pytest.raises(ConfigError, match="3-D but the data are 2-D"):
        first_guess(np.ones((NET_SIZE, NET_SIZE)), net=PhaseNet(features=(4, 8, 8, 8)))


def test_fine_tuning_on_a_measurement_lowers_its_poisson_loss(pattern):
    torch.manual_seed(0)
    net = PhaseNet(features=(4, 8, 8, 8))
    before = first_guess(pattern["counts"], pattern["mask"], net=net, device="cpu")
    losses = fine_tune(net, pattern["counts"], pattern["mask"], steps=15, lr=1e-2)
    assert losses[-1] < 0.7 * losses[0]
    after = first_guess(pattern["counts"], pattern["mask"], net=net, device="cpu")
    assert not np.allclose(before.obj, after.obj)


needs_weights = pytest.mark.skipif(not default_weights_path(3).is_file(), reason="no shipped 3-D weights")


@pytest.mark.parametrize("ndim, limit", [(3, 0.6), (2, 0.45)])  # benchmark medians: 0.36 (3-D), 0.26 (2-D)
def test_shipped_network_guesses_held_out_crystals(ndim, limit):
    """The network alone on 6 held-out patterns (never in training): the DESIGN.md error, and its
    support against the true one."""
    if not default_weights_path(ndim).is_file():
        pytest.skip(f"no shipped {ndim}-D weights")
    net = load_phase_net(ndim)
    errors, ratios = [], []
    for i in range(6):
        p = simulate_pattern(TEST_SEED + 200 + i, ndim=ndim, photons=10.0 ** (7 + i % 3))
        guess = first_guess(p["counts"], p["mask"], net=net, device="cpu")
        errors.append(reconstruction_error(guess.obj, band_limited(p["truth"], p["counts"].shape))["error"])
        ratios.append(guess.net_support.sum() / p["support"].sum())
    assert np.median(errors) < limit
    assert 0.7 < np.median(ratios) < 1.4


@needs_weights
@pytest.mark.slow
def test_seeded_refinement_beats_random_starts_at_the_same_cycles():
    net = load_phase_net(3)
    seeded, random = [], []
    for i in range(4):
        p = simulate_pattern(TEST_SEED + 300 + i, photons=1e8)
        truth = band_limited(p["truth"], p["counts"].shape)
        guess = first_guess(p["counts"], p["mask"], net=net, device="cpu")
        run = lambda recipe, **start: reconstruct(p["counts"], recipe, mask=p["mask"], rng=i, **start).obj[0]
        seeded.append(reconstruction_error(run(seeded_chain(), obj=guess.obj, support=guess.support), truth)["error"])
        random.append(reconstruction_error(run(default_chain(SEEDED_CYCLES)), truth)["error"])
    assert np.median(seeded) < np.median(random)


def test_a_training_stage_starts_from_earlier_weights_and_keeps_their_recipe(tmp_path):
    from braggscope.retrieval.neural_training import main, save_weights

    torch.manual_seed(0)
    earlier = PhaseNet(features=(4, 8, 8, 8), spatial_dims=2)
    save_weights(earlier, tmp_path / "stage1.pt", scores={}, recipe={"seed": 0, "steps": 5})
    main(["--ndim", "2", "--init", str(tmp_path / "stage1.pt"), "--seed", "3", "--steps", "3", "--batch", "2",
          "--test", "2", "--out", str(tmp_path / "stage2.pt")])
    stage2 = torch.load(tmp_path / "stage2.pt", weights_only=True)
    recipe = json.loads(stage2["recipe"])
    assert recipe["init"] == {"seed": 0, "steps": 5} and recipe["seed"] == 3
    assert recipe["features"] == [4, 8, 8, 8] and tuple(stage2["config"]["features"]) == (4, 8, 8, 8)
    # three small steps from the earlier weights: moved, but nowhere near a fresh initialisation's distance
    change = max(float((stage2["weights"][k] - v.detach()).abs().max())
                 for k, v in earlier.named_parameters())
    assert 0 < change < 0.05


def test_starts_spread_around_the_guess(pattern):
    guess = first_guess(pattern["counts"], pattern["mask"], net=PhaseNet(features=(4, 8, 8, 8)), device="cpu")
    starts = starts_from_guess(guess, 3, rng=0, spread=0.3)
    assert starts.shape == (3,) + guess.obj.shape
    np.testing.assert_array_equal(starts[0], guess.obj)
    dphi = np.angle(starts[1] * np.conj(guess.obj))[guess.support & (np.abs(guess.obj) > 0)]
    assert dphi.std() == pytest.approx(0.3, rel=0.2)
    np.testing.assert_allclose(np.abs(starts[2]), np.abs(guess.obj), rtol=1e-5)


@pytest.fixture
def small_weights(tmp_path, monkeypatch):
    """A small untrained network saved where the CLI looks for the 3-D weights (2-D: none)."""
    from braggscope.retrieval import neural
    from braggscope.retrieval.neural_training import save_weights

    torch.manual_seed(0)
    path = tmp_path / "phase_net_3d.pt"
    save_weights(PhaseNet(features=(4, 8, 8, 8)), path, scores={}, recipe={})
    monkeypatch.setattr(neural, "default_weights_path", lambda dims=3: tmp_path / f"phase_net_{dims}d.pt")
    return path


def test_cli_reconstruct_seeds_from_the_network(tmp_path, small_weights, capsys):
    from braggscope.cli import main
    from braggscope.io import read_result

    data = tmp_path / "d.npz"
    p = simulate_pattern(TEST_SEED + 11, photons=1e8)
    np.savez(data, data=p["counts"], mask=p["mask"])
    out = tmp_path / "r.cxi"
    assert main(["reconstruct", str(data), "--out", str(out), "--runs", "2", "--algorithm", "ER**10", "-q"]) == 0
    assert "from the network's guess starts" in capsys.readouterr().out
    assert read_result(out)[3]["seed_net"]
    assert main(["reconstruct", str(data), "--out", str(tmp_path / "r2.cxi"), "--runs", "1", "--algorithm",
                 "ER**10", "--no-seed-net", "-q"]) == 0
    assert "from random starts" in capsys.readouterr().out


def test_a_seeded_start_refines_the_guess_by_the_tighter_seeded_chain(small_weights):
    from braggscope.retrieval import DEFAULT_RECIPE, network_start

    p = simulate_pattern(TEST_SEED + 11, photons=1e8)
    start, guess = network_start(p["counts"], p["mask"], n_runs=2, seed_net=True, rng=0, device="cpu")
    assert start["recipe"] == seeded_chain(SEEDED_CYCLES) != default_chain(SEEDED_CYCLES)
    assert start["obj"].shape == (2,) + p["counts"].shape and np.array_equal(start["support"], guess.support)
    assert network_start(p["counts"], p["mask"], n_runs=2, seed_net=False) == ({"recipe": DEFAULT_RECIPE}, None)


def test_cli_seed_net_without_weights_exits_2(tmp_path, small_weights, capsys):
    from braggscope.cli import main

    data = tmp_path / "d2.npy"
    np.save(data, _intensity(np.ones((N, N)) + 0j))
    out = tmp_path / "r.cxi"
    assert main(["reconstruct", str(data), "--out", str(out), "--seed-net", "-q"]) == 2
    err = capsys.readouterr().err
    assert "no trained phase network" in err and len(err.strip().splitlines()) == 1 and not out.exists()


@needs_weights
@pytest.mark.skipif(not pynx_available(), reason="PyNX not importable (make test puts it on the path)")
def test_pynx_refines_the_network_guess():
    p = simulate_pattern(TEST_SEED + 301, photons=1e8)
    truth = band_limited(p["truth"], p["counts"].shape)
    guess = first_guess(p["counts"], p["mask"], device="cpu")
    refined = reconstruct(p["counts"], seeded_chain(), mask=p["mask"], obj=guess.obj,
                          support=guess.support, backend="pynx")
    assert reconstruction_error(refined.obj[0], truth)["error"] < reconstruction_error(guess.obj, truth)["error"]


def test_oversampling_estimate_under_module_gaps():
    """Module gaps near the Bragg peak (the held-out classifier patterns measured with a Maxipix
    cross, 26 of 60): the nearest-pixel fill's error lifts the autocorrelation along each gap's
    normal. With the profile's floor taken off, a fifth of the axes (0.21) reads more than 20 %
    off the gap-free estimate; with the floor left in, 0.38 did (a floor as high as the array is
    wide). Not a cure: with most of the peak under the gap no fill is right."""
    from braggscope.identify.patterns import TEST_SEED as PATTERN_TEST_SEED, detector_counts
    from braggscope.identify.patterns import simulate_pattern as labelled_pattern

    off = []
    for i in range(60):
        expected = labelled_pattern(PATTERN_TEST_SEED + i).expected
        counts, mask = detector_counts(expected, 1e8, rng=i)
        if mask.any():
            off.append(np.abs(estimate_oversampling(counts, mask) / estimate_oversampling(expected * 1e8) - 1))
    assert len(off) == 26 and np.mean(np.array(off) > 0.2) < 0.3
