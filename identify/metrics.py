"""Scores of defect identification against the simulator's truth.

Lines are scored voxel-wise along their centre lines with a tolerance (a predicted line voxel is
right if a true line passes within `tolerance` voxels, a true one found if a prediction passes
that close); planes and lines as objects by detection (matched pieces); masks by per-class IoU.
Counts are returned so that a benchmark can add them over a whole test set (micro averages).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .vortices import centre_line

__all__ = ["line_counts", "detection_counts", "f1", "class_iou", "pieces"]


def line_counts(predicted, truth, *, tolerance=2.0) -> dict:
    """Centre-line voxels within `tolerance` [voxels]: 'tp_predicted' of 'predicted', 'tp_true'
    of 'true' (both :func:`~braggscope.identify.vortices.centre_line` of the given masks)."""
    p, t = centre_line(predicted), centre_line(truth)
    near_t = ndimage.distance_transform_edt(~t) <= tolerance if t.any() else np.zeros_like(t)
    near_p = ndimage.distance_transform_edt(~p) <= tolerance if p.any() else np.zeros_like(p)
    return {"tp_predicted": int((p & near_t).sum()), "predicted": int(p.sum()),
            "tp_true": int((t & near_p).sum()), "true": int(t.sum())}


def pieces(mask, *, min_voxels=10) -> list:
    """The 26-connected pieces of `mask` with at least `min_voxels` voxels (bool arrays)."""
    labels, count = ndimage.label(np.asarray(mask, bool), np.ones((3,) * np.ndim(mask)))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    return [labels == k for k in range(1, count + 1) if sizes[k] >= min_voxels]


def detection_counts(predicted, truth, *, tolerance=2.0, cover=0.5) -> dict:
    """Object detection between two lists of masks: a predicted piece matches a true one when
    at least `cover` of the smaller of the two lies within `tolerance` voxels of the other.
    Returns 'tp' (true pieces matched), 'fp' (predicted pieces matching none), 'fn'."""
    near = lambda m: ndimage.distance_transform_edt(~m) <= tolerance
    near_true = [near(t) for t in truth]
    near_pred = [near(p) for p in predicted]

    def match(p, np_, t, nt):
        smaller = min(p.sum(), t.sum())
        return max((p & nt).sum(), (t & np_).sum()) >= cover * smaller

    hits = np.array([[match(p, np_, t, nt) for t, nt in zip(truth, near_true)]
                     for p, np_ in zip(predicted, near_pred)], bool).reshape(len(predicted), len(truth))
    return {"tp": int(hits.any(axis=0).sum()), "fp": int((~hits.any(axis=1)).sum()),
            "fn": int((~hits.any(axis=0)).sum())}


def f1(counts) -> float:
    """F1 from line counts (precision tp_predicted/predicted, recall tp_true/true) or from
    detection counts (2 tp / (2 tp + fp + fn)); NaN when there is nothing to score."""
    if "tp" in counts:
        denom = 2 * counts["tp"] + counts["fp"] + counts["fn"]
        return float(2 * counts["tp"] / denom) if denom else float("nan")
    if counts["predicted"] == 0 and counts["true"] == 0:
        return float("nan")
    precision = counts["tp_predicted"] / max(counts["predicted"], 1)
    recall = counts["tp_true"] / max(counts["true"], 1)
    return float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0


def class_iou(predicted, truth, classes=4) -> np.ndarray:
    """Voxel IoU of each class between two label volumes (NaN for a class in neither)."""
    p, t = np.asarray(predicted).ravel(), np.asarray(truth).ravel()
    out = np.full(classes, np.nan)
    for k in range(classes):
        union = np.sum((p == k) | (t == k))
        if union:
            out[k] = np.sum((p == k) & (t == k)) / union
    return out
