"""Benchmark of defect identification (issue: defect identification): the U-Net against the physics
baseline on held-out simulated reconstructions.

Held-out set: seeds from braggscope.identify.training.TEST_SEED on (the training used seeds
0 … N-1), made by braggscope.identify.data.simulate_example exactly as the training examples
(random Pt/Au/Ni/Cu crystal, 0–3 random defects among dislocations, Shockley-split dislocations,
loops, stacking faults, twins and dilatation centres, random reflection, Poisson counts,
reconstruction by the torch engine, alignment, strain field) on 64³, at 10⁷, 10⁸ and 10⁹ photons
(the same crystals at each level), plus a split part (only split dislocations) and a perfect part
(no line or planar defect, half of them smoothly strained), both at 10⁸.

Figures (one JSON line):
- *_line_f1_*: F1 of dislocation centre-line voxels within 2 voxels of the true line (counts
  summed over the set), for the U-Net and the baseline (phase vortices in the closed support);
- *_fault_f1_1e8, unet_twin_f1_1e8: detection F1 of stacking faults and twin boundaries (a
  found piece matches a true one when half of the smaller lies within 2 voxels of the other);
- *_split_line_f1_1e8: line F1 on the split part;
- false_defects_per_perfect (U-Net) and baseline_false_defects_per_perfect;
- unet_iou_*: per-class voxel IoU at 10⁸;
- unet_s_64, unet_s_128: time of braggscope.identify.find_defects (U-Net, whole pipeline from a
  strain field to the defect list) on 64³ and 128³ with the threads this machine has;
  fft_pair_s_128 for scale;
- cdiutils_line_f1_1e8: null, with the reason (cdiutils 0.2.1, the newest on PyPI, has no
  dislocation finder);
- sizes, reconstruction errors (median), device.
Run: python benchmarks/identify.py [--quick]  (fewer crystals)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_time, device, emit  # noqa: E402

from braggscope.identify import find_defects, load_unet  # noqa: E402
from braggscope.identify.data import simulate_example  # noqa: E402
from braggscope.identify.metrics import class_iou, detection_counts, f1, line_counts, pieces  # noqa: E402
from braggscope.identify.training import TEST_SEED  # noqa: E402

_PLANES = {"stacking_fault": 2, "twin_boundary": 3}


def _add(total, counts):
    for k, v in counts.items():
        total[k] = total.get(k, 0) + v


def score(example, report, totals):
    """Add one report's line counts and plane detections to `totals`."""
    truth = example.labels
    _add(totals.setdefault("line", {}), line_counts(report.labels == 1, truth == 1))
    for kind, cls in _PLANES.items():
        found = [_mask(d, truth.shape) for d in report.defects if d["type"] == kind]
        _add(totals.setdefault(kind, {}), detection_counts(found, pieces(truth == cls)))


def _mask(defect, shape):
    m = np.zeros(shape, bool)
    m[tuple(np.asarray(defect["voxels"]).T)] = True
    return m


def run_set(seeds, photons, model, kinds=None):
    """Scores of the U-Net and the baseline on the examples of `seeds` at `photons`."""
    out = {"unet": {}, "baseline": {}, "errors": [], "false": {"unet": 0, "baseline": 0}, "labels": [], "pred": []}
    for seed in seeds:
        kw = {} if kinds is None else {"kinds": kinds}
        ex = simulate_example(seed, photons=photons, **kw)
        out["errors"].append(ex.error)
        for method in ("unet", "baseline"):
            report = find_defects(ex.field, method=method, model=model)
            score(ex, report, out[method])
            out["false"][method] += len(report.defects)
            if method == "unet":
                out["labels"].append(ex.labels)
                out["pred"].append(report.labels)
    return out


def _f1(result, method, key):
    counts = result[method].get(key)
    return None if counts is None else f1(counts)


def timing(model, n):
    """Seconds of find_defects (U-Net) on an n³ example."""
    ex = simulate_example(TEST_SEED + 999, shape=(n,) * 3, photons=1e8)
    t, _ = best_time(lambda: find_defects(ex.field, method="unet", model=model), 2)
    return t


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 6 if args.quick else 40
    model = load_unet()
    seeds = range(TEST_SEED, TEST_SEED + n)
    result = {"crystals_per_level": n, "shape": [64, 64, 64]}
    levels = {}
    for photons in (1e7, 1e8, 1e9):
        levels[photons] = run_set(seeds, photons, model)
        tag = f"1e{int(np.log10(photons))}"
        result[f"unet_line_f1_{tag}"] = _f1(levels[photons], "unet", "line")
        result[f"baseline_line_f1_{tag}"] = _f1(levels[photons], "baseline", "line")
        result[f"median_reconstruction_error_{tag}"] = float(np.median(levels[photons]["errors"]))
    mid = levels[1e8]
    for method in ("unet", "baseline"):
        result[f"{method}_fault_f1_1e8"] = _f1(mid, method, "stacking_fault")
        result[f"{method}_twin_f1_1e8"] = _f1(mid, method, "twin_boundary")
    iou = class_iou(np.stack(mid["pred"]), np.stack(mid["labels"]))
    result.update({f"unet_iou_{c}_1e8": float(v) for c, v in zip(("background", "dislocation", "fault", "twin"), iou)})
    split = run_set(range(TEST_SEED + 10_000, TEST_SEED + 10_000 + max(n // 2, 4)), 1e8, model,
                    kinds=("split_dislocation",))
    result["unet_split_line_f1_1e8"] = _f1(split, "unet", "line")
    result["baseline_split_line_f1_1e8"] = _f1(split, "baseline", "line")
    n_perfect = max(n // 2, 4)
    perfect = run_set(range(TEST_SEED + 20_000, TEST_SEED + 20_000 + n_perfect), 1e8, model, kinds=())
    result["false_defects_per_perfect"] = perfect["false"]["unet"] / n_perfect
    result["baseline_false_defects_per_perfect"] = perfect["false"]["baseline"] / n_perfect
    result["perfect_crystals"] = n_perfect
    result["cdiutils_line_f1_1e8"] = None
    result["cdiutils_note"] = "cdiutils 0.2.1, the newest on PyPI, has no dislocation finder"
    result["unet_s_64"] = timing(model, 64)
    result["unet_s_128"] = timing(model, 128)
    x = (np.random.default_rng(0).normal(size=(128,) * 3) + 0j).astype(np.complex64)
    result["fft_pair_s_128"] = best_time(lambda: np.fft.ifftn(np.fft.fftn(x)), 3)[0]
    import torch

    result["threads"] = torch.get_num_threads()
    result["device"] = device()
    emit(result)


if __name__ == "__main__":
    main()
