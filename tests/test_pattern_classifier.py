"""Defect recognition from the diffraction pattern: the labelled patterns' physics, the input,
calibration and out-of-distribution tools, the shipped networks' scores on held-out patterns, the CLI."""
import json

import numpy as np
import pytest
import torch

from braggscope.cli import main
from braggscope.errors import ConfigError
from braggscope.identify.classifier import (PatternClassifier, PatternNet, expected_calibration_error,
                                            fit_temperature, fit_temperature_and_bias, mahalanobis_fit,
                                            mahalanobis_score, pattern_bins, pattern_input, prepare_pattern,
                                            symmetry_views)
from braggscope.identify.pattern_training import noisy_batch, sampling_probabilities
from braggscope.identify.patterns import (MIN_CONTRAST, PATTERN_CLASSES, TEST_SEED, _draw, _labels, defect_contrast,
                                          detector_counts, format_vector, invisible_defects, relative_depth,
                                          simulate_pattern)
from braggscope.io import write_cxi_data
from braggscope.retrieval.prepare import peak_position
from braggscope.simulate import (Crystal, SmoothStrain, continuum_intensity, partially_coherent, pixel_integrated,
                                 simulate_sample, sphere)
from braggscope.simulate.planar import SplitDislocation, StackingFault, TwinBoundary


def _pattern(defects_of, hkl=(1, 1, 1), size=60.0):
    xtal = Crystal(sphere(size), "Pt")
    s = simulate_sample(xtal, defects_of(xtal), shape=(32,) * 3, voxel_size=size / 24, hkl=hkl)
    return xtal, continuum_intensity(s.obj, shape=(64,) * 3)


def test_a_dislocation_through_the_centre_splits_the_bragg_peak():
    """|A(G)| = |∫ exp(i G·u)|: a winding phase through the centre cancels the amplitude at the
    Bragg position (the split peak of Lim et al.); G·b = 0 leaves the peak as it was."""
    _, perfect = _pattern(lambda x: [])
    _, split = _pattern(lambda x: [x.dislocation((0.5, 0, 0.5), (1, -1, 1))])
    _, hidden = _pattern(lambda x: [x.dislocation((0.5, -0.5, 0), (1, 1, 1))])
    assert np.unravel_index(perfect.argmax(), perfect.shape) == (32, 32, 32)
    assert split[32, 32, 32] < 0.05 * split.max()
    assert hidden[32, 32, 32] == pytest.approx(perfect[32, 32, 32], rel=0.1)


def test_a_perfect_crystal_pattern_is_centrosymmetric_and_a_dislocation_breaks_it_off_centre():
    """Friedel: a real object gives I(q) = I(-q); the phase of an off-centre dislocation does not."""
    _, perfect = _pattern(lambda x: [])
    _, off = _pattern(lambda x: [x.dislocation((0.5, 0, 0.5), (1, -1, 1), (8.0, 5.0, 0.0))])
    flip = lambda a: np.roll(a[::-1, ::-1, ::-1], 1, axis=(0, 1, 2))  # index k ↔ -k about 32
    assert np.abs(perfect - flip(perfect)).sum() < 1e-3 * perfect.sum()
    assert np.abs(off - flip(off)).sum() > 0.05 * off.sum()


def test_atomistic_and_continuum_patterns_of_one_crystal_agree():
    """The continuum pattern (object sampled twice finer, transform cut to the window) is the
    atoms' pattern up to the lattice's discreteness, over the whole window, not only near the peak."""
    a = simulate_pattern(7, model="atomistic", size=(25.0, 30.0))
    c = simulate_pattern(7, size=(25.0, 30.0))
    la, lc = (np.log10(p.expected + 1e-12) for p in (a, c))
    assert np.corrcoef(la.ravel(), lc.ravel())[0, 1] > 0.9
    assert np.abs(a.expected - c.expected).sum() < 0.05
    assert (a.label, a.invisible) == (c.label, c.invisible)


def test_visibility_labels_follow_g_dot_b_and_shared_twin_reflections():
    xtal = Crystal(sphere(60.0), "Pt")
    g = xtal.g_vector((1, 1, 1))
    shown = xtal.dislocation((0.5, 0, 0.5), (1, -1, 1))
    hidden = xtal.dislocation((0.5, -0.5, 0), (1, 1, 1))
    assert defect_contrast(shown, g, (1, 1, 1)) == pytest.approx(2 * np.pi)
    assert defect_contrast(hidden, g, (1, 1, 1)) == pytest.approx(0, abs=1e-9)
    assert _labels(xtal, "dislocation", [hidden], (1, 1, 1))[:2] == (0, True)
    assert _labels(xtal, "dislocation", [shown, hidden], (1, 1, 1))[:2] == (1, True)
    # a (111) twin shares the 111 reflection (invisible) but not 1 1 -1 (its domain goes dark)
    twin = xtal.twin((1, 1, 1))
    assert defect_contrast(twin, g, (1, 1, 1)) == 0
    assert defect_contrast(twin, xtal.g_vector((1, 1, -1)), (1, 1, -1)) == pytest.approx(np.pi)


def test_invisible_defects_at_111_and_220():
    """The textbook lists: at 111 the a/2<110> with no component along [111] (three of six), the
    (111) Shockley partials, the (111) fault and twin; at 220 one a/2<110> and no (111) fault."""
    at_111 = invisible_defects((1, 1, 1))
    assert sorted(map(format_vector, at_111["dislocations"])) == ["a/2[01-1]", "a/2[1-10]", "a/2[10-1]"]
    assert sorted(map(format_vector, at_111["shockley_partials"])) == ["a/6[-211]", "a/6[1-21]", "a/6[11-2]"]
    assert at_111["frank_loops"] == [] and at_111["fault_planes"] == at_111["twin_planes"] == [(1, 1, 1)]
    at_220 = invisible_defects((2, 2, 0))
    assert list(map(format_vector, at_220["dislocations"])) == ["a/2[1-10]"]
    assert (1, 1, 1) not in at_220["fault_planes"] and (1, -1, 1) in at_220["fault_planes"]


def _listed(defect, crystal, listed):
    """Whether `defect` is one of the families in `listed` (invisible_defects' lists)."""
    def among(vector_nm, family):
        b = crystal.orientation.T @ vector_nm / crystal.lattice_parameter
        return any(np.allclose(b, v, atol=1e-6) or np.allclose(b, -np.asarray(v), atol=1e-6) for v in listed[family])

    if isinstance(defect, TwinBoundary):
        return any(np.allclose(np.cross(defect.plane_hkl, n), 0) for n in listed["twin_planes"])  # ± the plane
    if isinstance(defect, StackingFault):
        return among(defect.loop.burgers, "shockley_partials")
    if isinstance(defect, SplitDislocation):
        return among(defect.leading.burgers, "shockley_partials") and among(defect.trailing.burgers,
                                                                           "shockley_partials")
    return among(defect.burgers, "frank_loops" if len(getattr(defect, "vertices", [])) else "dislocations")


def test_the_invisible_list_holds_exactly_the_defects_the_labels_call_invisible():
    """Over random training draws of every kind and reflection, a defect is in the list of its
    reflection if and only if its phase contrast there is below MIN_CONTRAST: the report a
    'perfect' verdict carries names what the label hid."""
    checked = 0
    for seed in range(300):
        crystal, _, defects, hkl = _draw(np.random.default_rng(seed), (30.0, 200.0))
        listed = invisible_defects(hkl)
        for d in defects:
            if not isinstance(d, SmoothStrain):
                hidden = defect_contrast(d, crystal.g_vector(hkl), hkl) < MIN_CONTRAST
                assert _listed(d, crystal, listed) == hidden, (seed, hkl, d.describe())
                checked += hidden
    assert checked > 20


def test_relative_depth_of_a_dislocation():
    xtal = Crystal(sphere(60.0), "Pt")
    through = xtal.dislocation((0.5, 0, 0.5), (1, -1, 1))
    assert relative_depth(through, xtal) == pytest.approx(0, abs=1e-9)
    line = xtal.direction((1, -1, 1))
    off = np.cross(line, [0.0, 0.0, 1.0])
    off *= 21.0 / np.linalg.norm(off)
    assert relative_depth(xtal.dislocation((0.5, 0, 0.5), (1, -1, 1), off + 4.0 * line), xtal) == \
        pytest.approx(0.7, abs=1e-6)


def test_pattern_input_is_log_scaled_and_masked():
    counts = np.random.default_rng(0).poisson(50, size=(2, 8, 8)).astype(np.float32)
    mask = np.zeros(counts.shape, bool)
    mask[:, 3] = True
    x = pattern_input(counts, mask)
    assert x.shape == (2, 2, 8, 8)
    assert float(x[:, 0].max()) == pytest.approx(1.0) and float(x[:, 0].min()) >= 0
    assert torch.all(x[:, 0][torch.from_numpy(mask)] == 0) and torch.equal(x[:, 1].bool(), torch.from_numpy(mask))


def test_prepare_pattern_crops_around_the_peak_and_picks_the_top_frame():
    expected = simulate_pattern(3).expected
    big = np.zeros((80, 100, 90), np.float32)
    big[5:69, 20:84, 10:74] = expected * 1e8
    counts, mask = prepare_pattern(big, dims=3)
    assert counts.shape == (64,) * 3 and not mask.any()
    assert np.abs(np.array(np.unravel_index(counts.argmax(), counts.shape)) - 32).max() <= 1
    assert counts.sum() == pytest.approx(big.sum(), rel=1e-3)
    frame, _ = prepare_pattern(big, dims=2)
    assert frame.shape == (64, 64) and frame.sum() == pytest.approx(big.sum(axis=(1, 2)).max(), rel=1e-3)
    binned, _ = prepare_pattern(np.repeat(big, 2, axis=2), dims=3, bin=2)
    assert binned.shape == (64,) * 3
    per_axis, _ = prepare_pattern(np.repeat(big, 2, axis=2), dims=3, bin=(1, 1, 2))
    assert per_axis.shape == (64,) * 3 and per_axis.sum() == pytest.approx(2 * big.sum(), rel=1e-3)
    for bad in (0, (1, 2), 1.5, "two"):
        with pytest.raises(ConfigError, match="bin must be"):
            prepare_pattern(big, dims=3, bin=bad)


def test_a_finer_pattern_holds_the_coarse_one_in_every_other_pixel():
    """finer=2 samples the same q-range twice as finely: its even pixels are the plain pattern's
    (the same crystal, the same continuous transform), and its oversampling is twice as high."""
    plain, fine = simulate_pattern(3), simulate_pattern(3, finer=2)
    assert fine.expected.shape == (128,) * 3 and (fine.label, fine.hkl) == (plain.label, plain.hkl)
    even = fine.expected[::2, ::2, ::2]
    np.testing.assert_allclose(even / even.sum(), plain.expected, rtol=1e-3, atol=1e-6 * plain.expected.max())
    assert simulate_pattern(3, finer=(1, 2, 2)).expected.shape == (64, 128, 128)
    with pytest.raises(ConfigError, match="finer"):
        simulate_pattern(3, finer=0)


def test_pattern_bins_bring_a_scan_to_the_trained_oversampling():
    """A ball 24 voxels wide in a 64-pixel pattern is oversampled 2.7 times: no binning. The same
    ball measured on a q-grid twice as fine along the frame axes (a detector twice as far away)
    is binned 2 along those axes only, and the network then sees the pattern it knows."""
    xtal = Crystal(sphere(60.0), "Pt")
    s = simulate_sample(xtal, [], shape=(32,) * 3, voxel_size=2.5, hkl=(1, 1, 1))
    assert pattern_bins(continuum_intensity(s.obj, shape=(64,) * 3) * 1e8) == (1, 1, 1)
    far = continuum_intensity(s.obj, shape=(64, 128, 128)) * 1e8
    assert pattern_bins(far) == (1, 2, 2)
    counts, _ = prepare_pattern(far)
    assert counts.shape == (64,) * 3 and counts.sum() == pytest.approx(far.sum(), rel=1e-3)
    # flat noise has no fringes (an oversampling past any bound): binned no further than the data reach
    assert pattern_bins(np.random.default_rng(0).poisson(100.0, (64, 128, 192)).astype(np.float32)) == (1, 2, 3)


@pytest.mark.parametrize("pixels, psf", [(True, False), (False, True)])
def test_training_detector_response_is_the_simulators(pixels, psf):
    """The trainer's batched torch pixel integration and partial-coherence blur give the
    simulator's, pattern by pattern (each alone: together they are one pass, where the simulator's
    two functions each clip the ringing at the window's cut)."""
    from braggscope.identify.pattern_training import PSF_FWHM, _detector_response

    expected = torch.from_numpy(np.stack([simulate_pattern(s).expected for s in (1, 2)]))
    rng = np.random.default_rng(3)
    batch = _detector_response(expected, np.random.default_rng(3), pixel_share=float(pixels), psf_share=float(psf))
    width = rng.uniform(0, 1, (2, 3)) * (rng.uniform(size=(2, 1)) < pixels)
    shift = rng.uniform(-0.5, 0.5, (2, 3))
    fwhm = rng.uniform(0, PSF_FWHM, (2, 3)) * (rng.uniform(size=(2, 1)) < psf)
    for e, b, w, sh, g in zip(expected.numpy(), batch.numpy(), width, shift, fwhm):
        simulated = pixel_integrated(e, w, sh) if pixels else partially_coherent(e, g)
        np.testing.assert_allclose(b, simulated, atol=1e-6 * e.max())
        assert not np.allclose(b, e, atol=1e-3 * e.max())


def test_fit_temperature_recovers_an_overconfident_models_temperature():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(scale=2.0, size=(4000, 5))
    p = np.exp(true_logits) / np.exp(true_logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(5, p=row) for row in p])
    assert fit_temperature(3.0 * true_logits, labels) == pytest.approx(3.0, rel=0.1)
    ece_calibrated, _ = expected_calibration_error(p, labels)
    sharp = np.exp(3 * true_logits) / np.exp(3 * true_logits).sum(1, keepdims=True)
    assert ece_calibrated < 0.03 < expected_calibration_error(sharp, labels)[0]


def test_fit_temperature_and_bias_recovers_a_networks_shifted_logits():
    """A network that under-calls one class (its logits shifted down by 1.5) and is overconfident
    (×2): the fit gives back both, and it lowers the held-out NLL that temperature alone leaves."""
    rng = np.random.default_rng(1)
    true_logits = rng.normal(scale=2.0, size=(6000, 5))
    p = np.exp(true_logits) / np.exp(true_logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(5, p=row) for row in p])
    shift = np.array([0.0, -1.5, 0.0, 0.0, 0.0])
    network = 2.0 * (true_logits + shift)
    temperature, bias = fit_temperature_and_bias(network[:3000], labels[:3000])
    assert temperature == pytest.approx(2.0, rel=0.1)
    np.testing.assert_allclose(bias, -(shift - shift.mean()), atol=0.15)
    nll = torch.nn.functional.cross_entropy
    held, truth = torch.as_tensor(network[3000:]), torch.as_tensor(labels[3000:])
    assert (nll(held / temperature + torch.as_tensor(bias), truth)
            < nll(held / fit_temperature(network[:3000], labels[:3000]), truth) - 0.05)


def test_classifier_applies_its_bias_and_saves_it(tmp_path):
    torch.manual_seed(0)
    net = PatternNet(2, features=(4, 8, 8, 8))
    bias = np.array([0.0, 2.0, -1.0, 0.0, -1.0])
    clf = PatternClassifier(net, temperature=1.5, bias=bias)
    counts = torch.poisson(torch.full((3, 64, 64), 5.0)).numpy()
    logits = net(pattern_input(counts))["kind"].detach()
    expected = torch.softmax(logits.double() / 1.5 + torch.as_tensor(bias), 1).numpy()
    np.testing.assert_allclose(clf.outputs(counts)["kind"], expected, atol=1e-6)
    clf.save(tmp_path / "c.pt")
    loaded = PatternClassifier.load(tmp_path / "c.pt")
    np.testing.assert_allclose(loaded.outputs(counts)["kind"], expected, atol=1e-6)


def test_symmetry_views_invert_a_prepared_pattern_through_its_peak():
    """A perfect crystal's pattern is centrosymmetric about its peak (Friedel), and prepare_pattern
    puts the peak where the inverted view keeps it: the inverted view is the pattern itself (the
    first plane of each axis has no partner inside the window)."""
    _, perfect = _pattern(lambda x: [])
    counts, mask = prepare_pattern(np.pad(perfect, ((3, 9), (0, 5), (7, 2))) * 1e8, dims=3)
    x = pattern_input(counts[None], mask[None])
    views = symmetry_views(x, 6)
    assert len(views) == 6 and torch.equal(views[0], x)
    inner = (slice(None), 0, slice(1, None), slice(1, None), slice(1, None))
    assert float((views[1] - x)[inner].abs().max()) < 1e-3
    assert torch.equal(views[2][0, 0], x[0, 0].permute(1, 2, 0))
    with pytest.raises(ConfigError, match="views must be"):
        symmetry_views(x, 7)


def test_a_classifier_averaging_all_views_gives_one_verdict_for_each_of_them(tmp_path):
    """The views form a group (axis cycles × inversion), so averaging over all of them makes the
    probabilities the same for a pattern, its axes cycled and it inverted; one view alone does not.
    The pattern is an off-centre dislocation's, which is not centrosymmetric."""
    _, off = _pattern(lambda x: [x.dislocation((0.5, 0, 0.5), (1, -1, 1), (8.0, 5.0, 0.0))])
    counts = detector_counts(off / off.sum(), 1e8, rng=0)[0][None]
    inverted = np.roll(counts[:, ::-1, ::-1, ::-1], 1, axis=(1, 2, 3))  # q → −q about voxel 32
    cycled = counts.transpose(0, 2, 3, 1)
    shipped = PatternClassifier.load(dims=3)
    shipped.views = 6
    shipped.save(tmp_path / "c.pt")
    clf = PatternClassifier.load(tmp_path / "c.pt")
    assert clf.views == 6
    log_p = lambda c: np.log(clf.outputs(c)["kind"])  # noqa: E731 (the network is sure: compare in logs)
    for other in (inverted, cycled):
        np.testing.assert_allclose(log_p(other), log_p(counts), atol=1e-3)
    clf.views = 1
    assert np.abs(log_p(inverted) - log_p(counts)).max() > 0.1


def test_mahalanobis_score_separates_far_features():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, len(PATTERN_CLASSES), 500)
    features = rng.normal(size=(500, 8)) + labels[:, None]
    means, precision = mahalanobis_fit(features, labels)
    near = torch.as_tensor(features[:5], dtype=torch.float32)
    far = near + 20.0
    assert torch.all(mahalanobis_score(far, means, precision) > 10 * mahalanobis_score(near, means, precision).max())


def test_noisy_batch_draws_the_photons_asked_and_zeroes_gaps():
    log = np.log10(np.stack([simulate_pattern(s).expected for s in (1, 2)]) + 1e-14).astype(np.float16)
    counts, mask = noisy_batch(log, np.random.default_rng(0), photons=1e7)
    assert counts.shape == (2, 64, 64, 64)
    unmasked = (~mask).float().mean((1, 2, 3))
    assert torch.all(counts.sum((1, 2, 3)) < 1.05e7) and torch.all(counts.sum((1, 2, 3)) > 0.8e7 * unmasked)
    assert torch.all(counts[mask] == 0)
    frames, _ = noisy_batch(log, np.random.default_rng(0), dims=2, photons=1e7)
    assert frames.shape == (2, 64, 64)
    for c, m in zip(counts.numpy(), mask.numpy()):  # cropped as prepare_pattern crops a measurement
        assert np.array_equal(np.rint(peak_position(c, m)), [32, 32, 32])


def test_training_draws_surface_dislocations_as_often_as_asked():
    position = np.array([-1, 2, 0, 1, 2, -1])  # POSITION_BINS: 2 is a dislocation in the outer third
    assert sampling_probabilities(position) is None
    np.testing.assert_allclose(sampling_probabilities(position, 3.0), np.array([1, 3, 1, 1, 3, 1]) / 10)


def test_training_gaps_are_a_detectors_module_gaps():
    """The training's gaps are lines of 4 (Maxipix) or 2 (Eiger) pixels across each frame axis
    (fewer where the crop's edge cuts one), the same in every frame: a cross, one line, or
    (rarely) none in a 64² crop."""
    from braggscope.identify.pattern_training import _detector_gaps

    rng = np.random.default_rng(0)
    crosses = nones = 0
    for _ in range(300):
        mask = _detector_gaps((8, 64, 64), rng)
        assert np.array_equal(mask, np.broadcast_to(mask[0], mask.shape))
        rows, columns = mask[0].all(axis=1), mask[0].all(axis=0)  # lines masked whole
        assert np.array_equal(mask[0], rows[:, None] | columns[None, :])
        lines = [int(rows.sum()), int(columns.sum())]
        assert all(n <= 4 and np.all(np.diff(np.flatnonzero(line)) == 1) for n, line in zip(lines, (rows, columns)))
        crosses += all(lines)
        nones += not any(lines)
    assert 0.3 < crosses / 300 < 0.6 and nones / 300 < 0.2


@pytest.fixture(scope="module")
def held_out():
    """Twenty held-out patterns (seeds the training never saw), measured at 10⁸ photons."""
    patterns = [simulate_pattern(TEST_SEED + i) for i in range(20)]
    return patterns, [detector_counts(p.expected, 1e8, rng=i) for i, p in enumerate(patterns)]


@pytest.mark.parametrize("dims, minimum", [(3, 0.6), (2, 0.45)])
def test_shipped_classifier_scores_on_held_out_patterns(held_out, dims, minimum):
    """The benchmark measures the full held-out set; this checks a small part of it clears a
    margin below those figures (chance is 0.2) and that the verdicts are well-formed."""
    patterns, measured = held_out
    clf = PatternClassifier.load(dims=dims)
    verdicts = [clf.classify(c, m) for c, m in measured]
    accuracy = np.mean([v.probabilities[PATTERN_CLASSES[p.label]] == max(v.probabilities.values())
                        for v, p in zip(verdicts, patterns)])
    assert accuracy >= minimum
    for v in verdicts:
        assert sum(v.probabilities.values()) == pytest.approx(1, abs=1e-5) and v.invisible is None
    assert np.mean([v.known for v in verdicts]) >= 0.85


@pytest.mark.parametrize("dims, minimum", [(3, 0.6), (2, 0.5)])
def test_shipped_classifier_reads_partially_coherent_patterns(held_out, dims, minimum):
    """A partially coherent beam blurs the fringes (a PSF of 1.3 pixels FWHM, the width refined on
    the measured scan 54). Networks trained only on coherent patterns called 95–100 % of these
    twins (the true share is a fifth); the shipped ones keep their verdicts."""
    patterns, _ = held_out
    clf = PatternClassifier.load(dims=dims)
    measured = [detector_counts(partially_coherent(p.expected, 1.3), 1e8, rng=i) for i, p in enumerate(patterns)]
    called = [max(v.probabilities, key=v.probabilities.get) for v in (clf.classify(c, m) for c, m in measured)]
    assert np.mean([c == PATTERN_CLASSES[p.label] for c, p in zip(called, patterns)]) >= minimum
    assert np.mean([c == "twin" for c in called]) <= 0.35


def test_flat_noise_is_unknown():
    clf = PatternClassifier.load(dims=3)
    rng = np.random.default_rng(0)
    verdict = clf.classify(rng.poisson(100.0, size=(64, 64, 64)).astype(np.float32))
    assert verdict.label == "unknown" and not verdict.known


def test_stream_of_frames():
    clf = PatternClassifier.load(dims=2)
    frames = [detector_counts(simulate_pattern(TEST_SEED + i).expected, 1e8, rng=i)[0][32] for i in range(3)]
    verdicts = list(clf.stream(iter(frames)))
    assert len(verdicts) == 3 and all(v.label in PATTERN_CLASSES + ("unknown",) for v in verdicts)


def test_classify_cli_writes_json_and_rejects_bad_input(tmp_path, capsys):
    counts, mask = detector_counts(simulate_pattern(TEST_SEED).expected, 1e8, rng=0)
    data = write_cxi_data(tmp_path / "scan.cxi", counts, mask=mask)
    out = tmp_path / "verdict.json"
    assert main(["classify", str(data), "--json", str(out), "-q"]) == 0
    verdict = json.loads(out.read_text())
    assert set(verdict["probabilities"]) == set(PATTERN_CLASSES) and verdict["dims"] == 3
    assert verdict["invisible"] is None and "reflection not given" in capsys.readouterr().out
    assert main(["classify", str(data), "--hkl", "2", "0", "0", "--json", str(out), "-q"]) == 0
    verdict = json.loads(out.read_text())
    assert verdict["hkl"] == [2, 0, 0] and verdict["invisible"]["dislocations"] == [[0, 0.5, 0.5], [0, 0.5, -0.5]]
    text = capsys.readouterr().out
    assert "invisible at (2, 0, 0)" in text and "dislocations b = a/2[011], a/2[01-1]" in text
    assert main(["classify", str(data), "--hkl", "0", "0", "0", "--json", str(tmp_path / "no.json")]) == 2
    assert not (tmp_path / "no.json").exists()
    bad = tmp_path / "bad.npy"
    np.save(bad, -np.ones((64, 64, 64), np.float32))
    missing = tmp_path / "never.json"
    assert main(["classify", str(bad), "--json", str(missing)]) == 2
    assert not missing.exists()
    assert main(["classify", str(data), "--2d", "--json", str(data)]) == 2
    assert main(["classify", str(data), "--bin", "1", "2", "2", "--json", str(out), "-q"]) == 0
    assert json.loads(out.read_text())["bins"] == [1, 2, 2] and "binned 1×2×2" in capsys.readouterr().out
    for bad in (["two"], ["1", "2"], ["0"]):
        assert main(["classify", str(data), "--bin", *bad, "--json", str(missing)]) == 2
    assert not missing.exists()


@pytest.mark.slow
def test_a_classifier_trained_on_continuum_patterns_reads_atomistic_ones_alike():
    """Ten small crystals summed atom by atom (Frank loops' fractional G·b, split partials, the
    lattice's discreteness) and the continuum patterns of the same crystals: the 3-D network
    gives mostly the same verdict and keeps its accuracy (the benchmark measures 60 of them)."""
    clf = PatternClassifier.load(dims=3)
    seeds = range(TEST_SEED + 600_000, TEST_SEED + 600_010)
    atomistic = [simulate_pattern(s, model="atomistic", size=(25.0, 32.0)) for s in seeds]
    continuum = [simulate_pattern(s, size=(25.0, 32.0)) for s in seeds]

    def predicted(patterns):
        return np.array([np.argmax(list(clf.classify(*detector_counts(p.expected, 1e8, rng=i)).probabilities
                                        .values())) for i, p in enumerate(patterns)])

    truth = np.array([p.label for p in atomistic])
    on_atoms, on_continuum = predicted(atomistic), predicted(continuum)
    assert np.mean(on_atoms == on_continuum) >= 0.6
    assert np.mean(on_atoms == truth) >= np.mean(on_continuum == truth) - 0.2
