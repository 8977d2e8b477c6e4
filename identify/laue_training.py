"""Train the Laue grain network (:mod:`.laue`) on simulated frames.

    python -m braggscope.identify.laue_training [--examples 5000] [--steps 4000] [--out PATH]

Grains from seeds 0…N-1 (:func:`braggscope.identify.laue.simulate_grain`) are simulated once and
their network inputs cached in out/laue_train/. The validation grains start at seed 500 000 (they
fit the class temperature and the σ scales) and the benchmark's test grains at 1 000 000, so
neither is ever trained on.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from braggscope._backend import simulated_set

from .laue import (DEFECT_CLASSES, LaueAnalyser, LaueNet, _scale_features, calibrate, grain_features,
                   laue_weights_path, patch_inputs, simulate_grain, spot_inputs, strain_coefficients, training_loss)

VALIDATION_SEED = 500_000
TEST_SEED = 1_000_000


_SOURCES = ("braggscope.identify.laue",)  # the code that makes a grain's inputs (with what it imports)


def _one(seed):
    g = simulate_grain(seed)
    raw, geometry, overview, planar = spot_inputs(g["counts"], g["structure"], g["orientation"])
    return (raw.astype(np.uint16), geometry, overview.astype(np.float16), planar, g["label"],
            strain_coefficients(g["strain"]).astype(np.float32), np.float32(g["log_density"]), g["structure"])


def make_examples(seeds, path=None, *, workers=2) -> dict:
    """Network inputs and truths of the grains of `seeds`: the raw patches and geometric features
    (cached in the npz file `path` when given, and simulated again where the seeds or the code
    differ: :func:`~braggscope._backend.simulated_set`), then the normalised patches and all features
    (:func:`~braggscope.identify.laue.patch_inputs`)."""
    keys = ("raw", "geometry", "overview", "planar", "label", "strain", "log_density", "structure")
    data = simulated_set(_one, seeds, keys, path, workers=workers, chunksize=4, sources=_SOURCES)
    inputs = [patch_inputs(r, g) for r, g in zip(data["raw"], data["geometry"])]
    data["patches"] = np.stack([p for p, _ in inputs]).astype(np.float16)
    data["features"] = np.stack([f for _, f in inputs])
    data["grain"] = np.stack([grain_features(f, t) for f, t in zip(data["features"], data["planar"])])
    return data


def tensors(data, index=None):
    """(patches, features, overview, grain features, label, strain coefficients, log density) as tensors."""
    sel = slice(None) if index is None else index
    return (torch.from_numpy(data["patches"][sel].astype(np.float32)),
            _scale_features(torch.from_numpy(data["features"][sel])),
            torch.from_numpy(data["overview"][sel].astype(np.float32)), torch.from_numpy(data["grain"][sel]),
            torch.from_numpy(data["label"][sel].astype(np.int64)), torch.from_numpy(data["strain"][sel]),
            torch.from_numpy(data["log_density"][sel]))


@torch.no_grad()
def raw_outputs(model, data, batch=64) -> torch.Tensor:
    model.eval()
    outs = [model(*tensors(data, slice(i, i + batch))[:4]) for i in range(0, len(data["label"]), batch)]
    return torch.cat(outs)


def train(data, validation, *, steps=4000, batch=32, lr=2e-3, seed=0, log_every=250):
    """Train a LaueNet; return the calibrated LaueAnalyser and the validation history."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    config = {"width": 8, "n_features": 26, "n_grain_features": 16}
    model = LaueNet(**config)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    history, start = [], time.perf_counter()
    for step in range(1, steps + 1):
        model.train()
        p, f, o, t, y, c, d = tensors(data, rng.integers(len(data["label"]), size=batch))
        loss = training_loss(model(p, f, o, t), c, d, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % log_every == 0 or step == steps:
            out = raw_outputs(model, validation)
            *_, y, c, d = tensors(validation)
            accuracy = float((out[:, 12:].argmax(1) == y).float().mean())
            rmse = float(((out[:, :5] - c) ** 2).mean().sqrt())
            history.append({"step": step, "seconds": time.perf_counter() - start, "loss": float(loss.detach()),
                            "val_accuracy": accuracy, "val_strain_rmse_coeff": rmse})
            print(history[-1], flush=True)
    analyser = LaueAnalyser(model.eval())
    out = raw_outputs(model, validation)
    *_, y, c, d = tensors(validation)
    calibrate(analyser, out, c, d, y.numpy())
    return analyser, config, history


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=5000)
    parser.add_argument("--validation", type=int, default=300)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path("out/laue_train"))
    parser.add_argument("--out", type=Path, default=laue_weights_path())
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    data = make_examples(range(args.examples), args.cache / f"raw_train_{args.examples}.npz", workers=args.workers)
    validation = make_examples(range(VALIDATION_SEED, VALIDATION_SEED + args.validation),
                               args.cache / f"raw_validation_{args.validation}.npz", workers=args.workers)
    simulated = time.perf_counter() - t0
    analyser, config, history = train(data, validation, steps=args.steps)
    analyser.meta = {"examples": args.examples, "steps": args.steps, "simulation_s": simulated,
                     "training_s": history[-1]["seconds"], "history": history, "classes": DEFECT_CLASSES,
                     "validation_seed": VALIDATION_SEED, "test_seed": TEST_SEED}
    analyser.save(args.out, config)
    print(f"saved {args.out}: temperature {analyser.temperature:.2f}, σ scale {analyser.sigma_scale:.2f}, "
          f"density σ scale {analyser.density_sigma_scale:.2f}")


if __name__ == "__main__":
    main()
