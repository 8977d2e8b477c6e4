"""Defects in transmission electron micrographs: dislocation loops, precipitates and cavities
found, outlined, classified, counted and measured.

The chain: background flattening (:func:`prepare_micrograph`, a wide Gaussian from scipy), a
2-D U-Net (the blocks of :mod:`.unet`) trained on the physics-based synthetic micrographs of
:mod:`braggscope.simulate.tem` that gives class probabilities and, per object, the distance to
its edge; the objects are the watershed basins (scikit-image) of that distance seeded by its
cores; each is classified by its mean probabilities and measured from its pixels' moments,
all objects at once (diameter; for loops the largest Feret diameter less the outline's rim, the
projected loop's true diameter, and the habit: orientation and inclination from the axis ratio).

The network is trained with the background's cross-entropy weighted down (CLASS_WEIGHTS), which
tilts its softmax towards the objects; :meth:`TEMSegmenter.predict` divides that weight back
out, so that an object's outline is where the object becomes the likelier class. The network
works at 0.5 nm per pixel; other pixel sizes are resampled to it and back. Denoising is
learned: the network is trained on shot noise from 50 to 3000 electrons per pixel.

>>> from braggscope.identify.tem import distance_target
>>> import numpy as np
>>> labels = np.zeros((7, 7), int); labels[1:6, 1:6] = 1
>>> float(distance_target(labels).max())
1.0
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from braggscope._validate import check_finite, check_positive
from braggscope.errors import ConfigError
from braggscope.simulate.tem import LOOP_RIM_NM, TEM_CLASSES

from .unet import UNet, fuse_batchnorm, predict_tiled

__all__ = ["TEMSegmenter", "TEMResult", "prepare_micrograph", "distance_target", "instances", "match_objects",
           "measure_objects", "score_micrographs", "default_tem_weights_path", "NETWORK_PIXEL_NM", "CLASS_WEIGHTS",
           "FEATURES", "overlay_png", "invisible_loops", "invisible_loops_text"]

#: [nm] The pixel size the network was trained at.
NETWORK_PIXEL_NM = 0.5
_BACKGROUND_SIGMA_NM = 24.0
_MIN_AREA_PX = 6
#: Weights of the classes (background, loop, precipitate, cavity) in the training cross-entropy.
CLASS_WEIGHTS = (0.2, 1.0, 1.0, 1.0)
#: The U-Net's channels per level (the shipped weights'): wide at the coarse levels, where the
#: shape of a loop is read and a channel costs little time.
FEATURES = (8, 16, 48, 128, 256)


def default_tem_weights_path() -> Path:
    """The shipped weights of the micrograph U-Net (trained by :mod:`.tem_training`)."""
    return Path(__file__).parent / "weights" / "tem_unet.pt"


def prepare_micrograph(image) -> np.ndarray:
    """The network's input (ny, nx) float32 from a micrograph in counts at the network's pixel
    size: the fractional contrast I / B - 1 against the background B (a Gaussian of 24 nm, which
    removes uneven illumination, slow thickness and bend changes; computed on 4 × 4 block means
    and interpolated back, as the background is smooth), clipped to ±3."""
    from scipy.ndimage import gaussian_filter
    from skimage.transform import downscale_local_mean, resize

    img = np.asarray(image, np.float32)
    k = 4
    blocks = downscale_local_mean(img[:img.shape[0] // k * k, :img.shape[1] // k * k], (k, k))
    smooth = gaussian_filter(blocks, _BACKGROUND_SIGMA_NM / NETWORK_PIXEL_NM / k, mode="reflect")
    background = resize(smooth, img.shape, order=1, mode="edge", anti_aliasing=False)
    scale = max(float(np.median(np.abs(background))), 1e-6)
    return np.clip(img / np.maximum(background, 1e-3 * scale) - 1, -3, 3).astype(np.float32)


def distance_target(labels) -> np.ndarray:
    """(ny, nx) float32: each object's distance to its edge over its largest one (1 at the
    centre, towards 0 at the rim, 0 outside)."""
    from scipy import ndimage
    from skimage.segmentation import find_boundaries

    labels = np.asarray(labels)
    dist = ndimage.distance_transform_edt((labels > 0) & ~find_boundaries(labels, mode="inner")) + (labels > 0)
    n = int(labels.max())
    if n == 0:
        return np.zeros(labels.shape, np.float32)
    peak = np.zeros(n + 1)
    peak[1:] = ndimage.maximum(dist, labels, np.arange(1, n + 1))
    return (dist / np.maximum(peak[labels], 1e-9)).astype(np.float32)


def _dome_tops(values, h) -> np.ndarray:
    """Seeds (int labels) of the maxima of `values` that stand at least `h` above every path to a
    higher one: the h-maxima, one label per h-dome. ``skimage.morphology.h_maxima`` marks the
    same pixels, but a dome whose top value is reached at two places that do not touch (a tie,
    common once the map is rounded) would give two seeds and split the object."""
    from skimage.measure import label
    from skimage.morphology import reconstruction

    residue = values - reconstruction(values - h, values, method="dilation")
    domes = label(residue > 0)
    return np.where(residue >= h * (1 - 1e-9), domes, 0)


def instances(prob, distance, *, min_area=_MIN_AREA_PX, h=0.5) -> np.ndarray:
    """Instance labels (ny, nx) int32 from class probabilities (classes, ny, nx) and the
    distance map: watershed of -distance inside the foreground, seeded by the distance's maxima
    that stand `h` above their surroundings (h-maxima), one seed at the top of any foreground
    piece that has none; basins smaller than `min_area` pixels dropped."""
    from scipy import ndimage
    from skimage.measure import label
    from skimage.segmentation import relabel_sequential, watershed

    foreground = prob.argmax(axis=0) > 0
    pieces = label(foreground)
    markers, seeds = np.zeros(pieces.shape, np.int32), 0
    for k, box in enumerate(ndimage.find_objects(pieces), start=1):  # objects are sparse: work piece by piece
        own = pieces[box] == k
        tops = _dome_tops(np.where(own, distance[box], 0).astype(np.float64), h) * own
        if not tops.any():  # a piece without a clear top gets one seed at its highest point
            tops[np.unravel_index(np.argmax(np.where(own, distance[box], -1)), own.shape)] = 1
        markers[box][tops > 0] = tops[tops > 0] + seeds
        seeds += int(tops.max())
    basins = watershed(-distance, markers, mask=foreground)
    small = np.bincount(basins.ravel()) < min_area
    small[0] = False
    basins[small[basins]] = 0
    return relabel_sequential(basins)[0].astype(np.int32)


def _label_means(ids, n, values):
    """(n, len(values)) The mean of each of `values` (one value per object pixel) over each
    object 1…n, with `ids` the object of each pixel, and (n,) the objects' pixel counts
    (``np.bincount``: one pass per value, whatever the number of objects)."""
    count = np.bincount(ids, minlength=n + 1)[1:].astype(np.float64)
    sums = np.stack([np.bincount(ids, v, minlength=n + 1)[1:] for v in values], axis=1)
    return sums / np.maximum(count, 1)[:, None], count


def _feret_centres(region) -> float:
    """[px] The largest distance between the centres of two pixels of the boolean `region`
    (its Feret diameter measured between pixel centres; the farthest pair lies on the edge)."""
    from scipy import ndimage
    from scipy.spatial.distance import pdist

    edge = np.argwhere(region & ~ndimage.binary_erosion(region))
    return float(np.sqrt(pdist(edge, "sqeuclidean").max())) if len(edge) > 1 else 0.0


def measure_objects(labels, prob, pixel_nm) -> list:
    """One dict per object of `labels` (ny, nx; ids 1…n): class and its mean probability from
    `prob` (classes, ny, nx), centre [px], area [nm²], diameter [nm] (loops: the largest Feret
    diameter between pixel centres less the outline's rim; others: the equivalent disc's) and
    for loops the habit: the orientation of the long axis [degrees from the rows' axis] and the
    inclination of the loop plane from the axis ratio [degrees]. The minor axis is that of the
    ellipse with the object's second moments (4 σ, as ``regionprops``' ``axis_minor_length``)."""
    from scipy import ndimage

    n = int(labels.max())
    if n == 0:
        return []
    inside = labels > 0
    r, c = (v.astype(np.float64) for v in np.nonzero(inside))
    means, count = _label_means(labels[inside], n, [r, c, r * r, c * c, r * c, *(p[inside] for p in prob[1:])])
    centre, mean_p = means[:, :2], means[:, 5:]
    rr, cc, rc = means[:, 2] - centre[:, 0] ** 2, means[:, 3] - centre[:, 1] ** 2, means[:, 4] - centre.prod(axis=1)
    minor_px = 4 * np.sqrt(np.maximum((rr + cc) / 2 - np.sqrt(((rr - cc) / 2) ** 2 + rc**2), 0))
    orientation = 0.5 * np.arctan2(2 * rc, rr - cc)
    boxes = ndimage.find_objects(labels, n)
    objects = []
    for i in np.flatnonzero(count > 0):
        k = int(np.argmax(mean_p[i])) + 1
        cls = TEM_CLASSES[k]
        obj = {"id": int(i + 1), "class": cls, "probability": round(float(mean_p[i, k - 1] / mean_p[i].sum()), 3),
               "centre_px": [round(float(v), 2) for v in centre[i]], "area_nm2": float(count[i] * pixel_nm**2)}
        if cls == "loop":  # the outline is the projected loop grown by LOOP_RIM_NM on each side: take the rim off
            major = max(_feret_centres(labels[boxes[i]] == i + 1) * pixel_nm - 2 * LOOP_RIM_NM, pixel_nm)
            minor = max(minor_px[i] * pixel_nm - 2 * LOOP_RIM_NM, 0.0)
            obj["diameter_nm"] = float(major)
            obj["orientation_deg"] = round(float(np.degrees(orientation[i])), 1)
            obj["inclination_deg"] = round(float(np.degrees(np.arccos(np.clip(minor / major, 0, 1)))), 1)
        else:
            obj["diameter_nm"] = float(np.sqrt(4 * count[i] / np.pi) * pixel_nm)
        objects.append(obj)
    return objects


@dataclass
class TEMResult:
    """Objects found in one micrograph: `objects` (dicts: id, class, probability, centre_px,
    diameter_nm, area_nm2, and for loops orientation_deg, inclination_deg), `labels` (ny, nx)
    the outline of each (object i has value id), `pixel_nm`, `field_um2` the imaged area,
    `classes` (ny, nx) the class index of every pixel."""

    objects: list
    labels: np.ndarray
    pixel_nm: float
    field_um2: float
    classes: np.ndarray = field(repr=False)

    def counts(self) -> dict:
        """Number of objects of each class."""
        return {c: sum(o["class"] == c for o in self.objects) for c in TEM_CLASSES[1:]}

    def densities(self) -> dict:
        """[µm⁻²] Number of objects per area of each class."""
        return {c: n / self.field_um2 for c, n in self.counts().items()}

    def size_histograms(self, bin_nm=2.0) -> dict:
        """Per class: bin edges [nm] and counts of the diameters."""
        out = {}
        for c in TEM_CLASSES[1:]:
            d = np.array([o["diameter_nm"] for o in self.objects if o["class"] == c])
            top = max(float(d.max()) if d.size else 0.0, bin_nm)
            counts, edges = np.histogram(d, bins=np.arange(0, top + bin_nm, bin_nm))
            out[c] = {"edges_nm": edges.tolist(), "counts": counts.tolist()}
        return out

    def to_dict(self) -> dict:
        """JSON-able: counts, densities, size histograms and the object table."""
        return {"pixel_nm": self.pixel_nm, "field_um2": self.field_um2, "counts": self.counts(),
                "density_per_um2": self.densities(), "size_histogram": self.size_histograms(), "objects": self.objects}


def invisible_loops(g) -> dict:
    """The fcc loops that a two-beam image in reflection `g` (hkl) shows only by the residual
    contrast of g·(b × u), with g·b = 0: 'frank' (faulted, b = a/3<111>; the fault's g·R is 0
    too) and 'perfect' (prismatic, b = a/2<110>), Burgers vectors in units of a, one of each ±
    pair. A count of loops in one g misses many of them; a second g that shows them completes it."""
    from .patterns import invisible_defects

    hidden = invisible_defects(g)
    return {"frank": hidden["frank_loops"], "perfect": hidden["dislocations"]}


def invisible_loops_text(g) -> str:
    """One line: the loop variants `g` shows only faintly (:func:`invisible_loops`), and how many
    of the 4 Frank and 6 perfect variants that is."""
    from .patterns import format_vector

    hidden = invisible_loops(g)
    hkl = " ".join(str(int(v)) for v in g)
    names = [f"{name} b = {', '.join(format_vector(b) for b in hidden[kind])}"
             for kind, name in (("frank", "Frank"), ("perfect", "perfect")) if hidden[kind]]
    if not names:
        return f"g = {hkl} shows every Frank and perfect loop variant (g·b ≠ 0)"
    return (f"g·b = 0 at g = {hkl} for {len(hidden['frank'])} of 4 Frank and {len(hidden['perfect'])} of 6 "
            f"perfect loop variants ({'; '.join(names)}): they show only by residual contrast and are "
            "undercounted; image the field in a second g to count them")


class TEMSegmenter:
    """The micrograph U-Net (1 input channel; 4 class logits and 1 distance channel out)
    with its training record `meta`."""

    def __init__(self, net: UNet, meta=None, device="cpu"):
        self.net = net.to(device).eval()
        self.meta = meta or {}
        self.device = device

    @classmethod
    def new(cls, features=FEATURES):
        """An untrained segmenter with `features` channels per level."""
        return cls(UNet(in_channels=1, classes=len(TEM_CLASSES) + 1, features=features, spatial_dims=2))

    @classmethod
    def load(cls, path=None, *, device="cpu"):
        """The segmenter saved at `path` (default: the shipped weights) on `device`."""
        from braggscope._backend import load_checkpoint

        saved = load_checkpoint(default_tem_weights_path() if path is None else path, "TEM U-Net weights",
                                "train them with python -m braggscope.identify.tem_training")
        net = UNet(**saved["config"])
        net.load_state_dict(saved["state_dict"])
        return cls(net, saved.get("meta", {}), device)

    def save(self, path):
        """Write the weights, configuration and training record (atomically)."""
        from braggscope.io.cxi import atomic_path

        with atomic_path(path) as tmp:
            torch.save({"config": self.net.config, "state_dict": self.net.state_dict(), "meta": self.meta}, tmp)

    def predict(self, image):
        """Class probabilities (4, ny, nx) and distance map (ny, nx) of a micrograph in counts
        at the network's pixel size. The probabilities are the softmax with the training's class
        weights divided out (a network trained with weights w_c learns p(c) w_c / Σ w p)."""
        k = len(TEM_CLASSES)
        unweight = torch.tensor(CLASS_WEIGHTS, dtype=torch.float32).view(1, k, 1, 1) ** -1

        def activation(logits):
            prob = torch.softmax(logits[:, :k], dim=1) * unweight.to(logits.device)
            return torch.cat([prob / prob.sum(dim=1, keepdim=True), torch.sigmoid(logits[:, k:])], dim=1)

        x = prepare_micrograph(image)[None]
        out = predict_tiled(fuse_batchnorm(self.net), x, tile=2048, overlap=64, device=self.device,
                            activation=activation)
        return out[:k], out[k]

    def detect(self, image, pixel_nm=NETWORK_PIXEL_NM) -> TEMResult:
        """Find, classify and measure the objects of a micrograph (ny, nx) in counts whose
        pixels are `pixel_nm` [nm] wide."""
        from skimage.transform import rescale, resize

        img = np.asarray(image, dtype=np.float32)
        if img.ndim != 2 or min(img.shape) < 16:
            raise ConfigError(f"a micrograph must be a 2-D image of at least 16 × 16 pixels, got shape {img.shape}")
        check_finite(img, "micrograph")
        pixel_nm = check_positive(pixel_nm, "pixel size", "nm")
        factor = pixel_nm / NETWORK_PIXEL_NM
        work = img if abs(factor - 1) < 1e-6 else rescale(img, factor, order=1, anti_aliasing=factor < 1,
                                                          preserve_range=True).astype(np.float32)
        prob, distance = self.predict(work)
        labels = instances(prob, distance)
        objects = measure_objects(labels, prob, NETWORK_PIXEL_NM)
        classes = prob.argmax(axis=0).astype(np.uint8)
        if work.shape != img.shape:
            labels, classes = (resize(a, img.shape, order=0, preserve_range=True, anti_aliasing=False).astype(a.dtype)
                               for a in (labels, classes))
            for o in objects:
                o["centre_px"] = [round(c / factor, 2) for c in o["centre_px"]]
        field_um2 = img.shape[0] * img.shape[1] * pixel_nm**2 / 1e6
        return TEMResult(objects=objects, labels=labels, pixel_nm=pixel_nm, field_um2=field_um2, classes=classes)


def match_objects(pred_labels, true_labels, *, threshold=0.5):
    """Pairs (pred id, true id, IoU) of objects overlapping with IoU ≥ `threshold` (one-to-one
    for a threshold ≥ 0.5)."""
    p = np.asarray(pred_labels).ravel().astype(np.int64)
    t = np.asarray(true_labels).ravel().astype(np.int64)
    both = (p > 0) & (t > 0)
    if not both.any():
        return []
    pairs, overlap = np.unique(p[both] * (t.max() + 1) + t[both], return_counts=True)
    area_p = np.bincount(p, minlength=p.max() + 1)
    area_t = np.bincount(t, minlength=t.max() + 1)
    out = []
    for key, inter in zip(pairs, overlap):
        i, j = divmod(int(key), int(t.max()) + 1)
        iou = inter / (area_p[i] + area_t[j] - inter)
        if iou >= threshold:
            out.append((i, j, float(iou)))
    return out


def _f1(tp, fp, fn):
    return 2 * tp / max(2 * tp + fp + fn, 1)


def _tally(result: TEMResult, m, t):
    """Add one micrograph's object matches, size and tilt errors, count error, pixel hits, visible
    objects and the reason each lost one was lost to the running tally `t`. A found object on an
    invisible true one is neither right nor wrong."""
    truth = {i + 1: o for i, o in enumerate(m.objects)}
    pred = {o["id"]: o for o in result.objects}
    pairs = match_objects(result.labels, m.labels)
    on_invisible = {i for i, j, _ in pairs if not truth[j]["visible"]}
    for i, j, _ in pairs:
        if i in on_invisible:
            continue
        ci, cj = TEM_CLASSES.index(pred[i]["class"]), TEM_CLASSES.index(truth[j]["class"])
        t["tp"][ci] += ci == cj
        t["fp"][ci] += ci != cj
        t["fn"][cj] += ci != cj
        if ci == cj:
            t["size"].append((cj, abs(pred[i]["diameter_nm"] - truth[j]["diameter_nm"]) / truth[j]["diameter_nm"]))
            if "inclination_deg" in truth[j]:
                t["tilt"].append(abs(pred[i]["inclination_deg"] - truth[j]["inclination_deg"]))
    matched_p, matched_t = {i for i, _, _ in pairs}, {j for _, j, _ in pairs}
    for i, o in pred.items():
        t["fp"][TEM_CLASSES.index(o["class"])] += i not in matched_p
    found = {j for i, j, _ in pairs if pred[i]["class"] == truth[j]["class"]}
    touched = set(np.unique(np.asarray(m.labels)[np.asarray(result.labels) > 0]).tolist())
    for j, o in truth.items():
        t["visible"][TEM_CLASSES.index(o["class"])] += o["visible"]
        t["fn"][TEM_CLASSES.index(o["class"])] += o["visible"] and j not in matched_t
        if o["visible"] and j not in found:  # why it was lost: the class, the outline, or not seen at all
            why = "wrong_class" if j in matched_t else "low_iou" if j in touched else "missed"
            t[why][TEM_CLASSES.index(o["class"])] += 1
        if o["class"] == "loop" and o["visible"]:
            t["loops"].append((o["diameter_nm"], o["inclination_deg"], o["g_dot_b"], j in found))
    n_true = sum(o["visible"] for o in m.objects)
    t["count"].append(abs(len(pred) - len(on_invisible) - n_true) / max(n_true, 1))
    cm = m.class_map()
    for c in range(1, len(TEM_CLASSES)):
        t["pixels"][c] += (cm == c).sum()
        t["hits"][c] += ((cm == c) & (result.classes == c)).sum()


def _median(values):
    return float(np.median(values)) if values else float("nan")


def _loop_recalls(loops) -> dict:
    """Share of the visible loops found (IoU ≥ 0.5, called a loop) by diameter (< 10 nm or not),
    by the inclination of their plane to the image (≥ 60°: seen nearly edge-on, or not) and by
    g·b (0: only the residual contrast of g·(b × u) shows them, or not)."""
    d, tilt, gb, hit = (np.array(v, dtype=float) for v in zip(*loops)) if loops else (np.zeros(0),) * 4
    groups = {"small": d < 10, "large": d >= 10, "steep": tilt >= 60, "flat": tilt < 60,
              "g_dot_b_zero": np.abs(gb) < 1e-3, "g_dot_b_nonzero": np.abs(gb) >= 1e-3}
    return {f"loop_recall_{name}": float(hit[sel].mean()) if sel.any() else float("nan")
            for name, sel in groups.items()}


def score_micrographs(segmenter, micrographs) -> dict:
    """Object F1 per class (IoU ≥ 0.5, class must agree), the median relative size error of the
    matched objects (all, and per class), the median relative error of the object count (number
    density) per micrograph, the median error of the matched loops' inclination [degrees], the
    share of loops found by size and inclination, the pixel accuracy per class (true pixels
    of the class predicted as it), and why the visible objects of each class that were not found
    were lost, as shares of them: missed_<class> (no found object touches it), low_iou_<class>
    (touched, but no found object overlaps it with IoU ≥ 0.5: a wrong outline, a split or a merge)
    and wrong_class_<class> (outlined, but called another class). Objects the noiseless image does
    not show (contrast below MIN_CONTRAST) count neither as misses nor, when found, as false."""
    k = len(TEM_CLASSES)
    t = {"tp": np.zeros(k), "fp": np.zeros(k), "fn": np.zeros(k), "pixels": np.zeros(k), "hits": np.zeros(k),
         "visible": np.zeros(k), "missed": np.zeros(k), "low_iou": np.zeros(k), "wrong_class": np.zeros(k),
         "size": [], "tilt": [], "count": [], "loops": []}
    for m in micrographs:
        _tally(segmenter.detect(m.image, m.pixel_nm), m, t)
    scores = {f"{c}_f1": float(_f1(t["tp"][i], t["fp"][i], t["fn"][i])) for i, c in enumerate(TEM_CLASSES) if i}
    scores["mean_f1"] = float(np.mean([scores[f"{c}_f1"] for c in TEM_CLASSES[1:]]))
    scores.update(size_error=_median([e for _, e in t["size"]]), density_error=_median(t["count"]),
                  loop_inclination_error_deg=_median(t["tilt"]))
    scores.update({f"size_error_{c}": _median([e for k, e in t["size"] if k == i])
                   for i, c in enumerate(TEM_CLASSES) if i})
    scores.update({f"pixel_accuracy_{c}": float(t["hits"][i] / max(t["pixels"][i], 1))
                   for i, c in enumerate(TEM_CLASSES) if i})
    scores.update({f"{why}_{c}": float(t[why][i] / max(t["visible"][i], 1))
                   for why in ("missed", "low_iou", "wrong_class") for i, c in enumerate(TEM_CLASSES) if i})
    scores.update(_loop_recalls(t["loops"]))
    scores["objects_true"] = int(t["tp"].sum() + t["fn"].sum())
    return scores


_COLOURS = {"loop": "#ff3030", "precipitate": "#30c0ff", "cavity": "#ffd000"}


def overlay_png(path, image, result: TEMResult):
    """A PNG of the micrograph with every object's outline in its class colour and its number."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.measure import find_contours

    from braggscope.io.cxi import atomic_path

    img = np.asarray(image, np.float32)
    lo, hi = np.percentile(img, [1, 99])
    ny, nx = img.shape
    fig, ax = plt.subplots(figsize=(8, 8 * ny / nx))
    ax.imshow(img, cmap="gray", vmin=lo, vmax=hi)
    for o in result.objects:
        for contour in find_contours((result.labels == o["id"]).astype(float), 0.5):
            ax.plot(contour[:, 1], contour[:, 0], color=_COLOURS[o["class"]], lw=1)
        ax.text(o["centre_px"][1], o["centre_px"][0], str(o["id"]), color=_COLOURS[o["class"]], fontsize=6,
                ha="center", va="center")
    ax.set_axis_off()
    counts = result.counts()
    ax.set_title("  ".join(f"{c}: {counts[c]}" for c in counts) + f"  ({result.field_um2:.3g} µm²)",
                 fontsize=9)
    for c, colour in _COLOURS.items():
        ax.plot([], [], color=colour, label=c)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
