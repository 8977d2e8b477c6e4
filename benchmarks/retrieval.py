"""Benchmark of phase retrieval (issue: retrieval) against PyNX and cohere on the same data.

Prints one JSON object on its last line:
- speed: iter_s_64, iter_s_128, iter_s_256 (not with --quick): seconds per cycle of the default
  chain (RAAR with shrink-wrap every 20 cycles), one run, complex64; ratio_to_fft_pair_128: that
  over one forward + inverse FFT pair of the same array with scipy.fft (the fastest FFT here),
  measured in the same run; ratio_to_pynx_128 and ratio_to_cohere_128: over PyNX 2025.1's CPU
  operators (same recipe, through our PyNX backend) and cohere-core's numpy backend (its default
  sequence: ER and HIO with shrink-wrap every cycle, complex128) on the same data;
  batch8_throughput_ratio: cycles·runs per second of 8 runs in one batch over 8 single runs;
- quality: 20 simulated crystals (perfect, dislocation, loop, stacking fault; 10⁶-10⁹ photons;
  Maxipix gaps on half of them), 4 starts each of the default chain (HIO, then RAAR, then ER),
  the best by free LLK against the band-limited truth; success_rate (error < 0.1), median_error,
  median_error_1e9_perfect, and the same inputs through PyNX (same recipe and starts) and cohere
  (its defaults): pynx_median_error, peer_median_error, peer_success_rate; in the last two also
  "torch_id01_chain" and "pynx_id01_chain", both engines on PyNX's ID01 default chain (600 RAAR,
  200 ER) from the same starts;
- real data: the measured 34-ID-C scan 54 (../shared/data/real), prepared (hot pixels, aliens),
  4 runs, best 2 combined: real_scan54_llk, real_scan54_support_voxels, and a PNG in out/; the keys
  ending in _psf the same with a partial-coherence PSF (default_chain(800, psf=True)), and
  real_scan54_psf_fwhm_px the refined PSF's width;
- data preparation: alien_recall (share of the aliens' photons masked, as aliens or hot pixels)
  and alien_false_positive_rate (share of clean measured voxels masked) over 12 simulated
  defective crystals with 3 aliens, 5 hot pixels and gaps;
- peak_memory_mb, device.
Run: python benchmarks/retrieval.py [--quick]  (PyNX from .ci/get-pynx on PYTHONPATH; cohere-core
from PyPI; a peer that is missing is reported as null with the reason)
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import scipy.fft

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_time, device, emit, peak_memory_mb  # noqa: E402

from braggscope.metrics import band_limited, reconstruction_error  # noqa: E402
from braggscope.retrieval import (DEFAULT_RECIPE, combine_runs, default_chain, find_aliens, hot_pixels,  # noqa: E402
                                  prepare, pynx_available, reconstruct)
from braggscope.simulate import (Crystal, Detector, random_crystal, random_defects, random_orientation,  # noqa: E402
                                 simulate_bcdi, truncated_octahedron)

REAL_SCAN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "aps34idc_scan54_crop128.npz"
COHERE_SEQUENCE = "3* (20*ER + 180*HIO) + 20*ER"  # cohere-ui's example configuration
ID01_CHAIN = "ER**200 * (ShrinkWrap * RAAR**20)**30"  # PyNX's ID01 runner default: 600 RAAR, 200 ER


def _pattern(n):
    """A simulated pattern of size n³ (crystal ~ n/3 voxels across)."""
    u = random_orientation(0)
    xtal = Crystal(truncated_octahedron(n, u), "Pt", u)
    data = simulate_bcdi(xtal, [], hkl=(1, 1, 1), shape=(n // 2,) * 3, voxel_size=3.0, data_shape=(n,) * 3,
                         detector=Detector(photons=1e9), rng=0)
    return data.intensity


def per_cycle(intensity, cycles=40, runs=1, backend="torch", batch=None):
    """[s] per cycle of RAAR with shrink-wrap every 20 cycles, one LLK record per 20 cycles: the
    time of 2 × `cycles` minus that of `cycles`, so that the set-up (initial support, random
    starts, transfers) cancels."""
    def seconds(n):
        recipe = f"(ShrinkWrap * RAAR**20)**{n // 20}"
        run = lambda: reconstruct(intensity, recipe, n_runs=runs, rng=0, llk_every=20, backend=backend, batch=batch)
        return best_time(run, 2)[0]

    return (seconds(2 * cycles) - seconds(cycles)) / cycles


def fft_pair(n):
    a = (np.random.default_rng(0).normal(size=(n,) * 3) + 0j).astype(np.complex64)
    return best_time(lambda: scipy.fft.ifftn(scipy.fft.fftn(a, workers=-1), workers=-1), 5)[0]


def cohere_run(intensity, sequence=COHERE_SEQUENCE):
    """cohere-core's numpy backend with its example defaults, given the amplitudes √I as cohere
    expects (it has no mask: masked pixels read 0); returns (object centred, seconds, iterations)."""
    import time

    import cohere_core.controller.phasing as phasing

    params = {"algorithm_sequence": sequence, "shrink_wrap_trigger": [1, 1], "shrink_wrap_type": "GAUSS",
              "shrink_wrap_threshold": 0.1, "shrink_wrap_gauss_sigma": 1.0, "initial_support_area": [0.5] * 3}
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        path = os.path.join(tmp, "data.npy")
        np.save(path, np.sqrt(np.asarray(intensity, np.float32)))
        t = time.perf_counter()
        rec = phasing.create_rec(params, path, "np", -1, debug=True)
        rec.iterate()
        seconds = time.perf_counter() - t
    return np.fft.fftshift(rec.get_image()), seconds, rec.iter_no


def cohere_available():
    try:
        import cohere_core.controller.phasing  # noqa: F401
    except Exception:
        return False
    return True


def quality_inputs(count):
    """`count` simulated crystals: perfect, dislocation, loop, stacking fault in turn, each kind
    at 10⁶, 10⁷, 10⁸ and 10⁹ photons over four rounds, Maxipix gaps on every other one."""
    kinds = [(), ("dislocation",), ("loop",), ("stacking_fault",)]
    for seed in range(count):
        rng = np.random.default_rng(seed)
        u = random_orientation(seed)
        xtal = Crystal(truncated_octahedron(rng.uniform(45, 60), u), "Pt", u)
        defects = random_defects(xtal, rng, kinds=kinds[seed % 4], count=(1, 1), size=20.0) if seed % 4 else []
        photons = 10.0 ** (6 + (seed + seed // 4) % 4)
        data = simulate_bcdi(xtal, defects, hkl=(1, 1, 1), shape=(24,) * 3, voxel_size=3.0, data_shape=(48,) * 3,
                             detector=Detector(photons=photons, gaps="maxipix" if seed % 2 else "none"), rng=seed)
        yield seed, photons, kinds[seed % 4], data


def quality(count, peers):
    rows = []
    for seed, photons, kind, data in quality_inputs(count):
        truth = band_limited(data.sample.obj, (48,) * 3)
        row = {"seed": seed, "photons": photons, "defect": kind[0] if kind else "none"}
        for backend in ["torch"] + (["pynx"] if "pynx" in peers else []):
            for name, recipe in ((backend, DEFAULT_RECIPE), (f"{backend}_id01_chain", ID01_CHAIN)):
                r = reconstruct(data.intensity, recipe, mask=data.mask, n_runs=4, rng=seed, backend=backend)
                row[name] = reconstruction_error(r.obj[0], truth)["error"]
        if "cohere" in peers:
            row["cohere"] = reconstruction_error(cohere_run(np.where(data.mask, 0, data.intensity))[0], truth)["error"]
        rows.append(row)
    return rows


def aliens(count):
    """Alien photons masked and clean voxels masked, over `count` defective crystals."""
    masked = total = false = clean_total = 0.0
    for seed in range(count):
        rng = np.random.default_rng(seed)
        xtal = random_crystal(rng, size=(80, 160))
        defects = random_defects(xtal, rng, count=(0, 3), kinds=("dislocation", "loop", "stacking_fault"))
        d = simulate_bcdi(xtal, defects, hkl=(1, 1, 1), shape=(48,) * 3, voxel_size=5.0, data_shape=(64,) * 3,
                          detector=Detector(photons=10 ** rng.uniform(7, 9), aliens=3, hot_pixels=5, gaps="maxipix"),
                          rng=seed)
        m = d.measurement
        hot = hot_pixels(m.intensity, m.mask)  # also takes the sharpest alien cores
        found, _ = find_aliens(m.intensity, m.mask | hot)
        found |= hot
        truth = m.truth["aliens"]
        excess = m.intensity - m.expected
        masked += excess[found & truth].sum()
        total += excess[truth].sum()
        clean = ~truth & ~m.mask & ~m.truth["hot_pixels"]
        false += (found & clean).sum()
        clean_total += clean.sum()
    return masked / total, false / clean_total


def real_scan(out_dir):
    """Default chain on the measured 34-ID-C scan; writes a PNG; returns the figures."""
    if not REAL_SCAN.is_file():
        return {"real_scan54_llk": None, "real_scan54_note": f"{REAL_SCAN} not found"}
    from braggscope.viz import object_figure, save_png

    z = np.load(REAL_SCAN)
    p = prepare(z["iobs"], z["mask"] > 0)
    r = reconstruct(p.intensity, mask=p.mask, n_runs=4, rng=0)
    sol = combine_runs(r, p.intensity, p.mask, keep=2)
    png = save_png(object_figure(sol.obj, sol.support, title=f"34-ID-C scan 54: LLK {sol.llk:.2f}, "
                                 f"{int(sol.support.sum())} voxels in the support"), out_dir / "real_scan54.png")
    return {"real_scan54_llk": sol.llk, "real_scan54_free_llk": sol.free_llk,
            "real_scan54_best_run_llk": float(r.llk[0]), "real_scan54_support_voxels": int(sol.support.sum()),
            "real_scan54_masked": p.report["masked_voxels"], "real_scan54_prtf_resolution_voxels": sol.prtf["resolution"],
            "real_scan54_png": str(png)} | _real_scan_psf(p)


def _real_scan_psf(p):
    """The same 4 runs with a partial-coherence PSF in the chain (default_chain(800, psf=True)): the
    LLKs and the refined PSF's FWHM along each axis [pixels] (Solution.psf_fwhm)."""
    r = reconstruct(p.intensity, default_chain(800, psf=True), mask=p.mask, n_runs=4, rng=0)
    sol = combine_runs(r, p.intensity, p.mask, keep=2)
    return {"real_scan54_llk_psf": sol.llk, "real_scan54_free_llk_psf": sol.free_llk,
            "real_scan54_best_run_llk_psf": float(r.llk[0]), "real_scan54_support_voxels_psf": int(sol.support.sum()),
            "real_scan54_psf_fwhm_px": [round(w, 3) for w in sol.psf_fwhm]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer crystals")
    args = parser.parse_args()
    out_dir = Path(__file__).resolve().parents[1] / "out"
    peers = [name for name, ok in (("pynx", pynx_available()), ("cohere", cohere_available())) if ok]
    result = {"peers": peers}
    patterns = {n: _pattern(n) for n in (64, 128)}
    result["iter_s_64"] = per_cycle(patterns[64])
    result["iter_s_128"] = per_cycle(patterns[128])
    result["iter_s_256"] = None if args.quick else per_cycle(_pattern(256), cycles=20)
    result["fft_pair_128_s"] = fft_pair(128)
    result["ratio_to_fft_pair_128"] = result["iter_s_128"] / result["fft_pair_128_s"]
    result["pynx_iter_s_128"] = per_cycle(patterns[128], backend="pynx") if "pynx" in peers else None
    result["ratio_to_pynx_128"] = result["iter_s_128"] / result["pynx_iter_s_128"] if "pynx" in peers else None
    if "cohere" in peers:
        _, seconds, iterations = cohere_run(patterns[128], "20*ER + 20*HIO")
        result["cohere_iter_s_128"] = seconds / iterations
        result["ratio_to_cohere_128"] = result["iter_s_128"] / result["cohere_iter_s_128"]
    else:
        result["cohere_iter_s_128"] = result["ratio_to_cohere_128"] = None
    result["batch8_throughput_ratio"] = 8 * per_cycle(patterns[64]) / per_cycle(patterns[64], runs=8, batch=8)

    rows = quality(8 if args.quick else 20, peers)
    ours = np.array([r["torch"] for r in rows])
    others = [k for k in rows[0] if k not in ("seed", "photons", "defect", "torch")]
    best_case = [r["torch"] for r in rows if r["photons"] == 1e9 and r["defect"] == "none"]
    result |= {"success_rate": float(np.mean(ours < 0.1)), "median_error": float(np.median(ours)),
               "median_error_1e9_perfect": float(np.median(best_case)) if best_case else None,
               "quality_crystals": len(rows),
               "peer_median_error": {p: float(np.median([r[p] for r in rows])) for p in others},
               "peer_success_rate": {p: float(np.mean([r[p] < 0.1 for r in rows])) for p in others},
               "pynx_median_error": float(np.median([r["pynx"] for r in rows])) if "pynx" in peers else None,
               "quality_rows": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]}
    recall, false_rate = aliens(4 if args.quick else 12)
    result |= {"alien_recall": recall, "alien_false_positive_rate": false_rate}
    result |= real_scan(out_dir)
    result |= {"peak_memory_mb": peak_memory_mb(), "device": device(), "quick": args.quick}
    emit(result)


if __name__ == "__main__":
    main()
