"""Benchmark of the whole pipeline (issue: from a beamtime's raw scans to a defect report).

Scans: simulated Pt crystals (truncated octahedra of 90–130 nm, random orientations, half of them
with a dislocation, 3 nm voxels) measured at 111 with 10⁹ photons on 128³ (64³ with --quick),
written as CXI files. Each goes through `braggscope run`'s chain with its defaults (the network's
seed, 4 runs of our torch engine, strain, U-Net defects, pattern classifier, pictures, HTML pages;
the PyVista pictures are left out, as on a headless node without pyvista).

Figures (one JSON line): scans per hour serially (torch on all cores) and on a Dask LocalCluster
of 2 single-threaded workers, each from the wall time of the whole batch (cluster start-up
included); the fraction of the serial time spent in each step; and the physical limit, the time of
one complex 128³ FFT on this machine (a reconstruction of 4 runs × 200 cycles needs ~2 FFTs per
run and cycle: `fft_bound_s_per_scan`).
Beside them the measured APS 34-ID-C scan of ../shared/data/real (201 frames of 256², written here as TIFF
frames + a SPEC file with the scan's recorded geometry, then read by the 34-ID-C loader) through the same
chain: its time, LLK, the d-spacing of the measured peak, the crystal's size and RMS strain.
Run: python benchmarks/pipeline.py [--quick]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_time, device, emit  # noqa: E402

from braggscope.io import write_simulation  # noqa: E402
from braggscope.pipeline import STEPS, Pipeline  # noqa: E402
from braggscope.simulate import Crystal, Detector, random_orientation, simulate_bcdi, truncated_octahedron  # noqa: E402


def write_scans(folder, n, size):
    """`n` simulated scans of data `size`³ as sim_<i>.cxi in `folder`."""
    rng = np.random.default_rng(7)
    for i in range(n):
        o = random_orientation(100 + i)
        xtal = Crystal(truncated_octahedron(float(rng.uniform(0.35, 0.5) * size * 3 / 2), o), "Pt", o)
        defects = [xtal.dislocation(burgers=(0.5, 0.5, 0), line=(1, -1, 1), position=(0, 0, 0))] if i % 2 else []
        data = simulate_bcdi(xtal, defects, hkl=(1, 1, 1), shape=(size // 2,) * 3, voxel_size=3.0,
                             data_shape=(size,) * 3, detector=Detector(photons=1e9), rng=i)
        write_simulation(Path(folder) / f"sim_{i}.cxi", data, seed=i)


REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "aps34idc_scan54_raw.npz"
SPEC = Path(__file__).resolve().parents[1] / "tests" / "data" / "aps34idc_scan54.spec"


def real_scan(folder):
    """The shared 34-ID-C scan as the beamline wrote it (TIFF frames named as its detector names them,
    the beamline's own SPEC file with Theta, Delta, Gamma, Energy and camdist, dark and white field)
    and put through the pipeline serially, given no geometry by hand."""
    import tifffile

    folder = Path(folder)
    with np.load(REAL) as z:
        frames, dark, white, bad = z["frames"], z["dark"], z["whitefield"], z["bad_pixels"]
    (folder / "Staff20-1a_S0054").mkdir()
    for i, frame in enumerate(frames):
        tifffile.imwrite(folder / "Staff20-1a_S0054" / f"Staff20-1a_S0054_{i:05d}.tif", frame)
    tifffile.imwrite(folder / "dark.tif", dark)
    tifffile.imwrite(folder / "white.tif", white)
    np.save(folder / "bad.npy", bad)
    config = {"beamline": "34idc", "output": str(folder / "out_real"),
              "data": {"path": str(SPEC), "frames": str(folder / "Staff20-1a_S{scan:04d}"), "scans": [54],
                       "dark": str(folder / "dark.tif"), "whitefield": str(folder / "white.tif"),
                       "bad_pixels": str(folder / "bad.npy")},
              "identify": {"render": False}}
    t = time.perf_counter()
    row = Pipeline(config).run()[0]
    if row["status"] != "done":
        return {"error": row["error"]}
    return {"s": time.perf_counter() - t, "llk": row["llk"], "free_llk": row["free_llk"],
            "d_spacing_nm": row["d_spacing_nm"], "au_111_d_spacing_nm": 0.40782 / np.sqrt(3),
            "size_nm": row["size_nm"], "voxels": row["voxels"], "strain_rms": row["strain_rms"],
            "defects": row["defect_counts"], "pattern": (row["pattern"] or {}).get("label"), "flags": row["flags"]}


def run(folder, n, size, cluster):
    config = {"output": str(Path(folder) / f"out_{cluster['kind']}"),
              "data": {"path": str(Path(folder) / "sim_{scan}.cxi"), "scans": list(range(n))},
              "prepare": {"shape": [size] * 3}, "identify": {"render": False}, "cluster": cluster}
    t = time.perf_counter()
    rows = Pipeline(config).run()
    return time.perf_counter() - t, rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, size = (2, 64) if args.quick else (6, 128)
    import torch

    with tempfile.TemporaryDirectory() as folder:
        write_scans(folder, n, size)
        serial_s, rows = run(folder, n, size, {"kind": "serial"})
        cluster_s, cluster_rows = run(folder, n, size, {"kind": "local", "workers": 2})
        measured = real_scan(folder) if REAL.is_file() and not args.quick else None
    failed = [r["error"] for r in rows + cluster_rows if r["status"] != "done"]
    totals = {s: sum(r["timings"][s] for r in rows if r["status"] == "done") for s in STEPS}
    x = torch.randn((size,) * 3, dtype=torch.complex64)
    fft_s, _ = best_time(lambda: torch.fft.fftn(x), 5)
    emit({"benchmark": "pipeline", "scans": n, "data_shape": [size] * 3, "runs_per_scan": 4,
          "scans_per_hour_serial": 3600 * n / serial_s, "scans_per_hour_cluster": 3600 * n / cluster_s,
          "cluster": "dask LocalCluster, 2 workers × 1 thread", "serial_threads": torch.get_num_threads(),
          "speedup_cluster": serial_s / cluster_s,
          "step_fractions": {s: v / sum(totals.values()) for s, v in totals.items()},
          "s_per_scan_serial": serial_s / n, "fft_s": fft_s, "fft_bound_s_per_scan": fft_s * 2 * 4 * 200,
          "mean_llk": float(np.mean([r["llk"] for r in rows if r["status"] == "done"])),
          "defects_found": [sum(r["defect_counts"].values()) for r in rows if r["status"] == "done"],
          "failed": failed, "real_34idc_scan54": measured, "device": device()})


if __name__ == "__main__":
    main()
