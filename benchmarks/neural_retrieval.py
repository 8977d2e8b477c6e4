"""Benchmark of the neural first guess (issue: neural retrieval): seeded against random-start phase
retrieval on held-out simulated crystals and on the measured 34-ID-C scan. Seeded runs refine the
guess by seeded_chain(n), random starts run default_chain(n): the same shape, the shrink-wrap's blur
starting at 1 voxel instead of 2.

Prints one JSON object on its last line:
- net_error: median error of the network's guess alone (DESIGN.md's measure: against the
  band-limited truth after twin, sub-voxel shift and global phase), with net_error_perfect and
  net_error_defective;
- iteration_reduction_factor: 1000 over the median number of cycles a seeded run needs to reach
  (within 5 %) the error that a random-start run reached after 1000 cycles, over every random run
  (2 per crystal; the seeded cycles tried: 10, 20, 50, 100, 200, 500, 1000; one never reached
  counts as more than 1000); reached_within_100 and reached_within_1000: the shares reached;
- success_rate_seeded, success_rate_random: share of runs with error < 0.1 (seeded: after
  SEEDED_CYCLES; random: after 1000), with _defective splits; final_error_seeded and
  final_error_random: median errors of those runs; success_rate_random_same_cycles and
  final_error_random_same_cycles: the same for the 2 random starts run for SEEDED_CYCLES only (with
  a _defective split); success_rate_random_best and success_rate_random_same_cycles_best: the
  share of crystals whose better random run by free LLK succeeds, after 1000 and SEEDED_CYCLES;
  success_rate_seeded_best and final_error_seeded_best: the same for the better by free LLK of 2
  seeded runs of SEEDED_CYCLES from starts spread around the guess (starts_from_guess), as many
  runs as the random starts have;
- real_scan54_llk_seeded, real_scan54_llk_random: the best LLK of 2 seeded and 2 random-start
  runs after the same SEEDED_CYCLES cycles on the prepared measured scan (and free LLKs); the keys
  ending in _psf the same with a partial-coherence PSF in the chains (psf=True);
- inference_s_64: seconds of the network's guess of a 64³ pattern on this CPU (the window, the
  network, the resampling onto the data grid); net_forward_s_64 the network alone;
- the sizes, the test seeds, device.
The crystals are simulate_pattern(TEST_SEED + 50_000 + i), never seen in training: Pt, Au, Ni, Cu,
perfect, smoothly strained or with 1–3 defects, 10⁶, 10⁷, 10⁸, 10⁹ photons in turn, Maxipix gaps
on every other one, 64³ patterns.
With --ndim 2 the same figures for the 2-D network on 2-D crystals (64² patterns; no measured scan).
--weights scores other weights than the shipped ones (a further training stage, say).
Run: python benchmarks/neural_retrieval.py [--quick] [--ndim 2] [--weights PATH]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_time, device, emit  # noqa: E402

from braggscope.metrics import band_limited, reconstruction_error  # noqa: E402
from braggscope.retrieval import prepare, reconstruct  # noqa: E402
from braggscope.retrieval.engine import default_chain  # noqa: E402
from braggscope.retrieval.neural import (SEEDED_CYCLES, first_guess, load_phase_net, network_input,  # noqa: E402
                                         seeded_chain, starts_from_guess)
from braggscope.retrieval.neural_training import TEST_SEED, simulate_pattern  # noqa: E402

REAL_SCAN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "aps34idc_scan54_crop128.npz"
RANDOM_CYCLES = 1000
BUDGETS = (10, 20, 50, 100, 200, 500, 1000)
FIRST = TEST_SEED + 50_000


def crystal(i, ndim=3):
    """Held-out pattern i: photons 10⁶…10⁹ in turn, gaps on every other one."""
    p = simulate_pattern(FIRST + i, ndim=ndim, photons=10.0 ** (6 + i % 4), gaps=bool(i % 2))
    p["band_limited"] = band_limited(p["truth"], p["counts"].shape)
    p["defective"] = any(k != "smooth_strain" for k in p["defects"])
    return p


def run_crystal(i, net, budgets, random_runs):
    """Errors of the guess, of the seeded runs per budget and of the random starts."""
    p = crystal(i, net.config["spatial_dims"])
    error = lambda obj: reconstruction_error(obj, p["band_limited"])["error"]
    guess = first_guess(p["counts"], p["mask"], net=net, device="cpu")
    row = {"seed": FIRST + i, "photons": p["photons"], "defective": p["defective"], "defects": p["defects"],
           "net": error(guess.obj)}
    row["seeded"] = {n: error(reconstruct(p["counts"], seeded_chain(n), mask=p["mask"], obj=guess.obj,
                                          support=guess.support, rng=i, device="cpu").obj[0]) for n in budgets}
    pair = reconstruct(p["counts"], seeded_chain(SEEDED_CYCLES), mask=p["mask"],
                       obj=starts_from_guess(guess, random_runs, rng=i), support=guess.support, n_runs=random_runs,
                       rng=i, device="cpu")
    row["seeded_best"] = error(pair.obj[0])  # the better of as many seeded runs as random ones, by free LLK
    rand = reconstruct(p["counts"], default_chain(RANDOM_CYCLES), mask=p["mask"], n_runs=random_runs, rng=i,
                       device="cpu")
    row["random_runs"] = [error(o) for o in rand.obj]
    short = reconstruct(p["counts"], default_chain(SEEDED_CYCLES), mask=p["mask"], n_runs=random_runs, rng=i,
                        device="cpu")
    row["random_runs_seeded_cycles"] = [error(o) for o in short.obj]
    row["random_best"] = row["random_runs"][0]  # best by free LLK
    return row


def reduction(rows, budgets, tolerance=1.05):
    """(iteration_reduction_factor, share reached within 100 cycles, within 1000) over every random run."""
    needed = np.array([next((n for n in budgets if r["seeded"][n] <= tolerance * e), np.inf)
                       for r in rows for e in r["random_runs"]])
    return RANDOM_CYCLES / float(np.median(needed)), float(np.mean(needed <= 100)), float(np.mean(needed <= 1000))


def real_scan(net, cycles):
    """Best LLK of 2 seeded and 2 random-start runs of `cycles` on the prepared measured scan,
    without and with a partial-coherence PSF."""
    if not REAL_SCAN.is_file():
        return {"real_scan54_llk_seeded": None, "real_scan54_llk_random": None,
                "real_scan54_note": f"{REAL_SCAN} not found"}
    z = np.load(REAL_SCAN)
    p = prepare(z["iobs"], z["mask"] > 0)
    guess = first_guess(p.intensity, p.mask, net=net, device="cpu")
    starts = starts_from_guess(guess, 2, rng=0)
    seeded = reconstruct(p.intensity, seeded_chain(cycles), mask=p.mask, obj=starts, support=guess.support, n_runs=2,
                         rng=0)
    rand = reconstruct(p.intensity, default_chain(cycles), mask=p.mask, n_runs=2, rng=0)
    seeded_psf = reconstruct(p.intensity, seeded_chain(cycles, psf=True), mask=p.mask, obj=starts,
                             support=guess.support, n_runs=2, rng=0)
    rand_psf = reconstruct(p.intensity, default_chain(cycles, psf=True), mask=p.mask, n_runs=2, rng=0)
    return {"real_scan54_llk_seeded": float(seeded.llk[0]), "real_scan54_llk_random": float(rand.llk[0]),
            "real_scan54_llk_seeded_psf": float(seeded_psf.llk[0]), "real_scan54_llk_random_psf": float(rand_psf.llk[0]),
            "real_scan54_free_llk_seeded_psf": float(seeded_psf.free_llk[0]),
            "real_scan54_free_llk_random_psf": float(rand_psf.free_llk[0]),
            "real_scan54_free_llk_seeded": float(seeded.free_llk[0]),
            "real_scan54_free_llk_random": float(rand.free_llk[0]),
            "real_scan54_support_seeded": int(seeded.support[0].sum()),
            "real_scan54_support_random": int(rand.support[0].sum()), "real_scan54_bins": list(guess.frame.bins),
            "real_scan54_cycles": cycles}


def inference_time(net):
    p = crystal(0, net.config["spatial_dims"])
    x = torch.from_numpy(network_input(p["counts"], p["mask"]))[None]
    with torch.no_grad():
        forward = best_time(lambda: net(x), 5)[0]
    return best_time(lambda: first_guess(p["counts"], p["mask"], net=net, device="cpu"), 5)[0], forward


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="8 crystals, cycles up to 200, no real scan")
    parser.add_argument("--crystals", type=int, default=None, help="held-out crystals (default 52, quick 8)")
    parser.add_argument("--ndim", type=int, default=3, choices=(2, 3),
                        help="3: 64³ patterns and the measured scan; 2: the 2-D network on 64² central slices")
    parser.add_argument("--weights", type=Path, help="weights to score instead of the shipped ones")
    args = parser.parse_args()
    torch.manual_seed(0)
    net = load_phase_net(args.ndim, args.weights)
    count = args.crystals or (8 if args.quick else 52)
    budgets = tuple(n for n in BUDGETS if n <= (200 if args.quick else RANDOM_CYCLES))
    t0 = time.perf_counter()
    rows = []
    for i in range(count):
        rows.append(run_crystal(i, net, budgets, random_runs=2))
        print(f"crystal {i}: net {rows[-1]['net']:.3f}, seeded {rows[-1]['seeded'][budgets[-1]]:.3f} after "
              f"{budgets[-1]}, random {min(rows[-1]['random_runs']):.3f}", file=sys.stderr, flush=True)
    net_err = np.array([r["net"] for r in rows])
    defective = np.array([r["defective"] for r in rows])
    seeded = np.array([r["seeded"][min(SEEDED_CYCLES, budgets[-1])] for r in rows])
    random_runs = np.array([r["random_runs"] for r in rows])
    random_short = np.array([r["random_runs_seeded_cycles"] for r in rows])
    seeded_best = np.array([r["seeded_best"] for r in rows])
    factor, within_100, within_1000 = reduction(rows, budgets)
    out = Path(__file__).resolve().parents[1] / "out"
    out.mkdir(exist_ok=True)
    (out / f"neural_retrieval_rows{'_2d' if args.ndim == 2 else ''}.json").write_text(json.dumps(rows, default=float))
    result = {
        "net_error": float(np.median(net_err)), "net_error_perfect": float(np.median(net_err[~defective])),
        "net_error_defective": float(np.median(net_err[defective])),
        "iteration_reduction_factor": factor, "reached_within_100": within_100,
        "reached_within_1000": within_1000,
        "success_rate_seeded": float(np.mean(seeded < 0.1)), "success_rate_random": float(np.mean(random_runs < 0.1)),
        "success_rate_seeded_defective": float(np.mean(seeded[defective] < 0.1)),
        "success_rate_random_defective": float(np.mean(random_runs[defective] < 0.1)),
        "final_error_seeded": float(np.median(seeded)), "final_error_random": float(np.median(random_runs)),
        "success_rate_random_same_cycles": float(np.mean(random_short < 0.1)),
        "success_rate_random_same_cycles_defective": float(np.mean(random_short[defective] < 0.1)),
        "final_error_random_same_cycles": float(np.median(random_short)),
        "final_error_random_best": float(np.median([r["random_best"] for r in rows])),
        "success_rate_random_best": float(np.mean(random_runs[:, 0] < 0.1)),
        "success_rate_random_same_cycles_best": float(np.mean(random_short[:, 0] < 0.1)),
        "success_rate_seeded_best": float(np.mean(seeded_best < 0.1)),
        "final_error_seeded_best": float(np.median(seeded_best)),
        "median_seeded_error_by_cycles": {n: float(np.median([r["seeded"][n] for r in rows])) for n in budgets},
        "seeded_cycles": SEEDED_CYCLES, "random_cycles": RANDOM_CYCLES, "random_runs_per_crystal": 2,
        "crystals": count, "defective_crystals": int(defective.sum()), "ndim": args.ndim,
        "pattern_shape": [64] * args.ndim,
        "test_seeds": [FIRST, FIRST + count - 1], "crystal_seconds": (time.perf_counter() - t0) / count,
    }
    result |= real_scan(net, SEEDED_CYCLES) if not args.quick and args.ndim == 3 else {
        "real_scan54_llk_seeded": None, "real_scan54_llk_random": None}
    result["inference_s_64"], result["net_forward_s_64"] = inference_time(net)
    result["weights"] = str(args.weights) if args.weights else "shipped"
    result["device"] = device()
    emit(result)


if __name__ == "__main__":
    main()
