"""Defect recognition straight from the diffraction pattern, before any phase retrieval.

A small convolutional network reads the log-scaled counts around the Bragg peak (a 64³ scan, or
the 64² detector frame at the top of the rocking curve) and tells which defect kind the
crystal shows at this reflection (:data:`~.patterns.PATTERN_CLASSES`) and, for one dislocation, how
far from the centre it runs. No pattern can tell whether the crystal holds a defect its reflection
cannot show (G·b = 0, G·R ∈ 2πℤ: the pattern is a perfect crystal's), so given the reflection the
verdict lists those defects by the visibility rule (:func:`~.patterns.invisible_defects`); a
second reflection that shows them settles it. Probabilities are calibrated by temperature
scaling with a bias per class (:func:`fit_temperature_and_bias`); a pattern far from the training
data (Mahalanobis distance of the network's features) is reported as unknown.

>>> import numpy as np
>>> from braggscope.identify.classifier import PatternClassifier
>>> from braggscope.identify.patterns import simulate_pattern, detector_counts
>>> counts, mask = detector_counts(simulate_pattern(1).expected, 1e8, rng=0)
>>> verdict = PatternClassifier.load(dims=3).classify(counts, mask)
>>> sorted(verdict.probabilities) == sorted(['perfect', 'dislocation', 'loop', 'stacking_fault', 'twin'])
True
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from braggscope._backend import load_checkpoint
from braggscope.errors import ConfigError, ShapeError

from .patterns import PATTERN_CLASSES, PATTERN_SHAPE, POSITION_BINS, invisible_defects
from .unet import _layers

__all__ = ["PatternNet", "pattern_input", "symmetry_views", "averaged_outputs", "prepare_pattern", "pattern_bins",
           "TRAINED_OVERSAMPLING", "PatternVerdict", "PatternClassifier", "fit_temperature", "fit_temperature_and_bias",
           "expected_calibration_error", "mahalanobis_fit", "mahalanobis_score", "pattern_weights_path"]


def _conv(spatial_dims, c_in, c_out, stride):
    conv, norm, _, _ = _layers(spatial_dims)
    return nn.Sequential(conv(c_in, c_out, 3, stride=stride, padding=1, bias=False), norm(c_out), nn.LeakyReLU(0.1))


class PatternNet(nn.Module):
    """Encoder (a stride-2 convolution per level, then one at that size) and two heads on the
    pooled features: defect-kind logits and the dislocation-position logits.

    Parameters
    ----------
    spatial_dims : {2, 3}
    features : sequence of int
        Channels per level; each level halves the size (64 → 4 with four levels).
    embedding : int
        Width of the feature vector the heads (and the out-of-distribution test) read.
    """

    def __init__(self, spatial_dims=3, features=(12, 24, 48, 96), embedding=64):
        super().__init__()
        self.config = dict(spatial_dims=spatial_dims, features=tuple(features), embedding=embedding)
        layers = [_conv(spatial_dims, 2, features[0], 2)]
        for a, b in zip(features[:-1], features[1:]):
            layers += [_conv(spatial_dims, a, a, 1), _conv(spatial_dims, a, b, 2)]
        self.encoder = nn.Sequential(*layers, _conv(spatial_dims, features[-1], features[-1], 1))
        self.embed = nn.Sequential(nn.Linear(2 * features[-1], embedding), nn.LeakyReLU(0.1))
        self.dropout = nn.Dropout(0.2)
        self.kind = nn.Linear(embedding, len(PATTERN_CLASSES))
        self.position = nn.Linear(embedding, len(POSITION_BINS))

    def features(self, x):
        """The embedding (B, embedding) of inputs (B, 2, ...)."""
        h = self.encoder(x).flatten(2)
        return self.embed(torch.cat([h.mean(-1), h.amax(-1)], dim=1))

    def forward(self, x):
        f = self.features(x)
        d = self.dropout(f)
        return {"kind": self.kind(d), "position": self.position(d), "features": f}


def symmetry_views(x, count) -> list[torch.Tensor]:
    """The first `count` of the 2·d copies of network inputs `x` (B, C, n, ...) over d spatial
    axes that show the same defect: the cyclic permutations of the axes, each as is and inverted
    through the peak (q → −q about voxel n/2, where :func:`prepare_pattern` puts it: the pattern
    of the twin object ρ*(−r)). Training draws random axis permutations and flips, so the network
    has seen every view; averaging over them (:func:`averaged_outputs`) cancels part of its error."""
    spatial = list(range(2, x.ndim))
    if not 1 <= count <= 2 * len(spatial):
        raise ConfigError(f"views must be 1 … {2 * len(spatial)} for a {len(spatial)}-D pattern, got {count}")
    views = []
    for shift in range(len(spatial)):
        turned = x.permute(0, 1, *(spatial[shift:] + spatial[:shift]))
        views += [turned, torch.roll(turned.flip(spatial), [1] * len(spatial), spatial)]
    return views[:count]


def averaged_outputs(net, x, views=1) -> dict:
    """The outputs of `net` (kind and position logits, features) on inputs `x`, each averaged
    over the first `views` of :func:`symmetry_views`, all in one batch (the copies come out
    contiguous: a 64³ pattern's 6 views take about the time of one alone on 2 CPU threads)."""
    out = net(torch.cat(symmetry_views(x, views)))
    return {k: v.unflatten(0, (views, len(x))).mean(0) for k, v in out.items()}


def pattern_input(counts, mask=None) -> torch.Tensor:
    """Network input (B, 2, ...) from counts (B, ...) [photons]: log(1 + I) over its maximum per
    pattern (0 on masked pixels), and the mask as the second channel."""
    counts = torch.as_tensor(counts, dtype=torch.float32)
    mask = torch.zeros_like(counts, dtype=torch.bool) if mask is None else torch.as_tensor(mask, dtype=torch.bool)
    logs = torch.log1p(torch.clamp(counts, min=0) * ~mask)
    top = logs.flatten(1).amax(1).clamp(min=1e-6).view(-1, *[1] * (counts.ndim - 1))
    return torch.stack([logs / top, mask.float()], dim=1)


TRAINED_OVERSAMPLING = 3.3  # the median oversampling per axis (estimate_oversampling) of the training patterns


def pattern_bins(intensity, mask=None) -> tuple:
    """Pixels per axis to sum so that a measured pattern comes to the oversampling the networks
    were trained at: the estimate per axis (:func:`~braggscope.retrieval.neural.estimate_oversampling`)
    over TRAINED_OVERSAMPLING, rounded, at least 1, and at most as many as leave the 64-pixel
    window inside the data (an axis of fewer than 128 pixels is not binned; data with no such
    axis are not estimated at all). A scan with a fine rocking step or a long detector distance
    is binned along those axes only."""
    from braggscope.retrieval.neural import estimate_oversampling

    most = np.maximum(np.array(np.shape(intensity)) // PATTERN_SHAPE[0], 1)
    if np.all(most == 1):
        return (1,) * len(most)
    ratio = estimate_oversampling(intensity, mask) / TRAINED_OVERSAMPLING
    return tuple(int(b) for b in np.clip(np.rint(ratio), 1, most))


def prepare_pattern(intensity, mask=None, *, dims=3, bin="auto"):
    """Counts and mask (64³, or 64² for `dims` 2) around the Bragg peak of any measured array.

    The data (a 3-D scan, frames first, or one 2-D frame) are cropped to 64 × `bin` pixels per
    axis around the peak (masked where the crop leaves the detector) and summed over `bin`
    pixels per axis: 'auto' (:func:`pattern_bins`), one integer, or one per axis of the data.
    For `dims` 2 a 3-D scan gives its frame at the top of the rocking curve (the frame through
    the peak)."""
    from braggscope.retrieval.prepare import bin_pixels, crop_around_peak

    intensity = np.asarray(intensity, np.float32)
    mask = np.zeros(intensity.shape, bool) if mask is None else np.asarray(mask, bool)
    if intensity.ndim not in (2, 3) or (dims == 3 and intensity.ndim == 2):
        raise ShapeError(f"the {dims}-D classifier needs a {'3-D scan' if dims == 3 else '2-D frame or 3-D scan'}, "
                         f"got shape {intensity.shape}", expected="(frames, rows, columns)", actual=intensity.shape)
    bins = _bins(bin, intensity, mask)
    counts, mask, _ = crop_around_peak(intensity, tuple(PATTERN_SHAPE[0] * b for b in bins), mask=mask)
    if any(b > 1 for b in bins):
        counts, mask = bin_pixels(counts, bins, mask=mask)
    if dims == 2 and counts.ndim == 3:
        frame = int(np.argmax(np.where(mask, 0, counts).sum(axis=(1, 2))))
        counts, mask = counts[frame], mask[frame]
    return counts, mask


def _bins(bin, intensity, mask) -> tuple:
    """`bin` as one integer ≥ 1 per axis of `intensity`: :func:`pattern_bins` for 'auto', else
    the integer (or the integers, one per axis) given."""
    if isinstance(bin, str) and bin == "auto":
        return pattern_bins(intensity, mask)
    ndim = np.ndim(intensity)
    values = np.atleast_1d(np.asarray(bin))
    if (values.size not in (1, ndim) or not np.issubdtype(values.dtype, np.integer) or np.any(values < 1)):
        raise ConfigError(f"bin must be 'auto', one integer ≥ 1 or {ndim} of them, got {bin!r}")
    return tuple(int(b) for b in np.broadcast_to(values, (ndim,)))


@dataclass(frozen=True)
class PatternVerdict:
    """What the classifier says about one pattern.

    Attributes
    ----------
    label : str
        The most probable class, or 'unknown' when the pattern is out of the training distribution.
    probabilities : dict
        Calibrated probability of each class.
    hkl : tuple or None
        The reflection measured, when given.
    invisible : dict or None
        The defects `hkl` cannot show (:func:`~.patterns.invisible_defects`): a 'perfect' verdict is
        "no defect visible at this reflection", and these are the defects it cannot rule out.
    position : dict or None
        For a dislocation verdict, the probabilities of POSITION_BINS (its distance from the
        centre over the crystal's reach: < 1/3, < 2/3, ≥ 2/3).
    ood_score : float
        Squared Mahalanobis distance of the pattern's features from the training data.
    ood_threshold : float
        The score above which the pattern is unknown (99th percentile of held-out patterns).
    bins : tuple or None
        The pixels summed per axis of the data before the network saw it (:func:`prepare_pattern`).
    """

    label: str
    probabilities: dict
    position: dict | None
    ood_score: float
    ood_threshold: float
    hkl: tuple | None = None
    invisible: dict | None = None
    bins: tuple | None = None

    @property
    def known(self) -> bool:
        return self.label != "unknown"

    def to_dict(self) -> dict:
        return asdict(self) | {"known": self.known}


def fit_temperature(logits, labels) -> float:
    """The temperature T that minimises the negative log-likelihood of softmax(logits / T) on
    held-out `labels` (Guo et al., ICML 2017)."""
    return _fit_calibration(logits, labels, bias=False)[0]


def fit_temperature_and_bias(logits, labels) -> tuple[float, np.ndarray]:
    """The temperature T and the per-class logit offsets b (C,) that minimise the negative
    log-likelihood of softmax(logits / T + b) on held-out `labels`: temperature scaling with a
    bias per class (vector scaling of Guo et al., ICML 2017, with one shared scale). The offsets
    mend a class that the network calls less (or more) often than the held-out data hold it."""
    return _fit_calibration(logits, labels, bias=True)


def _fit_calibration(logits, labels, *, bias):
    logits = torch.as_tensor(logits, dtype=torch.float64)
    labels = torch.as_tensor(labels, dtype=torch.long)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    offsets = torch.zeros(logits.shape[1], dtype=torch.float64, requires_grad=bias)
    opt = torch.optim.LBFGS([log_t, offsets] if bias else [log_t], lr=0.1, max_iter=200)

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(logits / log_t.exp() + offsets, labels)
        loss.backward()
        return loss

    opt.step(closure)
    b = offsets.detach()
    return float(log_t.detach().exp()), (b - b.mean()).numpy()


def expected_calibration_error(probabilities, labels, bins=15) -> tuple[float, dict]:
    """Expected calibration error (confidence-binned |accuracy - confidence|, weighted by the
    bin's share) and the reliability diagram's bins: 'confidence', 'accuracy', 'count'."""
    p = np.asarray(probabilities, float)
    confidence, predicted = p.max(1), p.argmax(1)
    correct = predicted == np.asarray(labels)
    index = np.minimum((confidence * bins).astype(int), bins - 1)
    count = np.bincount(index, minlength=bins)
    conf = np.bincount(index, confidence, minlength=bins) / np.maximum(count, 1)
    acc = np.bincount(index, correct, minlength=bins) / np.maximum(count, 1)
    ece = float(np.sum(count * np.abs(acc - conf)) / max(len(correct), 1))
    return ece, {"confidence": conf.tolist(), "accuracy": acc.tolist(), "count": count.tolist()}


def mahalanobis_fit(features, labels, *, shrinkage=1e-3):
    """Class means (C, F) and the shared precision matrix (F, F) of training features, for the
    out-of-distribution score min_c (f - μ_c)ᵀ Σ⁻¹ (f - μ_c) (Lee et al., NeurIPS 2018)."""
    f = torch.as_tensor(features, dtype=torch.float64)
    y = torch.as_tensor(labels, dtype=torch.long)
    means = torch.stack([f[y == c].mean(0) if (y == c).any() else f.mean(0) for c in range(len(PATTERN_CLASSES))])
    centred = f - means[y]
    cov = centred.T @ centred / max(len(f) - 1, 1)
    cov += shrinkage * torch.trace(cov) / cov.shape[0] * torch.eye(cov.shape[0], dtype=cov.dtype)
    return means.float(), torch.linalg.inv(cov).float()


def mahalanobis_score(features, means, precision):
    """Squared Mahalanobis distance (B,) of `features` (B, F) to the nearest class mean."""
    d = features[:, None, :] - means[None]
    return torch.einsum("bcf,fg,bcg->bc", d, precision, d).amin(1)


def pattern_weights_path(dims=3) -> Path:
    """The shipped weights of the `dims`-D pattern classifier."""
    return Path(__file__).parent / "weights" / f"pattern_{dims}d.pt"


class PatternClassifier:
    """A trained :class:`PatternNet` with its calibration (temperature, per-class logit `bias`) and
    out-of-distribution statistics, all fitted on its outputs averaged over `views` symmetric
    copies of each pattern (:func:`symmetry_views`).

    Use :meth:`load` for the shipped weights, :meth:`classify` for one pattern (any size: it is
    cropped around the peak), :meth:`classify_batch` for prepared 64³/64² arrays and
    :meth:`stream` for a stream of detector frames.
    """

    def __init__(self, net, *, temperature=1.0, bias=None, means=None, precision=None, threshold=float("inf"),
                 views=1, meta=None, device="cpu"):
        self.net = net.to(device).eval()
        self.dims = net.config["spatial_dims"]
        self.views = int(views)
        self.temperature = float(temperature)
        self.bias = np.zeros(len(PATTERN_CLASSES)) if bias is None else np.asarray(bias, float)
        self.means, self.precision = means, precision
        self.threshold = float(threshold)
        self.meta = meta or {}
        self.device = device

    @classmethod
    def load(cls, path=None, *, dims=3, device="cpu") -> "PatternClassifier":
        """The classifier saved at `path` (default: the shipped `dims`-D weights)."""
        saved = load_checkpoint(pattern_weights_path(dims) if path is None else path, "pattern-classifier weights",
                                "train them with python -m braggscope.identify.pattern_training")
        net = PatternNet(**saved["config"])
        net.load_state_dict(saved["state_dict"])
        return cls(net, temperature=saved["temperature"], bias=saved.get("bias"), means=saved["means"],
                   precision=saved["precision"], threshold=saved["threshold"], views=saved.get("views", 1),
                   meta=saved.get("meta", {}), device=device)

    def save(self, path) -> None:
        """Weights, calibration, out-of-distribution statistics and `meta`, written atomically."""
        from braggscope.io.cxi import atomic_path

        with atomic_path(path) as tmp:
            torch.save({"config": self.net.config, "state_dict": self.net.state_dict(),
                        "temperature": self.temperature, "bias": self.bias.tolist(), "means": self.means,
                        "precision": self.precision, "threshold": self.threshold, "views": self.views,
                        "meta": self.meta}, tmp)

    @torch.no_grad()
    def outputs(self, counts, mask=None) -> dict:
        """Calibrated probabilities of prepared patterns (B, 64, ...): 'kind' (B, C), 'position'
        (B, 3) and 'ood' (B,) scores."""
        x = pattern_input(counts, mask).to(self.device)
        out = averaged_outputs(self.net, x, self.views)
        ood = (mahalanobis_score(out["features"].cpu(), self.means, self.precision) if self.means is not None
               else torch.zeros(len(x)))
        return {"kind": self.probabilities(out["kind"].cpu()),
                "position": torch.softmax(out["position"], 1).cpu().numpy(), "ood": ood.numpy()}

    def probabilities(self, logits) -> np.ndarray:
        """Calibrated class probabilities (B, C) of the network's kind logits (B, C):
        softmax(logits / temperature + bias)."""
        z = torch.as_tensor(logits, dtype=torch.float64) / self.temperature + torch.as_tensor(self.bias)
        return torch.softmax(z, 1).float().numpy()

    def classify_batch(self, counts, mask=None, *, hkl=None) -> list[PatternVerdict]:
        """Verdicts of prepared patterns (B, 64, ...) (:func:`prepare_pattern`), all measured at
        the reflection `hkl` when given."""
        out = self.outputs(counts, mask)
        invisible = None if hkl is None else invisible_defects(hkl)
        hkl = None if hkl is None else tuple(int(v) for v in hkl)
        return [self._verdict(*(out[k][i] for k in ("kind", "position", "ood")), hkl, invisible)
                for i in range(len(out["kind"]))]

    def classify(self, intensity, mask=None, *, bin="auto", hkl=None) -> PatternVerdict:
        """The verdict on one pattern of any size (cropped around its peak and binned to the
        trained oversampling, see :func:`prepare_pattern`) measured at the reflection `hkl`
        (optional: it names the defects the verdict cannot see)."""
        bins = _bins(bin, intensity, mask)
        counts, mask = prepare_pattern(intensity, mask, dims=self.dims, bin=bins)
        if not np.any(counts[~mask] > 0):
            raise ConfigError("the pattern holds no counts outside its mask")
        return replace(self.classify_batch(counts[None], mask[None], hkl=hkl)[0], bins=bins)

    def stream(self, frames, masks=None, *, hkl=None):
        """Verdicts, one per item, of an iterable of patterns (detector frames for the 2-D
        classifier) measured at `hkl`, as they arrive."""
        masks = iter(masks) if masks is not None else None
        for frame in frames:
            yield self.classify(frame, None if masks is None else next(masks), hkl=hkl)

    def _verdict(self, kind, position, ood, hkl, invisible) -> PatternVerdict:
        probabilities = {c: float(p) for c, p in zip(PATTERN_CLASSES, kind)}
        best = PATTERN_CLASSES[int(np.argmax(kind))]
        label = best if ood <= self.threshold else "unknown"
        where = {b: float(p) for b, p in zip(POSITION_BINS, position)} if best == "dislocation" else None
        return PatternVerdict(label=label, probabilities=probabilities, position=where, ood_score=float(ood),
                              ood_threshold=self.threshold, hkl=hkl, invisible=invisible)
