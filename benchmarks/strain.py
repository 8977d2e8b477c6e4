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
- bcdi_* (PyPI 0.2.3, installed without its pins; its strain functions as its postprocessing script
  calls them with its example configuration: skimage unwrap above 0.05 of the amplitude, its gradient
  ramp removal above 0.2, then get_strain, np.gradient along the axis that G lies on, default and
  'defect' methods; the whole step is timed). bcdi needs G along an array axis, so it is given the same
  crystal turned to put [111] along y, on which ours is measured too (*_g_along_y);
- refraction_*: the beams' paths in a 600 nm Au ball (15 nm voxels, 48³; 111 at 9 keV) against the
  exact chords, ours (refraction_path) and bcdi's (get_opticalpath, given the voxel size), RMS [nm] and
  time, and the bulk strain that each correction leaves of the refraction's (a cubic field plus kδL on
  the object; bias_rms: none removed); bcdi_as_run: its postprocessing's own use, which passes no voxel
  size (the path in voxels, used as nm) and adds kδL to the phase after inverting it (the phase is then
  G·u + kδL, so the addition doubles the refraction's share instead of removing it; README);
- lab_grid_*: an edge dislocation measured in a rocking scan, on the detector frame's skewed grid (128³,
  about 2 nm), its strain on the orthogonal lab grid by our route (strain on the skewed grid, then
  resampled) and with the object resampled first (the peers' orthogonalisation), RMS errors in the bulk,
  around the core (4 voxels outside a 3.5-voxel tube) and in the outer two layers, and both times;
- speedup_vs_cdiutils_256, speedup_vs_bcdi_256 (on the turned crystal, time_s_256_g_along_y), device.
Run: python benchmarks/strain.py [--quick]  (64³/128³; cdiutils and bcdi from PyPI, reported as null if missing)
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import io
import sys
import time
from pathlib import Path

import numpy as np
import scipy.fft
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_time, device, emit  # noqa: E402

from braggscope.geometry import INCIDENT_DIRECTION, Geometry, scattered_direction, wavelength_nm  # noqa: E402
from braggscope.simulate import (Crystal, orientation_from_axes, random_orientation, simulate_sample,  # noqa: E402
                                 truncated_octahedron)
from braggscope.strain import refraction_path, refractive_index, strain_field, surface_layers, unwrap_phase  # noqa: E402

CRYSTAL_NM = 120.0


def _crystal(g_along_y=False):
    u = orientation_from_axes((1, 1, 1), (0, 1, 0)) if g_along_y else random_orientation(3)
    return Crystal(truncated_octahedron(CRYSTAL_NM, u), "Pt", u)


def sample(kind, n, g_along_y=False):
    """The simulated crystal on n³ voxels (it fills about half of the array along each axis)."""
    xtal = _crystal(g_along_y)
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


@functools.lru_cache(maxsize=None)
def _bcdi():
    """bcdi's postprocessing functions, or None where bcdi is not installed. Its unwrap calls
    scikit-image's unwrap_phase with `seed`, which scikit-image 0.24 renamed `rng`: the name is
    passed on under its new one, nothing else changes."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        from bcdi.postprocessing import postprocessing_utils
    except ImportError:
        return None
    from skimage.restoration import unwrap_phase as skimage_unwrap

    postprocessing_utils.unwrap_phase = lambda image, seed=None, **kw: skimage_unwrap(image, rng=seed, **kw)
    return postprocessing_utils


def bcdi_run(s, h, method="default"):
    """bcdi's strain step as its postprocessing script runs it (example configuration), on an
    object whose G lies along y; our phase is G·u, the sign bcdi's phase has after its inversion."""
    pu = _bcdi()
    with contextlib.redirect_stdout(io.StringIO()):
        phase, extent = pu.unwrap(s.obj, support_threshold=0.05, debugging=False)
        _, phase, *_ = pu.remove_ramp(amp=np.abs(s.obj), phase=phase, initial_shape=s.obj.shape, method="gradient",
                                      amplitude_threshold=0.2, threshold_gradient=1.0)
        return pu.get_strain(phase, planar_distance=2 * np.pi / np.linalg.norm(s.g_vector), voxel_size=h,
                             reference_axis="y", extent_phase=extent, method=method)


def peer_bcdi(n128, n256):
    """bcdi against ours on the crystal turned to put G along y: errors at the smaller size, times at both."""
    out = {}
    for n in (n128, n256):
        s, h = sample("smooth", n, g_along_y=True)
        t, strain = best_time(lambda: bcdi_run(s, h), 1)
        out[f"bcdi_time_s_{n}"] = t
        out[f"time_s_{n}_g_along_y"], _ = best_time(lambda: ours(s, h), 2)
        if n == n128:
            out["bulk_rms_error_g_along_y"], out["surface_rms_error_g_along_y"], _ = rms_errors(ours(s, h).strain, s)
            out["bcdi_bulk_rms_error"], out["bcdi_surface_rms_error"], _ = rms_errors(strain, s)
    s, h = sample("screw", n128, g_along_y=True)
    _, _, out["dislocation_rms_error_g_along_y"] = rms_errors(ours(s, h).strain, s)
    for name, method in (("bcdi_dislocation_rms_error", "default"), ("bcdi_defect_method_dislocation_rms_error", "defect")):
        _, _, out[name] = rms_errors(bcdi_run(s, h, method), s)
    return out


def _refracting_ball():
    """A 600 nm Au ball (15 nm voxels, 48³; 111 at 9 keV): its support, voxel [nm], beam directions,
    exact L_in + L_out [nm] and kδ [1/nm], and left(φ), the bulk strain RMS that stays after the phase φ
    is taken off the object (a cubic field plus kδL)."""
    geo = Geometry.for_reflection(d_spacing=0.40782 / np.sqrt(3), energy=9.0, detector_distance=1.0, pixel_size=55.0,
                                  rocking_step=0.004)
    n, voxel, radius = 48, 15.0, 300.0
    r = (np.indices((n,) * 3).reshape(3, -1).T - n // 2) * voxel
    ball = (np.linalg.norm(r, axis=1) < radius).reshape((n,) * 3)
    incident, scattered = np.asarray(INCIDENT_DIRECTION, float), scattered_direction(geo.delta, geo.gamma)

    def chord(u):
        rd = r @ u
        return (-rd + np.sqrt(np.maximum(rd ** 2 - (r ** 2).sum(axis=1) + radius ** 2, 0))).reshape(ball.shape)

    exact = np.where(ball, chord(-incident) + chord(scattered), 0)
    g, k_delta = geo.q_bragg, geo.k * refractive_index("Au", 9.0)[0]
    phase = (3.0 * ((r @ g) / np.linalg.norm(g) / radius) ** 2 + (r[:, 2] / radius) ** 3).reshape(ball.shape)
    truth = np.where(ball, np.exp(1j * phase), 0)
    measured = truth * np.exp(1j * k_delta * exact)
    bulk = ball & ~surface_layers(ball, 2)
    strain = lambda obj: strain_field(obj, ball, g_vector=g, voxel_size=voxel).strain
    reference = strain(truth)
    left = lambda removed: float(np.sqrt(np.mean((strain(measured * np.exp(-1j * removed)) - reference)[bulk] ** 2)))
    return ball, voxel, (incident, scattered), exact, k_delta, left


def refraction_paths():
    """Our beam paths and bcdi's against the exact chords of the ball, and the bulk strain each
    correction leaves (see the module's docstring)."""
    ball, voxel, (incident, scattered), exact, k_delta, left = _refracting_ball()
    path_rms = lambda p: float(np.sqrt(np.mean((p - exact)[ball] ** 2)))
    t, path = best_time(lambda: refraction_path(ball, voxel, incident=incident, scattered=scattered), 2)
    out = {"refraction_bias_rms": left(0 * exact), "refraction_path_rms_nm": path_rms(path), "refraction_path_s": t,
           "refraction_strain_left_rms": left(k_delta * path), "refraction_mean_path_nm": float(exact[ball].mean())}
    pu = _bcdi()
    if pu is None:
        return out
    t, path = best_time(lambda: _bcdi_paths(pu, ball, incident, scattered, (voxel,) * 3), 1)
    as_run = _bcdi_paths(pu, ball, incident, scattered, None)
    out.update({"bcdi_refraction_path_rms_nm": path_rms(path), "bcdi_refraction_path_s": t,
                "bcdi_refraction_strain_left_rms": left(k_delta * path),
                "bcdi_as_run_refraction_strain_left_rms": left(-k_delta * as_run),
                "bcdi_as_run_path_over_exact": float(as_run[ball].mean() / exact[ball].mean())})
    return out


def _bcdi_paths(pu, support, incident, scattered, voxel_size):
    """L_in + L_out by bcdi's get_opticalpath. Its closing 3×3×3 mean over the support's voxels
    (mean_filter) stops on NumPy 2 (it assigns a length-1 array to an element); the same mean is
    taken with scipy's uniform_filter instead (equal to 10⁻¹² on a test ball against bcdi's own
    loop with that line mended; README)."""
    original = pu.mean_filter
    pu.mean_filter = lambda array, support, **_: array
    try:
        path = sum(pu.get_opticalpath(support=support.astype(int), direction=d, k=k, voxel_size=voxel_size)
                   for d, k in (("in", incident), ("out", scattered)))
    finally:
        pu.mean_filter = original
    w = support.astype(float)
    mean = lambda a: ndimage.uniform_filter(a, 3, mode="constant")
    return np.where(support, mean(path * w) / np.maximum(mean(w), 1e-12), 0)


def lab_grid_case(n):
    """An edge dislocation measured in a rocking scan (111 at 9 keV, the crystal turned into the
    Bragg condition, its object on the detector frame's skewed n³ grid of about the 128³ case's
    voxel): the strain on the orthogonal lab grid by our route (differentiated on the skewed grid,
    then resampled with the support as weight) and by the peers' (the complex object resampled
    onto the lab grid first, as bcdi's and cdiutils' orthogonalisation does, then differentiated),
    each against the closed form at the lab voxels, after removing its mean: in the bulk, in the
    4 voxels around a 3.5-voxel tube about the line, and in the outer two layers."""
    from braggscope.physics import object_from_displacement
    from braggscope.simulate.bcdi import align_to_geometry
    from braggscope.simulate.sample import displacement_and_strain, displacement_field, grid_points, support_fraction
    from braggscope.strain import resample, to_orthogonal

    h = 2 * CRYSTAL_NM / n * 1.07
    xtal = _crystal()
    d111 = xtal.material.d_spacing((1, 1, 1))
    g_norm = 2 * np.pi / d111
    geo = Geometry.for_reflection(d_spacing=d111, energy=9.0, detector_distance=h * n * 172e-6 / wavelength_nm(9.0),
                                  pixel_size=172.0, rocking_step=float(np.degrees(2 * np.pi / (n * g_norm * h))))
    xtal = align_to_geometry(xtal, (1, 1, 1), geo)
    defects = [xtal.dislocation((0.5, -0.5, 0), (1, 1, -2), (2.1, -1.3, 0.7))]
    a = geo.object_voxel((n,) * 3)
    idx = np.stack(np.meshgrid(*[np.arange(n) - n // 2] * 3, indexing="ij")).reshape(3, -1)
    points = (a @ idx).reshape((3,) + (n,) * 3)
    occupancy = support_fraction(xtal.shape, points, abs(np.linalg.det(a)) ** (1 / 3))
    g = xtal.g_vector((1, 1, 1))
    u = displacement_field(defects, points, poisson_ratio=xtal.material.poisson_ratio)
    obj, support = object_from_displacement(u, g, amplitude=occupancy).astype(np.complex64), occupancy > 0.5
    t_ours, lab = best_time(lambda: resample(strain_field(obj, support, g_vector=g, voxel_size=a, frame="detector")), 1)

    def peers_route():
        moved, moved_support, voxel = to_orthogonal(obj, support, a, voxel_size=lab.voxel_size, shape=lab.strain.shape)
        return strain_field(moved, moved_support, g_vector=g, voxel_size=voxel)

    t_peers, peers = best_time(peers_route, 1)
    out_points = grid_points(lab.strain.shape, lab.voxel_size)
    _, truth = displacement_and_strain(defects, out_points, g / np.linalg.norm(g),
                                       poisson_ratio=xtal.material.poisson_ratio)
    distance = defects[0].distance(out_points) / lab.voxel_size
    out = {"lab_grid_voxel_nm": lab.voxel_size, "lab_grid_detector_voxel_nm": np.linalg.norm(a, axis=0).tolist(),
           "lab_grid_ours_s": t_ours, "lab_grid_object_first_s": t_peers}
    for name, field in (("ours", lab), ("object_first", peers)):
        both = lab.support & peers.support
        layers = surface_layers(both, 2)
        parts = {"bulk": both & ~layers & (distance > 7.5), "near_core": both & ~layers & (distance > 3.5)
                 & (distance <= 7.5), "surface": layers & (distance > 3.5)}
        err = field.strain - truth
        err = err - np.nanmean(err[parts["bulk"]])
        for part, where in parts.items():
            out[f"lab_grid_{name}_{part}_rms_error"] = float(np.sqrt(np.nanmean(err[where] ** 2)))
    return out


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
    if _bcdi() is not None:
        result.update(peer_bcdi(n128, n256))
    result.update(refraction_paths())
    result.update(lab_grid_case(n128))
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
    if _bcdi() is None:
        result["bcdi_missing"] = "pip install --no-deps bcdi==0.2.3 to measure it"
    else:
        from importlib.metadata import version
        result["bcdi_version"] = version("bcdi")
        result[f"speedup_vs_bcdi_{big}"] = result[f"bcdi_time_s_{big}"] / result[f"time_s_{big}_g_along_y"]
    result.update({f"ratio_to_fft_pair_{big}": result[f"time_s_{big}"] / result[f"fft_pair_s_{big}"],
                   "device": device(), "wall_s": time.perf_counter() - t0})
    emit(result)


if __name__ == "__main__":
    main()
