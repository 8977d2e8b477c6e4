"""Benchmark of defect recognition from the diffraction pattern (issue: pattern classifier).

Held-out sets (seeds the training never saw):
- continuum: braggscope.identify.patterns.simulate_pattern from TEST_SEED on (random Pt/Au/Ni/Cu
  crystal of 30–200 nm, one defect kind or none, random reflection), measured by the simulator's
  detector (braggscope.simulate.measure: Poisson counts, a Maxipix gap in half of them, an alien in
  one of five) at 10⁵ … 10⁹ photons, the same crystals at every level;
- atomistic: the same recipe with crystals of 25–45 nm summed atom by atom (finufft), seeds from
  TEST_SEED + 500 000; the continuum patterns of the very same crystals are scored beside them,
  so the difference is the diffraction model alone;
- out of distribution: speckle of a random-phase (non-crystalline) object, two crystals in the
  beam at once, and flat noise, at 10⁸ photons;
- detector pixels: the same continuum crystals at 10⁸ photons with each pattern integrated over
  the detector's pixels along the two frame axes (braggscope.simulate.pixel_integrated, width 1,
  offset up to half a pixel; point samples along the rocking axis, as a step scan takes them), as
  every real detector records it; the plain sets above are point samples of the intensity;
- partial coherence: the same continuum crystals at 10⁸ photons blurred by a Gaussian PSF
  (braggscope.simulate.partially_coherent) of PSF_FWHM pixels FWHM on every axis (scan 54's
  refined PSF is 1.2–1.5 pixels wide), then recorded by detector pixels as above; the 3-D network
  also at the widths of PSF_SWEEP;
- finer sampling: the first FINER_PATTERNS crystals on a q-grid twice as fine along every axis
  (simulate_pattern(..., finer=2): oversampling 4.8–6.8, as a longer detector distance and a finer
  rocking step give), pixel-integrated the same way, classified with the bins estimated from the
  data (the default, prepare_pattern(bin='auto')) and with none (bin=1).

Figures (one JSON line): accuracy_{3d,2d}_{level}, per-class F1 and confusion matrices (rows:
truth, columns: prediction, classes in PATTERN_CLASSES order) at 10⁸, macro F1, the atomistic
accuracy and its continuum twin, accuracy_{3d,2d}_1e8_pixels, accuracy_{3d,2d}_1e8_psf with the share
of those patterns called twin (twin_share_{3d,2d}_1e8_psf; the true share is twin_share_true),
accuracy_3d_1e8_psf_sweep (FWHM [pixels] → accuracy) with the share flagged unknown at the widest
(unknown_share_psf_widest), accuracy_3d_1e8_finer2_auto and
_bin1 with the share of those patterns binned 2 on every axis (finer2_bins_2_share), ece_3d (15
bins, all levels pooled) with ece_3d_uncalibrated (temperature 1, no bias) and the calibration
(temperature_3d, bias_3d), the share of crystals holding only defects their reflection cannot show (G·b = 0,
G·R ∈ 2πℤ) that the 3-D network calls perfect (their verdict lists those defects by the visibility
rule, checked in the tests), the dislocation-position accuracy, the
share of each out-of-distribution set flagged unknown and of the in-distribution set at 10⁸,
time_ms_2d and time_ms_3d_64 (prepare + network, one pattern, CPU threads of this machine) against
fft_ms_64 (one 64³ FFT) and reconstruct_s_64 (the engine's default 64³ recipe: the phase-retrieval
route to a defect list), the verdicts on the measured 34-ID-C scan 54 (no truth: what the network says of a real crystal, as
measured, binned by 2 and binned as estimated), and the device. The reliability diagram goes to out/pattern_reliability.png.
Run: python benchmarks/pattern_classifier.py [--quick]
"""
from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_time, device, emit  # noqa: E402

from braggscope.identify.classifier import (PatternClassifier, expected_calibration_error, pattern_bins,  # noqa: E402
                                            prepare_pattern)
from braggscope.identify.patterns import PATTERN_CLASSES, TEST_SEED, detector_counts, simulate_pattern  # noqa: E402
from braggscope.simulate import partially_coherent, pixel_integrated  # noqa: E402

LEVELS = (1e5, 1e6, 1e7, 1e8, 1e9)
ATOMISTIC_SEED = TEST_SEED + 500_000
ATOMISTIC_SIZE = (25.0, 45.0)
FINER_PATTERNS = 150
PSF_FWHM = 1.3  # [pixels] the partial-coherence PSF of the headline set
PSF_SWEEP = (0.7, 1.3, 2.0, 3.0)  # [pixels] the 3-D network's sweep; 3 lies past the training's widest (2)


def _detector_pixels(expected, seed):
    """`expected` as detector pixels record it: integrated over one pixel along the frame axes
    (the last two), at an offset of up to half a pixel from the point samples."""
    shift = np.random.default_rng(seed).uniform(-0.5, 0.5, 3)
    return pixel_integrated(expected, (0.0, 1.0, 1.0), shift).astype(np.float32)


def _partially_coherent(patterns, fwhm, seeds):
    """`patterns` blurred by a Gaussian PSF of `fwhm` pixels, then recorded by detector pixels."""
    return [replace(p, expected=_detector_pixels(partially_coherent(p.expected, fwhm), seed))
            for seed, p in zip(seeds, patterns)]


def _finer(seed):
    """The pattern of `seed` on a q-grid twice as fine, recorded by detector pixels."""
    p = simulate_pattern(seed, finer=2)
    return replace(p, expected=_detector_pixels(p.expected, seed))


def _continuum(seed):
    return simulate_pattern(seed)


def _pair(seed):
    """The atomistic pattern of `seed` and the continuum pattern of the same crystal."""
    return simulate_pattern(seed, model="atomistic", size=ATOMISTIC_SIZE), simulate_pattern(seed, size=ATOMISTIC_SIZE)


def _predict(clf, patterns, photons, seed, bin="auto"):
    """Calibrated class probabilities, position outputs, out-of-distribution scores and the bins
    used ('bins') of measured `patterns`."""
    rows = []
    for i, p in enumerate(patterns):
        counts, mask = detector_counts(p.expected, photons, rng=[seed, i, int(np.log10(photons))])
        bins = pattern_bins(counts, mask) if bin == "auto" else (bin,) * 3
        counts, mask = prepare_pattern(counts, mask, dims=clf.dims, bin=bins)
        rows.append(clf.outputs(counts[None], mask[None]) | {"bins": np.array([bins])})
    return {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}


def _confusion(truth, predicted):
    n = len(PATTERN_CLASSES)
    return np.bincount(truth * n + predicted, minlength=n * n).reshape(n, n)


def _f1(confusion):
    tp = np.diag(confusion).astype(float)
    precision = tp / np.maximum(confusion.sum(0), 1)
    recall = tp / np.maximum(confusion.sum(1), 1)
    return 2 * precision * recall / np.maximum(precision + recall, 1e-12)


def _ood_patterns(n, seed):
    """Patterns no crystal of the training makes: the speckle of a random-phase blob (no Bragg
    peak structure), two different crystals' peaks side by side, flat noise."""
    rng = np.random.default_rng(seed)
    shape = (64, 64, 64)
    r2 = sum((g - 32.0) ** 2 for g in np.ogrid[:64, :64, :64])
    sets = {"speckle": [], "two_crystals": [], "flat": []}
    for i in range(n):
        blob = (r2 < rng.uniform(8, 12) ** 2) * np.exp(2j * np.pi * rng.uniform(size=shape))
        speckle = np.abs(np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(blob)))) ** 2
        sets["speckle"].append(speckle / speckle.sum())
        a, b = (simulate_pattern(seed + 10 * i + k).expected for k in range(2))
        shift = tuple(int(v) for v in rng.integers(6, 14, size=3) * rng.choice([-1, 1], size=3))
        sets["two_crystals"].append(0.5 * (a + np.roll(b, shift, axis=(0, 1, 2))))
        sets["flat"].append(np.full(shape, 1.0 / np.prod(shape)) * rng.uniform(0.5, 1.5, size=shape))
    return sets


def _scores(clf, patterns, seed):
    truth = np.array([p.label for p in patterns])
    out = {"accuracy": {}, "probabilities": [], "truth": []}
    for level in LEVELS:
        pred = _predict(clf, patterns, level, seed)
        out["accuracy"][level] = float(np.mean(pred["kind"].argmax(1) == truth))
        out["probabilities"].append(pred["kind"])
        out["truth"].append(truth)
        if level == 1e8:
            out["at_1e8"] = pred
    return out


def _timing(clf, pattern):
    counts, mask = detector_counts(pattern.expected, 1e8, rng=0)
    t, _ = best_time(lambda: clf.classify(counts, mask), 10)
    return 1000 * t


def _reliability_png(bins, ece, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    edges = np.linspace(0, 1, len(bins["count"]) + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    used = np.array(bins["count"]) > 0
    ax.bar(centres[used], np.array(bins["accuracy"])[used], width=edges[1] - edges[0], edgecolor="k", alpha=0.7,
           label="accuracy")
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    ax.set(xlabel="confidence", ylabel="accuracy", title=f"3-D classifier, all photon levels (ECE {ece:.3f})")
    ax.legend(loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer patterns (under 2 minutes)")
    parser.add_argument("--out", type=Path, default=Path("out"))
    args = parser.parse_args(argv)
    n, n_atom, n_ood = (60, 10, 8) if args.quick else (300, 60, 30)
    n_finer = 30 if args.quick else FINER_PATTERNS
    with ProcessPoolExecutor(2) as pool:
        patterns = list(pool.map(_continuum, range(TEST_SEED, TEST_SEED + n), chunksize=8))
        pairs = list(pool.map(_pair, range(ATOMISTIC_SEED, ATOMISTIC_SEED + n_atom)))
        finer = list(pool.map(_finer, range(TEST_SEED, TEST_SEED + n_finer), chunksize=4))
    seeds = range(TEST_SEED, TEST_SEED + n)
    pixels = [replace(p, expected=_detector_pixels(p.expected, seed)) for seed, p in zip(seeds, patterns)]
    psf_sets = {fwhm: _partially_coherent(patterns, fwhm, seeds) for fwhm in PSF_SWEEP}  # PSF_FWHM among them
    result = {"patterns": n, "atomistic_patterns": n_atom, "pattern_shape": [64, 64, 64], "levels": list(LEVELS),
              "psf_fwhm": PSF_FWHM}
    truth = np.array([p.label for p in patterns])
    result["twin_share_true"] = float(np.mean(truth == PATTERN_CLASSES.index("twin")))
    for dims in (3, 2):
        clf = PatternClassifier.load(dims=dims)
        result[f"views_{dims}d"] = clf.views
        s = _scores(clf, patterns, seed=dims)
        for level, acc in s["accuracy"].items():
            result[f"accuracy_{dims}d_{level:.0e}".replace("+0", "")] = acc
        pred = s["at_1e8"]["kind"].argmax(1)
        confusion = _confusion(truth, pred)
        f1 = _f1(confusion)
        result[f"macro_f1_{dims}d_1e8"] = float(f1.mean())
        result[f"f1_{dims}d_1e8"] = dict(zip(PATTERN_CLASSES, f1.round(3).tolist()))
        result[f"confusion_{dims}d_1e8"] = confusion.tolist()
        atom = _predict(clf, [a for a, _ in pairs], 1e8, seed=7)["kind"].argmax(1)
        same_crystals = _predict(clf, [c for _, c in pairs], 1e8, seed=7)["kind"].argmax(1)
        atom_truth = np.array([a.label for a, _ in pairs])
        result[f"accuracy_{dims}d_atomistic_1e8"] = float(np.mean(atom == atom_truth))
        result[f"accuracy_{dims}d_same_crystals_continuum_1e8"] = float(np.mean(same_crystals == atom_truth))
        result[f"confusion_{dims}d_atomistic_1e8"] = _confusion(atom_truth, atom).tolist()
        result[f"accuracy_{dims}d_1e8_pixels"] = float(np.mean(_predict(clf, pixels, 1e8, seed=dims)["kind"].argmax(1)
                                                            == truth))
        widths = PSF_SWEEP if dims == 3 else (PSF_FWHM,)
        blurred = {fwhm: _predict(clf, psf_sets[fwhm], 1e8, seed=dims) for fwhm in widths}
        called = blurred[PSF_FWHM]["kind"].argmax(1)
        result[f"accuracy_{dims}d_1e8_psf"] = float(np.mean(called == truth))
        result[f"twin_share_{dims}d_1e8_psf"] = float(np.mean(called == PATTERN_CLASSES.index("twin")))
        if dims == 3:
            result["accuracy_3d_1e8_psf_sweep"] = {str(fwhm): float(np.mean(out["kind"].argmax(1) == truth))
                                                   for fwhm, out in blurred.items()}
            result["unknown_share_psf_widest"] = float(np.mean(blurred[PSF_SWEEP[-1]]["ood"] > clf.threshold))
            finer_truth = np.array([p.label for p in finer])
            for bin in ("auto", 1):
                out = _predict(clf, finer, 1e8, seed=dims, bin=bin)
                result[f"accuracy_3d_1e8_finer2_{'auto' if bin == 'auto' else 'bin1'}"] = float(
                    np.mean(out["kind"].argmax(1) == finer_truth))
                if bin == "auto":
                    result["finer2_bins_2_share"] = float(np.mean(np.all(out["bins"] == 2, axis=1)))
            result["finer2_patterns"] = len(finer)
        result[f"time_ms_{dims}d" + ("_64" if dims == 3 else "")] = _timing(clf, patterns[0])
        if dims == 3:
            probs, labels = np.concatenate(s["probabilities"]), np.concatenate(s["truth"])
            ece, bins = expected_calibration_error(probs, labels)
            logits = (np.log(np.clip(probs, 1e-12, 1)) - clf.bias) * clf.temperature  # undo the calibration
            raw = np.exp(logits - logits.max(1, keepdims=True))
            result["ece_3d"], result["ece_3d_uncalibrated"] = ece, expected_calibration_error(
                raw / raw.sum(1, keepdims=True), labels)[0]
            result["temperature_3d"], result["bias_3d"] = clf.temperature, clf.bias.round(3).tolist()
            _reliability_png(bins, ece, args.out / "pattern_reliability.png")
            at = s["at_1e8"]
            hidden_only = np.array([p.invisible for p in patterns]) & (truth == 0)
            result["invisible_called_perfect_3d_1e8"] = float(np.mean(pred[hidden_only] == 0))
            result["invisible_examples"] = int(hidden_only.sum())
            single = np.array([p.position for p in patterns])
            chosen = (single >= 0) & (pred == 1)
            result["position_accuracy_3d_1e8"] = float(np.mean(at["position"][chosen].argmax(1) == single[chosen]))
            result["position_examples"] = int(chosen.sum())
            result["unknown_share_in_distribution_1e8"] = float(np.mean(at["ood"] > clf.threshold))
            for name, items in _ood_patterns(n_ood, seed=TEST_SEED + 900_000).items():
                ood = np.concatenate([_ood_score(clf, e, i) for i, e in enumerate(items)])
                result[f"unknown_share_{name}"] = float(np.mean(ood > clf.threshold))
    counts, _ = detector_counts(patterns[0].expected, 1e8, rng=0)
    result["fft_ms_64"] = 1000 * best_time(lambda: np.fft.fftn(counts), 10)[0]
    result["reconstruct_s_64"] = _reconstruct_time(counts)
    result["time_3d_over_fft"] = result["time_ms_3d_64"] / result["fft_ms_64"]
    result |= _real_scan()
    result["device"] = device()
    result["peers"] = {"lim_2021": "no weights or runnable code public; its figures could not be read here (README)",
                       "judge_2022": "AutoKeras code needs 128 GB of RAM; not run"}
    emit(result)


def _ood_score(clf, expected, seed):
    counts, mask = prepare_pattern(*detector_counts(expected, 1e8, rng=seed), dims=3)
    return clf.outputs(counts[None], mask[None])["ood"]


REAL_SCAN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "aps34idc_scan54_crop128.npz"


def _real_scan():
    """The 3-D verdict on the measured 34-ID-C scan 54 (128³ crop), as measured, binned by 2, and
    binned as estimated from its oversampling (the default)."""
    if not REAL_SCAN.is_file():
        return {"real_scan54_note": f"{REAL_SCAN} not found"}
    with np.load(REAL_SCAN) as f:
        counts, mask = f["iobs"], f["mask"] != 0
    clf = PatternClassifier.load(dims=3)
    out = {}
    for b in (1, 2, "auto"):
        v = clf.classify(counts, mask, bin=b)
        out[f"real_scan54_bin{b}"] = {"label": v.label, "probabilities": {k: round(p, 3) for k, p in v.probabilities.items()},
                                      "ood_score": round(v.ood_score, 1),
                                      "ood_threshold": round(v.ood_threshold, 1), "bins": list(v.bins)}
    return out


def _reconstruct_time(counts):
    """[s] The engine's default recipe on the 64³ counts (one run): the phase-retrieval route."""
    from braggscope.retrieval import reconstruct

    t = time.perf_counter()
    reconstruct(counts, rng=0)
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
