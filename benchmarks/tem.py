"""Benchmark of defect detection in TEM micrographs (issue: TEM).

Held-out set: IMAGES (60) micrographs braggscope.simulate.tem.random_micrograph from TEST_SEED on
(256² pixels at 0.5 nm, Cu/Ni/Au/Pt foils of 40–150 nm in two-beam bright field, 2–14 loops,
precipitates and cavities, ±300–1500 nm defocus), seeds the training never saw; each noiseless
micrograph is put through the camera at three doses (the noise levels: 100, 400 and 2000 electrons
per pixel). --weights scores other weights than the shipped ones.

Figures (one JSON line): per level the object F1 per class (IoU ≥ 0.5, the class must agree),
the median relative size error of the matched objects (all and per class), the median relative
error of the object count per micrograph (number density), the median error of the matched loops'
inclination, the share of loops found by size (< 10 nm or not), tilt (≥ 60° or not) and g·b (0 or
not), why the visible objects not found were lost (missed_<class>: nothing found touches it; low_iou_<class>:
touched, IoU < 0.5; wrong_class_<class>: outlined but called another class; shares of that class's visible
objects), the pixel accuracy per class (DefectSegNet's measure: the true pixels of a class predicted as it); the
headline keys are those at 400 e/px. Beside them a classical peer measured on the same images: a
band-pass filter, a threshold and connected pieces (ImageJ's "Analyze Particles" recipe, with
scikit-image), class-agnostic object F1 with the best of four thresholds chosen on the images
themselves, so it is flattered. train_s_to_95pct is read from the shipped weights'
training record (the first validation point at 95 % of the final mean F1, CPU of the training
machine); inference_s_1024 is the time of the whole detection (prepare, U-Net, watershed,
measures) on one 1024² micrograph, against fft_s_1024, one 1024² complex FFT. The published
figures of the anchors are carried for comparison, not re-measured.
Run: python benchmarks/tem.py [--quick] [--weights PATH]
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_time, device, emit  # noqa: E402

from braggscope.identify.tem import TEMSegmenter, match_objects, prepare_micrograph, score_micrographs  # noqa: E402
from braggscope.identify.tem_training import TEST_SEED, random_camera  # noqa: E402
from braggscope.simulate.tem import camera, random_micrograph  # noqa: E402

IMAGES = 60
LEVELS = (100.0, 400.0, 2000.0)
HEADLINE = 400.0
PUBLISHED = {"defectsegnet_pixel_accuracy": {"dislocation": 0.916, "precipitate": 0.934, "void": 0.989},
             "jacobs_2022_mask_rcnn_loops": {"f1": 0.8, "size_error": 0.073, "density_error": 0.127},
             "shen_2021_yolo_loops_f1": 0.89}


def _noisy(micrographs, dose, seed):
    rng = np.random.default_rng(seed)
    return [replace(m, image=camera(m.intensity, random_camera(rng, dose), rng)) for m in micrographs]


def _classical_f1(micrographs, k):
    """Class-agnostic object F1 of a classical pipeline (what ImageJ's band-pass filter and
    "Analyze Particles" do): |difference of Gaussians (1.5, 8 px)| of the flattened image above
    k × its median, closed, holes filled, pieces under 30 pixels dropped."""
    from scipy.ndimage import binary_closing, binary_fill_holes
    from skimage.filters import difference_of_gaussians
    from skimage.measure import label

    tp = fp = fn = 0
    for m in micrographs:
        band = np.abs(difference_of_gaussians(prepare_micrograph(m.image), 1.5, 8))
        labels = label(binary_fill_holes(binary_closing(band > k * np.median(band), iterations=2)))
        small = np.bincount(labels.ravel()) < 30
        small[0] = False
        labels = label(np.where(small[labels], 0, labels) > 0)
        pairs = match_objects(labels, m.labels)
        visible = {j + 1 for j, o in enumerate(m.objects) if o["visible"]}
        hit = {j for _, j, _ in pairs}
        tp += len(hit & visible)
        fp += labels.max() - len(pairs)  # a piece on an invisible object is neither right nor wrong
        fn += len(visible - hit)
    return 2 * tp / max(2 * tp + fp + fn, 1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--weights", type=Path, help="weights to score instead of the shipped ones")
    args = parser.parse_args(argv)
    n = 6 if args.quick else IMAGES
    with ProcessPoolExecutor(2) as pool:
        clean = list(pool.map(random_micrograph, range(TEST_SEED, TEST_SEED + n)))
    seg = TEMSegmenter.load(args.weights)
    result = {"images": n, "shape": [256, 256], "pixel_nm": 0.5, "levels_e_per_px": list(LEVELS)}
    noisy = {level: _noisy(clean, level, seed=int(level)) for level in LEVELS}
    for level in LEVELS:
        scores = score_micrographs(seg, noisy[level])
        tag = f"{int(level)}"
        result.update({f"{k}_{tag}": round(v, 4) if isinstance(v, float) else v for k, v in scores.items()})
        if level == HEADLINE:
            result.update({k: round(v, 4) for k, v in scores.items() if isinstance(v, float)})
            result["pixel_accuracy_loops"] = result.pop("pixel_accuracy_loop")
    result["classical_f1_400"] = round(max(_classical_f1(noisy[HEADLINE], k) for k in (3, 4, 6, 8)), 4)
    history = seg.meta.get("history", [])
    if history:
        final = history[-1]["mean_f1"]
        result["train_s_to_95pct"] = round(next(h["seconds"] for h in history if h["mean_f1"] >= 0.95 * final), 1)
        result["train_s_total"] = round(history[-1]["seconds"], 1)
    big = np.tile(noisy[HEADLINE][0].image, (4, 4))
    result["inference_s_1024"] = round(best_time(lambda: seg.detect(big, 0.5), 2 if args.quick else 3)[0], 3)
    wave = np.exp(1j * np.random.default_rng(0).normal(size=(1024, 1024))).astype(np.complex64)
    result["fft_s_1024"] = round(best_time(lambda: np.fft.fft2(wave), 5)[0], 4)
    result["inference_over_fft"] = round(result["inference_s_1024"] / result["fft_s_1024"], 1)
    result["published"] = PUBLISHED
    result["device"] = device()
    emit(result)


if __name__ == "__main__":
    main()
