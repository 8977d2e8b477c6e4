"""Benchmark of the torch phase-retrieval engine (issue: retrieval) — the part that exists so far.

Prints one JSON object on its last line:
- iter_s_64, iter_s_128 (and iter_s_256 without --quick): seconds per cycle of the default chain
  (RAAR with shrink-wrap every 20 cycles), one run, complex64, with ratio_to_fft_pair_128: that time
  over one forward + inverse FFT pair of the same array with scipy.fft (the fastest FFT here),
  measured in the same run;
- batch8_throughput_ratio: cycles·runs per second of 8 runs in one batch over 8 single runs;
- success_rate, median_error: simulated crystals (perfect and defective, 10⁸-10⁹ photons) through
  the default chain with 4 starts, the best by free LLK against the band-limited truth;
- peak_memory_mb, device. PyNX and cohere are not measured yet (peers: none).
Run: python benchmarks/retrieval.py [--quick]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import scipy.fft

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_time, device, emit, peak_memory_mb  # noqa: E402

from braggscope.metrics import band_limited, reconstruction_error  # noqa: E402
from braggscope.retrieval.engine import reconstruct  # noqa: E402
from braggscope.simulate import Crystal, Detector, random_orientation, simulate_bcdi, truncated_octahedron  # noqa: E402


def _pattern(n):
    """A simulated pattern of size n³ (crystal ~ n/3 voxels across)."""
    u = random_orientation(0)
    xtal = Crystal(truncated_octahedron(n, u), "Pt", u)
    data = simulate_bcdi(xtal, [], hkl=(1, 1, 1), shape=(n // 2,) * 3, voxel_size=3.0, data_shape=(n,) * 3,
                         detector=Detector(photons=1e9), rng=0)
    return data.intensity


def per_cycle(n, cycles=40, runs=1):
    intensity = _pattern(n)
    recipe = f"(ShrinkWrap * RAAR**20)**{cycles // 20}"
    seconds, _ = best_time(lambda: reconstruct(intensity, recipe, n_runs=runs, rng=0, llk_every=cycles, device="auto"), 2)
    return seconds / cycles


def fft_pair(n):
    a = (np.random.default_rng(0).normal(size=(n,) * 3) + 0j).astype(np.complex64)
    seconds, _ = best_time(lambda: scipy.fft.ifftn(scipy.fft.fftn(a, workers=-1), workers=-1), 5)
    return seconds


def quality(count):
    errors = []
    for seed in range(count):
        rng = np.random.default_rng(seed)
        u = random_orientation(seed)
        xtal = Crystal(truncated_octahedron(rng.uniform(40, 60), u), "Pt", u)
        kinds = [[], [xtal.smooth_strain(0.02, 60.0, rng=seed)],
                 [xtal.dislocation((0.5, 0, 0.5), (1, -1, 1), (2.0, 1.0, 0.0))],
                 [xtal.stacking_fault((1, 1, 1), (1 / 6, 1 / 6, -1 / 3), radius=12.0)]]
        defects = kinds[seed % 4]
        data = simulate_bcdi(xtal, defects, hkl=(1, 1, 1) if seed % 2 else (2, 0, 0), shape=(24,) * 3,
                             voxel_size=3.0, data_shape=(48,) * 3,
                             detector=Detector(photons=10 ** (8 + seed % 2)), rng=seed)
        r = reconstruct(data.intensity, mask=data.mask, n_runs=4, rng=seed, device="auto")
        errors.append(reconstruction_error(r.obj[0], band_limited(data.sample.obj, (48,) * 3))["error"])
    return np.array(errors)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    result = {"iter_s_64": per_cycle(64), "iter_s_128": per_cycle(128)}
    if not args.quick:
        result["iter_s_256"] = per_cycle(256, cycles=20)
    result["fft_pair_128_s"] = fft_pair(128)
    result["ratio_to_fft_pair_128"] = result["iter_s_128"] / result["fft_pair_128_s"]
    single = per_cycle(64)
    batch = per_cycle(64, runs=8)
    result["batch8_throughput_ratio"] = 8 * single / batch
    errors = quality(4 if args.quick else 12)
    result |= {"success_rate": float(np.mean(errors < 0.1)), "median_error": float(np.median(errors)),
               "quality_crystals": int(errors.size), "quality_errors": errors.round(4).tolist(),
               "peer_median_error": {}, "peers": "none measured yet (PyNX, cohere: to do)",
               "peak_memory_mb": peak_memory_mb(), "device": device(), "quick": args.quick}
    emit(result)


if __name__ == "__main__":
    main()
