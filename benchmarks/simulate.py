"""Benchmark of the forward simulator (issue: foundation).

Prints one JSON object on its last line:
- continuum_128_three_defects_s: simulate_bcdi of a 128³ Pt crystal (180 nm, 3 nm voxels) with an
  edge dislocation, a loop and a stacking fault: fields, ground truth, FFT, detector noise; and
  its ratio to one forward+inverse FFT pair of the same array (the physical floor);
- atomistic_*: the kinematical sum of ~10⁶ displaced atoms (edge-dislocated Au) onto 64³ with
  finufft, against a direct numpy sum on a subset of q-points (speed-up extrapolated to all
  points, and the largest difference relative to the peak amplitude);
- continuum_atomistic_correlation: correlation of |A| of the two models for that crystal over the
  whole q-window (and over its inner half);
- peak_memory_mb, device.
Run: python benchmarks/simulate.py [--quick]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.fft

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_time, device, emit, peak_memory_mb  # noqa: E402

from braggscope.simulate import (Crystal, Detector, atomistic_amplitude, continuum_intensity, fcc_atoms,  # noqa: E402
                                 orientation_from_axes, orthogonal_q_basis, simulate_bcdi, simulate_sample,
                                 truncated_octahedron)


def continuum_case(repeats):
    u = orientation_from_axes((1, 1, 1))
    xtal = Crystal(truncated_octahedron(180.0, u), "Pt", u)
    defects = [xtal.dislocation((0.5, 0, -0.5), (1, -2, 1), position=(5.0, 20.0, -10.0)),
               xtal.loop((1 / 3, 1 / 3, 1 / 3), (1, 1, 1), center=(-35.0, -15.0, 25.0), radius=18.0),
               xtal.stacking_fault((1, -1, 1), (1 / 6, 1 / 3, 1 / 6), center=(30.0, -20.0, 10.0), radius=25.0)]
    run = lambda: simulate_bcdi(xtal, defects, hkl=(1, 1, 1), shape=(128,) * 3, voxel_size=3.0,
                                detector=Detector(photons=1e9, gaps="maxipix"), rng=0)
    seconds, data = best_time(run, repeats)
    field = data.sample.obj
    fft_pair, _ = best_time(lambda: scipy.fft.ifftn(scipy.fft.fftn(field, workers=-1), workers=-1), 3)
    return seconds, fft_pair, int(data.sample.support.sum())


def atomistic_case(n_direct):
    xtal = Crystal(truncated_octahedron(28.0), "Au")
    defects = [xtal.dislocation((0.5, 0, 0.5), (1, -1, 1), position=(0.7, 0.3, 0.0))]
    n, h = 64, 1.0
    sample = simulate_sample(xtal, defects, shape=(n,) * 3, voxel_size=h, hkl=(1, 1, 1))
    basis = orthogonal_q_basis((n,) * 3, h)
    t = time.perf_counter()
    atoms = fcc_atoms(xtal, defects)
    build_s = time.perf_counter() - t
    sum_s, amp = best_time(lambda: atomistic_amplitude(atoms, g_vector=sample.g_vector, q_basis=basis,
                                                       shape=(n,) * 3), 2)
    ks = np.random.default_rng(0).integers(-n // 2, n // 2, (n_direct, 3))
    ks[0] = 0  # the Bragg peak itself
    t = time.perf_counter()
    phase_g = np.exp(1j * (sample.g_vector @ atoms))
    direct = np.array([np.sum(phase_g * np.exp(-1j * ((basis @ k) @ atoms))) for k in ks])
    direct_s = time.perf_counter() - t
    nufft = amp[tuple((ks + n // 2).T)]
    max_rel = float(np.max(np.abs(nufft - direct)) / np.max(np.abs(direct)))
    a, c = np.abs(amp), np.sqrt(continuum_intensity(sample.obj)).astype(float)
    corr = lambda x, y: float(np.sum(x * y) / np.linalg.norm(x) / np.linalg.norm(y))
    inner = (slice(n // 4, 3 * n // 4),) * 3
    return {"atomistic_atoms": int(atoms.shape[1]), "atomistic_qpoints": n**3, "atomistic_s": sum_s,
            "atomistic_build_atoms_s": build_s,
            "atomistic_speedup_vs_direct": direct_s / n_direct * n**3 / sum_s,
            "atomistic_direct_qpoints_sampled": n_direct,
            "atomistic_max_rel_diff": max_rel,
            "atomistic_max_rel_diff_definition": "max over the sampled q of |NUFFT - direct| / max |direct|",
            "continuum_atomistic_correlation": corr(a, c),
            "continuum_atomistic_correlation_inner_half": corr(a[inner], c[inner])}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one repeat, fewer direct-sum points")
    args = parser.parse_args()
    seconds, fft_pair, voxels = continuum_case(1 if args.quick else 3)
    result = {"continuum_128_three_defects_s": seconds, "fft_pair_128_s": fft_pair,
              "continuum_128_ratio_to_fft_pair": seconds / fft_pair, "continuum_128_crystal_voxels": voxels}
    result |= atomistic_case(8 if args.quick else 32)
    result |= {"peak_memory_mb": peak_memory_mb(), "device": device(), "quick": args.quick,
               "peers": "direct numpy kinematical sum (same atoms, same q-points)"}
    emit(result)


if __name__ == "__main__":
    main()
