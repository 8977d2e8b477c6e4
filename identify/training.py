"""Train the defect U-Net on simulated reconstructions (the script that made the shipped weights).

    python -m braggscope.identify.training --examples 1200 --out out/identify_train

makes the examples (:func:`braggscope.identify.data.simulate_example`, seeds 0 … N-1; the
benchmark's held-out set starts at seed 1 000 000), trains with Dice + cross-entropy on random
crops with flips and 90° rotations, and writes the weights and their validation scores.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

__all__ = ["make_dataset", "load_dataset", "train", "main", "TEST_SEED"]

TEST_SEED = 1_000_000  # held-out examples are drawn from seeds ≥ this; training never sees them


def _one(seed):
    import torch

    from .data import simulate_example

    torch.set_num_threads(1)
    e = simulate_example(seed)
    return seed, e.inputs[:4].astype(np.float16), e.labels, e.error


def make_dataset(seeds, path, *, workers=2, shard=100) -> list:
    """Simulate the examples of `seeds` into npz shards under `path` (the four base channels as
    float16, labels uint8, errors); returns the shard files. Shards already there are kept."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    seeds = list(seeds)
    files = []
    for start in range(0, len(seeds), shard):
        part = seeds[start:start + shard]
        name = path / f"shard_{part[0]:07d}_{part[-1]:07d}.npz"
        files.append(name)
        if name.exists():
            continue
        with ProcessPoolExecutor(workers) as pool:
            rows = sorted(pool.map(_one, part))
        tmp = name.with_suffix(".tmp.npz")
        np.savez(tmp, seeds=np.array([r[0] for r in rows]), inputs=np.stack([r[1] for r in rows]),
                 labels=np.stack([r[2] for r in rows]), errors=np.array([r[3] for r in rows]))
        os.replace(tmp, name)
        print(f"{name.name}: {len(rows)} examples", flush=True)
    return files


def _with_physics(base):
    from .data import physics_channels

    return np.concatenate([base, physics_channels(base.astype(np.float32)).astype(np.float16)])


def load_dataset(files, *, workers=2):
    """(inputs float16 (N, 6, ...), labels uint8 (N, ...)) from the shards: the stored base
    channels and the physics channels computed from them (as at inference)."""
    parts = [np.load(f) for f in files]
    base = np.concatenate([p["inputs"] for p in parts])
    with ProcessPoolExecutor(workers) as pool:
        inputs = np.stack(list(pool.map(_with_physics, base, chunksize=16)))
    return inputs, np.concatenate([p["labels"] for p in parts])


def augment(x, y, rng):
    """Physics-preserving augmentation of a batch (B, C, ...) / (B, ...): flips and axis
    permutations (a mirrored or rotated crystal with its G turned alike; the strain along G is a
    scalar field and moves with it), a random global phase (the phase reference is arbitrary) and
    φ → -φ (the reflection -G: the phase changes sign, the strain along G does not)."""
    import torch

    dims = list(range(2, x.ndim))
    for d in dims:
        if rng.uniform() < 0.5:
            x, y = x.flip(d), y.flip(d - 1)
    order = list(rng.permutation(dims))
    x = x.permute(0, 1, *order)
    y = y.permute(0, *[d - 1 for d in order])
    turn = float(rng.uniform(0, 2 * np.pi))
    sign = float(rng.choice([-1.0, 1.0]))
    c, s = x[:, 1], x[:, 2]
    c, s = c * np.cos(turn) - s * np.sin(turn), sign * (c * np.sin(turn) + s * np.cos(turn))
    x = torch.cat([x[:, :1], c[:, None], s[:, None], x[:, 3:]], dim=1)
    return x.contiguous(), y.contiguous()


def segmentation_loss(logits, target, class_weights):
    """Cross-entropy (class-weighted) + soft Dice over the defect classes (background left out)."""
    import torch
    import torch.nn.functional as F

    ce = F.cross_entropy(logits, target, weight=class_weights)
    prob = torch.softmax(logits, dim=1)
    onehot = F.one_hot(target, logits.shape[1]).movedim(-1, 1).to(prob.dtype)
    dims = tuple(range(2, logits.ndim))
    inter = (prob * onehot).sum(dims)[:, 1:]
    total = (prob + onehot).sum(dims)[:, 1:]
    present = onehot.sum(dims)[:, 1:] > 0
    dice = 1 - (2 * inter + 1) / (total + 1)
    return ce + (dice[present].mean() if present.any() else dice.mean() * 0)


def _crop(inputs, labels, index, size, rng):
    shape = labels.shape[1:]
    start = [int(rng.integers(0, n - size + 1)) for n in shape]
    box = tuple(slice(s, s + size) for s in start)
    return inputs[(index, slice(None)) + box], labels[(index,) + box]


def train(inputs, labels, *, iterations=2500, batch=2, crop=48, lr=2e-3, seed=0, device="cpu",
          features=(12, 24, 48, 96), log_every=50):
    """Train a :class:`~braggscope.identify.unet.UNet` on (N, 4, ...) inputs and (N, ...) labels.

    AdamW with a one-cycle learning rate; each step takes `batch` random crops of `crop` voxels,
    augmented (:func:`augment`). Class weights of the cross-entropy are the inverse fourth roots
    of the class frequencies (the Dice term carries the rest of the imbalance; square roots were
    measured to over-predict defects). Returns the trained model (eval mode)."""
    import torch

    from braggscope._backend import one_cycle_training

    from .unet import UNet

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = UNet(in_channels=inputs.shape[1], classes=4, features=features).to(device)
    counts = np.bincount(labels.ravel(), minlength=4).astype(float) + 1
    weights = torch.tensor((counts.sum() / counts) ** 0.25, dtype=torch.float32, device=device)
    weights /= weights.mean()

    def batch_loss(step):
        idx = rng.integers(0, len(labels), batch)
        xs, ys = zip(*[_crop(inputs, labels, i, crop, rng) for i in idx])
        x = torch.from_numpy(np.stack(xs).astype(np.float32)).to(device)
        y = torch.from_numpy(np.stack(ys).astype(np.int64)).to(device)
        x, y = augment(x, y, rng)
        return segmentation_loss(model(x), y, weights)

    return one_cycle_training(model, batch_loss, steps=iterations, lr=lr, log_every=log_every)


def evaluate(model, inputs, labels, *, device="cpu") -> dict:
    """Validation scores of `model` on whole examples: per-class voxel IoU (over all voxels of
    all examples) and the dislocation line F1 (2-voxel tolerance on centre lines)."""
    from .data import CLASSES
    from .metrics import class_iou, f1, line_counts
    from .unet import predict_tiled

    predicted, counts = [], {"tp_predicted": 0, "predicted": 0, "tp_true": 0, "true": 0}
    for x, y in zip(inputs, labels):
        p = predict_tiled(model, x.astype(np.float32), tile=64, device=device).argmax(axis=0).astype(np.uint8)
        predicted.append(p)
        for key, value in line_counts(p == 1, y == 1).items():
            counts[key] += value
    iou = class_iou(np.stack(predicted), labels)
    return {"iou": {name: float(v) for name, v in zip(CLASSES, iou)},
            "line_f1": f1(counts), "examples": int(len(labels))}


def save_weights(model, path, meta) -> Path:
    """Write the state dict, the network's configuration and `meta` (seed, data, scores) to
    `path` (atomically)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "config": model.config, "meta": meta}, tmp)
    os.replace(tmp, path)
    return path


def main(argv=None):
    from .unet import default_weights_path

    parser = argparse.ArgumentParser(prog="python -m braggscope.identify.training", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=1200, help="simulated examples (seeds 0 … N-1)")
    parser.add_argument("--validation", type=float, default=0.1, help="fraction of them kept for validation")
    parser.add_argument("--out", default="out/identify_train", help="folder of the example shards")
    parser.add_argument("--weights", default=str(default_weights_path()), help="where to write the weights")
    parser.add_argument("--iterations", type=int, default=2500)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--crop", type=int, default=48)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=2, help="processes simulating examples")
    args = parser.parse_args(argv)
    files = make_dataset(range(args.examples), args.out, workers=args.workers)
    inputs, labels = load_dataset(files)
    n_val = max(1, int(round(args.validation * len(labels))))
    t0 = time.time()
    model = train(inputs[:-n_val], labels[:-n_val], iterations=args.iterations, batch=args.batch, crop=args.crop,
                  lr=args.lr, seed=args.seed, device=args.device)
    seconds = time.time() - t0
    scores = evaluate(model, inputs[-n_val:], labels[-n_val:], device=args.device)
    meta = {"script": "python -m braggscope.identify.training", "args": vars(args), "train_seconds": seconds,
            "train_examples": int(len(labels) - n_val), "validation": scores, "test_seed_start": TEST_SEED}
    path = save_weights(model, args.weights, meta)
    print(json.dumps({"weights": str(path), **scores, "train_seconds": round(seconds)}))


if __name__ == "__main__":
    main()
