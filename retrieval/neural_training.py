"""Training the neural first guess (:mod:`.neural`) on simulated patterns.

A training example is a random crystal (Pt, Au, Ni or Cu; faceted, octahedral or spherical; any
orientation), perfect, smoothly strained or with 1–3 defects (dislocations, split dislocations,
loops, stacking faults, twins, dilatation centres), measured at a random low-index reflection
with 10⁶–10⁹ photons and Poisson noise, with Maxipix module gaps on half of the patterns, and
re-centred on its peak's centre of mass as :func:`~.prepare.crop_around_peak` does with data.

The loss (:func:`training_loss`) has two parts:

- physics: the Poisson log-likelihood of the counts given |FFT(prediction)|² on the measured
  pixels (:func:`poisson_loss`); it needs no truth, so the network can be fine-tuned on a
  measurement, and it is blind to the trivial ambiguities by construction;
- supervised: the normalised complex error against the simulator's object, after the best
  twin (ρ*(-r)), integer shift and global complex factor (:func:`supervised_loss`), and the
  support's cross-entropy, aligned the same way.

Run ``python -m braggscope.retrieval.neural_training --help``: it simulates the data (seeded; the
held-out test seeds start at TEST_SEED), trains, prints the held-out scores and writes the
weights that ship in ``retrieval/weights/``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from braggscope.metrics import band_limited, reconstruction_error
from braggscope.simulate import (REFLECTIONS, Detector, continuum_intensity, measure, random_crystal, random_defects,
                                 simulate_sample)

from .neural import NET_SIZE, PhaseNet, network_input, object_from_output
from .prepare import crop_around_peak

__all__ = ["TEST_SEED", "simulate_pattern", "make_dataset", "poisson_loss", "supervised_loss", "training_loss",
           "augment", "PatternStream", "train", "fine_tune", "evaluate", "save_weights", "main"]

TEST_SEED = 1_000_000  # held-out patterns use seeds from here on; training seeds stay below
_KINDS = ("dislocation", "split_dislocation", "loop", "stacking_fault", "twin", "dilatation")


def _defects(crystal, rng):
    """25 % perfect (half of them smoothly strained), else 1–3 random defects, on a smooth strain
    field one time in three."""
    pick = rng.uniform()
    smooth = [crystal.smooth_strain(amplitude=rng.uniform(0.005, 0.03), wavelength=rng.uniform(60, 200),
                                    rng=int(rng.integers(1 << 30)))]
    if pick < 0.125:
        return []
    if pick < 0.25:
        return smooth
    return random_defects(crystal, rng, kinds=_KINDS, count=(1, 3)) + (smooth if rng.uniform() < 1 / 3 else [])


def recentring_ramp(shift, shape) -> np.ndarray:
    """The phase factor exp(-2πi s·r/N) that re-centring a pattern by `shift` pixels (the pixel
    at index n//2 + s moved to n//2) puts on the object (of `shape`, centred on n//2; N the
    pattern's size per axis is 2 × `shape`, the network's window)."""
    axes = [np.exp(-2j * np.pi * s * (np.arange(n) - n // 2) / (2 * n)) for s, n in zip(shift, shape)]
    ramp = axes[0]
    for a in axes[1:]:
        ramp = np.multiply.outer(ramp, a)
    return ramp.astype(np.complex64)


def simulate_pattern(seed, *, ndim=3, photons=None, gaps=None) -> dict:
    """One training or test pattern from `seed`.

    Returns a dict of numpy arrays: 'counts' (NET_SIZE per axis, float32), 'mask' (bool),
    'truth' (the object on NET_SIZE/2 voxels per axis, complex64, max amplitude 1, with the
    phase ramp the re-centring puts on it), 'support' (bool), and 'photons', 'defects' (kinds).
    """
    rng = np.random.default_rng(seed)
    n = NET_SIZE // 2
    while True:  # drawn again where twin domains dark at G cover the whole (2-D) object
        crystal = random_crystal(rng, size=(40.0, 200.0))
        defects = _defects(crystal, rng)
        hkl = REFLECTIONS[rng.integers(len(REFLECTIONS))]
        reach = 2 * float(crystal.shape.radial_extent(np.eye(3)).max())
        voxel = reach / (rng.uniform(0.45, 0.85) * n)
        sample = simulate_sample(crystal, defects, shape=(n,) * ndim, voxel_size=voxel, hkl=hkl)
        if np.abs(sample.obj).max() > 0:
            break
    photons = float(10 ** rng.uniform(6, 9)) if photons is None else float(photons)
    gaps = (rng.uniform() < 0.5) if gaps is None else gaps
    offset = tuple(int(o) for o in rng.integers(NET_SIZE // 2 + 4, NET_SIZE - 4, size=2))
    detector = Detector(photons=photons, gaps="maxipix" if gaps else "none", gap_offset=offset)
    m = measure(continuum_intensity(sample.obj, shape=(NET_SIZE,) * ndim), detector, rng=rng)
    counts, mask, start = crop_around_peak(m.intensity, (NET_SIZE,) * ndim, mask=m.mask)
    truth = sample.obj * recentring_ramp(start, sample.obj.shape)
    truth /= max(float(np.abs(truth).max()), 1e-12)
    return {"counts": counts, "mask": mask, "truth": truth.astype(np.complex64), "support": sample.support,
            "photons": photons, "defects": [d["type"] for d in sample.defects]}


def make_dataset(seeds, *, ndim=3, progress=True) -> dict:
    """Stacked patterns of `seeds` (:func:`simulate_pattern`): counts, mask, truth, support,
    photons, and 'defective' (True when a defect other than smooth strain is present)."""
    from tqdm import tqdm

    rows = [simulate_pattern(int(s), ndim=ndim) for s in tqdm(seeds, disable=not progress, desc="simulating")]
    out = {k: np.stack([r[k] for r in rows]) for k in ("counts", "mask", "truth", "support")}
    out["photons"] = np.array([r["photons"] for r in rows])
    out["defective"] = np.array([any(k != "smooth_strain" for k in r["defects"]) for r in rows])
    return out


def _centred_fft(obj, size):
    """|FFT|² of the object (B, n...) zero-padded (centred) to `size` per axis, centred."""
    dims = tuple(range(1, obj.ndim))
    pad = []
    for n in reversed(obj.shape[1:]):
        pad += [(size - n) // 2, size - n - (size - n) // 2]
    padded = torch.nn.functional.pad(obj, pad)
    f = torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(padded, dim=dims), dim=dims), dim=dims)
    return f.real ** 2 + f.imag ** 2


def poisson_loss(obj, counts, mask):
    """Poisson deviance per photon of the counts given the model λ = k |FFT(obj)|² on the measured
    pixels, with the scale k that fits the total: Σ (λ - I + I log(I / λ)) / Σ I (0 for a perfect
    model without noise; about half the measured pixels over the photons at the noise floor).

    obj : (B, n...) complex tensor (n = NET_SIZE/2); counts, mask : (B, NET_SIZE...) tensors."""
    dims = tuple(range(1, obj.ndim))
    measured = (~mask).float()
    calc = _centred_fft(obj, counts.shape[-1])
    k = (counts * measured).sum(dims, keepdim=True) / (calc * measured).sum(dims, keepdim=True).clamp_min(1e-20)
    model = (k * calc).clamp_min(1e-9)
    deviance = model - counts + torch.xlogy(counts, counts) - counts * torch.log(model)
    return ((deviance * measured).sum(dims) / (counts * measured).sum(dims).clamp_min(1.0)).mean()


def _twin(a):
    """a(-r) on a grid centred on n // 2 (flip, then roll by one)."""
    dims = tuple(range(1, a.ndim))
    return torch.roll(torch.flip(a, dims), (1,) * len(dims), dims)


def _best_shift(moving, reference):
    """Integer roll (per example) that best overlaps the amplitudes: the peak of their cyclic
    cross-correlation (no gradient flows through the choice)."""
    dims = tuple(range(1, moving.ndim))
    with torch.no_grad():
        xcorr = torch.fft.ifftn(torch.fft.fftn(reference, dim=dims) * torch.conj(torch.fft.fftn(moving, dim=dims)),
                                dim=dims).real
        flat = xcorr.flatten(1).argmax(1)
        return torch.stack(torch.unravel_index(flat, moving.shape[1:]), 1).tolist()


def _roll_each(a, shifts):
    dims = tuple(range(1, a.ndim))
    return torch.stack([torch.roll(x, tuple(s), tuple(d - 1 for d in dims)) for x, s in zip(a, shifts)])


def _aligned_error(obj, truth):
    """Normalised complex error² per example after the integer shift and global complex factor
    that best match `truth`, and the shifts used."""
    dims = tuple(range(1, obj.ndim))
    shifts = _best_shift(obj.abs(), truth.abs())
    moved = _roll_each(obj, shifts)
    power = (moved.abs() ** 2).sum(dims, keepdim=True).clamp_min(1e-12)
    alpha = (torch.conj(moved) * truth).sum(dims, keepdim=True) / power
    err = ((alpha * moved - truth).abs() ** 2).sum(dims) / (truth.abs() ** 2).sum(dims).clamp_min(1e-12)
    return err, shifts


def supervised_loss(obj, support_logit, truth, support):
    """Complex error² against the truth and the support's binary cross-entropy, each after the
    better of the object and its twin ρ*(-r) and the best integer shift (per example); returns
    (error², cross-entropy), batch means."""
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    direct, s_direct = _aligned_error(obj, truth)
    twin, s_twin = _aligned_error(torch.conj(_twin(obj)), truth)
    use_twin = twin < direct
    err = torch.where(use_twin, twin, direct)
    one = lambda i: support_logit[i:i + 1]
    logits = torch.cat([_roll_each(_twin(one(i)), [s_twin[i]]) if t else _roll_each(one(i), [s_direct[i]])
                        for i, t in enumerate(use_twin.tolist())])
    return err.mean(), bce(logits, support.float())


def training_loss(raw, counts, mask, truth=None, support=None, *, physics_weight=1.0, support_weight=0.2):
    """Total loss of the network's raw output and its parts (dict of floats): physics_weight ×
    Poisson + complex error² + support_weight × cross-entropy (without `truth`, the Poisson
    term alone: fine-tuning on a measurement)."""
    obj, logit = object_from_output(raw)
    physics = poisson_loss(obj, counts, mask)
    if truth is None:
        return physics, {"poisson": physics.item()}
    error2, bce = supervised_loss(obj, logit, truth, support)
    total = physics_weight * physics + error2 + support_weight * bce
    return total, {"poisson": physics.item(), "error2": error2.item(), "support_bce": bce.item()}


def augment(counts, mask, truth, support, rng):
    """The pattern's exact symmetries applied to data and truth together: a permutation of the
    axes and a flip of any axis (I(-q_i) ↔ ρ(-r_i)), on single examples (numpy)."""
    ndim = counts.ndim
    order = rng.permutation(ndim)
    out = [np.transpose(a, order) for a in (counts, mask, truth, support)]
    for axis in np.flatnonzero(rng.uniform(size=ndim) < 0.5):
        out = [np.roll(np.flip(a, axis), 1, axis) for a in out]
    return [np.ascontiguousarray(a) for a in out]


class PatternStream(torch.utils.data.Dataset):
    """Pattern i is :func:`simulate_pattern` of seed `first` + i, augmented (:func:`augment`) by a
    generator of the same seed: a training set fixed by its seeds, simulated as it is read (each
    pattern seen once, so the network never sees the same one twice)."""

    def __init__(self, first, count, *, ndim=3, augmented=True):
        self.first, self.count, self.ndim, self.augmented = int(first), int(count), int(ndim), augmented

    def __len__(self):
        return self.count

    def __getitem__(self, i):
        seed = self.first + int(i)
        p = simulate_pattern(seed, ndim=self.ndim)
        arrays = (p["counts"], p["mask"], p["truth"], p["support"])
        counts, mask, truth, support = augment(*arrays, np.random.default_rng(seed)) if self.augmented else arrays
        return network_input(counts, mask), counts, mask, truth, support


def train(net, *, steps=6000, batch=8, lr=2e-3, seed=0, ndim=3, device="cpu", workers=1, log_every=100, log=None):
    """AdamW with a one-cycle learning-rate schedule over `steps` batches of fresh patterns
    (seeds `seed` · 10⁷ + 0 … steps × batch, all below TEST_SEED for seed 0)."""
    torch.manual_seed(seed)
    first = seed * 10_000_000
    if first < TEST_SEED + 100_000 and first + steps * batch > TEST_SEED:
        raise ValueError("the training seeds would reach the held-out ones (TEST_SEED …)")
    log = log or (lambda message: print(message, flush=True))
    loader = torch.utils.data.DataLoader(PatternStream(first, steps * batch, ndim=ndim), batch_size=batch,
                                         num_workers=workers)
    net = net.to(device).train()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    running, t0 = {}, time.perf_counter()
    for step, batch_tensors in enumerate(loader, 1):
        x, counts, mask, truth, support = (t.to(device) for t in batch_tensors)
        loss, parts = training_loss(net(x), counts, mask, truth, support)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        sched.step()
        running = {k: running.get(k, 0.0) + v / log_every for k, v in parts.items()}
        if step % log_every == 0:
            log(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in running.items()) +
                f" ({(time.perf_counter() - t0) / step:.2f} s/step)")
            running = {}
    return net.eval()


def fine_tune(net, intensity, mask=None, *, steps=50, lr=1e-4, device="cpu") -> list:
    """Adapt the network to one measurement by its Poisson loss alone (no truth needed): `steps`
    Adam steps on the pattern's network window (:func:`.neural.network_frame`). BatchNorm keeps
    its running statistics. Returns the loss at every step."""
    from .neural import network_frame

    frame = network_frame(intensity, mask)
    x = torch.from_numpy(network_input(frame.intensity, frame.mask))[None].to(device)
    counts, measured_mask = (torch.from_numpy(a)[None].to(device) for a in (frame.intensity, frame.mask))
    net = net.to(device).eval()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    losses = []
    for _ in range(int(steps)):
        loss, _ = training_loss(net(x), counts, measured_mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def evaluate(net, data, *, device="cpu") -> dict:
    """The network alone on `data`: the DESIGN.md error of each prediction against the truth
    (both zero-padded to the pattern's size; twin, sub-voxel shift and global phase removed),
    median and by perfect/defective, and the Poisson loss."""
    net = net.to(device).eval()
    errors, poisson = [], []
    for i in range(len(data["counts"])):
        counts, mask = (torch.from_numpy(data[k][i:i + 1]).to(device) for k in ("counts", "mask"))
        x = torch.from_numpy(network_input(data["counts"][i], data["mask"][i])[None]).to(device)
        with torch.no_grad():
            obj, logit = object_from_output(net(x))
            poisson.append(float(poisson_loss(obj, counts, mask)))
        pred = (obj * (logit > 0))[0].cpu().numpy()
        shape = data["counts"].shape[1:]
        errors.append(reconstruction_error(band_limited(pred, shape), band_limited(data["truth"][i], shape))["error"])
    errors = np.array(errors)
    defective = np.asarray(data["defective"], bool)
    return {"n": len(errors), "median_error": float(np.median(errors)),
            "median_error_perfect": float(np.median(errors[~defective])) if (~defective).any() else None,
            "median_error_defective": float(np.median(errors[defective])) if defective.any() else None,
            "median_poisson": float(np.median(poisson)), "errors": errors.tolist()}


def save_weights(net, path, *, scores, recipe):
    """Weights, architecture and the scores and settings that made them (written atomically)."""
    from braggscope.io.cxi import atomic_path

    with atomic_path(Path(path)) as tmp:
        torch.save({"config": net.config, "weights": net.state_dict(), "scores": json.dumps(scores),
                    "recipe": json.dumps(recipe)}, tmp)


def main(argv=None):
    from .neural import default_weights_path

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ndim", type=int, default=3, choices=(2, 3))
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--features", type=int, nargs=4, default=(16, 32, 64, 128),
                   help="channel widths of a fresh network (with --init, those of the weights)")
    p.add_argument("--test", type=int, default=100, help="held-out patterns (seeds TEST_SEED …)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, help="weights file (default: the shipped one)")
    p.add_argument("--init", type=Path, help="start from these weights (a further training stage; use another "
                                             "--seed so that it sees new patterns)")
    args = p.parse_args(argv)
    if args.init:
        from .neural import load_phase_net

        net, earlier = load_phase_net(args.ndim, args.init, with_recipe=True)
        if net.config["spatial_dims"] != args.ndim:
            p.error(f"--init {args.init} holds a {net.config['spatial_dims']}-D network, not {args.ndim}-D")
    else:
        net, earlier = PhaseNet(features=args.features, spatial_dims=args.ndim), None
    train(net, steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed, ndim=args.ndim, device=args.device)
    scores = {k: v for k, v in evaluate(net, make_dataset(range(TEST_SEED, TEST_SEED + args.test), ndim=args.ndim),
                                        device=args.device).items() if k != "errors"}
    print(json.dumps(scores), flush=True)
    recipe = vars(args) | {"out": None, "init": earlier, "features": list(net.config["features"]),
                           "test_seed": TEST_SEED}
    save_weights(net, args.out or default_weights_path(args.ndim), scores=scores, recipe=recipe)


if __name__ == "__main__":
    main()
