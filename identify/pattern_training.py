"""Train the diffraction-pattern classifiers (the script that made the shipped weights).

    python -m braggscope.identify.pattern_training --train 6000 --epochs 8 --out out/pattern_train

simulates the noiseless continuum patterns of seeds 0 … N-1 (:func:`.patterns.simulate_pattern`)
and the calibration set (seeds from VALIDATION_SEED), trains the 3-D and the 2-D network with
photon noise, pixel integration, partial coherence, detector gaps and aliens drawn afresh for
every batch, fits the calibration (temperature and a bias per class) and the out-of-distribution
statistics, and writes the weights with their validation scores (`--calibrate-only` fits these
again for the shipped networks, without training). The benchmark's held-out patterns start at
TEST_SEED; training never sees them.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from braggscope._backend import one_cycle_training, simulated_set
from braggscope.physics import FWHM_PER_SIGMA
from braggscope.simulate import gap_mask

from .classifier import (PatternClassifier, PatternNet, averaged_outputs, expected_calibration_error,
                         fit_temperature_and_bias, mahalanobis_fit, mahalanobis_score, pattern_input,
                         pattern_weights_path, prepare_pattern)
from .patterns import PATTERN_SHAPE, POSITION_BINS, TEST_SEED, VALIDATION_SEED, simulate_pattern

__all__ = ["make_patterns", "noisy_batch", "sampling_probabilities", "train", "calibrate", "main"]

LOG_FLOOR = 1e-14  # patterns are stored as float16 log10(expected + LOG_FLOOR)
PHOTONS = (1e5, 1e10)  # the range of total counts trained on (past the 10⁹ of the benchmark's top level)
PSF_FWHM = 2.0  # [pixels] the widest partial-coherence PSF trained on (scan 54's refined PSF: 1.2–1.5)


_SOURCES = ("braggscope.identify.patterns",)  # the code that makes a pattern (with what it imports)


def _one(seed):
    p = simulate_pattern(seed)
    return np.log10(p.expected + LOG_FLOOR).astype(np.float16), p.label, p.position


def make_patterns(seeds, path=None, *, workers=2) -> dict:
    """The noiseless patterns of `seeds` as 'log' (N, 64, 64, 64) float16 log10 intensities and
    'label' and 'position' arrays; cached in the npz file `path` when given (and simulated
    again where the seeds or the simulator's code differ: :func:`~braggscope._backend.simulated_set`)."""
    return simulated_set(_one, seeds, ("log", "label", "position"), path, workers=workers, chunksize=32,
                         sources=_SOURCES)


def centre_on_peak(data) -> dict:
    """`data` with every pattern rolled so that its peak (:func:`~braggscope.retrieval.prepare.peak_position`,
    the centre of mass around the brightest voxel) sits at index 32, where :func:`.classifier.prepare_pattern`
    puts a measured one (a dislocation's split peak is not centred on q = 0)."""
    from braggscope.retrieval.prepare import peak_position

    logs = data["log"].copy()
    centre = np.array(PATTERN_SHAPE) // 2
    for i, log in enumerate(logs):
        peak = np.rint(peak_position(np.power(10.0, log.astype(np.float32)))).astype(int)
        logs[i] = np.roll(log, tuple(centre - peak), axis=(0, 1, 2))
    return data | {"log": logs}


def _frames(expected, rng):
    """The 2-D frame through the peak of each 3-D pattern, cut across a random axis (the
    crystal's orientation is random, so every axis is a possible rocking direction)."""
    centre = PATTERN_SHAPE[0] // 2
    return torch.stack([e.select(int(rng.integers(3)), centre) for e in expected])


def noisy_batch(log_expected, rng, *, dims=3, photons=None):
    """Counts and masks (B, 64, ...) of stored patterns, as a measurement gives them to the
    classifier: the pattern integrated over pixels of random size and offset in three of four and
    blurred by a partially coherent beam in one of two (:func:`_detector_response`), Poisson counts
    for a total of `photons` (default log-uniform in PHOTONS) in the 3-D scan (a 2-D frame keeps its
    share), a detector's module gaps in half of them
    (:func:`_detector_gaps`), a Gaussian alien 10⁻³–10⁻¹ of the peak away from the centre in one
    of five, random flips and axis permutations, and last the crop around the measured peak of
    :func:`.classifier.prepare_pattern`, which a gap or the noise can move off the stored centre."""
    expected = torch.pow(10.0, torch.as_tensor(log_expected).float()) - LOG_FLOOR
    if dims == 2:
        expected = _frames(expected, rng)
    expected = _detector_response(expected, rng)
    b = len(expected)
    total = 10 ** rng.uniform(*np.log10(PHOTONS), size=b) if photons is None else np.full(b, float(photons))
    scaled = expected.clamp(min=0) * torch.as_tensor(total, dtype=torch.float32).view(-1, *[1] * dims)
    mask = torch.zeros(scaled.shape, dtype=torch.bool)
    for i in range(b):
        if rng.uniform() < 0.5:
            mask[i] = torch.from_numpy(_detector_gaps(scaled.shape[1:], rng))
        if rng.uniform() < 0.2:
            scaled[i] += _alien(scaled[i], rng)
    counts = torch.poisson(scaled) * ~mask
    for d in range(1, dims + 1):
        if rng.uniform() < 0.5:
            counts, mask = counts.flip(d), mask.flip(d)
    order = [0] + [int(a) + 1 for a in rng.permutation(dims)]
    counts, mask = counts.permute(*order).numpy(), mask.permute(*order).numpy()
    cropped = [prepare_pattern(c, m, dims=dims, bin=1) for c, m in zip(counts, mask)]
    return torch.from_numpy(np.stack([c for c, _ in cropped])), torch.from_numpy(np.stack([m for _, m in cropped]))


def _detector_response(expected, rng, *, pixel_share=0.75, psf_share=0.5):
    """The point-sampled patterns `expected` (B, ...) as a measurement records them. In
    `pixel_share` of them they are integrated over a box 0–1 pixel wide, centred up to half a pixel
    off the sample, drawn per axis (a detector's pixel along the frame axes, a rocking step, a
    binned finer scan; :func:`braggscope.simulate.pixel_integrated`). In `psf_share` of them they
    are blurred by the beam's partial coherence, a Gaussian PSF of 0–PSF_FWHM pixels FWHM drawn
    per axis (:func:`braggscope.simulate.partially_coherent`). This is a batched torch form of
    the two, in one pass over the Fourier coefficients; both are convolutions, so their order does
    not matter. The others keep their point samples."""
    b, ndim = len(expected), expected.ndim - 1
    width = rng.uniform(0, 1, (b, ndim)) * (rng.uniform(size=(b, 1)) < pixel_share)
    shift = rng.uniform(-0.5, 0.5, (b, ndim)) * (width > 0)
    fwhm = rng.uniform(0, PSF_FWHM, (b, ndim)) * (rng.uniform(size=(b, 1)) < psf_share)
    sigma = fwhm / FWHM_PER_SIGMA
    axes = tuple(range(1, ndim + 1))
    coefficients = torch.fft.rfftn(expected.double(), dim=axes)  # float64: the faint pixels lie 10⁻¹⁰ below the peak
    for axis in range(ndim):
        n = expected.shape[axis + 1]
        f = torch.fft.rfftfreq(n, dtype=torch.float64) if axis == ndim - 1 else torch.fft.fftfreq(n, dtype=torch.float64)
        w, s, g = (torch.as_tensor(v[:, axis, None]) for v in (width, shift, sigma))
        factor = torch.sinc(f * w) * torch.exp(2j * np.pi * f * s - 2 * (np.pi * g * f) ** 2) * (f.abs() < 0.5)
        coefficients = coefficients * factor.view(b, *[-1 if a == axis else 1 for a in range(ndim)])
    return torch.fft.irfftn(coefficients, s=expected.shape[1:], dim=axes).clamp(min=0).float()


def _detector_gaps(shape, rng) -> np.ndarray:
    """The module gaps of a Maxipix (4 pixels; three times in four) or an Eiger (2 pixels)
    across the frame axes (the last two of `shape`), laid out by the detector model's
    :func:`braggscope.simulate.gap_mask` at random offsets: a 64-pixel crop holds a cross of two
    lines, one line (an offset past the crop: a third of the time per axis) or, rarely, none."""
    layout = "maxipix" if rng.uniform() < 0.75 else "eiger"
    return gap_mask(shape, layout, tuple(int(v) for v in rng.integers(4, 88, size=2)))


def _alien(pattern, rng):
    n = pattern.shape[0]
    direction = rng.normal(size=pattern.ndim)
    where = n // 2 + direction / np.linalg.norm(direction) * rng.uniform(0.2, 0.45) * n
    grids = torch.meshgrid(*[torch.arange(n, dtype=torch.float32)] * pattern.ndim, indexing="ij")
    r2 = sum((g - float(w)) ** 2 for g, w in zip(grids, where))
    return pattern.max() * 10 ** rng.uniform(-3, -1) * torch.exp(-r2 / (2 * rng.uniform(0.8, 2.0) ** 2))


def _loss(out, label, position):
    loss = F.cross_entropy(out["kind"], label)
    known = position >= 0
    if known.any():
        loss = loss + 0.5 * F.cross_entropy(out["position"][known], position[known])
    return loss


def sampling_probabilities(position, surface_weight=1.0):
    """The probability (N,) that a training batch draws each pattern, from their dislocation
    positions (index in POSITION_BINS, -1 for none): uniform (None) for `surface_weight` 1, else
    a dislocation in the crystal's outer third `surface_weight` times as likely as any other."""
    if surface_weight == 1:
        return None
    weights = np.where(np.asarray(position) == POSITION_BINS.index("surface"), float(surface_weight), 1.0)
    return weights / weights.sum()


def train(data, *, dims=3, epochs=8, batch=16, lr=2e-3, seed=0, features=(12, 24, 48, 96), init=None,
          surface_weight=1.0, log_every=50):
    """A :class:`PatternNet` trained on `data` (:func:`make_patterns`): AdamW, one-cycle learning
    rate, cross-entropy of the kind + ½ cross-entropy of the dislocation's position (where there
    is one); from the weights of the net `init` when given. Patterns are drawn uniformly, those of
    a dislocation in the outer third of the crystal (POSITION_BINS 'surface', the class's hard
    part) `surface_weight` times as often. Returns the net in eval mode."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = PatternNet(dims, features)
    if init is not None:
        net.load_state_dict(init.state_dict())
    n, p = len(data["label"]), sampling_probabilities(data["position"], surface_weight)

    def batch_loss(step):
        idx = rng.integers(0, n, batch) if p is None else rng.choice(n, batch, p=p)
        counts, mask = noisy_batch(data["log"][idx], rng, dims=dims)
        out = net(pattern_input(counts, mask))
        return _loss(out, *(torch.as_tensor(data[k][idx]) for k in ("label", "position")))

    return one_cycle_training(net, batch_loss, steps=epochs * (len(data["label"]) // batch), lr=lr, pct_start=0.1,
                              log_every=log_every, label=f"{dims}-D ")


def _batches(data, rng, *, dims, photons=None, size=32):
    """Noisy counts and masks of `data`'s patterns in order, `size` at a time (:func:`noisy_batch`)."""
    for start in range(0, len(data["label"]), size):
        yield noisy_batch(data["log"][start:start + size], rng, dims=dims, photons=photons)


@torch.no_grad()
def _forward(net, data, rng, *, dims, views=1):
    outs = [averaged_outputs(net, pattern_input(counts, mask), views)
            for counts, mask in _batches(data, rng, dims=dims)]
    return torch.cat([o["kind"] for o in outs]), torch.cat([o["features"] for o in outs])


def calibrate(net, train_data, validation, *, dims, views=1, seed=1) -> PatternClassifier:
    """The classifier of `net` reading `views` symmetric copies of each pattern
    (:func:`~.classifier.symmetry_views`): temperature and per-class bias fitted on the validation
    patterns (:func:`~.classifier.fit_temperature_and_bias`), class means and precision of the
    training patterns' features, and the out-of-distribution threshold at the 99th percentile of
    the validation patterns' scores (all at photon levels drawn as in training)."""
    rng = np.random.default_rng(seed)
    logits, validation_features = _forward(net, validation, rng, dims=dims, views=views)
    part = {k: v[:3000] for k, v in train_data.items()}
    _, features = _forward(net, part, rng, dims=dims, views=views)
    means, precision = mahalanobis_fit(features, part["label"])
    scores = mahalanobis_score(validation_features, means, precision)
    temperature, bias = fit_temperature_and_bias(logits, validation["label"])
    return PatternClassifier(net, temperature=temperature, bias=bias, means=means, precision=precision,
                             threshold=float(np.percentile(scores.numpy(), 99)), views=views)


def _validation_scores(clf, validation, *, dims, seed=2) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for photons in (1e6, 1e8):
        probs = np.concatenate([clf.outputs(c, m)["kind"] for c, m in _batches(validation, rng, dims=dims,
                                                                                 photons=photons)])
        ece, _ = expected_calibration_error(probs, validation["label"])
        out[f"{photons:.0e}"] = {"accuracy": float(np.mean(probs.argmax(1) == validation["label"])), "ece": ece}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m braggscope.identify.pattern_training", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=6000, help="training patterns (seeds 0 … N-1)")
    parser.add_argument("--validation", type=int, default=1000, help="calibration patterns (seeds from 500 000)")
    parser.add_argument("--epochs", type=int, nargs=2, default=(8, 30), metavar=("3D", "2D"))
    parser.add_argument("--dims", type=int, nargs="+", default=(3, 2), choices=(2, 3))
    parser.add_argument("--out", default="out/pattern_train", help="folder of the cached patterns")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--continue", dest="resume", action="store_true",
                        help="start from the weights there are (a longer training in steps)")
    parser.add_argument("--surface-weight", type=float, default=1.0,
                        help="draw the patterns of a dislocation in the crystal's outer third this many times as often")
    parser.add_argument("--calibrate-only", action="store_true",
                        help="no training: fit the shipped networks' calibration and statistics again")
    parser.add_argument("--views", type=int, default=None,
                        help="symmetric copies of each pattern the classifier averages over (default: all, 2 per axis)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    data = centre_on_peak(make_patterns(range(args.train), Path(args.out) / f"train_{args.train}.npz",
                                        workers=args.workers))
    validation = centre_on_peak(make_patterns(range(VALIDATION_SEED, VALIDATION_SEED + args.validation),
                                              Path(args.out) / f"validation_{args.validation}.npz", workers=args.workers))
    for dims in args.dims:
        t0 = time.time()
        before = PatternClassifier.load(dims=dims) if args.resume or args.calibrate_only else None
        if args.calibrate_only:
            net = before.net
        else:
            net = train(data, dims=dims, epochs=args.epochs[0] if dims == 3 else args.epochs[1], seed=args.seed,
                        lr=args.lr, init=None if before is None else before.net, surface_weight=args.surface_weight)
        seconds = time.time() - t0 + (before.meta.get("train_seconds", 0) if before else 0)
        history = (before.meta.get("history", []) + [before.meta["args"]]) if before else []
        clf = calibrate(net, data, validation, dims=dims, views=args.views or 2 * dims)
        scores = _validation_scores(clf, validation, dims=dims)
        clf.meta = {"script": "python -m braggscope.identify.pattern_training", "args": vars(args), "history": history,
                    "train_seconds": seconds, "train_patterns": args.train, "validation": scores,
                    "temperature": clf.temperature, "test_seed_start": TEST_SEED}
        clf.save(pattern_weights_path(dims))
        print(json.dumps({"dims": dims, "train_seconds": round(seconds), "temperature": clf.temperature,
                          "bias": clf.bias.round(3).tolist(), "ood_threshold": clf.threshold, **scores}), flush=True)


if __name__ == "__main__":
    main()
