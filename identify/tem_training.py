"""Train the micrograph U-Net (:mod:`.tem`) on synthetic two-beam micrographs.

    python -m braggscope.identify.tem_training [--images 1400] [--steps 16000] [--seed 4] [--out PATH]
                                               [--batch 8 --crop 128] [--features 8 16 48 128 256]
                                               [--init WEIGHTS --seed 1]

The shipped weights are the defaults' run with ``--seed 4`` (70 min on two CPU cores of a machine that
ran at half the speed of the one that trained the weights before in 34 min). The loss is weighted
up at the contacts between objects (:func:`contact_weight`).

Micrographs from seeds 0…N-1 (:func:`braggscope.simulate.tem.random_micrograph`) are simulated
once without noise (cached in out/tem_train/ in blocks of 100 seeds, so that a larger set
simulates only its new blocks); every batch draws the camera afresh (dose 50–3000 electrons per
pixel, blur, illumination gradient), crops 128² pixels (``--crop``), rotates and flips. The
validation micrographs start at seed 500 000 and the benchmark's test micrographs at 1 000 000,
so neither is ever trained on. The object F1 on the validation set is recorded against the
training time, from which the benchmark reads the time to 95 % of the final F1.
``--init`` continues from earlier weights (a further stage): their record is kept and the new
stage's steps and seconds count on from theirs.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from braggscope._backend import simulated_set
from braggscope.simulate.tem import TEM_CLASSES, Microscope, camera, random_micrograph

from .tem import (CLASS_WEIGHTS, FEATURES, NETWORK_PIXEL_NM, TEMSegmenter, default_tem_weights_path, distance_target,
                  prepare_micrograph, score_micrographs)

BLOCK = 100  # micrographs per cache file
VALIDATION_SEED = 500_000
TEST_SEED = 1_000_000
CROP = 128
CONTACT_W0 = 10.0  # the loss's extra weight at the contacts between objects (contact_weight)
CONTACT_SIGMA_PX = 4.0  # [pixels] its reach


_SOURCES = ("braggscope.simulate.tem", distance_target)  # what _one calls (a module with what it imports)


def _one(seed):
    m = random_micrograph(seed)
    return m.intensity, m.class_map(), distance_target(m.labels).astype(np.float16), m.labels.astype(np.uint8)


def make_micrographs(seeds, path=None, *, workers=2) -> dict:
    """Noiseless micrographs of `seeds`: 'intensity' (N, 256, 256) float32, 'classes' uint8
    (255 on invisible objects), 'distance' float16 (the per-object normalised distance to the
    edge), 'labels' uint8 (the objects' outlines, object i has value i); cached in the npz file
    `path` when given (and simulated again where the seeds or the code differ:
    :func:`~braggscope._backend.simulated_set`)."""
    return simulated_set(_one, seeds, ("intensity", "classes", "distance", "labels"), path, workers=workers,
                         sources=_SOURCES)


def training_micrographs(count, cache_dir, *, workers=2) -> dict:
    """:func:`make_micrographs` of seeds 0…count-1, cached in blocks of BLOCK seeds
    (``seeds_<first>-<last>_<pixel>nm.npz`` in `cache_dir`), with 'weight' (N, 256, 256)
    float16, the :func:`contact_weight` of each."""
    blocks = []
    for first in range(0, int(count), BLOCK):
        last = min(first + BLOCK, int(count)) - 1
        path = Path(cache_dir) / f"seeds_{first}-{last}_{NETWORK_PIXEL_NM:g}nm.npz"
        blocks.append(make_micrographs(range(first, last + 1), path, workers=workers))
    data = {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}
    data["weight"] = np.stack([contact_weight(labels) for labels in data["labels"]]).astype(np.float16)
    return data


def contact_weight(labels, *, w0=CONTACT_W0, sigma_px=CONTACT_SIGMA_PX) -> np.ndarray:
    """(ny, nx) float32 pixel weights of the training loss, 1 + w0 exp(-(d1 + d2)² / 2σ²) with
    d1, d2 [pixels] the distances to the nearest and the second-nearest object of `labels`
    (0 inside one): high in the narrow gaps and at the contacts between objects, where the
    network must learn to part them (the weight map of Ronneberger et al., MICCAI 2015); 1
    where fewer than two objects are near."""
    from scipy.ndimage import distance_transform_edt

    ids = np.unique(labels)
    ids = ids[ids > 0]
    if ids.size < 2:
        return np.ones(np.shape(labels), np.float32)
    d = np.stack([distance_transform_edt(labels != i) for i in ids])
    d.partition(1, axis=0)
    return (1 + w0 * np.exp(-((d[0] + d[1]) ** 2) / (2 * sigma_px**2))).astype(np.float32)


def random_camera(rng, dose=None) -> Microscope:
    """Camera settings of a training batch: dose log-uniform 50–3000 e/px unless given."""
    dose = float(np.exp(rng.uniform(np.log(50), np.log(3000)))) if dose is None else dose
    return Microscope(dose=dose, psf_px=float(rng.uniform(0.4, 1.0)),
                      illumination_tilt=tuple(rng.uniform(-0.3, 0.3, 2)))


def training_batch(data, rng, batch=8, crop=CROP):
    """Inputs (B, 1, crop, crop), targets (classes, distance) and pixel weights of a random
    batch (`data` as :func:`training_micrographs` with 'weight', the :func:`contact_weight`
    of each micrograph)."""
    n, ny, nx = data["intensity"].shape
    xs, cs, ds, ws = [], [], [], []
    for i in rng.integers(n, size=batch):
        y0, x0 = rng.integers(ny - crop + 1), rng.integers(nx - crop + 1)
        box = (i, slice(y0, y0 + crop), slice(x0, x0 + crop))
        k, flip = int(rng.integers(4)), bool(rng.integers(2))
        arrays = [data["intensity"][box], data["classes"][box], data["distance"][box].astype(np.float32),
                  data["weight"][box]]
        arrays = [np.rot90(a, k) for a in arrays]
        if flip:
            arrays = [a[:, ::-1] for a in arrays]
        counts = camera(np.ascontiguousarray(arrays[0]), random_camera(rng), rng)
        xs.append(prepare_micrograph(counts))
        cs.append(np.ascontiguousarray(arrays[1]))
        ds.append(np.ascontiguousarray(arrays[2]))
        ws.append(np.ascontiguousarray(arrays[3]))
    return (torch.from_numpy(np.stack(xs))[:, None], torch.from_numpy(np.stack(cs).astype(np.int64)),
            torch.from_numpy(np.stack(ds)), torch.from_numpy(np.stack(ws).astype(np.float32)))


def segmentation_loss(out, classes, distance, weight=None):
    """Cross-entropy of the class logits (weighted by CLASS_WEIGHTS: background 0.2; invisible
    loops ignored) plus 5 × the squared error of the sigmoid distance channel, both averaged
    with the pixel weights `weight` (B, ny, nx) where given."""
    k = len(TEM_CLASSES)
    class_weight = torch.tensor(CLASS_WEIGHTS, dtype=torch.float32)
    known = classes != 255
    pixel = torch.ones_like(distance) if weight is None else weight
    ce = torch.nn.functional.cross_entropy(out[:, :k], classes, weight=class_weight, ignore_index=255,
                                           reduction="none")
    ce = (ce * pixel).sum() / (class_weight[classes.clamp(max=k - 1)] * pixel)[known].sum()
    mse = (pixel * (torch.sigmoid(out[:, k]) - distance) ** 2)[known].sum() / pixel[known].sum()
    return ce + 5 * mse


def validation_set(seeds, dose=300.0):
    """The validation micrographs (with their ground truth) under a fixed camera."""
    rng = np.random.default_rng(0)
    out = []
    for seed in seeds:
        m = random_micrograph(seed)
        m.image = camera(m.intensity, random_camera(rng, dose), rng)
        out.append(m)
    return out


def train(data, validation, *, steps=1500, lr=3e-3, batch=8, crop=CROP, seed=0, features=FEATURES, every=150,
          init=None):
    """Train a fresh :class:`~.tem.TEMSegmenter`, or continue `init` (a loaded one); returns it
    with its history (step, seconds, loss, validation F1 per class and their mean; after an
    `init`, its history first, and steps and seconds counted on from its end)."""
    from braggscope._backend import one_cycle_training

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    seg = TEMSegmenter.new(features=features) if init is None else init
    earlier = dict(init.meta) if init is not None else {}
    history, losses = list(earlier.pop("history", [])), []
    step0, t0 = (history[-1]["step"], time.time() - history[-1]["seconds"]) if history else (0, time.time())

    def batch_loss(step):
        x, c, d, w = training_batch(data, rng, batch, crop)
        loss = segmentation_loss(seg.net(x), c, d, w)
        losses.append(loss.item())
        if (step + 1) % every == 0 or step + 1 == steps:
            seg.net.eval()
            scores = score_micrographs(seg, validation)
            seg.net.train()
            history.append({"step": step0 + step + 1, "seconds": time.time() - t0,
                            "loss": float(np.mean(losses[-every:])),
                            **{f"{c}_f1": scores[f"{c}_f1"] for c in TEM_CLASSES[1:]}, "mean_f1": scores["mean_f1"]})
            print(history[-1], flush=True)
        return loss

    one_cycle_training(seg.net, batch_loss, steps=steps, lr=lr, log_every=every, label="tem ")
    seg.meta = {"seed": seed, "steps": steps, "batch": batch, "crop": crop, "lr": lr, "images": len(data["intensity"]),
                "contact_w0": CONTACT_W0, "contact_sigma_px": CONTACT_SIGMA_PX,
                "validation_seeds": [VALIDATION_SEED, VALIDATION_SEED + len(validation)], "history": history,
                "train_seconds": history[-1]["seconds"] if history else 0.0, "init": earlier or None}
    return seg


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1400)
    parser.add_argument("--validation", type=int, default=24)
    parser.add_argument("--steps", type=int, default=16000)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch", type=int, default=8, help="micrographs per batch")
    parser.add_argument("--crop", type=int, default=CROP, help="side of the training crops [pixels]")
    parser.add_argument("--features", type=int, nargs="+", default=list(FEATURES),
                        help="the U-Net's channels per level (a fresh network only)")
    parser.add_argument("--cache", type=Path, default=Path("out/tem_train"))
    parser.add_argument("--out", type=Path, default=default_tem_weights_path())
    parser.add_argument("--init", type=Path, help="continue from these weights (give another --seed)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the batches and the initialisation")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    data = training_micrographs(args.images, args.cache)
    validation = validation_set(range(VALIDATION_SEED, VALIDATION_SEED + args.validation))
    init = TEMSegmenter.load(args.init) if args.init else None
    seg = train(data, validation, steps=args.steps, lr=args.lr, batch=args.batch, crop=args.crop, seed=args.seed,
                features=tuple(args.features), every=max(150, args.steps // 20), init=init)
    seg.save(args.out)
    print(f"saved {args.out}: validation mean F1 {seg.meta['history'][-1]['mean_f1']:.3f}")


if __name__ == "__main__":
    main()
