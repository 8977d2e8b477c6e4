"""Benchmark of the strain step (issue: strain maps) against cdiutils on the same analytic fields.

Inputs: a 120 nm Pt truncated octahedron, 111 reflection, on 128³ (2 nm voxels) and 256³ (1 nm
voxels; the crystal fills half the array, as oversampling 2 gives), with
- a smooth strain field (typical strain 5e-4) for the bulk and surface errors and the timings;
- a screw dislocation (b = a/2[011] along its line, G·b = 2π: the phase winds once around it,
  with a 2π cut through the crystal) for the error around dislocations.
The truth is the simulator's closed-form strain. A linear phase ramp cannot be told from a mean
strain, so every method's error is taken after removing its mean over the support.

Figures (one JSON line):
- bulk_rms_error, surface_rms_error (outer two voxel layers), dislocation_rms_error (the screw
  case, outside a 2-voxel tube around the 1.5-voxel core, bulk and surface), core_excluded_voxels,
  the same three with order=2 (second-order central differences in the bulk, as the peers),
  time_s_128, time_s_256 (braggscope.strain.strain_field with its defaults: ramp, offset, wrap-free
  gradient, displacement; the smooth case), time_s_256_dislocation (where the phase must be
  unwrapped for the displacement) and unwrap_s_256_dislocation (scikit-image's unwrapping in it),
  fft_pair_s_256 (the physical limit's scale: one FFT pair of
  the 256³ complex object);
- cdiutils_* (PyPI, PostProcessor.get_structural_properties with its defaults: skimage unwrap,
  sklearn ramp fit, hybrid gradient; isosurface 0.5; only that call is timed): bulk and surface
  errors, its error around
  the dislocation with its default and its defect mode (handle_defects=True), its times;
- bcdi_*: null, with the reason (bcdi needs Python < 3.11 and its own pins);
- speedup_vs_cdiutils_256, device.
Run: python benchmarks/strain.py [--quick]  (64³/128³; cdiutils from PyPI, reported as null if missing)
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from pathlib import Path

import numpy as np
import scipy.fft
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_time, device, emit  # noqa: E402

from braggscope.simulate import Crystal, random_orientation, simulate_sample, truncated_octahedron  # noqa: E402
from braggscope.strain import strain_field, surface_layers, unwrap_phase  # noqa: E402

CRYSTAL_NM = 120.0


def _crystal():
    u = random_orientation(3)
    return Crystal(truncated_octahedron(CRYSTAL_NM, u), "Pt", u)


def sample(kind, n):
    """The simulated crystal on n³ voxels (it fills about half of the array along each axis)."""
    xtal = _crystal()
    h = 2 * CRYSTAL_NM / n * 1.07
    defects = {"smooth": [xtal.smooth_strain(0.03, 100.0, rng=0)],
               "screw": [xtal.dislocation((0, 0.5, 0.5), (0, 1, 1), (2.1, -1.3, 0.7))]}[kind]
    return simulate_sample(xtal, defects, shape=(n,) * 3, voxel_size=h, hkl=(1, 1, 1)), h


def regions(s):
    """Masks of the support without the core tube: bulk, outer two layers, and the tube itself."""
    tube = ndimage.binary_dilation(s.dislocation_mask, iterations=2)
    layers = surface_layers(s.support, 2)
    ok = s.support & ~tube
    return ok & ~layers, ok & layers, tube & s.support


def rms_errors(strain, s, valid=None):
    """RMS error (bulk, surface, all outside the core tube) after removing the mean offset."""
    bulk, surface, _ = regions(s)
    ok = bulk | surface
    if valid is not None:
        bulk, surface, ok = bulk & valid, surface & valid, ok & valid
    err = strain - s.strain
    err = err - np.nanmean(err[ok])
    r = lambda m: float(np.sqrt(np.nanmean(err[m] ** 2)))
    return r(bulk), r(surface), r(ok)


def ours(s, h, order=4):
    return strain_field(s.obj, s.support, g_vector=s.g_vector, voxel_size=h, order=order)


def cdiutils_run(s, h, handle_defects=False):
    """cdiutils' strain step as its users call it (the part that is timed)."""
    from cdiutils.process.postprocessor import PostProcessor

    with contextlib.redirect_stdout(io.StringIO()):
        return PostProcessor.get_structural_properties(s.obj, 0.5, s.g_vector / 10, s.hkl, (h,) * 3, phase_factor=1,
                                                       handle_defects=handle_defects)


def cdiutils_on_grid(s, out):
    """cdiutils' strain map put back on the full grid: it crops around the support's centre of
    mass to a shape of its choosing, which its own helpers give again."""
    from cdiutils.utils import CroppingHandler, find_suitable_array_shape, make_support, normalise

    support = make_support(normalise(np.abs(s.obj)), isosurface=0.5, nan_values=False)
    shape = find_suitable_array_shape(support, pad=np.repeat(10, 3))
    com = CroppingHandler.get_position(support, "com")
    strain = np.full(s.obj.shape, np.nan)
    start = [int(c - n // 2) for c, n in zip(com, shape)]
    dest = tuple(slice(max(a, 0), min(a + n, m)) for a, n, m in zip(start, shape, s.obj.shape))
    src = tuple(slice(d.start - a, d.stop - a) for d, a in zip(dest, start))
    het = out["het_strain"] / 100
    strain[dest] = np.where(out["support"][src] > 0, het[src], np.nan)
    return strain


def measure(sizes):
    result = {}
    n128, n256 = sizes
    for n in sizes:
        s, h = sample("smooth", n)
        t, f = best_time(lambda: ours(s, h), 3 if n == n128 else 2)
        result[f"time_s_{n}"] = t
        if n == n128:  # errors at the smaller size (128³ in a full run)
            result["bulk_rms_error"], result["surface_rms_error"], _ = rms_errors(f.strain, s)
            result["bulk_rms_error_order2"], result["surface_rms_error_order2"], _ = \
                rms_errors(ours(s, h, order=2).strain, s)
            result["typical_strain"] = float(np.sqrt(np.mean(s.strain[s.support] ** 2)))
            result["sizes"] = {"n": list(sizes), "voxel_nm": [round(2 * CRYSTAL_NM / m * 1.07, 3) for m in sizes],
                               "crystal_nm": CRYSTAL_NM, "support_voxels_128": int(s.support.sum())}
        else:
            obj = s.obj.astype(np.complex64)
            result[f"fft_pair_s_{n}"], _ = best_time(lambda: scipy.fft.ifftn(scipy.fft.fftn(obj, workers=-1),
                                                                             workers=-1), 2)
        result.update(peer_smooth(s, h, str(n), errors=n == n128))
    s, h = sample("screw", n128)
    f = ours(s, h)
    _, _, result["dislocation_rms_error"] = rms_errors(f.strain, s)
    _, _, result["dislocation_rms_error_order2"] = rms_errors(ours(s, h, order=2).strain, s)
    result["core_excluded_voxels"] = int(regions(s)[2].sum())
    result["wall_voxels_cut"] = int(np.sum(np.abs(np.diff(np.where(s.support, np.angle(s.obj), np.nan), axis=0))
                                           > np.pi))
    result.update(peer_dislocation(s, h))
    s, h = sample("screw", n256)
    result[f"time_s_{n256}_dislocation"], f = best_time(lambda: ours(s, h), 1)
    result[f"unwrap_s_{n256}_dislocation"], _ = best_time(lambda: unwrap_phase(f.phase, f.support), 1)
    result.update(peer_time(s, h, f"cdiutils_time_s_{n256}_dislocation"))
    return result


def _have_cdiutils():
    try:
        import cdiutils  # noqa: F401
        return True
    except ImportError:
        return False


def peer_smooth(s, h, tag, errors):
    if not _have_cdiutils():
        return {}
    t, raw = best_time(lambda: cdiutils_run(s, h), 1)
    out = {f"cdiutils_time_s_{tag}": t}
    if errors:
        strain = cdiutils_on_grid(s, raw)
        valid = ~np.isnan(strain)
        out["cdiutils_bulk_rms_error"], out["cdiutils_surface_rms_error"], _ = rms_errors(strain, s, valid)
    return out


def peer_dislocation(s, h):
    if not _have_cdiutils():
        return {}
    out = {}
    for name, defects in (("cdiutils_dislocation_rms_error", False), ("cdiutils_defect_mode_dislocation_rms_error", True)):
        strain = cdiutils_on_grid(s, cdiutils_run(s, h, handle_defects=defects))
        _, _, out[name] = rms_errors(strain, s, ~np.isnan(strain))
    return out


def peer_time(s, h, name):
    if not _have_cdiutils():
        return {}
    t, _ = best_time(lambda: cdiutils_run(s, h), 1)
    return {name: t}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="64³ and 128³ instead of 128³ and 256³")
    args = parser.parse_args()
    t0 = time.perf_counter()
    sizes = (64, 128) if args.quick else (128, 256)
    big = sizes[1]
    result = {"benchmark": "strain", "quick": args.quick}
    result.update(measure(sizes))
    if not _have_cdiutils():
        result["cdiutils_missing"] = "pip install cdiutils to measure it"
    else:
        import cdiutils
        result["cdiutils_version"] = cdiutils.__version__
        result[f"speedup_vs_cdiutils_{big}"] = result[f"cdiutils_time_s_{big}"] / result[f"time_s_{big}"]
        result[f"speedup_vs_cdiutils_{big}_dislocation"] = (result[f"cdiutils_time_s_{big}_dislocation"]
                                                            / result[f"time_s_{big}_dislocation"])
    result.update({"bcdi_bulk_rms_error": None, "bcdi_surface_rms_error": None, "bcdi_time_s_256": None,
                   "bcdi_missing": "bcdi needs Python < 3.11 and its own pinned environment, not on this machine",
                   f"ratio_to_fft_pair_{big}": result[f"time_s_{big}"] / result[f"fft_pair_s_{big}"],
                   "device": device(), "wall_s": time.perf_counter() - t0})
    emit(result)


if __name__ == "__main__":
    main()
